//! The container action: when the binary runs on GitHub Actions with no
//! arguments and an `INPUT_COMMAND`, it reads the action's inputs, maps
//! them onto the same commands a terminal runs (`changed-only` is
//! `--changed`, `commit-state: false` is `--no-commit`, ...), runs them, and
//! answers the runner: outputs in `GITHUB_OUTPUT`, a page in
//! `GITHUB_STEP_SUMMARY`, annotations and log groups on stderr.
//!
//! The inputs are read from the environment and never pass through a shell
//! or `runs.args`, so no input can inject anything. The work itself is the
//! command's, through [`super::run`]; this module only translates.

use std::path::Path;

use clap::Parser;
use indexmap::IndexSet;
use serde_json::Value;

use super::{Cli, EXIT_BAD_INPUT, Failure};
use crate::config::{CloudName, Config, Diagnostic, EnvName};
use crate::exec::engine::state_path;
use crate::github::commands::{self, Level, Location, MAX_ERRORS};
use crate::github::files::{Outputs, Summary};
use crate::github::runner::{InputError, Inputs};
use crate::github::{self, RunContext};
use crate::report::summary::{self, Page, RunLinks};

/// The action's inputs, as `action.yml` declares them.
pub const INPUTS: [&str; 15] = [
    "command",
    "environment",
    "cloud",
    "components",
    "max-parallel",
    "sequential",
    "on-failure",
    "dry-run",
    "changed-only",
    "from",
    "to",
    "config",
    "github-token",
    "commit-state",
    "open-issue-on-failure",
];

/// The action's outputs, as `action.yml` declares them.
pub const OUTPUTS: [&str; 8] = [
    "result",
    "plan",
    "waves",
    "changed-components",
    "failed-components",
    "state-file",
    "state-commit",
    "summary",
];

/// The commands the action runs.
pub const COMMANDS: [&str; 8] = [
    "validate", "plan", "apply", "destroy", "status", "diff", "promote", "comment",
];

/// Whether this process is the container action: on GitHub Actions, with
/// no arguments and the `command` input set.
pub fn requested() -> bool {
    std::env::args_os().len() == 1
        && std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true")
        && std::env::var_os(crate::github::runner::input_variable("command")).is_some()
}

/// The inputs, checked: each value as a command line would need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// One of [`COMMANDS`].
    pub command: String,
    /// `config`.
    pub config: String,
    /// `environment`.
    pub environment: Option<String>,
    /// `cloud`.
    pub cloud: Option<String>,
    /// `components`.
    pub components: Vec<String>,
    /// `max-parallel`.
    pub max_parallel: Option<u32>,
    /// `sequential`.
    pub sequential: bool,
    /// `on-failure`.
    pub on_failure: Option<String>,
    /// `dry-run`.
    pub dry_run: bool,
    /// `changed-only`.
    pub changed_only: bool,
    /// `from`.
    pub from: Option<String>,
    /// `to`.
    pub to: Option<String>,
    /// `commit-state`.
    pub commit_state: bool,
    /// `open-issue-on-failure`.
    pub open_issue_on_failure: bool,
}

fn invalid(input: &str, message: impl Into<String>) -> InputError {
    InputError {
        input: input.to_string(),
        message: message.into(),
    }
}

