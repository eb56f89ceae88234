//! Runs one component action as real child processes.
//!
//! A [`Job`] is the list of steps for one action (from [`super::presets`]),
//! where to run them and how long they may take. [`run`] executes the steps
//! in order, streams every output line to the caller as it arrives, and
//! retries the whole job after a transient failure
//! ([`super::transient`]).
//!
//! Each step runs in a process group of its own, so the whole tree a tool
//! starts (tofu and its provider plugins, a script and what it forks) can be
//! signalled at once. Stopping one, on timeout or cancellation, is graceful:
//! SIGINT to the group, so tofu can release its state lock, then SIGKILL to
//! the group after a grace period.
//!
//! Components must not leave processes running: once a step's main process
//! exits, whatever is left in its group is killed. Otherwise a background
//! process could hold the output pipes open and the run would never end.

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::child::{self, Spawned};
use super::presets::{self, Action, PresetError, Step, StepContext};
use super::transient::TransientPatterns;
use crate::config::Component;

/// How long a stopped process gets between SIGINT and SIGKILL by default:
/// enough for tofu to write its state and release its lock.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The longest grace period on cancellation, whatever [`Job::grace`] says.
/// GitHub kills a cancelled job 7.5 s after its SIGINT, and the orchestrator
/// still has to record the cancellation and persist state in that window.
pub const MAX_CANCEL_GRACE: Duration = Duration::from_secs(5);

/// How many output lines of the last attempt a [`RunResult`] keeps.
pub const TAIL_LINES: usize = 50;

/// Longest line delivered whole; longer ones arrive in pieces of this size,
/// so a process printing without newlines cannot exhaust memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// How long to keep reading output after a step's process group was killed.
/// Only a process that left the group can hold the pipes open that long.
const DRAIN: Duration = Duration::from_secs(1);

/// The delays between attempts: exponential from `base`, capped at `max`,
/// each with random jitter of up to as much again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry, before jitter.
    pub base: Duration,
    /// The longest delay, before jitter.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(5),
            max: Duration::from_secs(60),
        }
    }
}

/// Everything needed to run one action of one component.
#[derive(Debug, Clone)]
pub struct Job {
    /// The commands, run in order; the first that fails fails the attempt.
    pub steps: Vec<Step>,
    /// The working directory of every step.
    pub cwd: PathBuf,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// How long one attempt (all its steps) may run.
    pub timeout: Duration,
    /// Extra attempts after a transient failure.
    pub retries: u32,
    /// The output that makes a failure transient.
    pub transient: Arc<TransientPatterns>,
    /// Time between SIGINT and SIGKILL when a step is stopped; on
    /// cancellation at most [`MAX_CANCEL_GRACE`].
    pub grace: Duration,
    /// The delays between attempts.
    pub backoff: Backoff,
    /// Once the run is cancelled, fired to kill the step at once rather
    /// than after `grace`.
    pub kill_now: CancellationToken,
}

