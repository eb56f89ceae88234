//! The state store against real files: corrupt files are left alone, a write
//! killed at any moment never leaves a torn file, and temporary files do not
//! pile up.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use orchestrator_action::config::{CloudName, ComponentName, EnvName};
use orchestrator_action::state::store::{self, StateError};
use orchestrator_action::state::{
    ComponentRecord, HISTORY_LIMIT, RecordAction, StateFile, Status, Timestamp,
};
use serde_json::json;

/// Set to a state file path, turns `writer_loop_for_kill_test` into a writer.
const WRITER_PATH: &str = "STATE_WRITER_PATH";
/// What the writer prints once its first write is on disk.
const WRITER_READY: &str = "state-writer-ready";
/// How many components the writer records: enough for writes of ~100 KB.
const COMPONENTS: usize = 200;
/// How many times the writer is killed.
const KILLS: usize = 60;

fn dev() -> EnvName {
    EnvName::parse("dev").unwrap()
}

fn aws() -> CloudName {
    CloudName::parse("aws").unwrap()
}

fn component(i: usize) -> ComponentName {
    ComponentName::parse(&format!("component-{i:03}")).unwrap()
}

/// A succeeded record whose outputs grow with `serial`.
fn record(serial: u64) -> ComponentRecord {
    let mut record = ComponentRecord::new(Status::Succeeded, RecordAction::Apply);
    record.fingerprint = Some(format!("sha256:{serial:064x}"));
    record.attempts = 1;
    let blob = "x".repeat(100 + (serial % 400) as usize);
    record.outputs = json!({"serial": serial, "blob": blob})
        .as_object()
        .cloned()
        .unwrap();
    record
}

/// Every entry of `dir` other than `keep`, by file name.
fn others_in(dir: &Path, keep: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != keep)
        .collect();
    names.sort();
    names
}

#[test]
fn a_corrupt_file_is_refused_and_left_byte_for_byte_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dev-aws.json");
    let corrupt = b"{\n  \"schema_version\": 1,\n  \"serial\": 4\n  \"lineage\"".to_vec();
    fs::write(&file, &corrupt).unwrap();

    let err = store::update(&file, &dev(), &aws(), |state| {
        state.record(
            [(component(0), record(1))],
            None,
            Timestamp::from(UNIX_EPOCH),
        );
    })
    .unwrap_err();

    assert!(
        matches!(err, StateError::Corrupt { line: 4, .. }),
        "expected a corrupt-file error on line 4, got {err}"
    );
    assert_eq!(fs::read(&file).unwrap(), corrupt);
    assert!(others_in(dir.path(), "dev-aws.json").is_empty());
}

#[test]
fn temporary_files_do_not_pile_up_after_many_writes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dev-aws.json");
    for serial in 1..=HISTORY_LIMIT as u64 * 2 {
        let at = Timestamp::from(UNIX_EPOCH + Duration::from_secs(serial));
        store::update(&file, &dev(), &aws(), |state| {
            state.record([(component(serial as usize % 7), record(serial))], None, at);
        })
        .unwrap();
    }
    assert_eq!(others_in(dir.path(), "dev-aws.json"), Vec::<String>::new());
    let state = store::read(&file, &dev(), &aws()).unwrap().unwrap();
    assert_eq!(state.serial, HISTORY_LIMIT as u64 * 2);
}

#[test]
fn a_failed_write_removes_its_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    // A non-empty directory where the file should be: the rename fails.
    let file = dir.path().join("dev-aws.json");
    fs::create_dir_all(file.join("in-the-way")).unwrap();
    let err = store::write(&file, &StateFile::new(dev(), aws())).unwrap_err();
    assert!(matches!(err, StateError::Io { .. }), "{err}");
    assert_eq!(others_in(dir.path(), "dev-aws.json"), Vec::<String>::new());
}

