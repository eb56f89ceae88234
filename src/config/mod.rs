//! The orchestrator's configuration: `orchestrator.yaml` and the values
//! files under `environments/`.
//!
//! Loading runs in three steps, each reporting every problem it finds:
//! parse the YAML ([`crate::yaml`]), read it into the typed document
//! ([`model::ConfigFile`], the source of the JSON Schema), then check what
//! spans several keys ([`validate`]). The result is a [`Config`] with
//! defaults applied and the dependency graph built: once you hold one, it is
//! valid.

mod diagnostic;
pub mod keypath;
mod load;
pub mod model;
pub mod modules;
mod names;
pub mod schema;
mod validate;
pub mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;

pub use diagnostic::{Diagnostic, Report, did_you_mean};
pub use keypath::KeyPattern;
pub use model::{Commands, Runner, Template};
pub use names::{CloudName, ComponentName, EnvName, NameError};

use crate::graph::Graph;
use model::ConfigFile;

/// How long one attempt may run when neither component nor defaults say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Extra attempts after a transient error when neither component nor defaults say.
pub const DEFAULT_RETRIES: u32 = 2;
/// The delay before the first retry when neither component nor defaults say.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(5);
/// The runner when neither component nor defaults say.
pub const DEFAULT_RUNNER: Runner = Runner::Tofu;
/// Words that make a key name look secret when `secrets.keys` is not set.
pub use keypath::DEFAULT_SECRET_WORDS as DEFAULT_SECRET_KEYS;
/// The label of failure issues when `issues.labels` is not set.
pub const DEFAULT_ISSUE_LABEL: &str = "orchestrator";

/// A loaded, valid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file, as it was named.
    pub file: PathBuf,
    /// The directory holding it: component paths are relative to it.
    pub root: PathBuf,
    /// How many components may run at once.
    pub max_parallel: u32,
    /// Components in name order: `components[i]` is node `i` of `graph`.
    pub components: Vec<Component>,
    /// The dependency graph.
    pub graph: Graph,
    /// Environments, in the order written.
    pub environments: IndexMap<EnvName, Environment>,
    /// Key-path patterns of the values promotion copies.
    pub promotion_keys: Vec<KeyPattern>,
    /// Where state is kept.
    pub state: StateSettings,
    /// Which values are secret.
    pub secrets: SecretSettings,
    /// How failure issues are labelled and assigned.
    pub issues: IssueSettings,
}

/// Which values are secret (`secrets:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSettings {
    /// Words that make a key name look secret.
    pub keys: Vec<String>,
    /// Key paths whose values are always secret.
    pub sensitive: Vec<KeyPattern>,
}

/// How failure issues are labelled and assigned (`issues:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueSettings {
    /// Labels of new issues; never empty, and the first finds open ones.
    pub labels: Vec<String>,
    /// Users assigned to new issues.
    pub assignees: Vec<String>,
}

/// One component with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// Its name.
    pub name: ComponentName,
    /// What it is, in one line.
    pub description: Option<String>,
    /// Its directory, relative to the repository root.
    pub path: Template,
    /// The tool that deploys it.
    pub runner: Runner,
    /// What it depends on directly, in name order.
    pub depends_on: Vec<ComponentName>,
    /// Commands for the shell runner.
    pub commands: Commands,
    /// How long one attempt may run.
    pub timeout: Duration,
    /// Extra attempts after a transient error.
    pub retries: u32,
    /// The delay before the first retry.
    pub retry_delay: Duration,
    /// Patterns of errors worth a retry; `None` means the built-in set.
    pub retry_on: Option<Vec<String>>,
    /// Environment variables: the defaults' overlaid with its own.
    pub env: IndexMap<String, String>,
    /// Other paths whose changes are its changes: the defaults' and its own.
    pub watch: Vec<Template>,
    /// Checks to run after apply, kept as written.
    pub verify: Vec<serde_json::Map<String, serde_json::Value>>,
}

impl Component {
    /// Every path whose files are the component's: its directory, then
    /// what it watches.
    pub fn paths(&self) -> impl Iterator<Item = &Template> {
        std::iter::once(&self.path).chain(&self.watch)
    }
}

/// One environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Its name.
    pub name: EnvName,
    /// The clouds it spans, in the order written.
    pub clouds: Vec<CloudName>,
    /// Where its versions are promoted from.
    pub promote_from: Option<EnvName>,
    /// Whether deploys need an approval.
    pub protected: bool,
}

/// Where state files are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSettings {
    /// The branch holding them.
    pub branch: StateBranch,
    /// Their directory, relative to the repository root.
    pub dir: PathBuf,
    /// The author of state commits, when not the default bot.
    pub author: Option<crate::state::git::Identity>,
}

/// Which branch state is committed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateBranch {
    /// A branch of its own (created on first use).
    Dedicated(String),
    /// Whatever branch is checked out.
    Current,
}

impl Config {
    /// The component called `name`.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.graph.index_of(name).map(|i| &self.components[i])
    }

    /// The environment called `name`.
    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.get(name)
    }
}

/// Loads and validates `orchestrator.yaml`. On failure the report holds
/// every problem found, with the sources to show them in.
pub fn load(file: &Path) -> Result<Config, Report> {
    let mut report = Report::default();
    let text = read_text(file, &mut report)?;
    let root = file.parent().map(Path::to_path_buf).unwrap_or_default();
    build(file, text, root.clone(), Some(&root))
}

