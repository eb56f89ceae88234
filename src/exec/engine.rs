//! One run from start to finish: read each cloud's state, observe every
//! component (its record and its fingerprint now), plan, then schedule and
//! run the components, turning what happens into events for subscribers.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;

use super::presets::{self, StepContext};
use super::runner::{self, Backoff, Job, Outcome, RunEvent};
use super::scheduler::{self, Ending, FailurePolicy, Schedule, Unit, Visit};
use super::transient::TransientPatterns;
use crate::config::{CloudName, ComponentName, Config, EnvName};
use crate::events::{Event, Finished, RunResult, Status, Subscriber, Target};
use crate::fingerprint::Fingerprinter;
use crate::graph::Walk;
use crate::plan::{self, Action, Observed, Plan, Recorded, Request};
use crate::state::{ComponentRecord, StateError, StateFile, store};

/// The shared values file of components that have none.
const EMPTY_VALUES: &str = "empty.values.json";

/// The file a run holds a lock on in its scratch directory while it runs.
const IN_USE: &str = ".in-use";

/// How a run's scratch directory is named in the temporary directory,
/// followed by the process id and a random part.
const SCRATCH_PREFIX: &str = "orchestrator-run-";

/// One cloud of an environment as found before a run.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The cloud.
    pub cloud: CloudName,
    /// Where its state file is.
    pub state_path: PathBuf,
    /// The state, if there is one yet.
    pub state: Option<StateFile>,
    /// Every component (indexed like the graph's nodes): record and fingerprint.
    pub observed: Vec<Observed>,
}

/// The state file of `env` on `cloud`.
pub fn state_path(config: &Config, env: &EnvName, cloud: &CloudName) -> PathBuf {
    store::path(&config.root, &config.state.dir, env, cloud)
}

/// What planning needs to know of a record.
///
/// A record that no run ever started counts as no record: a component
/// skipped, or cancelled before it started, in the first run that selected
/// it (or set to `pending` by hand before any run) was never deployed, so
/// `apply` creates it and `destroy` leaves it alone. A record keeps the
/// start of the last action that did start, so one that has none was
/// never started.
pub fn recorded(record: Option<&ComponentRecord>) -> Recorded {
    use crate::state::Status as S;
    match record {
        None => Recorded::Absent,
        Some(r) => match r.status {
            S::Destroyed => Recorded::Destroyed,
            S::Succeeded => Recorded::Succeeded(r.fingerprint.clone()),
            S::Pending | S::Skipped | S::Cancelled if r.started_at.is_none() && r.attempts == 0 => {
                Recorded::Absent
            }
            _ => Recorded::Incomplete,
        },
    }
}

/// Components the state records as possibly deployed (anything but
/// destroyed or never started) that the config no longer defines, with
/// their records, by name. Nothing plans, applies or destroys them any
/// more: their resources stay as they are until someone acts.
pub fn orphans<'s>(
    config: &Config,
    state: Option<&'s StateFile>,
) -> Vec<(&'s ComponentName, &'s ComponentRecord)> {
    state
        .into_iter()
        .flat_map(|s| &s.components)
        .filter(|(name, _)| config.component(name.as_str()).is_none())
        .filter(|(_, r)| !matches!(recorded(Some(r)), Recorded::Absent | Recorded::Destroyed))
        .collect()
}

/// Reads the state of each cloud and fingerprints every component.
pub fn observe(
    config: &Config,
    fingerprinter: &Fingerprinter,
    env: &EnvName,
    clouds: &[CloudName],
) -> Result<Vec<Observation>, StateError> {
    let fingerprints = fingerprinter.fingerprints(config, env, clouds);
    clouds
        .iter()
        .zip(fingerprints)
        .map(|(cloud, fingerprints)| {
            let state_path = state_path(config, env, cloud);
            let state = store::read(&state_path, env, cloud)?;
            Ok(Observation {
                cloud: cloud.clone(),
                observed: observed(config, state.as_ref(), fingerprints),
                state_path,
                state,
            })
        })
        .collect()
}

