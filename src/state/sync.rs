//! Where the state of a run is kept, and every change to it made safe
//! against other writers: the git state branch on `origin`, or (with
//! `--no-commit`, no remote, or no token) the working tree only.
//!
//! A change is a function from the newest state to the next one. In git
//! mode [`Store::transact`] fetches the branch, reads the file at its tip,
//! applies the change, commits and pushes; when the push loses a race to
//! another writer it fetches again and re-applies the change to what that
//! writer left, with jittered backoff, a bounded number of times. Changes
//! are written to merge (records per component, newest wins; see
//! [`super::merge`]), so re-applying them never loses anyone's result. In
//! local mode the same change runs under an advisory file lock.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use git2::{ErrorCode, Repository};

use super::git::{self, GitError, Identity, Origin, Remote, Token, Transport};
use super::lock::Holder;
use super::model::StateFile;
use super::store::{self, StateError};
use crate::config::{CloudName, Config, EnvName, StateBranch};
use crate::exec::runner::Process;

/// How many times a write is tried before giving up on a busy branch.
pub const DEFAULT_ATTEMPTS: u32 = 10;

/// One state file: where it is in the working tree and in the repository.
#[derive(Debug, Clone)]
pub struct Target {
    /// The environment it records.
    pub env: EnvName,
    /// The cloud it records.
    pub cloud: CloudName,
    /// The local copy.
    pub local: PathBuf,
    /// The path inside the repository (and on the state branch).
    pub in_repo: PathBuf,
}

impl Target {
    /// `env-cloud`, as commit messages and errors name it.
    pub fn label(&self) -> String {
        format!("{}-{}", self.env, self.cloud)
    }
}

/// Why a change declined to be written.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// A live lock of another run stands in the way.
    LockHeld(Box<Holder>),
    /// The lock of a run killed on this machine stands, because processes
    /// it started still run, and still act on what the lock guards.
    LeftRunning {
        /// The killed run's claim.
        holder: Box<Holder>,
        /// What it left running.
        processes: Vec<Process>,
    },
    /// Anything else, said for a person.
    Other(String),
}

