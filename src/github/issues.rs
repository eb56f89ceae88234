//! Failure issues: one open issue per (environment, cloud, component)
//! failure, opened on the first failure, commented on each repeat, and
//! commented on and closed when the component next succeeds.
//!
//! An issue is found by its label (the first configured one) and a hidden
//! marker in its body, `<!-- orchestrator:failure env=dev cloud=aws
//! component=clusters -->`, by listing open issues: never by title (people
//! edit titles) and never through the search API (it lags behind, so a
//! just-created issue would not be found).
//!
//! GitHub cannot create an issue only if none exists, so two jobs reporting
//! the same failure at once could both create one. Each job looks twice
//! (the second time after a random pause), and after creating, looks again:
//! if an older open issue has the same marker, its report goes there as a
//! comment and its own issue is closed as a duplicate of the older one. One
//! issue stays open, and it holds both reports.
//!
//! Each report and recovery carries a marker of its own naming the run, so
//! reporting the same run twice (after the run, then from an `if:
//! failure()` step) adds nothing.

use std::time::SystemTime;

use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::body::{fenced, marker};
use super::{Client, Error, RunContext};
use crate::config::{CloudName, ComponentName, EnvName};

/// Colour of the label when we create it (GitHub's red for failures).
const LABEL_COLOR: &str = "d73a4a";

/// Which failure an issue is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// The environment.
    pub env: EnvName,
    /// The cloud.
    pub cloud: CloudName,
    /// The component.
    pub component: ComponentName,
}

impl Key {
    /// The hidden marker that finds the issue.
    pub fn marker(&self) -> String {
        marker("failure", &self.fields())
    }

    fn fields(&self) -> [(&str, &str); 3] {
        [
            ("env", self.env.as_str()),
            ("cloud", self.cloud.as_str()),
            ("component", self.component.as_str()),
        ]
    }

    /// The marker of something this run wrote about the failure (`kind`:
    /// report or recovered).
    fn run_marker(&self, kind: &str, run: &str) -> String {
        let [env, cloud, component] = self.fields();
        marker(kind, &[env, cloud, component, ("run", run)])
    }
}

/// One failed component, as a failure issue tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Which.
    pub key: Key,
    /// `apply` or `destroy`.
    pub action: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// Its last output lines.
    pub tail: Vec<String>,
    /// Its dependents that were skipped because of it.
    pub skipped: Vec<ComponentName>,
    /// When it failed.
    pub finished_at: Option<SystemTime>,
    /// The commit it was deploying.
    pub commit: Option<String>,
    /// The id of the orchestrator run that failed (names a local run, and
    /// its log directory).
    pub local_run_id: u64,
}

/// What reporting a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// Opened issue number n.
    Opened(u64),
    /// Commented on the open issue n.
    Commented(u64),
    /// Issue n already has this run's report.
    AlreadyReported(u64),
}

/// An issue, as much of it as we read.
#[derive(Debug, Clone, Deserialize)]
struct Issue {
    id: u64,
    number: u64,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    pull_request: Option<serde_json::Value>,
}

/// A comment, as much of it as we read.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Comment {
    pub(super) id: u64,
    #[serde(default)]
    pub(super) body: Option<String>,
    #[serde(default)]
    pub(super) user: Option<Login>,
}

/// The author of a comment.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Login {
    pub(super) login: String,
}

/// Opens, comments on and closes failure issues for one run.
pub struct Issues<'a> {
    client: &'a Client,
    labels: Vec<String>,
    assignees: Vec<String>,
    run: &'a RunContext,
    /// Open issues with our label, listed once and reused for first looks.
    open: Mutex<Option<Vec<Issue>>>,
    label_checked: Mutex<bool>,
}