impl Job {
    /// The job performing `action` on `component` in the context's
    /// environment and cloud, with the default grace period and backoff.
    /// The environment holds the component's `env` (with `{env}` and
    /// `{cloud}` filled in), then `ORCHESTRATOR_ENV`,
    /// `ORCHESTRATOR_CLOUD`, `ORCHESTRATOR_COMPONENT` and
    /// `ORCHESTRATOR_CONFIG` (the values file) and, when the context names
    /// them, `ORCHESTRATOR_OUTPUTS` and [`RUN_ID_VAR`], which win over the
    /// former.
    pub fn new(
        component: &Component,
        action: Action,
        ctx: &StepContext,
        transient: Arc<TransientPatterns>,
    ) -> Result<Job, PresetError> {
        let steps = presets::steps(component, action, ctx)?;
        let mut env: Vec<(String, String)> = component
            .env
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    crate::config::model::expand(v, &ctx.env, &ctx.cloud),
                )
            })
            .collect();
        env.extend([
            ("ORCHESTRATOR_ENV".to_string(), ctx.env.to_string()),
            ("ORCHESTRATOR_CLOUD".to_string(), ctx.cloud.to_string()),
            (
                "ORCHESTRATOR_COMPONENT".to_string(),
                component.name.to_string(),
            ),
            (
                "ORCHESTRATOR_CONFIG".to_string(),
                ctx.values_file.to_string_lossy().into_owned(),
            ),
        ]);
        if let Some(outputs) = &ctx.outputs_file {
            env.push((
                "ORCHESTRATOR_OUTPUTS".to_string(),
                outputs.to_string_lossy().into_owned(),
            ));
        }
        if let Some(run) = ctx.run_id {
            env.push((RUN_ID_VAR.to_string(), run.to_string()));
        }
        Ok(Job {
            steps,
            cwd: ctx.workdir.clone(),
            env,
            timeout: component.timeout,
            retries: component.retries,
            transient,
            grace: DEFAULT_GRACE,
            backoff: Backoff::default(),
            kill_now: CancellationToken::new(),
        })
    }
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// What happens during a run, delivered as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEvent {
    /// A step is starting.
    Step {
        /// The attempt it belongs to, from 1.
        attempt: u32,
        /// The command line, as [`Step`] displays it.
        command: String,
    },
    /// One line of output, without its line ending; invalid UTF-8 replaced.
    Line {
        /// The stream it was written to.
        stream: Stream,
        /// The text.
        text: String,
    },
    /// An attempt failed transiently; the next starts after `delay`.
    Retrying {
        /// The attempt about to start (2 for the first retry).
        attempt: u32,
        /// How long until it starts.
        delay: Duration,
        /// The transient pattern the failed attempt's output matched.
        pattern: String,
    },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step exited with status 0.
    Succeeded,
    /// A step exited unsuccessfully.
    Failed {
        /// Its exit code, when it exited normally.
        code: Option<i32>,
        /// The signal that ended it, when one did.
        signal: Option<i32>,
        /// The step's command line.
        step: String,
    },
    /// A step could not be started (program missing, bad working directory).
    NotStarted {
        /// The step's command line.
        step: String,
        /// Why it could not start.
        error: String,
    },
    /// An attempt ran longer than the job's timeout and was stopped.
    TimedOut {
        /// The timeout that expired.
        after: Duration,
    },
    /// The run was cancelled and its processes stopped.
    Cancelled,
}

impl Outcome {
    /// True for [`Outcome::Succeeded`].
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Succeeded)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Succeeded => f.write_str("succeeded"),
            Outcome::Failed {
                code: Some(code),
                step,
                ..
            } => write!(f, "`{step}` exited with code {code}"),
            Outcome::Failed {
                signal: Some(signal),
                step,
                ..
            } => write!(f, "`{step}` was killed by signal {signal}"),
            Outcome::Failed { step, .. } => write!(f, "`{step}` failed"),
            Outcome::NotStarted { step, error } => write!(f, "`{step}` could not start: {error}"),
            Outcome::TimedOut { after } => {
                write!(f, "timed out after {}", humantime::format_duration(*after))
            }
            Outcome::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    /// How it ended.
    pub outcome: Outcome,
    /// How many attempts started (0 when cancelled before the first).
    pub attempts: u32,
    /// The last [`TAIL_LINES`] output lines of the last attempt, both streams
    /// in the order they arrived.
    pub tail: Vec<String>,
}

/// Runs `job`, delivering its output and retries to `events` as they happen.
///
/// A failed attempt whose output matched a transient pattern is retried, up
/// to `job.retries` times, after a backoff delay. Timeouts, cancellation and
/// other failures are final. When `cancel` fires, the running step is
/// stopped (SIGINT to its process group, SIGKILL after `job.grace`, at most
/// [`MAX_CANCEL_GRACE`]) and nothing new starts, not even a retry waiting for
/// its delay.
pub async fn run(
    job: &Job,
    cancel: &CancellationToken,
    events: &mut (dyn FnMut(RunEvent) + Send),
) -> RunResult {
    let mut delays = ExponentialBuilder::new()
        .with_min_delay(job.backoff.base)
        .with_max_delay(job.backoff.max)
        .without_max_times()
        .with_jitter()
        // Seeded per run: a fixed seed would make parallel jobs that failed
        // together retry together, which is what jitter is meant to avoid.
        .with_jitter_seed(RandomState::new().build_hasher().finish())
        .build();
    let mut attempts = 0;
    let mut tail = Vec::new();
    loop {
        if cancel.is_cancelled() {
            return RunResult {
                outcome: Outcome::Cancelled,
                attempts,
                tail,
            };
        }
        attempts += 1;
        let attempt = run_attempt(job, attempts, cancel, events).await;
        tail = attempt.tail.into();
        let retry = match (&attempt.outcome, attempt.transient) {
            (Outcome::Failed { .. }, Some(pattern)) if attempts <= job.retries => pattern,
            _ => {
                return RunResult {
                    outcome: attempt.outcome,
                    attempts,
                    tail,
                };
            }
        };
        let delay = delays.next().unwrap_or(job.backoff.max);
        events(RunEvent::Retrying {
            attempt: attempts + 1,
            delay,
            pattern: retry,
        });
        tokio::select! {
            () = cancel.cancelled() => {}
            () = sleep(delay) => {}
        }
    }
}

