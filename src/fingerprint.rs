//! What change detection compares: a component's fingerprint.
//!
//! A fingerprint covers the three things that decide what a deploy does:
//! the component's files, its values for the environment, and its
//! definition (runner, path, commands, environment variables). The files
//! are identified by the git tree id of the component's directory at HEAD,
//! which costs nothing to read; when the directory has uncommitted changes,
//! or the repository is not a git repository, by a hash of the files
//! themselves (but those git ignores). Timeouts, retries and descriptions
//! are left out: changing them changes nothing that is deployed.
//!
//! What tools write into a component as they deploy it (provider caches,
//! the state of a local backend) is neither hashed nor taken for an
//! uncommitted change: otherwise every deploy would leave its component
//! changed, and the next run would deploy it again.

use std::collections::HashMap;
use std::io::Read;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use git2::{ObjectType, Repository, StatusOptions};
use sha2::{Digest, Sha256};

use crate::config::{CloudName, Component, Config, EnvName, values};

/// Directories tools create inside a component that say nothing about what
/// it deploys: provider and module caches, and the local state of
/// OpenTofu/Terraform workspaces.
const IGNORED_DIRS: [&str; 5] = [
    ".git",
    ".terraform",
    ".terragrunt-cache",
    ".orchestrator",
    "terraform.tfstate.d",
];

/// Files OpenTofu and Terraform write into a component as they deploy it
/// with a local backend: the state, its backup and its lock. What a deploy
/// leaves behind, not what it is made of. (`.terraform.lock.hcl` is not
/// among them: it pins the providers, and belongs in the repository.)
const IGNORED_FILES: [&str; 3] = [
    "terraform.tfstate",
    "terraform.tfstate.backup",
    ".terraform.tfstate.lock.info",
];

/// Whether an entry named `name` of a component's directory tree is left
/// out of its fingerprint.
fn left_out(name: &[u8], is_dir: bool) -> bool {
    let names: &[&str] = if is_dir {
        &IGNORED_DIRS
    } else {
        &IGNORED_FILES
    };
    names.iter().any(|n| name == n.as_bytes())
}

/// Whether the repository-relative `path` git reports as changed (a
/// directory as `dir/`) is, or lies in, something left out.
fn left_out_path(path: &[u8]) -> bool {
    let path = path.strip_suffix(b"/").unwrap_or(path);
    let mut parts = path.split(|b| *b == b'/').peekable();
    while let Some(part) = parts.next() {
        // The last part may name a file or a directory (or a symbolic
        // link to one, which git lists as a file).
        let last = parts.peek().is_none();
        if left_out(part, true) || (last && left_out(part, false)) {
            return true;
        }
    }
    false
}

/// At most this many threads hash files; reading a thousand small
/// directories is done in a few milliseconds with two.
const MAX_THREADS: usize = 8;

/// Computes fingerprints for one repository, opening it once and asking git
/// for its uncommitted changes once.
pub struct Fingerprinter {
    root: PathBuf,
    repo: Option<Repository>,
    /// One status of the working tree, taken when first needed. `None`
    /// inside when there is no status to take.
    worktree: std::cell::OnceCell<Option<Worktree>>,
    /// The digests of one environment's values files as the run read them
    /// ([`values::Loaded`]), used instead of reading the files again.
    values: Option<(EnvName, Vec<[u8; 32]>)>,
}