impl Refusal {
    /// Who or what holds the lock, as "the state is locked by …" goes on.
    pub fn holder_text(&self) -> String {
        match self {
            Refusal::LockHeld(h) => h.describe(),
            Refusal::LeftRunning { holder, processes } => format!(
                "run {}, killed on {} and still running what it started: {}",
                holder.run,
                holder.host.as_deref().unwrap_or("this machine"),
                processes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Refusal::Other(m) => m.clone(),
        }
    }
}

/// Why the state could not be read or written.
#[derive(Debug)]
pub enum StoreError {
    /// A state file (local or on the branch) is unreadable or wrong.
    State(Box<StateError>),
    /// The store cannot be used as configured; nothing was written.
    Setup {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// Talking to the remote failed.
    Git {
        /// The state file concerned.
        target: String,
        /// What failed.
        error: GitError,
        /// What to do.
        hint: String,
    },
    /// Other writers kept winning the race for every attempt.
    Exhausted {
        /// The state file concerned.
        target: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The local copy and the branch hold different records.
    Lineage {
        /// The local copy.
        local: PathBuf,
        /// The branch.
        branch: String,
    },
    /// The change declined.
    Refused(Refusal),
}

impl From<StateError> for StoreError {
    fn from(e: StateError) -> Self {
        StoreError::State(Box::new(e))
    }
}

impl StoreError {
    /// What went wrong.
    pub fn message(&self) -> String {
        match self {
            StoreError::State(e) => e.message(),
            StoreError::Setup { message, .. } => message.clone(),
            StoreError::Git { target, error, .. } => {
                format!("cannot publish the state of {target}: {error}")
            }
            StoreError::Exhausted { target, attempts } => format!(
                "cannot publish the state of {target}: other jobs kept writing it first \
                 ({attempts} attempts)"
            ),
            StoreError::Lineage { local, branch } => format!(
                "the local state {} and the one on branch `{branch}` are different records \
                 (their lineages differ)",
                local.display()
            ),
            StoreError::Refused(r @ (Refusal::LockHeld(_) | Refusal::LeftRunning { .. })) => {
                format!("the state is locked by {}", r.holder_text())
            }
            StoreError::Refused(Refusal::Other(m)) => m.clone(),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            StoreError::State(e) => e.hint(),
            StoreError::Setup { hint, .. } | StoreError::Git { hint, .. } => hint.clone(),
            StoreError::Exhausted { .. } => "the state is kept in the working tree; run again \
                 (the next run pushes it), or spread the jobs out with `concurrency:`"
                .into(),
            StoreError::Lineage { local, .. } => format!(
                "keep the branch's record by moving {} aside (nothing else reads it), or \
                 pass --no-commit to keep working on the local one",
                local.display()
            ),
            StoreError::Refused(Refusal::LockHeld(_)) => {
                "wait for that run to finish, pass --lock-timeout to wait for it, or, if it \
                 is gone, release the lock with `orchestrator state unlock --force --reason ...`"
                    .into()
            }
            StoreError::Refused(Refusal::LeftRunning { processes, .. }) => {
                let pids: Vec<String> = processes.iter().map(|p| p.pid.to_string()).collect();
                format!(
                    "its lock is taken over once they end: wait for them (--lock-timeout \
                     waits here), or stop them with `kill -TERM {}`",
                    pids.join(" ")
                )
            }
            StoreError::Refused(Refusal::Other(_)) => String::new(),
        }
    }

    /// Whether this is a conflict with other writers (exit 3) rather than
    /// bad input (exit 2).
    pub fn is_conflict(&self) -> bool {
        !matches!(self, StoreError::State(_) | StoreError::Setup { .. })
    }
}

/// What a successful write left.
#[derive(Debug)]
pub struct Written {
    /// The state as written (or as found, when there was nothing to write).
    pub state: StateFile,
    /// The commit pushed, in git mode, when something was written.
    pub commit: Option<String>,
    /// How many attempts the write took.
    pub attempts: u32,
    /// In git mode, why the working tree's copy could not be brought up
    /// to date once the push had landed: the branch has the state, and the
    /// next command takes its copy from there.
    pub stale_copy: Option<String>,
}

/// Where state is kept for this run.
enum Mode {
    Git(Mutex<Remote>),
    Local,
}

/// The state store of one repository and configuration.
pub struct Store {
    mode: Mode,
    root: PathBuf,
    dir: PathBuf,
    /// The state directory's path inside the repository.
    in_repo_dir: PathBuf,
    description: String,
    attempts: u32,
}

/// What opening the store needs besides the config.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The token for https remotes.
    pub token: Option<Token>,
    /// Keep the state local only.
    pub no_commit: bool,
    /// The commit author.
    pub identity: Option<Identity>,
}

fn in_github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true")
}

/// The default commit identity.
pub fn default_identity() -> Identity {
    Identity {
        name: "orchestrator[bot]".into(),
        email: "orchestrator[bot]@users.noreply.github.com".into(),
    }
}

/// How the repository holding a directory reaches its `origin`.
enum Reach {
    /// Through this, with the branch checked out (if HEAD is on one).
    Origin(Origin, Option<String>),
    /// It cannot, for this reason: nothing to push to.
    Local(String),
    /// It could, but the token it needs is missing, for this reason.
    NoToken(&'static str),
}

/// Opens the repository holding `start` and finds its `origin`: an ssh
/// origin is reached over https when there is a token, and an https one
/// needs a token.
fn reach(start: &Path, token: Option<Token>, identity: Identity) -> Result<Reach, StoreError> {
    if !super::git::near(start) {
        return Ok(Reach::Local("not a git repository".into()));
    }
    super::git::init();
    let repo = match Repository::discover(start) {
        Ok(repo) => repo,
        Err(e) if e.code() == ErrorCode::Owner => {
            return Err(StoreError::Setup {
                message: format!("git refuses to open the repository: {}", e.message()),
                hint: format!(
                    "the working tree belongs to another user; if you trust it, run \
                     `git config --global --add safe.directory {}` (on GitHub Actions this \
                     is done for GITHUB_WORKSPACE), or pass --no-commit",
                    start.display()
                ),
            });
        }
        Err(_) => return Ok(Reach::Local("not a git repository".into())),
    };
    if repo.workdir().is_none() {
        return Ok(Reach::Local("a bare repository has no working tree".into()));
    }
    let url = match repo.find_remote("origin") {
        Ok(remote) => match remote.url() {
            Ok(url) => url.to_string(),
            _ => return Ok(Reach::Local("the `origin` remote has no URL".into())),
        },
        Err(_) => return Ok(Reach::Local("no `origin` remote".into())),
    };
    let head_branch = repo
        .head()
        .ok()
        .filter(|h| h.is_branch())
        .and_then(|h| h.shorthand().ok().map(str::to_string));
    let url = match (git::transport(&url), &token) {
        (Transport::Ssh, Some(_)) => git::https_url(&url),
        _ => url,
    };
    let missing_token = match git::transport(&url) {
        Transport::Local => None,
        Transport::Http if token.is_some() => None,
        Transport::Http => Some("no token to push to an https remote"),
        Transport::Ssh => Some("origin is an ssh remote and there is no token to push over https"),
    };
    if let Some(why) = missing_token {
        return Ok(Reach::NoToken(why));
    }
    Ok(Reach::Origin(
        Origin::new(repo, url, token, identity),
        head_branch,
    ))
}

/// The repository holding `start` and its `origin`, for git work beside
/// the state: fetching the commits a shallow checkout lacks, pushing a
/// promotion branch. `purpose` says what for, in errors (`push the
/// promotion branch`).
pub fn origin(start: &Path, options: Options, purpose: &str) -> Result<Origin, StoreError> {
    let start = if start.as_os_str().is_empty() {
        Path::new(".")
    } else {
        start
    };
    let identity = options.identity.unwrap_or_else(default_identity);
    match reach(start, options.token, identity)? {
        Reach::Origin(origin, _) => Ok(origin),
        Reach::Local(why) => Err(StoreError::Setup {
            message: format!("cannot {purpose}: {why}"),
            hint: "this needs a clone of the repository with its `origin` remote".into(),
        }),
        Reach::NoToken(why) => Err(StoreError::Setup {
            message: format!("cannot {purpose}: {why}"),
            hint: "pass --github-token or set GITHUB_TOKEN (in a workflow, the job's token \
                   with `permissions: contents: write`)"
                .into(),
        }),
    }
}

impl Store {
    /// Decides where state is kept and opens it. Says why in
    /// [`Store::describe`].
    pub fn open(config: &Config, options: Options) -> Result<Store, StoreError> {
        let local = |why: String| Store {
            mode: Mode::Local,
            root: config.root.clone(),
            dir: config.state.dir.clone(),
            in_repo_dir: config.state.dir.clone(),
            description: format!(
                "kept in {} only ({why})",
                config.root.join(&config.state.dir).display()
            ),
            attempts: DEFAULT_ATTEMPTS,
        };
        if options.no_commit {
            return Ok(local("--no-commit".into()));
        }
        let start = if config.root.as_os_str().is_empty() {
            Path::new(".")
        } else {
            config.root.as_path()
        };
        let identity = options.identity.unwrap_or_else(default_identity);
        let (origin, head_branch) = match reach(start, options.token, identity)? {
            Reach::Origin(origin, head_branch) => (origin, head_branch),
            Reach::Local(why) => return Ok(local(why)),
            Reach::NoToken(why) if in_github_actions() => {
                return Err(StoreError::Setup {
                    message: format!("cannot commit the state: {why}"),
                    hint: "pass the `github-token` input (its default is the job's token, which \
                           needs `permissions: contents: write`), or set commit-state: false"
                        .into(),
                });
            }
            Reach::NoToken(why) => {
                return Ok(local(format!(
                    "{why}; set GITHUB_TOKEN or pass --github-token to commit it"
                )));
            }
        };
        let (branch, checked_out) = match &config.state.branch {
            StateBranch::Dedicated(b) => (b.clone(), head_branch.as_deref() == Some(b.as_str())),
            StateBranch::Current => match head_branch {
                Some(b) => (b, true),
                None => {
                    return Err(StoreError::Setup {
                        message: "state.branch is `current`, but HEAD is not on a branch \
                                  (a detached checkout)"
                            .into(),
                        hint: "use a state branch (the default, `state.branch: \
                               orchestrator-state`), check out a branch, or pass --no-commit"
                            .into(),
                    });
                }
            },
        };
        let root = start.canonicalize().unwrap_or(start.to_path_buf());
        let workdir = origin.workdir().map(Path::to_path_buf).unwrap_or_default();
        let top = workdir.canonicalize().unwrap_or(workdir);
        let in_repo_dir = root
            .strip_prefix(&top)
            .unwrap_or(Path::new(""))
            .join(&config.state.dir);
        let remote = Remote::new(origin, branch.clone(), checked_out);
        let description = format!(
            "committed to branch `{branch}` of origin ({})",
            remote.display_url()
        );
        Ok(Store {
            mode: Mode::Git(Mutex::new(remote)),
            root: config.root.clone(),
            dir: config.state.dir.clone(),
            in_repo_dir,
            description,
            attempts: DEFAULT_ATTEMPTS,
        })
    }

