//! The command line: clap definitions, and each command from arguments to
//! output. Action inputs will map onto the same commands.
//!
//! Output contract: with `--format json` a command prints one JSON document
//! on stdout and nothing else there; people-facing text and errors go to
//! stderr. Exit codes: 0 success, 1 a component failed, 2 bad input
//! (arguments, config, state file), 3 state conflict or lock held, 130
//! cancelled.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{self, CloudName, ComponentName, Config, EnvName, Report, did_you_mean};
use crate::plan::{self, Plan};
use crate::report;

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
}

/// Arguments of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
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
    /// Plan a destroy, in reverse dependency order.
    #[arg(long)]
    pub destroy: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
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

/// Exit code: bad input (arguments, config, state file).
pub const EXIT_BAD_INPUT: i32 = 2;

/// Why a command failed, and so which exit code it ends with.
#[derive(Debug)]
pub enum Failure {
    /// The configuration is invalid; every problem is in the report.
    Config(Report),
    /// An argument names something that does not exist, or makes no sense.
    Usage {
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: Option<String>,
    },
    /// The input is bad and the problems were already written to stdout as
    /// the command's JSON document.
    Reported,
    /// Writing the output failed (for example, a closed pipe).
    Io(std::io::Error),
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Config(_) | Failure::Usage { .. } | Failure::Reported => EXIT_BAD_INPUT,
            Failure::Io(_) => 1,
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
            Failure::Reported => String::new(),
            Failure::Io(e) => format!("error: cannot write output: {e}\n"),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

fn usage(message: impl Into<String>, hint: Option<String>) -> Failure {
    Failure::Usage {
        message: message.into(),
        hint,
    }
}

/// Runs a parsed command line, writing its output to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Failure> {
    match cli.command {
        Command::Schema => out.write_all(config::schema::json().as_bytes())?,
        Command::Validate { format } => validate(&cli.config, format, out)?,
        Command::Graph { format } => {
            let config = config::load(&cli.config).map_err(Failure::Config)?;
            let doc = report::graph::document(&config);
            let text = match format {
                GraphFormat::Text => report::graph::text(&doc),
                GraphFormat::Mermaid => report::graph::mermaid(&doc),
                GraphFormat::Dot => report::graph::dot(&doc),
                GraphFormat::Json => json(&doc),
            };
            out.write_all(text.as_bytes())?;
        }
        Command::Plan(args) => plan_command(&cli.config, &args, out)?,
    }
    Ok(())
}

fn json<T: serde::Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

fn validate(file: &std::path::Path, format: Format, out: &mut dyn Write) -> Result<(), Failure> {
    let config = config::load(file);
    let report = match &config {
        Ok(c) => config::values::check(c, &c.environments.keys().collect::<Vec<_>>(), true),
        Err(report) => report.clone(),
    };
    if format == Format::Json {
        let mut doc = report.to_json();
        if let Ok(c) = &config {
            doc["components"] = c.components.len().into();
            doc["environments"] = c
                .environments
                .keys()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .into();
        }
        out.write_all(json(&doc).as_bytes())?;
        // The document on stdout already carries the errors; the exit code
        // still says the input is bad.
        return if report.is_empty() {
            Ok(())
        } else {
            Err(Failure::Reported)
        };
    }
    if !report.is_empty() {
        return Err(Failure::Config(report));
    }
    if let Ok(c) = config {
        let targets: usize = c.environments.values().map(|e| e.clouds.len()).sum();
        let (waves, _) = c
            .graph
            .waves(&c.graph.all(), crate::graph::Walk::Dependents);
        writeln!(
            out,
            "{} is valid: {} components in {} waves, {} environments ({} environment/cloud targets)",
            c.file.display(),
            c.components.len(),
            waves.len(),
            c.environments.len(),
            targets
        )?;
    }
    Ok(())
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

fn plan_command(
    file: &std::path::Path,
    args: &PlanArgs,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let config = config::load(file).map_err(Failure::Config)?;
    let env_names: Vec<&str> = config.environments.keys().map(EnvName::as_str).collect();
    let env = known(
        &args.env,
        "environment",
        EnvName::parse,
        |e| config.environment(e).is_some(),
        &env_names,
    )?;
    let environment = &config.environments[&env];
    let clouds: Vec<CloudName> = match &args.cloud {
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
    let request = plan::Request {
        components: selected_components(&config, &args.components)?,
        with_deps: args.with_deps,
        with_dependents: args.with_dependents,
        destroy: args.destroy,
    };
    let values = config::values::check(&config, &[&env], false);
    if !values.is_empty() {
        return Err(Failure::Config(values));
    }
    let plans: Vec<Plan> = clouds
        .iter()
        .map(|cloud| plan::plan(&config, &env, cloud, &request))
        .collect();
    match args.format {
        Format::Json if plans.len() == 1 => out.write_all(json(&plans[0]).as_bytes())?,
        Format::Json => out.write_all(json(&plans).as_bytes())?,
        Format::Text => {
            let texts: Vec<String> = plans
                .iter()
                .map(|p| report::plan::text(&config, p))
                .collect();
            out.write_all(texts.join("\n").as_bytes())?;
        }
    }
    Ok(())
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
