//! The git side of the state store: reading the state branch's tip,
//! committing a state file on top of it and pushing, all through libgit2,
//! without touching the working tree or the checked-out branch. The same
//! [`Origin`] commits promotions onto branches of their own and fetches the
//! commits a shallow checkout lacks; [`Remote`] is it bound to the state
//! branch.
//!
//! Every operation here is blocking; callers run it on a thread of their
//! own, never on an async runtime's workers. The token is handed to libgit2
//! through its credentials callback for each connection and is never
//! written to disk or to git config. The callback answers once: libgit2
//! asks again after every rejected attempt, and would ask forever.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use git2::{
    Cred, ErrorClass, ErrorCode, FetchOptions, Oid, PushOptions, RemoteCallbacks, Repository,
    Signature,
};

/// How long a connection to the remote may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the remote may stay silent once connected.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A token, kept out of `Debug` output and error messages.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wraps a token; empty strings are no token.
    pub fn new(value: String) -> Option<Token> {
        let value = value.trim().to_string();
        (!value.is_empty()).then_some(Token(value))
    }

    /// The token itself, for redaction.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// The commit author of state commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The name, e.g. `orchestrator[bot]`.
    pub name: String,
    /// The email address.
    pub email: String,
}

/// Starts libgit2 and sets its process-wide options; does it once, however
/// often it is called. Call it before any thread exists: libgit2's start
/// sets environment variables (the TLS certificate probe), and these
/// options are unsynchronised globals. Its start also reads the system's
/// certificate bundle, some ten milliseconds, which is why a process that
/// works outside any repository does not call it at all (see [`near`]).
pub fn init() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the binary calls `init` from `main` before any other
        // thread exists, which is what these functions require; the calls
        // in `discover` and the state store then do nothing. (A process
        // that never calls it, like a test, has libgit2 start on first use,
        // as git2 would start it anyway.)
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms(CONNECT_TIMEOUT));
            let _ = git2::opts::set_server_timeout_in_milliseconds(ms(READ_TIMEOUT));
        }
    });
}

/// Whether `path` may be in a git repository: it or one of its ancestors
/// holds a `.git` entry, as `git` itself looks for one, along the path as
/// written or with its symbolic links resolved (so `main` and
/// [`discover`], which is handed resolved paths, agree). Cheap, and
/// starts nothing.
pub fn near(path: &Path) -> bool {
    let holds_git = |p: &Path| p.ancestors().any(|dir| dir.join(".git").exists());
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    holds_git(&absolute) || std::fs::canonicalize(path).is_ok_and(|real| holds_git(&real))
}

/// The repository holding `path`, if any. Outside every repository this
/// answers without starting libgit2.
pub fn discover(path: &Path) -> Option<Repository> {
    if !near(path) {
        return None;
    }
    init();
    Repository::discover(path).ok()
}

/// Makes the workspace openable inside a container action, where it is
/// owned by the runner's user and the action runs as root: adds
/// `GITHUB_WORKSPACE` to `safe.directory` in `$HOME/.gitconfig`, as
/// `git config --global --add safe.directory` would. Only on GitHub
/// Actions, and only for the workspace; the ownership check stays on for
/// everything else.
pub fn trust_workspace() -> Result<(), String> {
    if std::env::var("GITHUB_ACTIONS").as_deref() != Ok("true") {
        return Ok(());
    }
    let (Some(workspace), Some(home)) = (
        std::env::var_os("GITHUB_WORKSPACE"),
        std::env::var_os("HOME"),
    ) else {
        return Ok(());
    };
    let workspace = workspace.to_string_lossy().into_owned();
    let file = PathBuf::from(home).join(".gitconfig");
    let add = || -> Result<(), git2::Error> {
        let mut config = git2::Config::open(&file)?;
        let mut present = false;
        config.multivar("safe.directory", None)?.for_each(|entry| {
            if entry.value() == Ok(workspace.as_str()) || entry.value() == Ok("*") {
                present = true;
            }
        })?;
        if !present {
            // A pattern that matches no existing value makes libgit2 append.
            config.set_multivar("safe.directory", "^$", &workspace)?;
        }
        Ok(())
    };
    add().map_err(|e| {
        format!(
            "cannot add {workspace} to safe.directory in {}: {}",
            file.display(),
            e.message()
        )
    })
}

