//! What change detection compares: a component's fingerprint.
//!
//! A fingerprint covers the three things that decide what a deploy does:
//! the component's files, its values for the environment, and its
//! definition (runner, path, commands, environment variables). The files
//! are identified by the git tree id of the component's directory at HEAD,
//! which costs nothing to read; when the directory has uncommitted changes,
//! or the repository is not a git repository, by a hash of the files
//! themselves. Timeouts, retries and descriptions are left out: changing
//! them changes nothing that is deployed.

use std::io::Read;
use std::path::{Path, PathBuf};

use git2::{Repository, StatusOptions};
use sha2::{Digest, Sha256};

use crate::config::{CloudName, Component, Config, EnvName, values};

/// Directories tools create inside a component that say nothing about what
/// it deploys (provider caches, local state); left out of content hashes.
const IGNORED_DIRS: [&str; 4] = [".git", ".terraform", ".terragrunt-cache", ".orchestrator"];

/// Computes fingerprints for one repository, opening it once.
pub struct Fingerprinter {
    root: PathBuf,
    repo: Option<Repository>,
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
        let repo = Repository::discover(&root)
            .ok()
            .filter(|r| r.workdir().is_some());
        Fingerprinter { root, repo }
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
        let dir = self.root.join(component.path.expand(env, cloud));
        let files = self.git_tree(&dir).unwrap_or_else(|| content_hash(&dir));
        let values = std::fs::read(values::path(config, env, &component.name)).unwrap_or_default();
        let definition = definition(component, env, cloud);
        let mut h = Sha256::new();
        h.update(b"orchestrator-fingerprint-v1\nfiles ");
        h.update(files.as_bytes());
        h.update(b"\nvalues ");
        h.update(Sha256::digest(&values));
        h.update(b"\ndefinition ");
        h.update(definition.to_string().as_bytes());
        format!("sha256:{}", hex(&h.finalize()))
    }

    /// `git:<tree id>` of the directory at HEAD, if it is tracked and clean.
    fn git_tree(&self, dir: &Path) -> Option<String> {
        let repo = self.repo.as_ref()?;
        let workdir = std::fs::canonicalize(repo.workdir()?).ok()?;
        let rel = dir.strip_prefix(&workdir).ok()?;
        let mut opts = StatusOptions::new();
        opts.include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(false);
        if !rel.as_os_str().is_empty() {
            opts.pathspec(rel).disable_pathspec_match(false);
        }
        let dirty = repo.statuses(Some(&mut opts)).ok()?.iter().next().is_some();
        if dirty {
            return None;
        }
        let tree = repo.head().ok()?.peel_to_tree().ok()?;
        let id = if rel.as_os_str().is_empty() {
            tree.id()
        } else {
            tree.get_path(rel).ok()?.id()
        };
        Some(format!("git:{id}"))
    }
}

/// The part of a component's definition a fingerprint covers, in `env` on
/// `cloud`: runner, path, commands and environment variables, with `{env}`
/// and `{cloud}` filled in.
pub fn definition(component: &Component, env: &EnvName, cloud: &CloudName) -> serde_json::Value {
    serde_json::json!({
        "runner": component.runner.as_str(),
        "path": component.path.expand(env, cloud),
        "commands": {
            "plan": component.commands.plan.as_ref().map(|t| t.expand(env, cloud)),
            "apply": component.commands.apply.as_ref().map(|t| t.expand(env, cloud)),
            "destroy": component.commands.destroy.as_ref().map(|t| t.expand(env, cloud)),
        },
        "env": component.env,
    })
}

/// `files:<sha256>` over every file under `dir` (path, executable bit and
/// content), in sorted order so the result does not depend on the file
/// system's listing order.
fn content_hash(dir: &Path) -> String {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files);
    files.sort();
    let mut h = Sha256::new();
    let mut buf = Vec::new();
    for (rel, path) in files {
        buf.clear();
        let executable = std::fs::metadata(&path)
            .map(|m| is_executable(&m))
            .unwrap_or(false);
        if std::fs::File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .is_err()
        {
            continue;
        }
        h.update(rel.as_bytes());
        h.update([0, u8::from(executable), 0]);
        h.update((buf.len() as u64).to_le_bytes());
        h.update(&buf);
    }
    format!("files:{}", hex(&h.finalize()))
}

fn collect_files(base: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name();
        match entry.file_type() {
            Ok(t) if t.is_dir() => {
                if !IGNORED_DIRS.iter().any(|d| name == *d) {
                    collect_files(base, &path, out);
                }
            }
            Ok(_) => {
                let rel = path
                    .strip_prefix(base)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, path));
            }
            Err(_) => {}
        }
    }
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_changes_with_content_and_ignores_tool_caches() {
        let tmp = tempfile::TempDir::new().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("main.tf"), "a").unwrap();
        let first = content_hash(dir);
        std::fs::create_dir_all(dir.join(".terraform/providers")).unwrap();
        std::fs::write(dir.join(".terraform/providers/x"), "cache").unwrap();
        assert_eq!(content_hash(dir), first, ".terraform is ignored");
        std::fs::write(dir.join("main.tf"), "b").unwrap();
        assert_ne!(content_hash(dir), first);
    }
}
