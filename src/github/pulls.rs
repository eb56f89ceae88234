//! Pull requests the orchestrator opens (promotions): found by their head
//! branch, created once, and updated in place on the next run.
//!
//! A pull request is ours when its head is a branch of this repository
//! whose name starts with the prefix the caller owns (`promote/dev-to-staging/`):
//! people rename titles and edit bodies, but not head branches. Creating
//! goes through [`Client::create_once`], so a create whose answer was lost
//! is looked for before it is sent again, and GitHub itself refuses a
//! second open pull request for the same head and base.

use serde::Deserialize;
use serde_json::json;

use super::{Client, Error};

/// A pull request, as much of it as we read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequest {
    /// Its number.
    pub number: u64,
    /// Its page on GitHub.
    pub html_url: String,
    /// Its title.
    pub title: String,
    /// Its description.
    #[serde(default)]
    pub body: Option<String>,
    /// `open` or `closed`.
    pub state: String,
    /// Where the changes are.
    pub head: End,
    /// Where they go.
    pub base: End,
}

/// One end of a pull request: a branch of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct End {
    /// The branch.
    #[serde(rename = "ref")]
    pub branch: String,
    /// The repository; `null` when a fork was deleted.
    #[serde(default)]
    pub repo: Option<EndRepo>,
}

/// The repository of a pull request's end.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EndRepo {
    /// `owner/name`.
    pub full_name: String,
}

/// What [`open`] did, and to which pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Opened this pull request.
    Created(PullRequest),
    /// Changed its title or description.
    Updated(PullRequest),
    /// It already said exactly this.
    Unchanged(PullRequest),
}

impl Opened {
    /// The pull request, whatever was done.
    pub fn pull_request(&self) -> &PullRequest {
        match self {
            Opened::Created(p) | Opened::Updated(p) | Opened::Unchanged(p) => p,
        }
    }

    /// `created`, `updated` or `unchanged`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Opened::Created(_) => "created",
            Opened::Updated(_) => "updated",
            Opened::Unchanged(_) => "unchanged",
        }
    }
}

/// The open pull request into `base` whose head is a branch of this
/// repository named `prefix…`; the oldest when there are several.
pub async fn find(client: &Client, base: &str, prefix: &str) -> Result<Option<PullRequest>, Error> {
    let route = client.repo_route("/pulls");
    let open: Vec<PullRequest> = client
        .get_all(
            &route,
            &[("state", "open"), ("base", base), ("direction", "asc")],
        )
        .await?;
    let repo = client.repo().to_string();
    Ok(open.into_iter().find(|p| {
        p.head.branch.starts_with(prefix)
            && p.head
                .repo
                .as_ref()
                .is_some_and(|r| r.full_name.eq_ignore_ascii_case(&repo))
    }))
}

/// Makes the pull request from `head` into `base` say `title` and `body`:
/// updates `existing` (ours, found by [`find`]) in place, or opens a new
/// one. The body is redacted and cut to GitHub's limit by the client.
pub async fn open(
    client: &Client,
    existing: Option<PullRequest>,
    head: &str,
    base: &str,
    title: &str,
    body: &str,
) -> Result<Opened, Error> {
    let body = client.prepare_text(body);
    let title = client.prepare_title(title);
    let Some(existing) = existing else {
        let route = client.repo_route("/pulls");
        let look = || async {
            Ok(find(client, base, head)
                .await?
                .filter(|p| p.head.branch == head))
        };
        let (made, created) = client
            .create_once(look, || {
                client.post::<PullRequest>(
                    &route,
                    json!({"title": title, "head": head, "base": base, "body": body}),
                )
            })
            .await?;
        return Ok(if created {
            Opened::Created(made)
        } else {
            update(client, made, &title, &body).await?
        });
    };
    update(client, existing, &title, &body).await
}

async fn update(
    client: &Client,
    existing: PullRequest,
    title: &str,
    body: &str,
) -> Result<Opened, Error> {
    if existing.title == title && existing.body.as_deref() == Some(body) {
        return Ok(Opened::Unchanged(existing));
    }
    let route = client.repo_route(&format!("/pulls/{}", existing.number));
    let updated: PullRequest = client
        .patch(&route, json!({"title": title, "body": body}))
        .await?;
    Ok(Opened::Updated(updated))
}