/// Why a git operation failed, sorted by what the caller can do about it.
#[derive(Debug)]
pub enum GitError {
    /// Someone else pushed first: fetch, merge, try again.
    Conflict,
    /// The server refused the push (a hook, branch protection): retrying
    /// will not help.
    Rejected(String),
    /// The token was refused, or the remote wants credentials we lack.
    Auth(String),
    /// The remote could not be reached.
    Network(String),
    /// Anything else.
    Other(String),
}

impl fmt::Display for GitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitError::Conflict => f.write_str("the remote branch moved"),
            GitError::Rejected(m) => write!(f, "the remote rejected the push: {m}"),
            GitError::Auth(m) => write!(f, "authentication failed: {m}"),
            GitError::Network(m) => write!(f, "cannot reach the remote: {m}"),
            GitError::Other(m) => f.write_str(m),
        }
    }
}

fn other(e: git2::Error) -> GitError {
    GitError::Other(e.message().to_string())
}

/// A repository and its `origin`: fetching, reading commits, committing
/// files without a checkout, and pushing a commit to a branch. The state
/// branch ([`Remote`]) and promotion branches are both written through it.
pub struct Origin {
    repo: Repository,
    url: String,
    token: Option<Token>,
    identity: Identity,
}

/// How a push may move the branch it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Only from the commit's first parent (or create it when there is
    /// none): a compare-and-swap, lost when someone else pushed first.
    FastForward,
    /// Whatever the branch holds: for branches only we write.
    Force,
}

/// The remote branch's tip, when the branch exists.
pub type Tip = Option<Oid>;

impl Origin {
    /// Wraps an open repository. `url` is where to fetch and push (the
    /// `origin` remote, possibly rewritten to https).
    pub fn new(repo: Repository, url: String, token: Option<Token>, identity: Identity) -> Origin {
        Origin {
            repo,
            url,
            token,
            identity,
        }
    }

    /// The repository.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// The repository's working tree.
    pub fn workdir(&self) -> Option<&Path> {
        self.repo.workdir()
    }

    /// The remote's URL without any credentials in it.
    pub fn display_url(&self) -> String {
        match url_credentials(&self.url) {
            Some((start, end)) => format!("{}{}", &self.url[..start], &self.url[end..]),
            None => self.url.clone(),
        }
    }

    /// Callbacks that answer a credentials request once, with the token.
    fn callbacks<'a>(&'a self, auth_failed: &'a Cell<bool>) -> RemoteCallbacks<'a> {
        let mut callbacks = RemoteCallbacks::new();
        let asked = Cell::new(false);
        callbacks.credentials(move |_url, _user, _allowed| {
            if asked.replace(true) {
                auth_failed.set(true);
                return Err(git2::Error::from_str("the token was not accepted"));
            }
            match &self.token {
                Some(token) => Cred::userpass_plaintext("x-access-token", &token.0),
                None => {
                    auth_failed.set(true);
                    Err(git2::Error::from_str("the remote asks for credentials"))
                }
            }
        });
        callbacks
    }

    /// Sorts a transport error by cause.
    fn classify(&self, e: git2::Error, auth_failed: bool) -> GitError {
        let message = e.message().to_string();
        if auth_failed || e.code() == ErrorCode::Auth || e.class() == ErrorClass::Ssh {
            return GitError::Auth(message);
        }
        if e.code() == ErrorCode::NotFastForward {
            return GitError::Conflict;
        }
        match e.class() {
            ErrorClass::Net | ErrorClass::Os | ErrorClass::Http | ErrorClass::Ssl => {
                GitError::Network(message)
            }
            _ if e.code() == ErrorCode::Timeout || e.code() == ErrorCode::Eof => {
                GitError::Network(message)
            }
            _ => GitError::Other(message),
        }
    }

    /// Fetch options: the token, no tags, and, in a shallow clone, only
    /// the commits asked for. (The local transport cannot fetch shallow,
    /// and needs not.)
    fn fetch_options<'a>(&'a self, auth_failed: &'a Cell<bool>) -> FetchOptions<'a> {
        let mut options = FetchOptions::new();
        options.remote_callbacks(self.callbacks(auth_failed));
        options.download_tags(git2::AutotagOption::None);
        options.update_fetchhead(false);
        if self.repo.is_shallow() && local_path(&self.url).is_none() {
            options.depth(1);
        }
        options
    }

