//! The typed form of `orchestrator.yaml`, exactly as written.
//!
//! These types are what the loader produces and what the JSON Schema is
//! generated from (`orchestrator schema`), so the two cannot disagree about
//! which keys exist. Each struct lists its keys in `KEYS`, which the loader
//! uses to reject unknown keys and a test holds equal to the schema.
//! Positions of keys and values ride along (skipped by serde) so later
//! checks can point at the line that is wrong.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};

use super::names::{CloudName, ComponentName, EnvName};
use crate::yaml::Pos;

/// A value together with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub pos: Pos,
}

impl<T> Located<T> {
    /// Pairs a value with its position.
    pub fn new(value: T, pos: Pos) -> Self {
        Located { value, pos }
    }
}

impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// The whole of `orchestrator.yaml`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "orchestrator.yaml",
    description = "Components, their dependencies and the environments they are deployed to.",
    extend("patternProperties" = {
        "^x-": {
            "description": "An extension field, left alone: a place for YAML anchors to merge into components (`<<: *name`)."
        }
    })
)]
pub struct ConfigFile {
    /// Format version of this file. Only 1 exists.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Settings every component inherits unless it sets its own.
    #[serde(default)]
    pub defaults: Settings,
    /// How many components may run at the same time.
    #[serde(default = "default_max_parallel")]
    #[schemars(range(min = 1))]
    pub max_parallel: u32,
    /// The components to deploy, by name.
    #[schemars(extend("minProperties" = 1))]
    pub components: IndexMap<ComponentName, ComponentSpec>,
    /// The environments components are deployed to, by name.
    #[schemars(extend("minProperties" = 1))]
    pub environments: IndexMap<EnvName, EnvironmentSpec>,
    /// What promotion copies from one environment to the next.
    #[serde(default)]
    pub promotion: PromotionSpec,
    /// Where the orchestration state is kept.
    #[serde(default)]
    pub state: StateSpec,
    /// Which values are secret, so they never leave in issues, comments or logs.
    #[serde(default)]
    pub secrets: SecretsSpec,
    /// The GitHub issues opened when a deployment fails.
    #[serde(default)]
    pub issues: IssuesSpec,
}

impl ConfigFile {
    /// The keys this mapping accepts.
    pub const KEYS: &'static [&'static str] = &[
        "version",
        "defaults",
        "max_parallel",
        "components",
        "environments",
        "promotion",
        "state",
        "secrets",
        "issues",
    ];
}

/// The default concurrency cap: finite, so a large graph cannot start
/// hundreds of cloud API clients at once.
pub const DEFAULT_MAX_PARALLEL: u32 = 4;

fn default_max_parallel() -> u32 {
    DEFAULT_MAX_PARALLEL
}

/// How a component is run: set under `defaults` for every component, and on
/// a component for that one (what it sets wins).
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The tool that deploys the component (built-in default `tofu`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runner: Option<Runner>,
    /// How long one attempt may run before it is stopped (built-in default `30m`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Timeout>,
    /// Extra attempts after a transient error (built-in default 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// The delay before the first retry (built-in default `5s`); later ones
    /// double, with jitter, up to a minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<Timeout>,
    /// Regular expressions (case-insensitive) for the errors worth a retry;
    /// they replace the built-in set of transient errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<Vec<Located<String>>>,
    /// Environment variables; a component's are added over the defaults'.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    /// Other files and directories whose changes are changes of the
    /// component (the local modules it uses, shared scripts), relative to
    /// the repository root; may use `{env}` and `{cloud}`. A component's
    /// are added to the defaults'.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<Located<Template>>,
}

