//! Load + validate + plan on generated configurations of 1k, 10k and 100k
//! components: layered random DAGs with three dependencies per component on
//! average, every component with its own directory, as in a real repository.
//!
//! Run with `cargo bench --bench plan`. Each size runs in a fresh child
//! process so its peak memory (VmHWM) is its own. Targets: 10k ≤ 50 ms,
//! 100k ≤ 1 s, ≤ 200 MB at 100k, cost growing linearly.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use orchestrator_action::config::{self, CloudName, EnvName};
use orchestrator_action::plan::{self, Observed, Request};

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const AVERAGE_DEPENDENCIES: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let n: usize = args[i + 1].parse().expect("size");
        child(n, Path::new(&args[i + 2]));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks for names; there is one benchmark.
    }
    println!("load + validate + plan (median of runs, peak RSS of a fresh process)\n");
    println!(
        "{:>10}  {:>9}  {:>10}  {:>12}  {:>9}",
        "components", "edges", "median", "per comp.", "peak RSS"
    );
    let exe = std::env::current_exe().expect("current exe");
    for n in SIZES {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let edges = generate(n, dir.path());
        let out = Command::new(&exe)
            .args(["--child", &n.to_string()])
            .arg(dir.path())
            .output()
            .expect("child");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut fields = text.split_whitespace();
        let fastest_ns: u64 = fields.next().and_then(|f| f.parse().ok()).expect("fastest");
        let median_ns: u64 = fields.next().and_then(|f| f.parse().ok()).expect("median");
        let peak_kb: u64 = fields.next().and_then(|f| f.parse().ok()).expect("peak");
        let (fastest, median) = (
            Duration::from_nanos(fastest_ns),
            Duration::from_nanos(median_ns),
        );
        println!(
            "{n:>10}  {edges:>9}  {:>10}  {:>10}  {:>9.2} µs  {:>6.1} MB",
            format!("{:.1} ms", fastest.as_secs_f64() * 1e3),
            format!("{:.1} ms", median.as_secs_f64() * 1e3),
            median.as_secs_f64() * 1e6 / n as f64,
            peak_kb as f64 / 1024.0
        );
    }
}

/// Loads, validates and plans `runs` times; prints the fastest and median
/// times in nanoseconds and the peak resident memory in kB.
fn child(n: usize, dir: &Path) {
    let runs = match n {
        0..=1_000 => 30,
        1_001..=10_000 => 15,
        _ => 5,
    };
    let file = dir.join("orchestrator.yaml");
    let env = EnvName::parse("prod").expect("env");
    let cloud = CloudName::parse("aws").expect("cloud");
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let config = config::load(&file).unwrap_or_else(|r| panic!("{}", r.render(false)));
        let values = config::values::check(&config, &[&env], false);
        assert!(values.is_empty());
        let observed = vec![Observed::default(); config.components.len()];
        let plan = plan::plan(&config, &env, &cloud, &Request::default(), &observed);
        times.push(start.elapsed());
        assert_eq!(plan.components.len(), n);
        drop((plan, config));
    }
    times.sort();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    println!(
        "{} {} {peak_kb}",
        times[0].as_nanos(),
        times[runs / 2].as_nanos()
    );
}

/// Writes a layered random DAG of `n` components into `dir`; returns the
/// number of dependency edges.
fn generate(n: usize, dir: &Path) -> usize {
    let mut rng = fastrand::Rng::with_seed(0x5eed ^ n as u64);
    let layers = ((n as f64).sqrt() as usize / 2).max(4);
    let per_layer = n.div_ceil(layers);
    let mut yaml = String::with_capacity(n * 120);
    yaml.push_str(
        "version: 1\ndefaults:\n  runner: tofu\n  timeout: 30m\nmax_parallel: 8\ncomponents:\n",
    );
    let mut edges = 0;
    for i in 0..n {
        let layer = i / per_layer;
        let name = format!("c{i:06}");
        std::fs::create_dir_all(dir.join("stacks").join(&name)).expect("mkdir");
        let _ = writeln!(yaml, "  {name}:\n    path: stacks/{name}");
        if layer > 0 {
            // Between 1 and 5 dependencies (3 on average), mostly from the
            // layer just before, some from further back.
            let count = rng.usize(1..=2 * AVERAGE_DEPENDENCIES - 1);
            let mut deps: Vec<usize> = (0..count)
                .map(|_| {
                    let from_layer = if rng.u8(0..4) == 0 {
                        rng.usize(0..layer)
                    } else {
                        layer - 1
                    };
                    from_layer * per_layer + rng.usize(0..per_layer)
                })
                .collect();
            deps.sort_unstable();
            deps.dedup();
            edges += deps.len();
            let list: Vec<String> = deps.iter().map(|d| format!("c{d:06}")).collect();
            let _ = writeln!(yaml, "    depends_on: [{}]", list.join(", "));
        }
    }
    yaml.push_str("environments:\n  dev: {clouds: [aws]}\n  prod: {clouds: [aws], promote_from: dev, protected: true}\n");
    std::fs::write(dir.join("orchestrator.yaml"), yaml).expect("write config");
    edges
}