    /// Fetches `branch` into `refs/remotes/origin/<branch>` and returns its
    /// tip, or `None` when the remote has no such branch.
    pub fn fetch_branch(&self, branch: &str) -> Result<Tip, GitError> {
        let auth_failed = Cell::new(false);
        let mut remote = self.repo.remote_anonymous(&self.url).map_err(other)?;
        let mut options = self.fetch_options(&auth_failed);
        let spec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        remote
            .fetch(&[spec.as_str()], Some(&mut options), None)
            .map_err(|e| self.classify(e, auth_failed.get()))?;
        // The advertisement outlives the connection and says whether the
        // branch exists, which a stale tracking ref cannot.
        let wanted = format!("refs/heads/{branch}");
        let tip = remote
            .list()
            .map_err(other)?
            .iter()
            .find(|head| head.name() == wanted.as_str())
            .map(|head| head.oid());
        Ok(tip)
    }

    /// Whether the repository holds commit `id`.
    pub fn has_commit(&self, id: Oid) -> bool {
        self.repo.find_commit(id).is_ok()
    }

    /// Fetches commit `id` by its id, as a shallow checkout lacks the
    /// commits before its own (in a shallow clone, only that commit).
    pub fn fetch_commit(&self, id: Oid) -> Result<(), GitError> {
        let auth_failed = Cell::new(false);
        let mut remote = self.repo.remote_anonymous(&self.url).map_err(other)?;
        let mut options = self.fetch_options(&auth_failed);
        let spec = id.to_string();
        remote
            .fetch(&[spec.as_str()], Some(&mut options), None)
            .map_err(|e| self.classify(e, auth_failed.get()))?;
        if self.has_commit(id) {
            Ok(())
        } else {
            Err(GitError::Other(format!(
                "{} does not hold commit {id}",
                self.display_url()
            )))
        }
    }

    /// The file at `path` (relative to the repository root) in `commit`.
    pub fn read(&self, commit: Oid, path: &Path) -> Result<Option<Vec<u8>>, GitError> {
        read_at(&self.repo, commit, path).map_err(other)
    }