impl Fingerprinter {
    /// Looks for a git repository holding `config.root`; works without one.
    pub fn new(config: &Config) -> Fingerprinter {
        let root = std::fs::canonicalize(if config.root.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &config.root
        })
        .unwrap_or_else(|_| config.root.clone());
        let repo = crate::state::git::discover(&root).filter(|r| r.workdir().is_some());
        Fingerprinter {
            root,
            repo,
            worktree: std::cell::OnceCell::new(),
            values: None,
        }
    }

    /// The same fingerprinter, taking the values digests of `env` from
    /// what the run read ([`values::Loaded::digests`], in the config's
    /// component order) rather than from the files again: one read of each
    /// file, and the fingerprint covers exactly the values the components
    /// are handed even if a file changes in between.
    pub fn with_values(mut self, env: &EnvName, digests: Vec<[u8; 32]>) -> Fingerprinter {
        self.values = Some((env.clone(), digests));
        self
    }

    /// The commit checked out, when in a git repository with one.
    pub fn head_commit(&self) -> Option<String> {
        let repo = self.repo.as_ref()?;
        repo.head()
            .ok()?
            .peel_to_commit()
            .ok()
            .map(|c| c.id().to_string())
    }

    /// The fingerprint of `component` in `env` on `cloud`: `sha256:<hex>`.
    pub fn fingerprint(
        &self,
        config: &Config,
        env: &EnvName,
        cloud: &CloudName,
        component: &Component,
    ) -> String {
        let rels: Vec<String> = component.paths().map(|p| p.expand(env, cloud)).collect();
        let dirs: Vec<PathBuf> = rels.iter().map(|r| self.root.join(r)).collect();
        let files = self.holdings(&dirs);
        let pairs: Vec<(&str, &str)> = rels[1..]
            .iter()
            .map(String::as_str)
            .zip(files[1..].iter().map(String::as_str))
            .collect();
        let values = values_digest(config, env, component);
        combine(
            &with_watched(&files[0], &pairs),
            &values,
            component,
            env,
            cloud,
        )
    }

    /// The fingerprint of every component of `config` on each of `clouds`,
    /// indexed `[cloud][component]`. Each directory is looked at once, however
    /// many clouds share it; one git status covers them all, and the
    /// directories that need their files hashed are hashed in parallel.
    pub fn fingerprints(
        &self,
        config: &Config,
        env: &EnvName,
        clouds: &[CloudName],
    ) -> Vec<Vec<String>> {
        // The directory of each cloud's components and the paths they
        // watch, and each distinct one once.
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut index: HashMap<PathBuf, usize> = HashMap::new();
        let mut at = |rel: &str| {
            let dir = self.root.join(rel);
            *index.entry(dir.clone()).or_insert_with(|| {
                dirs.push(dir);
                dirs.len() - 1
            })
        };
        type Paths = (usize, Vec<(String, usize)>);
        let of: Vec<Vec<Paths>> = clouds
            .iter()
            .map(|cloud| {
                config
                    .components
                    .iter()
                    .map(|c| {
                        let mut paths = c.paths().map(|p| {
                            let rel = p.expand(env, cloud);
                            let i = at(&rel);
                            (rel, i)
                        });
                        let (_, dir) = paths
                            .next()
                            .expect("a component's paths start with its own");
                        (dir, paths.collect())
                    })
                    .collect()
            })
            .collect();
        let files = self.holdings(&dirs);
        let known = self
            .values
            .as_ref()
            .filter(|(of, digests)| of == env && digests.len() == config.components.len())
            .map(|(_, digests)| digests);
        let present = match known {
            Some(_) => None,
            None => values::present(config, env),
        };
        // Each component's values digest and its fingerprint on every
        // cloud, on the same threads: hashing the definitions of thousands
        // of components is most of what is left once the files are known.
        let per_component = parallel(config.components.len(), |i| {
            let component = &config.components[i];
            let values = match (known, &present) {
                (Some(digests), _) => digests[i],
                (None, Some(names)) if !names.contains(&values::file_name(&component.name)) => {
                    values::digest(b"")
                }
                _ => values_digest(config, env, component),
            };
            clouds
                .iter()
                .zip(&of)
                .map(|(cloud, paths)| {
                    let (dir, watched) = &paths[i];
                    let pairs: Vec<(&str, &str)> = watched
                        .iter()
                        .map(|(rel, w)| (rel.as_str(), files[*w].as_str()))
                        .collect();
                    let files = with_watched(&files[*dir], &pairs);
                    combine(&files, &values, component, env, cloud)
                })
                .collect::<Vec<String>>()
        });
        let mut by_cloud: Vec<Vec<String>> = clouds
            .iter()
            .map(|_| Vec::with_capacity(per_component.len()))
            .collect();
        for fingerprints in per_component {
            for (cloud, fingerprint) in by_cloud.iter_mut().zip(fingerprints) {
                cloud.push(fingerprint);
            }
        }
        by_cloud
    }

    /// What each of `dirs` holds: its git tree id at HEAD when clean, else a
    /// hash of its files, those that need one hashed in parallel.
    fn holdings(&self, dirs: &[PathBuf]) -> Vec<String> {
        let trees = self.git_trees(dirs);
        let worktree = self.worktree();
        // The status does not look into untracked directories: what git
        // ignores in those that hold or lie in a directory to hash is
        // asked for on its own.
        let hashed: Vec<&PathBuf> = dirs
            .iter()
            .zip(&trees)
            .filter_map(|(dir, tree)| tree.is_none().then_some(dir))
            .collect();
        let wider = worktree.zip(self.repo.as_ref()).and_then(|(w, repo)| {
            let within = w.untracked_around(&hashed);
            (!within.is_empty()).then(|| w.ignoring_within(repo, &within))
        });
        let worktree = wider.as_ref().or(worktree);
        parallel(dirs.len(), |i| {
            trees[i]
                .clone()
                .unwrap_or_else(|| content_hash(&dirs[i], worktree))
        })
    }

    /// `git:<tree id>` of each directory at HEAD, for those that are tracked
    /// and hold no uncommitted change; `None` for the others, and for all
    /// when there is no repository or no commit. One status of the whole
    /// working tree says which directories are clean.
    fn git_trees(&self, dirs: &[PathBuf]) -> Vec<Option<String>> {
        let none = || vec![None; dirs.len()];
        let Some(repo) = self.repo.as_ref() else {
            return none();
        };
        let Ok(head) = repo.head().and_then(|h| h.peel_to_tree()) else {
            return none();
        };
        let Some(Worktree {
            workdir, changed, ..
        }) = self.worktree()
        else {
            return none();
        };
        let mut trees = Trees {
            repo,
            head,
            loaded: HashMap::new(),
        };
        dirs.iter()
            .map(|dir| {
                let mut rel = dir.strip_prefix(workdir).ok()?.to_path_buf();
                // A component directory that is a symbolic link (to a shared
                // root, say) is the directory it points at: git holds the
                // link's text there, which no change to the files alters.
                for resolved in [false, true] {
                    if holds_change(changed, &rel) {
                        return None;
                    }
                    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
                        return Some(format!("git:{}", trees.head.id()));
                    };
                    let entry = trees.at(parent)?.get_name_bytes(name.as_bytes())?;
                    if entry.filemode() != i32::from(git2::FileMode::Link) {
                        // The entry as it is: a tree, or a submodule's commit.
                        return Some(format!("git:{}", entry.id()));
                    }
                    if resolved {
                        return None;
                    }
                    let target = std::fs::canonicalize(dir).ok()?;
                    rel = target.strip_prefix(workdir).ok()?.to_path_buf();
                }
                None
            })
            .collect()
    }
}