/// What one attempt produced.
struct Attempt {
    outcome: Outcome,
    tail: VecDeque<String>,
    /// The first transient pattern any output line matched.
    transient: Option<String>,
}

impl Attempt {
    fn record(&mut self, job: &Job, text: &str) {
        // Once the tail is full, the line leaving it lends its buffer to
        // the one arriving.
        let mut kept = if self.tail.len() == TAIL_LINES {
            self.tail.pop_front().unwrap_or_default()
        } else {
            String::new()
        };
        kept.clear();
        kept.push_str(text);
        self.tail.push_back(kept);
        if self.transient.is_none() {
            self.transient = job.transient.match_line(text).map(str::to_string);
        }
    }
}

async fn run_attempt(
    job: &Job,
    number: u32,
    cancel: &CancellationToken,
    events: &mut (dyn FnMut(RunEvent) + Send),
) -> Attempt {
    let deadline = Instant::now() + job.timeout;
    let mut attempt = Attempt {
        outcome: Outcome::Succeeded,
        // Grows as lines come: a silent step allocates nothing.
        tail: VecDeque::new(),
        transient: None,
    };
    for step in &job.steps {
        if cancel.is_cancelled() {
            attempt.outcome = Outcome::Cancelled;
            break;
        }
        if Instant::now() >= deadline {
            attempt.outcome = Outcome::TimedOut { after: job.timeout };
            break;
        }
        let command = step.to_string();
        events(RunEvent::Step {
            attempt: number,
            command: command.clone(),
        });
        attempt.outcome =
            run_step(job, step, command, deadline, cancel, events, &mut attempt).await;
        if !attempt.outcome.is_success() {
            break;
        }
    }
    attempt
}

/// Why a step is being stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Timeout,
    Cancel,
}

