//! Helpers for end-to-end tests: a temporary repository with real files, and
//! the real `orchestrator` binary run as a child process.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use tempfile::TempDir;

/// A throwaway repository directory.
pub struct Repo {
    dir: TempDir,
}

/// A config with every component path present: network → clusters → addons,
/// dns beside clusters, and three environments.
pub const VALID: &str = "\
version: 1
defaults:
  runner: shell
  timeout: 5m
components:
  network:
    path: stacks/network
    commands: {apply: ./apply.sh}
  dns:
    path: stacks/dns
    depends_on: [network]
    commands: {apply: ./apply.sh}
  clusters:
    path: stacks/{cloud}/clusters
    depends_on: [network]
    commands: {apply: ./apply.sh}
  addons:
    runner: helm
    path: stacks/addons
    depends_on: [clusters]
environments:
  dev: {clouds: [aws, azure]}
  staging: {clouds: [aws], promote_from: dev}
  prod: {clouds: [aws], promote_from: staging, protected: true}
";

impl Repo {
    /// An empty directory.
    pub fn new() -> Repo {
        Repo {
            dir: TempDir::new().expect("temp dir"),
        }
    }

    /// A directory holding [`VALID`] and the directories it names.
    pub fn valid() -> Repo {
        let repo = Repo::new();
        repo.write("orchestrator.yaml", VALID);
        for d in [
            "stacks/network",
            "stacks/dns",
            "stacks/aws/clusters",
            "stacks/azure/clusters",
            "stacks/addons",
        ] {
            repo.mkdir(d);
        }
        repo
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file, creating its directories.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
        path
    }

    /// Creates a directory.
    pub fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.dir.path().join(rel)).expect("mkdir");
    }

    /// Runs the binary in the repository with these arguments.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::cargo_bin("orchestrator")
            .expect("binary")
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .args(args)
            .output()
            .expect("run")
    }
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The repository this crate lives in (holds the example).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs git in `dir` as a fixed author; panics with git's message on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}
