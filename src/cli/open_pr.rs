//! `promote --open-pr`: the promotion as a pull request. The edited values
//! files are committed on top of HEAD (nothing is checked out), the commit
//! is pushed to a branch of its own, `promote/<from>-to-<to>/<short-sha>`,
//! and a pull request into HEAD's branch is opened from it, or the open
//! one for the same pair is updated: its branch gets the new commit and
//! its title and description the new text.
//!
//! Everything that can be checked is checked before anything is pushed:
//! origin and the token, HEAD on a branch origin has, every edited file
//! committed at HEAD as it is in the working tree, the repository on
//! GitHub. A failure after that leaves at most the pushed branch, which the
//! next run pushes again and opens the pull request from.

use std::path::{Path, PathBuf};

use git2::Oid;

use super::issue::connect;
use super::{Failure, usage};
use crate::config::{Config, EnvName};
use crate::github::pulls::{self, Opened, PullRequest};
use crate::github::{Client, RunContext};
use crate::redact::Redactor;
use crate::state::git::{self, GitError, Origin, Token, Update};
use crate::state::sync;

/// A promotion pull request, checked and ready to push.
pub(super) struct Prepared {
    origin: Origin,
    head: Oid,
    base: String,
    prefix: String,
    files: Vec<(PathBuf, String)>,
    runtime: tokio::runtime::Runtime,
    client: Client,
    existing: Option<PullRequest>,
}

/// What was pushed and opened.
pub(super) struct Done {
    /// The branch the pull request is from.
    pub branch: String,
    /// What was done to the pull request.
    pub opened: Opened,
}

/// Checks that the promotion of `files` (each: the values file, its text
/// now, its promoted text) from `from` to `to` can be opened as a pull
/// request, and finds the open one for the same pair.
pub(super) fn prepare(
    config: &Config,
    from: &EnvName,
    to: &EnvName,
    files: &[(&Path, &str, &str)],
    token: Option<String>,
    redactor: Redactor,
) -> Result<Prepared, Failure> {
    let options = sync::Options {
        token: token.clone().and_then(Token::new),
        no_commit: false,
        identity: config.state.author.clone(),
    };
    let origin = sync::origin(&config.root, options, "push the promotion branch")?;
    let repo = origin.repo();
    let head_ref = repo
        .head()
        .ok()
        .filter(|h| h.is_branch())
        .and_then(|h| Some((h.shorthand().ok()?.to_string(), h.target()?)));
    let Some((base, head)) = head_ref else {
        return Err(usage(
            "--open-pr needs HEAD on a branch: the pull request goes into it",
            Some(
                "check out the branch to promote on (in a workflow, actions/checkout of the \
                 default branch); nothing was pushed"
                    .into(),
            ),
        ));
    };
    let short = git::short_id(head);
    let workdir = origin
        .workdir()
        .and_then(|w| w.canonicalize().ok())
        .unwrap_or_default();
    let mut staged = Vec::with_capacity(files.len());
    for &(path, now, promoted) in files {
        let rel = path
            .canonicalize()
            .ok()
            .and_then(|p| p.strip_prefix(&workdir).ok().map(Path::to_path_buf))
            .ok_or_else(|| {
                usage(
                    format!("{} is not inside the repository", path.display()),
                    Some("nothing was pushed".into()),
                )
            })?;
        let at_head = git::read_at(repo, head, &rel).ok().flatten();
        if at_head.as_deref() != Some(now.as_bytes()) {
            return Err(usage(
                format!(
                    "{} has changes that are not committed: the pull request is built on \
                     HEAD ({short}), not on the working tree",
                    path.display()
                ),
                Some("commit or stash them first; nothing was pushed".into()),
            ));
        }
        staged.push((rel, promoted.to_string()));
    }
    let tip = origin
        .fetch_branch(&base)
        .map_err(|e| git_failure(&origin, &format!("fetch `{base}` from"), e))?;
    match tip {
        None => {
            return Err(usage(
                format!(
                    "branch `{base}` is not on origin ({})",
                    origin.display_url()
                ),
                Some(format!(
                    "push `{base}` first: the pull request goes into it; nothing was pushed"
                )),
            ));
        }
        Some(tip) if tip != head && !repo.graph_descendant_of(tip, head).unwrap_or(false) => {
            return Err(usage(
                format!(
                    "HEAD ({short}) has commits that origin's `{base}` lacks, and the promotion \
                     pull request would carry them"
                ),
                Some(format!(
                    "push `{base}` first, or promote from a checkout of origin's `{base}`; \
                     nothing was pushed"
                )),
            ));
        }
        Some(_) => {}
    }
    let run = RunContext::from_env();
    let (runtime, client) =
        connect(&config.root, &run, token, redactor).map_err(Failure::GitHub)?;
    let prefix = format!("promote/{from}-to-{to}/");
    let existing = runtime
        .block_on(pulls::find(&client, &base, &prefix))
        .map_err(Failure::GitHub)?;
    Ok(Prepared {
        origin,
        head,
        base,
        prefix,
        files: staged,
        runtime,
        client,
        existing,
    })
}