/// The trees of HEAD that hold component directories, each read once.
///
/// libgit2 caches no tree over 4 KiB, and a directory holding a thousand
/// components is a tree of about 40 KiB: looking up each component's
/// directory from HEAD read and inflated it again every time, 0.18 s for
/// 1,000 components.
struct Trees<'r> {
    repo: &'r Repository,
    head: git2::Tree<'r>,
    /// By repository-relative path; `None` when it is not a tree at HEAD.
    loaded: HashMap<PathBuf, Option<git2::Tree<'r>>>,
}

impl<'r> Trees<'r> {
    /// The tree at `rel`, a repository-relative path.
    fn at(&mut self, rel: &Path) -> Option<&git2::Tree<'r>> {
        if rel.as_os_str().is_empty() {
            return Some(&self.head);
        }
        if !self.loaded.contains_key(rel) {
            let id = match (rel.parent(), rel.file_name()) {
                (Some(parent), Some(name)) => self
                    .at(parent)
                    .and_then(|tree| tree.get_name_bytes(name.as_bytes()))
                    .filter(|entry| entry.kind() == Some(ObjectType::Tree))
                    .map(|entry| entry.id()),
                _ => None,
            };
            let tree = id.and_then(|id| self.repo.find_tree(id).ok());
            self.loaded.insert(rel.to_path_buf(), tree);
        }
        self.loaded.get(rel).and_then(Option::as_ref)
    }
}

impl Fingerprinter {
    /// The status of the working tree, taken on first use; `None` outside
    /// a repository or when git cannot say.
    fn worktree(&self) -> Option<&Worktree> {
        self.worktree
            .get_or_init(|| Worktree::of(self.repo.as_ref()?))
            .as_ref()
    }
}

/// What one `git status` says of the working tree, as repository-relative
/// paths, each list sorted. A directory whose files all come under one
/// heading comes as the directory (`cache/`), as `git status` shows it:
/// git need not list what may be thousands of files (an untracked
/// `node_modules` made a plan of 1,000 components 0.15 s slower).
#[derive(Clone)]
struct Worktree {
    /// Where the working tree is, without symbolic links.
    workdir: PathBuf,
    /// Every uncommitted change, untracked files included, but what is
    /// [left out](left_out_path) of fingerprints.
    changed: Vec<Vec<u8>>,
    /// What git ignores (`.gitignore` and the like) and does not track.
    ignored: Vec<Vec<u8>>,
}

impl Worktree {
    fn of(repo: &Repository) -> Option<Worktree> {
        let workdir = std::fs::canonicalize(repo.workdir()?).ok()?;
        let mut opts = StatusOptions::new();
        opts.include_untracked(true)
            .recurse_untracked_dirs(false)
            .include_ignored(true)
            .recurse_ignored_dirs(false);
        let statuses = repo.statuses(Some(&mut opts)).ok()?;
        let (mut changed, mut ignored) = (Vec::new(), Vec::new());
        for entry in statuses.iter() {
            let path = entry.path_bytes();
            if entry.status().is_ignored() {
                ignored.push(path.to_vec());
            } else if !left_out_path(path) {
                changed.push(path.to_vec());
            }
        }
        changed.sort_unstable();
        ignored.sort_unstable();
        Some(Worktree {
            workdir,
            changed,
            ignored,
        })
    }

    /// The untracked directories the status lists (`new/`) that hold or
    /// lie in one of `dirs`, each as the narrower of the two.
    fn untracked_around(&self, dirs: &[&PathBuf]) -> Vec<Vec<u8>> {
        let untracked: Vec<&[u8]> = self
            .changed
            .iter()
            .filter(|p| p.ends_with(b"/"))
            .map(|p| &p[..p.len() - 1])
            .collect();
        if untracked.is_empty() {
            return Vec::new();
        }
        // Whether `inner` is `outer` or lies in it (the root holds all).
        let under = |outer: &[u8], inner: &[u8]| {
            outer.is_empty()
                || inner == outer
                || (inner.starts_with(outer) && inner[outer.len()] == b'/')
        };
        let mut within = Vec::new();
        for dir in dirs {
            let Ok(dir) = std::fs::canonicalize(dir) else {
                continue;
            };
            let Ok(rel) = dir.strip_prefix(&self.workdir) else {
                continue;
            };
            let rel = rel.as_os_str().as_bytes();
            for u in &untracked {
                if under(u, rel) {
                    within.push(rel.to_vec());
                } else if under(rel, u) {
                    within.push(u.to_vec());
                }
            }
        }
        within.sort_unstable();
        within.dedup();
        within
    }

    /// This working tree, with what git ignores inside `within` (paths in
    /// untracked directories) among what it ignores.
    fn ignoring_within(&self, repo: &Repository, within: &[Vec<u8>]) -> Worktree {
        let mut wider = self.clone();
        let mut opts = StatusOptions::new();
        opts.include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(true)
            .recurse_ignored_dirs(false)
            .disable_pathspec_match(true);
        for path in within {
            opts.pathspec(std::ffi::OsStr::from_bytes(path));
        }
        if let Ok(statuses) = repo.statuses(Some(&mut opts)) {
            wider.ignored.extend(
                statuses
                    .iter()
                    .filter(|e| e.status().is_ignored())
                    .map(|e| e.path_bytes().to_vec()),
            );
        }
        wider.ignored.sort_unstable();
        wider.ignored.dedup();
        wider
    }

