//! `apply` and `destroy`: plan against the recorded state, then run what is
//! not done, recording each component's start and end as it happens.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::inspect::write_plans;
use super::{
    EXIT_CANCELLED, EXIT_CONFLICT, EXIT_FAILED, Failure, Format, RunArgs, environment, json, load,
    open_store, request, usage,
};
use crate::config::{CloudName, ComponentName, Config, EnvName};
use crate::events::{Finished, RunResult, Status, Subscriber};
use crate::exec::engine::{self, Options};
use crate::fingerprint::Fingerprinter;
use crate::github::RunContext;
use crate::github::commands;
use crate::github::log::ActionsLog;
use crate::plan::Request;
use crate::redact::{Redacting, Redactor};
use crate::report::logs::Logs;
use crate::report::terminal::{Terminal, seconds};
use crate::state::lock::LOCK_TTL;
use crate::state::publish::{self, Claim, LOCAL_TTL, Publisher};
use crate::state::recorder::{Keeping, Outcome, Recorder};
use crate::state::sync::StoreError;
use crate::state::{StateFile, Target};

/// How long a stopped component gets between SIGINT and SIGKILL. Short
/// enough that a cancelled run records its state and exits inside the
/// 7.5 s a CI runner allows after its own SIGTERM.
const GRACE: Duration = Duration::from_secs(3);

pub(super) fn run(
    file: &Path,
    args: &RunArgs,
    destroy: bool,
    out: &mut dyn Write,
) -> Result<i32, Failure> {
    run_observed(file, args, destroy, out, &mut |_, _| {})
}