    /// Each version of the file at `path` in the history of `tip`, newest
    /// first, with the commit that wrote it. A shallow clone has only the
    /// commits it fetched.
    pub fn versions(&self, tip: Oid, path: &Path) -> Result<Vec<(String, Vec<u8>)>, GitError> {
        let blob_at = |commit: &git2::Commit<'_>| {
            commit
                .tree()
                .ok()
                .and_then(|t| t.get_path(path).ok())
                .map(|e| e.id())
        };
        let mut walk = self.repo.revwalk().map_err(other)?;
        walk.push(tip).map_err(other)?;
        let mut versions = Vec::new();
        for id in walk {
            let commit = self.repo.find_commit(id.map_err(other)?).map_err(other)?;
            let Some(blob) = blob_at(&commit) else {
                continue;
            };
            let parent = commit.parents().next();
            if parent.as_ref().and_then(blob_at) == Some(blob) {
                continue;
            }
            let content = self.repo.find_blob(blob).map_err(other)?.content().to_vec();
            versions.push((commit.id().to_string(), content));
        }
        Ok(versions)
    }

    /// Commits `files` (paths relative to the repository root, with their
    /// new contents) on top of `parent` (a root commit holding only them
    /// when there is no parent), without touching the working tree or any
    /// branch, and returns the commit.
    pub fn commit(
        &self,
        parent: Tip,
        files: &[(&Path, &[u8])],
        message: &str,
    ) -> Result<Oid, GitError> {
        let repo = &self.repo;
        let parent = parent
            .map(|id| repo.find_commit(id))
            .transpose()
            .map_err(other)?;
        let mut tree = parent
            .as_ref()
            .map(|c| c.tree())
            .transpose()
            .map_err(other)?;
        for (path, bytes) in files {
            let parts: Vec<&str> = path
                .components()
                .map(|c| match c {
                    std::path::Component::Normal(part) => part.to_str().unwrap_or_default(),
                    _ => "",
                })
                .collect();
            if parts.is_empty() || parts.iter().any(|p| p.is_empty()) {
                return Err(GitError::Other(format!(
                    "cannot commit {}: not a plain relative path",
                    path.display()
                )));
            }
            let blob = repo.blob(bytes).map_err(other)?;
            let id = insert(repo, tree.as_ref(), &parts, blob).map_err(other)?;
            tree = Some(repo.find_tree(id).map_err(other)?);
        }
        let tree = match tree {
            Some(tree) => tree,
            None => repo
                .treebuilder(None)
                .and_then(|b| b.write())
                .and_then(|id| repo.find_tree(id))
                .map_err(other)?,
        };
        let signature = Signature::now(&self.identity.name, &self.identity.email).map_err(other)?;
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        repo.commit(None, &signature, &signature, message, &tree, &parents)
            .map_err(other)
    }

    /// Pushes `commit` to `branch`, moving it as `update` allows. A push
    /// the server reports as refused comes back as `Ok` from libgit2 with a
    /// per-ref message; both are checked.
    pub fn push(&self, commit: Oid, branch: &str, update: Update) -> Result<(), GitError> {
        match local_path(&self.url) {
            Some(path) => self.push_local(&path, commit, branch, update),
            None => self.push_remote(commit, branch, update),
        }?;
        let tracking = format!("refs/remotes/origin/{branch}");
        let _ = self
            .repo
            .reference(&tracking, commit, true, "orchestrator: pushed");
        Ok(())
    }

    /// Pushes to a repository on this machine. libgit2's local transport
    /// writes the remote ref without checking its old value, so two writers
    /// could both "win"; instead the new objects are copied into the remote
    /// repository and the branch is moved with an atomic compare-and-swap
    /// there, as `git receive-pack` does.
    fn push_local(
        &self,
        path: &Path,
        commit: Oid,
        branch: &str,
        update: Update,
    ) -> Result<(), GitError> {
        let path = match self.repo.workdir() {
            Some(top) if path.is_relative() => top.join(path),
            _ => path.to_path_buf(),
        };
        let remote = Repository::open(&path).map_err(|e| GitError::Network(e.message().into()))?;
        let (from, to) = (
            self.repo.odb().map_err(other)?,
            remote.odb().map_err(other)?,
        );
        copy_object(&from, &to, commit).map_err(other)?;
        let expected = self
            .repo
            .find_commit(commit)
            .ok()
            .and_then(|c| c.parent_id(0).ok());
        let name = format!("refs/heads/{branch}");
        let moved = match (update, expected) {
            (Update::Force, _) => remote.reference(&name, commit, true, "orchestrator push"),
            (Update::FastForward, Some(old)) => {
                remote.reference_matching(&name, commit, true, old, "orchestrator push")
            }
            // Not `reference(.., force: false, ..)`: libgit2 checks that
            // the branch is absent before it takes the ref's lock, so
            // writers creating the branch at once could all succeed, each
            // replacing the one before. A zero old value is checked under
            // the lock: "create, only if it still does not exist".
            (Update::FastForward, None) => {
                remote.reference_matching(&name, commit, true, Oid::ZERO_SHA1, "orchestrator push")
            }
        };
        match moved {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::Modified | ErrorCode::Exists | ErrorCode::Locked
                ) =>
            {
                Err(GitError::Conflict)
            }
            Err(e) => Err(other(e)),
        }
    }

    /// Pushes over the network. libgit2 pushes references, not commits:
    /// point a private one at the commit, unique to this process and call,
    /// and drop it afterwards.
    fn push_remote(&self, commit: Oid, branch: &str, update: Update) -> Result<(), GitError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let local = format!(
            "refs/orchestrator/push/{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut reference = self
            .repo
            .reference(&local, commit, true, "orchestrator push")
            .map_err(other)?;
        let force = if update == Update::Force { "+" } else { "" };
        let result = self.push_ref(&format!("{force}{local}:refs/heads/{branch}"));
        let _ = reference.delete();
        result
    }

    fn push_ref(&self, spec: &str) -> Result<(), GitError> {
        let auth_failed = Cell::new(false);
        let refused: RefCell<Option<String>> = RefCell::new(None);
        let mut callbacks = self.callbacks(&auth_failed);
        callbacks.push_update_reference(|_name, status| {
            if let Some(message) = status {
                *refused.borrow_mut() = Some(message.to_string());
            }
            Ok(())
        });
        let mut options = PushOptions::new();
        options.remote_callbacks(callbacks);
        let mut remote = self.repo.remote_anonymous(&self.url).map_err(other)?;
        remote
            .push(&[spec], Some(&mut options))
            .map_err(|e| self.classify(e, auth_failed.get()))?;
        drop(options);
        match refused.into_inner() {
            None => Ok(()),
            Some(message) if lost_race(&message) => Err(GitError::Conflict),
            Some(message) => Err(GitError::Rejected(message)),
        }
    }
}

/// A repository whose state branch lives on a remote.
pub struct Remote {
    origin: Origin,
    branch: String,
    checked_out: bool,
}

impl Remote {
    /// The state branch `branch` of `origin`; `checked_out` says it is the
    /// branch of the working tree.
    pub fn new(origin: Origin, branch: String, checked_out: bool) -> Remote {
        Remote {
            origin,
            branch,
            checked_out,
        }
    }