impl Settings {
    /// The keys this mapping accepts.
    pub const KEYS: &'static [&'static str] = &[
        "runner",
        "timeout",
        "retries",
        "retry_delay",
        "retry_on",
        "env",
        "watch",
    ];

    /// These settings with `defaults` filling in what they leave unset;
    /// environment variables are merged, these winning.
    pub fn over(self, defaults: &Settings) -> Settings {
        let mut env = defaults.env.clone();
        env.extend(self.env);
        let mut watch = defaults.watch.clone();
        for path in self.watch {
            if !watch.iter().any(|w| w.value == path.value) {
                watch.push(path);
            }
        }
        Settings {
            runner: self.runner.or(defaults.runner),
            timeout: self.timeout.or(defaults.timeout),
            retries: self.retries.or(defaults.retries),
            retry_delay: self.retry_delay.or(defaults.retry_delay),
            retry_on: self.retry_on.or_else(|| defaults.retry_on.clone()),
            env,
            watch,
        }
    }
}

/// One component: a deployable unit with its own tool, path and dependencies.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentSpec {
    /// One line saying what the component is, shown in graphs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Directory of the component, relative to the repository root; may use
    /// `{env}` and `{cloud}`.
    pub path: Located<Template>,
    /// Components that must be deployed before this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Located<ComponentName>>,
    /// Commands for the `shell` runner, one per action; may use `{env}` and `{cloud}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commands: Option<Located<Commands>>,
    /// Runner, timeout, retries and environment, over `defaults`.
    #[serde(flatten)]
    pub settings: Settings,
    /// Checks to run after apply. Accepted and kept; not run yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Where the component's name is written.
    #[serde(skip)]
    pub pos: Pos,
}

impl ComponentSpec {
    /// The keys this mapping accepts besides the [`Settings`] keys.
    pub const OWN_KEYS: &'static [&'static str] =
        &["description", "path", "depends_on", "commands", "verify"];
}

/// The tool that deploys a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Runner {
    /// OpenTofu: `tofu init`, then `plan` / `apply` / `destroy`.
    Tofu,
    /// Terraform, invoked like OpenTofu.
    Terraform,
    /// Helm: `upgrade --install` / `uninstall`.
    Helm,
    /// Any commands, given under `commands`.
    Shell,
}

impl Runner {
    /// Every runner, in the order they are documented.
    pub const ALL: [Runner; 4] = [Runner::Tofu, Runner::Terraform, Runner::Helm, Runner::Shell];

    /// The name used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Runner::Tofu => "tofu",
            Runner::Terraform => "terraform",
            Runner::Helm => "helm",
            Runner::Shell => "shell",
        }
    }
}

impl fmt::Display for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Commands of a `shell` component, run with `sh -c` in the component's directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Commands {
    /// Shows what apply would do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Template>,
    /// Deploys the component. Required for `shell` components.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply: Option<Template>,
    /// Removes what apply deployed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destroy: Option<Template>,
}

impl Commands {
    /// The keys this mapping accepts.
    pub const KEYS: &'static [&'static str] = &["plan", "apply", "destroy"];
}

/// One environment (dev, staging, prod) and the clouds it spans.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSpec {
    /// The clouds this environment is deployed to; each has its own state.
    #[schemars(length(min = 1))]
    pub clouds: Vec<Located<CloudName>>,
    /// The environment whose versions are promoted into this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promote_from: Option<Located<EnvName>>,
    /// Deploys need an approval (a GitHub Environment with required reviewers).
    #[serde(default)]
    pub protected: bool,
    /// Where the environment's name is written.
    #[serde(skip)]
    pub pos: Pos,
}

impl EnvironmentSpec {
    /// The keys this mapping accepts.
    pub const KEYS: &'static [&'static str] = &["clouds", "promote_from", "protected"];
}

/// What promotion copies between environments.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionSpec {
    /// Dotted-path patterns of the values promotion copies, e.g. `**.version`;
    /// everything else is specific to each environment.
    #[serde(default)]
    pub keys: Vec<Located<String>>,
}

impl PromotionSpec {
    /// The keys this mapping accepts.
    pub const KEYS: &'static [&'static str] = &["keys"];
}