async fn run_step(
    job: &Job,
    step: &Step,
    command: String,
    deadline: Instant,
    cancel: &CancellationToken,
    events: &mut (dyn FnMut(RunEvent) + Send),
    attempt: &mut Attempt,
) -> Outcome {
    let Spawned {
        mut child,
        stdout,
        stderr,
    } = match spawn(job, step) {
        Ok(spawned) => spawned,
        Err(error) => {
            return Outcome::NotStarted {
                step: command,
                error: error.to_string(),
            };
        }
    };
    let mut group = Group::new(child.id());
    let mut stdout = Some(Lines::new(stdout));
    let mut stderr = Some(Lines::new(stderr));

    let mut status: Option<std::io::Result<ExitStatus>> = None;
    let mut stop: Option<Stop> = None;
    let mut kill_at: Option<Instant> = None;
    let mut drain_until: Option<Instant> = None;
    // One timer serves the deadline, the kill after SIGINT and the drain
    // after the exit, since only one of them matters at a time; it is reset
    // when that changes rather than registered anew on every line.
    let alarm = sleep_until(deadline);
    tokio::pin!(alarm);
    loop {
        if stdout.is_none() && stderr.is_none() {
            if status.is_some() {
                break;
            }
            // Both pipes close as the process exits, a moment before its
            // exit is reported; asking at once saves waiting for the report.
            if let Ok(Some(exited)) = child.try_wait() {
                status = Some(Ok(exited));
                group.reaped();
                break;
            }
        }
        let next_alarm = match (&status, stop) {
            (Some(_), _) => drain_until,
            (None, Some(_)) => kill_at,
            (None, None) => Some(deadline),
        };
        if let Some(at) = next_alarm {
            if alarm.deadline() != at {
                alarm.as_mut().reset(at);
            }
        }
        // Timers and the exit come first: a process flooding its output must
        // not keep the timeout from firing.
        tokio::select! {
            biased;
            () = cancel.cancelled(), if stop != Some(Stop::Cancel) && status.is_none() => {
                // After a timeout SIGINT was already sent, and a second one
                // makes tofu abort without releasing its state lock; only
                // the kill may come sooner.
                if stop.is_none() {
                    group.signal(Signal::SIGINT);
                }
                stop = Some(Stop::Cancel);
                let kill = Instant::now() + job.grace.min(MAX_CANCEL_GRACE);
                kill_at = Some(kill_at.map_or(kill, |k| k.min(kill)));
            }
            () = &mut alarm, if next_alarm.is_some() => match (&status, stop) {
                // Drained as long as a left-over process may hold the pipes.
                (Some(_), _) => break,
                (None, None) => {
                    stop = Some(Stop::Timeout);
                    group.signal(Signal::SIGINT);
                    kill_at = Some(Instant::now() + job.grace);
                }
                (None, Some(_)) => {
                    group.signal(Signal::SIGKILL);
                    kill_at = None;
                }
            },
            // A second Ctrl-C: the grace is over.
            () = job.kill_now.cancelled(), if stop == Some(Stop::Cancel) && kill_at.is_some() && status.is_none() => {
                group.signal(Signal::SIGKILL);
                kill_at = None;
            }
            exited = child.next_exit(), if status.is_none() => {
                // Most SIGCHLDs are another step's.
                if let Some(exited) = exited.transpose() {
                    status = Some(exited);
                    group.reaped();
                    drain_until = Some(Instant::now() + DRAIN);
                }
            }
            line = next_line(&mut stdout) => deliver(job, Stream::Stdout, line, &mut stdout, events, attempt),
            line = next_line(&mut stderr) => deliver(job, Stream::Stderr, line, &mut stderr, events, attempt),
        }
    }

    if let Some(error) = child.start_error() {
        return Outcome::NotStarted {
            step: command,
            error: error.to_string(),
        };
    }
    match (stop, status) {
        (Some(Stop::Cancel), _) => Outcome::Cancelled,
        (Some(Stop::Timeout), _) => Outcome::TimedOut { after: job.timeout },
        (None, Some(Ok(status))) if status.success() => Outcome::Succeeded,
        (None, Some(Ok(status))) => {
            use std::os::unix::process::ExitStatusExt;
            Outcome::Failed {
                code: status.code(),
                signal: status.signal(),
                step: command,
            }
        }
        (None, _) => Outcome::Failed {
            code: None,
            signal: None,
            step: command,
        },
    }
}

fn spawn(job: &Job, step: &Step) -> std::io::Result<Spawned> {
    let path = job
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    // Its own process group (see `child`): signals reach the step's whole
    // process tree, and a Ctrl-C in the terminal reaches only the
    // orchestrator, which then stops the steps gracefully itself.
    let Some(program) = resolve(&step.program, path, &job.cwd) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("`{}` was not found on PATH", step.program),
        ));
    };
    child::spawn(&program, &step.args, &job.cwd, &job.env)
}

