//! The runner contract: what a GitHub Actions runner tells a step through
//! its environment, read in one place.
//!
//! - [`RunContext`]: whether this is a workflow run at all
//!   (`GITHUB_ACTIONS=true`), which run and attempt, who started it, the
//!   server (GitHub Enterprise Server has its own), the event payload;
//! - [`Inputs`]: the action's inputs, `INPUT_<NAME>` with the name
//!   upper-cased, spaces turned into `_` and hyphens kept
//!   (`INPUT_MAX-PARALLEL`), as the runner sets them. Everything arrives as
//!   a string, defaults included, and the runner checks nothing: booleans
//!   and required inputs are checked here.
//!
//! The answers go back through [`super::files`] (outputs, step summary) and
//! [`super::commands`] (log groups, annotations, masks).

use std::collections::BTreeMap;

use crate::state::RunInfo;

/// What the workflow run says about itself, from the runner's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunContext {
    /// `GITHUB_ACTIONS=true`: this is a workflow run.
    pub on_actions: bool,
    /// `GITHUB_SERVER_URL`, e.g. `https://github.com`.
    pub server_url: Option<String>,
    /// `GITHUB_REPOSITORY`.
    pub repository: Option<String>,
    /// `GITHUB_RUN_ID`.
    pub run_id: Option<u64>,
    /// `GITHUB_RUN_ATTEMPT` (1 when unset).
    pub attempt: u32,
    /// `GITHUB_ACTOR`, else `USER`.
    pub actor: Option<String>,
    /// `GITHUB_WORKFLOW`: the workflow's name.
    pub workflow: Option<String>,
    /// `GITHUB_SHA`: the commit the run is for.
    pub sha: Option<String>,
    /// `GITHUB_EVENT_NAME`.
    pub event_name: Option<String>,
    /// The event payload named by `GITHUB_EVENT_PATH`, when it could be read.
    pub event: Option<serde_json::Value>,
    /// Why the payload could not be read, when `GITHUB_EVENT_PATH` is set.
    pub event_error: Option<String>,
}

impl RunContext {
    /// Reads the runner's environment.
    pub fn from_env() -> RunContext {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let (event, event_error) = match var("GITHUB_EVENT_PATH") {
            None => (None, None),
            Some(path) => match read_event(&path) {
                Ok(event) => (Some(event), None),
                Err(e) => (None, Some(e)),
            },
        };
        RunContext {
            on_actions: var("GITHUB_ACTIONS").as_deref() == Some("true"),
            server_url: var("GITHUB_SERVER_URL"),
            repository: var("GITHUB_REPOSITORY"),
            run_id: var("GITHUB_RUN_ID").and_then(|v| v.parse().ok()),
            attempt: var("GITHUB_RUN_ATTEMPT")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
            actor: var("GITHUB_ACTOR").or_else(|| var("USER")),
            workflow: var("GITHUB_WORKFLOW"),
            sha: var("GITHUB_SHA"),
            event_name: var("GITHUB_EVENT_NAME"),
            event,
            event_error,
        }
    }

    /// A link to the workflow run (and its attempt), when this is one.
    pub fn link(&self) -> Option<String> {
        let server = self.server_url.as_deref()?.trim_end_matches('/');
        let repo = self.repository.as_deref()?;
        let id = self.run_id?;
        Some(if self.attempt > 1 {
            format!(
                "{server}/{repo}/actions/runs/{id}/attempts/{}",
                self.attempt
            )
        } else {
            format!("{server}/{repo}/actions/runs/{id}")
        })
    }

    /// The run, as markdown: a link to it, or who ran it locally.
    pub fn describe(&self, local_run_id: u64) -> String {
        match (self.link(), self.run_id) {
            (Some(link), Some(id)) if self.attempt > 1 => {
                format!("[run {id}, attempt {}]({link})", self.attempt)
            }
            (Some(link), Some(id)) => format!("[run {id}]({link})"),
            _ => match &self.actor {
                Some(actor) => format!("local run {local_run_id} by {actor}"),
                None => format!("local run {local_run_id}"),
            },
        }
    }

