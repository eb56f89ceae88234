//! The promotion gate: whether an environment is ready to be promoted into
//! the next one, and if not, exactly what is not ready.
//!
//! Ready means: the target is promoted from this source (`promote_from`),
//! and in every cloud of the source each selected component succeeded at
//! the inputs it has now, nothing is failed or running, and no run holds the
//! lock. Pure: it reads the state and fingerprints the caller observed.

use std::fmt;

use serde_json::{Value, json};

use crate::config::{CloudName, ComponentName, Config, EnvName};
use crate::exec::engine::Observation;
use crate::state::Status;

/// One thing that keeps the source from being promoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// The target is not promoted from the source.
    WrongSource {
        /// The target.
        target: EnvName,
        /// What it is promoted from, if anything.
        promote_from: Option<EnvName>,
        /// What was asked.
        source: EnvName,
    },
    /// Nothing is recorded for this cloud: no state file yet.
    NoState {
        /// The cloud.
        cloud: CloudName,
    },
    /// A run holds the source's state lock on this cloud.
    LockHeld {
        /// The cloud.
        cloud: CloudName,
        /// Who holds the lock, in one line.
        lock: String,
    },
    /// A selected component has no record: it was never deployed.
    NeverDeployed {
        /// The cloud.
        cloud: CloudName,
        /// The component.
        component: ComponentName,
    },
    /// A component's last run did not succeed (for selected components), or
    /// failed or is running (for the others).
    Status {
        /// The cloud.
        cloud: CloudName,
        /// The component.
        component: ComponentName,
        /// Its recorded status.
        status: Status,
    },
    /// A selected component succeeded, but with other inputs than it has
    /// now: what would be promoted was never deployed in the source.
    Stale {
        /// The cloud.
        cloud: CloudName,
        /// The component.
        component: ComponentName,
    },
}

impl NotReady {
    /// A short name for the reason, for JSON.
    pub fn reason(&self) -> &'static str {
        match self {
            NotReady::WrongSource { .. } => "wrong_source",
            NotReady::NoState { .. } => "no_state",
            NotReady::LockHeld { .. } => "lock_held",
            NotReady::NeverDeployed { .. } => "never_deployed",
            NotReady::Status { status, .. } => status.as_str(),
            NotReady::Stale { .. } => "stale",
        }
    }

    /// The reason in a sentence, with the source environment before the
    /// cloud: `dev/aws: clusters failed`.
    pub fn describe(&self, source: &EnvName) -> String {
        match self {
            NotReady::WrongSource { .. } => self.to_string(),
            _ => format!("{source}/{self}"),
        }
    }

    /// The reason as JSON: its name, where, and the sentence.
    pub fn to_json(&self, source: &EnvName) -> Value {
        let (cloud, component) = match self {
            NotReady::WrongSource { .. } => (None, None),
            NotReady::NoState { cloud } | NotReady::LockHeld { cloud, .. } => (Some(cloud), None),
            NotReady::NeverDeployed { cloud, component }
            | NotReady::Status {
                cloud, component, ..
            }
            | NotReady::Stale { cloud, component } => (Some(cloud), Some(component)),
        };
        json!({
            "reason": self.reason(),
            "cloud": cloud,
            "component": component,
            "message": self.describe(source),
        })
    }
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::WrongSource {
                target,
                promote_from: Some(from),
                source,
            } => write!(f, "{target} is promoted from {from}, not from {source}"),
            NotReady::WrongSource {
                target,
                promote_from: None,
                ..
            } => write!(
                f,
                "{target} has no promote_from: nothing is promoted into it"
            ),
            NotReady::NoState { cloud } => {
                write!(
                    f,
                    "{cloud}: nothing is recorded yet (no state file): deploy it first"
                )
            }
            NotReady::LockHeld { cloud, lock } => {
                write!(f, "{cloud}: a run holds the state lock ({lock})")
            }
            NotReady::NeverDeployed { cloud, component } => {
                write!(f, "{cloud}: {component} was never deployed")
            }
            NotReady::Status {
                cloud,
                component,
                status,
            } => {
                let what = match status {
                    Status::Failed => "failed",
                    Status::Running => "is still running (or its run died)",
                    Status::Pending => "is pending: its run has not started it",
                    Status::Skipped => "was skipped in its last run",
                    Status::Cancelled => "was cancelled in its last run",
                    Status::Destroyed => "is destroyed",
                    Status::Succeeded => "succeeded",
                };
                write!(f, "{cloud}: {component} {what}")
            }
            NotReady::Stale { cloud, component } => write!(
                f,
                "{cloud}: {component} changed since it last succeeded (its files, values or definition): deploy it first"
            ),
        }
    }
}

/// Everything that keeps `source` from being promoted into `target` for the
/// `selected` components (all when empty), given each cloud of the source
/// as observed. Empty when the source is ready.
pub fn check(
    config: &Config,
    source: &EnvName,
    target: &EnvName,
    selected: &[ComponentName],
    observations: &[Observation],
) -> Vec<NotReady> {
    let mut out = Vec::new();
    let promote_from = config
        .environment(target.as_str())
        .and_then(|e| e.promote_from.clone());
    if promote_from.as_ref() != Some(source) {
        out.push(NotReady::WrongSource {
            target: target.clone(),
            promote_from,
            source: source.clone(),
        });
    }
    for o in observations {
        let cloud = &o.cloud;
        let Some(state) = &o.state else {
            out.push(NotReady::NoState {
                cloud: cloud.clone(),
            });
            continue;
        };
        if let Some(lock) = &state.lock {
            let holders: Vec<String> = lock.holders.iter().map(|h| h.describe()).collect();
            out.push(NotReady::LockHeld {
                cloud: cloud.clone(),
                lock: holders.join("; "),
            });
        }
        for (i, c) in config.components.iter().enumerate() {
            let chosen = selected.is_empty() || selected.contains(&c.name);
            let record = state.components.get(&c.name);
            let (cloud, component) = (cloud.clone(), c.name.clone());
            match record.map(|r| r.status) {
                None if chosen => out.push(NotReady::NeverDeployed { cloud, component }),
                Some(Status::Succeeded) if chosen && !o.observed[i].is_current() => {
                    out.push(NotReady::Stale { cloud, component })
                }
                Some(status @ (Status::Failed | Status::Running)) => out.push(NotReady::Status {
                    cloud,
                    component,
                    status,
                }),
                Some(status) if chosen && status != Status::Succeeded => {
                    out.push(NotReady::Status {
                        cloud,
                        component,
                        status,
                    })
                }
                _ => {}
            }
        }
    }
    out
}