/// [`run`], showing `planned` each plan the run makes: the one before it
/// takes the lock, and the one it makes again under the lock, which is the
/// plan it runs. The action reports that plan as its `plan`, `waves` and
/// `changed` outputs, without planning (and fetching the state) on its own.
pub(super) fn run_observed(
    file: &Path,
    args: &RunArgs,
    destroy: bool,
    out: &mut dyn Write,
    planned: &mut dyn FnMut(&Config, &[crate::plan::Plan]),
) -> Result<i32, Failure> {
    // Shared with the engine, which runs the components from it.
    let config = Arc::new(load(file)?);
    let (env, clouds) = environment(&config, &args.select.env, args.select.cloud.as_deref())?;
    let request = request(&config, &args.select, destroy)?;
    let run_id = new_run_id();
    let token = crate::github::token(args.store.github.github_token.as_deref());
    // Checked, parsed and digested in one pass: the redactor learns the
    // secrets in them, the engine hands them to the components, and their
    // digests go into the fingerprints.
    let crate::config::values::Loaded { values, digests } =
        crate::config::values::load_checked(&config, &env).map_err(Failure::Config)?;
    let redactor = Redactor::for_values(&config, &env, &values, token.as_deref().as_slice());
    let context = RunContext::from_env();
    if context.on_actions {
        // Registered before a component can print one.
        eprint!("{}", commands::masks(redactor.secrets()));
    }
    let store = Arc::new(open_store(&config, &args.store)?);
    let run = context.run_info(run_id);
    let host = nix::unistd::gethostname()
        .ok()
        .map(|h| h.to_string_lossy().into_owned());
    // Local copies holding results the branch lacks (an earlier push
    // failed) are pushed when this run takes its lock, which merges them in;
    // a run with nothing to do pushes them on its own.
    let mut unpushed = Vec::new();
    for cloud in &clouds {
        let target = store.target(&env, cloud);
        if let Some(note) = store.refresh(&target)? {
            eprintln!("note: {note}");
            unpushed.push(target);
        }
    }
    // Fingerprints cover the values as read above, not read again.
    let fingerprinter = Fingerprinter::new(&config).with_values(&env, digests);
    let mut plan = |observations: Vec<engine::Observation>| -> Result<_, Failure> {
        let plans = engine::plans(&config, &env, &observations, &request);
        planned(&config, &plans);
        check_missing(&plans)?;
        check_destroyable(&config, &plans)?;
        Ok((observations, plans))
    };
    // Plan once before locking, so a run with nothing to do, a dry run and
    // a refused run write nothing at all.
    let observed = engine::observe(&config, &fingerprinter, &env, &clouds)?;
    super::warn_orphans(file, &config, &env, &observed);
    let (observations, first) = plan(observed)?;
    if args.dry_run {
        write_plans(&config, &first, args.format, out)?;
        return Ok(0);
    }
    if first.iter().all(|p| p.to_run().next().is_none()) {
        for target in &unpushed {
            publish::push_unpushed(&store, target, &run, host.as_deref())?;
        }
        nothing_to_do(run_id, &env, args.format, out)?;
        return Ok(0);
    }
    let claim = Claim {
        id: run_id,
        run: run.clone(),
        host,
        components: claimed(&config, &request),
        ttl: if store.is_shared() {
            LOCK_TTL
        } else {
            LOCAL_TTL
        },
    };
    let targets: Vec<Target> = clouds.iter().map(|c| store.target(&env, c)).collect();
    // One thread: the engine mostly waits for children, and on a small
    // machine every cycle it spends, and every hand-over between threads,
    // is taken from the components. Blocking work (the state writer) has a
    // thread of its own. Started before the locks, whose waits it times.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| usage(format!("cannot start the async runtime: {e}"), None))?;
    // From the first lock on, a signal must not end the process before it
    // gives back what it took: a lock of a run killed while it waited for
    // another cloud's would stand until it lapsed, holding up the next run
    // on another machine for ten minutes.
    let cancel = CancellationToken::new();
    let kill_now = CancellationToken::new();
    let locking = Arc::new(AtomicBool::new(true));
    if let Err(e) = watch_signals(cancel.clone(), kill_now.clone(), locking.clone()) {
        eprintln!(
            "warning: cannot handle signals ({e}): a signal ends this run without recording it"
        );
    }
    let mut locked = Vec::new();
    for target in &targets {
        let taken = if cancel.is_cancelled() {
            None
        } else {
            let waiting = |refusal: &crate::state::sync::Refusal| {
                eprintln!(
                    "Waiting up to {} for the lock on {}, held by {}…",
                    humantime::format_duration(args.lock_timeout),
                    target.label(),
                    refusal.holder_text()
                );
            };
            let pause = |wait: Duration| !runtime.block_on(cancelled_within(&cancel, wait));
            Some(publish::take_lock(
                &store,
                target,
                &claim,
                args.lock_timeout,
                waiting,
                pause,
            ))
        };
        match taken {
            Some(Ok(notes)) => {
                for note in notes {
                    eprintln!("warning: {}: {note}", target.label());
                }
                locked.push(target.clone());
            }
            Some(Err(e)) if !cancel.is_cancelled() => {
                // Give back what this run took before it stopped.
                Publisher::new(store.clone(), locked, claim.clone()).finish(&Outcome::default());
                return Err(e.into());
            }
            // Cancelled before or while it waited: what this run took is
            // given back.
            _ => {
                let published = Publisher::new(store.clone(), locked, claim.clone())
                    .finish(&Outcome::default());
                return cancelled_before_start(run_id, &env, args.format, out, published);
            }
        }
    }
    locking.store(false, Ordering::SeqCst);
    // From here on the lock is held: every way out goes through
    // `publisher.finish()`, which releases it (in local mode, unless the
    // recorder's last write already has). Plan again: taking the lock
    // brought in what other runs recorded since. The files were
    // fingerprinted a moment ago, and are not again.
    let keeping = if store.is_shared() {
        Keeping::Git
    } else {
        Keeping::Local {
            release: Some(claim.holder(SystemTime::now())),
        }
    };
    let publisher = Publisher::new(store.clone(), locked, claim);
    let replanned = engine::reread(&config, &env, observations)
        .map_err(Failure::from)
        .and_then(plan);
    let (observations, plans) = match replanned {
        Ok(prepared) => prepared,
        Err(failure) => {
            publisher.finish(&Outcome::default());
            return Err(failure);
        }
    };
    if cancel.is_cancelled() {
        let published = publisher.finish(&Outcome::default());
        return cancelled_before_start(run_id, &env, args.format, out, published);
    }
    if plans.iter().all(|p| p.to_run().next().is_none()) {
        let published = publisher.finish(&Outcome::default());
        nothing_to_do(run_id, &env, args.format, out)?;
        return published_exit(published, 0);
    }
    let states = observations
        .iter()
        .map(|o| {
            let state = o
                .state
                .clone()
                .unwrap_or_else(|| StateFile::new(env.clone(), o.cloud.clone()));
            (o.cloud.clone(), o.state_path.clone(), state)
        })
        .collect();
    let mut publisher = publisher;
    let mut recorder = Recorder::new(states, Some(run), fingerprinter.head_commit(), keeping);
    let mut terminal = Terminal::new();
    let mut actions_log = ActionsLog::new();
    let mut logs = Logs::new(&config.root, run_id);
    let options = Options {
        run_id,
        destroy,
        policy: args.on_failure,
        max_parallel: if args.sequential {
            1
        } else {
            args.max_parallel.unwrap_or(config.max_parallel) as usize
        },
        grace: GRACE,
        kill_now: kill_now.clone(),
    };
    // Where each component comes in the plans, by cloud and graph index
    // (`usize::MAX` where it is not planned): the results are reported in
    // that order. Taken before the plans go to the engine, so they need no
    // copy.
    let order: Vec<(CloudName, Vec<usize>)> = plans
        .iter()
        .scan(0, |next, p| {
            let mut row = vec![usize::MAX; config.graph.len()];
            for c in &p.components {
                if let Some(i) = config.graph.index_of(c.name.as_str()) {
                    row[i] = *next;
                }
                *next += 1;
            }
            Some((p.cloud.clone(), row))
        })
        .collect();
    let started = std::time::Instant::now();
    let (result, mut finished) = {
        let mut outputs: Vec<&mut dyn Subscriber> = vec![&mut recorder, &mut logs];
        // On GitHub Actions each component's output is one log group.
        // Elsewhere the lines go to stderr, whatever the format: with
        // `--format json` only the result document is on stdout.
        if context.on_actions {
            outputs.push(&mut actions_log);
        } else {
            outputs.push(&mut terminal);
        }
        let mut redacting = Redacting::new(&redactor, outputs);
        let mut subscribers: Vec<&mut dyn Subscriber> = vec![&mut redacting, &mut publisher];
        runtime.block_on(engine::execute(
            &config,
            &env,
            plans,
            values,
            options,
            &cancel,
            &mut subscribers,
        ))
    };
    drop(runtime);
    finished
        .iter_mut()
        .for_each(|f| redactor.redact_finished(f));
    // Report in plan order, not the order components happened to finish in.
    finished.sort_by_cached_key(|f| {
        let row = order.iter().find(|(cloud, _)| *cloud == f.target.cloud);
        let component = config.graph.index_of(f.target.component.as_str());
        row.zip(component)
            .map_or(usize::MAX, |((_, row), i)| row[i])
    });
    let multi_cloud = clouds.len() > 1;
    let document = |commit: Option<&str>| {
        json(&result_document(
            run_id,
            &env,
            result,
            &finished,
            multi_cloud,
            commit,
        ))
    };
    // A local state has no commit to name, so the result is rendered while
    // the last state write (started as the run finished) is under way,
    // rather than after it.
    let rendered = (args.format == Format::Json && !store.is_shared()).then(|| document(None));
    // The final push reads the records the last write leaves, and the
    // result names the pushed commit.
    let recorded = recorder.finish();
    let mut published = publisher.finish(&recorded);
    match args.format {
        Format::Json => out.write_all(
            rendered
                .unwrap_or_else(|| document(published.commit.as_deref()))
                .as_bytes(),
        )?,
        Format::Text => eprint!(
            "{}",
            summary(
                result,
                &finished,
                multi_cloud,
                started.elapsed(),
                logs.dir(),
                crate::report::colour_on_stderr(),
            )
        ),
    }
    let unwritten = report_write_failures(&recorded, &mut published, store.is_shared());
    crate::report::logs::prune(&config.root, SystemTime::now());
    // A cancelled run has seconds left before it is killed: no GitHub calls.
    if args.open_issue_on_failure && result != RunResult::Cancelled {
        super::issue::after_run(
            &config,
            &env,
            &finished,
            &args.store.github,
            &redactor,
            run_id,
            fingerprinter.head_commit(),
        );
    }
    let code = match result {
        _ if unwritten => EXIT_FAILED,
        RunResult::Succeeded => 0,
        RunResult::Failed => EXIT_FAILED,
        RunResult::Cancelled => EXIT_CANCELLED,
    };
    // The command ends here and the process with it: the kernel takes
    // back the config, the plans and the results at once, where freeing
    // their allocations one by one delays the exit by milliseconds on a
    // large run. Plain data only; nothing that holds a file or a lock.
    std::mem::forget((config, first, observations, finished));
    published_exit(published, code)
}

