//! The apply engine end to end: the real `orchestrator` binary running shell
//! components in generated repositories, compared with a lower bound and with
//! GNU Make running the same graphs.
//!
//! Run with `cargo bench --bench engine` (it builds the binary in the release
//! profile and takes a few minutes); `cargo bench --bench engine -- overhead`
//! runs only the benchmarks named (`makespan`, `overhead`, `chains`). Every
//! measurement starts from an empty `.orchestrator/` directory, is repeated
//! (5 times; 21 for the overhead), and is reported as its fastest and median
//! wall time, including process start-up; a target counts as met when the
//! median meets it.
//!
//! 1. Makespan: a random layered DAG of 200 components, each sleeping 20–300
//!    ms, with a concurrency cap no smaller than the graph's width. The eager
//!    scheduler is compared with the lower bound max(critical path, work /
//!    cap), with running the graph wave by wave through the orchestrator, and
//!    with `make -j cap`. Target: eager ≤ 1.02 × bound. The fixed cost of
//!    an `orchestrator apply` that has nothing to do is reported alongside.
//! 2. Overhead: 1,000 independent components running `true`, two at a time,
//!    against `make -j2`. Target: orchestrator ≤ 1.0 × make. The same
//!    components committed to a git repository are reported alongside, and
//!    so is the CPU time of the orchestrator and of make, each apart from
//!    their components' (read from `/proc` before the process is reaped).
//! 3. Chains: a chain of 500 components running `true` with default settings,
//!    against `make -j1`. Target: per-link overhead over make ≤ 2 ms.
//!
//! Peak memory of the orchestrator process is measured with `/usr/bin/time`
//! when it is installed.
//!
//! The repositories are generated under `$TMPDIR`, which is also where the
//! orchestrator keeps each run's scratch files; the run's logs and state go
//! into the repository. `TMPDIR=/dev/shm cargo bench --bench engine` takes
//! the disk out of the measurement.

use std::cell::Cell;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../tests/common/mod.rs"]
mod common;

/// How many times each measurement is repeated.
const REPEATS: usize = 5;
/// How many times the overhead runs are repeated, alternating with make's:
/// under a second each, and their ratio moves by several percent from one
/// set of five to the next on a shared VM.
const OVERHEAD_REPEATS: usize = 21;
/// How many times the no-op apply (start-up cost) is repeated.
const STARTUP_REPEATS: usize = 15;
const SEED: u64 = 0x00e1_9e5e;

const MAKESPAN_COMPONENTS: usize = 200;
const OVERHEAD_COMPONENTS: usize = 1_000;
const CHAIN_LENGTH: usize = 500;