impl<'a> Issues<'a> {
    /// Failure issues labelled with `labels` (the first finds them; never
    /// empty) and assigned to `assignees`, written from the workflow run
    /// `run`.
    pub fn new(
        client: &'a Client,
        labels: Vec<String>,
        assignees: Vec<String>,
        run: &'a RunContext,
    ) -> Issues<'a> {
        Issues {
            client,
            labels,
            assignees,
            run,
            open: Mutex::new(None),
            label_checked: Mutex::new(false),
        }
    }

    /// Reports a failure: opens its issue, or comments on the open one.
    pub async fn report(&self, failure: &Failure) -> Result<Reported, Error> {
        let marker = failure.key.marker();
        if let Some(issue) = self.first_look(&marker).await? {
            return self.add_report(&issue, failure).await;
        }
        self.ensure_label().await;
        // Another job may be reporting the same failure right now.
        self.client.jitter().await;
        if let Some(issue) = self.find(&marker).await?.into_iter().next() {
            return self.add_report(&issue, failure).await;
        }
        let route = self.client.repo_route("/issues");
        let request = json!({
            "title": title(failure),
            "body": self.issue_body(failure),
            "labels": self.labels,
            "assignees": self.assignees,
        });
        let (issue, created) = self
            .client
            .create_once(
                || async { Ok(self.find(&marker).await?.into_iter().next()) },
                || self.client.post::<Issue>(&route, request.clone()),
            )
            .await?;
        self.forget_open().await;
        if !created {
            return self.add_report(&issue, failure).await;
        }
        self.settle(issue, failure).await
    }

    /// Closes the open issue of `key`, if there is one, with a comment that
    /// it recovered in the orchestrator run `local_run_id`: `how` says what
    /// happened (`succeeded`, `was destroyed`). Returns the issues closed.
    pub async fn resolve(
        &self,
        key: &Key,
        how: &str,
        local_run_id: u64,
    ) -> Result<Vec<u64>, Error> {
        let marker = key.marker();
        if self.first_look(&marker).await?.is_none() {
            return Ok(Vec::new());
        }
        let mut closed = Vec::new();
        // Duplicates left by an interrupted report are closed as well.
        for issue in self.find(&marker).await? {
            let recovered = key.run_marker("recovered", &self.run.key(local_run_id));
            let text = format!(
                "{recovered}\n✅ Recovered in {}: `{}` {how} on {} / {}. Closing this issue.",
                self.run.describe(local_run_id),
                key.component,
                key.env,
                key.cloud,
            );
            self.comment_once(issue.number, &recovered, &text).await?;
            let route = self.client.repo_route(&format!("/issues/{}", issue.number));
            self.client
                .patch::<Issue>(
                    &route,
                    json!({"state": "closed", "state_reason": "completed"}),
                )
                .await?;
            closed.push(issue.number);
        }
        self.forget_open().await;
        Ok(closed)
    }

    /// After creating `ours`: if an older open issue has the same marker,
    /// another job got there first. Our report moves there and ours is
    /// closed as its duplicate.
    async fn settle(&self, ours: Issue, failure: &Failure) -> Result<Reported, Error> {
        let marker = failure.key.marker();
        let oldest = self
            .find(&marker)
            .await?
            .into_iter()
            .min_by_key(|i| i.number);
        let Some(oldest) = oldest.filter(|o| o.number < ours.number) else {
            return Ok(Reported::Opened(ours.number));
        };
        let reported = self.add_report(&oldest, failure).await?;
        let duplicate = failure
            .key
            .run_marker("duplicate", &self.run.key(failure.local_run_id));
        let note = marker_with_text(
            &duplicate,
            &format!(
                "Another job reported the same failure at the same time: this is a duplicate of #{}.",
                oldest.number
            ),
        );
        let route = self.client.repo_route(&format!("/issues/{}", ours.number));
        self.comment_once(ours.number, &duplicate, &note).await?;
        self.client
            .patch::<Issue>(
                &route,
                json!({"state": "closed", "state_reason": "duplicate", "duplicate_issue_id": oldest.id}),
            )
            .await?;
        Ok(reported)
    }

    /// Adds this run's report of `failure` to `issue`, unless it is there.
    async fn add_report(&self, issue: &Issue, failure: &Failure) -> Result<Reported, Error> {
        let report = self.report_marker(failure);
        if issue.body.as_deref().is_some_and(|b| b.contains(&report)) {
            return Ok(Reported::AlreadyReported(issue.number));
        }
        let text = marker_with_text(&report, &self.repeat_body(failure));
        match self.comment_once(issue.number, &report, &text).await? {
            true => Ok(Reported::Commented(issue.number)),
            false => Ok(Reported::AlreadyReported(issue.number)),
        }
    }

    /// Comments `text` on issue `number` unless a comment with `marker` is
    /// there already. Returns whether it commented.
    async fn comment_once(&self, number: u64, marker: &str, text: &str) -> Result<bool, Error> {
        let route = self
            .client
            .repo_route(&format!("/issues/{number}/comments"));
        let look = || async {
            let comments: Vec<Comment> = self.client.get_all(&route, &[]).await?;
            Ok(comments
                .into_iter()
                .find(|c| c.body.as_deref().is_some_and(|b| b.contains(marker))))
        };
        if look().await?.is_some() {
            return Ok(false);
        }
        let (_, created) = self
            .client
            .create_once(look, || {
                self.client.post::<Comment>(&route, json!({ "body": text }))
            })
            .await?;
        Ok(created)
    }

    /// The open issues with our label whose body has `marker`, oldest first.
    async fn find(&self, marker: &str) -> Result<Vec<Issue>, Error> {
        let open = self.list_open().await?;
        *self.open.lock().await = Some(open.clone());
        Ok(matching(open, marker))
    }

    /// Like [`Issues::find`], but the listing is reused within a run.
    async fn first_look(&self, marker: &str) -> Result<Option<Issue>, Error> {
        let mut cache = self.open.lock().await;
        if cache.is_none() {
            *cache = Some(self.list_open().await?);
        }
        let open = cache.clone().unwrap_or_default();
        Ok(matching(open, marker).into_iter().next())
    }

    async fn forget_open(&self) {
        *self.open.lock().await = None;
    }

    async fn list_open(&self) -> Result<Vec<Issue>, Error> {
        let route = self.client.repo_route("/issues");
        let label = self.labels.first().map_or("", String::as_str);
        let issues: Vec<Issue> = self
            .client
            .get_all(
                &route,
                &[
                    ("state", "open"),
                    ("labels", label),
                    ("sort", "created"),
                    ("direction", "asc"),
                ],
            )
            .await?;
        // The issues listing includes pull requests.
        Ok(issues
            .into_iter()
            .filter(|i| i.pull_request.is_none())
            .collect())
    }

    /// Creates our label with a colour and a description, once, if it is
    /// missing. GitHub would create it bare with the issue anyway, so a
    /// failure here is only worth a warning.
    async fn ensure_label(&self) {
        let mut checked = self.label_checked.lock().await;
        if *checked {
            return;
        }
        *checked = true;
        let Some(label) = self.labels.first() else {
            return;
        };
        let route = self
            .client
            .repo_route(&format!("/labels/{}", path_segment(label)));
        match self.client.get::<serde_json::Value>(&route).await {
            Ok(_) => return,
            Err(e) if e.status() == Some(404) => {}
            Err(e) => {
                eprintln!("warning: cannot check the label `{label}`: {e}");
                return;
            }
        }
        let created = self
            .client
            .post::<serde_json::Value>(
                &self.client.repo_route("/labels"),
                json!({
                    "name": label,
                    "color": LABEL_COLOR,
                    "description": "A deployment that failed; opened and closed by orchestrator-action",
                }),
            )
            .await;
        match created {
            // 422: another job created it first.
            Ok(_) | Err(Error::Api { status: 422, .. }) => {}
            Err(e) => eprintln!("warning: cannot create the label `{label}`: {e}"),
        }
    }

    /// The marker of this run's report of `f`.
    fn report_marker(&self, f: &Failure) -> String {
        f.key.run_marker("report", &self.run.key(f.local_run_id))
    }

    /// The body of a new issue.
    fn issue_body(&self, f: &Failure) -> String {
        let k = &f.key;
        let mut text = format!(
            "{}\n{}\n### ❌ `{}` failed to {} on {} / {}\n\n",
            k.marker(),
            self.report_marker(f),
            k.component,
            f.action,
            k.env,
            k.cloud
        );
        text.push_str(&self.details(f));
        text.push_str(&format!(
            "\n\n---\n*This issue is kept by orchestrator-action: each repeat of this failure adds a comment, and it is closed when `{}` next succeeds on {} / {}.*\n",
            k.component, k.env, k.cloud
        ));
        text
    }

    /// The comment for a repeat of the failure.
    fn repeat_body(&self, f: &Failure) -> String {
        format!(
            "### ❌ Failed again in {}\n\n{}",
            self.run.describe(f.local_run_id),
            self.details(f)
        )
    }

    /// What failed, where, the log's last lines and how to run it again.
    fn details(&self, f: &Failure) -> String {
        let k = &f.key;
        let mut rows = vec![
            ("Environment", k.env.to_string()),
            ("Cloud", k.cloud.to_string()),
            ("Component", format!("`{}`", k.component)),
            ("Action", f.action.clone()),
            ("Run", self.run.describe(f.local_run_id)),
            ("Attempts", f.attempts.to_string()),
        ];
        if let Some(actor) = &self.run.actor {
            rows.push(("Started by", format!("`{actor}`")));
        }
        if let Some(commit) = &f.commit {
            rows.push(("Commit", format!("`{commit}`")));
        }
        if let Some(at) = f.finished_at {
            rows.push((
                "Failed at",
                humantime::format_rfc3339_seconds(at).to_string(),
            ));
        }
        let mut text = String::from("| | |\n| --- | --- |\n");
        for (name, value) in rows {
            text.push_str(&format!("| {name} | {value} |\n"));
        }
        if let Some(error) = &f.error {
            text.push_str(&format!("\n**Error:** {}\n", inline(error)));
        }
        if !f.tail.is_empty() {
            text.push_str(&format!(
                "\n<details open><summary>Last {} lines of output</summary>\n\n{}\n\n</details>\n",
                f.tail.len(),
                fenced(&f.tail.join("\n"), "text")
            ));
        }
        if !f.skipped.is_empty() {
            let names: Vec<String> = f.skipped.iter().map(|s| format!("`{s}`")).collect();
            text.push_str(&format!(
                "\n**Skipped because of this failure:** {}\n",
                names.join(", ")
            ));
        }
        let command = if f.action == "destroy" {
            format!(
                "orchestrator destroy --env {} --cloud {} --components {}",
                k.env, k.cloud, k.component
            )
        } else {
            format!(
                "orchestrator apply --env {} --cloud {} --components {} --with-dependents",
                k.env, k.cloud, k.component
            )
        };
        text.push_str(&format!(
            "\n**To run it again**, fix the cause, then re-run the failed jobs{} or run:\n\n{}\n",
            self.run
                .link()
                .map(|l| format!(" of [the run]({l})"))
                .unwrap_or_default(),
            fenced(&command, "sh")
        ));
        text
    }
}