    /// Where the state is kept and why, for the user.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Whether changes are committed and pushed.
    pub fn is_shared(&self) -> bool {
        matches!(self.mode, Mode::Git(_))
    }

    /// Sets how many attempts a write gets.
    pub fn with_attempts(mut self, attempts: u32) -> Store {
        self.attempts = attempts.max(1);
        self
    }

    /// The state file of `env` on `cloud`.
    pub fn target(&self, env: &EnvName, cloud: &CloudName) -> Target {
        let local = store::path(&self.root, &self.dir, env, cloud);
        let name = local.file_name().map(PathBuf::from).unwrap_or_default();
        Target {
            env: env.clone(),
            cloud: cloud.clone(),
            local,
            in_repo: self.in_repo_dir.join(name),
        }
    }

    /// Applies `change` to the newest state and writes the result: in git
    /// mode commits and pushes it (retrying on a lost race, re-applying the
    /// change to the newer state) and, when `write_local`, updates the
    /// local copy; in local mode writes the local copy under a file lock.
    /// `change` returns the commit message, or `None` when there is nothing
    /// to write. It must count its write with [`StateFile::bump`].
    pub fn transact(
        &self,
        target: &Target,
        write_local: bool,
        mut change: impl FnMut(&mut StateFile) -> Result<Option<String>, Refusal>,
    ) -> Result<Written, StoreError> {
        match &self.mode {
            Mode::Local => self.transact_local(target, &mut change),
            Mode::Git(remote) => {
                let remote = remote.lock().unwrap_or_else(|e| e.into_inner());
                self.transact_git(&remote, target, write_local, &mut change)
            }
        }
    }

