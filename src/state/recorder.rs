//! Records a run in the state files as it happens.
//!
//! Each component's start and end are queued for a writer thread per file,
//! which owns that cloud's state: it applies what was queued and persists
//! the result, at most once every [`WRITE_INTERVAL`]. A run of many quick
//! components therefore costs a few dozen writes, not a full rewrite with
//! fsync per event, and a crash loses at most the last interval's changes
//! (those components run again on resume). The run waits for the last write
//! before it ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::model::{ComponentRecord, RecordAction, RunInfo, StateFile, Status, Timestamp};
use super::store;
use crate::config::{CloudName, ComponentName};
use crate::events::{Event, Subscriber};
use crate::plan::Action;

/// The shortest time between two writes of one state file.
pub const WRITE_INTERVAL: Duration = Duration::from_millis(25);

/// A subscriber that keeps the state files up to date during a run.
pub struct Recorder {
    files: HashMap<CloudName, File>,
    errors: Arc<Mutex<Vec<String>>>,
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
}

impl Recorder {
    /// A recorder for the given state files, each with its current content
    /// (or a new state). `commit` is the git commit being deployed.
    pub fn new(
        files: Vec<(CloudName, PathBuf, StateFile)>,
        run: Option<RunInfo>,
        commit: Option<String>,
    ) -> Recorder {
        let errors = Arc::new(Mutex::new(Vec::new()));
        let run = Arc::new(Run { info: run, commit });
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
                let writer = {
                    let shared = shared.clone();
                    let errors = errors.clone();
                    let run = run.clone();
                    std::thread::spawn(move || write_loop(&path, state, &run, &shared, &errors))
                };
                (
                    cloud,
                    File {
                        shared,
                        writer: Some(writer),
                    },
                )
            })
            .collect();
        Recorder { files, errors }
    }

    /// Waits for every pending write; returns the errors writes met.
    pub fn finish(&mut self) -> Vec<String> {
        self.close();
        for file in self.files.values_mut() {
            if let Some(writer) = file.writer.take() {
                let _ = writer.join();
            }
        }
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
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
    path: &std::path::Path,
    mut state: StateFile,
    run: &Run,
    shared: &Shared,
    errors: &Mutex<Vec<String>>,
) {
    let mut last_write: Option<Instant> = None;
    loop {
        let changes = {
            let Ok(mut p) = shared.pending.lock() else {
                return;
            };
            while p.changes.is_empty() && !p.closing {
                p.idle = true;
                p = match shared.wake.wait(p) {
                    Ok(p) => p,
                    Err(_) => return,
                };
            }
            p.idle = false;
            if p.changes.is_empty() {
                return; // closing, and everything is written
            }
            // Let changes gather until the interval since the last write is
            // over, unless the run is ending.
            let due = last_write.map(|t| t + WRITE_INTERVAL);
            while let Some(wait) = due.and_then(|d| d.checked_duration_since(Instant::now())) {
                if p.closing {
                    break;
                }
                p = match shared.wake.wait_timeout(p, wait) {
                    Ok((p, _)) => p,
                    Err(_) => return,
                };
            }
            std::mem::take(&mut p.changes)
        };
        for change in changes {
            apply(&mut state, change, run);
        }
        last_write = Some(Instant::now());
        if let Err(e) = store::write(path, &state) {
            if let Ok(mut errors) = errors.lock() {
                errors.push(e.to_string());
            }
        }
    }
}

fn record_action(action: Action) -> RecordAction {
    match action {
        Action::Destroy => RecordAction::Destroy,
        _ => RecordAction::Apply,
    }
}

/// Records one change in `state`, bumping its serial.
fn apply(state: &mut StateFile, change: Change, run: &Run) {
    let (component, record, at) = match change {
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
            (component, record, at)
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
            (component, record, finished_at)
        }
    };
    state.record([(component, record)], run.info.clone(), Timestamp::from(at));
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
        assert!(recorder.finish().is_empty());

        let state = store::read(&path, &env, &cloud).unwrap().unwrap();
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
}