impl Request {
    /// Checks the inputs. The runner checks none of them, not even the
    /// required ones.
    pub fn from_inputs(inputs: &Inputs) -> Result<Request, InputError> {
        let command = inputs
            .required("command", &format!("(one of {})", COMMANDS.join(", ")))?
            .to_string();
        if !COMMANDS.contains(&command.as_str()) {
            let hint = crate::config::did_you_mean(&command, COMMANDS.iter().copied())
                .map(|d| format!("; {d}"))
                .unwrap_or_default();
            return Err(invalid(
                "command",
                format!(
                    "`{command}` is not a command the action runs ({}){hint}",
                    COMMANDS.join(", ")
                ),
            ));
        }
        let why = format!("for `{command}`");
        let (environment, from, to) = match command.as_str() {
            "plan" | "apply" | "destroy" | "status" => {
                (Some(inputs.required("environment", &why)?), None, None)
            }
            "diff" | "promote" => (
                None,
                Some(inputs.required("from", &why)?),
                Some(inputs.required("to", &why)?),
            ),
            _ => (None, None, None),
        };
        let max_parallel =
            match inputs.get("max-parallel") {
                None => None,
                Some(text) => Some(text.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(
                    || {
                        invalid(
                            "max-parallel",
                            format!("`{text}` is not a whole number of at least 1"),
                        )
                    },
                )?),
            };
        let on_failure = match inputs.get("on-failure") {
            None => None,
            Some(p @ ("skip-dependents" | "stop" | "continue")) => Some(p.to_string()),
            Some(other) => {
                return Err(invalid(
                    "on-failure",
                    format!("`{other}` is not one of skip-dependents, stop, continue"),
                ));
            }
        };
        let request = Request {
            config: inputs
                .get("config")
                .unwrap_or("orchestrator.yaml")
                .to_string(),
            environment: environment.map(String::from),
            cloud: inputs.get("cloud").map(String::from),
            components: inputs.list("components"),
            max_parallel,
            sequential: inputs.boolean("sequential", false)?,
            on_failure,
            dry_run: inputs.boolean("dry-run", false)?,
            changed_only: inputs.boolean("changed-only", false)?,
            from: from.map(String::from),
            to: to.map(String::from),
            commit_state: inputs.boolean("commit-state", true)?,
            open_issue_on_failure: inputs.boolean("open-issue-on-failure", false)?,
            command,
        };
        if request.sequential && request.max_parallel.is_some() {
            return Err(invalid(
                "sequential",
                "`sequential: true` and `max-parallel` contradict each other: set one",
            ));
        }
        Ok(request)
    }

    fn base(&self, command: &str) -> Vec<String> {
        vec![
            "orchestrator".into(),
            "--config".into(),
            self.config.clone(),
            command.into(),
        ]
    }

    fn selection(&self, args: &mut Vec<String>) {
        if let Some(env) = &self.environment {
            args.extend(["--env".into(), env.clone()]);
        }
        if let Some(cloud) = &self.cloud {
            args.extend(["--cloud".into(), cloud.clone()]);
        }
        if !self.components.is_empty() {
            args.extend(["--components".into(), self.components.join(",")]);
        }
        if self.changed_only {
            args.push("--changed".into());
        }
    }

    fn between(&self, args: &mut Vec<String>) {
        for (flag, value) in [("--from", &self.from), ("--to", &self.to)] {
            if let Some(v) = value {
                args.extend([flag.to_string(), v.clone()]);
            }
        }
        if !self.components.is_empty() {
            args.extend(["--components".into(), self.components.join(",")]);
        }
    }

    /// `plan` for this request (a destroy's plan for `destroy`).
    pub fn plan_args(&self, format: &str) -> Vec<String> {
        let mut args = self.base("plan");
        self.selection(&mut args);
        if self.command == "destroy" {
            args.push("--destroy".into());
        }
        args.extend(["--format".into(), format.into()]);
        args
    }

    /// `apply` or `destroy` for this request; a dry run is a plan instead
    /// and never gets here.
    pub fn run_args(&self, format: &str) -> Vec<String> {
        let mut args = self.base(&self.command);
        self.selection(&mut args);
        if let Some(n) = self.max_parallel {
            args.extend(["--max-parallel".into(), n.to_string()]);
        }
        if self.sequential {
            args.push("--sequential".into());
        }
        if let Some(p) = &self.on_failure {
            args.extend(["--on-failure".into(), p.clone()]);
        }
        if !self.commit_state {
            args.push("--no-commit".into());
        }
        if self.open_issue_on_failure {
            args.push("--open-issue-on-failure".into());
        }
        args.extend(["--format".into(), format.into()]);
        args
    }

    /// The command line of a command that only reports (`validate`,
    /// `status`, `diff`, `promote` without writing, `comment`).
    pub fn report_args(&self, format: &str) -> Vec<String> {
        let mut args = self.base(&self.command);
        match self.command.as_str() {
            "status" => {
                if let Some(env) = &self.environment {
                    args.extend(["--env".into(), env.clone()]);
                }
                if let Some(cloud) = &self.cloud {
                    args.extend(["--cloud".into(), cloud.clone()]);
                }
            }
            "diff" | "promote" => self.between(&mut args),
            // The pull request and what to compare come from the event.
            "comment" => return args,
            _ => {}
        }
        args.extend(["--format".into(), format.into()]);
        args
    }

    /// `promote --write`, unless this is a dry run.
    pub fn promote_write_args(&self) -> Vec<String> {
        let mut args = self.report_args("text");
        if !self.dry_run {
            args.push("--write".into());
        }
        args
    }
}