    /// The repository and its remote.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The state branch's name.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The remote's URL without any credentials in it.
    pub fn display_url(&self) -> String {
        self.origin.display_url()
    }

    /// Fetches the state branch and returns its tip, or `None` when the
    /// remote has no such branch yet.
    pub fn fetch(&self) -> Result<Tip, GitError> {
        self.origin.fetch_branch(&self.branch)
    }

    /// The file at `path` (relative to the repository root) in `commit`.
    pub fn read(&self, commit: Oid, path: &Path) -> Result<Option<Vec<u8>>, GitError> {
        self.origin.read(commit, path)
    }

    /// Each version of the file at `path` in the history of `tip`, newest
    /// first, with the commit that wrote it.
    pub fn versions(&self, tip: Oid, path: &Path) -> Result<Vec<(String, Vec<u8>)>, GitError> {
        self.origin.versions(tip, path)
    }

    /// Commits `bytes` as the file at `path` on top of `parent` (a root
    /// commit holding only that file when there is no parent), without
    /// touching the working tree, and returns the commit.
    pub fn commit(
        &self,
        parent: Tip,
        path: &Path,
        bytes: &[u8],
        message: &str,
    ) -> Result<Oid, GitError> {
        self.origin.commit(parent, &[(path, bytes)], message)
    }

    /// Pushes `commit` to the state branch, expecting the branch to be at
    /// its fetched tip.
    pub fn push(&self, commit: Oid) -> Result<(), GitError> {
        self.origin
            .push(commit, &self.branch, Update::FastForward)?;
        self.after_push(commit);
        Ok(())
    }

    /// Keeps the local branch in step with what was pushed: the local
    /// state branch when it is not the checked-out one; the checked-out
    /// branch (and its index entry) only when the push was a fast-forward
    /// of it, so the working tree never falls behind HEAD.
    fn after_push(&self, commit: Oid) {
        let repo = &self.origin.repo;
        let message = "orchestrator: state pushed";
        let local = format!("refs/heads/{}", self.branch);
        if !self.checked_out {
            let _ = repo.reference(&local, commit, true, message);
            return;
        }
        let Ok(new) = repo.find_commit(commit) else {
            return;
        };
        let head = repo.head().ok().and_then(|h| h.target());
        if head.is_some() && head == new.parent_id(0).ok() {
            let _ = repo.reference(&local, commit, true, message);
            if let (Ok(mut index), Ok(tree)) = (repo.index(), new.tree()) {
                // Only the state file differs from the old HEAD; reading the
                // new tree into the index records exactly that.
                let _ = index.read_tree(&tree).and_then(|()| index.write());
            }
        }
    }
}

/// A commit id as git shortens it: its first seven characters.
pub fn short_id(id: Oid) -> String {
    id.to_string().chars().take(7).collect()
}

/// The file at `path` (relative to the repository root) in `commit`, or
/// `None` when the commit has no such file.
pub fn read_at(
    repo: &Repository,
    commit: Oid,
    path: &Path,
) -> Result<Option<Vec<u8>>, git2::Error> {
    let tree = repo.find_commit(commit)?.tree()?;
    let entry = match tree.get_path(path) {
        Ok(entry) => entry,
        Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if entry.kind() != Some(git2::ObjectType::Blob) {
        return Ok(None);
    }
    Ok(Some(repo.find_blob(entry.id())?.content().to_vec()))
}

/// Every file under directory `dir` in `commit`, with its path below
/// `dir` (`dev/app.yaml`) and its content; empty when there is no `dir`.
pub fn files_under(
    repo: &Repository,
    commit: Oid,
    dir: &Path,
) -> Result<Vec<(String, Vec<u8>)>, git2::Error> {
    let tree = repo.find_commit(commit)?.tree()?;
    let sub = if dir.as_os_str().is_empty() {
        tree
    } else {
        match tree.get_path(dir) {
            Ok(e) if e.kind() == Some(git2::ObjectType::Tree) => repo.find_tree(e.id())?,
            Ok(_) => return Ok(Vec::new()),
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    };
    let mut ids = Vec::new();
    sub.walk(git2::TreeWalkMode::PreOrder, |parent, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            if let Ok(name) = entry.name() {
                ids.push((format!("{parent}{name}"), entry.id()));
            }
        }
        git2::TreeWalkResult::Ok
    })?;
    ids.into_iter()
        .map(|(path, id)| Ok((path, repo.find_blob(id)?.content().to_vec())))
        .collect()
}

