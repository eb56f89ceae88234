//! Publishes a run's records to the shared state while it runs: takes the
//! lock before, pushes after components finish (at most once every
//! [`PUSH_INTERVAL`], renewing the lock as it goes), and merges the final
//! records and releases the lock at the end, whatever the outcome.
//!
//! The [`super::recorder::Recorder`] keeps the local copy; this reads the
//! records of the components the run touched from it and merges them into
//! the branch's newest state, so the records of other jobs writing the same
//! environment are kept, and a record another job wrote later wins.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::lock::{self, Acquired, Holder, RENEW_INTERVAL};
use super::merge::{self, Ties};
use super::model::{RunInfo, StateFile, Status, Timestamp};
use super::recorder::Outcome;
use super::store;
use super::sync::{Refusal, Store, StoreError, Target, Written};
use crate::config::{CloudName, ComponentName};
use crate::events::{Event, Subscriber};
use crate::exec::runner::{self, Process};

/// The shortest time between two pushes of one run while it runs.
pub const PUSH_INTERVAL: Duration = Duration::from_secs(2);

/// How many components a commit message names before it says "and N more".
const NAMED_IN_MESSAGE: usize = 6;

/// A commit message: `state(dev-aws): clusters succeeded, addons failed [skip ci]`.
pub fn message(label: &str, changes: &BTreeMap<ComponentName, Status>, notes: &[String]) -> String {
    let mut parts: Vec<String> = changes
        .iter()
        .take(NAMED_IN_MESSAGE)
        .map(|(name, status)| format!("{name} {status}"))
        .collect();
    if changes.len() > NAMED_IN_MESSAGE {
        parts.push(format!("and {} more", changes.len() - NAMED_IN_MESSAGE));
    }
    let mut text = format!("state({label}): {}", parts.join(", "));
    for (i, note) in notes.iter().enumerate() {
        text.push_str(if i == 0 && parts.is_empty() { "" } else { "; " });
        text.push_str(note);
    }
    text.push_str(" [skip ci]");
    text
}

/// This run's claim on the lock, before it is dated.
#[derive(Debug, Clone)]
pub struct Claim {
    /// This invocation's own id, unique even among the jobs of one CI run
    /// (which share the CI run's id): it tells claims apart.
    pub id: u64,
    /// The CI run (or local run) recorded with each write.
    pub run: RunInfo,
    /// The machine.
    pub host: Option<String>,
    /// The components held; `None` for the whole environment and cloud.
    pub components: Option<Vec<ComponentName>>,
    /// How long the claim holds unless renewed: [`lock::LOCK_TTL`] when the state
    /// is shared (the run renews it as it pushes), [`LOCAL_TTL`] when it is
    /// local (nothing renews it while the run goes).
    pub ttl: Duration,
}

/// How long a local run's claim holds. Only a run killed outright leaves it
/// behind; `state unlock --force` frees it sooner.
pub const LOCAL_TTL: Duration = Duration::from_secs(24 * 60 * 60);

impl Claim {
    /// The holder record for this claim at `now`.
    pub fn holder(&self, now: SystemTime) -> Holder {
        Holder {
            actor: self.run.actor.clone(),
            attempt: self.run.attempt,
            components: self.components.clone(),
            expires_at: Timestamp::from(now + self.ttl),
            host: self.host.clone(),
            pid: Some(std::process::id()),
            run: self.id,
            url: self.run.url.clone(),
            started_at: Timestamp::from(now),
        }
    }
}

