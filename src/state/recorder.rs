//! Records a run in the state files as it happens.
//!
//! Each component's start and end are queued for a writer thread per file,
//! which applies what was queued and persists the result, at most once
//! every [`WRITE_INTERVAL`]. A run of many quick components therefore costs
//! a few dozen writes, not a full rewrite with fsync per event, and a crash
//! loses at most the last interval's changes (those components run again on
//! resume). The interval grows with the time a write takes, so that writing
//! never takes more than about a twentieth of the run ([`WRITE_SHARE`]): a
//! state of a thousand records, or a slow disk, is written less often, down
//! to once every [`MAX_WRITE_INTERVAL`]. Each change still gets a serial
//! and a history entry of its own, however many go out in one write. The
//! run waits for the last write before it ends.
//!
//! The writes go through a [`Writer`], so the file can be shared: each
//! takes the file lock (in local mode) and carries this run's records into
//! whatever other processes wrote since, and only the records that changed
//! are serialized again. In local mode the last write of each file also
//! gives back the run's lock claim, with the history entry [`super::publish`]
//! would write for it, which leaves the publisher nothing to read or write
//! at the end.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::lock::{self, Holder};
use super::model::{ComponentRecord, RecordAction, RunInfo, StateFile, Status, Timestamp};
use super::store::{Durability, StateError};
use super::writer::Writer;
use crate::config::{CloudName, ComponentName};
use crate::events::{Event, Subscriber};
use crate::plan::Action;

/// The shortest time between two writes of one state file.
pub const WRITE_INTERVAL: Duration = Duration::from_millis(25);

/// The longest time between two writes of one state file while changes
/// wait, however long the last write took.
pub const MAX_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// The interval is at least this many times as long as the last write took.
pub const WRITE_SHARE: u32 = 20;

/// How much nicer than the rest of the process a state writer thread is
/// (Linux niceness): its share of a busy CPU is about a third of the
/// engine's, so its rewrites take less time from the components and the
/// engine, and still go on.
const WRITER_NICENESS: libc::c_int = 5;

/// When the next write may start, after one that started at `started` and
/// took `took`.
fn next_write(started: Instant, took: Duration) -> Instant {
    started
        + took
            .saturating_mul(WRITE_SHARE)
            .clamp(WRITE_INTERVAL, MAX_WRITE_INTERVAL)
}

/// A subscriber that keeps the state files up to date during a run.
pub struct Recorder {
    files: HashMap<CloudName, File>,
    outcome: Arc<Mutex<Outcome>>,
}

/// What the writes of a run came to.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The files some of whose writes failed, by cloud.
    pub failures: Vec<Failures>,
    /// The clouds whose last write gave back the run's lock claim (or found
    /// it gone already).
    pub released: Vec<CloudName>,
    /// Each cloud's state as the run left it, written or not: what the
    /// publisher merges from, rather than a file another process in the
    /// same checkout may have rewritten since.
    pub states: HashMap<CloudName, StateFile>,
}

/// The writes of one state file that failed during a run. A failed write's
/// changes wait in memory and go out with the next write, so only a failed
/// last write leaves the file short of what the run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failures {
    /// Whose file it is.
    pub cloud: CloudName,
    /// How many writes failed.
    pub count: u32,
    /// Why the last of them did, naming the file.
    pub last: String,
    /// Whether the file's last write was one of them: it then lacks the
    /// run's latest records (or, when only the final sync failed, may lack
    /// them after a power cut).
    pub lasting: bool,
}