/// The id of the tree or blob at `path` in `commit`, or `None` when there
/// is nothing there. Symbolic links on the way are followed within the
/// commit, as the file system of a checkout of it would follow them (a
/// component directory that links to a shared one is that one); a link out
/// of the repository, or in a loop, leads nowhere.
pub fn entry_id(repo: &Repository, commit: Oid, path: &Path) -> Result<Option<Oid>, git2::Error> {
    use std::collections::VecDeque;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Component;
    /// More links than this on one path is a loop.
    const MAX_LINKS: usize = 40;
    let tree = repo.find_commit(commit)?.tree()?;
    let mut ahead: VecDeque<std::ffi::OsString> = path
        .components()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    let mut at = PathBuf::new();
    let mut links = 0;
    while let Some(part) = ahead.pop_front() {
        match Path::new(&part).components().next() {
            Some(Component::CurDir) => continue,
            Some(Component::ParentDir) => {
                if !at.pop() {
                    return Ok(None);
                }
                continue;
            }
            Some(Component::Normal(_)) => at.push(&part),
            _ => return Ok(None),
        }
        let entry = match tree.get_path(&at) {
            Ok(entry) => entry,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if entry.filemode() != i32::from(git2::FileMode::Link) {
            continue;
        }
        links += 1;
        let blob = repo.find_blob(entry.id())?;
        let target = Path::new(std::ffi::OsStr::from_bytes(blob.content()));
        if links > MAX_LINKS || target.is_absolute() {
            return Ok(None);
        }
        at.pop();
        for part in target.components().rev() {
            ahead.push_front(part.as_os_str().to_os_string());
        }
    }
    if at.as_os_str().is_empty() {
        return Ok(Some(tree.id()));
    }
    Ok(Some(tree.get_path(&at)?.id()))
}

/// The path of a remote on this machine (a path or a `file://` URL).
fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(path) = url.strip_prefix("file://") {
        return Some(PathBuf::from(path));
    }
    (!url.contains("://") && !url.contains('@')).then(|| PathBuf::from(url))
}

/// Whether a per-ref refusal means another writer got there first.
fn lost_race(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "non-fast-forward",
        "fetch first",
        "stale info",
        "cannot lock ref",
        "failed to lock",
        "failed to update ref",
        "but expected",
        "already exists",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// Copies object `id` and everything it refers to that `to` lacks from
/// `from` into `to`, children first, so `to` never holds an object whose
/// parts are missing. The walk ends at what `to` already holds: for a state
/// commit, its parent, which was fetched from there.
fn copy_object(from: &git2::Odb<'_>, to: &git2::Odb<'_>, id: Oid) -> Result<(), git2::Error> {
    if to.exists(id) {
        return Ok(());
    }
    let object = from.read(id)?;
    let kind = object.kind();
    match kind {
        git2::ObjectType::Commit => {
            let (tree, parents) = commit_links(object.data())?;
            copy_object(from, to, tree)?;
            for parent in parents {
                copy_object(from, to, parent)?;
            }
        }
        git2::ObjectType::Tree => {
            for child in tree_entries(object.data())? {
                copy_object(from, to, child)?;
            }
        }
        _ => {}
    }
    to.write(kind, object.data())?;
    Ok(())
}

/// The tree a raw commit object names on its first line, and the parents
/// on the lines after it.
fn commit_links(data: &[u8]) -> Result<(Oid, Vec<Oid>), git2::Error> {
    let hex = |bytes: &[u8]| Oid::from_str(std::str::from_utf8(bytes).unwrap_or_default());
    let mut lines = data.split(|b| *b == b'\n');
    let tree = lines
        .next()
        .and_then(|l| l.strip_prefix(b"tree "))
        .ok_or_else(|| git2::Error::from_str("a commit without a tree"))?;
    let parents = lines
        .map_while(|l| l.strip_prefix(b"parent "))
        .map(hex)
        .collect::<Result<_, _>>()?;
    Ok((hex(tree)?, parents))
}

/// The ids of the objects a raw tree object holds: entries are
/// `mode name\0` and 20 bytes.
fn tree_entries(mut data: &[u8]) -> Result<Vec<Oid>, git2::Error> {
    let mut ids = Vec::new();
    while !data.is_empty() {
        let nul = data
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| git2::Error::from_str("a malformed tree"))?;
        let end = nul + 21;
        if data.len() < end {
            return Err(git2::Error::from_str("a malformed tree"));
        }
        // Submodule entries (mode 160000) name commits of other
        // repositories, which neither side holds.
        if !data.starts_with(b"160000 ") {
            ids.push(Oid::from_bytes(&data[nul + 1..end])?);
        }
        data = &data[end..];
    }
    Ok(ids)
}