/// What the action answers, as it is learnt.
#[derive(Debug, Clone)]
struct Answer {
    result: String,
    plan: String,
    waves: String,
    changed: Vec<String>,
    failed: Vec<String>,
    state_files: Vec<String>,
    state_commit: String,
    summary: String,
    page: Option<SummaryPage>,
}

/// The step summary, fitted into the room left when it is written.
#[derive(Debug, Clone)]
enum SummaryPage {
    /// A page that can drop its graph and rows to fit.
    Structured(Page),
    /// Markdown a command rendered, cut at a line if it must be.
    Markdown(String),
}

impl SummaryPage {
    fn render(&self, room: usize) -> String {
        match self {
            SummaryPage::Structured(page) => summary::render(page, room),
            SummaryPage::Markdown(text) => summary::fit_text(text, room),
        }
    }
}

impl Default for Answer {
    fn default() -> Self {
        Answer {
            result: "failed".into(),
            plan: "null".into(),
            waves: "[]".into(),
            changed: Vec::new(),
            failed: Vec::new(),
            state_files: Vec::new(),
            state_commit: String::new(),
            summary: String::new(),
            page: None,
        }
    }
}

/// Runs the action and returns the exit code.
pub fn run() -> i32 {
    let ctx = RunContext::from_env();
    let inputs = Inputs::from_env();
    // Registered before anything can print it.
    if let Some(token) = github::token(None) {
        eprint!("{}", commands::masks([token.as_str()]));
    }
    eprintln!("orchestrator {}", env!("CARGO_PKG_VERSION"));
    if let Some(event) = ctx.describe_event() {
        eprint!("{}", commands::untrusted(&format!("Event: {event}\n")));
    }
    if let Some(problem) = &ctx.event_error {
        eprint!(
            "{}",
            commands::annotation(Level::Warning, "Event payload", None, problem)
        );
    }
    let mut answer = Answer::default();
    let code = match Request::from_inputs(&inputs) {
        Err(e) => {
            eprint!(
                "{}",
                commands::annotation(Level::Error, "Invalid input", None, &e.to_string())
            );
            answer.summary = format!("invalid input `{}`", e.input);
            EXIT_BAD_INPUT
        }
        Ok(request) => execute(&request, &ctx, &mut answer),
    };
    if let Some(page) = &answer.page {
        match Summary::from_env() {
            Some(file) => {
                let text = page.render(file.room());
                if let Err(e) = file.append(&text) {
                    eprint!(
                        "{}",
                        commands::annotation(Level::Warning, "Step summary", None, &e.to_string())
                    );
                }
            }
            None => eprintln!("note: GITHUB_STEP_SUMMARY is not set: no step summary written"),
        }
    }
    write_outputs(&answer);
    code
}

fn write_outputs(answer: &Answer) {
    let Some(mut outputs) = Outputs::from_env() else {
        eprintln!("note: GITHUB_OUTPUT is not set: no outputs written");
        return;
    };
    let values = [
        ("result", answer.result.clone()),
        ("plan", answer.plan.clone()),
        ("waves", answer.waves.clone()),
        ("changed-components", answer.changed.join(",")),
        ("failed-components", answer.failed.join(",")),
        ("state-file", answer.state_files.join("\n")),
        ("state-commit", answer.state_commit.clone()),
        ("summary", answer.summary.clone()),
    ];
    for (name, value) in values {
        if let Err(e) = outputs.set(name, &value) {
            eprint!(
                "{}",
                commands::annotation(Level::Error, "Outputs", None, &e.to_string())
            );
        }
    }
    if outputs.over_limit() {
        eprint!(
            "{}",
            commands::annotation(
                Level::Warning,
                "Outputs",
                None,
                "the outputs are over GitHub's limit of 1 MB per job: the `plan` output is the likely cause; narrow the run with `components`"
            )
        );
    }
}

/// Runs one command line the way `main` would, its standard output kept.
fn invoke(args: &[String]) -> (Result<i32, Failure>, Vec<u8>) {
    let cli = match parse(args) {
        Ok(cli) => cli,
        Err(failure) => return (Err(failure), Vec::new()),
    };
    let mut out = Vec::new();
    let result = super::run(cli, &mut out);
    (result, out)
}