/// Target ratios and limits.
const MAKESPAN_TARGET: f64 = 1.02;
const OVERHEAD_TARGET: f64 = 1.0;
const CHAIN_TARGET_MS: f64 = 2.0;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks for names; there is one benchmark.
    }
    let bench = Bench::new();
    println!("orchestrator: {}", bench.bin.display());
    println!(
        "each measurement repeated {REPEATS} times ({OVERHEAD_REPEATS} for the overhead); times are wall clock including process start-up\n"
    );
    // `cargo bench --bench engine -- overhead` runs only the benchmarks named.
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| named.is_empty() || named.iter().any(|n| n == name);
    let mut memory = Vec::new();
    let makespan_met = wanted("makespan").then(|| makespan(&bench, &mut memory));
    let overhead_met = wanted("overhead").then(|| overhead(&bench, &mut memory));
    let chain_met = wanted("chains").then(|| chains(&bench, &mut memory));

    println!("\n== Peak memory of the orchestrator process ==\n");
    if bench.time.is_none() {
        println!("skipped: /usr/bin/time is not installed");
    } else {
        println!("{:<44}  {:>10}", "run", "peak RSS");
        for (what, kb) in &memory {
            println!("{what:<44}  {:>7.1} MB", *kb as f64 / 1024.0);
        }
    }

    println!("\n== Summary ==\n");
    for (what, met) in [
        ("makespan: eager ≤ 1.02 × bound", makespan_met),
        ("overhead: orchestrator ≤ 1.0 × make", overhead_met),
        ("chains: per-link overhead ≤ 2 ms", chain_met),
    ] {
        if let Some(met) = met {
            println!("{what:<40}  {}", verdict(met));
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Makespan

fn makespan(bench: &Bench, memory: &mut Vec<(String, u64)>) -> bool {
    let mut rng = fastrand::Rng::with_seed(SEED);
    let (deps, durations) = layered_dag(&mut rng, MAKESPAN_COMPONENTS);
    let n = deps.len();
    let components: Vec<Component> = (0..n)
        .map(|i| Component {
            deps: deps[i].clone(),
            command: format!("sleep {:.3}", durations[i] as f64 / 1e3),
        })
        .collect();
    let repo = Repo::new(bench, "makespan", &components);

    let waves = waves(&deps);
    let widest_wave = waves.iter().map(Vec::len).max().unwrap_or(0);
    let width = width(&deps);
    let cap = widest_wave.max(width);
    let edges: usize = deps.iter().map(Vec::len).sum();
    let work_ms: u64 = durations.iter().sum();
    let (critical_ms, critical_links) = critical_path(&deps, &durations);
    let spread_ms = work_ms as f64 / cap as f64;
    let bound = Duration::from_secs_f64(f64::max(critical_ms as f64, spread_ms) / 1e3);

    println!("== 1. Makespan: {n} components sleeping 20–300 ms ==\n");
    println!(
        "graph: {edges} edges, {} waves, widest wave {widest_wave}, width (largest antichain) {width}, cap {cap}",
        waves.len()
    );
    println!(
        "total work {:.3} s, critical path {:.3} s through {critical_links} components, work / cap {:.3} s, lower bound {:.3} s\n",
        work_ms as f64 / 1e3,
        critical_ms as f64 / 1e3,
        spread_ms / 1e3,
        bound.as_secs_f64()
    );

    let cap_arg = cap.to_string();
    let wave_args: Vec<String> = waves
        .iter()
        .map(|wave| {
            let names: Vec<String> = wave.iter().map(|&i| name(i)).collect();
            names.join(",")
        })
        .collect();
    let mut eager = Vec::new();
    let mut by_waves = Vec::new();
    let mut make = Vec::new();
    let mut startup = Vec::new();
    for _ in 0..REPEATS {
        repo.reset();
        eager.push(bench.apply(&repo, &["--max-parallel", &cap_arg], n).0);
        for _ in 0..STARTUP_REPEATS / REPEATS {
            startup.push(bench.apply(&repo, &["--max-parallel", &cap_arg], 0).0);
        }

        repo.reset();
        let start = Instant::now();
        for (wave, names) in waves.iter().zip(&wave_args) {
            bench.apply(
                &repo,
                &["--max-parallel", &cap_arg, "--components", names],
                wave.len(),
            );
        }
        by_waves.push(start.elapsed());

        make.push(bench.make(&repo, cap));
    }
    if bench.time.is_some() {
        repo.reset();
        let (_, kb, _) = bench.apply_measured(&repo, &["--max-parallel", &cap_arg], n, true);
        memory.push((format!("makespan: eager apply, {n} components"), kb));
        let (_, kb, _) = bench.apply_measured(&repo, &["--max-parallel", &cap_arg], 0, true);
        memory.push((format!("makespan: no-op apply, {n} components"), kb));
    }

    let eager = Stats::of(eager);
    let make = Stats::of(make);
    let startup = Stats::of(startup);
    println!(
        "{:<32}  {:>10}  {:>10}  {:>12}  {:>12}",
        "schedule", "min", "median", "min / bound", "med. / bound"
    );
    println!(
        "{:<32}  {:>10}  {:>10}",
        "lower bound",
        secs(bound),
        secs(bound)
    );
    for (what, stats) in [
        (format!("eager (--max-parallel {cap})"), eager),
        (
            format!("waves ({} applies, one a wave)", waves.len()),
            Stats::of(by_waves),
        ),
        (format!("make -j {cap}"), make),
    ] {
        println!(
            "{what:<32}  {:>10}  {:>10}  {:>12.3}  {:>12.3}",
            secs(stats.min),
            secs(stats.median),
            ratio(stats.min, bound),
            ratio(stats.median, bound)
        );
    }
    println!(
        "\nstart-up cost (apply with nothing to do, {} runs): min {}, median {}",
        startup.runs,
        millis(startup.min),
        millis(startup.median)
    );
    let eager_minus_startup = eager.median.saturating_sub(startup.median);
    println!(
        "eager median minus start-up: {} = {:.3} × bound",
        secs(eager_minus_startup),
        ratio(eager_minus_startup, bound)
    );
    let per_link =
        |d: Duration| (d.as_secs_f64() - bound.as_secs_f64()) * 1e3 / critical_links as f64;
    println!(
        "over the bound per critical-path component (medians): eager {:.2} ms, make {:.2} ms",
        per_link(eager.median),
        per_link(make.median)
    );
    let met = ratio(eager.median, bound) <= MAKESPAN_TARGET;
    println!(
        "target: eager ≤ {MAKESPAN_TARGET} × bound (median {:.3}, min {:.3}): {}\n",
        ratio(eager.median, bound),
        ratio(eager.min, bound),
        verdict(met)
    );
    met
}

/// A layered random DAG of `n` components: between 12 and 18 layers, every
/// component outside the first layer depending on one component of the layer
/// just before it and up to two more, mostly from that layer too. Returns the
/// dependencies of each component and its duration in milliseconds.
fn layered_dag(rng: &mut fastrand::Rng, n: usize) -> (Vec<Vec<usize>>, Vec<u64>) {
    let layers = rng.usize(12..=18);
    let mut sizes = vec![1; layers];
    for _ in layers..n {
        sizes[rng.usize(..layers)] += 1;
    }
    let mut deps = Vec::with_capacity(n);
    let mut previous = 0..0;
    let mut start = 0;
    for size in sizes {
        let layer = start..start + size;
        for _ in layer.clone() {
            let mut mine = Vec::new();
            if !previous.is_empty() {
                mine.push(rng.usize(previous.clone()));
                for _ in 1..rng.usize(1..=3) {
                    let dep = if rng.u8(0..10) < 7 {
                        rng.usize(previous.clone())
                    } else {
                        rng.usize(0..previous.end)
                    };
                    mine.push(dep);
                }
                mine.sort_unstable();
                mine.dedup();
            }
            deps.push(mine);
        }
        previous = layer;
        start = previous.end;
    }
    let durations = (0..n).map(|_| rng.u64(20..=300)).collect();
    (deps, durations)
}

/// Components grouped by the length of the longest dependency chain leading
/// to them. Dependencies always come before their dependents.
fn waves(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut level = vec![0; deps.len()];
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for (i, mine) in deps.iter().enumerate() {
        level[i] = mine.iter().map(|&d| level[d] + 1).max().unwrap_or(0);
        if waves.len() <= level[i] {
            waves.resize_with(level[i] + 1, Vec::new);
        }
        waves[level[i]].push(i);
    }
    waves
}

/// The longest path through the graph, weighted by durations: its length
/// and how many components it goes through.
fn critical_path(deps: &[Vec<usize>], durations: &[u64]) -> (u64, usize) {
    let mut finish: Vec<(u64, usize)> = vec![(0, 0); deps.len()];
    for (i, mine) in deps.iter().enumerate() {
        let (before, links) = mine.iter().map(|&d| finish[d]).max().unwrap_or((0, 0));
        finish[i] = (before + durations[i], links + 1);
    }
    finish.into_iter().max().unwrap_or((0, 0))
}

/// The size of the largest set of components none of which depends on
/// another, directly or not: by Dilworth's theorem, the number of components
/// minus a maximum matching in the transitive closure.
fn width(deps: &[Vec<usize>]) -> usize {
    let n = deps.len();
    // ancestors[i][j]: i depends on j, directly or not.
    let mut ancestors = vec![vec![false; n]; n];
    for (i, mine) in deps.iter().enumerate() {
        for &d in mine {
            let inherited = ancestors[d].clone();
            for (mine, theirs) in ancestors[i].iter_mut().zip(inherited) {
                *mine |= theirs;
            }
            ancestors[i][d] = true;
        }
    }
    // Edge from ancestor j (left) to descendant i (right).
    let descendants: Vec<Vec<usize>> = (0..n)
        .map(|j| (0..n).filter(|&i| ancestors[i][j]).collect())
        .collect();
    let mut matched: Vec<Option<usize>> = vec![None; n];
    let mut matching = 0;
    for left in 0..n {
        let mut seen = vec![false; n];
        if augment(left, &descendants, &mut matched, &mut seen) {
            matching += 1;
        }
    }
    n - matching
}

fn augment(
    left: usize,
    edges: &[Vec<usize>],
    matched: &mut [Option<usize>],
    seen: &mut [bool],
) -> bool {
    for &right in &edges[left] {
        if seen[right] {
            continue;
        }
        seen[right] = true;
        if matched[right].is_none_or(|other| augment(other, edges, matched, seen)) {
            matched[right] = Some(left);
            return true;
        }
    }
    false
}

// ---------------------------------------------------------------------------
// 2. Overhead

fn overhead(bench: &Bench, memory: &mut Vec<(String, u64)>) -> bool {
    let n = OVERHEAD_COMPONENTS;
    let components: Vec<Component> = (0..n)
        .map(|_| Component {
            deps: Vec::new(),
            command: "true".into(),
        })
        .collect();
    let repo = Repo::new(bench, "overhead", &components);
    // The same components committed to a git repository (with no remote):
    // fingerprints come from git, and libgit2 is started.
    let git_repo = Repo::new(bench, "overhead-git", &components);
    git_repo.commit();
    let mut orchestrator = Vec::new();
    let mut in_git = Vec::new();
    let mut make = Vec::new();
    let (mut orchestrator_cpu, mut make_cpu) = (Vec::new(), Vec::new());
    for _ in 0..OVERHEAD_REPEATS {
        repo.reset();
        let (wall, cpu) = bench.apply(&repo, &["--max-parallel", "2"], n);
        orchestrator.push(wall);
        orchestrator_cpu.push(cpu);
        let (wall, cpu) = bench.make_cpu(&repo, 2);
        make.push(wall);
        make_cpu.push(cpu);
        git_repo.reset();
        in_git.push(bench.apply(&git_repo, &["--max-parallel", "2"], n).0);
    }
    if bench.time.is_some() {
        repo.reset();
        let (_, kb, _) = bench.apply_measured(&repo, &["--max-parallel", "2"], n, true);
        memory.push((format!("overhead: {n} independent, --max-parallel 2"), kb));
    }
    let orchestrator = Stats::of(orchestrator);
    let in_git = Stats::of(in_git);
    let make = Stats::of(make);

    println!("== 2. Overhead: {n} independent components running `true`, 2 at a time ==\n");
    println!(
        "{:<36}  {:>10}  {:>10}  {:>14}",
        "run", "min", "median", "per comp. (med.)"
    );
    for (what, stats) in [
        ("orchestrator apply --max-parallel 2", orchestrator),
        ("the same in a git repository", in_git),
        ("make -j2", make),
    ] {
        println!(
            "{what:<36}  {:>10}  {:>10}  {:>14}",
            secs(stats.min),
            secs(stats.median),
            millis(stats.median / n as u32)
        );
    }
    // CPU times vary far less than wall times on a shared machine, and say
    // where a difference comes from: the orchestrator's own work, or its
    // components'.
    println!(
        "\n{:<36}  {:>10}  {:>10}",
        "CPU time (means)", "own", "components"
    );
    for (what, cpu) in [
        ("orchestrator apply --max-parallel 2", &orchestrator_cpu),
        ("make -j2", &make_cpu),
    ] {
        let mean =
            |part: fn(&Cpu) -> Duration| cpu.iter().map(part).sum::<Duration>() / cpu.len() as u32;
        println!(
            "{what:<36}  {:>10}  {:>10}",
            whole_millis(mean(|c| c.own)),
            whole_millis(mean(|c| c.children))
        );
    }
    let median_ratio = ratio(orchestrator.median, make.median);
    let min_ratio = ratio(orchestrator.min, make.min);
    println!("\norchestrator / make: {median_ratio:.2} (medians), {min_ratio:.2} (minimums)");
    println!(
        "in a git repository / make: {:.2} (medians; reported only)",
        ratio(in_git.median, make.median)
    );
    let met = median_ratio <= OVERHEAD_TARGET;
    println!(
        "target: orchestrator ≤ {OVERHEAD_TARGET} × make: {}\n",
        verdict(met)
    );
    met
}

// ---------------------------------------------------------------------------
// 3. Chains

fn chains(bench: &Bench, memory: &mut Vec<(String, u64)>) -> bool {
    let n = CHAIN_LENGTH;
    let components: Vec<Component> = (0..n)
        .map(|i| Component {
            deps: if i == 0 { Vec::new() } else { vec![i - 1] },
            command: "true".into(),
        })
        .collect();
    let repo = Repo::new(bench, "chain", &components);
    let mut orchestrator = Vec::new();
    let mut make = Vec::new();
    for _ in 0..REPEATS {
        repo.reset();
        orchestrator.push(bench.apply(&repo, &[], n).0);
        make.push(bench.make(&repo, 1));
    }
    if bench.time.is_some() {
        repo.reset();
        let (_, kb, _) = bench.apply_measured(&repo, &[], n, true);
        memory.push((format!("chains: {n}-long chain, default settings"), kb));
    }
    let orchestrator = Stats::of(orchestrator);
    let make = Stats::of(make);

    println!("== 3. Chains: c0 ← c1 ← … ← c{} running `true` ==\n", n - 1);
    println!(
        "{:<36}  {:>10}  {:>10}  {:>12}  {:>12}",
        "run", "min", "median", "link (min)", "link (med.)"
    );
    for (what, stats) in [
        ("orchestrator apply (default settings)", orchestrator),
        ("make -j1", make),
    ] {
        println!(
            "{what:<36}  {:>10}  {:>10}  {:>12}  {:>12}",
            secs(stats.min),
            secs(stats.median),
            millis(stats.min / n as u32),
            millis(stats.median / n as u32)
        );
    }
    let per_link = |a: Duration, b: Duration| (a.as_secs_f64() - b.as_secs_f64()) * 1e3 / n as f64;
    let median_overhead = per_link(orchestrator.median, make.median);
    let min_overhead = per_link(orchestrator.min, make.min);
    println!(
        "\nper-link overhead (orchestrator − make) / {n}: {median_overhead:.3} ms (medians), {min_overhead:.3} ms (minimums)"
    );
    let met = median_overhead <= CHAIN_TARGET_MS;
    println!(
        "target: per-link overhead ≤ {CHAIN_TARGET_MS} ms: {}",
        verdict(met)
    );
    met
}

// ---------------------------------------------------------------------------
// Running things

struct Component {
    deps: Vec<usize>,
    command: String,
}

fn name(i: usize) -> String {
    format!("c{i:04}")
}

/// A generated repository: `orchestrator.yaml`, one directory per component
/// under `c/`, and `bench.mk`, a Makefile of the same graph whose recipes are
/// the components' apply commands.
///
/// Between runs, `.orchestrator/` is moved aside rather than deleted, and
/// everything is deleted when the benchmark ends. On ext4 without a journal
/// the kernel skips over recently deleted inodes when it creates a file, so
/// deleting thousands of files between runs would make the next run's file
/// creations (logs, values, state) slower than they are in a real run.
struct Repo {
    dir: PathBuf,
    /// Where earlier runs' `.orchestrator/` directories are moved.
    old: PathBuf,
    resets: Cell<usize>,
}

impl Repo {
    fn new(bench: &Bench, label: &str, components: &[Component]) -> Repo {
        let dir = bench.scratch.path().join(label).join("repo");
        let old = bench.scratch.path().join(label).join("old");
        fs::create_dir_all(&dir).expect("repository dir");
        fs::create_dir_all(&old).expect("old runs dir");
        let mut config =
            String::from("version: 1\ndefaults:\n  runner: shell\n  retries: 0\ncomponents:\n");
        let mut makefile = String::new();
        let names: Vec<String> = (0..components.len()).map(name).collect();
        let _ = writeln!(makefile, ".PHONY: all {}", names.join(" "));
        let _ = writeln!(makefile, "all: {}", names.join(" "));
        for (component, name) in components.iter().zip(&names) {
            fs::create_dir_all(dir.join("c").join(name)).expect("component dir");
            let deps: Vec<&str> = component.deps.iter().map(|&d| names[d].as_str()).collect();
            let _ = write!(
                config,
                "  {name}:\n    path: c/{name}\n    depends_on: [{}]\n    commands:\n      apply: {}\n",
                deps.join(", "),
                serde_json::to_string(&component.command).expect("quote")
            );
            let _ = write!(
                makefile,
                "{name}: {}\n\t@{}\n",
                deps.join(" "),
                component.command
            );
        }
        config.push_str("environments:\n  bench: {clouds: [local]}\n");
        fs::write(dir.join("orchestrator.yaml"), config).expect("write config");
        fs::write(dir.join("bench.mk"), makefile).expect("write makefile");
        Repo {
            dir,
            old,
            resets: Cell::new(0),
        }
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    /// Commits everything to a new git repository in the directory, with
    /// `.orchestrator/` ignored as the README advises. Each component
    /// directory gets a file first, as real ones have: git does not track
    /// an empty directory, and the fingerprint of an untracked one is a
    /// hash of its files, as outside a repository.
    fn commit(&self) {
        fs::write(self.path().join(".gitignore"), ".orchestrator/\n").expect("write .gitignore");
        for entry in fs::read_dir(self.path().join("c")).expect("list component dirs") {
            let dir = entry.expect("component dir").path();
            fs::write(dir.join("main.tf"), "# generated\n").expect("write a component file");
        }
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["add", "-A"],
            &["commit", "-q", "-m", "components"],
        ] {
            common::git(self.path(), args);
        }
    }

    /// Forgets every earlier run, so the next apply starts from scratch.
    fn reset(&self) {
        let state = self.path().join(".orchestrator");
        if state.exists() {
            let n = self.resets.get();
            self.resets.set(n + 1);
            fs::rename(&state, self.old.join(n.to_string())).expect("move .orchestrator aside");
        }
    }
}

struct Bench {
    bin: PathBuf,
    /// `/usr/bin/time`, when installed.
    time: Option<PathBuf>,
    /// The generated repositories, and the stderr of the last run (kept
    /// only to explain a failure); deleted at the end.
    scratch: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let time = PathBuf::from("/usr/bin/time");
        Bench {
            bin: orchestrator_binary(),
            time: time.exists().then_some(time),
            scratch: tempfile::Builder::new()
                .prefix("orchestrator-bench-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    /// Runs `orchestrator apply --env bench --format json ARGS` in `repo` and
    /// checks that it succeeded and ran `expected` components; its wall
    /// and CPU time.
    fn apply(&self, repo: &Repo, args: &[&str], expected: usize) -> (Duration, Cpu) {
        let (wall, _, cpu) = self.apply_measured(repo, args, expected, false);
        (wall, cpu)
    }

    /// Like [`Bench::apply`]; with `measure_memory`, under `/usr/bin/time`,
    /// returning the peak resident memory in kB too.
    fn apply_measured(
        &self,
        repo: &Repo,
        args: &[&str],
        expected: usize,
        measure_memory: bool,
    ) -> (Duration, u64, Cpu) {
        let stdout_path = self.scratch.path().join("stdout.json");
        let stderr_path = self.scratch.path().join("stderr.log");
        let rss_path = self.scratch.path().join("rss.txt");
        let mut command = match (&self.time, measure_memory) {
            (Some(time), true) => {
                let mut command = Command::new(time);
                command
                    .args(["-f", "%M", "-o"])
                    .arg(&rss_path)
                    .arg(&self.bin);
                command
            }
            _ => Command::new(&self.bin),
        };
        command
            .args(["apply", "--env", "bench", "--format", "json"])
            .args(args)
            .current_dir(repo.path())
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout_path).expect("stdout file"))
            .stderr(fs::File::create(&stderr_path).expect("stderr file"));
        let (elapsed, status, cpu) = run(&mut command);
        let stdout = fs::read(&stdout_path).unwrap_or_default();
        let fail = |why: &str| -> ! {
            panic!(
                "orchestrator apply {} failed: {why}\nexit status: {status}\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&stdout),
                fs::read_to_string(&stderr_path).unwrap_or_default()
            )
        };
        if !status.success() {
            fail("non-zero exit status");
        }
        let doc: Value = serde_json::from_slice(&stdout)
            .unwrap_or_else(|e| fail(&format!("stdout is not JSON: {e}")));
        if doc["result"] != "succeeded" {
            fail("result is not `succeeded`");
        }
        let ran = doc["components"].as_object().map_or(0, |c| c.len());
        if ran != expected {
            fail(&format!("ran {ran} components, expected {expected}"));
        }
        let kb = if measure_memory {
            fs::read_to_string(&rss_path)
                .ok()
                .and_then(|t| t.lines().last()?.trim().parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
        (elapsed, kb, cpu)
    }

    /// Runs `make -j JOBS -f bench.mk all` in `repo`.
    fn make(&self, repo: &Repo, jobs: usize) -> Duration {
        self.make_cpu(repo, jobs).0
    }

    /// Like [`Bench::make`], with make's CPU time.
    fn make_cpu(&self, repo: &Repo, jobs: usize) -> (Duration, Cpu) {
        let stderr_path = self.scratch.path().join("make-stderr.log");
        let (elapsed, status, cpu) = run(Command::new("make")
            .args(["-j", &jobs.to_string(), "-f", "bench.mk", "all"])
            .current_dir(repo.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr_path).expect("stderr file")));
        assert!(
            status.success(),
            "make -j {jobs} failed: {status}\n{}",
            fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        (elapsed, cpu)
    }
}

/// CPU time of a process that has ended: its own (all its threads), and
/// that of the children it reaped (for a run, its components).
#[derive(Clone, Copy, Default)]
struct Cpu {
    own: Duration,
    children: Duration,
}

/// Runs `command` to its end: its wall time, exit status and CPU time.
/// The process is waited for without being reaped first, so that its
/// totals can be read from `/proc/<pid>/stat`; GNU time and getrusage give
/// only the sum of a process and its children.
fn run(command: &mut Command) -> (Duration, std::process::ExitStatus, Cpu) {
    let start = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let pid = child.id();
    // SAFETY: `info` is a valid place for the answer; the pid is our
    // unreaped child, and WNOWAIT leaves it unreaped.
    let waited = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT)
    };
    let elapsed = start.elapsed();
    let cpu = if waited == 0 {
        process_cpu(pid)
    } else {
        Cpu::default()
    };
    let status = child.wait().expect("wait for the process");
    (elapsed, status, cpu)
}

/// The CPU times in `/proc/<pid>/stat` of a process that has exited.
fn process_cpu(pid: u32) -> Cpu {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Cpu::default();
    };
    // After the command name, which may hold spaces: state is field 3, and
    // utime, stime, cutime and cstime are fields 14 to 17.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(4)
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let time = |t: u64| Duration::from_secs_f64(t as f64 / ticks);
    match fields[..] {
        [utime, stime, cutime, cstime] => Cpu {
            own: time(utime + stime),
            children: time(cutime + cstime),
        },
        _ => Cpu::default(),
    }
}

/// The `orchestrator` binary of this package: the one Cargo built for this
/// bench, or else `target/release/orchestrator` next to this executable.
fn orchestrator_binary() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(path) = option_env!("CARGO_BIN_EXE_orchestrator") {
        candidates.push(PathBuf::from(path));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/deps/engine-HASH
        if let Some(profile) = exe.parent().and_then(Path::parent) {
            candidates.push(profile.join("orchestrator"));
            if let Some(target) = profile.parent() {
                candidates.push(target.join("release").join("orchestrator"));
            }
        }
    }
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the orchestrator binary was not found (looked at {candidates:?}); \
                 build it with `cargo build --release`"
            )
        })
}

// ---------------------------------------------------------------------------
// Numbers

#[derive(Clone, Copy)]
struct Stats {
    runs: usize,
    min: Duration,
    median: Duration,
}

impl Stats {
    fn of(mut times: Vec<Duration>) -> Stats {
        assert!(!times.is_empty());
        times.sort();
        Stats {
            runs: times.len(),
            min: times[0],
            median: times[times.len() / 2],
        }
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn whole_millis(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}