/// The title of a failure issue.
fn title(f: &Failure) -> String {
    let what = if f.action == "destroy" {
        "Destroy"
    } else {
        "Deployment"
    };
    format!(
        "{what} failed: {} on {}/{}",
        f.key.component, f.key.env, f.key.cloud
    )
}

fn matching(open: Vec<Issue>, marker: &str) -> Vec<Issue> {
    let mut found: Vec<Issue> = open
        .into_iter()
        .filter(|i| i.body.as_deref().is_some_and(|b| b.contains(marker)))
        .collect();
    found.sort_by_key(|i| i.number);
    found
}

fn marker_with_text(marker: &str, text: &str) -> String {
    format!("{marker}\n{text}")
}

/// An error message as inline markdown: code, with backticks kept from
/// closing it early.
fn inline(text: &str) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.contains('`') {
        format!("`` {one_line} ``")
    } else {
        format!("`{one_line}`")
    }
}

/// A label name as one URL path segment (names may hold spaces, `/`, emoji).
fn path_segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_names_environment_cloud_and_component() {
        let key = Key {
            env: EnvName::parse("dev").unwrap(),
            cloud: CloudName::parse("aws").unwrap(),
            component: ComponentName::parse("clusters").unwrap(),
        };
        assert_eq!(
            key.marker(),
            "<!-- orchestrator:failure env=dev cloud=aws component=clusters -->"
        );
        assert_eq!(
            key.run_marker("report", "42-1"),
            "<!-- orchestrator:report env=dev cloud=aws component=clusters run=42-1 -->"
        );
    }

    #[test]
    fn label_names_are_escaped_as_path_segments() {
        assert_eq!(path_segment("orchestrator"), "orchestrator");
        assert_eq!(path_segment("infra failure/x"), "infra%20failure%2Fx");
    }

    #[test]
    fn errors_with_backticks_stay_inline_code() {
        assert_eq!(inline("`sh x` exited 1"), "`` `sh x` exited 1 ``");
        assert_eq!(inline("boom"), "`boom`");
    }
}
