//! The config diff on two environments of 10,000 keys each, with 1% of the
//! values changed: 10 components of 1,000 keys, each with nested mappings
//! and lists of named entries, as values files look.
//!
//! Run with `cargo bench --bench diff`. Reports the median of 30 runs of:
//! the structural diff alone (trees already parsed); parsing both
//! environments and diffing them; that plus rendering markdown; and the
//! whole `orchestrator diff --format json` command as a process (config,
//! checks of both environments, diff, output). Target: diff ≤ 50 ms.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use orchestrator_action::config::KeyPattern;
use orchestrator_action::diff::{self, ComponentDiff, Options};
use orchestrator_action::report::diff::{View, markdown};
use orchestrator_action::yaml;

const COMPONENTS: usize = 10;
const SECTIONS: usize = 40;
const SCALARS: usize = 15;
const POOLS: usize = 2;
const RUNS: usize = 30;
/// Leaf values changed between the environments: 1% of the keys.
const CHANGED: usize = 100;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks for names; there is one benchmark.
    }
    let dir = tempfile::TempDir::new().expect("temp dir");
    let keys = generate(dir.path());
    let texts = |env: &str| -> Vec<String> {
        (0..COMPONENTS)
            .map(|c| {
                std::fs::read_to_string(dir.path().join(format!("environments/{env}/c{c}.yaml")))
                    .expect("values")
            })
            .collect()
    };
    let (dev, staging) = (texts("dev"), texts("staging"));
    let options = Options {
        promotion: vec![KeyPattern::parse("**.version").expect("pattern")],
        ..Options::default()
    };
    let compare = |a: &[yaml::Node<'_>], b: &[yaml::Node<'_>]| -> Vec<ComponentDiff> {
        a.iter()
            .zip(b)
            .enumerate()
            .map(|(i, (x, y))| diff::component(&format!("c{i}"), Some(x), Some(y), &options))
            .collect()
    };

    let (a, b) = (parse(&dev), parse(&staging));
    let changes: usize = compare(&a, &b).iter().map(|d| d.changes.len()).sum();
    assert_eq!(
        changes, CHANGED,
        "the generated environments differ in 1% of their keys"
    );
    let diff_only = median(|| {
        std::hint::black_box(compare(&a, &b));
    });
    let parse_and_diff = median(|| {
        let (a, b) = (parse(&dev), parse(&staging));
        std::hint::black_box(compare(&a, &b));
    });
    let with_markdown = median(|| {
        let (a, b) = (parse(&dev), parse(&staging));
        let diffs = compare(&a, &b);
        let view = View {
            title: "dev → staging",
            from: "dev",
            to: "staging",
            components: &diffs,
            mark_promotable: true,
        };
        std::hint::black_box(markdown(&view));
    });
    let exe = env!("CARGO_BIN_EXE_orchestrator");
    let command = median(|| {
        let out = Command::new(exe)
            .current_dir(dir.path())
            .args([
                "diff", "--from", "dev", "--to", "staging", "--format", "json",
            ])
            .output()
            .expect("orchestrator");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });

    println!(
        "config diff: 2 environments x {keys} keys, {CHANGED} values changed (median of {RUNS} runs)\n"
    );
    for (what, time) in [
        ("diff of parsed trees", diff_only),
        ("parse both + diff", parse_and_diff),
        ("parse both + diff + markdown", with_markdown),
        ("`orchestrator diff --format json` process", command),
    ] {
        println!("{what:<44} {:>8.2} ms", time.as_secs_f64() * 1e3);
    }
}

fn parse(texts: &[String]) -> Vec<yaml::Node<'_>> {
    texts
        .iter()
        .map(|t| yaml::parse(t).expect("yaml"))
        .collect()
}

fn median(mut f: impl FnMut()) -> Duration {
    f(); // Warm caches and the page cache first.
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

/// Writes a repository whose dev and staging values differ in `CHANGED`
/// leaf values; returns how many keys each environment has.
fn generate(dir: &Path) -> usize {
    let mut config = String::from("version: 1\ndefaults:\n  runner: shell\ncomponents:\n");
    for c in 0..COMPONENTS {
        std::fs::create_dir_all(dir.join(format!("stacks/c{c}"))).expect("mkdir");
        let _ = writeln!(
            config,
            "  c{c}:\n    path: stacks/c{c}\n    commands: {{apply: \"true\"}}"
        );
    }
    config.push_str("environments:\n  dev: {clouds: [aws]}\n  staging: {clouds: [aws], promote_from: dev}\npromotion:\n  keys: [\"**.version\"]\n");
    std::fs::write(dir.join("orchestrator.yaml"), config).expect("config");

    // Which leaves change: every (component, section, scalar) slot is a
    // candidate, and a fixed seed picks CHANGED of them.
    let mut rng = fastrand::Rng::with_seed(42);
    let mut slots: Vec<(usize, usize, usize)> = (0..COMPONENTS)
        .flat_map(|c| (0..SECTIONS).flat_map(move |s| (0..SCALARS).map(move |k| (c, s, k))))
        .collect();
    rng.shuffle(&mut slots);
    slots.truncate(CHANGED);

    let mut keys = 0;
    for env in ["dev", "staging"] {
        std::fs::create_dir_all(dir.join(format!("environments/{env}"))).expect("mkdir");
        keys = 0;
        for c in 0..COMPONENTS {
            let mut text = format!("# values of c{c} in {env}\n");
            for s in 0..SECTIONS {
                let _ = writeln!(text, "section_{s}:");
                keys += 1;
                for k in 0..SCALARS {
                    let changed = env == "staging" && slots.contains(&(c, s, k));
                    let value = match (k % 3, changed) {
                        (0, false) => format!("\"{}.{s}.{k}\"", c + 1),
                        (0, true) => format!("\"{}.{s}.{k}-rc\"", c + 1),
                        (1, _) => (s * 100 + k + usize::from(changed)).to_string(),
                        _ => format!("value-{c}-{s}-{k}{}", if changed { "x" } else { "" }),
                    };
                    let key = if k == 0 {
                        "version".to_string()
                    } else {
                        format!("key_{k}")
                    };
                    let _ = writeln!(text, "  {key}: {value}");
                    keys += 1;
                }
                let _ = writeln!(text, "  pools:");
                keys += 1;
                for p in 0..POOLS {
                    let _ = writeln!(
                        text,
                        "    - name: pool-{p}\n      size: {}\n      version: \"1.{p}\"\n      zone: zone-{p}",
                        p + 1
                    );
                    keys += 4;
                }
            }
            std::fs::write(dir.join(format!("environments/{env}/c{c}.yaml")), text)
                .expect("values");
        }
    }
    keys
}