/// The full path of `program` on `path` (the job's PATH, else ours), looked
/// up once per program and PATH, or `None` when no PATH directory has it.
/// Spawning by bare name would make every child try each PATH directory
/// with `execve`, which a run of thousands of steps pays for in kernel
/// time, and `execve` of a bare name that is on no PATH would run a file
/// of that name in the component's directory, which a shell never does.
/// A name with a slash is a path, as in a shell. A relative PATH entry
/// (`bin`, or an empty one, which means `.`) is relative to `cwd`, the
/// directory the step runs in, as it would be for a shell there.
fn resolve(program: &str, path: Option<&str>, cwd: &Path) -> Option<PathBuf> {
    /// Resolved paths by program and PATH: a run has a few of each, so a
    /// list searched without allocating beats a map keyed by owned strings.
    /// Only what was found is kept (a component may install a program that
    /// its dependents run), and only for a PATH of absolute entries (what a
    /// relative one finds depends on the step's directory).
    type Resolved = Vec<(String, Option<String>, PathBuf)>;
    static RESOLVED: Mutex<Resolved> = Mutex::new(Vec::new());
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let known = |m: &Resolved| {
        m.iter()
            .find(|(p, on, _)| p == program && on.as_deref() == path)
            .map(|(_, _, found)| found.clone())
    };
    if let Some(found) = RESOLVED.lock().ok().and_then(|m| known(&m)) {
        return Some(found);
    }
    let search = path
        .map(str::to_string)
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    let executable = |candidate: &Path| {
        std::fs::metadata(candidate)
            .is_ok_and(|m| m.is_file() && crate::fingerprint::is_executable(&m))
    };
    let mut absolute = true;
    for dir in std::env::split_paths(&search) {
        let candidate = if dir.is_absolute() {
            dir.join(program)
        } else {
            absolute = false;
            let Ok(candidate) = std::path::absolute(cwd.join(dir).join(program)) else {
                continue;
            };
            candidate
        };
        if executable(&candidate) {
            if absolute && let Ok(mut m) = RESOLVED.lock() {
                m.push((
                    program.to_string(),
                    path.map(str::to_string),
                    candidate.clone(),
                ));
            }
            return Some(candidate);
        }
    }
    None
}

/// The next line of a stream still open; pending forever once it is closed,
/// so `select!` simply stops polling it.
async fn next_line<R: AsyncRead + Unpin>(
    lines: &mut Option<Lines<R>>,
) -> std::io::Result<Option<String>> {
    match lines {
        Some(lines) => lines.next_line().await,
        None => std::future::pending().await,
    }
}

fn deliver<R>(
    job: &Job,
    stream: Stream,
    line: std::io::Result<Option<String>>,
    reader: &mut Option<R>,
    events: &mut (dyn FnMut(RunEvent) + Send),
    attempt: &mut Attempt,
) {
    match line {
        Ok(Some(text)) => {
            attempt.record(job, &text);
            events(RunEvent::Line { stream, text });
        }
        // End of output, or a read error, which can only be the pipe going
        // away: either way there is nothing more to read.
        Ok(None) | Err(_) => *reader = None,
    }
}

/// A step's process group, killed with SIGKILL if the run is dropped while
/// its leader still runs.
struct Group {
    pgid: Pid,
    armed: bool,
}

impl Group {
    fn new(pid: u32) -> Self {
        Group {
            pgid: Pid::from_raw(pid as i32),
            armed: true,
        }
    }

    fn signal(&self, signal: Signal) {
        // ESRCH means the group is already gone, which is the goal; nothing
        // else can fail for a group this process created.
        let _ = killpg(self.pgid, signal);
    }

    /// The leader was reaped: kills whatever it left behind, which would
    /// otherwise hold the pipes open, and stops guarding the group. Its id
    /// is still safe to signal: while members remain the kernel keeps the
    /// id reserved, and once the group is empty pids are handed out in
    /// sequence, so the id just freed is not reused within this instant.
    fn reaped(&mut self) {
        self.signal(Signal::SIGKILL);
        self.armed = false;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.armed {
            self.signal(Signal::SIGKILL);
        }
    }
}

/// Whether no process with id `pid` runs on this machine (any more).
/// Signal 0 asks without touching it; an id that is not a single process's
/// (0, or too large) is never taken for gone. A process that has exited
/// but not been reaped (a zombie: in a container whose first process
/// reaps nothing, a killed run stays one) is gone too.
pub fn process_gone(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    match nix::sys::signal::kill(Pid::from_raw(raw), None) {
        Err(nix::errno::Errno::ESRCH) => true,
        Err(_) => false,
        Ok(()) => is_zombie(pid),
    }
}

/// The variable that names the run in the environment of every process a
/// component starts (inherited by the processes those start in turn).
pub const RUN_ID_VAR: &str = "ORCHESTRATOR_RUN_ID";

/// A process still running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Its id.
    pub pid: u32,
    /// Its command line, shortened.
    pub command: String,
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `{}`", self.pid, self.command)
    }
}

/// How much of a command line [`Process`] keeps.
const COMMAND_CHARS: usize = 60;