    fn transact_local(
        &self,
        target: &Target,
        change: &mut dyn FnMut(&mut StateFile) -> Result<Option<String>, Refusal>,
    ) -> Result<Written, StoreError> {
        let _guard = store::FileLock::take(&target.local)?;
        let mut state = store::read(&target.local, &target.env, &target.cloud)?
            .unwrap_or_else(|| StateFile::new(target.env.clone(), target.cloud.clone()));
        let written = change(&mut state).map_err(StoreError::Refused)?;
        if written.is_some() {
            store::write(&target.local, &state)?;
        }
        Ok(Written {
            state,
            commit: None,
            attempts: 1,
            stale_copy: None,
        })
    }

    fn transact_git(
        &self,
        remote: &Remote,
        target: &Target,
        write_local: bool,
        change: &mut dyn FnMut(&mut StateFile) -> Result<Option<String>, Refusal>,
    ) -> Result<Written, StoreError> {
        // A copy that cannot be read (its directory gone, a full or failing
        // disk) is only needed where the branch has no state yet: it may
        // be the one copy there is. Otherwise the branch is the base, and
        // what is pushed must not wait on the working tree.
        let (local, mut unreadable) = match store::read(&target.local, &target.env, &target.cloud) {
            Ok(local) => (local, None),
            Err(e @ StateError::Io { .. }) => (None, Some(e)),
            Err(e) => return Err(e.into()),
        };
        let mut delays = ExponentialBuilder::default()
            // Many jobs finishing together collide again and again with
            // short waits; spreading the retries over up to two seconds
            // lets each of them land within the attempts.
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_jitter()
            .with_max_times(self.attempts.saturating_sub(1) as usize)
            .build();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (tip, theirs) = self.fetch(remote, target)?;
            if theirs.is_none() {
                if let Some(e) = unreadable.take() {
                    return Err(e.into());
                }
            }
            if let (Some(t), Some(l)) = (&theirs, &local) {
                if t.lineage != l.lineage {
                    return Err(StoreError::Lineage {
                        local: target.local.clone(),
                        branch: remote.branch().to_string(),
                    });
                }
            }
            let mut state = theirs
                .clone()
                .or_else(|| local.clone())
                .unwrap_or_else(|| StateFile::new(target.env.clone(), target.cloud.clone()));
            let Some(message) = change(&mut state).map_err(StoreError::Refused)? else {
                let stale_copy =
                    (write_local && theirs.is_some() && local.as_ref() != Some(&state))
                        .then(|| copy(target, &state))
                        .flatten();
                return Ok(Written {
                    state,
                    commit: None,
                    attempts: attempt,
                    stale_copy,
                });
            };
            let bytes = store::render(&state).map_err(|e| StoreError::Setup {
                message: format!("cannot serialize the state of {}: {e}", target.label()),
                hint: String::new(),
            })?;
            let git_error = |error: GitError| self.git_error(remote, target, error);
            let commit = remote
                .commit(tip, &target.in_repo, &bytes, &message)
                .map_err(git_error)?;
            match remote.push(commit) {
                Ok(()) => {
                    let stale_copy = write_local.then(|| copy(target, &state)).flatten();
                    return Ok(Written {
                        state,
                        commit: Some(commit.to_string()),
                        attempts: attempt,
                        stale_copy,
                    });
                }
                Err(GitError::Conflict) => match delays.next() {
                    Some(delay) => std::thread::sleep(delay),
                    None => {
                        return Err(StoreError::Exhausted {
                            target: target.label(),
                            attempts: attempt,
                        });
                    }
                },
                Err(e) => return Err(git_error(e)),
            }
        }
    }

