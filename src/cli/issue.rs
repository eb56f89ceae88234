//! Failure issues from the command line: `issue report` and `issue resolve`
//! work from the recorded state (for a workflow's `if: failure()` step), and
//! [`after_run`] is the step `apply` and `destroy` take with
//! `--open-issue-on-failure`.
//!
//! Failure issues are a report about the run, not part of it: when GitHub
//! cannot be reached, a run still ends with its own exit code, and only a
//! warning says the issues were not updated. The `issue` commands exit 1 in
//! that case (2 when there is no token or repository), except on a pull
//! request from a fork, whose read-only token can never write: that is a
//! warning and exit 0.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::{
    Failure, Format, GithubArgs, IssueCommand, check_values, environment, json, load,
    selected_components,
};
use crate::config::{CloudName, ComponentName, Config, EnvName};
use crate::events::{Finished, Status};
use crate::exec::runner::TAIL_LINES;
use crate::github::issues::{Failure as Reported, Issues, Key};
use crate::github::{self, Client, RunContext};
use crate::graph::Walk;
use crate::redact::Redactor;
use crate::report::logs::LOGS_DIR;
use crate::state::store;

/// What to tell GitHub: failures to report and recoveries to close.
#[derive(Debug, Default)]
struct Work {
    failures: Vec<Reported>,
    /// Each recovered component, what happened to it, and the run's id.
    recoveries: Vec<(Key, &'static str, u64)>,
}

impl Work {
    fn is_empty(&self) -> bool {
        self.failures.is_empty() && self.recoveries.is_empty()
    }
}

/// What was done about one component.
struct Done {
    key: Key,
    what: String,
    issue: Option<u64>,
}

pub(super) fn command(
    file: &Path,
    command: IssueCommand,
    out: &mut dyn Write,
) -> Result<i32, Failure> {
    let (args, report) = match command {
        IssueCommand::Report(args) => (args, true),
        IssueCommand::Resolve(args) => (args, false),
    };
    let config = load(file)?;
    let (env, clouds) = environment(&config, &args.at.env, args.at.cloud.as_deref())?;
    let only = selected_components(&config, &args.components)?;
    check_values(&config, &env)?;
    let mut work = Work::default();
    for cloud in &clouds {
        let path = store::path(&config.root, &config.state.dir, &env, cloud);
        let Some(state) = store::read(&path, &env, cloud)? else {
            continue;
        };
        let skipped: Vec<&ComponentName> = state
            .components
            .iter()
            .filter(|(_, r)| r.status == Status::Skipped)
            .map(|(n, _)| n)
            .collect();
        for (name, record) in &state.components {
            if !only.is_empty() && !only.contains(name) {
                continue;
            }
            let key = Key {
                env: env.clone(),
                cloud: cloud.clone(),
                component: name.clone(),
            };
            let local_run_id = record.run.as_ref().map_or(0, |r| r.id);
            match (report, record.status) {
                (true, Status::Failed) => work.failures.push(Reported {
                    key,
                    action: record.action.as_str().to_string(),
                    error: record.error.clone(),
                    attempts: record.attempts,
                    tail: log_tail(&config.root, local_run_id, cloud, name),
                    skipped: dependents_among(&config, name, skipped.iter().copied()),
                    finished_at: record.finished_at.map(|t| t.to_system_time()),
                    commit: record.commit.clone(),
                    local_run_id,
                }),
                (false, Status::Succeeded) => {
                    work.recoveries.push((key, "succeeded", local_run_id))
                }
                (false, Status::Destroyed) => {
                    work.recoveries.push((key, "was destroyed", local_run_id))
                }
                _ => {}
            }
        }
    }
    if work.is_empty() {
        let what = if report {
            "no component is recorded as failed"
        } else {
            "no component is recorded as succeeded or destroyed"
        };
        match args.at.format {
            Format::Json => out.write_all(json(&json!({ "issues": [] })).as_bytes())?,
            Format::Text => eprintln!("Nothing to do: {what} in {env}."),
        }
        return Ok(0);
    }
    let token = github::token(args.github.github_token.as_deref());
    let redactor = redactor(&config, &env, token.as_deref())?;
    let run = RunContext::from_env();
    let (done, error) = execute(&config, &run, token, redactor, &work);
    match args.at.format {
        Format::Json => {
            let issues: Vec<serde_json::Value> = done
                .iter()
                .map(|d| {
                    json!({"cloud": d.key.cloud, "component": d.key.component,
                           "result": d.what, "issue": d.issue})
                })
                .collect();
            out.write_all(json(&json!({ "issues": issues })).as_bytes())?;
        }
        Format::Text => done.iter().for_each(print_done),
    }
    match error {
        None => Ok(0),
        Some(e) if e.is_not_permitted() && run.is_fork_pull_request() => {
            eprintln!("warning: {e}");
            eprintln!(
                "  = note: this run is for a pull request from a fork, whose token can only read; failure issues are left alone"
            );
            Ok(0)
        }
        Some(e) => Err(Failure::GitHub(e)),
    }
}

/// The failure-issue step after a run: a failed component's issue is opened
/// or commented on, a component that succeeded (or was destroyed) has its
/// open issue closed. Problems are warnings: the run's result stands.
pub(super) fn after_run(
    config: &Config,
    env: &EnvName,
    finished: &[Finished],
    github: &GithubArgs,
    redactor: &Redactor,
    local_run_id: u64,
    commit: Option<String>,
) {
    let mut work = Work::default();
    for f in finished {
        let key = Key {
            env: env.clone(),
            cloud: f.target.cloud.clone(),
            component: f.target.component.clone(),
        };
        match f.status {
            Status::Failed => {
                let skipped = finished
                    .iter()
                    .filter(|s| s.status == Status::Skipped && s.target.cloud == f.target.cloud)
                    .map(|s| &s.target.component);
                work.failures.push(Reported {
                    key,
                    action: f.action.as_str().to_string(),
                    error: f.error.clone(),
                    attempts: f.attempts,
                    tail: f.tail.clone(),
                    skipped: dependents_among(config, &f.target.component, skipped),
                    finished_at: Some(f.finished_at),
                    commit: commit.clone(),
                    local_run_id,
                })
            }
            Status::Succeeded => work.recoveries.push((key, "succeeded", local_run_id)),
            Status::Destroyed => work.recoveries.push((key, "was destroyed", local_run_id)),
            _ => {}
        }
    }
    if work.is_empty() {
        return;
    }
    let run = RunContext::from_env();
    let token = github::token(github.github_token.as_deref());
    let (done, error) = execute(config, &run, token, redactor.clone(), &work);
    done.iter().for_each(print_done);
    if let Some(e) = error {
        eprintln!("warning: failure issues were not updated: {e}");
        if e.is_not_permitted() && run.is_fork_pull_request() {
            eprintln!(
                "  = note: this run is for a pull request from a fork, whose token can only read"
            );
        } else if let Some(hint) = e.hint() {
            eprintln!("  = help: {hint}");
        }
    }
}

/// Does the work against GitHub, in order, stopping at the first error:
/// what was done, and the error if there was one.
fn execute(
    config: &Config,
    run: &RunContext,
    token: Option<String>,
    redactor: Redactor,
    work: &Work,
) -> (Vec<Done>, Option<github::Error>) {
    let mut done = Vec::new();
    let session = match connect(&config.root, run, token, redactor) {
        Ok(s) => s,
        Err(e) => return (done, Some(e)),
    };
    let (runtime, client) = session;
    let issues = Issues::new(
        &client,
        config.issues.labels.clone(),
        config.issues.assignees.clone(),
        run,
    );
    let error = runtime.block_on(async {
        for failure in &work.failures {
            let (what, issue) = match issues.report(failure).await {
                Ok(github::issues::Reported::Opened(n)) => ("opened", n),
                Ok(github::issues::Reported::Commented(n)) => ("commented", n),
                Ok(github::issues::Reported::AlreadyReported(n)) => ("already-reported", n),
                Err(e) => return Some(e),
            };
            done.push(Done {
                key: failure.key.clone(),
                what: what.to_string(),
                issue: Some(issue),
            });
        }
        for (key, how, local_run_id) in &work.recoveries {
            match issues.resolve(key, how, *local_run_id).await {
                Ok(closed) => done.extend(closed.into_iter().map(|n| Done {
                    key: key.clone(),
                    what: "closed".to_string(),
                    issue: Some(n),
                })),
                Err(e) => return Some(e),
            }
        }
        None
    });
    (done, error)
}

/// A runtime and a client for the repository, or why there cannot be one.
pub(super) fn connect(
    root: &Path,
    run: &RunContext,
    token: Option<String>,
    redactor: Redactor,
) -> Result<(tokio::runtime::Runtime, Client), github::Error> {
    let token = token.ok_or_else(|| {
        github::Error::setup(
            "no GitHub token: pass --github-token or set GITHUB_TOKEN",
            "in a workflow, add `env: {GITHUB_TOKEN: ${{ github.token }}}` to the step, or the action's `github-token` input",
        )
    })?;
    let repo = github::Repo::detect(root)?;
    let mut settings = github::Settings::from_env()?;
    settings.run_link = run.link();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            github::Error::setup(
                format!("cannot start the async runtime: {e}"),
                "this is a bug",
            )
        })?;
    let client = {
        let _inside = runtime.enter();
        Client::new(settings, &token, repo, redactor)?
    };
    Ok((runtime, client))
}