/// Takes the lock on `target` for `claim`, merging into the branch any
/// records the local copy has that the branch lacks, in the same write.
/// Waits up to `wait` for a conflicting claim to go, calling `waiting` once
/// with the holder when it starts waiting, and `pause` for each wait
/// between attempts, which returns false to stop waiting (the run was
/// cancelled): the refusal is then returned. Returns the notes about
/// lapsed claims that were taken over.
pub fn take_lock(
    store: &Store,
    target: &Target,
    claim: &Claim,
    wait: Duration,
    mut waiting: impl FnMut(&Refusal),
    mut pause: impl FnMut(Duration) -> bool,
) -> Result<Vec<String>, StoreError> {
    let deadline = Instant::now() + wait;
    // Records the local copy has and the branch lacks go in with the lock.
    // In local mode the local copy is the state itself: nothing to bring.
    let local = if store.is_shared() {
        store::read(&target.local, &target.env, &target.cloud)?
    } else {
        None
    };
    let mut told = false;
    loop {
        let mut notes = Vec::new();
        let result = store.transact(target, true, |state| {
            notes.clear();
            let now = SystemTime::now();
            let changes = match &local {
                Some(local) => {
                    let names: Vec<ComponentName> = local.components.keys().cloned().collect();
                    merge::records(state, local, &names, Ties::Theirs)
                }
                None => BTreeMap::new(),
            };
            // What each run killed here left running, looked for once: it
            // decides whether its claim stands, and the refusal names it.
            let left: RefCell<HashMap<u64, Vec<Process>>> = RefCell::default();
            let left_by = |h: &Holder| {
                if !gone_here(h, claim.host.as_deref()) {
                    return Vec::new();
                }
                left.borrow_mut()
                    .entry(h.run)
                    .or_insert_with(|| runner::processes_of_run(h.run))
                    .clone()
            };
            let gone = |h: &Holder| gone_here(h, claim.host.as_deref()) && left_by(h).is_empty();
            match lock::acquire(
                &mut state.lock,
                claim.holder(now),
                Timestamp::from(now),
                &gone,
            ) {
                Acquired::Held(holder) => {
                    let processes = left_by(&holder);
                    let holder = Box::new(holder);
                    Err(if processes.is_empty() {
                        Refusal::LockHeld(holder)
                    } else {
                        Refusal::LeftRunning { holder, processes }
                    })
                }
                Acquired::Taken { taken_over } => {
                    for old in &taken_over {
                        notes.push(format!(
                            "took over the lapsed lock of run {} ({} on {}, until {})",
                            old.run,
                            old.actor.as_deref().unwrap_or("unknown actor"),
                            old.host.as_deref().unwrap_or("an unknown host"),
                            old.expires_at
                        ));
                    }
                    let mut said = vec![format!("lock taken by run {}", claim.id)];
                    said.extend(notes.iter().cloned());
                    let note = Some(said.join("; "));
                    state.bump(
                        changes.clone(),
                        Some(claim.run.clone()),
                        Timestamp::from(now),
                        note,
                    );
                    Ok(Some(message(&target.label(), &changes, &said)))
                }
            }
        });
        match result {
            Ok(_) => return Ok(notes),
            Err(StoreError::Refused(
                refusal @ (Refusal::LockHeld(_) | Refusal::LeftRunning { .. }),
            )) if Instant::now() < deadline => {
                if !told {
                    waiting(&refusal);
                    told = true;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if !pause(left.min(Duration::from_secs(2))) {
                    return Err(StoreError::Refused(refusal));
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether `holder` is a run on this machine that ended: its process is
/// gone (killed, or its lock left behind by a push that failed), and so is
/// every process it started.
fn ended_here(holder: &Holder, host: Option<&str>) -> bool {
    gone_here(holder, host) && runner::processes_of_run(holder.run).is_empty()
}

/// Whether `holder` is a run on this machine whose own process is gone.
fn gone_here(holder: &Holder, host: Option<&str>) -> bool {
    let (Some(pid), Some(theirs), Some(ours)) = (holder.pid, holder.host.as_deref(), host) else {
        return false;
    };
    theirs == ours && pid != std::process::id() && runner::process_gone(pid)
}

/// Pushes the records the local copy has and the branch lacks (left by a
/// run whose last push failed), and drops that run's lock if its process
/// on this machine is gone. Nothing is written when there is nothing to do.
pub fn push_unpushed(
    store: &Store,
    target: &Target,
    run: &RunInfo,
    host: Option<&str>,
) -> Result<Written, StoreError> {
    let Some(local) = store::read(&target.local, &target.env, &target.cloud)? else {
        return store.transact(target, true, |_| Ok(None));
    };
    let names: Vec<ComponentName> = local.components.keys().cloned().collect();
    store.transact(target, true, |state| {
        let changes = merge::records(state, &local, &names, Ties::Theirs);
        let gone = lock::remove_gone(&mut state.lock, &|h| ended_here(h, host));
        if changes.is_empty() && gone.is_empty() {
            return Ok(None);
        }
        let mut notes = vec!["records of an earlier run that could not push them".to_string()];
        for h in &gone {
            notes.push(format!(
                "dropped the lock of run {}, which ended on {}",
                h.run,
                h.host.as_deref().unwrap_or("this host")
            ));
        }
        let now = Timestamp::from(SystemTime::now());
        state.bump(
            changes.clone(),
            Some(run.clone()),
            now,
            Some(notes.join("; ")),
        );
        Ok(Some(message(&target.label(), &changes, &notes)))
    })
}

/// Merges the records of `touched` from the local copy into the newest
/// state, renews or releases this run's claim, and writes it when anything
/// changed (or `renew` asks for a renewal regardless).
fn publish(
    store: &Store,
    target: &Target,
    claim: &Claim,
    touched: &BTreeSet<ComponentName>,
    ending: bool,
    renew: bool,
    recorded: Option<&StateFile>,
) -> Result<Written, StoreError> {
    let read;
    let ours = match recorded {
        Some(state) => state,
        None => {
            read = store::read(&target.local, &target.env, &target.cloud)?
                .unwrap_or_else(|| StateFile::new(target.env.clone(), target.cloud.clone()));
            &read
        }
    };
    store.transact(target, ending, |state| {
        // A file replaced by another state since the run read it (copied
        // over, or started anew by hand) is not this run's to merge into,
        // as the recorder's writer already refused; a fresh one is.
        if state.lineage != ours.lineage && state.serial > 0 {
            return Err(Refusal::Other(format!(
                "{} now holds another state (lineage {}, not {}); it was left as it is",
                target.label(),
                state.lineage,
                ours.lineage
            )));
        }
        let now = SystemTime::now();
        let changes = merge::records(state, ours, touched, Ties::Ours);
        let holder = claim.holder(now);
        let mut notes = Vec::new();
        let lock_changed = if ending {
            let note = lock::release_noted(&mut state.lock, &holder);
            let released = note.is_some();
            notes.extend(note);
            released
        } else {
            renew && lock::renew(&mut state.lock, &holder, holder.expires_at)
        };
        if changes.is_empty() && !lock_changed {
            return Ok(None);
        }
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        state.bump(
            changes.clone(),
            Some(claim.run.clone()),
            Timestamp::from(now),
            note,
        );
        Ok(Some(message(&target.label(), &changes, &notes)))
    })
}

/// What publishing a run came to.
#[derive(Debug, Default)]
pub struct Report {
    /// Writes that landed.
    pub writes: u32,
    /// Attempts they took in all.
    pub attempts: u32,
    /// The last commit pushed.
    pub commit: Option<String>,
    /// Failures, for the user, by cloud (the state is kept locally).
    pub errors: Vec<(CloudName, StoreError)>,
    /// The clouds whose working-tree copy could not be written after a
    /// push landed, with why.
    pub stale_copies: Vec<(CloudName, String)>,
}

struct Pending {
    touched: HashMap<CloudName, BTreeSet<ComponentName>>,
    dirty: bool,
    closing: bool,
    report: Report,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

/// A subscriber that pushes a run's records to the shared state.
pub struct Publisher {
    store: Arc<Store>,
    targets: HashMap<CloudName, Target>,
    claim: Claim,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Starts publishing for `targets` (the run's clouds) under `claim`.
    /// In local mode nothing is pushed while the run goes: the recorder
    /// writes the local copy and its last write releases the lock, or else
    /// [`Publisher::finish`] does.
    pub fn new(store: Arc<Store>, targets: Vec<Target>, claim: Claim) -> Publisher {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                touched: HashMap::new(),
                dirty: false,
                closing: false,
                report: Report::default(),
            }),
            wake: Condvar::new(),
        });
        let targets: HashMap<CloudName, Target> =
            targets.into_iter().map(|t| (t.cloud.clone(), t)).collect();
        let thread = store.is_shared().then(|| {
            let (store, shared, targets, claim) = (
                store.clone(),
                shared.clone(),
                targets.clone(),
                claim.clone(),
            );
            std::thread::spawn(move || push_loop(&store, &shared, &targets, &claim))
        });
        Publisher {
            store,
            targets,
            claim,
            shared,
            thread,
        }
    }

    /// Stops the pushes in the background, then merges the final records
    /// and releases the lock, updating the local copy to what the branch
    /// now holds. The records come from `recorded`, the recorder's outcome
    /// (so call this after the recorder has finished), not from the local
    /// copy, which another process in the same checkout may have rewritten
    /// since; a cloud the recorder has no state for is read from the file.
    /// In local mode the recorder's last write has already released the
    /// lock of the clouds in `recorded.released`: those are left alone.
    pub fn finish(mut self, recorded: &Outcome) -> Report {
        if let Ok(mut p) = self.shared.pending.lock() {
            p.closing = true;
        }
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let (touched, mut report) = match self.shared.pending.lock() {
            Ok(mut p) => (
                std::mem::take(&mut p.touched),
                std::mem::take(&mut p.report),
            ),
            Err(_) => return Report::default(),
        };
        let mut clouds: Vec<&CloudName> = self.targets.keys().collect();
        clouds.sort();
        for cloud in clouds {
            if !self.store.is_shared() && recorded.released.contains(cloud) {
                continue;
            }
            let target = &self.targets[cloud];
            let names = touched.get(cloud).cloned().unwrap_or_default();
            let ours = recorded.states.get(cloud);
            account(
                &mut report,
                cloud,
                publish(&self.store, target, &self.claim, &names, true, false, ours),
            );
        }
        report
    }
}

fn account(report: &mut Report, cloud: &CloudName, result: Result<Written, StoreError>) {
    match result {
        Ok(written) => {
            // The last write of a cloud says whether its copy is stale.
            report.stale_copies.retain(|(c, _)| c != cloud);
            if let Some(why) = written.stale_copy {
                report.stale_copies.push((cloud.clone(), why));
            }
            report.attempts += written.attempts;
            if written.commit.is_some() {
                report.writes += 1;
                report.commit = written.commit;
            }
        }
        Err(e) => report.errors.push((cloud.clone(), e)),
    }
}

fn push_loop(store: &Store, shared: &Shared, targets: &HashMap<CloudName, Target>, claim: &Claim) {
    let mut last_push = Instant::now();
    let mut last_renewal = Instant::now();
    loop {
        let touched = {
            let Ok(mut p) = shared.pending.lock() else {
                return;
            };
            loop {
                if p.closing {
                    return;
                }
                let now = Instant::now();
                let push_due = p.dirty && now >= last_push + PUSH_INTERVAL;
                let renew_due = now >= last_renewal + RENEW_INTERVAL;
                if push_due || renew_due {
                    break;
                }
                let next = if p.dirty {
                    last_push + PUSH_INTERVAL
                } else {
                    last_renewal + RENEW_INTERVAL
                };
                let wait = next.saturating_duration_since(now);
                p = match shared.wake.wait_timeout(p, wait) {
                    Ok((p, _)) => p,
                    Err(_) => return,
                };
            }
            p.dirty = false;
            p.touched.clone()
        };
        let renew = Instant::now() >= last_renewal + RENEW_INTERVAL;
        let mut results = Vec::new();
        for (cloud, target) in targets {
            let names = touched.get(cloud).cloned().unwrap_or_default();
            results.push((
                cloud,
                publish(store, target, claim, &names, false, renew, None),
            ));
        }
        last_push = Instant::now();
        if renew {
            last_renewal = last_push;
        }
        if let Ok(mut p) = shared.pending.lock() {
            // A failed push in the middle of a run is retried by the next
            // one and by the final publish; only the last word counts, so
            // failures in the middle are not reported.
            for (cloud, result) in results {
                if let Ok(written) = result {
                    account(&mut p.report, cloud, Ok(written));
                }
            }
        }
    }
}

impl Subscriber for Publisher {
    fn on_event(&mut self, event: &Event) {
        let (target, finished) = match event {
            Event::Started { target, .. } => (target, false),
            Event::Finished(f) => (&f.target, true),
            _ => return,
        };
        if let Ok(mut p) = self.shared.pending.lock() {
            p.touched
                .entry(target.cloud.clone())
                .or_default()
                .insert(target.component.clone());
            if finished {
                p.dirty = true;
            }
        }
        // Only the thread that pushes waits to be woken; in local mode
        // there is none.
        if finished && self.thread.is_some() {
            self.shared.wake.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ComponentName {
        ComponentName::parse(s).unwrap()
    }

    #[test]
    fn messages_name_each_change_and_mark_skip_ci() {
        let changes = BTreeMap::from([
            (name("clusters"), Status::Succeeded),
            (name("addons"), Status::Failed),
        ]);
        assert_eq!(
            message("dev-aws", &changes, &[]),
            "state(dev-aws): addons failed, clusters succeeded [skip ci]"
        );
        assert_eq!(
            message("dev-aws", &BTreeMap::new(), &["lock taken by run 7".into()]),
            "state(dev-aws): lock taken by run 7 [skip ci]"
        );
    }

    #[test]
    fn long_messages_say_how_many_more() {
        let changes: BTreeMap<_, _> = (0..9)
            .map(|i| (name(&format!("c{i}")), Status::Succeeded))
            .collect();
        let text = message("dev-aws", &changes, &[]);
        assert!(
            text.ends_with("c5 succeeded, and 3 more [skip ci]"),
            "{text}"
        );
    }
}
