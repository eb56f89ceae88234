//! The GitHub edge: the API client and its retry policy ([`client`]),
//! failure issues ([`issues`]), sticky comments ([`comments`]), promotion
//! pull requests ([`pulls`]), and what the workflow run tells us about
//! itself ([`RunContext`]).
//!
//! Nothing in the core knows about GitHub: commands call in here after a run
//! (failure issues) or on their own (`issue`, `comment`). Every text sent
//! passes through the run's [`crate::redact::Redactor`] and is cut to
//! GitHub's size limit ([`body`]).

pub mod body;
pub mod client;
pub mod comments;
pub mod issues;
pub mod pulls;

use std::fmt;
use std::path::Path;

pub use client::{Client, Settings};

/// Where the API is when `GITHUB_API_URL` is not set.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// The comment author when the token cannot say who it is: the
/// `GITHUB_TOKEN` of a workflow run writes as this bot.
pub const ACTIONS_BOT: &str = "github-actions[bot]";

/// A repository on GitHub, `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// The user or organisation.
    pub owner: String,
    /// The repository's name.
    pub name: String,
}

impl Repo {
    /// Parses `owner/name`.
    pub fn parse(text: &str) -> Option<Repo> {
        let (owner, name) = text.trim().split_once('/')?;
        let name = name.trim_end_matches(".git");
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        (valid(owner) && valid(name)).then(|| Repo {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }

    /// The repository of this run: `GITHUB_REPOSITORY`, else the `origin`
    /// remote of the git repository at `root`.
    pub fn detect(root: &Path) -> Result<Repo, Error> {
        if let Ok(text) = std::env::var("GITHUB_REPOSITORY") {
            return Repo::parse(&text).ok_or_else(|| {
                Error::setup(
                    format!("GITHUB_REPOSITORY is `{text}`, not `owner/name`"),
                    "set GITHUB_REPOSITORY=owner/name",
                )
            });
        }
        let root = if root.as_os_str().is_empty() {
            Path::new(".")
        } else {
            root
        };
        let url = git2::Repository::discover(root)
            .ok()
            .and_then(|r| {
                r.find_remote("origin")
                    .ok()
                    .and_then(|o| o.url().ok().map(String::from))
            })
            .ok_or_else(|| {
                Error::setup(
                    "cannot tell which GitHub repository this is: GITHUB_REPOSITORY is not set and there is no `origin` remote",
                    "set GITHUB_REPOSITORY=owner/name",
                )
            })?;
        Repo::from_remote_url(&url).ok_or_else(|| {
            Error::setup(
                format!("the `origin` remote `{url}` does not name a GitHub repository"),
                "set GITHUB_REPOSITORY=owner/name",
            )
        })
    }

    /// The repository a remote URL points at: `git@host:o/r.git`,
    /// `https://host/o/r`, `ssh://git@host/o/r.git`.
    pub fn from_remote_url(url: &str) -> Option<Repo> {
        let path = if let Some((_, rest)) = url.split_once("://") {
            rest.split_once('/')?.1
        } else {
            url.split_once(':')?.1
        };
        let path = path.trim_end_matches('/');
        let mut parts = path.rsplitn(3, '/');
        let name = parts.next()?;
        let owner = parts.next()?;
        Repo::parse(&format!("{owner}/{name}"))
    }
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// The token to call GitHub with: `--github-token`, else the action's
/// `github-token` input, else `GITHUB_TOKEN`. Empty values count as unset.
pub fn token(flag: Option<&str>) -> Option<String> {
    flag.map(String::from)
        .or_else(|| std::env::var("INPUT_GITHUB-TOKEN").ok())
        .or_else(|| std::env::var("GITHUB_TOKEN").ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// What the workflow run says about itself, from the runner's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunContext {
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
    /// `GITHUB_EVENT_NAME`.
    pub event_name: Option<String>,
    /// The event payload named by `GITHUB_EVENT_PATH`, when it could be read.
    pub event: Option<serde_json::Value>,
}

impl RunContext {
    /// Reads the runner's environment.
    pub fn from_env() -> RunContext {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        RunContext {
            server_url: var("GITHUB_SERVER_URL"),
            repository: var("GITHUB_REPOSITORY"),
            run_id: var("GITHUB_RUN_ID").and_then(|v| v.parse().ok()),
            attempt: var("GITHUB_RUN_ATTEMPT")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
            actor: var("GITHUB_ACTOR").or_else(|| var("USER")),
            event_name: var("GITHUB_EVENT_NAME"),
            event: var("GITHUB_EVENT_PATH")
                .and_then(|p| std::fs::read(p).ok())
                .and_then(|b| serde_json::from_slice(&b).ok()),
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
}

/// Why a call to GitHub failed, said so a person can act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not set up to call GitHub at all: no token, no repository, a bad URL.
    Setup {
        /// What is missing or wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// GitHub answered with an error.
    Api {
        /// `METHOD /route`.
        request: String,
        /// The HTTP status.
        status: u16,
        /// GitHub's own message (and its validation errors).
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// No answer: connection refused, reset, or timed out.
    Transport {
        /// `METHOD /route`.
        request: String,
        /// What went wrong.
        detail: String,
    },
    /// An answer we could not read.
    Decode {
        /// `METHOD /route`.
        request: String,
        /// What went wrong.
        detail: String,
    },
}

impl Error {
    /// A setup problem.
    pub fn setup(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Setup {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// The HTTP status GitHub answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the token may not do this (403 "Resource not accessible by
    /// integration"): missing `permissions:`, or a fork's read-only token.
    pub fn is_not_permitted(&self) -> bool {
        matches!(self, Error::Api { status: 403, message, .. }
            if message.contains("Resource not accessible by integration"))
    }

    /// What to do about it, if there is something to say.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Setup { hint, .. } => Some(hint),
            Error::Api { hint, .. } => hint.as_deref(),
            Error::Transport { .. } => Some(
                "check that GITHUB_API_URL is reachable from here (GitHub Enterprise Server: https://HOST/api/v3)",
            ),
            Error::Decode { .. } => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Setup { message, .. } => f.write_str(message),
            Error::Api {
                request,
                status,
                message,
                ..
            } => write!(f, "GitHub answered {status} to {request}: {message}"),
            Error::Transport { request, detail } => {
                write!(f, "no answer from GitHub to {request}: {detail}")
            }
            Error::Decode { request, detail } => {
                write!(f, "cannot read GitHub's answer to {request}: {detail}")
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_of_every_usual_form_name_the_repository() {
        let want = Some(Repo {
            owner: "acme".into(),
            name: "infra".into(),
        });
        for url in [
            "git@github.com:acme/infra.git",
            "https://github.com/acme/infra",
            "https://github.com/acme/infra.git/",
            "ssh://git@ghe.example.com/acme/infra.git",
            "https://x-access-token:abc@github.com/acme/infra.git",
        ] {
            assert_eq!(Repo::from_remote_url(url), want, "{url}");
        }
        assert_eq!(Repo::from_remote_url("/srv/git/infra"), None);
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
}