    /// Whether git ignores `path`, an untracked file (or directory, with
    /// `is_dir`) somewhere under the working tree.
    fn ignores(&self, path: &Path, is_dir: bool) -> bool {
        if self.ignored.is_empty() {
            return false;
        }
        let Ok(rel) = path.strip_prefix(&self.workdir) else {
            return false;
        };
        let rel = rel.as_os_str().as_bytes();
        let found = |p: &[u8]| {
            self.ignored
                .binary_search_by(|i| i.as_slice().cmp(p))
                .is_ok()
        };
        if is_dir {
            let mut dir = Vec::with_capacity(rel.len() + 1);
            dir.extend_from_slice(rel);
            dir.push(b'/');
            found(&dir)
        } else {
            found(rel)
        }
    }
}

/// Whether any of the sorted repository-relative paths `changed` is `rel`
/// or lies under it.
fn holds_change(changed: &[Vec<u8>], rel: &Path) -> bool {
    let rel = rel.as_os_str().as_bytes();
    if rel.is_empty() {
        return !changed.is_empty();
    }
    let first = changed.partition_point(|p| p.as_slice() < rel);
    changed[first..]
        .iter()
        .take_while(|p| p.starts_with(rel))
        .any(|p| p.len() == rel.len() || p[rel.len()] == b'/')
}

/// Runs `f` for `0..n` on a few threads and returns the results in order.
fn parallel<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    // Asked once: the answer reads the cgroup's CPU quota from /proc and
    // /sys each time.
    static CPUS: OnceLock<usize> = OnceLock::new();
    let cpus = *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from));
    let threads = cpus.min(MAX_THREADS).min(n.div_ceil(64));
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut mine = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                return mine;
            }
            mine.push((i, f(i)));
        }
    };
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        // The calling thread works too, so a helper that cannot be started
        // only makes the work slower.
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("fingerprint".into())
                    .spawn_scoped(scope, work)
                    .ok()
            })
            .collect();
        let mut all = work();
        for helper in helpers {
            all.extend(
                helper
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            );
        }
        all
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, t)| t).collect()
}

/// The digest of a component's values file for `env` (of nothing, when it
/// has none).
fn values_digest(config: &Config, env: &EnvName, component: &Component) -> [u8; 32] {
    let values = std::fs::read(values::path(config, env, &component.name)).unwrap_or_default();
    values::digest(&values)
}

/// The fingerprint from its three parts.
fn combine(
    files: &str,
    values: &[u8; 32],
    component: &Component,
    env: &EnvName,
    cloud: &CloudName,
) -> String {
    let mut h = Sha256::new();
    h.update(b"orchestrator-fingerprint-v1\nfiles ");
    h.update(files.as_bytes());
    h.update(b"\nvalues ");
    h.update(values);
    h.update(b"\ndefinition ");
    // Serialized straight into the hash, without a JSON tree for each of
    // thousands of components. Writing to a hash cannot fail.
    let _ = serde_json::to_writer(&mut h, &definition(component, env, cloud));
    format!("sha256:{:x}", h.finalize())
}

/// The part of a component's definition a fingerprint covers, in one
/// environment and cloud: runner, path, commands and environment
/// variables, with `{env}` and `{cloud}` filled in. Its JSON, fields in
/// this order, is what is hashed.
#[derive(Debug, PartialEq, Eq, serde::Serialize)]
pub struct Definition<'c> {
    runner: &'c str,
    path: String,
    commands: Commands,
    env: &'c indexmap::IndexMap<String, String>,
}

#[derive(Debug, PartialEq, Eq, serde::Serialize)]
struct Commands {
    plan: Option<String>,
    apply: Option<String>,
    destroy: Option<String>,
}

/// The [`Definition`] of `component` in `env` on `cloud`.
pub fn definition<'c>(
    component: &'c Component,
    env: &EnvName,
    cloud: &CloudName,
) -> Definition<'c> {
    let expand = |t: &Option<crate::config::Template>| t.as_ref().map(|t| t.expand(env, cloud));
    Definition {
        runner: component.runner.as_str(),
        path: component.path.expand(env, cloud),
        commands: Commands {
            plan: expand(&component.commands.plan),
            apply: expand(&component.commands.apply),
            destroy: expand(&component.commands.destroy),
        },
        env: &component.env,
    }
}

/// What a fingerprint says of a component's files: those of its directory
/// (`dir`), then each watched path's (as written, `{env}` and `{cloud}`
/// filled in) with what it holds. Without watched paths, the directory's
/// alone, as before there were any.
fn with_watched<'a>(dir: &'a str, watched: &[(&str, &str)]) -> std::borrow::Cow<'a, str> {
    if watched.is_empty() {
        return std::borrow::Cow::Borrowed(dir);
    }
    let mut files = dir.to_string();
    for (path, id) in watched {
        files.push_str(&format!(" {path}={id}"));
    }
    std::borrow::Cow::Owned(files)
}

/// `files:<sha256>` over every file under `dir` (path, executable bit and
/// content), in sorted order so the result does not depend on the file
/// system's listing order. What is [left out](left_out) is not hashed, nor
/// is what git ignores in `worktree`.
fn content_hash(dir: &Path, worktree: Option<&Worktree>) -> String {
    // What git ignores is known by the paths of the files themselves, not
    // by those through a link to their directory.
    let resolved = worktree.and_then(|_| std::fs::canonicalize(dir).ok());
    let dir = resolved.as_deref().unwrap_or(dir);
    let mut files = Vec::new();
    // One buffer serves every directory under `dir`: each is listed to the
    // end before the next is opened. (`read_dir` allocates 32 KiB for each
    // directory it opens, and checks it with an extra `fstat`: a thousand
    // small component directories paid more for that than for the listing.)
    let mut listing = [MaybeUninit::<u8>::uninit(); LISTING_BYTES];
    collect_files(dir, dir, worktree, &mut listing, &mut files);
    files.sort();
    let mut h = Sha256::new();
    let mut buf = Vec::new();
    for (rel, path) in files {
        buf.clear();
        // The mode comes from the open file: one lookup of the path, not two.
        let Ok(mut file) = std::fs::File::open(&path) else {
            continue;
        };
        let executable = file.metadata().is_ok_and(|m| is_executable(&m));
        if file.read_to_end(&mut buf).is_err() {
            continue;
        }
        h.update(rel.as_bytes());
        h.update([0, u8::from(executable), 0]);
        h.update((buf.len() as u64).to_le_bytes());
        h.update(&buf);
    }
    format!("files:{:x}", h.finalize())
}