/// Kills the writer when a test fails before it does.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Writer {
    /// Starts this test binary as a writer of `file` and waits for its first
    /// write to land.
    fn start(file: &Path) -> Writer {
        let exe = std::env::current_exe().unwrap();
        let child = Command::new(exe)
            .args(["--exact", "writer_loop_for_kill_test", "--nocapture"])
            .env(WRITER_PATH, file)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut writer = Writer(child);
        let stdout = writer.0.stdout.take().unwrap();
        // The test harness prints its own lines around the writer's.
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains(WRITER_READY));
        assert!(ready, "the writer exited before its first write");
        writer
    }
}

/// Not a test on its own: with `STATE_WRITER_PATH` set, updates that file
/// until killed. `a_state_file_is_never_torn_by_a_kill_mid_write` runs it.
#[test]
fn writer_loop_for_kill_test() {
    let Some(file) = std::env::var_os(WRITER_PATH).map(PathBuf::from) else {
        return;
    };
    // Resumes from what the last writer left, as a new run would.
    let mut state = store::update(&file, &dev(), &aws(), |state| {
        if state.components.is_empty() {
            let at = Timestamp::from(UNIX_EPOCH);
            state.record((0..COMPONENTS).map(|i| (component(i), record(1))), None, at);
        }
    })
    .unwrap();
    println!("{WRITER_READY}");
    // Then only writes (render, temporary file, fsync, rename), with no
    // reading back, so the kills land in the write's own steps. Bounded, so
    // a writer whose parent died does not run forever.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let next = state.serial + 1;
        let at = Timestamp::from(UNIX_EPOCH + Duration::from_secs(next));
        let changed = component(next as usize % COMPONENTS);
        state.record([(changed, record(next))], None, at);
        store::write(&file, &state).unwrap();
    }
}

#[test]
fn a_state_file_is_never_torn_by_a_kill_mid_write() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let file = state_dir.join("dev-aws.json");
    let started = Instant::now();
    let mut last_serial = 0;
    let mut smallest = usize::MAX;

    for kill in 0..KILLS {
        assert!(
            kill > 0 || !file.exists(),
            "nothing writes before the first writer"
        );
        let mut writer = Writer::start(&file);
        // One write of a ~100 KB file takes ~10 ms in a debug build; a
        // window spanning two of them lands kills in every step of it.
        std::thread::sleep(Duration::from_micros(fastrand::u64(0..=20_000)));
        writer.0.kill().unwrap();
        writer.0.wait().unwrap();

        let bytes = fs::read(&file).unwrap();
        smallest = smallest.min(bytes.len());
        let state = match store::read(&file, &dev(), &aws()) {
            Ok(Some(state)) => state,
            Ok(None) => panic!("kill {kill}: the state file disappeared"),
            Err(e) => panic!("kill {kill}: torn state file ({} bytes): {e}", bytes.len()),
        };
        assert!(
            bytes.ends_with(b"}\n"),
            "kill {kill}: the file is cut short"
        );
        assert_eq!(state.components.len(), COMPONENTS, "kill {kill}");
        assert!(state.history.len() <= HISTORY_LIMIT, "kill {kill}");
        assert!(
            state.serial >= last_serial,
            "kill {kill}: serial went back from {last_serial} to {}",
            state.serial
        );
        last_serial = state.serial;
    }

    // A kill between creating the temporary file and renaming it leaves the
    // temporary file behind; it must be recognisable as such.
    let leftovers = others_in(&state_dir, "dev-aws.json");
    for name in &leftovers {
        assert!(
            name.starts_with(".dev-aws.json.") && name.ends_with(".tmp"),
            "unexpected file in the state directory: {name}"
        );
    }
    assert!(
        smallest > 10_000,
        "writes should be tens of KB, got {smallest} bytes"
    );
    eprintln!(
        "{KILLS} kills in {:.1?}: {} mid-write, serial reached {last_serial}, files of {smallest}+ bytes",
        started.elapsed(),
        leftovers.len()
    );
}