/// Reads each observed cloud's state again, keeping the fingerprints: what
/// other runs recorded may have changed since, and is what a run that has
/// just taken the lock plans with.
pub fn reread(
    config: &Config,
    env: &EnvName,
    observations: Vec<Observation>,
) -> Result<Vec<Observation>, StateError> {
    observations
        .into_iter()
        .map(|o| {
            let state = store::read(&o.state_path, env, &o.cloud)?;
            let fingerprints = o.observed.into_iter().map(|c| c.fingerprint).collect();
            Ok(Observation {
                observed: observed(config, state.as_ref(), fingerprints),
                state,
                ..o
            })
        })
        .collect()
}

/// Each component's record in `state` beside its fingerprint.
fn observed(
    config: &Config,
    state: Option<&StateFile>,
    fingerprints: Vec<String>,
) -> Vec<Observed> {
    config
        .components
        .iter()
        .zip(fingerprints)
        .map(|(c, fingerprint)| Observed {
            recorded: recorded(state.and_then(|s| s.components.get(&c.name))),
            fingerprint,
        })
        .collect()
}

/// Plans each observed cloud.
pub fn plans(
    config: &Config,
    env: &EnvName,
    observations: &[Observation],
    request: &Request,
) -> Vec<Plan> {
    observations
        .iter()
        .map(|o| plan::plan(config, env, &o.cloud, request, &o.observed))
        .collect()
}

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The run's id, recorded in state and used for the log directory.
    pub run_id: u64,
    /// Destroy, walking the graph from dependents to dependencies, rather
    /// than apply.
    pub destroy: bool,
    /// What a failure does to the rest.
    pub policy: FailurePolicy,
    /// How many components may run at once.
    pub max_parallel: usize,
    /// How long a stopped component gets between SIGINT and SIGKILL.
    pub grace: Duration,
    /// Fired after the run was cancelled (a second Ctrl-C): what still runs
    /// is killed at once, without waiting out the grace.
    pub kill_now: CancellationToken,
}

/// Everything a visit needs, shared by the concurrent visits.
struct Context {
    /// Shared with the caller rather than copied: a copy of thousands of
    /// components costs the start of the run, and freeing it its end.
    config: Arc<Config>,
    root: PathBuf,
    env: EnvName,
    clouds: Vec<CloudName>,
    /// `[cloud][component]`: the planned action and fingerprint.
    planned: Vec<Vec<Option<(Action, String)>>>,
    /// Each component's values for the environment.
    values: Vec<serde_json::Value>,
    options: Options,
    transient: Arc<TransientPatterns>,
    scratch: PathBuf,
    cancel: CancellationToken,
    events: UnboundedSender<Event>,
    /// One permit a running component: `--max-parallel`. Closed by a
    /// failure under `--on-failure stop` before that failure gives its slot
    /// back, so no component waiting for a slot starts after it.
    slots: Semaphore,
}

