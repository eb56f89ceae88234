//! What happens during a run, as events, and the subscribers that turn them
//! into output and records.
//!
//! The scheduler and the runner only emit events. The terminal report, the
//! per-component log files and the state recorder each subscribe, so adding
//! an output (GitHub log groups, a step summary) never touches the engine.

use std::time::{Duration, SystemTime};

use crate::config::{CloudName, ComponentName, EnvName};
pub use crate::exec::runner::Stream;
use crate::plan::Action;
pub use crate::state::Status;

/// One component on one cloud.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The cloud.
    pub cloud: CloudName,
    /// The component.
    pub component: ComponentName,
}

/// The end of one component's part in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// Which component.
    pub target: Target,
    /// What it was asked to do.
    pub action: Action,
    /// How it ended: succeeded (or destroyed, for a destroy), failed,
    /// skipped or cancelled.
    pub status: Status,
    /// Attempts made (0 when it never started).
    pub attempts: u32,
    /// When it started, if it did.
    pub started_at: Option<SystemTime>,
    /// When it ended.
    pub finished_at: SystemTime,
    /// Why it failed, was skipped or cancelled.
    pub error: Option<String>,
    /// Its fingerprint at the start of the run.
    pub fingerprint: String,
    /// What it reported as outputs (an object), on success.
    pub outputs: serde_json::Map<String, serde_json::Value>,
    /// The last lines it printed, for failure reports.
    pub tail: Vec<String>,
}

impl Finished {
    /// How long it ran (zero when it never started).
    pub fn duration(&self) -> Duration {
        self.started_at
            .and_then(|s| self.finished_at.duration_since(s).ok())
            .unwrap_or_default()
    }
}

/// Something that happened in a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The run begins: what it will act on.
    RunStarted {
        /// The run's id.
        run_id: u64,
        /// The environment.
        environment: EnvName,
        /// Every component the run will act on, with its action.
        targets: Vec<(Target, Action)>,
    },
    /// A component started.
    Started {
        /// Which component.
        target: Target,
        /// What it was asked to do.
        action: Action,
        /// When.
        at: SystemTime,
    },
    /// A component is about to run a command; announced, not printed by it.
    Step {
        /// Which component.
        target: Target,
        /// The command line, as a shell would show it.
        command: String,
    },
    /// A component printed a line.
    Line {
        /// Which component.
        target: Target,
        /// Which stream.
        stream: Stream,
        /// The line, without its newline.
        text: String,
    },
    /// A component failed in a way that looks transient and will be retried.
    Retrying {
        /// Which component.
        target: Target,
        /// The attempt that failed.
        attempt: u32,
        /// How long until the next attempt.
        delay: Duration,
        /// The transient-error pattern its output matched.
        pattern: String,
    },
    /// A component is done with this run.
    Finished(Box<Finished>),
    /// The run is over.
    RunFinished {
        /// Whether it succeeded, failed or was cancelled.
        result: RunResult,
    },
}

/// How a whole run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunResult {
    /// Every component succeeded.
    Succeeded,
    /// At least one component failed or was skipped.
    Failed,
    /// The run was cancelled.
    Cancelled,
}

impl RunResult {
    /// The result as reports print it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Succeeded => "succeeded",
            RunResult::Failed => "failed",
            RunResult::Cancelled => "cancelled",
        }
    }
}

/// Receives every event of a run, in order.
pub trait Subscriber: Send {
    /// Handles one event. A subscriber that cannot do its job (a full disk)
    /// reports the problem itself; it never stops the run.
    fn on_event(&mut self, event: &Event);

    /// Called whenever no more events are waiting, so output buffered over
    /// a burst of events can be written in one go.
    fn flush(&mut self) {}
}

/// Whether the targets of a run span more than one cloud, so that reports
/// must name the cloud beside each component.
pub fn several_clouds(targets: &[(Target, Action)]) -> bool {
    targets.iter().any(|(t, _)| t.cloud != targets[0].0.cloud)
}
