//! The command line: clap definitions, and each command from arguments to
//! output. The container action's inputs map onto the same commands
//! ([`action`]).
//!
//! Output contract: with `--format json` a command prints one JSON document
//! on stdout and nothing else there; people-facing text and errors go to
//! stderr. Exit codes: 0 success, 1 a component failed (or `diff
//! --exit-code` found differences, or the promotion gate refused), 2 bad
//! input (arguments, config, state file), 3 state conflict or lock held, 130
//! cancelled.

pub mod action;
mod comment;
mod config_diff;
mod deploy;
mod diff;
mod inspect;
mod issue;
mod open_pr;
mod promote;
mod state;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{self, CloudName, ComponentName, Config, EnvName, Report, did_you_mean};
use crate::exec::scheduler::FailurePolicy;

/// Deploys a repository's infrastructure components in dependency order.
#[derive(Debug, Parser)]
#[command(name = "orchestrator", version, about, max_term_width = 100)]
pub struct Cli {
    /// The config file; component paths are relative to its directory.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = "orchestrator.yaml"
    )]
    pub config: PathBuf,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check orchestrator.yaml and every environment's values files.
    Validate {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the JSON Schema of orchestrator.yaml.
    Schema,
    /// Draw the dependency graph.
    Graph {
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
    },
    /// Show what a run would do, component by component, in order.
    Plan(PlanArgs),
    /// Deploy: run each selected component's apply, in dependency order.
    Apply(RunArgs),
    /// Remove: run each selected component's destroy, in reverse order.
    Destroy(RunArgs),
    /// Show what the state records for an environment.
    Status(StatusArgs),
    /// Read, check or change the state directly.
    #[command(subcommand)]
    State(StateCommand),
    /// Compare two environments' values, component by component.
    Diff(diff::DiffArgs),
    /// Copy the values under `promotion.keys` from one environment to the next.
    Promote(promote::PromoteArgs),
    /// Open, update or close failure issues from the recorded state.
    #[command(subcommand)]
    Issue(IssueCommand),
    /// Keep one comment on a pull request up to date: the config diff of
    /// what it changes, or the text of a file.
    Comment(CommentArgs),
}

/// How to reach GitHub. The token is better passed as GITHUB_TOKEN than on
/// the command line, where other users of the machine can see it.
#[derive(Debug, Clone, Default, Args)]
pub struct GithubArgs {
    /// The GitHub token (default: the `github-token` input, else GITHUB_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    pub github_token: Option<String>,
}

/// `issue` subcommands.
#[derive(Debug, Subcommand)]
pub enum IssueCommand {
    /// Open or comment on an issue for each component the state records as failed.
    Report(IssueArgs),
    /// Close the issues of components the state records as succeeded or destroyed.
    Resolve(IssueArgs),
}

/// Arguments of `issue report` and `issue resolve`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Where.
    #[command(flatten)]
    pub at: StatusArgs,
    /// Only these components (comma-separated or repeated); default: all.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub components: Vec<String>,
    /// How to reach GitHub.
    #[command(flatten)]
    pub github: GithubArgs,
}

/// Arguments of `comment`.
#[derive(Debug, Args)]
pub struct CommentArgs {
    /// The comment's text, in markdown: a file, or `-` for standard input.
    /// Without it, on a pull_request event, the comment is the config diff
    /// of what the pull request changes.
    #[arg(long, value_name = "PATH")]
    pub body_file: Option<PathBuf>,
    /// The pull request (default: the one the workflow run is for).
    #[arg(long, value_name = "NUMBER")]
    pub pr: Option<u64>,
    /// Which of our comments this is: one comment is kept per key (default:
    /// `config-diff` for the config diff, `orchestrator` for --body-file).
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// How to reach GitHub.
    #[command(flatten)]
    pub github: GithubArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Which environment, clouds and components a command is about.
#[derive(Debug, Args)]
pub struct Selection {
    /// The environment.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// One cloud of the environment; default: each of its clouds.
    #[arg(long, value_name = "CLOUD")]
    pub cloud: Option<String>,
    /// Only these components (comma-separated or repeated); default: all.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub components: Vec<String>,
    /// Also include everything the selected components depend on.
    #[arg(long)]
    pub with_deps: bool,
    /// Also include everything that depends on the selected components.
    #[arg(long)]
    pub with_dependents: bool,
    /// Only components whose inputs changed or whose last run did not
    /// succeed, plus everything that depends on them.
    #[arg(long)]
    pub changed: bool,
}

/// Arguments of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// What to plan for.
    #[command(flatten)]
    pub select: Selection,
    /// Plan a destroy, in reverse dependency order.
    #[arg(long)]
    pub destroy: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Arguments of `apply` and `destroy`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// What to run.
    #[command(flatten)]
    pub select: Selection,
    /// How many components may run at once (default: `max_parallel` from the config).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// One component at a time (the same as --max-parallel 1).
    #[arg(long, conflicts_with = "max_parallel")]
    pub sequential: bool,
    /// What a failure does to the rest of the run.
    #[arg(long, value_enum, default_value_t = FailurePolicy::SkipDependents)]
    pub on_failure: FailurePolicy,
    /// Print the plan and touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for another run's lock on the environment (`30s`,
    /// `10m`); by default a held lock fails the run at once.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "0s")]
    pub lock_timeout: std::time::Duration,
    /// Open a GitHub issue for each failed component, comment on it when it
    /// fails again, and close it when it next succeeds.
    #[arg(long)]
    pub open_issue_on_failure: bool,
    /// Where the state goes, and how to reach GitHub.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// How a command that writes the state reaches the state branch.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// Keep the state in the working tree only: no commit, no push.
    #[arg(long)]
    pub no_commit: bool,
    /// How to reach GitHub (the token also pushes the state over https).
    #[command(flatten)]
    pub github: GithubArgs,
}

