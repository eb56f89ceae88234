//! `orchestrator promote` through the real binary: the gate against real
//! state (produced by `apply` in a git repository), the plan, and `--write`
//! editing values files in place.

mod common;

use std::process::{Command, Output};

use common::{PROMOTION_FILES, Repo, STAGING_APP, STAGING_NETWORK, git, stderr, stdout};
use orchestrator_action::config::{CloudName, EnvName};
use orchestrator_action::state::store;
use serde_json::{Value, json};

/// A git repository with two shell components and their values in dev and
/// staging, committed.
fn repo() -> Repo {
    let repo = Repo::new();
    for (path, text) in PROMOTION_FILES {
        repo.write(path, text);
    }
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-qm", "components"]);
    repo
}

fn deployed() -> Repo {
    let repo = repo();
    let out = repo.run(&["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    repo
}

fn run_with(repo: &Repo, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("orchestrator"));
    cmd.current_dir(repo.path())
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_ACTOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args).output().expect("run")
}

/// `promote --format json` with more arguments: exit code and document.
fn promote_json(repo: &Repo, more: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["promote", "--format", "json"];
    args.extend_from_slice(more);
    let out = repo.run(&args);
    let doc = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)));
    (out.status.code(), doc)
}

fn reasons(doc: &Value) -> Vec<String> {
    doc["not_ready"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_string())
        .collect()
}

fn read(repo: &Repo, rel: &str) -> String {
    std::fs::read_to_string(repo.path().join(rel)).unwrap()
}

const DEV_TO_STAGING: [&str; 4] = ["--from", "dev", "--to", "staging"];