/// Where the state files live.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    /// Branch holding the state files; `""` or `current` for the checked-out branch.
    #[serde(default = "default_state_branch")]
    pub branch: Located<String>,
    /// Directory of the state files, relative to the repository root.
    #[serde(default = "default_state_dir")]
    pub dir: Located<String>,
    /// Author of state commits, as `Name <email>`; default
    /// `orchestrator[bot] <orchestrator[bot]@users.noreply.github.com>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Located<String>>,
}

impl StateSpec {
    /// The keys this mapping accepts.
    pub const KEYS: &'static [&'static str] = &["branch", "dir", "author"];
}

impl Default for StateSpec {
    fn default() -> Self {
        StateSpec {
            branch: default_state_branch(),
            dir: default_state_dir(),
            author: None,
        }
    }
}

/// Splits `Name <email>` into its name and email.
pub fn parse_author(text: &str) -> Result<(String, String), String> {
    let bad = || format!("`{text}` is not an author like `orchestrator[bot] <bot@example.com>`");
    let (name, rest) = text.split_once('<').ok_or_else(bad)?;
    let email = rest.strip_suffix('>').ok_or_else(bad)?;
    let (name, email) = (name.trim(), email.trim());
    if name.is_empty() || email.is_empty() || email.contains(['<', '>']) || !email.contains('@') {
        return Err(bad());
    }
    Ok((name.to_string(), email.to_string()))
}

fn default_state_branch() -> Located<String> {
    Located::new("orchestrator-state".to_string(), Pos::default())
}

fn default_state_dir() -> Located<String> {
    Located::new(".orchestrator/state".to_string(), Pos::default())
}

/// Which values are secret.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretsSpec {
    /// Words that make a key name look secret, matched against whole words of
    /// the name (`api_key` and `dbPassword` match `key` and `password`;
    /// `keys` and `monkey` do not). Replaces the built-in list: password,
    /// secret, token, key, credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<Located<String>>>,
    /// Dotted key-path patterns of values that are always secret, e.g.
    /// `**.db_password` (`*` is one key, `**` any number of keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<Located<String>>,
}

impl SecretsSpec {
    /// The keys this mapping accepts.
    pub const KEYS: &'static [&'static str] = &["keys", "sensitive"];
}

/// The GitHub issues opened when a deployment fails.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuesSpec {
    /// Labels put on failure issues (default `[orchestrator]`); the first is
    /// the one open issues are found by.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub labels: Option<Vec<Located<String>>>,
    /// GitHub users assigned to new failure issues.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignees: Vec<Located<String>>,
}

impl IssuesSpec {
    /// The keys this mapping accepts.
    pub const KEYS: &'static [&'static str] = &["labels", "assignees"];
}

/// A duration written like `90s`, `30m` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Duration);

impl Timeout {
    /// Parses `90s`, `30m`, `1h30m`; a bare number is refused because its unit
    /// would be a guess.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "`{text}` has no unit: write `{text}s` or `{text}m`"
            ));
        }
        let duration = humantime::parse_duration(text.trim()).map_err(|e| {
            format!("`{text}` is not a duration ({e}); write e.g. `90s`, `30m` or `1h30m`")
        })?;
        if duration.is_zero() {
            return Err("a timeout must be longer than zero".to_string());
        }
        Ok(Timeout(duration))
    }
}

impl Serialize for Timeout {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

impl JsonSchema for Timeout {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^\\s*[0-9]+\\s*[a-zA-Z]+(\\s*[0-9]+\\s*[a-zA-Z]+)*\\s*$",
            "description": "A duration with units, such as `90s`, `30m` or `1h30m`.",
            "examples": ["90s", "30m", "1h30m"]
        })
    }
}

/// A string that may contain `{env}` and `{cloud}`, filled in per
/// environment and cloud.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Template(String);

/// The placeholders a [`Template`] may use.
pub const PLACEHOLDERS: [&str; 2] = ["env", "cloud"];