/// Writes a tree that is `base` with `blob` at `path`, and returns it.
fn insert(
    repo: &Repository,
    base: Option<&git2::Tree<'_>>,
    path: &[&str],
    blob: Oid,
) -> Result<Oid, git2::Error> {
    let mut builder = repo.treebuilder(base)?;
    match path {
        [] => return Err(git2::Error::from_str("empty path")),
        [file] => {
            // An executable file stays executable.
            let mode = match base.and_then(|t| t.get_name(file)).map(|e| e.filemode()) {
                Some(0o100_755) => 0o100_755,
                _ => 0o100_644,
            };
            builder.insert(file, blob, mode)?;
        }
        [dir, rest @ ..] => {
            let sub = match base.and_then(|t| t.get_name(dir)) {
                Some(entry) if entry.kind() == Some(git2::ObjectType::Tree) => {
                    Some(repo.find_tree(entry.id())?)
                }
                _ => None,
            };
            let id = insert(repo, sub.as_ref(), rest, blob)?;
            builder.insert(dir, id, 0o040_000)?;
        }
    }
    builder.write()
}

/// The byte range of `user:password@` in a URL, if it has one.
fn url_credentials(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let host_end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let at = url[start..host_end].rfind('@')?;
    Some((start, start + at + 1))
}

/// The https form of an ssh remote (`git@host:org/repo.git`,
/// `ssh://git@host/org/repo.git`), so a token can push where an ssh key
/// would otherwise be needed; other URLs unchanged.
pub fn https_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("ssh://") {
        let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = host.split(':').next().unwrap_or(host);
        return format!("https://{host}/{path}");
    }
    if !url.contains("://") {
        if let Some((user_host, path)) = url.split_once(':') {
            if let Some((_, host)) = user_host.split_once('@') {
                return format!("https://{host}/{path}");
            }
        }
    }
    url.to_string()
}

/// How the remote is reached, which decides whether a token is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A path or `file://` URL: no credentials.
    Local,
    /// `http://` or `https://`: a token.
    Http,
    /// ssh: not supported for state pushes.
    Ssh,
}