/// The room for directory entries read in one system call.
const LISTING_BYTES: usize = 8 * 1024;

/// Adds every file under `dir` to `out` as (path relative to `base`, path).
/// A symbolic link counts as a file, whatever it points at; what is
/// [left out](left_out), and what git ignores in `worktree`, is not added.
/// An unreadable directory adds nothing; a file given as `base` adds itself.
fn collect_files(
    base: &Path,
    dir: &Path,
    worktree: Option<&Worktree>,
    listing: &mut [MaybeUninit<u8>],
    out: &mut Vec<(String, PathBuf)>,
) {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};
    let fd = match rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // A watched file: itself, under no name of its own.
        Err(rustix::io::Errno::NOTDIR) if dir == base => {
            out.push((String::new(), dir.to_path_buf()));
            return;
        }
        Err(_) => return,
    };
    let mut subdirs = Vec::new();
    let mut entries = RawDir::new(&fd, listing);
    while let Some(Ok(entry)) = entries.next() {
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        // File systems that do not say an entry's type make us ask.
        let kind = match entry.file_type() {
            FileType::Unknown => {
                match rustix::fs::statat(&fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat) => FileType::from_raw_mode(stat.st_mode),
                    Err(_) => continue,
                }
            }
            kind => kind,
        };
        let is_dir = kind == FileType::Directory;
        if left_out(name, is_dir) {
            continue;
        }
        let path = dir.join(std::ffi::OsStr::from_bytes(name));
        if worktree.is_some_and(|w| w.ignores(&path, is_dir)) {
            continue;
        }
        if is_dir {
            subdirs.push(path);
        } else {
            let rel = path
                .strip_prefix(base)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            out.push((rel, path));
        }
    }
    drop(fd);
    for subdir in subdirs {
        collect_files(base, &subdir, worktree, listing, out);
    }
}