impl Template {
    /// Parses a template. In commands, shell's own `${VAR}` is left alone;
    /// any other `{word}` must be a known placeholder, so a typo such as
    /// `{enviroment}` is caught here instead of reaching a shell.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find('{') {
            let shell_expansion = open > 0 && rest.as_bytes()[open - 1] == b'$';
            let after = &rest[open + 1..];
            let close = after.find('}');
            if !shell_expansion {
                let word = close.map(|c| &after[..c]);
                match word {
                    Some(w) if PLACEHOLDERS.contains(&w) => {}
                    Some(w)
                        if !w.is_empty()
                            && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                    {
                        return Err(format!(
                            "unknown placeholder `{{{w}}}`; only `{{env}}` and `{{cloud}}` exist"
                        ));
                    }
                    _ => {}
                }
            }
            let step = open + 1 + close.map_or(0, |c| c + 1);
            offset += step;
            rest = &text[offset..];
        }
        Ok(Template(text.to_string()))
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the template uses `{env}` or `{cloud}`.
    pub fn has_placeholders(&self) -> bool {
        has_placeholders(&self.0)
    }

    /// The text with `{env}` and `{cloud}` filled in.
    pub fn expand(&self, env: &EnvName, cloud: &CloudName) -> String {
        expand(&self.0, env, cloud)
    }
}

/// Whether `text`, a [`Template`] as written, uses `{env}` or `{cloud}`.
fn has_placeholders(text: &str) -> bool {
    text.contains("{env}") || text.contains("{cloud}")
}

/// `text`, a [`Template`] as written, with `{env}` and `{cloud}` filled in;
/// the shell's own `${env}` and `${cloud}` are left alone.
pub fn expand(text: &str, env: &EnvName, cloud: &CloudName) -> String {
    if !has_placeholders(text) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let (before, from) = rest.split_at(open);
        out.push_str(before);
        let shell = before.ends_with('$') || (before.is_empty() && out.ends_with('$'));
        let value = [("{env}", env.as_str()), ("{cloud}", cloud.as_str())]
            .into_iter()
            .find(|(placeholder, _)| !shell && from.starts_with(placeholder));
        match value {
            Some((placeholder, value)) => {
                out.push_str(value);
                rest = &from[placeholder.len()..];
            }
            None => {
                out.push('{');
                rest = &from[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl JsonSchema for Template {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Template".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "minLength": 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_need_units_and_must_be_positive() {
        assert_eq!(Timeout::parse("90s").unwrap().0, Duration::from_secs(90));
        assert_eq!(Timeout::parse("30m").unwrap().0, Duration::from_secs(1800));
        assert_eq!(
            Timeout::parse("1h30m").unwrap().0,
            Duration::from_secs(5400)
        );
        assert!(Timeout::parse("30").unwrap_err().contains("no unit"));
        assert!(Timeout::parse("0s").is_err());
        assert!(Timeout::parse("soon").is_err());
    }

    #[test]
    fn templates_fill_in_env_and_cloud_and_leave_shell_expansions_alone() {
        let t = Template::parse("components/{cloud}/net ${HOME} {env}").unwrap();
        let env = EnvName::parse("dev").unwrap();
        let cloud = CloudName::parse("aws").unwrap();
        assert_eq!(t.expand(&env, &cloud), "components/aws/net ${HOME} dev");
        assert!(Template::parse("awk '{print $1}'").is_ok());
        // The shell's variables of the same names are its own.
        let t = Template::parse("echo ${env} {env}-{cloud} ${cloud}{cloud} {{env}}").unwrap();
        assert_eq!(
            t.expand(&env, &cloud),
            "echo ${env} dev-aws ${cloud}aws {dev}"
        );
    }

    #[test]
    fn templates_refuse_unknown_placeholders() {
        let err = Template::parse("stacks/{enviroment}").unwrap_err();
        assert!(err.contains("{enviroment}"), "{err}");
    }
}
