//! `promote --open-pr` end to end: a bare origin served by `git daemon`
//! (pushes go through `receive-pack`, as on GitHub), a clone deployed to
//! dev with the real binary, and the fake GitHub holding the pull requests,
//! which refuses one whose branches origin does not have.

mod common;
mod fake_github;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::cargo::CommandCargoExt;
use common::{
    GitDaemon, PROMOTION_FILES, STAGING_APP, assert_contains, git, history_notes, stderr, stdout,
};
use fake_github::{FakeGitHub, TOKEN};
use serde_json::Value;
use tempfile::TempDir;

/// A bare origin holding the promotion example on `main`, served by a git
/// daemon, and a clone of it to work in.
struct Setup {
    dir: TempDir,
    _daemon: GitDaemon,
}

impl Setup {
    fn new() -> Setup {
        let dir = TempDir::new().expect("temp dir");
        let root = dir.path();
        git(root, &["init", "-q", "--bare", "-b", "main", "origin.git"]);
        let seed = root.join("seed");
        git(root, &["init", "-q", "-b", "main", "seed"]);
        for (path, text) in PROMOTION_FILES {
            let file = seed.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "-q", "-m", "components"]);
        git(&seed, &["push", "-q", "../origin.git", "main"]);
        let daemon = GitDaemon::serve(root);
        git(root, &["clone", "-q", &daemon.url("origin.git"), "work"]);
        Setup {
            dir,
            _daemon: daemon,
        }
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn origin(&self) -> PathBuf {
        self.dir.path().join("origin.git")
    }

    /// `git` in origin.
    fn at_origin(&self, args: &[&str]) -> String {
        git(&self.origin(), args).trim().to_string()
    }

    /// The promotion branches origin has.
    fn promote_branches(&self) -> Vec<String> {
        self.at_origin(&[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/promote/",
        ])
        .lines()
        .map(String::from)
        .collect()
    }

    /// Commits every change in the clone and pushes it to origin's main.
    fn commit_and_push(&self, message: &str) {
        git(&self.work(), &["commit", "-q", "-am", message]);
        git(&self.work(), &["push", "-q", "origin", "main"]);
    }
}

/// The binary in the clone, against `fake`, run by `alice` outside any
/// workflow run.
fn run(setup: &Setup, fake: &FakeGitHub, args: &[&str]) -> Output {
    command(setup, fake).args(args).output().expect("run")
}

