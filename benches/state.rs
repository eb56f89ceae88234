//! The git state store against a local bare origin.
//!
//! 1. One write: fetch the state branch, merge a component record, commit,
//!    push (what a run does after components finish), repeated; target:
//!    median ≤ 50 ms.
//! 2. Sixteen writers at once, each in its own clone (as sixteen matrix
//!    jobs), each recording a different component; target: all land, total
//!    ≤ 5 s (median of the rounds, like the other benchmarks). Reports the
//!    attempts each write took.
//! 3. The recorder's write of a local state file of 1,000 components when 5
//!    records changed since its last write (what a run of many quick
//!    components does every few dozen milliseconds): rendering alone, and
//!    the whole write,
//!    with the whole file rendered each time (as before) and as the
//!    recorder writes now (file lock, stamp check, unchanged records'
//!    text reused).
//!
//! Run with `cargo bench --bench state`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

#[path = "../tests/common/mod.rs"]
mod common;

use common::git;
use orchestrator_action::config::{self, CloudName, ComponentName, EnvName};
use orchestrator_action::state::publish::message;
use orchestrator_action::state::render::Renderer;
use orchestrator_action::state::sync::Options;
use orchestrator_action::state::writer::Writer;
use orchestrator_action::state::{
    ComponentRecord, RecordAction, RunInfo, StateFile, Status, Store, StoreError, Timestamp, store,
};

const SINGLE_WRITES: usize = 30;
const WRITERS: usize = 16;
const ROUNDS: usize = 5;
/// Components in the state the recorder writes.
const RECORDS: usize = 1_000;
/// Records changed between two of its writes.
const CHANGED_PER_WRITE: usize = 5;
/// Writes measured.
const RECORDER_WRITES: usize = 200;

/// A bare origin with a config of `n` components, and the directory to
/// clone it into.
fn origin(root: &Path, n: usize) {
    git(root, &["init", "-q", "--bare", "-b", "main", "origin.git"]);
    git(root, &["init", "-q", "-b", "main", "seed"]);
    let seed = root.join("seed");
    let mut yaml = String::from("version: 1\ndefaults: {runner: shell}\ncomponents:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  c{i:02}: {{path: stacks/c{i:02}, commands: {{apply: 'true'}}}}\n"
        ));
        std::fs::create_dir_all(seed.join(format!("stacks/c{i:02}"))).unwrap();
        std::fs::write(seed.join(format!("stacks/c{i:02}/main.tf")), "").unwrap();
    }
    yaml.push_str("environments:\n  dev: {clouds: [aws]}\n");
    std::fs::write(seed.join("orchestrator.yaml"), yaml).unwrap();
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-q", "-m", "seed"]);
    git(&seed, &["push", "-q", "../origin.git", "main"]);
}

fn clone(root: &Path, name: &str) -> PathBuf {
    git(root, &["clone", "-q", "origin.git", name]);
    root.join(name)
}

/// Records `component` as succeeded in one write; returns the attempts.
fn write(store: &Store, component: &ComponentName) -> Result<u32, StoreError> {
    let (env, cloud) = (
        EnvName::parse("dev").unwrap(),
        CloudName::parse("aws").unwrap(),
    );
    let target = store.target(&env, &cloud);
    let written = store.transact(&target, false, |state| {
        let now = Timestamp::from(SystemTime::now());
        let mut record = ComponentRecord::new(Status::Succeeded, RecordAction::Apply);
        record.finished_at = Some(now);
        state.components.insert(component.clone(), record);
        let changes = BTreeMap::from([(component.clone(), Status::Succeeded)]);
        state.bump(changes.clone(), None, now, None);
        Ok(Some(message(&target.label(), &changes, &[])))
    })?;
    Ok(written.attempts)
}