    /// Fetches the branch and reads the state file at its tip.
    fn fetch(
        &self,
        remote: &Remote,
        target: &Target,
    ) -> Result<(git::Tip, Option<StateFile>), StoreError> {
        let tip = remote
            .fetch()
            .map_err(|e| self.git_error(remote, target, e))?;
        let Some(commit) = tip else {
            return Ok((None, None));
        };
        let bytes = remote
            .read(commit, &target.in_repo)
            .map_err(|e| self.git_error(remote, target, e))?;
        let Some(bytes) = bytes else {
            return Ok((tip, None));
        };
        let shown = PathBuf::from(format!("{}:{}", remote.branch(), target.in_repo.display()));
        let state = store::parse(&shown, &bytes)?;
        if state.environment != target.env || state.cloud != target.cloud {
            return Err(StoreError::from(StateError::Mismatch {
                path: shown,
                expected_environment: target.env.clone(),
                expected_cloud: target.cloud.clone(),
                environment: state.environment,
                cloud: state.cloud,
            }));
        }
        Ok((tip, Some(state)))
    }

    fn git_error(&self, remote: &Remote, target: &Target, error: GitError) -> StoreError {
        let url = remote.display_url();
        let hint = match &error {
            GitError::Rejected(m) if m.contains("protected") || m.contains("GH006") => format!(
                "branch `{}` is protected; keep the state on a branch of its own \
                 (`state.branch: orchestrator-state`, the default) or let the token bypass \
                 the protection",
                remote.branch()
            ),
            GitError::Rejected(_) => format!(
                "the server's hooks refused the commit on `{}`; the state is kept in the \
                 working tree",
                remote.branch()
            ),
            GitError::Auth(_) => format!(
                "check the token (--github-token or GITHUB_TOKEN): it needs write access to \
                 {url} (`permissions: contents: write` in a workflow); the state is kept in the \
                 working tree and the next run pushes it"
            ),
            GitError::Network(_) => format!(
                "check that {url} is reachable; the state is kept in the working tree and the \
                 next run pushes it, or pass --no-commit to work locally"
            ),
            _ => "the state is kept in the working tree and the next run pushes it".into(),
        };
        StoreError::Git {
            target: target.label(),
            error,
            hint,
        }
    }

