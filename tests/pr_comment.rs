//! `comment` on pull requests end to end: GitHub's own `pull_request`
//! payloads (`opened`, `synchronize`), rewritten to name the commits of a
//! temporary repository (a bare origin and clones of it, one shallow as
//! actions/checkout makes them), and the fake GitHub holding the comment.

mod common;
mod fake_github;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::cargo::CommandCargoExt;
use common::{GitDaemon, PROMOTION_FILES, assert_contains, git, project_root, stderr, stdout};
use fake_github::{ACTIONS_BOT, ACTIONS_TOKEN, FakeGitHub, READ_ONLY_TOKEN};
use serde_json::{Value, json};
use tempfile::TempDir;

/// A bare origin whose `main` holds the promotion example, and a clone.
struct Setup {
    dir: TempDir,
    daemon: GitDaemon,
}

impl Setup {
    fn new() -> Setup {
        let dir = TempDir::new().expect("temp dir");
        let root = dir.path();
        git(root, &["init", "-q", "--bare", "-b", "main", "origin.git"]);
        // GitHub serves any commit a branch or pull request reaches by its
        // id, as actions/checkout relies on.
        git(
            &root.join("origin.git"),
            &["config", "uploadpack.allowReachableSHA1InWant", "true"],
        );
        git(root, &["init", "-q", "-b", "main", "work"]);
        let work = root.join("work");
        for (path, text) in PROMOTION_FILES {
            write(&work, path, text);
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "components"]);
        git(&work, &["remote", "add", "origin", "../origin.git"]);
        git(&work, &["push", "-q", "origin", "main"]);
        let daemon = GitDaemon::serve(root);
        Setup { dir, daemon }
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Commits everything in the clone on its branch, pushes it, and
    /// returns the commit.
    fn commit(&self, message: &str) -> String {
        git(&self.work(), &["add", "-A"]);
        git(&self.work(), &["commit", "-q", "-m", message]);
        git(&self.work(), &["push", "-q", "origin", "HEAD"]);
        git(&self.work(), &["rev-parse", "HEAD"]).trim().to_string()
    }

    /// Writes `text` to `rel` in the clone, then commits and pushes it.
    fn change(&self, rel: &str, text: &str, message: &str) -> String {
        write(&self.work(), rel, text);
        self.commit(message)
    }

    fn main(&self) -> String {
        git(&self.work(), &["rev-parse", "main"]).trim().to_string()
    }

    /// Starts the pull request's branch, `feature`, from `main`, and
    /// returns `main`'s commit: the pull request's base.
    fn branch_off(&self) -> String {
        let base = self.main();
        git(&self.work(), &["checkout", "-q", "-b", "feature"]);
        base
    }
}