/// Whether anyone may execute the file `m` describes (what git records as
/// mode 100755).
#[cfg(unix)]
pub(crate) fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fingerprints are compared with those recorded by earlier versions:
    /// if this value changes, every deployed component looks changed.
    #[test]
    fn fingerprints_stay_what_earlier_versions_recorded() {
        let tmp = tempfile::TempDir::new().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("c/a")).unwrap();
        std::fs::create_dir_all(root.join("environments/dev")).unwrap();
        std::fs::write(root.join("c/a/main.tf"), "x\n").unwrap();
        std::fs::write(root.join("environments/dev/a.yaml"), "k: v\n").unwrap();
        std::fs::write(
            root.join("orchestrator.yaml"),
            "version: 1\ndefaults:\n  runner: shell\ncomponents:\n  a:\n    path: c/a\n    \
             env: {X: \"1\"}\n    commands:\n      apply: \"true\"\n\
             environments:\n  dev: {clouds: [aws, gcp]}\n",
        )
        .unwrap();
        let config = crate::config::load(&root.join("orchestrator.yaml")).unwrap();
        let env = EnvName::parse("dev").unwrap();
        let clouds = [
            CloudName::parse("aws").unwrap(),
            CloudName::parse("gcp").unwrap(),
        ];
        let fingerprinter = Fingerprinter::new(&config);
        let all = fingerprinter.fingerprints(&config, &env, &clouds);
        let one = fingerprinter.fingerprint(&config, &env, &clouds[0], &config.components[0]);
        assert_eq!(all[0][0], one);
        assert_eq!(all[0][0], all[1][0], "the definition names no cloud");
        // Recorded by the version before fingerprints were taken in bulk.
        assert_eq!(
            all[0][0],
            "sha256:24c2e4b8a5b9fbe050875fb36a5a0ca5d4e9b749db3aafdcc3b61b355f9be4a7"
        );

        // The digests a run read give the same fingerprints, and stay
        // those of the values it read when the file changes after.
        let loaded = values::load_checked(&config, &env).unwrap();
        let knowing = Fingerprinter::new(&config).with_values(&env, loaded.digests);
        assert_eq!(knowing.fingerprints(&config, &env, &clouds), all);
        std::fs::write(root.join("environments/dev/a.yaml"), "k: w\n").unwrap();
        assert_eq!(knowing.fingerprints(&config, &env, &clouds), all);
        let rereading = Fingerprinter::new(&config).fingerprints(&config, &env, &clouds);
        assert_ne!(rereading, all);
        // Digests of another environment are not taken for this one.
        let other = EnvName::parse("prod").unwrap();
        let elsewhere = Fingerprinter::new(&config).with_values(&other, vec![[0; 32]]);
        assert_eq!(elsewhere.fingerprints(&config, &env, &clouds), rereading);
    }

    #[test]
    fn a_change_belongs_to_its_directory_and_the_directories_above_only() {
        let mut changed: Vec<Vec<u8>> = ["c/net2/extra.tf", "c/app/a/b.tf", "readme.md"]
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        changed.sort_unstable();
        let holds = |rel: &str| holds_change(&changed, Path::new(rel));
        assert!(holds("c/net2"));
        assert!(!holds("c/net"), "a prefix of the name is another directory");
        assert!(holds("c/app") && holds("c/app/a") && holds("c"));
        assert!(!holds("c/app/b") && !holds("d"));
        assert!(holds("readme.md"));
        assert!(holds(""), "the root holds every change");
        assert!(!holds_change(&[], Path::new("")));
    }

    #[test]
    fn the_hashed_definition_is_the_json_earlier_versions_hashed() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("orchestrator.yaml");
        let config = crate::config::load(&example).unwrap();
        assert!(config.components.iter().any(|c| !c.env.is_empty()));
        let env = EnvName::parse("dev").unwrap();
        let cloud = CloudName::parse("aws").unwrap();
        for c in &config.components {
            // How earlier versions built what they hashed.
            let expand =
                |t: &Option<crate::config::Template>| t.as_ref().map(|t| t.expand(&env, &cloud));
            let earlier = serde_json::json!({
                "runner": c.runner.as_str(),
                "path": c.path.expand(&env, &cloud),
                "commands": {
                    "plan": expand(&c.commands.plan),
                    "apply": expand(&c.commands.apply),
                    "destroy": expand(&c.commands.destroy),
                },
                "env": c.env,
            });
            let now = serde_json::to_string(&definition(c, &env, &cloud)).unwrap();
            assert_eq!(now, earlier.to_string());
        }
    }

    /// Each directory's id is what a lookup from HEAD gives (the tree, or
    /// a submodule's commit), at any depth, through trees read once; a
    /// directory with a change, or not at HEAD, has none. Git reports a
    /// directory of untracked files as the directory alone, and that is
    /// a change of every directory it is in.
    #[test]
    fn directories_at_head_get_the_ids_a_lookup_from_head_gives() {
        let tmp = tempfile::TempDir::new().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let git = |args: &[&str]| git_in(&root, args);
        git(&["init", "-q", "-b", "main"]);
        for dir in [
            "c/a",
            "c/b",
            "c/deep/er/x",
            "top",
            "dirty",
            "grown",
            "grown-too",
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            std::fs::write(root.join(dir).join("main.tf"), dir).unwrap();
        }
        git(&["add", "-A"]);
        // A submodule: a commit entry in the tree, not a tree.
        git(&[
            "update-index",
            "--add",
            "--cacheinfo",
            "160000",
            "1111111111111111111111111111111111111111",
            "c/sub",
        ]);
        git(&["commit", "-q", "-m", "components"]);
        std::fs::write(root.join("dirty/main.tf"), "changed").unwrap();
        // Untracked directories, reported as `grown/cache/` and `fresh/`.
        for dir in ["grown/cache/deep", "fresh/x"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            std::fs::write(root.join(dir).join("f.js"), dir).unwrap();
        }
        // An unpopulated submodule: its directory, empty.
        std::fs::create_dir_all(root.join("c/sub")).unwrap();
        let repo = git2::Repository::open(&root).unwrap();
        let head = repo.head().unwrap().peel_to_tree().unwrap();
        let fingerprinter = Fingerprinter {
            root: root.clone(),
            repo: Some(git2::Repository::open(&root).unwrap()),
            worktree: std::cell::OnceCell::new(),
            values: None,
        };
        let rels = [
            "c/a",
            "c/b",
            "c/deep/er/x",
            "top",
            "c/sub",
            "dirty",
            "c/missing",
            "top/main.tf",
            "grown",
            "grown-too",
            "fresh/x",
        ];
        let dirs: Vec<PathBuf> = rels.iter().map(|r| root.join(r)).collect();
        let got = fingerprinter.git_trees(&dirs);
        for (rel, id) in rels.iter().zip(&got) {
            let expected = match *rel {
                "dirty" | "c/missing" | "grown" | "fresh/x" => None,
                _ => Some(format!(
                    "git:{}",
                    head.get_path(Path::new(rel)).unwrap().id()
                )),
            };
            assert_eq!(id, &expected, "{rel}");
        }
        assert_eq!(
            got[4].as_deref(),
            Some("git:1111111111111111111111111111111111111111")
        );
        // The repository's root holds the change in `dirty/`.
        assert_eq!(
            fingerprinter.git_trees(std::slice::from_ref(&root)),
            vec![None]
        );
    }

    #[test]
    fn parallel_work_comes_back_in_order() {
        let squares = parallel(1_000, |i| i * i);
        assert_eq!(squares, (0..1_000).map(|i| i * i).collect::<Vec<_>>());
        assert!(parallel(0, |i| i).is_empty());
    }

    #[test]
    fn content_hash_changes_with_content_and_ignores_tool_caches() {
        let tmp = tempfile::TempDir::new().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("main.tf"), "a").unwrap();
        let first = content_hash(dir, None);
        std::fs::create_dir_all(dir.join(".terraform/providers")).unwrap();
        std::fs::write(dir.join(".terraform/providers/x"), "cache").unwrap();
        assert_eq!(content_hash(dir, None), first, ".terraform is ignored");
        std::fs::write(dir.join("main.tf"), "b").unwrap();
        let second = content_hash(dir, None);
        assert_ne!(second, first);
        // The executable bit counts: a script made runnable is a change.
        use std::os::unix::fs::PermissionsExt;
        let mode = |m| std::fs::Permissions::from_mode(m);
        std::fs::set_permissions(dir.join("main.tf"), mode(0o755)).unwrap();
        let runnable = content_hash(dir, None);
        assert_ne!(runnable, second);
        std::fs::set_permissions(dir.join("main.tf"), mode(0o644)).unwrap();
        assert_eq!(content_hash(dir, None), second);
        // Through a symbolic link, the file it points at is hashed.
        std::os::unix::fs::symlink("main.tf", dir.join("link.tf")).unwrap();
        std::fs::set_permissions(dir.join("main.tf"), mode(0o755)).unwrap();
        let linked = content_hash(dir, None);
        std::fs::remove_file(dir.join("link.tf")).unwrap();
        std::fs::copy(dir.join("main.tf"), dir.join("link.tf")).unwrap();
        std::fs::set_permissions(dir.join("link.tf"), mode(0o755)).unwrap();
        assert_eq!(content_hash(dir, None), linked);
    }

    /// Runs git in `root`; the test fails if it does.
    fn git_in(root: &Path, args: &[&str]) {
        let status = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(root)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    /// Writes `text` to `rel` under `root`, making its directories.
    fn write_in(root: &Path, rel: &str, text: &str) {
        std::fs::create_dir_all(root.join(rel).parent().unwrap()).unwrap();
        std::fs::write(root.join(rel), text).unwrap();
    }

    /// A new repository holding `files`, committed; its directory (kept
    /// while the first value lives) without symbolic links.
    fn committed(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::TempDir::new().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        git_in(&root, &["init", "-q", "-b", "main"]);
        for (rel, text) in files {
            write_in(&root, rel, text);
        }
        git_in(&root, &["add", "-A"]);
        git_in(&root, &["commit", "-q", "-m", "files"]);
        (tmp, root)
    }

    fn dev_on_aws() -> (EnvName, [CloudName; 1]) {
        (
            EnvName::parse("dev").unwrap(),
            [CloudName::parse("aws").unwrap()],
        )
    }

    /// A component directory that is a symbolic link is fingerprinted as
    /// the directory it points at: changes there are its changes.
    #[test]
    fn a_linked_component_directory_is_the_directory_it_points_at() {
        let tmp = tempfile::TempDir::new().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let git = |args: &[&str]| git_in(&root, args);
        git(&["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(root.join("shared/net")).unwrap();
        std::fs::create_dir_all(root.join("stacks")).unwrap();
        std::fs::write(root.join("shared/net/main.tf"), "one").unwrap();
        std::fs::write(root.join(".gitignore"), "*.log\n").unwrap();
        std::os::unix::fs::symlink("../shared/net", root.join("stacks/net")).unwrap();
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "linked"]);
        let files = || {
            let fingerprinter = Fingerprinter {
                root: root.clone(),
                repo: Some(git2::Repository::open(&root).unwrap()),
                worktree: std::cell::OnceCell::new(),
                values: None,
            };
            let dirs = [root.join("stacks/net"), root.join("shared/net")];
            let trees = fingerprinter.git_trees(&dirs);
            let worktree = fingerprinter.worktree();
            let hashes: Vec<String> = dirs.iter().map(|d| content_hash(d, worktree)).collect();
            (trees, hashes)
        };
        let (trees, _) = files();
        assert!(trees[0].is_some(), "{trees:?}");
        assert_eq!(trees[0], trees[1], "the tree it points at");

        std::fs::write(root.join("shared/net/main.tf"), "two").unwrap();
        git(&["commit", "-q", "-am", "edit"]);
        let (committed, _) = files();
        assert_ne!(committed[0], trees[0]);
        assert_eq!(committed[0], committed[1]);

        // Uncommitted: both hashed alike, what git ignores left out.
        std::fs::write(root.join("shared/net/main.tf"), "three").unwrap();
        std::fs::write(root.join("shared/net/apply.log"), "noise").unwrap();
        let (trees, hashes) = files();
        assert_eq!(trees, [None, None]);
        assert_eq!(hashes[0], hashes[1]);
        std::fs::write(root.join("shared/net/apply.log"), "more noise").unwrap();
        assert_eq!(files().1, hashes);
    }

    #[test]
    fn what_a_deploy_leaves_in_its_directory_is_not_hashed() {
        let tmp = tempfile::TempDir::new().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("main.tf"), "a").unwrap();
        let first = content_hash(dir, None);
        // A local backend's state, its backup and lock, and workspaces.
        for (file, text) in [
            ("terraform.tfstate", "{}"),
            ("terraform.tfstate.backup", "{}"),
            (".terraform.tfstate.lock.info", "{}"),
            ("terraform.tfstate.d/staging/terraform.tfstate", "{}"),
            ("modules/vpc/terraform.tfstate", "{}"),
        ] {
            std::fs::create_dir_all(dir.join(file).parent().unwrap()).unwrap();
            std::fs::write(dir.join(file), text).unwrap();
            assert_eq!(content_hash(dir, None), first, "{file}");
        }
        // The providers' lock is an input: it says which providers run.
        std::fs::write(dir.join(".terraform.lock.hcl"), "provider {}").unwrap();
        assert_ne!(content_hash(dir, None), first);
    }

    #[test]
    fn changes_git_reports_in_what_a_deploy_leaves_are_no_changes() {
        for left in [
            "c/net/.terraform/",
            "c/net/.terraform/modules/vpc/main.tf",
            "c/net/.terraform",
            "c/net/terraform.tfstate",
            "c/net/terraform.tfstate.backup",
            "c/net/.terraform.tfstate.lock.info",
            "c/net/terraform.tfstate.d/",
            ".terragrunt-cache/",
        ] {
            assert!(left_out_path(left.as_bytes()), "{left}");
        }
        for change in [
            "c/net/main.tf",
            "c/net/.terraform.lock.hcl",
            "c/terraform.tfstate/main.tf",
            "c/net/terraform.tfstate.json",
            "c/terraform/",
        ] {
            assert!(!left_out_path(change.as_bytes()), "{change}");
        }
    }

    /// In a repository, a directory is what git holds of it: what a deploy
    /// leaves there does not make it changed, and once it has uncommitted
    /// changes, the files git ignores are not hashed with the others.
    #[test]
    fn in_a_repository_a_directory_is_what_git_holds_of_it() {
        let (_tmp, root) = committed(&[
            (".gitignore", "*.log\nbuild/\n"),
            ("c/net/main.tf", "net"),
            (
                "orchestrator.yaml",
                "version: 1\ncomponents:\n  net: {path: c/net, runner: tofu}\nenvironments:\n  dev: {clouds: [aws]}\n",
            ),
        ]);
        let write = |rel: &str, text: &str| write_in(&root, rel, text);
        let config = crate::config::load(&root.join("orchestrator.yaml")).unwrap();
        let (env, clouds) = dev_on_aws();
        let files = || {
            let fingerprinter = Fingerprinter::new(&config);
            let dirs = [root.join("c/net")];
            let tree = fingerprinter.git_trees(&dirs).pop().flatten();
            let all = fingerprinter.fingerprints(&config, &env, &clouds);
            (tree, all[0][0].clone())
        };
        let (clean, committed) = files();
        assert!(clean.as_deref().is_some_and(|t| t.starts_with("git:")));

        // What `tofu init` and a local backend leave: still clean.
        write("c/net/.terraform/providers/aws/provider", "binary");
        write("c/net/terraform.tfstate", "{\"serial\": 1}");
        write("c/net/terraform.tfstate.d/ws/terraform.tfstate", "{}");
        assert_eq!(files(), (clean.clone(), committed.clone()));

        // An uncommitted edit: the files are hashed, and what git ignores,
        // or a deploy leaves, is not among them.
        write("c/net/main.tf", "net, edited");
        let (tree, edited) = files();
        assert_eq!(tree, None);
        assert_ne!(edited, committed);
        write("c/net/apply.log", "run 1");
        write("c/net/build/out.zip", "zip");
        write("c/net/terraform.tfstate", "{\"serial\": 2}");
        assert_eq!(files().1, edited);
        write("c/net/apply.log", "run 2");
        assert_eq!(files().1, edited);
        // What git does not ignore counts.
        write("c/net/notes.md", "new");
        assert_ne!(files().1, edited);
    }

    /// git's status does not look into an untracked directory, but what git
    /// ignores there is left out all the same: in a component directory
    /// not committed yet (here under an untracked parent), and in a new
    /// directory inside a committed one.
    #[test]
    fn what_git_ignores_in_an_untracked_directory_is_not_hashed() {
        let (_tmp, root) = committed(&[
            (".gitignore", "*.log\n"),
            ("apps/app/main.tf", "app"),
            (
                "orchestrator.yaml",
                "version: 1\ncomponents:\n  net: {path: stacks/net, runner: tofu}\n  app: {path: apps/app, runner: tofu}\nenvironments:\n  dev: {clouds: [aws]}\n",
            ),
        ]);
        let write = |rel: &str, text: &str| write_in(&root, rel, text);
        write("stacks/net/main.tf", "net");
        write("apps/app/scripts/run.sh", "echo");
        let config = crate::config::load(&root.join("orchestrator.yaml")).unwrap();
        let (env, clouds) = dev_on_aws();
        let fingerprints =
            || Fingerprinter::new(&config).fingerprints(&config, &env, &clouds)[0].clone();
        let index = |name: &str| config.graph.index_of(name).unwrap();
        let before = fingerprints();
        write("stacks/net/apply.log", "run 1");
        write("apps/app/scripts/out.log", "run 1");
        assert_eq!(fingerprints(), before);
        write("stacks/net/apply.log", "run 2");
        write("apps/app/scripts/out.log", "run 2");
        assert_eq!(fingerprints(), before);
        // What git does not ignore counts.
        write("stacks/net/notes.md", "new");
        let after = fingerprints();
        let (net, app) = (index("net"), index("app"));
        assert_ne!(after[net], before[net]);
        assert_eq!(after[app], before[app]);
    }

    /// The hash of a tree with subdirectories, an ignored cache and an
    /// executable, as the listing through `std::fs::read_dir` gave it:
    /// reading directories another way must not change any fingerprint.
    #[test]
    fn content_hashes_of_nested_trees_stay_what_earlier_versions_recorded() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::TempDir::new().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("modules/net/.terraform")).unwrap();
        std::fs::create_dir_all(dir.join("scripts")).unwrap();
        std::fs::write(dir.join("main.tf"), "a").unwrap();
        std::fs::write(dir.join("modules/net/vpc.tf"), "b").unwrap();
        std::fs::write(dir.join("modules/net/.terraform/x"), "c").unwrap();
        std::fs::write(dir.join("scripts/run.sh"), "d").unwrap();
        let executable = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(dir.join("scripts/run.sh"), executable).unwrap();
        let recorded = "files:a7b2ac8421cb86dfd7b35200040ebd2b12d735cb626647eb77c2db91b1f9b9c7";
        assert_eq!(content_hash(dir, None), recorded);
        // A file deep down counts, under its path.
        std::fs::write(dir.join("modules/net/vpc.tf"), "B").unwrap();
        assert_ne!(content_hash(dir, None), recorded);
    }
}