    /// Brings the local copy up to date with the branch without writing
    /// anything there: the branch's copy replaces the local one when the
    /// local one holds nothing the branch lacks. Returns a note for the
    /// user when the local copy has records that are not pushed yet.
    pub fn refresh(&self, target: &Target) -> Result<Option<String>, StoreError> {
        let Mode::Git(remote) = &self.mode else {
            return Ok(None);
        };
        let remote = remote.lock().unwrap_or_else(|e| e.into_inner());
        let (_, theirs) = self.fetch(&remote, target)?;
        let Some(theirs) = theirs else {
            return Ok(None);
        };
        let local = store::read(&target.local, &target.env, &target.cloud)?;
        match local {
            Some(local) if local == theirs => Ok(None),
            Some(local) if local.lineage != theirs.lineage => Err(StoreError::Lineage {
                local: target.local.clone(),
                branch: remote.branch().to_string(),
            }),
            Some(local) => {
                let mut merged = theirs.clone();
                let names: Vec<_> = local.components.keys().cloned().collect();
                let newer =
                    super::merge::records(&mut merged, &local, &names, super::merge::Ties::Theirs);
                if newer.is_empty() {
                    store::write(&target.local, &theirs)?;
                    Ok(None)
                } else {
                    let names: Vec<&str> = newer.keys().map(|n| n.as_str()).collect();
                    Ok(Some(format!(
                        "the local state of {} has records the branch lacks ({}); the next \
                         apply pushes them",
                        target.label(),
                        names.join(", ")
                    )))
                }
            }
            None => {
                store::write(&target.local, &theirs)?;
                Ok(None)
            }
        }
    }

    /// Every version of the state file on the branch, newest first, with
    /// the commit that wrote it; empty in local mode.
    pub fn versions(&self, target: &Target) -> Result<Vec<(String, StateFile)>, StoreError> {
        let Mode::Git(remote) = &self.mode else {
            return Ok(Vec::new());
        };
        let remote = remote.lock().unwrap_or_else(|e| e.into_inner());
        let tip = remote
            .fetch()
            .map_err(|e| self.git_error(&remote, target, e))?;
        let Some(tip) = tip else {
            return Ok(Vec::new());
        };
        remote
            .versions(tip, &target.in_repo)
            .map_err(|e| self.git_error(&remote, target, e))?
            .into_iter()
            .map(|(commit, bytes)| {
                let shown = PathBuf::from(format!("{commit}:{}", target.in_repo.display()));
                Ok((commit, store::parse(&shown, &bytes)?))
            })
            .collect()
    }
}

/// Brings the working tree's copy of `target` up to `state`, as pushed;
/// why it could not, when it could not.
fn copy(target: &Target, state: &StateFile) -> Option<String> {
    store::write(&target.local, state)
        .err()
        .map(|e| e.to_string())
}