fn nothing_to_do(
    run_id: u64,
    env: &EnvName,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match format {
        Format::Json => out.write_all(
            json(&result_document(
                run_id,
                env,
                RunResult::Succeeded,
                &[],
                false,
                None,
            ))
            .as_bytes(),
        )?,
        Format::Text => {
            eprintln!("Nothing to do: every selected component is up to date in {env}.")
        }
    }
    Ok(())
}

/// Reports what publishing the state came to; a state that could not be
/// published turns the exit code into 3, unless the run was cancelled.
fn published_exit(published: publish::Report, code: i32) -> Result<i32, Failure> {
    if published.writes > 0 {
        eprintln!(
            "State pushed: {} write(s) in {} attempt(s){}.",
            published.writes,
            published.attempts,
            published
                .commit
                .as_deref()
                .map(|c| format!(", last commit {}", &c[..c.len().min(12)]))
                .unwrap_or_default()
        );
    }
    if published.errors.is_empty() {
        return Ok(code);
    }
    for (_, e) in &published.errors {
        tell_store_error("", e);
    }
    Ok(if code == EXIT_CANCELLED {
        code
    } else {
        EXIT_CONFLICT
    })
}

/// Prints a state store error, after `lead`, with its advice.
fn tell_store_error(lead: &str, e: &StoreError) {
    eprintln!("error: {lead}{}", e.message());
    let hint = e.hint();
    if !hint.is_empty() {
        eprintln!("  = help: {hint}");
    }
}