    /// A key naming this run and attempt, for markers that keep one run
    /// from reporting the same thing twice.
    pub fn key(&self, local_run_id: u64) -> String {
        match self.run_id {
            Some(id) => format!("{id}-{}", self.attempt),
            None => format!("local-{local_run_id}"),
        }
    }

    /// The run as the state records it: the workflow run and attempt, its
    /// link and actor on GitHub Actions; this invocation and the local user
    /// elsewhere.
    pub fn run_info(&self, local_run_id: u64) -> RunInfo {
        match self.run_id.filter(|_| self.on_actions) {
            Some(id) => RunInfo {
                id,
                attempt: self.attempt,
                url: self.link(),
                actor: self.actor.clone(),
            },
            None => RunInfo {
                id: local_run_id,
                attempt: 1,
                url: None,
                actor: std::env::var("USER").ok().filter(|u| !u.is_empty()),
            },
        }
    }

    /// The number of the pull request this run is for, from the event.
    pub fn pull_request(&self) -> Option<u64> {
        let event = self.event.as_ref()?;
        event["pull_request"]["number"].as_u64().or_else(|| {
            // issue_comment on a pull request: the issue carries `pull_request`.
            event["issue"]["pull_request"]
                .is_object()
                .then(|| event["issue"]["number"].as_u64())
                .flatten()
        })
    }

    /// Whether this run is for a pull request from a fork, whose token can
    /// only read: writes fail with "Resource not accessible by integration".
    pub fn is_fork_pull_request(&self) -> bool {
        let Some(pr) = self.event.as_ref().map(|e| &e["pull_request"]) else {
            return false;
        };
        let head = pr["head"]["repo"]["full_name"].as_str();
        let base = pr["base"]["repo"]["full_name"].as_str();
        pr["head"]["repo"]["fork"].as_bool() == Some(true) || (head.is_some() && head != base)
    }

    /// One line about the event that started the run, for the log: its
    /// name, and what it is about (pull request, ref, inputs). Names and
    /// numbers only: titles and bodies are the author's text.
    pub fn describe_event(&self) -> Option<String> {
        let name = self.event_name.as_deref().unwrap_or("event");
        let event = self.event.as_ref()?;
        let text = |v: &serde_json::Value| v.as_str().map(String::from);
        let mut parts = vec![name.to_string()];
        if let Some(action) = text(&event["action"]) {
            parts.push(format!("({action})"));
        }
        if let Some(n) = self.pull_request() {
            parts.push(format!("on #{n}"));
            let pr = &event["pull_request"];
            if let (Some(head), Some(base)) = (text(&pr["head"]["ref"]), text(&pr["base"]["ref"])) {
                parts.push(format!("from {head} into {base}"));
            }
        } else if let Some(n) = event["issue"]["number"].as_u64() {
            parts.push(format!("on issue #{n}"));
        }
        if let Some(git_ref) = text(&event["ref"]) {
            parts.push(format!("at {git_ref}"));
        }
        if let Some(after) = text(&event["after"]).filter(|s| s.len() >= 7) {
            parts.push(format!("({})", &after[..7]));
        }
        if let Some(inputs) = event["inputs"].as_object() {
            let names: Vec<&str> = inputs.keys().map(String::as_str).collect();
            parts.push(format!("with inputs {}", names.join(", ")));
        }
        if let Some(repo) = text(&event["repository"]["full_name"]) {
            parts.push(format!("in {repo}"));
        }
        Some(parts.join(" "))
    }
}

/// Reads an event payload: a JSON object.
fn read_event(path: &str) -> Result<serde_json::Value, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{path} is not a JSON event payload: {e}"))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(format!("{path} is not a JSON object"))
    }
}