struct File {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

struct Pending {
    /// Changes the writer has not applied yet, in the order they happened.
    changes: Vec<Change>,
    closing: bool,
    /// The writer waits for a change. Only then does a change wake it: while
    /// it waits out the interval it wakes on its own, and waking it for
    /// every event would cost two context switches each.
    idle: bool,
}

/// What happened to one component, as the state records it.
enum Change {
    Started {
        component: ComponentName,
        action: Action,
        at: SystemTime,
    },
    Finished {
        component: ComponentName,
        action: Action,
        status: Status,
        attempts: u32,
        started_at: Option<SystemTime>,
        finished_at: SystemTime,
        error: Option<String>,
        fingerprint: String,
        outputs: serde_json::Map<String, serde_json::Value>,
    },
}

/// What every change of a run records besides its own fields.
struct Run {
    info: Option<RunInfo>,
    commit: Option<String>,
    /// The lock claim each file's last write gives back.
    release: Option<Holder>,
}

/// Where the run keeps its state, as far as the recorder is concerned.
pub enum Keeping {
    /// In the working tree only. Every write takes the file lock, as the
    /// store's local transactions do, and each file's last write gives
    /// back `release`, the run's lock claim.
    Local {
        /// The run's lock claim.
        release: Option<Holder>,
    },
    /// On a git branch too: the store writes the local copy without the
    /// file lock and the publisher releases the run's claim, so the
    /// recorder does neither.
    Git,
}

impl Recorder {
    /// A recorder for the given state files, each with its content as the
    /// run read it (or a new state). `commit` is the git commit being
    /// deployed.
    pub fn new(
        files: Vec<(CloudName, PathBuf, StateFile)>,
        run: Option<RunInfo>,
        commit: Option<String>,
        keeping: Keeping,
    ) -> Recorder {
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let (release, locking) = match keeping {
            Keeping::Local { release } => (release, true),
            Keeping::Git => (None, false),
        };
        let run = Arc::new(Run {
            info: run,
            commit,
            release,
        });
        let files = files
            .into_iter()
            .map(|(cloud, path, state)| {
                let shared = Arc::new(Shared {
                    pending: Mutex::new(Pending {
                        changes: Vec::new(),
                        closing: false,
                        idle: false,
                    }),
                    wake: Condvar::new(),
                });
                let thread = {
                    let writer = Writer::new(path, state, run.info.clone());
                    let writer = if locking { writer } else { writer.unlocked() };
                    let (cloud, shared, outcome, run) =
                        (cloud.clone(), shared.clone(), outcome.clone(), run.clone());
                    std::thread::Builder::new()
                        .name("state-writer".into())
                        .spawn(move || {
                            // Rewrites give way to the engine and the
                            // components on a busy machine, and still get
                            // a share of it: they are never starved.
                            // SAFETY: no memory is involved; on Linux the
                            // call changes this thread's niceness only.
                            unsafe { libc::nice(WRITER_NICENESS) };
                            let mut writer = writer;
                            write_loop(&mut writer, &cloud, &run, &shared, &outcome);
                            if let Ok(mut outcome) = outcome.lock() {
                                outcome.states.insert(cloud, writer.into_state());
                            }
                        })
                        // As `thread::spawn` does: a run that cannot keep its
                        // state must not start.
                        .expect("failed to start the state writer thread")
                };
                (
                    cloud,
                    File {
                        shared,
                        writer: Some(thread),
                    },
                )
            })
            .collect();
        Recorder { files, outcome }
    }

    /// Waits for every pending write; returns what the writes came to,
    /// once: a later call returns an empty outcome.
    pub fn finish(&mut self) -> Outcome {
        self.close();
        for file in self.files.values_mut() {
            if let Some(writer) = file.writer.take() {
                let _ = writer.join();
            }
        }
        // Taken, not copied: it holds the whole state of every file.
        self.outcome
            .lock()
            .map(|mut o| std::mem::take(&mut *o))
            .unwrap_or_default()
    }

    /// Tells the writers that nothing more will come: each writes what it
    /// holds at once, without waiting out the interval, and stops.
    fn close(&self) {
        for file in self.files.values() {
            if let Ok(mut p) = file.shared.pending.lock() {
                p.closing = true;
            }
            file.shared.wake.notify_all();
        }
    }