impl Prepared {
    /// The commit the promotion starts from, shortened.
    pub fn short_commit(&self) -> String {
        git::short_id(self.head)
    }

    /// Commits the promoted files on top of HEAD with `message`, pushes
    /// the commit to the pull request's branch, and opens or updates the
    /// pull request with `title` and `body`.
    pub fn open(self, title: &str, body: &str, message: &str) -> Result<Done, Failure> {
        let branch = match &self.existing {
            Some(p) => p.head.branch.clone(),
            None => format!("{}{}", self.prefix, git::short_id(self.head)),
        };
        let files: Vec<(&Path, &[u8])> = self
            .files
            .iter()
            .map(|(p, t)| (p.as_path(), t.as_bytes()))
            .collect();
        let commit = self
            .origin
            .commit(Some(self.head), &files, message)
            .map_err(|e| usage(format!("cannot commit the promotion: {e}"), None))?;
        // The branch is ours: whatever an earlier run left there is
        // replaced, unless it is this very change on this very commit.
        let tip = match &self.existing {
            Some(_) => self
                .origin
                .fetch_branch(&branch)
                .map_err(|e| git_failure(&self.origin, &format!("fetch `{branch}` from"), e))?,
            None => None,
        };
        if !tip.is_some_and(|tip| same_change(self.origin.repo(), tip, commit)) {
            self.origin
                .push(commit, &branch, Update::Force)
                .map_err(|e| git_failure(&self.origin, &format!("push `{branch}` to"), e))?;
        }
        let opened = self
            .runtime
            .block_on(pulls::open(
                &self.client,
                self.existing,
                &branch,
                &self.base,
                title,
                body,
            ))
            .map_err(|e| {
                eprintln!(
                    "note: branch `{branch}` was pushed; running the promotion again opens the \
                     pull request from it"
                );
                Failure::GitHub(e)
            })?;
        Ok(Done { branch, opened })
    }
}

/// Whether two commits make the same tree on the same parent.
fn same_change(repo: &git2::Repository, a: Oid, b: Oid) -> bool {
    match (repo.find_commit(a), repo.find_commit(b)) {
        (Ok(a), Ok(b)) => a.tree_id() == b.tree_id() && a.parent_ids().eq(b.parent_ids()),
        _ => false,
    }
}

/// A git failure as the command reports it: exit 3, with what to do.
fn git_failure(origin: &Origin, what: &str, error: GitError) -> Failure {
    let url = origin.display_url();
    let hint = match &error {
        GitError::Auth(_) => format!(
            "check the token (--github-token or GITHUB_TOKEN): it needs write access to {url} \
             (`permissions: contents: write` in a workflow)"
        ),
        GitError::Network(_) => format!("check that {url} is reachable, and run again"),
        GitError::Rejected(_) => {
            "the server refused the branch: a ruleset may protect `promote/*` branches".into()
        }
        _ => "run again; an earlier push of the same branch is replaced".into(),
    };
    Failure::Conflict {
        message: format!("cannot {what} origin ({url}): {error}"),
        hint,
    }
}