/// Runs the planned components of every cloud, with each component's
/// `values` (indexed like the config's components, as
/// [`crate::config::values::load_checked`] gives them): eagerly, under the
/// concurrency cap, with the failure policy, until done or cancelled.
/// Subscribers hear every event in order. Returns how the run ended and how
/// each component ended, in the order they finished.
pub async fn execute(
    config: &Arc<Config>,
    env: &EnvName,
    plans: Vec<Plan>,
    values: Vec<serde_json::Value>,
    options: Options,
    cancel: &CancellationToken,
    subscribers: &mut [&mut dyn Subscriber],
) -> (RunResult, Vec<Finished>) {
    let graph = &config.graph;
    let selections: Vec<Vec<bool>> = plans
        .iter()
        .map(|p| {
            let mut s = vec![false; graph.len()];
            for c in p.to_run() {
                if let Some(i) = graph.index_of(c.name.as_str()) {
                    s[i] = true;
                }
            }
            s
        })
        .collect();
    let slots = options.max_parallel.max(1);
    let schedule = Schedule {
        graph,
        selections,
        walk: if options.destroy {
            Walk::Dependencies
        } else {
            Walk::Dependents
        },
        // One more unit than there are slots for each slot: it is prepared
        // while the others run, and starts the moment a slot frees up,
        // rather than after the last one's end has been recorded.
        max_parallel: slots * 2,
        policy: options.policy,
    };
    // Values files and outputs live in a private directory removed after the
    // run: values may hold secrets, and nothing else needs them. One that a
    // killed run left behind is removed by the next run, once it is over.
    let scratch = match tempfile::Builder::new()
        .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: cannot create a temporary directory: {e}");
            return (RunResult::Failed, Vec::new());
        }
    };
    // Each cloud's values and outputs go in a directory of their own; every
    // component without values shares one empty file.
    // Held for the run: the lock tells a live run's directory from an
    // abandoned one where process ids do not (another PID namespace sharing
    // the temporary directory, or a reused id).
    let in_use = File::create(scratch.path().join(IN_USE))
        .and_then(|f| Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| e.into()));
    let prepared = in_use.and_then(|in_use| {
        plans
            .iter()
            .try_for_each(|p| std::fs::create_dir_all(scratch.path().join(p.cloud.as_str())))
            .and_then(|()| std::fs::write(scratch.path().join(EMPTY_VALUES), "{}"))
            .map(|()| in_use)
    });
    let in_use = match prepared {
        Ok(in_use) => in_use,
        Err(e) => {
            eprintln!("error: cannot prepare {}: {e}", scratch.path().display());
            return (RunResult::Failed, Vec::new());
        }
    };
    let (tx, mut rx) = unbounded_channel();
    let root = std::fs::canonicalize(if config.root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &config.root
    })
    .unwrap_or_else(|_| config.root.clone());
    let clouds: Vec<CloudName> = plans.iter().map(|p| p.cloud.clone()).collect();
    let planned: Vec<Vec<Option<(Action, String)>>> = plans
        .iter()
        .map(|p| {
            let mut row = vec![None; graph.len()];
            for c in &p.components {
                if let Some(i) = graph.index_of(c.name.as_str()) {
                    row[i] = Some((c.action, c.fingerprint.clone()));
                }
            }
            row
        })
        .collect();
    let targets = schedule
        .units()
        .into_iter()
        .map(|u| (target(&clouds, config, u), action_of(&planned, u)))
        .collect();
    let _ = tx.send(Event::RunStarted {
        run_id: options.run_id,
        environment: env.clone(),
        targets,
    });
    let ctx = Arc::new(Context {
        config: config.clone(),
        root,
        env: env.clone(),
        clouds,
        planned,
        values,
        options,
        transient: TransientPatterns::defaults(),
        scratch: scratch.path().to_path_buf(),
        cancel: cancel.clone(),
        events: tx,
        slots: Semaphore::new(slots),
    });
    let work = {
        let ctx = ctx.clone();
        async move {
            // Units that end without running are reported as soon as the
            // scheduler knows, so the terminal and the state show a skip
            // when its cause fails, not when the run ends.
            let endings = scheduler::run(
                &schedule,
                cancel,
                |unit| {
                    let ctx = ctx.clone();
                    async move { visit(&ctx, unit).await }
                },
                |unit, ending| {
                    let _ = ctx.events.send(unvisited(&ctx, unit, ending));
                },
            )
            .await;
            let mut result = if cancel.is_cancelled() {
                RunResult::Cancelled
            } else {
                RunResult::Succeeded
            };
            for (_, ending) in endings {
                let failed = matches!(
                    ending,
                    Ending::Visited(Visit::Failed) | Ending::Skipped(_) | Ending::Stopped
                );
                if result == RunResult::Succeeded && failed {
                    result = RunResult::Failed;
                }
            }
            let _ = ctx.events.send(Event::RunFinished { result });
            result
        }
    };
    drop(ctx);
    let mut finished = Vec::new();
    let pump = async {
        while let Some(mut event) = rx.recv().await {
            // Components first: whatever else is ready to run (a component
            // to start after one that just ended) goes before the reports,
            // which then take every event that came meanwhile in one go.
            tokio::task::yield_now().await;
            // Everything already waiting is handled before subscribers are
            // told to write out what they buffered.
            loop {
                for s in subscribers.iter_mut() {
                    s.on_event(&event);
                }
                if let Event::Finished(f) = event {
                    finished.push(*f);
                }
                match rx.try_recv() {
                    Ok(next) => event = next,
                    Err(_) => break,
                }
            }
            for s in subscribers.iter_mut() {
                s.flush();
            }
        }
    };
    let (result, ()) = tokio::join!(work, pump);
    drop(in_use);
    drop(scratch);
    remove_abandoned_scratch(&std::env::temp_dir());
    (result, finished)
}