    fn queue(&self, cloud: &CloudName, change: Change) {
        let Some(file) = self.files.get(cloud) else {
            return;
        };
        let wake = match file.shared.pending.lock() {
            Ok(mut p) => {
                p.changes.push(change);
                std::mem::take(&mut p.idle)
            }
            Err(_) => false,
        };
        if wake {
            file.shared.wake.notify_all();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish();
    }
}

fn write_loop(
    writer: &mut Writer,
    cloud: &CloudName,
    run: &Run,
    shared: &Shared,
    outcome: &Mutex<Outcome>,
) {
    let mut release = run.release.as_ref();
    let mut due: Option<Instant> = None;
    let mut failed: Option<Failures> = None;
    loop {
        let Some((changes, closing)) = next_batch(shared, due) else {
            break;
        };
        // The claim goes with the first write after the run ends, with
        // changes or without; when that write fails, the publisher
        // releases it.
        let release = if closing { release.take() } else { None };
        if changes.is_empty() && release.is_none() {
            // Closing, and everything is written: the last write is made
            // as durable as a single one would be. (After a failed write
            // this syncs an older one, which makes nothing good.)
            if let Err(e) = writer.sync() {
                note(&mut failed, cloud, Err(e));
            }
            break;
        }
        let started = Instant::now();
        // Writes while the run goes on leave the directory unsynced: a
        // power cut finds the version before, whole, and the run's last
        // write syncs it.
        let durability = if closing {
            Durability::Full
        } else {
            Durability::Contents
        };
        let written = writer.write_with(durability, |state| record(state, changes, run, release));
        due = Some(next_write(started, started.elapsed()));
        if written.is_ok() && release.is_some() {
            if let Ok(mut outcome) = outcome.lock() {
                outcome.released.push(cloud.clone());
            }
        }
        note(&mut failed, cloud, written);
    }
    if let (Some(failed), Ok(mut outcome)) = (failed, outcome.lock()) {
        outcome.failures.push(failed);
    }
}

/// Counts a write (or sync) that failed into `failed`; one that landed
/// makes good those before it.
fn note(failed: &mut Option<Failures>, cloud: &CloudName, result: Result<(), StateError>) {
    match (result, failed.as_mut()) {
        (Ok(()), Some(f)) => f.lasting = false,
        (Ok(()), None) => {}
        (Err(e), Some(f)) => {
            f.count += 1;
            f.last = e.to_string();
            f.lasting = true;
        }
        (Err(e), None) => {
            *failed = Some(Failures {
                cloud: cloud.clone(),
                count: 1,
                last: e.to_string(),
                lasting: true,
            })
        }
    }
}

/// Waits for changes and takes them, once `due` has come or the run is
/// ending; says whether it is. `None` when the recorder is gone.
fn next_batch(shared: &Shared, due: Option<Instant>) -> Option<(Vec<Change>, bool)> {
    let mut p = shared.pending.lock().ok()?;
    while p.changes.is_empty() && !p.closing {
        p.idle = true;
        p = shared.wake.wait(p).ok()?;
    }
    p.idle = false;
    // Let changes gather until the next write is due, unless the run is
    // ending.
    while let Some(wait) = due.and_then(|d| d.checked_duration_since(Instant::now())) {
        if p.closing {
            break;
        }
        p = shared.wake.wait_timeout(p, wait).ok()?.0;
    }
    Some((std::mem::take(&mut p.changes), p.closing))
}

/// Records `changes` in `state`, a serial each, then takes `release`'s
/// claim out of the lock, in a serial of its own. Returns the components
/// recorded.
///
/// The release does not share the serial of the last change: whether that
/// change is still waiting when the run ends depends on timing, and the
/// history of one run should not.
fn record(
    state: &mut StateFile,
    changes: Vec<Change>,
    run: &Run,
    release: Option<&Holder>,
) -> Vec<ComponentName> {
    let mut names = Vec::with_capacity(changes.len());
    for change in changes {
        let (name, record, at) = next_record(state, change, run);
        state.record([(name.clone(), record)], run.info.clone(), at);
        names.push(name);
    }
    if let Some(note) = release.and_then(|holder| lock::release_noted(&mut state.lock, holder)) {
        let now = Timestamp::from(SystemTime::now());
        state.bump(BTreeMap::new(), run.info.clone(), now, Some(note));
    }
    names
}

fn record_action(action: Action) -> RecordAction {
    match action {
        Action::Destroy => RecordAction::Destroy,
        _ => RecordAction::Apply,
    }
}

/// The record `change` makes of its component's record in `state`, taken
/// out of it, and when the change happened.
fn next_record(
    state: &mut StateFile,
    change: Change,
    run: &Run,
) -> (ComponentName, ComponentRecord, Timestamp) {
    match change {
        Change::Started {
            component,
            action,
            at,
        } => {
            let mut record = state
                .components
                .remove(&component)
                .unwrap_or_else(|| ComponentRecord::new(Status::Running, record_action(action)));
            record.status = Status::Running;
            record.action = record_action(action);
            record.started_at = Some(Timestamp::from(at));
            record.finished_at = None;
            record.attempts = 0;
            record.error = None;
            record.run = run.info.clone();
            (component, record, Timestamp::from(at))
        }
        Change::Finished {
            component,
            action,
            status,
            attempts,
            started_at,
            finished_at,
            error,
            fingerprint,
            outputs,
        } => {
            let mut record = state
                .components
                .remove(&component)
                .unwrap_or_else(|| ComponentRecord::new(status, record_action(action)));
            record.status = status;
            record.action = record_action(action);
            record.attempts = attempts;
            record.started_at = started_at.map(Timestamp::from).or(record.started_at);
            record.finished_at = Some(Timestamp::from(finished_at));
            record.error = error;
            record.run = run.info.clone();
            // Only a finished action changes what is deployed: then the
            // record takes the inputs it ran with and its outputs.
            if matches!(status, Status::Succeeded | Status::Destroyed) {
                record.fingerprint = Some(fingerprint);
                record.commit = run.commit.clone();
                record.outputs = outputs;
            }
            (component, record, Timestamp::from(finished_at))
        }
    }
}

impl Subscriber for Recorder {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::Started { target, action, at } => self.queue(
                &target.cloud,
                Change::Started {
                    component: target.component.clone(),
                    action: *action,
                    at: *at,
                },
            ),
            Event::Finished(f) => self.queue(
                &f.target.cloud,
                Change::Finished {
                    component: f.target.component.clone(),
                    action: f.action,
                    status: f.status,
                    attempts: f.attempts,
                    started_at: f.started_at,
                    finished_at: f.finished_at,
                    error: f.error.clone(),
                    fingerprint: f.fingerprint.clone(),
                    outputs: f.outputs.clone(),
                },
            ),
            // The last write starts now, while the run winds down.
            Event::RunFinished { .. } => self.close(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnvName;
    use crate::events::{Finished, RunResult, Target};

    #[test]
    fn writes_are_spaced_by_twenty_times_what_the_last_took_within_bounds() {
        let t = Instant::now();
        let after = |took_ms| next_write(t, Duration::from_millis(took_ms)) - t;
        // A quick write of a small state: the shortest interval.
        assert_eq!(after(0), WRITE_INTERVAL);
        assert_eq!(after(1), WRITE_INTERVAL);
        // A state of a thousand records takes a few milliseconds.
        assert_eq!(after(4), Duration::from_millis(80));
        // A stalled disk: changes still go out once a second.
        assert_eq!(after(300), MAX_WRITE_INTERVAL);
    }

    #[test]
    fn starts_and_ends_are_written_in_order_with_a_serial_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev-aws.json");
        let (env, cloud) = (
            EnvName::parse("dev").unwrap(),
            CloudName::parse("aws").unwrap(),
        );
        let run = RunInfo {
            id: 7,
            attempt: 1,
            url: None,
            actor: None,
        };
        let mut recorder = Recorder::new(
            vec![(
                cloud.clone(),
                path.clone(),
                StateFile::new(env.clone(), cloud.clone()),
            )],
            Some(run.clone()),
            Some("abc123".to_string()),
            Keeping::Local { release: None },
        );
        let target = |name: &str| Target {
            cloud: cloud.clone(),
            component: ComponentName::parse(name).unwrap(),
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let finished = |name: &str, status: Status, error: Option<&str>| {
            Event::Finished(Box::new(Finished {
                target: target(name),
                action: Action::Create,
                status,
                attempts: 1,
                started_at: Some(at),
                finished_at: at + Duration::from_secs(3),
                error: error.map(str::to_string),
                fingerprint: format!("sha256:{name}"),
                outputs: serde_json::Map::from_iter([("id".to_string(), name.into())]),
                tail: Vec::new(),
            }))
        };
        for event in [
            Event::Started {
                target: target("net"),
                action: Action::Create,
                at,
            },
            Event::Started {
                target: target("dns"),
                action: Action::Create,
                at,
            },
            finished("net", Status::Succeeded, None),
            finished("dns", Status::Failed, Some("exited with code 1")),
            Event::RunFinished {
                result: RunResult::Failed,
            },
        ] {
            recorder.on_event(&event);
        }
        assert!(recorder.finish().failures.is_empty());

        let state = crate::state::store::read(&path, &env, &cloud)
            .unwrap()
            .unwrap();
        assert_eq!(state.serial, 4);
        let statuses: Vec<(u64, Vec<String>)> = state
            .history
            .iter()
            .map(|h| {
                let changes = h
                    .changes
                    .iter()
                    .map(|(c, s)| format!("{c} {}", s.as_str()))
                    .collect();
                (h.serial, changes)
            })
            .collect();
        assert_eq!(
            statuses,
            [
                (1, vec!["net running".to_string()]),
                (2, vec!["dns running".to_string()]),
                (3, vec!["net succeeded".to_string()]),
                (4, vec!["dns failed".to_string()]),
            ]
        );
        let net = &state.components[&ComponentName::parse("net").unwrap()];
        assert_eq!(net.fingerprint.as_deref(), Some("sha256:net"));
        assert_eq!(net.commit.as_deref(), Some("abc123"));
        assert_eq!(net.outputs["id"], "net");
        assert_eq!(net.run, Some(run));
        let dns = &state.components[&ComponentName::parse("dns").unwrap()];
        assert_eq!(dns.error.as_deref(), Some("exited with code 1"));
        assert_eq!(dns.fingerprint, None, "a failure records no new inputs");
        assert!(dns.outputs.is_empty());
    }

    fn holder(run: u64) -> Holder {
        let now = Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        Holder {
            actor: None,
            attempt: 1,
            components: None,
            expires_at: now,
            host: None,
            pid: None,
            run,
            started_at: now,
            url: None,
        }
    }

    /// A state file whose lock holds a claim of each of `runs`, and a
    /// recorder of it that gives back the claim of run 42.
    fn locked_by(dir: &std::path::Path, runs: &[u64]) -> (PathBuf, Recorder) {
        let path = dir.join("dev-aws.json");
        let aws = CloudName::parse("aws").unwrap();
        let mut state = StateFile::new(EnvName::parse("dev").unwrap(), aws.clone());
        state.lock = Some(crate::state::Lock {
            holders: runs.iter().map(|&run| holder(run)).collect(),
        });
        crate::state::store::write(&path, &state).unwrap();
        let files = vec![(aws, path.clone(), state)];
        let keeping = Keeping::Local {
            release: Some(holder(42)),
        };
        (path.clone(), Recorder::new(files, None, None, keeping))
    }

    fn read(path: &std::path::Path) -> StateFile {
        crate::state::store::parse(path, &std::fs::read(path).unwrap()).unwrap()
    }

    /// The niceness of a thread of this process, from its `stat` in `/proc`.
    fn niceness(stat: &std::path::Path) -> Option<i32> {
        let text = std::fs::read_to_string(stat).ok()?;
        // The fields after the name in parentheses start with the third.
        text.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(19 - 3)?
            .parse()
            .ok()
    }

    #[test]
    fn state_writers_run_nicer_than_the_rest_of_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut recorder) = locked_by(dir.path(), &[42]);
        let own = niceness(std::path::Path::new("/proc/thread-self/stat")).unwrap();
        let expected = (own + WRITER_NICENESS).min(19);
        // Other tests' writers may be starting too: each sets its niceness
        // a moment after it is named, so look until all of them have.
        let writers = || -> Vec<i32> {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(Result::ok)
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "state-writer")
                })
                .filter_map(|t| niceness(&t.path().join("stat")))
                .collect()
        };
        let mut seen = writers();
        for _ in 0..200 {
            if !seen.is_empty() && seen.iter().all(|&n| n == expected) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            seen = writers();
        }
        recorder.finish();
        assert!(!seen.is_empty(), "no state writer thread");
        assert!(
            seen.iter().all(|&n| n == expected),
            "writers at {seen:?}, expected {expected} (the test thread is at {own})"
        );
    }

    #[test]
    fn the_last_write_gives_back_the_claim_after_the_last_change() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut recorder) = locked_by(dir.path(), &[41, 42]);
        let aws = CloudName::parse("aws").unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        recorder.on_event(&Event::Started {
            target: Target {
                cloud: aws.clone(),
                component: ComponentName::parse("net").unwrap(),
            },
            action: Action::Create,
            at,
        });
        recorder.on_event(&Event::RunFinished {
            result: RunResult::Succeeded,
        });
        let outcome = recorder.finish();
        assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
        assert_eq!(outcome.released, [aws]);

        let state = read(&path);
        assert_eq!(state.serial, 2, "the start, then the release");
        assert_eq!(state.history[0].note, None);
        let entry = &state.history[1];
        assert_eq!(entry.note.as_deref(), Some("lock released by run 42"));
        assert!(entry.changes.is_empty());
        assert_eq!(entry.run, None, "the run the recorder was given");
        let holders = &state.lock.as_ref().unwrap().holders;
        assert_eq!(holders.len(), 1);
        assert_eq!(holders[0].run, 41, "another run's claim stays");
    }

    #[test]
    fn a_release_with_nothing_else_to_record_is_written_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut recorder) = locked_by(dir.path(), &[42]);
        let outcome = recorder.finish();
        assert_eq!(outcome.released, [CloudName::parse("aws").unwrap()]);
        let state = read(&path);
        assert_eq!(state.lock, None);
        assert_eq!(state.serial, 1);
        assert!(state.history[0].changes.is_empty());
        assert_eq!(
            state.history[0].note.as_deref(),
            Some("lock released by run 42")
        );
    }
}
