//! Records a run in the state files as it happens.
//!
//! Each component's start and end are applied to an in-memory copy of its
//! cloud's state at once, and a writer thread per file persists the latest
//! copy, at most once every [`WRITE_INTERVAL`]. A run of many quick
//! components therefore costs a few dozen writes, not a full rewrite with
//! fsync per event, and a crash loses at most the last interval's changes
//! (those components run again on resume). The run waits for the last write
//! before it ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::model::{ComponentRecord, RecordAction, RunInfo, StateFile, Status, Timestamp};
use super::store;
use crate::config::CloudName;
use crate::events::{Event, Subscriber};
use crate::plan::Action;

/// The shortest time between two writes of one state file.
pub const WRITE_INTERVAL: Duration = Duration::from_millis(25);

/// A subscriber that keeps the state files up to date during a run.
pub struct Recorder {
    files: HashMap<CloudName, File>,
    run: Option<RunInfo>,
    commit: Option<String>,
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
    state: StateFile,
    dirty: bool,
    closing: bool,
    /// The writer waits for a change. Only then does a change wake it: while
    /// it waits out the interval it wakes on its own, and waking it for
    /// every event would cost two context switches each.
    idle: bool,
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
        let files = files
            .into_iter()
            .map(|(cloud, path, state)| {
                let shared = Arc::new(Shared {
                    pending: Mutex::new(Pending {
                        state,
                        dirty: false,
                        closing: false,
                        idle: false,
                    }),
                    wake: Condvar::new(),
                });
                let writer = {
                    let shared = shared.clone();
                    let errors = errors.clone();
                    std::thread::spawn(move || write_loop(&path, &shared, &errors))
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
        Recorder {
            files,
            run,
            commit,
            errors,
        }
    }

    /// Waits for every pending write; returns the errors writes met.
    pub fn finish(&mut self) -> Vec<String> {
        for file in self.files.values_mut() {
            if let Ok(mut p) = file.shared.pending.lock() {
                p.closing = true;
            }
            file.shared.wake.notify_all();
            if let Some(writer) = file.writer.take() {
                let _ = writer.join();
            }
        }
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    fn change(&self, cloud: &CloudName, f: impl FnOnce(&mut StateFile)) {
        let Some(file) = self.files.get(cloud) else {
            return;
        };
        let wake = match file.shared.pending.lock() {
            Ok(mut p) => {
                f(&mut p.state);
                p.dirty = true;
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

fn write_loop(path: &std::path::Path, shared: &Shared, errors: &Mutex<Vec<String>>) {
    let mut last_write: Option<Instant> = None;
    loop {
        let snapshot = {
            let Ok(mut p) = shared.pending.lock() else {
                return;
            };
            while !p.dirty && !p.closing {
                p.idle = true;
                p = match shared.wake.wait(p) {
                    Ok(p) => p,
                    Err(_) => return,
                };
            }
            p.idle = false;
            if !p.dirty {
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
            p.dirty = false;
            p.state.clone()
        };
        last_write = Some(Instant::now());
        if let Err(e) = store::write(path, &snapshot) {
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

impl Subscriber for Recorder {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::Started { target, action, at } => {
                let run = self.run.clone();
                self.change(&target.cloud, |state| {
                    let mut record = state
                        .components
                        .get(&target.component)
                        .cloned()
                        .unwrap_or_else(|| {
                            ComponentRecord::new(Status::Running, record_action(*action))
                        });
                    record.status = Status::Running;
                    record.action = record_action(*action);
                    record.started_at = Some(Timestamp::from(*at));
                    record.finished_at = None;
                    record.attempts = 0;
                    record.error = None;
                    record.run = run.clone();
                    state.record(
                        [(target.component.clone(), record)],
                        run,
                        Timestamp::from(*at),
                    );
                });
            }
            Event::Finished(f) => {
                let run = self.run.clone();
                let commit = self.commit.clone();
                self.change(&f.target.cloud, |state| {
                    let mut record = state
                        .components
                        .get(&f.target.component)
                        .cloned()
                        .unwrap_or_else(|| ComponentRecord::new(f.status, record_action(f.action)));
                    record.status = f.status;
                    record.action = record_action(f.action);
                    record.attempts = f.attempts;
                    record.started_at = f.started_at.map(Timestamp::from).or(record.started_at);
                    record.finished_at = Some(Timestamp::from(f.finished_at));
                    record.error = f.error.clone();
                    record.run = run.clone();
                    // Only a finished action changes what is deployed: then
                    // the record takes the inputs it ran with and its outputs.
                    if matches!(f.status, Status::Succeeded | Status::Destroyed) {
                        record.fingerprint = Some(f.fingerprint.clone());
                        record.commit = commit;
                        record.outputs = f.outputs.clone();
                    }
                    state.record(
                        [(f.target.component.clone(), record)],
                        run,
                        Timestamp::from(f.finished_at),
                    );
                });
            }
            _ => {}
        }
    }
}