#[test]
fn the_gate_refuses_an_environment_nothing_was_deployed_to() {
    let repo = repo();
    let out = repo.run(&["promote", "--from", "dev", "--to", "staging", "--write"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "dev is not ready to be promoted to staging:\n  \
         - dev/aws: nothing is recorded yet (no state file): deploy it first\n  \
         - dev/azure: nothing is recorded yet (no state file): deploy it first\n\
         Deploy dev until every component succeeds at its current inputs, or pass --force --reason \"...\" to promote anyway.\n"
    );
    assert_eq!(read(&repo, "environments/staging/app.yaml"), STAGING_APP);
}

#[test]
fn the_gate_opens_once_every_component_succeeded_at_its_current_inputs() {
    let repo = deployed();
    let (code, doc) = promote_json(&repo, &DEV_TO_STAGING);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(doc["ready"], true);
    assert_eq!(doc["not_ready"], json!([]));
    assert_eq!(doc["written"], false);
    assert_eq!(
        doc["files"],
        json!([
            "environments/staging/app.yaml",
            "environments/staging/network.yaml"
        ])
    );
}

#[test]
fn the_gate_names_a_failed_component_a_stale_one_and_a_held_lock() {
    let repo = deployed();
    let out = repo.run(&[
        "state",
        "set",
        "--env",
        "dev",
        "--cloud",
        "azure",
        "--component",
        "app",
        "--status",
        "failed",
        "--reason",
        "broke",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    repo.write(
        "environments/dev/network.yaml",
        "cidr: 10.10.0.0/16\nversion: 3\n",
    );
    let (env, cloud) = (
        EnvName::parse("dev").unwrap(),
        CloudName::parse("aws").unwrap(),
    );
    let path = repo.path().join(".orchestrator/state/dev-aws.json");
    let mut state = store::read(&path, &env, &cloud).unwrap().unwrap();
    state.lock = Some(
        serde_json::from_value(json!({"holders": [{
            "actor": "octocat", "attempt": 1, "components": null,
            "expires_at": "2999-01-01T00:00:00Z", "host": "runner-7", "pid": null,
            "run": 42, "started_at": "2026-11-22T10:00:00Z", "url": null
        }]}))
        .unwrap(),
    );
    store::write(&path, &state).unwrap();

    let (code, doc) = promote_json(&repo, &[&DEV_TO_STAGING[..], &["--write"]].concat());
    assert_eq!(code, Some(1));
    assert_eq!(
        reasons(&doc),
        [
            "dev/aws: a run holds the state lock (run 42 (attempt 1) by octocat on runner-7, holding the whole environment since 2026-11-22T10:00:00Z, until 2999-01-01T00:00:00Z)",
            "dev/aws: network changed since it last succeeded (its files, values or definition): deploy it first",
            "dev/azure: app failed",
            "dev/azure: network changed since it last succeeded (its files, values or definition): deploy it first",
        ]
    );
    let kinds: Vec<&str> = doc["not_ready"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["lock_held", "stale", "failed", "stale"]);
    assert_eq!(doc["written"], false);
    assert_eq!(
        read(&repo, "environments/staging/network.yaml"),
        STAGING_NETWORK
    );
}

#[test]
fn the_gate_refuses_a_target_that_is_not_promoted_from_the_source() {
    let repo = deployed();
    let (code, doc) = promote_json(&repo, &["--from", "dev", "--to", "prod"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        reasons(&doc),
        ["prod is promoted from staging, not from dev"]
    );
    let (_, doc) = promote_json(&repo, &["--from", "staging", "--to", "dev"]);
    assert_eq!(
        reasons(&doc)[0],
        "dev has no promote_from: nothing is promoted into it"
    );
}

#[test]
fn only_the_selected_components_must_be_current_but_nothing_may_have_failed() {
    let repo = deployed();
    repo.write(
        "environments/dev/network.yaml",
        "cidr: 10.10.0.0/16\nversion: 3\n",
    );
    let (code, doc) = promote_json(
        &repo,
        &[&DEV_TO_STAGING[..], &["--components", "app"]].concat(),
    );
    assert_eq!(
        code,
        Some(0),
        "a stale network does not hold app back: {doc}"
    );
    repo.run(&[
        "state",
        "set",
        "--env",
        "dev",
        "--cloud",
        "aws",
        "--component",
        "network",
        "--status",
        "failed",
        "--reason",
        "broke",
    ]);
    let (code, doc) = promote_json(
        &repo,
        &[&DEV_TO_STAGING[..], &["--components", "app"]].concat(),
    );
    assert_eq!(code, Some(1));
    assert_eq!(reasons(&doc), ["dev/aws: network failed"]);
}

#[test]
fn force_with_a_reason_overrides_the_gate_and_records_who_and_why() {
    let repo = repo();
    let out = run_with(
        &repo,
        &[("USER", "alice")],
        &[
            "promote",
            "--from",
            "dev",
            "--to",
            "staging",
            "--force",
            "--reason",
            "hotfix for INC-7",
            "--write",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["ready"], false);
    assert_eq!(doc["override"]["actor"], "alice");
    assert_eq!(doc["override"]["reason"], "hotfix for INC-7");
    assert_eq!(doc["override"]["not_ready"].as_array().unwrap().len(), 2);
    assert_eq!(doc["written"], true);
    assert!(
        stderr(&out).contains("promoting anyway, forced by alice: hotfix for INC-7"),
        "{}",
        stderr(&out)
    );
    assert!(read(&repo, "environments/staging/network.yaml").contains("version: 2"));
    let state: Value =
        serde_json::from_str(&read(&repo, ".orchestrator/state/staging-aws.json")).unwrap();
    assert_eq!(
        state["history"][0]["note"],
        "promotion from dev forced by alice: hotfix for INC-7 (values files written)",
        "recorded in the target's state"
    );
}

#[test]
fn a_forced_promotion_that_writes_nothing_records_nothing() {
    let repo = repo();
    let out = repo.run(&[
        "promote", "--from", "dev", "--to", "staging", "--force", "--reason", "look",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !repo
            .path()
            .join(".orchestrator/state/staging-aws.json")
            .exists()
    );
}

#[test]
fn force_needs_a_reason_and_a_reason_needs_force() {
    let repo = repo();
    for args in [
        &["promote", "--from", "dev", "--to", "staging", "--force"][..],
        &[
            "promote", "--from", "dev", "--to", "staging", "--reason", "x",
        ][..],
        &[
            "promote", "--from", "dev", "--to", "staging", "--force", "--reason", " ",
        ][..],
    ] {
        let out = repo.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains("reason"), "{}", stderr(&out));
    }
}

#[test]
fn write_changes_only_the_promoted_values_and_keeps_every_other_byte() {
    let repo = deployed();
    let out = repo.run(&["promote", "--from", "dev", "--to", "staging", "--write"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        read(&repo, "environments/staging/app.yaml"),
        "# app in staging\nimage_tag: \"1.5.0\"  # pinned\n\nreplicas: 3\nsigning:\n  api_key:\n    version: s3cr3t-v2\n"
    );
    assert_eq!(
        read(&repo, "environments/staging/network.yaml"),
        "cidr: 10.20.0.0/16\nversion: 2\n"
    );
    let (code, doc) = promote_json(&repo, &DEV_TO_STAGING);
    assert_eq!(code, Some(0));
    assert_eq!(
        doc["summary"]["changes"], 0,
        "nothing left to promote: {doc}"
    );
    assert_eq!(doc["stays"], 2, "replicas and cidr stay");
}

#[test]
fn promotion_output_never_prints_a_secret_it_copies() {
    let repo = deployed();
    for format in ["text", "markdown", "json"] {
        let out = repo.run(&[
            "promote", "--from", "dev", "--to", "staging", "--format", format,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("signing.api_key.version"), "{text}");
        assert!(!text.contains("s3cr3t"), "{format}:\n{text}");
    }
}

#[test]
fn a_value_that_cannot_be_edited_in_place_stops_everything_before_writing() {
    let repo = repo();
    repo.write(
        "environments/staging/network.yaml",
        "base: &b {version: 1}\ncidr: 10.20.0.0/16\nversion: 1\nother: *b\n",
    );
    repo.write(
        "environments/dev/network.yaml",
        "base: {version: 1}\ncidr: 10.10.0.0/16\nversion: 2\nother: {version: 2}\n",
    );
    git(repo.path(), &["commit", "-qam", "anchors"]);
    assert_eq!(repo.run(&["apply", "--env", "dev"]).status.code(), Some(0));
    let out = repo.run(&["promote", "--from", "dev", "--to", "staging", "--write"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("environments/staging/network.yaml:1:"),
        "{err}"
    );
    assert!(err.contains("base.version"), "{err}");
    assert!(err.contains("cannot promote this value in place"), "{err}");
    assert_eq!(
        read(&repo, "environments/staging/app.yaml"),
        STAGING_APP,
        "no file was written"
    );
}

/// The shipped example, deployed to dev for real: promoting to staging must
/// change exactly the version and image-tag lines of staging's files.
#[test]
fn promoting_the_example_changes_only_version_and_image_tag_lines() {
    let repo = Repo::new();
    for entry in ["orchestrator.yaml", "environments", "examples", "schema"] {
        let status = Command::new("cp")
            .arg("-r")
            .arg(common::project_root().join(entry))
            .arg(repo.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    repo.write(".gitignore", ".orchestrator/\n");
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-qm", "example"]);
    let out = run_with(&repo, &[("EXAMPLE_SPEED", "0")], &["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let dir = repo.path().join("environments/staging");
    let mut before = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        before.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
    }
    let out = repo.run(&["promote", "--from", "dev", "--to", "staging", "--write"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let mut changed_lines = 0;
    for (path, old) in before {
        let new = std::fs::read_to_string(&path).unwrap();
        let (old_lines, new_lines): (Vec<&str>, Vec<&str>) =
            (old.lines().collect(), new.lines().collect());
        assert_eq!(old_lines.len(), new_lines.len(), "{}", path.display());
        assert_eq!(old.ends_with('\n'), new.ends_with('\n'));
        for (a, b) in old_lines.iter().zip(&new_lines) {
            if a != b {
                changed_lines += 1;
                let key = |l: &str| l.split(':').next().unwrap().trim().to_string();
                assert_eq!(key(a), key(b), "{}: {a} -> {b}", path.display());
                assert!(
                    matches!(key(a).as_str(), "version" | "image_tag"),
                    "{}: only promoted keys change: {a} -> {b}",
                    path.display()
                );
            }
        }
    }
    assert_eq!(
        changed_lines, 6,
        "2 addons versions, kubernetes, the monitoring chart, 2 image tags"
    );
    let out = repo.run(&[
        "diff", "--from", "dev", "--to", "staging", "--format", "json",
    ]);
    let doc: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["summary"]["promotable"], 0, "{doc}");
}