/// Loads and validates the text of an `orchestrator.yaml` that is not in
/// the working tree (the file of another commit), named `file` in errors.
/// Everything is checked but that component directories exist.
pub fn from_text(file: &Path, text: &str) -> Result<Config, Report> {
    let root = file.parent().map(Path::to_path_buf).unwrap_or_default();
    build(file, text.to_string(), root, None)
}

/// Parses, reads and checks a config's text; component directories are
/// looked for under `dirs` when given.
fn build(file: &Path, text: String, root: PathBuf, dirs: Option<&Path>) -> Result<Config, Report> {
    let mut report = Report::default();
    let document = parse_yaml(file, &text, &mut report)
        .and_then(|tree| load::read(file, &text, &tree, &mut report));
    let graph = document
        .as_ref()
        .and_then(|doc| validate::check(file, dirs, doc, &mut report));
    if let (Some(doc), Some(graph), true) = (document, graph, report.is_empty()) {
        return Ok(resolve(file, root, doc, graph));
    }
    report.add_source(file, text);
    report.sort();
    Err(report)
}

/// Parses a file's text as YAML, reporting a syntax error as a diagnostic.
pub(crate) fn parse_yaml<'t>(
    file: &Path,
    text: &'t str,
    report: &mut Report,
) -> Option<crate::yaml::Node<'t>> {
    crate::yaml::parse(text)
        .map_err(|e| {
            report.push(Diagnostic::new(
                file,
                e.pos,
                "",
                format!("invalid YAML: {}", e.message),
            ))
        })
        .ok()
}

/// Reads a configuration file, refusing one too large to be a config before
/// reading it into memory.
pub(crate) fn read_text(file: &Path, report: &mut Report) -> Result<String, Report> {
    let fail = |report: &mut Report, message: String, hint: &str| {
        report.push(Diagnostic::new(file, Default::default(), "", message).hint(hint));
        report.clone()
    };
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if size > crate::yaml::MAX_INPUT_BYTES as u64 {
        let message = format!(
            "the file is {size} bytes, over the limit of {} bytes",
            crate::yaml::MAX_INPUT_BYTES
        );
        return Err(fail(
            report,
            message,
            "configuration files this large are refused to keep parsing bounded",
        ));
    }
    std::fs::read_to_string(file).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "run from the repository root, or pass --config PATH"
        } else {
            "the file must be readable UTF-8 text"
        };
        fail(report, format!("cannot read the file: {e}"), hint)
    })
}

fn resolve(file: &Path, root: PathBuf, doc: ConfigFile, graph: Graph) -> Config {
    let ConfigFile {
        defaults,
        max_parallel,
        components,
        environments,
        promotion,
        state,
        secrets,
        issues,
        ..
    } = doc;
    let mut specs = components;
    specs.sort_unstable_keys();
    let components = specs
        .into_iter()
        .map(|(name, spec)| {
            let settings = spec.settings.over(&defaults);
            let mut depends_on: Vec<ComponentName> =
                spec.depends_on.into_iter().map(|d| d.value).collect();
            depends_on.sort();
            depends_on.dedup();
            Component {
                name,
                description: spec.description,
                path: spec.path.value,
                runner: settings.runner.unwrap_or(DEFAULT_RUNNER),
                depends_on,
                commands: spec.commands.map(|c| c.value).unwrap_or_default(),
                timeout: settings.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0),
                retries: settings.retries.unwrap_or(DEFAULT_RETRIES),
                retry_delay: settings.retry_delay.map_or(DEFAULT_RETRY_DELAY, |t| t.0),
                retry_on: settings
                    .retry_on
                    .map(|patterns| patterns.into_iter().map(|p| p.value).collect()),
                env: settings.env,
                watch: settings.watch.into_iter().map(|w| w.value).collect(),
                verify: spec.verify,
            }
        })
        .collect();
    let environments = environments
        .into_iter()
        .map(|(name, spec)| {
            let env = Environment {
                name: name.clone(),
                clouds: spec.clouds.into_iter().map(|c| c.value).collect(),
                promote_from: spec.promote_from.map(|p| p.value),
                protected: spec.protected,
            };
            (name, env)
        })
        .collect();
    let branch = match state.branch.value.as_str() {
        "" | "current" => StateBranch::Current,
        other => StateBranch::Dedicated(other.to_string()),
    };
    Config {
        file: file.to_path_buf(),
        root,
        max_parallel,
        components,
        graph,
        environments,
        // The loader parsed every pattern and reported the ones that failed.
        promotion_keys: promotion
            .keys
            .iter()
            .filter_map(|k| KeyPattern::parse(&k.value).ok())
            .collect(),
        state: StateSettings {
            branch,
            dir: PathBuf::from(state.dir.value),
            author: state
                .author
                .and_then(|a| model::parse_author(&a.value).ok())
                .map(|(name, email)| crate::state::git::Identity { name, email }),
        },
        secrets: SecretSettings {
            keys: secrets.keys.map_or_else(
                || DEFAULT_SECRET_KEYS.map(String::from).to_vec(),
                |keys| keys.into_iter().map(|k| k.value).collect(),
            ),
            // Each pattern was parsed once already when the file was read.
            sensitive: secrets
                .sensitive
                .iter()
                .filter_map(|p| KeyPattern::parse(&p.value).ok())
                .collect(),
        },
        issues: IssueSettings {
            labels: issues
                .labels
                .map(|l| l.into_iter().map(|l| l.value).collect::<Vec<_>>())
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| vec![DEFAULT_ISSUE_LABEL.to_string()]),
            assignees: issues.assignees.into_iter().map(|a| a.value).collect(),
        },
    }
}