/// The transport a remote URL uses.
pub fn transport(url: &str) -> Transport {
    if url.starts_with("https://") || url.starts_with("http://") {
        Transport::Http
    } else if url.starts_with("ssh://") || (!url.contains("://") && url.contains('@')) {
        Transport::Ssh
    } else {
        Transport::Local
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_near_a_repository_through_a_symbolic_link_too() {
        let tmp = tempfile::TempDir::new().unwrap();
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("infra")).unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let link = outside.join("infra");
        std::os::unix::fs::symlink(repo.join("infra"), &link).unwrap();
        assert!(near(&repo.join("infra")));
        assert!(near(&link), "resolved, the link is inside the repository");
        assert!(!near(&outside));
    }

    /// Links are followed within the commit: to a directory, through a
    /// directory, and up out of one; never out of the repository, nor
    /// around a loop.
    #[test]
    fn entries_are_found_through_symbolic_links_within_the_commit() {
        let tmp = tempfile::TempDir::new().unwrap();
        let root = tmp.path();
        let git = |args: &[&str]| {
            let status = std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .current_dir(root)
                .status()
                .unwrap();
            assert!(status.success(), "git {args:?}");
        };
        git(&["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(root.join("shared/net")).unwrap();
        std::fs::create_dir_all(root.join("stacks")).unwrap();
        std::fs::write(root.join("shared/net/main.tf"), "net").unwrap();
        let link =
            |target: &str, at: &str| std::os::unix::fs::symlink(target, root.join(at)).unwrap();
        link("../shared/net", "stacks/net");
        link("stacks", "live");
        link("./../shared/./net/", "stacks/dotted");
        link("/etc", "stacks/absolute");
        link("../../outside", "stacks/escaping");
        link("loop-b", "loop-a");
        link("loop-a", "loop-b");
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "links"]);
        let repo = Repository::open(root).unwrap();
        let commit = repo.head().unwrap().peel_to_commit().unwrap().id();
        let id = |path: &str| entry_id(&repo, commit, Path::new(path)).unwrap();
        let shared = id("shared/net");
        assert!(shared.is_some());
        for through in ["stacks/net", "live/net", "stacks/dotted", "live/net/../net"] {
            assert_eq!(id(through), shared, "{through}");
        }
        assert_eq!(
            id("live/net/main.tf"),
            id("shared/net/main.tf"),
            "a file through two links"
        );
        assert_eq!(id(""), Some(repo.find_commit(commit).unwrap().tree_id()));
        for nowhere in [
            "stacks/absolute",
            "stacks/escaping",
            "loop-a",
            "stacks/missing",
            "..",
        ] {
            assert_eq!(id(nowhere), None, "{nowhere}");
        }
    }

    #[test]
    fn ssh_remotes_have_an_https_form() {
        assert_eq!(
            https_url("git@github.com:org/infra.git"),
            "https://github.com/org/infra.git"
        );
        assert_eq!(
            https_url("ssh://git@github.example.com:22/org/infra.git"),
            "https://github.example.com/org/infra.git"
        );
        assert_eq!(
            https_url("https://github.com/org/infra.git"),
            "https://github.com/org/infra.git"
        );
        assert_eq!(https_url("/srv/git/infra.git"), "/srv/git/infra.git");
    }

    #[test]
    fn transports_are_told_apart() {
        assert_eq!(transport("https://github.com/o/r"), Transport::Http);
        assert_eq!(transport("git@github.com:o/r.git"), Transport::Ssh);
        assert_eq!(transport("ssh://git@h/o/r"), Transport::Ssh);
        assert_eq!(transport("/tmp/origin.git"), Transport::Local);
        assert_eq!(transport("file:///tmp/origin.git"), Transport::Local);
    }

    #[test]
    fn credentials_in_urls_are_found_for_display() {
        let url = "https://x-access-token:abc@github.com/o/r.git";
        let (s, e) = url_credentials(url).unwrap();
        assert_eq!(&url[s..e], "x-access-token:abc@");
        assert_eq!(url_credentials("https://github.com/o/r.git"), None);
    }

    #[test]
    fn refusals_that_mean_a_lost_race_are_recognised() {
        assert!(lost_race("failed to update ref"));
        assert!(lost_race(
            "cannot lock ref 'refs/heads/x': is at 1 but expected 2"
        ));
        assert!(!lost_race("pre-receive hook declined"));
        assert!(!lost_race("protected branch hook declined"));
    }

    /// Jobs that each found no state branch all try to create it at once;
    /// one of them may, the others lose the race and must fetch again.
    #[test]
    fn of_writers_creating_a_branch_at_once_exactly_one_wins() {
        const WRITERS: usize = 8;
        const ROUNDS: usize = 400;
        let tmp = tempfile::TempDir::new().unwrap();
        let origin = tmp.path().join("origin.git");
        Repository::init_bare(&origin).unwrap();
        let url = origin.to_str().unwrap().to_string();
        let clones: Vec<PathBuf> = (0..WRITERS)
            .map(|i| {
                let dir = tmp.path().join(format!("job{i}"));
                Repository::init(&dir).unwrap();
                dir
            })
            .collect();
        for round in 0..ROUNDS {
            let branch = format!("state-{round}");
            let start = std::sync::Barrier::new(WRITERS);
            let winners: Vec<Oid> = std::thread::scope(|s| {
                let pushes: Vec<_> = clones
                    .iter()
                    .enumerate()
                    .map(|(i, dir)| {
                        let (url, branch, start) = (url.clone(), &branch, &start);
                        s.spawn(move || {
                            let identity = Identity {
                                name: format!("job{i}"),
                                email: "job@example.com".into(),
                            };
                            let repo = Repository::open(dir).unwrap();
                            let writer = Origin::new(repo, url, None, identity);
                            let bytes = format!("written by job {i}");
                            let commit = writer
                                .commit(None, &[(Path::new("state.json"), bytes.as_bytes())], "m")
                                .unwrap();
                            start.wait();
                            match writer.push(commit, branch, Update::FastForward) {
                                Ok(()) => Some(commit),
                                Err(GitError::Conflict) => None,
                                Err(e) => panic!("{e}"),
                            }
                        })
                    })
                    .collect();
                pushes
                    .into_iter()
                    .filter_map(|p| p.join().unwrap())
                    .collect()
            });
            assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
            let tip = Repository::open_bare(&origin)
                .unwrap()
                .refname_to_id(&format!("refs/heads/{branch}"))
                .unwrap();
            assert_eq!(tip, winners[0], "round {round}");
        }
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let token = Token::new("ghs_secret".into()).unwrap();
        assert_eq!(format!("{token:?}"), "Token(***)");
        assert!(Token::new("  ".into()).is_none());
    }
}
