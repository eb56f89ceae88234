//! The GitHub edge: the API client and its retry policy ([`client`]),
//! failure issues ([`issues`]), sticky comments ([`comments`]), promotion
//! pull requests ([`pulls`]), and the runner contract: what the workflow
//! run tells us ([`runner`]: the run, the event, the action's inputs) and
//! how we answer it ([`files`]: outputs and the step summary;
//! [`commands`]: log groups, annotations, masks; [`log`]: a run's events as
//! log groups and annotations).
//!
//! Nothing in the core knows about GitHub: commands call in here after a run
//! (failure issues) or on their own (`issue`, `comment`). Every text sent
//! passes through the run's [`crate::redact::Redactor`] and is cut to
//! GitHub's size limit ([`body`]).

pub mod body;
pub mod client;
pub mod commands;
pub mod comments;
pub mod files;
pub mod issues;
pub mod log;
pub mod pulls;
pub mod runner;

use std::fmt;
use std::path::Path;

pub use client::{Client, Settings};
pub use runner::RunContext;

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
        let url = crate::state::git::discover(root)
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
}