/// A bad input, named as the workflow names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The input, e.g. `dry-run`.
    pub input: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "input `{}`: {}", self.input, self.message)
    }
}

/// The action's inputs, as the runner passed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    /// Values by environment variable name (`INPUT_MAX-PARALLEL`).
    values: BTreeMap<String, String>,
}

/// The environment variable an input arrives in: `max-parallel` →
/// `INPUT_MAX-PARALLEL` (spaces become `_`, hyphens stay).
pub fn input_variable(name: &str) -> String {
    format!("INPUT_{}", name.replace(' ', "_").to_uppercase())
}

impl Inputs {
    /// The inputs among `vars` (the process's environment).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Inputs {
        Inputs {
            values: vars
                .into_iter()
                .filter(|(k, _)| k.starts_with("INPUT_"))
                .collect(),
        }
    }

    /// The inputs of this process.
    pub fn from_env() -> Inputs {
        Inputs::from_vars(std::env::vars())
    }

    /// Inputs by name, as a workflow's `with:` gives them.
    #[cfg(test)]
    pub(crate) fn of(pairs: &[(&str, &str)]) -> Inputs {
        Inputs::from_vars(
            pairs
                .iter()
                .map(|(k, v)| (input_variable(k), v.to_string())),
        )
    }

    /// An input's value, trimmed; `None` when unset or empty (the runner
    /// passes an input left out as its default, often empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(&input_variable(name))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A required input.
    pub fn required(&self, name: &str, why: &str) -> Result<&str, InputError> {
        self.get(name).ok_or_else(|| InputError {
            input: name.to_string(),
            message: format!("is required {why}"),
        })
    }

    /// A boolean input: YAML 1.2's core schema, `true`, `True`, `TRUE`,
    /// `false`, `False` or `FALSE`, as GitHub's toolkit reads them; unset or
    /// empty is `default`, anything else an error.
    pub fn boolean(&self, name: &str, default: bool) -> Result<bool, InputError> {
        match self.get(name) {
            None => Ok(default),
            Some("true" | "True" | "TRUE") => Ok(true),
            Some("false" | "False" | "FALSE") => Ok(false),
            Some(other) => Err(InputError {
                input: name.to_string(),
                message: format!("`{other}` is not a boolean: use true or false"),
            }),
        }
    }

    /// A list input: names separated by commas, spaces or newlines.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split([',', '\n', ' ', '\t'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs as environment variables, with one that is not an input.
    fn inputs(vars: &[(&str, &str)]) -> Inputs {
        Inputs::from_vars(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain([("PATH".to_string(), "/bin".to_string())]),
        )
    }

    #[test]
    fn inputs_arrive_upper_cased_with_hyphens_kept() {
        assert_eq!(input_variable("max-parallel"), "INPUT_MAX-PARALLEL");
        assert_eq!(input_variable("my input"), "INPUT_MY_INPUT");
        let i = inputs(&[("INPUT_MAX-PARALLEL", " 3 "), ("INPUT_CLOUD", "")]);
        assert_eq!(i.get("max-parallel"), Some("3"));
        assert_eq!(i.get("cloud"), None);
        assert_eq!(i.get("environment"), None);
    }

    #[test]
    fn booleans_are_the_yaml_core_set_and_nothing_else() {
        for t in ["true", "True", "TRUE"] {
            assert_eq!(
                inputs(&[("INPUT_DRY-RUN", t)]).boolean("dry-run", false),
                Ok(true)
            );
        }
        for f in ["false", "False", "FALSE"] {
            assert_eq!(
                inputs(&[("INPUT_DRY-RUN", f)]).boolean("dry-run", true),
                Ok(false)
            );
        }
        assert_eq!(inputs(&[]).boolean("dry-run", true), Ok(true));
        for bad in ["yes", "on", "1", "tRue"] {
            let err = inputs(&[("INPUT_DRY-RUN", bad)])
                .boolean("dry-run", false)
                .unwrap_err();
            assert_eq!(err.input, "dry-run");
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn required_inputs_say_why() {
        let err = inputs(&[("INPUT_ENVIRONMENT", " ")])
            .required("environment", "for `apply`")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "input `environment`: is required for `apply`"
        );
    }

    #[test]
    fn lists_split_on_commas_spaces_and_newlines() {
        let i = inputs(&[("INPUT_COMPONENTS", "network, dns\nclusters,,")]);
        assert_eq!(i.list("components"), ["network", "dns", "clusters"]);
        assert!(i.list("cloud").is_empty());
    }

    #[test]
    fn run_links_name_the_attempt_after_the_first() {
        let mut run = RunContext {
            server_url: Some("https://github.com".into()),
            repository: Some("acme/infra".into()),
            run_id: Some(42),
            attempt: 1,
            ..RunContext::default()
        };
        assert_eq!(
            run.link().as_deref(),
            Some("https://github.com/acme/infra/actions/runs/42")
        );
        run.attempt = 2;
        assert_eq!(
            run.describe(7),
            "[run 42, attempt 2](https://github.com/acme/infra/actions/runs/42/attempts/2)"
        );
        assert_eq!(run.key(7), "42-2");
        let local = RunContext {
            actor: Some("ana".into()),
            attempt: 1,
            ..RunContext::default()
        };
        assert_eq!(local.describe(7), "local run 7 by ana");
        assert_eq!(local.key(7), "local-7");
    }

    #[test]
    fn the_state_records_the_workflow_run_only_on_actions() {
        let mut run = RunContext {
            server_url: Some("https://ghe.example.com".into()),
            repository: Some("acme/infra".into()),
            run_id: Some(42),
            attempt: 3,
            actor: Some("ana".into()),
            ..RunContext::default()
        };
        assert_eq!(run.run_info(7).id, 7);
        run.on_actions = true;
        let info = run.run_info(7);
        assert_eq!((info.id, info.attempt), (42, 3));
        assert_eq!(info.actor.as_deref(), Some("ana"));
        assert_eq!(
            info.url.as_deref(),
            Some("https://ghe.example.com/acme/infra/actions/runs/42/attempts/3")
        );
    }

    #[test]
    fn fork_pull_requests_are_recognised_from_the_event() {
        let event = |head: &str, fork: bool| RunContext {
            event: Some(serde_json::json!({"pull_request": {"number": 5,
                "head": {"repo": {"full_name": head, "fork": fork}},
                "base": {"repo": {"full_name": "acme/infra"}}}})),
            ..RunContext::default()
        };
        assert!(event("someone/infra", true).is_fork_pull_request());
        assert!(!event("acme/infra", false).is_fork_pull_request());
        assert_eq!(event("acme/infra", false).pull_request(), Some(5));
        assert!(!RunContext::default().is_fork_pull_request());
    }

    #[test]
    fn an_event_is_described_by_names_and_numbers() {
        let run = RunContext {
            event_name: Some("pull_request".into()),
            event: Some(
                serde_json::json!({"action": "opened", "pull_request": {"number": 5,
                "title": "::error::pwned", "head": {"ref": "feature"}, "base": {"ref": "main"}},
                "repository": {"full_name": "acme/infra"}}),
            ),
            ..RunContext::default()
        };
        assert_eq!(
            run.describe_event().as_deref(),
            Some("pull_request (opened) on #5 from feature into main in acme/infra")
        );
    }

    #[test]
    fn an_unreadable_event_is_an_error_not_a_silent_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.json");
        std::fs::write(&path, "[1, 2]").unwrap();
        assert!(read_event(path.to_str().unwrap()).is_err());
        std::fs::write(&path, "{").unwrap();
        assert!(read_event(path.to_str().unwrap()).is_err());
        std::fs::write(&path, "{\"ref\": \"refs/heads/main\"}").unwrap();
        assert!(read_event(path.to_str().unwrap()).is_ok());
    }
}