/// Tells of the state writes that failed during the run, once for each
/// file, and says whether a file was left without records of the run.
///
/// A failed write's records go out with the next write, so only a failed
/// last write can leave them out. Then, in local mode, the write that
/// gives back the run's lock carries them too: when it lands nothing is
/// missing, and when it fails it fails for the same reason, so its error
/// is told here, once, instead of beside the recorder's (a conflict, such
/// as another state in the file's place, is told by the publisher, as
/// before, and exits 3). In git mode the
/// files are local copies of the branch: one the run could not write is
/// taken from the branch by the next run, once the final push has landed.
fn report_write_failures(
    recorded: &Outcome,
    published: &mut publish::Report,
    shared: bool,
) -> bool {
    let mut unwritten = false;
    // A copy the final push could not update either is told of once.
    let mut stale = std::mem::take(&mut published.stale_copies);
    for failed in &recorded.failures {
        stale.retain(|(cloud, _)| *cloud != failed.cloud);
        let writes = match failed.count {
            1 => "a write".to_string(),
            n => format!("{n} writes"),
        };
        let again = published
            .errors
            .iter()
            .position(|(c, _)| *c == failed.cloud);
        match (failed.lasting, shared, again) {
            (false, _, _) => eprintln!(
                "warning: {writes} of the state failed during the run ({}); a later one \
                 recorded everything",
                failed.last
            ),
            (true, true, None) => eprintln!("warning: {}", stale_copy(&failed.last)),
            (true, false, None) => eprintln!(
                "warning: {writes} of the state failed ({}); the write that gave back the \
                 run's lock recorded everything",
                failed.last
            ),
            (true, true, Some(_)) => {
                eprintln!("error: the state could not be written: {}", failed.last);
                unwritten = true;
            }
            // Another state in the file's place, say: the publisher's
            // error tells it, as a conflict.
            (true, false, Some(i)) if published.errors[i].1.is_conflict() => {}
            (true, false, Some(i)) => {
                let (_, error) = published.errors.remove(i);
                tell_store_error("the state could not be written: ", &error);
                eprintln!(
                    "  = note: {writes} failed; the file holds what was recorded before, \
                     and the next apply runs again what it does not show as done"
                );
                unwritten = true;
            }
        }
    }
    for (_, why) in stale {
        eprintln!("warning: {}", stale_copy(&why));
    }
    unwritten
}

/// The warning for a working-tree copy of the state that could not be
/// written while the branch got the state.
pub(super) fn stale_copy(why: &str) -> String {
    format!(
        "the local copy of the state could not be written ({why}); the state branch has \
         every record, and the next run takes its copy from there"
    )
}