/// The event that reports `unit` ending as `ending` without having run
/// (skipped, stopped or cancelled before it started). A visited unit's
/// visit reports it; the scheduler never hands one here.
fn unvisited(ctx: &Context, unit: Unit, ending: &Ending) -> Event {
    let (status, error) = match ending {
        // The reason, which follows the status wherever it is shown
        // ("skipped: net failed").
        Ending::Skipped(cause) => {
            let cause = target(&ctx.clouds, &ctx.config, *cause);
            (Status::Skipped, format!("{} failed", cause.component))
        }
        Ending::Stopped => (
            Status::Skipped,
            "the run stopped after a failure".to_string(),
        ),
        // A withheld visit ends as a unit never handed out (a visited one
        // never comes here).
        Ending::NotStarted | Ending::Visited(_) => (
            Status::Cancelled,
            "the run was cancelled before it started".to_string(),
        ),
    };
    Event::Finished(Box::new(Finished {
        target: target(&ctx.clouds, &ctx.config, unit),
        action: action_of(&ctx.planned, unit),
        status,
        attempts: 0,
        started_at: None,
        finished_at: SystemTime::now(),
        error: Some(error),
        fingerprint: fingerprint_of(&ctx.planned, unit),
        outputs: Default::default(),
        tail: Vec::new(),
    }))
}