/// `comment` on a pull request event (see [`event`]) with the workflow's token.
fn comment_on(
    setup: &Setup,
    fake: &FakeGitHub,
    action: &str,
    number: u64,
    base: &str,
    head: &str,
    before: Option<&str>,
) -> Output {
    comment(
        &setup.work(),
        fake,
        ACTIONS_TOKEN,
        &event(action, number, base, head, before),
    )
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// GitHub's payload of `action` (`opened`, `synchronize`), pointed at pull
/// request `number` of acme/infra from `feature` (at `head`) into `main`
/// (at `base`).
fn event(action: &str, number: u64, base: &str, head: &str, before: Option<&str>) -> Value {
    let file = project_root().join(format!("tests/fixtures/pull_request.{action}.json"));
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(event["action"], action);
    event["number"] = json!(number);
    let pr = &mut event["pull_request"];
    pr["number"] = json!(number);
    for (end, branch, sha) in [("base", "main", base), ("head", "feature", head)] {
        pr[end]["ref"] = json!(branch);
        pr[end]["sha"] = json!(sha);
        pr[end]["label"] = json!(format!("acme:{branch}"));
        pr[end]["repo"]["full_name"] = json!("acme/infra");
        pr[end]["repo"]["name"] = json!("infra");
    }
    event["repository"]["full_name"] = json!("acme/infra");
    event["repository"]["name"] = json!("infra");
    if let Some(before) = before {
        event["before"] = json!(before);
        event["after"] = json!(head);
    }
    event
}

/// `orchestrator comment --format json` in `dir` on `event`, with `token`.
fn comment(dir: &Path, fake: &FakeGitHub, token: &str, event: &Value) -> Output {
    let path = dir.join("../event.json");
    std::fs::write(&path, event.to_string()).unwrap();
    let mut cmd = std::process::Command::cargo_bin("orchestrator").expect("binary");
    cmd.current_dir(dir).env("NO_COLOR", "1");
    for var in [
        "GITHUB_ACTIONS",
        "GITHUB_RUN_ID",
        "GITHUB_ACTOR",
        "INPUT_GITHUB-TOKEN",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(fake.env(token))
        .env("GITHUB_EVENT_NAME", "pull_request")
        .env("GITHUB_EVENT_PATH", &path)
        .args(["comment", "--format", "json"])
        .output()
        .expect("run")
}

fn result(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    let doc: Value = serde_json::from_str(&stdout(out)).expect("json");
    doc["result"].as_str().unwrap_or_default().to_string()
}

/// Our comments on pull request `number`.
fn ours(fake: &FakeGitHub, number: u64) -> Vec<fake_github::Comment> {
    fake.comments(number)
        .into_iter()
        .filter(|c| c.author == ACTIONS_BOT)
        .collect()
}

/// The first push of the pull request: dev's network moves to version 3
/// and dev's app gets a new secret. Returns the base and the head.
fn first_push(setup: &Setup) -> (String, String) {
    let base = setup.branch_off();
    write(
        &setup.work(),
        "environments/dev/network.yaml",
        "cidr: 10.10.0.0/16\nversion: 3\n",
    );
    write(
        &setup.work(),
        "environments/dev/app.yaml",
        &common::DEV_APP.replace("s3cr3t-v2", "s3cr3t-v3"),
    );
    (base, setup.commit("network 3 in dev"))
}

#[test]
fn one_comment_holds_the_config_diff_and_is_updated_on_the_next_push() {
    let setup = Setup::new();
    let fake = FakeGitHub::start();
    let number = fake.open_pull_request("Network 3 in dev");
    let (base, head) = first_push(&setup);

    let opened = event("opened", number, &base, &head, None);
    assert_eq!(
        result(&comment(&setup.work(), &fake, ACTIONS_TOKEN, &opened)),
        "created"
    );
    let comments = ours(&fake, number);
    assert_eq!(comments.len(), 1);
    let body = &comments[0].body;
    assert!(
        body.starts_with(
            "<!-- orchestrator:comment key=config-diff -->\n### Configuration changes"
        )
    );
    assert_contains(
        body,
        &[
            &format!("comparing `{}` with `{}`", &base[..7], &head[..7]),
            "#### `dev`",
            "`orchestrator apply --env dev --changed` runs 2 components: `network`, `app`.",
            "| `network` | values: 1 change |",
            "| `app` | values: 1 change |",
            "```mermaid\nflowchart LR\n",
            "--> ",
            "@@ version @@\n- 2\n+ 3",
            "@@ signing.api_key.version @@\n! ± secret, value hidden",
            "Nothing changes in `staging`, `prod`.",
        ],
    );

    // The next push changes staging too: the same comment says so.
    git(&setup.work(), &["checkout", "-q", "feature"]);
    let next = setup.change(
        "environments/staging/network.yaml",
        "cidr: 10.20.0.0/16\nversion: 1\nnat_gateways: 2\n",
        "two NAT gateways in staging",
    );
    let synchronize = event("synchronize", number, &base, &next, Some(&head));
    assert_eq!(
        result(&comment(&setup.work(), &fake, ACTIONS_TOKEN, &synchronize)),
        "updated"
    );
    let comments = ours(&fake, number);
    assert_eq!(comments.len(), 1, "never a second comment");
    assert_eq!(comments[0].edits, 1);
    assert_contains(
        &comments[0].body,
        &[
            "#### `staging`",
            "@@ nat_gateways @@\n! + added\n+ 2",
            "Nothing changes in `prod`.",
        ],
    );
    assert_eq!(
        result(&comment(&setup.work(), &fake, ACTIONS_TOKEN, &synchronize)),
        "unchanged"
    );

    let sent = fake.everything_sent();
    assert!(!sent.contains("s3cr3t"), "{sent}");
    assert!(!sent.contains(ACTIONS_TOKEN));
}

#[test]
fn a_shallow_checkout_fetches_the_base_commit_it_lacks() {
    let setup = Setup::new();
    let fake = FakeGitHub::start();
    let number = fake.open_pull_request("Network 3 in dev");
    let (base, head) = first_push(&setup);
    let root = setup.dir.path();
    let url = setup.daemon.url("origin.git");
    git(
        root,
        &[
            "clone", "-q", "--depth", "1", "--branch", "feature", &url, "shallow",
        ],
    );
    let shallow = root.join("shallow");
    assert!(shallow.join(".git/shallow").exists());
    let has = |commit: &str| {
        std::process::Command::new("git")
            .current_dir(&shallow)
            .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    assert!(!has(&base), "the base commit is not in the checkout");

    let out = comment(
        &shallow,
        &fake,
        ACTIONS_TOKEN,
        &event("opened", number, &base, &head, None),
    );
    assert_eq!(result(&out), "created");
    assert!(has(&base), "fetched");
    assert_contains(
        &ours(&fake, number)[0].body,
        &["#### `dev`", "@@ version @@\n- 2\n+ 3"],
    );
}

#[test]
fn a_pull_request_that_changes_nothing_deployed_gets_no_comment_and_an_earlier_one_says_so() {
    let setup = Setup::new();
    let fake = FakeGitHub::start();
    let number = fake.open_pull_request("Docs");
    let base = setup.branch_off();
    write(&setup.work(), "README.md", "# infra\n");
    let docs = setup.commit("docs");
    let out = comment_on(&setup, &fake, "opened", number, &base, &docs, None);
    assert_eq!(result(&out), "skipped");
    assert!(fake.comments(number).is_empty());

    // A change, then its revert: the comment stays, saying nothing changes.
    let change = setup.change(
        "environments/dev/network.yaml",
        "cidr: 10.10.0.0/16\nversion: 3\n",
        "network 3",
    );
    let out = comment_on(
        &setup,
        &fake,
        "synchronize",
        number,
        &base,
        &change,
        Some(&docs),
    );
    assert_eq!(result(&out), "created");
    let revert = setup.change(
        "environments/dev/network.yaml",
        common::DEV_NETWORK,
        "back to 2",
    );
    let out = comment_on(
        &setup,
        &fake,
        "synchronize",
        number,
        &base,
        &revert,
        Some(&change),
    );
    assert_eq!(result(&out), "updated");
    let comments = ours(&fake, number);
    assert_eq!(comments.len(), 1);
    assert_contains(
        &comments[0].body,
        &["merging this pull request deploys nothing"],
    );
}

/// A module the network root uses lives outside its directory; the root
/// watches it, so a pull request changing only the module runs the network
/// and what depends on it, in every environment, and says why.
#[test]
fn a_change_to_a_watched_module_runs_the_components_watching_it() {
    let setup = Setup::new();
    let fake = FakeGitHub::start();
    write(&setup.work(), "modules/vpc/main.tf", "# vpc\n");
    write(
        &setup.work(),
        "orchestrator.yaml",
        &common::PROMOTION_CONFIG.replace(
            "    path: c/network\n",
            "    path: c/network\n    watch: [modules/vpc]\n",
        ),
    );
    setup.commit("the network watches its module");
    let number = fake.open_pull_request("A bigger VPC");
    let base = setup.branch_off();
    write(&setup.work(), "modules/vpc/main.tf", "# vpc, /16\n");
    let head = setup.commit("vpc");
    let out = comment_on(&setup, &fake, "opened", number, &base, &head, None);
    assert_eq!(result(&out), "created", "{}", stderr(&out));
    let comments = ours(&fake, number);
    for env in ["dev", "staging", "prod"] {
        assert_contains(
            &comments[0].body,
            &[
                &format!("#### `{env}`"),
                &format!(
                    "`orchestrator apply --env {env} --changed` runs 2 components: `network`, `app`."
                ),
                "| `network` | files it watches |",
            ],
        );
    }
}

#[test]
fn a_fork_pull_request_with_a_read_only_token_only_warns() {
    let setup = Setup::new();
    let fake = FakeGitHub::start();
    let number = fake.open_pull_request("From a fork");
    let (base, head) = first_push(&setup);
    let mut fork = event("opened", number, &base, &head, None);
    fork["pull_request"]["head"]["repo"]["full_name"] = json!("someone/infra");
    fork["pull_request"]["head"]["repo"]["fork"] = json!(true);
    let out = comment(&setup.work(), &fake, READ_ONLY_TOKEN, &fork);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_contains(&stderr(&out), &["pull request from a fork"]);
    assert!(fake.comments(number).is_empty());
}

#[test]
fn bad_input_is_named_and_an_invalid_configuration_is_said_in_the_comment() {
    let setup = Setup::new();
    let fake = FakeGitHub::start();
    let number = fake.open_pull_request("Typo");

    let push = {
        let mut cmd = std::process::Command::cargo_bin("orchestrator").expect("binary");
        cmd.current_dir(setup.work())
            .envs(fake.env(ACTIONS_TOKEN))
            .env("GITHUB_EVENT_NAME", "push")
            .env_remove("GITHUB_EVENT_PATH")
            .args(["comment", "--pr", &number.to_string()])
            .output()
            .expect("run")
    };
    assert_eq!(push.status.code(), Some(2));
    assert_contains(&stderr(&push), &["the `push` event is not a pull request"]);

    let base = setup.branch_off();
    let config = std::fs::read_to_string(setup.work().join("orchestrator.yaml")).unwrap();
    let head = setup.change(
        "orchestrator.yaml",
        &config.replace("depends_on: [network]", "dependson: [network]"),
        "typo",
    );
    let out = comment_on(&setup, &fake, "opened", number, &base, &head, None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_contains(
        &stderr(&out),
        &["orchestrator.yaml:", "did you mean `depends_on`?"],
    );
    let body = &ours(&fake, number)[0].body;
    assert_contains(
        body,
        &[
            "does not load",
            "unknown key `dependson`",
            "did you mean `depends_on`?",
        ],
    );
}

/// A values file that `apply` would refuse (a number JSON cannot carry) is
/// said to be invalid in the comment, at its line, rather than shown as a
/// change to `null`.
#[test]
fn a_values_number_components_could_not_get_is_said_in_the_comment() {
    let setup = Setup::new();
    let fake = FakeGitHub::start();
    let number = fake.open_pull_request("Unbounded burst");
    let base = setup.branch_off();
    let head = setup.change(
        "environments/dev/network.yaml",
        "cidr: 10.10.0.0/16\nburst: .inf\n",
        "unbounded burst in dev",
    );
    let out = comment_on(&setup, &fake, "opened", number, &base, &head, None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_contains(
        &stderr(&out),
        &[
            "environments/dev/network.yaml:2:8",
            "`.inf` has no JSON form",
        ],
    );
    let body = &ours(&fake, number)[0].body;
    assert_contains(
        body,
        &[
            "does not load",
            "`.inf` has no JSON form: components would get null (at `burst`)",
        ],
    );
}