/// The components a run's lock covers: those asked for with `--components`
/// (closed over `--with-deps`/`--with-dependents`), or `None` for the whole
/// environment, so matrix jobs applying one component each do not block
/// each other.
fn claimed(config: &Config, request: &Request) -> Option<Vec<ComponentName>> {
    if request.components.is_empty() {
        return None;
    }
    let asked = Request {
        changed: false,
        ..request.clone()
    };
    let selection = crate::plan::select(config, &asked, &[]);
    Some(
        selection
            .iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .map(|(i, _)| config.graph.name(i).clone())
            .collect(),
    )
}

/// Refuses a run whose plans need components outside it that are not
/// deployed at their current version.
fn check_missing(plans: &[crate::plan::Plan]) -> Result<(), Failure> {
    let missing: Vec<String> = plans
        .iter()
        .flat_map(|p| {
            let relation = p.missing_relation();
            p.missing.iter().map(move |m| {
                let by = m
                    .needed_by
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("{} on {} ({relation} {by})", m.name, p.cloud)
            })
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let (what, hint) = if plans.iter().any(|p| p.destroy) {
        (
            "still deployed and depend on what this run destroys",
            "destroy them first, or add --with-dependents",
        )
    } else {
        (
            "not deployed at their current version, and this run needs them",
            "apply them first, or add --with-deps",
        )
    };
    Err(usage(
        format!("these components are {what}: {}", missing.join("; ")),
        Some(hint.into()),
    ))
}

/// Refuses a destroy of `shell` components that have no `commands.destroy`,
/// before anything is locked or run: otherwise each would start, fail at
/// once and be recorded as failed while still deployed.
fn check_destroyable(config: &Config, plans: &[crate::plan::Plan]) -> Result<(), Failure> {
    match undestroyable(config, plans) {
        None => Ok(()),
        Some(problem) => Err(usage(problem, Some(UNDESTROYABLE_HINT.into()))),
    }
}

pub(super) const UNDESTROYABLE_HINT: &str =
    "add `commands.destroy` to each in orchestrator.yaml, or leave them out with --components";

/// What is wrong with destroying `plans`, if some `shell` component to be
/// destroyed has no `commands.destroy`.
pub(super) fn undestroyable(config: &Config, plans: &[crate::plan::Plan]) -> Option<String> {
    let mut lacking: Vec<&str> = plans
        .iter()
        .flat_map(|p| p.components.iter())
        .filter(|c| c.action == crate::plan::Action::Destroy)
        .filter_map(|c| config.component(c.name.as_str()))
        .filter(|c| c.runner == crate::config::Runner::Shell && c.commands.destroy.is_none())
        .map(|c| c.name.as_str())
        .collect();
    lacking.sort_unstable();
    lacking.dedup();
    (!lacking.is_empty()).then(|| {
        format!(
            "cannot destroy {}: shell components need `commands.destroy`",
            lacking.join(", ")
        )
    })
}

/// A run id: the second it was made, then six random digits. Runs started
/// at once (a matrix of jobs, two terminals) get different ids: a
/// microsecond clock alone gave two runs started together the same id,
/// and a lock taken by one then counted as the other's. It sorts by time,
/// and stays below 2^53, so JavaScript reads it exactly.
fn new_run_id() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.as_secs() * 1_000_000 + fastrand::u64(0..1_000_000)
}

/// Handles SIGINT, SIGTERM and SIGHUP from now on, on a thread of its own
/// (as PID 1 in a container there is no default handler for them): the
/// first cancels the run, the second kills its components at once, or,
/// while the run is still `locking`, ends the process (the wait for a
/// lock that a first signal could not interrupt: a fetch or push that
/// hangs). The handlers are in place when this returns, before any
/// component starts, so components do not inherit a SIGINT this process
/// was started ignoring (as background jobs of a script are), which their
/// own traps could not catch.
fn watch_signals(
    cancel: CancellationToken,
    kill_now: CancellationToken,
    locking: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let (mut int, mut term, mut hup) = {
        let _runtime = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        )
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut next = async || {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                        _ = hup.recv() => {}
                    }
                };
                next().await;
                if locking.load(Ordering::SeqCst) {
                    eprintln!(
                        "Cancelling: giving back the locks this run took (Ctrl-C again exits now)…"
                    );
                } else {
                    eprintln!(
                        "Cancelling: stopping running components and recording the state \
                         (Ctrl-C again kills them now)…"
                    );
                }
                cancel.cancel();
                next().await;
                if locking.load(Ordering::SeqCst) {
                    eprintln!("Exiting now; a lock this run took stands until it lapses.");
                    std::process::exit(EXIT_CANCELLED);
                }
                eprintln!("Killing the running components now…");
                kill_now.cancel();
            });
        })?;
    Ok(())
}