/// A command line as `main` would parse it; a bad one is a usage failure.
fn parse(args: &[String]) -> Result<Cli, Failure> {
    Cli::try_parse_from(args).map_err(|e| Failure::Usage {
        message: e
            .to_string()
            .trim()
            .trim_start_matches("error: ")
            .to_string(),
        hint: None,
    })
}

/// Prints what a command printed for people, which may hold text from the
/// repository (values, names): never read as workflow commands.
fn show(out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    eprint!("{}", commands::untrusted(&text));
}

/// Reports a failed command: its message in the log, and annotations.
fn report(command: &str, failure: &Failure) {
    let message = failure.render(false);
    eprint!("{}", commands::untrusted(&message));
    match failure {
        Failure::Config(report) => annotate(Level::Error, &report.diagnostics),
        Failure::Reported => {}
        _ => {
            let first = message
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            eprint!(
                "{}",
                commands::annotation(
                    Level::Error,
                    &format!("orchestrator {command} failed"),
                    None,
                    first
                )
            );
        }
    }
}

/// One annotation of `level` per configuration problem or warning, at its
/// file, line and column.
fn annotate(level: Level, diagnostics: &[Diagnostic]) {
    let cwd = std::env::current_dir().unwrap_or_default();
    for d in diagnostics.iter().take(MAX_ERRORS) {
        let file = d.file.strip_prefix(&cwd).unwrap_or(&d.file);
        let at = Location {
            file: file.display().to_string(),
            line: Some(d.line as usize),
            column: Some(d.column as usize),
        };
        let mut message = d.message.clone();
        if let Some(h) = &d.hint {
            message.push_str(&format!("\nhelp: {h}"));
        }
        eprint!(
            "{}",
            commands::annotation(level, &format!("`{}`", d.key), Some(&at), &message)
        );
    }
}

fn json_of(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or(Value::Null)
}

/// Runs the request's command and fills in the answer. Returns the exit code.
fn execute(request: &Request, ctx: &RunContext, answer: &mut Answer) -> i32 {
    let command = request.command.as_str();
    eprintln!("Command: {command}");
    let code = match command {
        "validate" => validate(request, answer),
        "plan" => plan(request, ctx, answer),
        "apply" | "destroy" if request.dry_run => plan(request, ctx, answer),
        "apply" | "destroy" => deploy(request, ctx, answer),
        "status" => status(request, answer),
        "diff" => diff(request, answer),
        "promote" => promote(request, answer),
        _ => {
            let (result, out) = invoke(&request.report_args("text"));
            show(&out);
            finish(command, result)
        }
    };
    if answer.result == "failed" && code == 0 {
        answer.result = "succeeded".into();
    }
    if answer.summary.is_empty() {
        answer.summary = format!("{command}: {}", answer.result);
    }
    code
}

/// The exit code of a finished command, its failure reported.
fn finish(command: &str, result: Result<i32, Failure>) -> i32 {
    match result {
        Ok(code) => code,
        Err(failure) => {
            report(command, &failure);
            failure.exit_code()
        }
    }
}

fn load(request: &Request) -> Option<Config> {
    crate::config::load(Path::new(&request.config)).ok()
}