/// The run's redactor: the environment's secrets and the token.
pub(super) fn redactor(
    config: &Config,
    env: &EnvName,
    token: Option<&str>,
) -> Result<Redactor, Failure> {
    Redactor::for_environment(config, env, token.as_slice()).map_err(Failure::Config)
}

fn print_done(d: &Done) {
    let at = format!("{} on {}/{}", d.key.component, d.key.env, d.key.cloud);
    match (d.what.as_str(), d.issue) {
        ("opened", Some(n)) => eprintln!("Failure issue #{n} opened for {at}."),
        ("commented", Some(n)) => eprintln!("Failure issue #{n} updated: {at} failed again."),
        ("already-reported", Some(n)) => {
            eprintln!("Failure issue #{n} already has this run's report for {at}.")
        }
        ("closed", Some(n)) => eprintln!("Failure issue #{n} closed: {at} recovered."),
        _ => {}
    }
}

/// Those of `candidates` that depend on `component`, directly or not, in name order.
fn dependents_among<'c>(
    config: &Config,
    component: &ComponentName,
    candidates: impl Iterator<Item = &'c ComponentName>,
) -> Vec<ComponentName> {
    let Some(i) = config.graph.index_of(component.as_str()) else {
        return Vec::new();
    };
    let mut reach = vec![false; config.graph.len()];
    reach[i] = true;
    config.graph.close(&mut reach, Walk::Dependents);
    let mut out: Vec<ComponentName> = candidates
        .filter(|c| c != &component)
        .filter(|c| config.graph.index_of(c.as_str()).is_some_and(|j| reach[j]))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The last lines a component printed in a run, from its log file.
fn log_tail(root: &Path, run_id: u64, cloud: &CloudName, component: &ComponentName) -> Vec<String> {
    let path = root
        .join(LOGS_DIR)
        .join(run_id.to_string())
        .join(cloud.as_str())
        .join(format!("{component}.log"));
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("# ")).collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].iter().map(|l| l.to_string()).collect()
}