/// Removes the scratch directories of runs killed before they could (by
/// SIGKILL or a power cut): those of this user whose process is gone. Their
/// values files may hold secrets.
fn remove_abandoned_scratch(tmp: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let me = nix::unistd::Uid::current().as_raw();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let mine = entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == me);
        if mine && runner::process_gone(pid) && !in_use(&entry.path()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether a live run holds the lock of the scratch directory `dir`. One
/// without the lock file is not in use: its run died before it could lock.
fn in_use(dir: &Path) -> bool {
    match File::open(dir.join(IN_USE)) {
        Ok(file) => Flock::lock(file, FlockArg::LockExclusiveNonblock).is_err(),
        Err(_) => false,
    }
}

fn target(clouds: &[CloudName], config: &Config, unit: Unit) -> Target {
    Target {
        cloud: clouds[unit.cloud].clone(),
        component: config.graph.name(unit.component).clone(),
    }
}

fn action_of(planned: &[Vec<Option<(Action, String)>>], unit: Unit) -> Action {
    planned[unit.cloud][unit.component]
        .as_ref()
        .map_or(Action::Noop, |(a, _)| *a)
}

fn fingerprint_of(planned: &[Vec<Option<(Action, String)>>], unit: Unit) -> String {
    planned[unit.cloud][unit.component]
        .as_ref()
        .map(|(_, f)| f.clone())
        .unwrap_or_default()
}

/// Runs one component on one cloud and reports how it went. Its job is
/// prepared first; then it waits for a slot, and holds it until its end is
/// known and reported.
async fn visit(ctx: &Context, unit: Unit) -> Visit {
    let component = &ctx.config.components[unit.component];
    let target = target(&ctx.clouds, &ctx.config, unit);
    let cloud = &ctx.clouds[unit.cloud];
    let action = action_of(&ctx.planned, unit);
    let outputs_file = outputs_path(ctx, cloud, component.name.as_str());
    let job = prepare(ctx, unit, &outputs_file);
    // A closed semaphore: the run stopped after a failure.
    let _slot = tokio::select! {
        slot = ctx.slots.acquire() => match slot {
            Ok(slot) => slot,
            Err(_) => return Visit::Withheld,
        },
        () = ctx.cancel.cancelled() => return Visit::Withheld,
    };
    if ctx.cancel.is_cancelled() {
        return Visit::Withheld;
    }
    let _stop_if_it_panics = StopOnPanic(ctx);
    let started_at = SystemTime::now();
    let _ = ctx.events.send(Event::Started {
        target: target.clone(),
        action,
        at: started_at,
    });
    let finish = |status: Status, attempts: u32, error: Option<String>, outputs, tail| {
        if status == Status::Failed {
            stop_after_failure(ctx);
        }
        let _ = ctx.events.send(Event::Finished(Box::new(Finished {
            target: target.clone(),
            action,
            status,
            attempts,
            started_at: Some(started_at),
            finished_at: SystemTime::now(),
            error,
            fingerprint: fingerprint_of(&ctx.planned, unit),
            outputs,
            tail,
        })));
    };
    let job = match job {
        Ok(job) => job,
        Err(error) => {
            finish(
                Status::Failed,
                0,
                Some(error),
                Default::default(),
                Vec::new(),
            );
            return Visit::Failed;
        }
    };
    let events = ctx.events.clone();
    let line_target = target.clone();
    let mut on_event = move |event: RunEvent| {
        let event = match event {
            RunEvent::Line { stream, text } => Event::Line {
                target: line_target.clone(),
                stream,
                text,
            },
            RunEvent::Step { command, .. } => Event::Step {
                target: line_target.clone(),
                command,
            },
            RunEvent::Retrying {
                attempt,
                delay,
                pattern,
            } => Event::Retrying {
                target: line_target.clone(),
                attempt: attempt - 1,
                delay,
                pattern,
            },
        };
        let _ = events.send(event);
    };
    let result = runner::run(&job, &ctx.cancel, &mut on_event).await;
    match result.outcome {
        Outcome::Succeeded => {
            let outputs = if ctx.options.destroy {
                Ok(Default::default())
            } else {
                read_outputs(&outputs_file)
            };
            match outputs {
                Ok(outputs) => {
                    let status = if ctx.options.destroy {
                        Status::Destroyed
                    } else {
                        Status::Succeeded
                    };
                    finish(status, result.attempts, None, outputs, result.tail);
                    Visit::Succeeded
                }
                Err(error) => {
                    finish(
                        Status::Failed,
                        result.attempts,
                        Some(error),
                        Default::default(),
                        result.tail,
                    );
                    Visit::Failed
                }
            }
        }
        Outcome::Cancelled => {
            finish(
                Status::Cancelled,
                result.attempts,
                Some("the run was cancelled while it ran".into()),
                Default::default(),
                result.tail,
            );
            Visit::Cancelled
        }
        other => {
            finish(
                Status::Failed,
                result.attempts,
                Some(other.to_string()),
                Default::default(),
                result.tail,
            );
            Visit::Failed
        }
    }
}

/// Under `--on-failure stop`, keeps every component still waiting for a
/// slot from starting.
fn stop_after_failure(ctx: &Context) {
    if ctx.options.policy == FailurePolicy::Stop {
        ctx.slots.close();
    }
}

/// A visit that panics counts as failed (see the scheduler): under
/// `--on-failure stop` it stops the run as a failure would.
struct StopOnPanic<'c>(&'c Context);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            stop_after_failure(self.0);
        }
    }
}

/// Where a component may write its outputs: `ORCHESTRATOR_OUTPUTS`.
fn outputs_path(ctx: &Context, cloud: &CloudName, component: &str) -> PathBuf {
    ctx.scratch
        .join(cloud.as_str())
        .join(format!("{component}.outputs.json"))
}

