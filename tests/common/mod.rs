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