/// The processes of run `run` still running here (in this PID namespace,
/// as this user can see them): those whose environment has
/// [`RUN_ID_VAR`] set to it, which components and everything they start
/// inherit, so what a run killed outright left behind is found whether or
/// not it stayed in its process group. This process is never among them.
pub fn processes_of_run(run: u64) -> Vec<Process> {
    let wanted = format!("{RUN_ID_VAR}={run}");
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<Process> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            // A zombie's environment reads as empty: it runs nothing.
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            if pid == me || !environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes()) {
                return None;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let words: Vec<String> = cmdline
                .split(|b| *b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            let mut command = words.join(" ");
            if command.chars().count() > COMMAND_CHARS {
                command = command.chars().take(COMMAND_CHARS - 1).collect();
                command.push('…');
            }
            Some(Process { pid, command })
        })
        .collect();
    found.sort_by_key(|p| p.pid);
    found
}

/// Whether `/proc` shows `pid` as exited and not yet reaped.
fn is_zombie(pid: u32) -> bool {
    // The state follows the name, which is in parentheses and may hold
    // spaces or parentheses of its own: it comes after the last `)`.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// Splits a byte stream into lines, replacing invalid UTF-8 and cutting
/// lines longer than [`MAX_LINE_BYTES`].
///
/// The buffer starts empty and grows with what arrives, so a step that
/// prints nothing costs no buffer at all, and one that prints a lot reads
/// it in large pieces.
struct Lines<R> {
    reader: R,
    /// Bytes read and not yet delivered start at `start`.
    buf: Vec<u8>,
    start: usize,
}

/// The least room offered to one read.
const MIN_READ: usize = 512;

impl<R: AsyncRead + Unpin> Lines<R> {
    fn new(reader: R) -> Self {
        Lines {
            reader,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// The next line without its ending, or `None` at the end of the stream.
    /// Cancel-safe: a read only ever appends to `buf` when it completes, so
    /// a dropped call loses nothing.
    async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        loop {
            if let Some(line) = self.take_line() {
                return Ok(Some(line));
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            if self.buf.capacity() - self.buf.len() < MIN_READ {
                // Doubles the capacity as output keeps coming.
                self.buf.reserve(MIN_READ.max(self.buf.len()));
            }
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let rest = std::mem::take(&mut self.buf);
                return Ok(Some(decode(&rest)));
            }
        }
    }

    fn take_line(&mut self) -> Option<String> {
        let pending = &self.buf[self.start..];
        // A line is cut only once more than the limit came without a
        // newline, so one of exactly the limit arrives whole.
        let end = match pending.iter().position(|&b| b == b'\n') {
            Some(newline) if newline <= MAX_LINE_BYTES => newline,
            _ if pending.len() > MAX_LINE_BYTES => MAX_LINE_BYTES,
            _ => return None,
        };
        let line = decode(&pending[..end]);
        let newline = usize::from(pending.get(end) == Some(&b'\n'));
        self.start += end + newline;
        Some(line)
    }
}

/// A line of output as the text a terminal would show of it, which is what
/// the terminal, the log, the failure issue, the transient patterns and the
/// redactor all get. Escape sequences (colours, cursor moves) and other
/// control characters but tabs are dropped: tofu and terraform colour their
/// output whether or not it goes to a terminal, and a log or an issue would
/// show the codes as text (`[31mError`), and a secret-looking key split by
/// them would not be recognised. A carriage return goes back to the start of
/// the line, as progress that redraws itself in place does, and what follows
/// it writes over what came before. Bytes that are not UTF-8 are replaced.
fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes);
    if text.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f)) {
        return text.into_owned();
    }
    let plain = anstream::adapter::strip_str(&text).to_string();
    if !plain.bytes().any(|b| b < 0x20 && b != b'\t') {
        return plain;
    }
    let mut shown: Vec<char> = Vec::with_capacity(plain.len());
    let mut column = 0;
    for c in plain.chars() {
        if c == '\r' {
            column = 0;
            continue;
        }
        if c.is_control() && c != '\t' {
            continue;
        }
        match shown.get_mut(column) {
            Some(old) => *old = c,
            None => shown.push(c),
        }
        column += 1;
    }
    shown.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lines_are_the_text_a_terminal_would_show() {
        // As tofu prints an error, coloured whether or not it goes to a
        // terminal.
        assert_eq!(
            decode(b"\x1b[31m\xe2\x94\x82\x1b[0m \x1b[0m\x1b[1m\x1b[31mError: \x1b[0m\x1b[0m\x1b[1mError acquiring the state lock\x1b[0m"),
            "\u{2502} Error: Error acquiring the state lock"
        );
        // Progress redrawn in place: each carriage return writes over the
        // line from its start, as far as the new text goes.
        assert_eq!(
            decode(b"pulling 10%\rpulling 55%\rpulling 100%"),
            "pulling 100%"
        );
        assert_eq!(decode(b"abcdef\rXY"), "XYcdef");
        assert_eq!(decode(b"\x1b[2K\rdone\x1b[K"), "done");
        // Other control characters go; tabs stay; a CRLF ending is an ending.
        assert_eq!(decode(b"a\x07b\x08c\td\r"), "abc\td");
        // An escape sequence that does not end, and bytes that are not
        // UTF-8, still leave the text around them.
        assert_eq!(decode(b"ok \xff\xfe end"), "ok \u{fffd}\u{fffd} end");
        assert_eq!(decode(b"before\x1b[31"), "before");
        assert_eq!(decode(b"plain text: 100% done"), "plain text: 100% done");
        assert_eq!(decode(b""), "");
    }

    #[test]
    fn a_running_process_is_not_gone_and_an_exited_one_is_even_unreaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(!process_gone(pid), "running");
        child.kill().unwrap();
        // Killed and not reaped: a zombie until `wait`.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !is_zombie(pid) {
            assert!(std::time::Instant::now() < deadline, "never exited");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(process_gone(pid), "exited, not reaped");
        child.wait().unwrap();
        assert!(process_gone(pid), "reaped");
        assert!(!process_gone(0));
        assert!(!process_gone(u32::MAX));
        // This process: alive.
        assert!(!process_gone(std::process::id()));
    }

    #[test]
    fn the_processes_of_a_run_are_those_that_inherited_its_id() {
        let run = u64::from(std::process::id()) << 20 | 0x5eed;
        // A shell that starts a grandchild of its own group, then waits.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .env(RUN_ID_VAR, run.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        let found = processes_of_run(run);
        assert_eq!(
            found,
            [
                Process {
                    pid: child.id(),
                    command: "sh -c sleep 30 & echo $!; wait".into()
                },
                Process {
                    pid: grandchild,
                    command: "sleep 30".into()
                },
            ]
        );
        assert!(processes_of_run(run + 1).is_empty(), "another run's");
        nix::sys::signal::kill(Pid::from_raw(grandchild as i32), Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        assert!(processes_of_run(run).is_empty());
    }

    async fn split(input: &[u8]) -> Vec<String> {
        let mut lines = Lines::new(input);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn lines_lose_their_endings_and_keep_a_last_line_without_one() {
        assert_eq!(
            split(b"one\ntwo\r\n\nlast").await,
            ["one", "two", "", "last"]
        );
    }

    #[tokio::test]
    async fn invalid_utf8_is_replaced_not_an_error() {
        assert_eq!(split(b"bad \xff byte\n").await, ["bad \u{fffd} byte"]);
    }

    #[tokio::test]
    async fn overlong_lines_arrive_in_pieces() {
        let mut input = vec![b'x'; MAX_LINE_BYTES + 10];
        input.extend_from_slice(b"\nnext\n");
        let lines = split(&input).await;
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        assert_eq!(lines[1], "x".repeat(10));
        assert_eq!(lines[2], "next");
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_limit_arrives_whole_without_an_empty_one_after_it() {
        let mut input = vec![b'x'; MAX_LINE_BYTES];
        input.extend_from_slice(b"\nnext\n");
        let lines = split(&input).await;
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        assert_eq!(lines[1], "next");
    }

    #[tokio::test]
    async fn silence_is_no_lines_at_all() {
        assert!(split(b"").await.is_empty());
    }

    #[test]
    fn outcomes_read_as_sentences() {
        let failed = Outcome::Failed {
            code: Some(1),
            signal: None,
            step: "tofu init -input=false".to_string(),
        };
        assert_eq!(
            failed.to_string(),
            "`tofu init -input=false` exited with code 1"
        );
        let timed_out = Outcome::TimedOut {
            after: Duration::from_secs(90),
        };
        assert_eq!(timed_out.to_string(), "timed out after 1m 30s");
    }
}