/// The clouds a request covers.
fn clouds(config: &Config, request: &Request) -> Vec<String> {
    match (&request.cloud, &request.environment) {
        (Some(c), _) => vec![c.clone()],
        (None, Some(env)) => config
            .environment(env)
            .map(|e| e.clouds.iter().map(|c| c.to_string()).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The state files a request reads or writes, as paths in the workspace.
fn state_files(config: &Config, request: &Request) -> Vec<String> {
    let Some(env) = request
        .environment
        .as_deref()
        .and_then(|e| EnvName::parse(e).ok())
    else {
        return Vec::new();
    };
    clouds(config, request)
        .iter()
        .filter_map(|cloud| CloudName::parse(cloud).ok())
        .map(|cloud| state_path(config, &env, &cloud).display().to_string())
        .collect()
}

fn links(ctx: &RunContext, local_run_id: u64) -> RunLinks {
    RunLinks {
        run: ctx.describe(local_run_id),
        log: ctx.link(),
        github_run_id: ctx.run_id,
        actor: ctx.actor.clone(),
        commit: ctx.sha.clone(),
    }
}

fn validate(request: &Request, answer: &mut Answer) -> i32 {
    let (text_result, out) = invoke(&request.report_args("text"));
    show(&out);
    let (_, json) = invoke(&request.report_args("json"));
    let doc = json_of(&json);
    let code = finish("validate", text_result);
    let errors = doc["errors"].as_array().map(Vec::len).unwrap_or(0);
    let mut page = if code == 0 {
        format!(
            "## ✅ validate: {} is valid\n\n{} components, environments {}.\n",
            request.config,
            doc["components"],
            doc["environments"]
                .as_array()
                .map(|e| e
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        )
    } else {
        format!(
            "## ❌ validate: {}\n\n",
            crate::report::counted(errors, "problem")
        )
    };
    let listed = |what: &str| -> Vec<Diagnostic> {
        serde_json::from_value(doc[what].clone()).unwrap_or_default()
    };
    let warnings = listed("warnings");
    annotate(Level::Warning, &warnings);
    for (heading, list) in [("Problem", listed("errors")), ("Warning", warnings)] {
        if list.is_empty() {
            continue;
        }
        page.push_str(&format!(
            "\n| Where | Key | {heading} |\n| --- | --- | --- |\n"
        ));
        for d in &list {
            page.push_str(&format!(
                "| `{}` | `{}` | {}{} |\n",
                d.location(),
                d.key,
                summary::cell(&d.message),
                d.hint
                    .as_deref()
                    .map(|h| format!(" ({})", summary::cell(h)))
                    .unwrap_or_default()
            ));
        }
    }
    answer.summary = if code == 0 {
        format!("validate: {} is valid", request.config)
    } else {
        format!("validate: {errors} problem(s) in the configuration")
    };
    answer.page = Some(SummaryPage::Markdown(page));
    code
}

/// The plans of a `plan --format json` document: one per cloud.
fn plans_of(doc: &Value) -> Vec<Value> {
    match doc {
        Value::Array(plans) => plans.clone(),
        Value::Object(_) => vec![doc.clone()],
        _ => Vec::new(),
    }
}

/// The waves for `strategy.matrix`: the components with something to do,
/// wave by wave across clouds, each as `{cloud, component, action}`.
/// Waves with nothing to do are left out, so `waves[0]` is the first work
/// and a job per wave can check whether its wave exists.
pub fn matrix_waves(plans: &[Value]) -> Value {
    let mut waves: Vec<Vec<Value>> = Vec::new();
    for plan in plans {
        let cloud = plan["cloud"].clone();
        for c in plan["components"].as_array().into_iter().flatten() {
            if c["action"] == "noop" {
                continue;
            }
            let wave = c["wave"].as_u64().unwrap_or(0) as usize;
            if waves.len() <= wave {
                waves.resize_with(wave + 1, Vec::new);
            }
            waves[wave].push(serde_json::json!({
                "cloud": cloud, "component": c["name"], "action": c["action"],
            }));
        }
    }
    Value::Array(
        waves
            .into_iter()
            .filter(|w| !w.is_empty())
            .map(Value::Array)
            .collect(),
    )
}

/// `names`, each once, in the order they first appear.
fn once<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let names: IndexSet<&str> = names.into_iter().collect();
    names.into_iter().map(String::from).collect()
}

/// Names of components with something to do, each once, in plan order.
fn changed_of(plans: &[Value]) -> Vec<String> {
    once(
        plans
            .iter()
            .flat_map(|p| p["components"].as_array().into_iter().flatten())
            .filter(|c| c["action"] != "noop")
            .filter_map(|c| c["name"].as_str()),
    )
}

/// Plans once, and gives the plans as `plan` prints them for people and as
/// JSON: planning reads the state branch, which is not worth doing twice.
fn plan_once(request: &Request) -> (Result<i32, Failure>, Vec<u8>, Vec<u8>) {
    let planned = parse(&request.plan_args("json")).and_then(|cli| match cli.command {
        super::Command::Plan(args) => super::inspect::planned(&cli.config, &args),
        other => Err(Failure::Usage {
            message: format!("expected a plan command line, got {other:?}"),
            hint: None,
        }),
    });
    let (config, plans) = match planned {
        Ok(planned) => planned,
        Err(failure) => return (Err(failure), Vec::new(), Vec::new()),
    };
    let (mut text, mut json) = (Vec::new(), Vec::new());
    let written = super::inspect::write_plans(&config, &plans, super::Format::Text, &mut text)
        .and_then(|()| {
            super::inspect::write_plans(&config, &plans, super::Format::Json, &mut json)
        });
    (written.map(|()| 0), text, json)
}

/// The outputs of a plan (`plan`, `waves`, `changed`) from its JSON, and
/// the plans; `result` is how planning went.
fn plan_outputs(
    result: Result<i32, Failure>,
    json: &[u8],
    answer: &mut Answer,
) -> (i32, Vec<Value>) {
    let code = finish("plan", result);
    if code != 0 {
        return (code, Vec::new());
    }
    let doc = json_of(json);
    let plans = plans_of(&doc);
    answer.plan = doc.to_string();
    answer.waves = matrix_waves(&plans).to_string();
    answer.changed = changed_of(&plans);
    (code, plans)
}

fn plan(request: &Request, ctx: &RunContext, answer: &mut Answer) -> i32 {
    let (result, text, json) = plan_once(request);
    show(&text);
    let (code, plans) = plan_outputs(result, &json, answer);
    if code != 0 {
        return code;
    }
    let to_run: usize = plans
        .iter()
        .map(|p| {
            p["components"]
                .as_array()
                .map(|c| c.iter().filter(|c| c["action"] != "noop").count())
                .unwrap_or(0)
        })
        .sum();
    let env = request.environment.as_deref().unwrap_or("");
    answer.summary = format!("plan {env}: {to_run} component(s) to run");
    if let Some(config) = load(request) {
        answer.state_files = state_files(&config, request);
        let page = summary::plan_page(&config, &request.command, &plans, &links(ctx, 0));
        answer.page = Some(SummaryPage::Structured(page));
    }
    code
}

fn deploy(request: &Request, ctx: &RunContext, answer: &mut Answer) -> i32 {
    // The plan outputs are the plan the run made under its lock, which is
    // what it ran: planning apart would fetch the state a second time, and
    // could find it other than the run did.
    let mut plans_json = Vec::new();
    let (result, out) = match parse(&request.run_args("json")) {
        Ok(cli) => {
            let mut out = Vec::new();
            let result = match &cli.command {
                super::Command::Apply(args) | super::Command::Destroy(args) => {
                    let destroy = matches!(cli.command, super::Command::Destroy(_));
                    super::deploy::run_observed(
                        &cli.config,
                        args,
                        destroy,
                        &mut out,
                        &mut |config, plans| {
                            plans_json.clear();
                            let written = super::inspect::write_plans(
                                config,
                                plans,
                                super::Format::Json,
                                &mut plans_json,
                            );
                            if written.is_err() {
                                plans_json.clear();
                            }
                        },
                    )
                }
                other => Err(Failure::Usage {
                    message: format!("expected an apply or destroy command line, got {other:?}"),
                    hint: None,
                }),
            };
            (result, out)
        }
        Err(failure) => (Err(failure), Vec::new()),
    };
    if !plans_json.is_empty() {
        plan_outputs(Ok(0), &plans_json, answer);
    }
    let code = finish(&request.command, result);
    let doc = json_of(&out);
    let config = load(request);
    if let Some(config) = &config {
        answer.state_files = state_files(config, request);
    }
    if doc.is_null() {
        return code;
    }
    answer.result = doc["result"].as_str().unwrap_or("failed").to_string();
    answer.state_commit = doc["state_commit"].as_str().unwrap_or("").to_string();
    let components = doc["components"].as_object();
    // Keys are `cloud/component` when the run spans clouds.
    answer.failed = once(
        components
            .into_iter()
            .flatten()
            .filter(|(_, c)| c["status"] == "failed")
            .map(|(key, _)| key.rsplit('/').next().unwrap_or(key)),
    );
    let mut counts: Vec<(String, usize)> = Vec::new();
    for c in components.into_iter().flat_map(|m| m.values()) {
        let status = c["status"].as_str().unwrap_or("").to_string();
        match counts.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => counts.push((status, 1)),
        }
    }
    let env = request.environment.as_deref().unwrap_or("");
    answer.summary = if counts.is_empty() {
        format!("{} {env}: nothing to do", request.command)
    } else {
        format!(
            "{} {env}: {} ({})",
            request.command,
            answer.result,
            counts
                .iter()
                .map(|(s, n)| format!("{n} {s}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if let Some(config) = &config {
        let promotes_to: Vec<String> = config
            .environments
            .iter()
            .filter(|(_, e)| e.promote_from.as_ref().is_some_and(|f| f.as_str() == env))
            .map(|(name, _)| name.to_string())
            .collect();
        let local_id = doc["run_id"].as_u64().unwrap_or(0);
        let page = summary::run_page(
            config,
            &request.command,
            &doc,
            &clouds(config, request),
            &links(ctx, local_id),
            &promotes_to,
        );
        answer.page = Some(SummaryPage::Structured(page));
    }
    code
}

fn status(request: &Request, answer: &mut Answer) -> i32 {
    let (result, out) = invoke(&request.report_args("text"));
    show(&out);
    let code = finish("status", result);
    if let Some(config) = load(request) {
        answer.state_files = state_files(&config, request);
    }
    if code == 0 {
        answer.page = Some(SummaryPage::Markdown(format!(
            "## status {}\n\n```text\n{}```\n",
            request.environment.as_deref().unwrap_or(""),
            String::from_utf8_lossy(&out).replace("```", "'''")
        )));
    }
    code
}

/// Names of the components a diff document has changes in, each once.
fn changed_in_diff(doc: &Value) -> Vec<String> {
    once(
        doc["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|change| change["component"].as_str()),
    )
}

fn diff(request: &Request, answer: &mut Answer) -> i32 {
    let (result, out) = invoke(&request.report_args("text"));
    show(&out);
    let code = finish("diff", result);
    if code != 0 {
        return code;
    }
    let (_, json) = invoke(&request.report_args("json"));
    let doc = json_of(&json);
    answer.changed = changed_in_diff(&doc);
    let (_, markdown) = invoke(&request.report_args("markdown"));
    answer.page = Some(SummaryPage::Markdown(
        String::from_utf8_lossy(&markdown).into_owned(),
    ));
    answer.summary = format!(
        "diff {} → {}: {} change(s) in {} component(s)",
        request.from.as_deref().unwrap_or(""),
        request.to.as_deref().unwrap_or(""),
        doc["summary"]["changes"],
        answer.changed.len()
    );
    code
}

fn promote(request: &Request, answer: &mut Answer) -> i32 {
    // Everything is read before the write: the gate's answer, the changes.
    let (result, json) = invoke(&request.report_args("json"));
    let code = finish("promote", result);
    if code == 2 {
        return code;
    }
    let doc = json_of(&json);
    let (_, markdown) = invoke(&request.report_args("markdown"));
    answer.page = Some(SummaryPage::Markdown(
        String::from_utf8_lossy(&markdown).into_owned(),
    ));
    let (from, to) = (
        request.from.as_deref().unwrap_or(""),
        request.to.as_deref().unwrap_or(""),
    );
    if doc["ready"] == false {
        answer.summary = format!("promote {from} → {to}: {from} is not ready");
        let reasons: Vec<&str> = doc["not_ready"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["message"].as_str())
            .collect();
        eprint!(
            "{}",
            commands::annotation(
                Level::Error,
                &format!("{from} is not ready to be promoted to {to}"),
                None,
                &reasons.join("\n")
            )
        );
        let (_, out) = invoke(&request.report_args("text"));
        show(&out);
        return code;
    }
    answer.changed = changed_in_diff(&doc);
    let (result, out) = invoke(&request.promote_write_args());
    show(&out);
    let code = finish("promote", result);
    answer.summary = format!(
        "promote {from} → {to}: {} component(s) {}",
        answer.changed.len(),
        if request.dry_run {
            "would change"
        } else {
            "changed"
        }
    );
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        Inputs::of(pairs)
    }

    #[test]
    fn inputs_map_onto_the_same_flags_a_terminal_uses() {
        let request = Request::from_inputs(&inputs(&[
            ("command", "apply"),
            ("environment", "dev"),
            ("cloud", "aws"),
            ("components", "network\nclusters"),
            ("max-parallel", "2"),
            ("on-failure", "stop"),
            ("changed-only", "true"),
            ("commit-state", "False"),
            ("open-issue-on-failure", "TRUE"),
            ("config", "infra/orchestrator.yaml"),
        ]))
        .unwrap();
        assert_eq!(
            request.run_args("json").join(" "),
            "orchestrator --config infra/orchestrator.yaml apply --env dev --cloud aws \
             --components network,clusters --changed --max-parallel 2 --on-failure stop \
             --no-commit --open-issue-on-failure --format json"
        );
        assert_eq!(
            request.plan_args("json").join(" "),
            "orchestrator --config infra/orchestrator.yaml plan --env dev --cloud aws \
             --components network,clusters --changed --format json"
        );
    }

    #[test]
    fn defaults_give_the_plain_command() {
        let request =
            Request::from_inputs(&inputs(&[("command", "destroy"), ("environment", "dev")]))
                .unwrap();
        assert_eq!(
            request.run_args("json").join(" "),
            "orchestrator --config orchestrator.yaml destroy --env dev --format json"
        );
        assert_eq!(
            request.plan_args("text").join(" "),
            "orchestrator --config orchestrator.yaml plan --env dev --destroy --format text"
        );
        let promote = Request::from_inputs(&inputs(&[
            ("command", "promote"),
            ("from", "dev"),
            ("to", "staging"),
            ("dry-run", "true"),
        ]))
        .unwrap();
        assert_eq!(
            promote.promote_write_args().join(" "),
            "orchestrator --config orchestrator.yaml promote --from dev --to staging --format text"
        );
        let comment = Request::from_inputs(&inputs(&[("command", "comment")])).unwrap();
        assert_eq!(
            comment.report_args("json").join(" "),
            "orchestrator --config orchestrator.yaml comment"
        );
    }

    #[test]
    fn bad_inputs_are_named() {
        let err = |pairs: &[(&str, &str)]| Request::from_inputs(&inputs(pairs)).unwrap_err();
        assert_eq!(err(&[]).input, "command");
        let e = err(&[("command", "aply")]);
        assert!(e.message.contains("did you mean `apply`"), "{e}");
        assert_eq!(err(&[("command", "apply")]).input, "environment");
        assert_eq!(err(&[("command", "diff"), ("from", "dev")]).input, "to");
        let e = err(&[
            ("command", "plan"),
            ("environment", "dev"),
            ("dry-run", "yes"),
        ]);
        assert_eq!(e.input, "dry-run");
        let e = err(&[
            ("command", "apply"),
            ("environment", "dev"),
            ("max-parallel", "0"),
        ]);
        assert_eq!(e.input, "max-parallel");
        let e = err(&[
            ("command", "apply"),
            ("environment", "dev"),
            ("on-failure", "ignore"),
        ]);
        assert_eq!(e.input, "on-failure");
        let e = err(&[
            ("command", "apply"),
            ("environment", "dev"),
            ("max-parallel", "2"),
            ("sequential", "true"),
        ]);
        assert_eq!(e.input, "sequential");
    }

    #[test]
    fn every_command_line_the_action_runs_parses() {
        let request = |command: &str| {
            Request::from_inputs(&inputs(&[
                ("command", command),
                ("environment", "dev"),
                ("from", "dev"),
                ("to", "staging"),
                ("components", "network"),
                ("sequential", "true"),
                ("dry-run", "true"),
            ]))
            .unwrap()
        };
        let mut lines = Vec::new();
        for command in ["plan", "apply", "destroy"] {
            let r = request(command);
            lines.extend([r.plan_args("json"), r.plan_args("text")]);
            if command != "plan" {
                lines.push(r.run_args("json"));
            }
        }
        for command in ["validate", "status", "diff", "promote"] {
            let r = request(command);
            lines.extend([r.report_args("json"), r.report_args("text")]);
        }
        lines.push(request("diff").report_args("markdown"));
        lines.push(request("promote").report_args("markdown"));
        lines.push(request("promote").promote_write_args());
        for line in lines {
            if let Err(e) = Cli::try_parse_from(&line) {
                panic!("{line:?}: {e}");
            }
        }
    }

    #[test]
    fn waves_for_a_matrix_leave_out_what_has_nothing_to_do() {
        let plans = [
            serde_json::json!({"cloud": "aws", "components": [
                {"name": "network", "action": "noop", "wave": 0},
                {"name": "clusters", "action": "update", "wave": 1},
                {"name": "addons", "action": "update", "wave": 2}]}),
            serde_json::json!({"cloud": "azure", "components": [
                {"name": "network", "action": "create", "wave": 0}]}),
        ];
        assert_eq!(
            matrix_waves(&plans),
            serde_json::json!([
                [{"cloud": "azure", "component": "network", "action": "create"}],
                [{"cloud": "aws", "component": "clusters", "action": "update"}],
                [{"cloud": "aws", "component": "addons", "action": "update"}]
            ])
        );
        let only_noop = [serde_json::json!({"cloud": "aws", "components": [
            {"name": "network", "action": "noop", "wave": 0}]})];
        assert_eq!(matrix_waves(&only_noop), serde_json::json!([]));
        assert_eq!(changed_of(&plans), ["clusters", "addons", "network"]);
    }
}