fn open(dir: &Path) -> Store {
    let config = config::load(&dir.join("orchestrator.yaml")).expect("config");
    Store::open(&config, Options::default()).expect("store")
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// The median of `times`, which it sorts.
fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// A finished record shaped like a real one: fingerprint, commit, times,
/// run and a few outputs.
fn finished_record(i: usize, serial: u64) -> ComponentRecord {
    let at = |s: u64| Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
    let mut record = ComponentRecord::new(Status::Succeeded, RecordAction::Apply);
    record.fingerprint = Some(format!("sha256:{:064x}", i as u64 * 7919 + serial));
    record.commit = Some(format!("{:040x}", serial));
    record.started_at = Some(at(1_800_000_000 + serial));
    record.finished_at = Some(at(1_800_000_003 + serial));
    record.attempts = 1;
    record.run = Some(RunInfo {
        id: 1_800_000_000_000 + serial,
        attempt: 1,
        url: Some(format!(
            "https://github.com/acme/infra/actions/runs/{serial}"
        )),
        actor: Some("octocat".into()),
    });
    record.outputs = serde_json::json!({
        "arn": format!("arn:aws:ec2:eu-west-1:123456789012:vpc/vpc-{i:08x}"),
        "id": format!("c{i:04}"),
        "tags": {"team": "platform", "tier": "core"},
    })
    .as_object()
    .cloned()
    .unwrap();
    record
}

/// A state of [`RECORDS`] finished components, and the batches of
/// [`CHANGED_PER_WRITE`] records a run records between two writes.
fn recorder_state() -> StateFile {
    let mut state = StateFile::new(
        EnvName::parse("dev").unwrap(),
        CloudName::parse("aws").unwrap(),
    );
    let at = Timestamp::from(SystemTime::UNIX_EPOCH);
    for i in 0..RECORDS {
        let name = ComponentName::parse(&format!("c{i:04}")).unwrap();
        state.record([(name, finished_record(i, 0))], None, at);
    }
    state
}

/// Records the next [`CHANGED_PER_WRITE`] components of `state`, one batch
/// each, as the recorder does between two writes; returns their names.
fn change_some(state: &mut StateFile, write: usize) -> Vec<ComponentName> {
    (0..CHANGED_PER_WRITE)
        .map(|k| {
            let i = (write * CHANGED_PER_WRITE + k) * 37 % RECORDS;
            let name = ComponentName::parse(&format!("c{i:04}")).unwrap();
            let serial = state.serial + 1;
            let at = Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_secs(serial));
            state.record([(name.clone(), finished_record(i, serial))], None, at);
            name
        })
        .collect()
}