fn command(setup: &Setup, fake: &FakeGitHub) -> std::process::Command {
    let mut cmd = std::process::Command::cargo_bin("orchestrator").expect("binary");
    cmd.current_dir(setup.work()).env("NO_COLOR", "1");
    for var in [
        "GITHUB_ACTIONS",
        "GITHUB_RUN_ID",
        "GITHUB_SERVER_URL",
        "GITHUB_EVENT_PATH",
        "GITHUB_EVENT_NAME",
        "GITHUB_ACTOR",
        "INPUT_GITHUB-TOKEN",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(fake.env(TOKEN)).env("USER", "alice");
    cmd
}

fn promote_json(setup: &Setup, fake: &FakeGitHub, more: &[&str]) -> Value {
    let mut args = vec![
        "promote",
        "--from",
        "dev",
        "--to",
        "staging",
        "--open-pr",
        "--format",
        "json",
    ];
    args.extend_from_slice(more);
    let out = run(setup, fake, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

fn deploy_dev(setup: &Setup, fake: &FakeGitHub) {
    let out = run(setup, fake, &["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap()
}

#[test]
fn open_pr_pushes_one_branch_with_one_commit_and_opens_one_pull_request_then_updates_it() {
    let setup = Setup::new();
    let fake = FakeGitHub::start();
    fake.branches_in(&setup.origin());
    deploy_dev(&setup, &fake);
    let main = setup.at_origin(&["rev-parse", "main"]);

    let doc = promote_json(&setup, &fake, &[]);
    let branch = format!("promote/dev-to-staging/{}", &main[..7]);
    assert_eq!(doc["pull_request"]["number"], 1, "{doc}");
    assert_eq!(doc["pull_request"]["result"], "created");
    assert_eq!(doc["pull_request"]["branch"], branch.as_str());
    assert_eq!(doc["written"], false);
    assert_eq!(setup.promote_branches(), [branch.as_str()]);
    assert_eq!(
        setup.at_origin(&["rev-list", "--count", &format!("main..{branch}")]),
        "1",
        "one commit on top of main"
    );
    assert_eq!(setup.at_origin(&["rev-parse", &format!("{branch}^")]), main);
    assert_eq!(
        setup.at_origin(&["diff", "--name-only", "main", &branch]),
        "environments/staging/app.yaml\nenvironments/staging/network.yaml"
    );
    assert_eq!(
        setup.at_origin(&["show", &format!("{branch}:environments/staging/app.yaml")]),
        "# app in staging\nimage_tag: \"1.5.0\"  # pinned\n\nreplicas: 3\nsigning:\n  api_key:\n    version: s3cr3t-v2"
    );
    let message = setup.at_origin(&["log", "-1", "--format=%B", &branch]);
    assert!(message.starts_with("Promote dev to staging"), "{message}");
    assert_eq!(
        read(&setup.work(), "environments/staging/app.yaml"),
        STAGING_APP,
        "the working tree is left alone"
    );

    let pulls = fake.pull_requests();
    assert_eq!(pulls.len(), 1);
    let (issue, pull) = &pulls[0];
    assert_eq!(
        (pull.head.as_str(), pull.base.as_str()),
        (branch.as_str(), "main")
    );
    assert_eq!(issue.title, "Promote dev to staging");
    let body = &issue.body;
    assert_contains(
        body,
        &[
            "<!-- orchestrator:promotion from=dev to=staging -->",
            "staging, promoted from dev: 3 changes in 2 of 2 components",
            "@@ image_tag @@",
            "### Why dev is ready",
            "| aws | 2 | `app` | succeeded |",
            "| azure | 2 | `network` | succeeded |",
            "local run",
            &format!("from commit `{}`", &main[..7]),
        ],
    );

    // dev moves on: the same pull request gets the new commit and text.
    std::fs::write(
        setup.work().join("environments/dev/app.yaml"),
        common::DEV_APP.replace("1.5.0", "1.6.0"),
    )
    .unwrap();
    setup.commit_and_push("app 1.6.0 in dev");
    deploy_dev(&setup, &fake);
    let main = setup.at_origin(&["rev-parse", "main"]);
    let doc = promote_json(&setup, &fake, &[]);
    assert_eq!(doc["pull_request"]["number"], 1, "{doc}");
    assert_eq!(doc["pull_request"]["result"], "updated");
    assert_eq!(
        setup.promote_branches(),
        [branch.as_str()],
        "the same branch"
    );
    assert_eq!(setup.at_origin(&["rev-parse", &format!("{branch}^")]), main);
    assert!(
        setup
            .at_origin(&["show", &format!("{branch}:environments/staging/app.yaml")])
            .contains("image_tag: \"1.6.0\"")
    );
    let pulls = fake.pull_requests();
    assert_eq!(pulls.len(), 1, "never a second pull request");
    assert!(pulls[0].0.body.contains("1.6.0"), "{}", pulls[0].0.body);

    // Nothing new: nothing is pushed and the pull request stays as it is.
    let tip = setup.at_origin(&["rev-parse", &branch]);
    let doc = promote_json(&setup, &fake, &[]);
    assert_eq!(doc["pull_request"]["result"], "unchanged");
    assert_eq!(setup.at_origin(&["rev-parse", &branch]), tip);

    let sent = fake.everything_sent();
    assert!(!sent.contains("s3cr3t"), "{sent}");
    assert!(!sent.contains(TOKEN));
    assert!(!message.contains("s3cr3t"), "{message}");
    let updates: Vec<String> = fake
        .received()
        .into_iter()
        .filter_map(|r| r.operation.filter(|op| op.starts_with("pulls/")))
        .filter(|op| op != "pulls/list")
        .collect();
    assert_eq!(updates, ["pulls/create", "pulls/update"]);
}

#[test]
fn a_forced_promotion_says_so_in_the_pull_request_and_the_targets_state_history() {
    let setup = Setup::new();
    let fake = FakeGitHub::start();
    fake.branches_in(&setup.origin());
    let doc = promote_json(
        &setup,
        &fake,
        &["--force", "--reason", "hotfix for INC-7, not s3cr3t-v1"],
    );
    assert_eq!(doc["override"]["reason"], "hotfix for INC-7, not ***");
    assert_eq!(doc["ready"], false);
    assert_eq!(doc["pull_request"]["result"], "created", "{doc}");
    let body = &fake.pull_requests()[0].0.body;
    assert_contains(
        body,
        &[
            "**The promotion gate was overridden** by alice: hotfix for INC-7, not ***",
            "> - dev/aws: nothing is recorded yet (no state file): deploy it first",
            "| aws | no state | `app` | never deployed |",
        ],
    );
    let state: Value = serde_json::from_str(&setup.at_origin(&[
        "show",
        "orchestrator-state:.orchestrator/state/staging-aws.json",
    ]))
    .expect("the target's state on the state branch");
    let notes = history_notes(&state);
    assert_eq!(
        notes,
        ["promotion from dev forced by alice: hotfix for INC-7, not *** (pull request #1)"]
    );
    assert!(!state.to_string().contains("s3cr3t"));
    let message = setup.at_origin(&["log", "-1", "--format=%B", "--branches=promote/*"]);
    assert!(
        message.contains("overridden by alice: hotfix for INC-7, not ***"),
        "{message}"
    );
    assert!(!fake.everything_sent().contains("s3cr3t"));
}

#[test]
fn bad_input_stops_open_pr_before_anything_is_pushed_or_sent() {
    let setup = Setup::new();
    let fake = FakeGitHub::start();
    fake.branches_in(&setup.origin());
    deploy_dev(&setup, &fake);
    let before = fake.received().len();
    let promote = ["promote", "--from", "dev", "--to", "staging", "--open-pr"];

    // A target file edited and not committed.
    let staging = setup.work().join("environments/staging/app.yaml");
    std::fs::write(&staging, format!("{STAGING_APP}# local note\n")).unwrap();
    let out = run(&setup, &fake, &promote);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("environments/staging/app.yaml has changes that are not committed"),
        "{err}"
    );
    assert!(err.contains("nothing was pushed"), "{err}");
    std::fs::write(&staging, STAGING_APP).unwrap();

    // A commit origin does not have.
    std::fs::write(setup.work().join("c/app/main.sh"), "echo app v2\n").unwrap();
    git(&setup.work(), &["commit", "-q", "-am", "not pushed"]);
    deploy_dev(&setup, &fake);
    let out = run(&setup, &fake, &promote);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has commits that origin's `main` lacks"),
        "{}",
        stderr(&out)
    );
    git(&setup.work(), &["push", "-q", "origin", "main"]);

    // No token for GitHub.
    let out = command(&setup, &fake)
        .env_remove("GITHUB_TOKEN")
        .args(promote)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no GitHub token"), "{}", stderr(&out));

    assert!(setup.promote_branches().is_empty(), "no branch was pushed");
    assert!(fake.pull_requests().is_empty());
    let sent: Vec<_> = fake.received()[before..]
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| r.path.clone())
        .collect();
    assert!(sent.is_empty(), "nothing was sent: {sent:?}");
}
