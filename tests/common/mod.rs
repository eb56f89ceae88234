//! Helpers for end-to-end tests: a temporary repository with real files, and
//! the real `orchestrator` binary run as a child process.

#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

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

/// The config of promotion tests: two shell components, `network` and
/// `app`, and three environments; promotion copies versions and image tags.
pub const PROMOTION_CONFIG: &str = "\
version: 1
defaults:
  runner: shell
  retries: 0
components:
  network:
    path: c/network
    commands: {apply: \"true\"}
  app:
    path: c/app
    depends_on: [network]
    commands: {apply: \"true\"}
environments:
  dev: {clouds: [aws, azure]}
  staging: {clouds: [aws], promote_from: dev}
  prod: {clouds: [aws], promote_from: staging}
promotion:
  keys: [\"**.version\", \"**.image_tag\"]
";

pub const DEV_APP: &str = "# app in dev\nimage_tag: \"1.5.0\"\nreplicas: 1\nsigning:\n  api_key:\n    version: s3cr3t-v2\n";
pub const STAGING_APP: &str = "# app in staging\nimage_tag: \"1.4.0\"  # pinned\n\nreplicas: 3\nsigning:\n  api_key:\n    version: s3cr3t-v1\n";
pub const DEV_NETWORK: &str = "cidr: 10.10.0.0/16\nversion: 2\n";
pub const STAGING_NETWORK: &str = "cidr: 10.20.0.0/16\nversion: 1\n";

/// The files of a promotion test's repository: the config, the components,
/// and the values of dev and staging (dev's app holds a secret under
/// `signing.api_key.version`, which promotion copies).
pub const PROMOTION_FILES: [(&str, &str); 8] = [
    ("orchestrator.yaml", PROMOTION_CONFIG),
    (".gitignore", ".orchestrator/\n"),
    ("c/network/main.sh", "echo network\n"),
    ("c/app/main.sh", "echo app\n"),
    ("environments/dev/app.yaml", DEV_APP),
    ("environments/staging/app.yaml", STAGING_APP),
    ("environments/dev/network.yaml", DEV_NETWORK),
    ("environments/staging/network.yaml", STAGING_NETWORK),
];

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

    /// The binary, to be started in the repository: for runs that need
    /// more than [`Repo::run`] gives (their own environment, pipes, a
    /// signal while they run).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("orchestrator"));
        cmd.current_dir(self.dir.path()).env("NO_COLOR", "1");
        cmd
    }

    /// Runs the binary in the repository with these arguments.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run")
    }
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that `text` holds each of `parts`, naming the one it lacks.
pub fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} not in:\n{text}");
    }
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Each component of a `plan --format json` document (one cloud) with its
/// action, in plan order.
pub fn plan_actions(plan: &serde_json::Value) -> Vec<(String, String)> {
    plan["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("a name").to_string(),
                c["action"].as_str().expect("an action").to_string(),
            )
        })
        .collect()
}

/// The notes in a state document's history, oldest first.
pub fn history_notes(state: &serde_json::Value) -> Vec<&str> {
    state["history"]
        .as_array()
        .expect("a history")
        .iter()
        .filter_map(|h| h["note"].as_str())
        .collect()
}

/// The repository this crate lives in (holds the example).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs git in `dir` as a fixed identity, and returns its standard output;
/// panics when it fails.
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

/// `git daemon` serving the repositories under a directory over git's
/// smart protocol, as GitHub serves them over https: pushes go through
/// `receive-pack`, which runs the hooks and checks each ref's old value.
/// Stops when dropped.
pub struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    /// Serves every repository under `base`.
    pub fn serve(base: &Path) -> GitDaemon {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // A group of its own: `git daemon` forks a worker per connection
        // and a listener, and the whole group goes when the test ends.
        let child = std::process::Command::new("git")
            .process_group(0)
            .arg("daemon")
            .args(["--reuseaddr", "--export-all", "--enable=receive-pack"])
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon");
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        GitDaemon { child, port }
    }

    /// The URL of repository `name` (a path under the base).
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