fn duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like 30s or 10m: {e}"))
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The environment.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// One cloud of the environment; default: each of its clouds.
    #[arg(long, value_name = "CLOUD")]
    pub cloud: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `state` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Print a state file, or one component's record.
    Get {
        /// Where.
        #[command(flatten)]
        at: StatusArgs,
        /// Only this component's record.
        #[arg(long, value_name = "NAME")]
        component: Option<String>,
    },
    /// Set one component's status by hand, with the reason recorded.
    Set {
        /// Where.
        #[command(flatten)]
        at: StatusArgs,
        /// The component.
        #[arg(long, value_name = "NAME")]
        component: String,
        /// Its new status.
        #[arg(long, value_enum)]
        status: SettableStatus,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
        /// Where the state goes.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Check that the state files can be read.
    Validate {
        /// Where.
        #[command(flatten)]
        at: StatusArgs,
    },
    /// List the components that can run next: not done at their current
    /// inputs, with everything they depend on done.
    Next {
        /// Where.
        #[command(flatten)]
        at: StatusArgs,
    },
    /// List the recorded writes: serial, time, run, actor and what changed.
    History {
        /// Where.
        #[command(flatten)]
        at: StatusArgs,
        /// Every write in the state branch's git log, not just the last
        /// ones the file keeps.
        #[arg(long)]
        all: bool,
    },
    /// Release a lock left by a run that is gone, recording who and why.
    Unlock {
        /// Where.
        #[command(flatten)]
        at: StatusArgs,
        /// Required: releasing a live run's lock lets two runs collide.
        #[arg(long)]
        force: bool,
        /// Why, for the record.
        #[arg(long)]
        reason: Option<String>,
        /// Where the state goes.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Statuses an operator may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SettableStatus {
    /// Deployed and current (records the component's current fingerprint).
    Succeeded,
    /// Failed: the next apply runs it again.
    Failed,
    /// Not deployed: the next apply creates it.
    Destroyed,
    /// Not run: the next apply runs it.
    Pending,
}

/// Output format of most commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// One JSON document on stdout.
    Json,
}

/// Output format of `graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Waves, for people.
    Text,
    /// A mermaid flowchart (renders in GitHub markdown).
    Mermaid,
    /// Graphviz DOT.
    Dot,
    /// One JSON document.
    Json,
}

/// Exit code: a component failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: bad input (arguments, config, state file).
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code: the state could not be written because of other writers or
/// the remote (a lock held, a push refused or unreachable).
pub const EXIT_CONFLICT: i32 = 3;
/// Exit code: the run was cancelled.
pub const EXIT_CANCELLED: i32 = 130;