/// Writes the component's values and builds the job that runs its action,
/// which may write its outputs to `outputs_file`.
fn prepare(ctx: &Context, unit: Unit, outputs_file: &Path) -> Result<Job, String> {
    let component = &ctx.config.components[unit.component];
    let cloud = &ctx.clouds[unit.cloud];
    let values = &ctx.values[unit.component];
    // Components without values share one empty file rather than each
    // writing its own.
    let values_file = if values.as_object().is_some_and(|m| m.is_empty()) {
        ctx.scratch.join(EMPTY_VALUES)
    } else {
        let file = ctx
            .scratch
            .join(cloud.as_str())
            .join(format!("{}.values.json", component.name));
        std::fs::write(&file, values.to_string())
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        file
    };
    let mut step_ctx = StepContext::new(&ctx.root, component, &ctx.env, cloud, values_file);
    step_ctx.outputs_file = Some(outputs_file.to_path_buf());
    step_ctx.run_id = Some(ctx.options.run_id);
    let action = if ctx.options.destroy {
        presets::Action::Destroy
    } else {
        presets::Action::Apply
    };
    let transient = match &component.retry_on {
        None => ctx.transient.clone(),
        Some(patterns) => Arc::new(TransientPatterns::new(patterns).map_err(|e| e.to_string())?),
    };
    let mut job = Job::new(component, action, &step_ctx, transient).map_err(|e| e.to_string())?;
    job.grace = ctx.options.grace;
    job.kill_now = ctx.options.kill_now.clone();
    // Retries start after the component's delay and double, with jitter,
    // up to the runner's cap (or the delay itself, when that is longer).
    job.backoff = Backoff {
        base: component.retry_delay,
        max: Backoff::default().max.max(component.retry_delay),
    };
    Ok(job)
}

/// The outputs a component wrote: a JSON object, or nothing.
fn read_outputs(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Default::default());
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(
            "the component wrote outputs that are not a JSON object to ORCHESTRATOR_OUTPUTS".into(),
        ),
        Err(e) => Err(format!(
            "the component wrote invalid JSON to ORCHESTRATOR_OUTPUTS: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{RecordAction, Status as S, Timestamp};

    fn record(status: S, started: bool, attempts: u32) -> ComponentRecord {
        let mut r = ComponentRecord::new(status, RecordAction::Apply);
        r.attempts = attempts;
        if started {
            r.started_at = Some(Timestamp::from(SystemTime::UNIX_EPOCH));
        }
        r
    }

    #[test]
    fn orphans_are_recorded_components_the_config_lost_that_may_still_exist() {
        let text = "version: 1\ndefaults: {runner: shell}\ncomponents:\n  net: {path: ., commands: {apply: 'true'}}\nenvironments:\n  dev: {clouds: [aws]}\n";
        let config =
            crate::config::from_text(std::path::Path::new("orchestrator.yaml"), text).unwrap();
        let mut state = StateFile::new(
            EnvName::parse("dev").unwrap(),
            CloudName::parse("aws").unwrap(),
        );
        for (name, r) in [
            ("net", record(S::Succeeded, true, 1)),
            ("app", record(S::Succeeded, true, 1)),
            ("db", record(S::Failed, true, 1)),
            ("old", record(S::Destroyed, true, 1)),
            ("never", record(S::Skipped, false, 0)),
        ] {
            state
                .components
                .insert(ComponentName::parse(name).unwrap(), r);
        }
        let found: Vec<(String, S)> = orphans(&config, Some(&state))
            .into_iter()
            .map(|(n, r)| (n.to_string(), r.status))
            .collect();
        assert_eq!(
            found,
            [
                ("app".to_string(), S::Succeeded),
                ("db".to_string(), S::Failed)
            ]
        );
        assert!(orphans(&config, None).is_empty());
    }

    #[test]
    fn a_record_no_run_ever_started_counts_as_none() {
        for status in [S::Pending, S::Skipped, S::Cancelled] {
            assert_eq!(
                recorded(Some(&record(status, false, 0))),
                Recorded::Absent,
                "{status:?}, never started"
            );
            // Started by an earlier run, then skipped or cancelled in a
            // later one before it started again: it may exist.
            assert_eq!(
                recorded(Some(&record(status, true, 0))),
                Recorded::Incomplete,
                "{status:?}, started before"
            );
        }
        assert_eq!(
            recorded(Some(&record(S::Cancelled, true, 1))),
            Recorded::Incomplete
        );
        // A failure or a run that died may have left something behind.
        for status in [S::Failed, S::Running] {
            assert_eq!(
                recorded(Some(&record(status, false, 0))),
                Recorded::Incomplete,
                "{status:?}"
            );
        }
        assert_eq!(recorded(None), Recorded::Absent);
    }
}