/// Waits `wait`, or less if `cancel` is cancelled meanwhile: whether it was.
async fn cancelled_within(cancel: &CancellationToken, wait: Duration) -> bool {
    tokio::time::timeout(wait, cancel.cancelled()).await.is_ok()
}

/// Reports a run cancelled before any component started, once the locks it
/// took are given back (`published`): exit 130.
fn cancelled_before_start(
    run_id: u64,
    env: &EnvName,
    format: Format,
    out: &mut dyn Write,
    published: publish::Report,
) -> Result<i32, Failure> {
    eprintln!("Cancelled before any component started in {env}.");
    if format == Format::Json {
        out.write_all(
            json(&result_document(
                run_id,
                env,
                RunResult::Cancelled,
                &[],
                false,
                // The commit that gave the locks back, when there is one.
                published.commit.as_deref(),
            ))
            .as_bytes(),
        )?;
    }
    published_exit(published, EXIT_CANCELLED)
}

fn key(f: &Finished, multi_cloud: bool) -> String {
    if multi_cloud {
        format!("{}/{}", f.target.cloud, f.target.component)
    } else {
        f.target.component.to_string()
    }
}

/// The run's result as one JSON document: the components in plan order,
/// serialized straight from the records (a run of thousands of components
/// ends sooner without an intermediate `serde_json::Value`).
fn result_document<'a>(
    run_id: u64,
    env: &'a crate::config::EnvName,
    result: RunResult,
    finished: &'a [Finished],
    multi_cloud: bool,
    state_commit: Option<&'a str>,
) -> RunDocument<'a> {
    RunDocument {
        result: result.as_str(),
        run_id,
        environment: env,
        components: Components {
            finished,
            multi_cloud,
        },
        state_commit,
    }
}

#[derive(Serialize)]
struct RunDocument<'a> {
    result: &'static str,
    run_id: u64,
    environment: &'a crate::config::EnvName,
    components: Components<'a>,
    state_commit: Option<&'a str>,
}

/// The `components` object of [`RunDocument`], keyed by component (or
/// `cloud/component` when the run covers several clouds).
struct Components<'a> {
    finished: &'a [Finished],
    multi_cloud: bool,
}

#[derive(Serialize)]
struct ComponentResult<'a> {
    cloud: &'a crate::config::CloudName,
    action: &'static str,
    status: &'static str,
    attempts: u32,
    started_at: Option<String>,
    finished_at: String,
    duration_ms: u64,
    error: &'a Option<String>,
}

impl Serialize for Components<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let time = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
        let mut map = s.serialize_map(Some(self.finished.len()))?;
        for f in self.finished {
            map.serialize_entry(
                &key(f, self.multi_cloud),
                &ComponentResult {
                    cloud: &f.target.cloud,
                    action: f.action.as_str(),
                    status: f.status.as_str(),
                    attempts: f.attempts,
                    started_at: f.started_at.map(time),
                    finished_at: time(f.finished_at),
                    duration_ms: f.duration().as_millis() as u64,
                    error: &f.error,
                },
            )?;
        }
        map.end()
    }
}