/// Why a command could not do its job, and so which exit code it ends with.
#[derive(Debug)]
pub enum Failure {
    /// The configuration is invalid; every problem is in the report.
    Config(Report),
    /// An argument or a state file is wrong.
    Usage {
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: Option<String>,
    },
    /// The input is bad and the problems were already written to stdout as
    /// the command's JSON document.
    Reported,
    /// The state is locked by another run, or could not be published.
    Conflict {
        /// What happened.
        message: String,
        /// What to do.
        hint: String,
    },
    /// Writing the output failed (for example, a closed pipe).
    Io(std::io::Error),
    /// A GitHub call failed.
    GitHub(crate::github::Error),
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Config(_) | Failure::Usage { .. } | Failure::Reported => EXIT_BAD_INPUT,
            Failure::Conflict { .. } => EXIT_CONFLICT,
            Failure::GitHub(crate::github::Error::Setup { .. }) => EXIT_BAD_INPUT,
            Failure::Io(_) | Failure::GitHub(_) => EXIT_FAILED,
        }
    }

    /// The message for stderr.
    pub fn render(&self, color: bool) -> String {
        match self {
            Failure::Config(report) => report.render(color),
            Failure::Usage { message, hint } => match hint {
                Some(h) => format!("error: {message}\n  = help: {h}\n"),
                None => format!("error: {message}\n"),
            },
            Failure::Conflict { message, hint } if hint.is_empty() => {
                format!("error: {message}\n")
            }
            Failure::Conflict { message, hint } => {
                format!("error: {message}\n  = help: {hint}\n")
            }
            Failure::Reported => String::new(),
            Failure::Io(e) => format!("error: cannot write output: {e}\n"),
            Failure::GitHub(e) => match e.hint() {
                Some(h) => format!("error: {e}\n  = help: {h}\n"),
                None => format!("error: {e}\n"),
            },
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<crate::state::StateError> for Failure {
    fn from(e: crate::state::StateError) -> Self {
        Failure::Usage {
            message: e.message(),
            hint: Some(e.hint()),
        }
    }
}

impl From<crate::state::StoreError> for Failure {
    fn from(e: crate::state::StoreError) -> Self {
        if e.is_conflict() {
            Failure::Conflict {
                message: e.message(),
                hint: e.hint(),
            }
        } else {
            Failure::Usage {
                message: e.message(),
                hint: Some(e.hint()).filter(|h| !h.is_empty()),
            }
        }
    }
}

/// Opens the state store as the arguments ask, and says on stderr where
/// the state goes.
fn open_store(config: &Config, args: &StoreArgs) -> Result<crate::state::Store, Failure> {
    let token = crate::github::token(args.github.github_token.as_deref());
    let store = crate::state::Store::open(config, store_options(config, args.no_commit, token))?;
    eprintln!("State: {}.", store.describe());
    Ok(store)
}

/// Warns when the working tree's copy of a state could not be written
/// after its push landed.
fn warn_if_stale(written: &crate::state::sync::Written) {
    if let Some(why) = &written.stale_copy {
        eprintln!("warning: {}", deploy::stale_copy(why));
    }
}

/// How every command opens the state store: the token (if any) for https,
/// and the configured commit author.
fn store_options(
    config: &Config,
    no_commit: bool,
    token: Option<String>,
) -> crate::state::sync::Options {
    crate::state::sync::Options {
        token: token.and_then(crate::state::git::Token::new),
        no_commit,
        identity: config.state.author.clone(),
    }
}

/// Warns, on stderr, of each component the state of `observations` records
/// as possibly deployed that the config no longer defines: nothing plans or
/// destroys it any more, so its resources are left as they are.
fn warn_orphans(
    file: &Path,
    config: &Config,
    env: &EnvName,
    observations: &[crate::exec::engine::Observation],
) {
    for o in observations {
        for (name, record) in crate::exec::engine::orphans(config, o.state.as_ref()) {
            eprintln!(
                "warning: {env} / {cloud}: `{name}` is recorded as {status} but is no longer in \
                 {file}, so nothing plans or destroys it and its resources stay as they are\n  \
                 = help: to remove them, restore its definition and run `orchestrator destroy \
                 --env {env} --cloud {cloud} --components {name}`; if they are already gone, \
                 `orchestrator state set --env {env} --cloud {cloud} --component {name} --status \
                 destroyed --reason \"...\"`",
                status = record.status,
                cloud = o.cloud,
                file = file.display(),
            );
        }
    }
}

/// Brings the local copies of `env`'s state files up to date with the
/// state branch (read with `token` over https) before a command reads them.
/// Reading works without the branch, so a failure is a warning.
fn refresh_quietly(config: &Config, env: &EnvName, clouds: &[CloudName], token: Option<String>) {
    let Ok(store) = crate::state::Store::open(config, store_options(config, false, token)) else {
        return;
    };
    for cloud in clouds {
        match store.refresh(&store.target(env, cloud)) {
            Ok(None) => {}
            Ok(Some(note)) => eprintln!("note: {note}"),
            Err(e) => eprintln!(
                "warning: showing the local state of {env}-{cloud}; the state branch could not \
                 be read: {}",
                e.message()
            ),
        }
    }
}

fn usage(message: impl Into<String>, hint: Option<String>) -> Failure {
    Failure::Usage {
        message: message.into(),
        hint,
    }
}

impl Command {
    /// Whether the command may open the git repository: all but those that
    /// only read the config, which then do not start libgit2 (about 13 ms,
    /// and on GitHub Actions an entry in `safe.directory`).
    pub fn opens_repository(&self) -> bool {
        !matches!(
            self,
            Command::Schema | Command::Validate { .. } | Command::Graph { .. }
        )
    }
}

/// Runs a parsed command line, writing its output to `out`. Returns the exit
/// code of a command that ran to the end (0, or 1 and 130 for runs).
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<i32, Failure> {
    match cli.command {
        Command::Schema => out.write_all(config::schema::json().as_bytes())?,
        Command::Validate { format } => inspect::validate(&cli.config, format, out)?,
        Command::Graph { format } => inspect::graph(&cli.config, format, out)?,
        Command::Plan(args) => inspect::plan(&cli.config, &args, out)?,
        Command::Apply(args) => return deploy::run(&cli.config, &args, false, out),
        Command::Destroy(args) => return deploy::run(&cli.config, &args, true, out),
        Command::Status(args) => state::status(&cli.config, &args, out)?,
        Command::State(command) => state::command(&cli.config, command, out)?,
        Command::Issue(command) => return issue::command(&cli.config, command, out),
        Command::Comment(args) => return comment::run(&cli.config, &args, out),
        Command::Diff(args) => return diff::run(&cli.config, &args, out),
        Command::Promote(args) => return promote::run(&cli.config, &args, out),
    }
    Ok(0)
}

fn json<T: serde::Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

fn load(file: &Path) -> Result<Config, Failure> {
    config::load(file).map_err(Failure::Config)
}

/// Parses a name given on the command line, or says what exists instead.
fn known<T>(
    text: &str,
    kind: &str,
    parse: fn(&str) -> Result<T, config::NameError>,
    exists: impl Fn(&str) -> bool,
    candidates: &[&str],
) -> Result<T, Failure> {
    match parse(text) {
        Ok(name) if exists(text) => Ok(name),
        _ => {
            let hint = did_you_mean(text, candidates.iter().copied())
                .map(|d| format!("{d} ({kind}s: {})", candidates.join(", ")))
                .or_else(|| Some(format!("{kind}s: {}", candidates.join(", "))));
            Err(usage(format!("unknown {kind} `{text}`"), hint))
        }
    }
}

/// The environment and its clouds (all of them, or the one asked for).
fn environment(
    config: &Config,
    env: &str,
    cloud: Option<&str>,
) -> Result<(EnvName, Vec<CloudName>), Failure> {
    let env_names: Vec<&str> = config.environments.keys().map(EnvName::as_str).collect();
    let env = known(
        env,
        "environment",
        EnvName::parse,
        |e| config.environment(e).is_some(),
        &env_names,
    )?;
    let environment = &config.environments[&env];
    let clouds = match cloud {
        None => environment.clouds.clone(),
        Some(c) => {
            let names: Vec<&str> = environment.clouds.iter().map(CloudName::as_str).collect();
            let cloud = known(c, "cloud", CloudName::parse, |x| names.contains(&x), &names)
                .map_err(|f| match f {
                    Failure::Usage { hint, .. } => {
                        usage(format!("environment `{env}` has no cloud `{c}`"), hint)
                    }
                    other => other,
                })?;
            vec![cloud]
        }
    };
    Ok((env, clouds))
}

fn component(config: &Config, name: &str) -> Result<ComponentName, Failure> {
    selected_components(config, &[name.to_string()]).map(|mut v| v.remove(0))
}

fn selected_components(config: &Config, names: &[String]) -> Result<Vec<ComponentName>, Failure> {
    let all: Vec<&str> = config.components.iter().map(|c| c.name.as_str()).collect();
    let mut unknown = Vec::new();
    let mut selected = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match ComponentName::parse(name)
            .ok()
            .filter(|n| config.component(n.as_str()).is_some())
        {
            Some(n) => selected.push(n),
            None => unknown.push(name),
        }
    }
    match unknown.as_slice() {
        [] => Ok(selected),
        [one] => {
            let hint = did_you_mean(one, all.iter().copied())
                .unwrap_or_else(|| "`orchestrator graph` lists the components".into());
            Err(usage(format!("unknown component `{one}`"), Some(hint)))
        }
        many => Err(usage(
            format!("unknown components: {}", many.join(", ")),
            Some("`orchestrator graph` lists the components".into()),
        )),
    }
}

/// The request a selection makes.
fn request(
    config: &Config,
    select: &Selection,
    destroy: bool,
) -> Result<crate::plan::Request, Failure> {
    Ok(crate::plan::Request {
        components: selected_components(config, &select.components)?,
        with_deps: select.with_deps,
        with_dependents: select.with_dependents,
        changed: select.changed,
        destroy,
    })
}

/// Checks the environment's values files before anything reads them.
fn check_values(config: &Config, env: &EnvName) -> Result<(), Failure> {
    let values = config::values::check(config, &[env], false);
    if values.is_empty() {
        Ok(())
    } else {
        Err(Failure::Config(values))
    }
}