/// Case 3: the recorder's writes of a large local state, as it did them
/// before (the whole file rendered each time) and as it does them now.
fn recorder_writes() {
    let dir = tempfile::TempDir::new().unwrap();
    let whole = dir.path().join("whole/dev-aws.json");
    let path = dir.path().join("dev-aws.json");
    let mut state = recorder_state();
    store::write(&whole, &state).expect("first write");
    store::write(&path, &state).expect("first write");
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "the recorder's write of {RECORDS} components ({} KB) with {CHANGED_PER_WRITE} records \
         changed since the last, {RECORDER_WRITES} writes",
        size / 1024
    );

    let mut renderer = Renderer::new();
    let mut writer = Writer::new(path.clone(), state.clone(), None);
    let (mut render_whole, mut render_again) = (Vec::new(), Vec::new());
    let (mut write_whole, mut write_now) = (Vec::new(), Vec::new());
    // The first round renders every record and reads the file once; it is
    // not measured.
    for w in 0..=RECORDER_WRITES {
        let changed = change_some(&mut state, w);
        let t = Instant::now();
        let whole_bytes = black_box(store::render(&state).expect("render"));
        let took_whole = t.elapsed();
        let t = Instant::now();
        let again_bytes = if w == 0 {
            renderer.render_all(&state)
        } else {
            renderer.render(&state, &changed)
        };
        let again_bytes = black_box(again_bytes.expect("render"));
        let took_again = t.elapsed();
        assert!(again_bytes == whole_bytes, "write {w}: the renders differ");
        let t = Instant::now();
        store::write(&whole, &state).expect("write");
        let took_write_whole = t.elapsed();
        let t = Instant::now();
        writer.write(|state| change_some(state, w)).expect("write");
        let took_write_now = t.elapsed();
        if w > 0 {
            render_whole.push(took_whole);
            render_again.push(took_again);
            write_whole.push(took_write_whole);
            write_now.push(took_write_now);
        }
    }
    assert!(std::fs::read(&path).unwrap() == std::fs::read(&whole).unwrap());
    println!(
        "  render: the whole file {} / unchanged records reused {}   (median per write)",
        us(median(&mut render_whole)),
        us(median(&mut render_again))
    );
    println!(
        "  write (temporary file, fsync, rename, directory fsync): rendering the whole file {} / \
         the recorder's write now (file lock, stamp check, records reused) {}",
        us(median(&mut write_whole)),
        us(median(&mut write_now))
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    orchestrator_action::state::git::init();

    recorder_writes();
    println!();

    let dir = tempfile::TempDir::new().unwrap();
    origin(dir.path(), WRITERS);
    let job = clone(dir.path(), "single");
    let store = open(&job);
    let name = ComponentName::parse("c00").unwrap();
    write(&store, &name).expect("first write");
    let mut times: Vec<Duration> = (0..SINGLE_WRITES)
        .map(|_| {
            let t = Instant::now();
            write(&store, &name).expect("write");
            t.elapsed()
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    println!("one write (fetch, merge, commit, push) to a local bare origin, {SINGLE_WRITES} runs");
    println!(
        "  fastest {}  median {}  slowest {}   target: median ≤ 50 ms — {}",
        ms(times[0]),
        ms(median),
        ms(times[times.len() - 1]),
        if median <= Duration::from_millis(50) {
            "met"
        } else {
            "MISSED"
        }
    );

    println!("\n{WRITERS} writers at once, each in its own clone, {ROUNDS} rounds");
    let mut totals = Vec::new();
    let mut all_attempts = Vec::new();
    for round in 0..ROUNDS {
        let dir = tempfile::TempDir::new().unwrap();
        origin(dir.path(), WRITERS);
        let stores: Vec<Store> = (0..WRITERS)
            .map(|i| open(&clone(dir.path(), &format!("job{i:02}"))))
            .collect();
        let barrier = Arc::new(Barrier::new(WRITERS));
        let started = Instant::now();
        let attempts: Vec<u32> = std::thread::scope(|scope| {
            let handles: Vec<_> = stores
                .iter()
                .enumerate()
                .map(|(i, store)| {
                    let barrier = barrier.clone();
                    scope.spawn(move || {
                        barrier.wait();
                        let name = ComponentName::parse(&format!("c{i:02}")).unwrap();
                        write(store, &name).unwrap_or_else(|e| panic!("{}", e.message()))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let total = started.elapsed();
        // Every write landed: the state on origin holds all of them.
        let check = open(&clone(dir.path(), "check"));
        let target = check.target(
            &EnvName::parse("dev").unwrap(),
            &CloudName::parse("aws").unwrap(),
        );
        check.refresh(&target).expect("refresh");
        let state =
            orchestrator_action::state::store::read(&target.local, &target.env, &target.cloud)
                .expect("read")
                .expect("state");
        assert_eq!(
            state.components.len(),
            WRITERS,
            "round {round}: a write was lost"
        );
        assert_eq!(
            state.serial, WRITERS as u64,
            "round {round}: serial counts every write"
        );
        println!(
            "  round {}: {}  attempts per write: min {} / mean {:.1} / max {}",
            round + 1,
            ms(total),
            attempts.iter().min().unwrap(),
            attempts.iter().sum::<u32>() as f64 / attempts.len() as f64,
            attempts.iter().max().unwrap()
        );
        totals.push(total);
        all_attempts.extend(attempts);
    }
    totals.sort();
    let median = totals[totals.len() / 2];
    println!(
        "  median total {}  slowest {}   target: all land, median ≤ 5 s — {}",
        ms(median),
        ms(totals[totals.len() - 1]),
        if median <= Duration::from_secs(5) {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "  attempts per write over all rounds: mean {:.2}, max {}",
        all_attempts.iter().sum::<u32>() as f64 / all_attempts.len() as f64,
        all_attempts.iter().max().unwrap()
    );
}