/// The table printed at the end of a run, its result in colour when
/// `colour`.
fn summary(
    result: RunResult,
    finished: &[Finished],
    multi_cloud: bool,
    took: Duration,
    logs: Option<&Path>,
    colour: bool,
) -> String {
    let rows: Vec<Vec<String>> = finished
        .iter()
        .map(|f| {
            vec![
                key(f, multi_cloud),
                f.action.as_str().to_string(),
                f.status.to_string(),
                f.attempts.to_string(),
                if f.started_at.is_some() {
                    seconds(f.duration())
                } else {
                    "-".to_string()
                },
            ]
        })
        .collect();
    let mut text = String::from("\n");
    text.push_str(&crate::report::table(
        &["COMPONENT", "ACTION", "STATUS", "ATTEMPTS", "DURATION"],
        &rows,
    ));
    // In the colour of the status of the same name.
    let status = match result {
        RunResult::Succeeded => Status::Succeeded,
        RunResult::Failed => Status::Failed,
        RunResult::Cancelled => Status::Cancelled,
    };
    let style = crate::report::status_style(status);
    let outcome = crate::report::paint(colour, style, result.as_str());
    text.push_str(&format!("\nRun {outcome} in {}.", seconds(took)));
    // Only components that printed have logs.
    if let Some(logs) = logs {
        text.push_str(&format!(" Logs: {}", logs.display()));
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    /// Runs `orchestrator <args>` on the config in `dir` through
    /// [`run_observed`]: the plans it showed, as (component, action) pairs
    /// of what each had to do, and its JSON result.
    fn observed(dir: &Path, args: &[&str]) -> (Vec<Vec<(String, String)>>, serde_json::Value) {
        let config = dir.join("orchestrator.yaml");
        let config = config.to_str().unwrap();
        let cli = Cli::try_parse_from(
            ["orchestrator", "--config", config]
                .iter()
                .chain(args)
                .chain(&["--format", "json"]),
        )
        .unwrap();
        let Command::Apply(args) = cli.command else {
            panic!("not an apply: {args:?}");
        };
        let mut seen = Vec::new();
        let mut out = Vec::new();
        let code = run_observed(&cli.config, &args, false, &mut out, &mut |_, plans| {
            seen.push(
                plans[0]
                    .to_run()
                    .map(|c| (c.name.to_string(), format!("{:?}", c.action)))
                    .collect(),
            );
        })
        .unwrap();
        assert_eq!(code, 0);
        (seen, serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn the_last_plan_a_run_shows_is_the_plan_it_ran() {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            String::from("version: 1\ndefaults:\n  runner: shell\n  retries: 0\ncomponents:\n");
        for (name, needs) in [("a", "[]"), ("b", "[a]"), ("c", "[]")] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            config.push_str(&format!(
                "  {name}:\n    path: {name}\n    depends_on: {needs}\n    commands:\n      apply: \"true\"\n"
            ));
        }
        config.push_str("environments:\n  dev: {clouds: [aws]}\n");
        std::fs::write(dir.path().join("orchestrator.yaml"), &config).unwrap();
        let ran = |result: &serde_json::Value| {
            let mut names: Vec<String> = result["components"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            names.sort();
            names
        };

        // Before the lock and under it: the same plan, and it is what ran.
        let (seen, result) = observed(dir.path(), &["apply", "--env", "dev"]);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0], seen[1]);
        let mut planned: Vec<&str> = seen[1].iter().map(|(n, _)| n.as_str()).collect();
        planned.sort_unstable();
        assert_eq!(planned, ["a", "b", "c"]);
        assert_eq!(ran(&result), ["a", "b", "c"]);

        // One component's files change: only it is planned, and run.
        std::fs::write(dir.path().join("c/main.tf"), "# changed\n").unwrap();
        let (seen, result) = observed(dir.path(), &["apply", "--env", "dev"]);
        assert_eq!(
            seen.last().unwrap(),
            &[("c".to_string(), "Update".to_string())]
        );
        assert_eq!(ran(&result), ["c"]);

        // A dry run shows its one plan and runs nothing; so does a run with
        // nothing to do.
        std::fs::write(dir.path().join("a/main.tf"), "# changed\n").unwrap();
        let dry_run = ["apply", "--env", "dev", "--dry-run"];
        let (seen, result) = observed(dir.path(), &dry_run);
        assert_eq!(seen, [[("a".to_string(), "Update".to_string())]]);
        assert!(result.get("result").is_none(), "{result}");
        assert_eq!(result["cloud"], "aws", "{result}");
        assert_eq!(
            observed(dir.path(), &dry_run).0,
            seen,
            "the dry run ran `a`"
        );
        let (seen, _) = observed(dir.path(), &["apply", "--env", "dev", "--components", "c"]);
        assert_eq!(seen, [Vec::<(String, String)>::new()]);
    }

    #[test]
    fn runs_started_in_the_same_instant_get_different_ids() {
        // Made back to back, well within one microsecond of each other.
        let (a, b) = (new_run_id(), new_run_id());
        assert_ne!(a, b);
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(a / 1_000_000 <= secs && secs - a / 1_000_000 <= 1, "{a}");
        assert!(a < 1 << 53);
    }
}
