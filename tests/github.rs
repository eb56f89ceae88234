//! Failure issues and sticky comments end to end: the real binary against
//! the fake GitHub in `tests/fake_github`, which keeps issues, comments and
//! labels, and refuses any request GitHub's OpenAPI description does not
//! allow. Each test asserts what GitHub ends up holding.

mod common;
mod fake_github;

use std::process::{Child, Output, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use common::{Repo, copy_dir, project_root, stderr, stdout};
use fake_github::{ACTIONS_BOT, ACTIONS_TOKEN, FakeGitHub, Fault, READ_ONLY_TOKEN, TOKEN, USER};

/// Variables a CI runner may have set that must not leak into the binary.
const RUNNER_VARS: [&str; 9] = [
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
    "GITHUB_SERVER_URL",
    "GITHUB_EVENT_PATH",
    "GITHUB_EVENT_NAME",
    "GITHUB_ACTOR",
    "GITHUB_REPOSITORY",
    "GITHUB_TOKEN",
    "INPUT_GITHUB-TOKEN",
];

const CLUSTERS: &str = "<!-- orchestrator:failure env=dev cloud=aws component=clusters -->";

/// The orchestrator binary in `repo`, talking to `fake` with `token`, as
/// workflow run `run_id`.
fn command(repo: &Repo, fake: &FakeGitHub, token: &str, run_id: u64) -> std::process::Command {
    let mut cmd = std::process::Command::cargo_bin("orchestrator").expect("binary");
    cmd.current_dir(repo.path()).env("NO_COLOR", "1");
    for var in RUNNER_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(fake.env(token))
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_RUN_ID", run_id.to_string())
        .env("GITHUB_RUN_ATTEMPT", "1")
        .env("GITHUB_ACTOR", "octo-dev")
        .env("EXAMPLE_SPEED", "0");
    cmd
}

fn run(repo: &Repo, fake: &FakeGitHub, run_id: u64, env: &[(&str, &str)], args: &[&str]) -> Output {
    command(repo, fake, TOKEN, run_id)
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("run")
}

/// A copy of the example platform that ships with the project.
fn example() -> Repo {
    let repo = Repo::new();
    let root = project_root();
    for dir in ["environments", "examples"] {
        copy_dir(&root.join(dir), &repo.path().join(dir));
    }
    std::fs::copy(
        root.join("orchestrator.yaml"),
        repo.path().join("orchestrator.yaml"),
    )
    .expect("copy");
    repo
}

/// `apply --env dev --cloud aws --open-issue-on-failure` on the example,
/// with the components in `fail` failing.
fn apply_example(repo: &Repo, fake: &FakeGitHub, run_id: u64, fail: &str) -> Output {
    run(
        repo,
        fake,
        run_id,
        &[("EXAMPLE_FAIL", fail)],
        &[
            "apply",
            "--env",
            "dev",
            "--cloud",
            "aws",
            "--open-issue-on-failure",
        ],
    )
}

/// A repository of shell components: `(name, depends_on, apply command)`.
fn shell_repo(components: &[(&str, &[&str], &str)], extra: &str) -> Repo {
    let repo = Repo::new();
    let mut config =
        String::from("version: 1\ndefaults:\n  runner: shell\n  retries: 0\ncomponents:\n");
    for (name, deps, apply) in components {
        repo.mkdir(&format!("c/{name}"));
        config.push_str(&format!(
            "  {name}:\n    path: c/{name}\n    depends_on: [{}]\n    commands:\n      apply: {}\n",
            deps.join(", "),
            serde_json::to_string(apply).expect("json")
        ));
    }
    config.push_str("environments:\n  dev: {clouds: [aws]}\n");
    config.push_str(extra);
    repo.write("orchestrator.yaml", config);
    repo
}

fn open(issues: &[fake_github::Issue]) -> Vec<&fake_github::Issue> {
    issues.iter().filter(|i| i.state == "open").collect()
}

#[test]
fn a_first_failure_opens_one_labelled_issue_with_marker_log_and_rerun_command() {
    let fake = FakeGitHub::start();
    let repo = example();
    let out = apply_example(&repo, &fake, 1001, "clusters");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Failure issue #1 opened for clusters on dev/aws."),
        "{}",
        stderr(&out)
    );

    let issues = fake.issues_with(CLUSTERS);
    assert_eq!(issues.len(), 1, "{issues:#?}");
    let issue = &issues[0];
    assert_eq!(issue.state, "open");
    assert_eq!(issue.title, "Deployment failed: clusters on dev/aws");
    assert_eq!(issue.labels, ["orchestrator"]);
    assert_eq!(issue.author, USER);
    assert!(issue.body.starts_with(CLUSTERS), "the marker comes first");
    for fragment in [
        "[run 1001](https://github.com/acme/infra/actions/runs/1001)",
        "| Attempts | 1 |",
        "| Started by | `octo-dev` |",
        "UnsupportedAvailabilityZoneException",
        "```text\n",
        "**Skipped because of this failure:** `addons`, `monitoring`, `platform`",
        "orchestrator apply --env dev --cloud aws --components clusters --with-dependents",
    ] {
        assert!(
            issue.body.contains(fragment),
            "missing `{fragment}` in:\n{}",
            issue.body
        );
    }
    // Only the failure is reported: nothing else failed.
    assert_eq!(fake.issues().len(), 1);
    let label = fake
        .labels()
        .into_iter()
        .find(|l| l.name == "orchestrator")
        .expect("label");
    assert_eq!(label.color, "d73a4a");
    assert!(label.description.is_some());
}

#[test]
fn a_repeat_adds_a_comment_and_a_recovery_comments_and_closes() {
    let fake = FakeGitHub::start();
    let repo = example();
    assert_eq!(
        apply_example(&repo, &fake, 2001, "clusters").status.code(),
        Some(1)
    );
    let out = apply_example(&repo, &fake, 2002, "clusters");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Failure issue #1 updated: clusters on dev/aws failed again."),
        "{}",
        stderr(&out)
    );

    let issues = fake.issues_with(CLUSTERS);
    assert_eq!(issues.len(), 1, "a repeat never opens a second issue");
    let comments = fake.comments(issues[0].number);
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].body.contains("Failed again in [run 2002]"),
        "{}",
        comments[0].body
    );
    assert!(
        comments[0]
            .body
            .contains("UnsupportedAvailabilityZoneException")
    );

    // The same run reporting again (an `if: failure()` step) adds nothing.
    let out = run(
        &repo,
        &fake,
        2002,
        &[],
        &["issue", "report", "--env", "dev", "--cloud", "aws"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already has this run's report"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fake.comments(issues[0].number).len(), 1);

    let out = apply_example(&repo, &fake, 2003, "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let issue = &fake.issues_with(CLUSTERS)[0];
    assert_eq!(issue.state, "closed");
    assert_eq!(issue.state_reason.as_deref(), Some("completed"));
    let last = fake.comments(issue.number).pop().expect("recovery comment");
    assert!(
        last.body.contains("Recovered in [run 2003]"),
        "{}",
        last.body
    );
    assert!(
        last.body.contains("`clusters` succeeded on dev / aws"),
        "{}",
        last.body
    );
}

#[test]
fn each_failed_component_gets_its_own_issue() {
    let fake = FakeGitHub::start();
    let repo = example();
    assert_eq!(
        apply_example(&repo, &fake, 3001, "clusters,registry")
            .status
            .code(),
        Some(1)
    );
    let registry = "<!-- orchestrator:failure env=dev cloud=aws component=registry -->";
    assert_eq!(fake.issues_with(CLUSTERS).len(), 1);
    assert_eq!(fake.issues_with(registry).len(), 1);
    assert_eq!(fake.issues().len(), 2);
    // A later failure of one leaves the other alone.
    assert_eq!(
        apply_example(&repo, &fake, 3002, "clusters").status.code(),
        Some(1)
    );
    assert_eq!(fake.issues_with(registry)[0].state, "closed");
    assert_eq!(fake.issues_with(CLUSTERS)[0].state, "open");
}

/// A repository whose `clusters` component failed, recorded in its state,
/// for `issue report` from several processes at once.
fn failed_state() -> Repo {
    let repo = shell_repo(&[("clusters", &[], "echo boom >&2; exit 1")], "");
    let out = repo.run(&["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(1));
    repo
}

/// `issue report --env dev` as workflow run `run_id`.
fn report(repo: &Repo, fake: &FakeGitHub, run_id: u64) -> Output {
    run(
        repo,
        fake,
        run_id,
        &[],
        &["issue", "report", "--env", "dev"],
    )
}

fn spawn_report(repo: &Repo, fake: &FakeGitHub, run_id: u64) -> Child {
    command(repo, fake, ACTIONS_TOKEN, run_id)
        .args(["issue", "report", "--env", "dev"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

#[test]
fn two_jobs_reporting_the_same_failure_at_once_leave_one_open_issue_with_both_reports() {
    let fake = FakeGitHub::start();
    let repo = failed_state();
    // Both jobs' first look happens at the same moment: neither sees an issue.
    fake.hold_issue_listings(2);
    let a = spawn_report(&repo, &fake, 4001);
    let b = spawn_report(&repo, &fake, 4002);
    for child in [a, b] {
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let issues = fake.issues_with(CLUSTERS);
    let open_issues = open(&issues);
    assert_eq!(open_issues.len(), 1, "{issues:#?}");
    let kept = open_issues[0];
    for other in issues.iter().filter(|i| i.number != kept.number) {
        assert_eq!(other.state_reason.as_deref(), Some("duplicate"));
        assert_eq!(other.duplicate_of, Some(kept.number));
    }
    // Both runs' reports are on the open issue, in its body or a comment.
    let mut texts = vec![kept.body.clone()];
    texts.extend(fake.comments(kept.number).into_iter().map(|c| c.body));
    for run in ["run=4001-1", "run=4002-1"] {
        assert_eq!(
            texts.iter().filter(|t| t.contains(run)).count(),
            1,
            "{run} in {texts:#?}"
        );
    }
}

/// Reports the failed `clusters` with `faults` injected, as run `run_id`,
/// and checks that the report succeeds with exactly one issue; the fake,
/// for more checks.
fn one_issue_despite(faults: &[Fault], run_id: u64, env: &[(&str, &str)]) -> FakeGitHub {
    let fake = FakeGitHub::start();
    for fault in faults {
        fake.inject(fault.clone());
    }
    let repo = failed_state();
    let out = run(
        &repo,
        &fake,
        run_id,
        env,
        &["issue", "report", "--env", "dev"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fake.issues_with(CLUSTERS).len(), 1, "{:#?}", fake.issues());
    fake
}

fn creates(fake: &FakeGitHub) -> usize {
    fake.received()
        .iter()
        .filter(|r| r.operation.as_deref() == Some("issues/create"))
        .count()
}

#[test]
fn a_502_on_create_still_makes_exactly_one_issue() {
    // GitHub refused the first create: looked, found nothing, created again.
    let refused = Fault::Status {
        op: "issues/create",
        status: 502,
        times: 1,
    };
    assert_eq!(creates(&one_issue_despite(&[refused], 5001, &[])), 2);
    // GitHub created the issue but the answer was a 502: never resent blindly.
    let lost = Fault::StatusAfterWork {
        op: "issues/create",
        status: 502,
        times: 1,
    };
    assert_eq!(creates(&one_issue_despite(&[lost], 5002, &[])), 1);
}

#[test]
fn a_create_answered_after_the_timeout_is_not_made_twice() {
    let slow = Fault::Slow {
        op: "issues/create",
        delay: std::time::Duration::from_secs(3),
        times: 1,
    };
    let fake = one_issue_despite(&[slow], 5101, &[("ORCHESTRATOR_GITHUB_TIMEOUT", "1s")]);
    assert_eq!(creates(&fake), 1);
}

#[test]
fn server_errors_on_reads_are_retried() {
    let failing = Fault::Status {
        op: "issues/list-for-repo",
        status: 502,
        times: 2,
    };
    let fake = one_issue_despite(&[failing], 5201, &[]);
    let statuses: Vec<u16> = fake.received().iter().map(|r| r.status).take(3).collect();
    assert_eq!(statuses, [502, 502, 200]);
}

#[test]
fn a_secondary_rate_limit_is_waited_out_and_the_issue_still_opens() {
    let fake = FakeGitHub::start();
    fake.inject(Fault::SecondaryRateLimit {
        op: "issues/create",
        retry_after: 1,
        times: 1,
    });
    fake.inject(Fault::RateLimitReset {
        op: "issues/create-comment",
        reset_in: 1,
        times: 1,
    });
    let repo = failed_state();
    let out = report(&repo, &fake, 6001);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("secondary rate limit"),
        "{}",
        stderr(&out)
    );
    let issues = fake.issues_with(CLUSTERS);
    assert_eq!(issues.len(), 1);
    // A later report's comment meets the hourly limit and waits for its reset.
    let out = report(&repo, &fake, 6002);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fake.comments(issues[0].number).len(), 1);
}

#[test]
fn a_rate_limit_longer_than_allowed_fails_the_command_with_advice() {
    let fake = FakeGitHub::start();
    fake.inject(Fault::SecondaryRateLimit {
        op: "issues/create",
        retry_after: 3600,
        times: 1,
    });
    let repo = failed_state();
    let out = report(&repo, &fake, 6101);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("asks to wait 1h"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ORCHESTRATOR_GITHUB_MAX_WAIT"),
        "{}",
        stderr(&out)
    );
    assert!(fake.issues_with(CLUSTERS).is_empty());
}

#[test]
fn secrets_in_logs_and_values_never_reach_github() {
    let fake = FakeGitHub::start();
    let repo = shell_repo(
        &[(
            "db",
            &[],
            "echo \"connecting with password: hunter2-in-the-log\"; echo \"token=$GITHUB_TOKEN\"; \
             echo \"using $(cat \"$ORCHESTRATOR_CONFIG\")\"; echo \"admin $ADMIN_LOGIN\" >&2; exit 1",
        )],
        "secrets:\n  sensitive: [\"**.admin_login\"]\n",
    );
    repo.write(
        "environments/dev/db.yaml",
        "db_password: s3cr3t-from-values\nadmin_login: root-admin-login\nregion: eu-west-1\n",
    );
    let out = command(&repo, &fake, TOKEN, 7001)
        .env("ADMIN_LOGIN", "root-admin-login")
        .args(["apply", "--env", "dev", "--open-issue-on-failure"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let issue = &fake.issues_with("component=db")[0];
    assert!(issue.body.contains("password: ***"), "{}", issue.body);
    assert!(
        issue.body.contains("eu-west-1"),
        "other values stay: {}",
        issue.body
    );
    let sent = fake.everything_sent();
    for secret in [
        TOKEN,
        "hunter2-in-the-log",
        "s3cr3t-from-values",
        "root-admin-login",
    ] {
        assert!(!sent.contains(secret), "`{secret}` reached GitHub:\n{sent}");
        assert!(
            !stderr(&out).contains(secret),
            "`{secret}` reached the terminal"
        );
        let state = std::fs::read_to_string(repo.path().join(".orchestrator/state/dev-aws.json"))
            .expect("state");
        assert!(!state.contains(secret), "`{secret}` reached the state file");
    }
    let run_logs = std::fs::read_dir(repo.path().join(".orchestrator/logs")).expect("logs");
    for run in run_logs {
        let log =
            std::fs::read_to_string(run.expect("entry").path().join("aws/db.log")).expect("log");
        assert!(log.contains("password: ***"), "{log}");
        for secret in [
            TOKEN,
            "hunter2-in-the-log",
            "s3cr3t-from-values",
            "root-admin-login",
        ] {
            assert!(!log.contains(secret), "`{secret}` reached the log file");
        }
    }
}

/// tofu colours its output whether or not it goes to a terminal, and
/// progress redraws itself with carriage returns.
#[test]
fn coloured_output_and_progress_reach_the_terminal_log_and_issue_as_plain_text() {
    let fake = FakeGitHub::start();
    let repo = shell_repo(
        &[(
            "db",
            &[],
            // `\\151` is `i` and `\\062` is `2`: the command, which is shown
            // too, does not hold the text the output must not show.
            "printf 'upload\\151ng 10%%\\rupload\\151ng 55%%\\ruploading 100%%\\n' >&2; \
             printf '\\033[1mdb_password\\033[0m = \\033[32mhunter\\062-coloured\\033[0m\\n'; \
             printf '\\033[31m|\\033[0m \\033[1m\\033[31mError: \\033[0m\\033[1mUnsupported argument\\033[0m\\n'; \
             exit 1",
        )],
        "",
    );
    let out = command(&repo, &fake, TOKEN, 7101)
        .args(["apply", "--env", "dev", "--open-issue-on-failure"])
        .output()
        .expect("run");
    shown_everywhere_db_failed(
        &repo,
        &fake,
        &out,
        &[
            "| Error: Unsupported argument",
            "uploading 100%",
            "db_password = ***",
        ],
        &["\u{1b}", "\r", "uploading 10%", "hunter2-coloured"],
    );
}

/// Checks that the run `out` failed on component `db` and that the
/// terminal, the log of `db` and its failure issue each show every text of
/// `shown` and none of `hidden`.
fn shown_everywhere_db_failed(
    repo: &Repo,
    fake: &FakeGitHub,
    out: &std::process::Output,
    shown: &[&str],
    hidden: &[&str],
) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    let issue = &fake.issues_with("component=db")[0];
    let runs: Vec<_> = std::fs::read_dir(repo.path().join(".orchestrator/logs"))
        .expect("logs")
        .collect();
    assert_eq!(runs.len(), 1);
    let log = std::fs::read_to_string(runs[0].as_ref().expect("entry").path().join("aws/db.log"))
        .expect("log");
    for (place, text) in [
        ("the terminal", stderr(out)),
        ("the log", log),
        ("the issue", issue.body.clone()),
    ] {
        for shown in shown {
            assert!(text.contains(shown), "`{shown}` not in {place}:\n{text}");
        }
        for hidden in hidden {
            assert!(
                !text.contains(hidden),
                "`{}` in {place}:\n{text}",
                hidden.escape_debug()
            );
        }
    }
}

/// Credentials CI hands to the job, and a component's own secret-looking
/// `env`, are masked wherever the output goes, like secret values.
#[test]
fn secret_variables_a_component_echoes_are_masked_in_the_terminal_log_and_issue() {
    let fake = FakeGitHub::start();
    let repo = shell_repo(
        &[(
            "db",
            &[],
            "echo \"login -p $ARM_CLIENT_SECRET\"; echo \"using ${DB_TOKEN} now\"; \
             echo \"rotate $TF_VAR_rotate_keys\"; exit 1",
        )],
        "",
    );
    let config = std::fs::read_to_string(repo.path().join("orchestrator.yaml")).expect("config");
    repo.write(
        "orchestrator.yaml",
        config.replace(
            "    path: c/db\n",
            "    path: c/db\n    env: {DB_TOKEN: \"db-token-{env}-4f9a\"}\n",
        ),
    );
    let out = command(&repo, &fake, TOKEN, 7102)
        .env("ARM_CLIENT_SECRET", "Xq8~client.secret")
        .env("TF_VAR_rotate_keys", "true")
        .args(["apply", "--env", "dev", "--open-issue-on-failure"])
        .output()
        .expect("run");
    shown_everywhere_db_failed(
        &repo,
        &fake,
        &out,
        &["login -p ***", "using *** now", "rotate true"],
        &["Xq8~client.secret", "db-token-dev-4f9a"],
    );
}

#[test]
fn an_enterprise_server_url_with_api_v3_works() {
    let fake = FakeGitHub::start_enterprise();
    assert!(fake.url().ends_with("/api/v3"));
    let repo = example();
    let out = apply_example(&repo, &fake, 8001, "clusters");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(fake.issues_with(CLUSTERS).len(), 1);
    assert!(
        fake.received().iter().all(|r| r.operation.is_some()),
        "{:#?}",
        fake.received()
    );
}

#[test]
fn when_github_cannot_be_reached_the_run_keeps_its_exit_code_and_warns() {
    let fake = FakeGitHub::start();
    let repo = shell_repo(&[("a", &[], "true"), ("b", &[], "exit 1")], "");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let out = command(&repo, &fake, TOKEN, 9001)
        .env("GITHUB_API_URL", &url)
        .args(["apply", "--env", "dev", "--open-issue-on-failure"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the component failed: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("warning: failure issues were not updated"),
        "{}",
        stderr(&out)
    );

    let ok = shell_repo(&[("a", &[], "true")], "");
    let out = command(&ok, &fake, TOKEN, 9002)
        .env("GITHUB_API_URL", &url)
        .args([
            "apply",
            "--env",
            "dev",
            "--open-issue-on-failure",
            "--format",
            "json",
        ])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "success stays success: {}",
        stderr(&out)
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(doc["result"], "succeeded");
}

#[test]
fn a_token_without_issue_permission_fails_with_the_permissions_to_add() {
    let fake = FakeGitHub::start();
    let repo = failed_state();
    let out = command(&repo, &fake, READ_ONLY_TOKEN, 9101)
        .args(["issue", "report", "--env", "dev"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("GitHub answered 403 to POST /repos/acme/infra/issues: Resource not accessible by integration"), "{err}");
    assert!(err.contains("issues: write"), "{err}");
}

#[test]
fn a_fork_pull_requests_read_only_token_only_warns() {
    let fake = FakeGitHub::start();
    let repo = failed_state();
    let event = repo.write(
        "event.json",
        serde_json::json!({"pull_request": {"number": 7,
            "head": {"repo": {"full_name": "someone/infra", "fork": true}},
            "base": {"repo": {"full_name": "acme/infra"}}}})
        .to_string(),
    );
    let out = command(&repo, &fake, READ_ONLY_TOKEN, 9201)
        .env("GITHUB_EVENT_PATH", &event)
        .args(["issue", "report", "--env", "dev"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pull request from a fork"),
        "{}",
        stderr(&out)
    );
    assert!(fake.issues().is_empty());
}

#[test]
fn issue_resolve_closes_what_the_state_records_as_recovered() {
    let fake = FakeGitHub::start();
    let repo = failed_state();
    assert_eq!(report(&repo, &fake, 9301).status.code(), Some(0));
    assert_eq!(open(&fake.issues_with(CLUSTERS)).len(), 1);
    // Nothing recovered yet: resolve leaves the issue open.
    let out = run(
        &repo,
        &fake,
        9302,
        &[],
        &["issue", "resolve", "--env", "dev", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{\n  \"issues\": []\n}\n");
    let out = repo.run(&[
        "state",
        "set",
        "--env",
        "dev",
        "--component",
        "clusters",
        "--status",
        "succeeded",
        "--reason",
        "fixed by hand",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(
        &repo,
        &fake,
        9303,
        &[],
        &["issue", "resolve", "--env", "dev"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fake.issues_with(CLUSTERS)[0].state, "closed");
}

#[test]
fn without_a_token_the_issue_commands_say_how_to_give_one() {
    let fake = FakeGitHub::start();
    let repo = failed_state();
    let out = command(&repo, &fake, TOKEN, 9401)
        .env_remove("GITHUB_TOKEN")
        .args(["issue", "report", "--env", "dev"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no GitHub token"), "{}", stderr(&out));
    assert!(fake.received().is_empty());
}

fn comment(repo: &Repo, fake: &FakeGitHub, token: &str, pr: u64, body: &str) -> Output {
    let file = repo.write("comment.md", body);
    command(repo, fake, token, 10_001)
        .args(["comment", "--pr", &pr.to_string(), "--body-file"])
        .arg(file)
        .args(["--key", "config-diff", "--format", "json"])
        .output()
        .expect("run")
}

#[test]
fn a_sticky_comment_is_created_once_then_updated_in_place() {
    let fake = FakeGitHub::start();
    let repo = shell_repo(&[("a", &[], "true")], "");
    let pr = fake.open_pull_request("Bump the cluster version");
    // Someone quoting our marker must not have their comment taken over.
    let quoted = fake.add_comment(
        pr,
        "reviewer",
        "<!-- orchestrator:comment key=config-diff -->\nlooks odd",
    );

    let out = comment(&repo, &fake, ACTIONS_TOKEN, pr, "first version");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(doc["result"], "created");

    let out = comment(&repo, &fake, ACTIONS_TOKEN, pr, "second version");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = comment(&repo, &fake, ACTIONS_TOKEN, pr, "second version");
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(doc["result"], "unchanged");

    let ours: Vec<_> = fake
        .comments(pr)
        .into_iter()
        .filter(|c| c.author == ACTIONS_BOT)
        .collect();
    assert_eq!(ours.len(), 1, "never a second comment");
    assert!(ours[0].body.ends_with("second version"), "{}", ours[0].body);
    assert_eq!(ours[0].edits, 1);
    let theirs = fake
        .comments(pr)
        .into_iter()
        .find(|c| c.id == quoted)
        .expect("kept");
    assert!(theirs.body.ends_with("looks odd"));
    let updates: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.path.starts_with("/repos/acme/infra/issues/comments/"))
        .map(|r| r.method)
        .collect();
    assert_eq!(
        updates,
        ["PATCH"],
        "updated with PATCH, as GitHub documents"
    );
}

#[test]
fn a_200_kb_comment_is_cut_to_the_limit_with_a_note() {
    let fake = FakeGitHub::start();
    let repo = shell_repo(&[("a", &[], "true")], "");
    let pr = fake.open_pull_request("Huge change");
    let body = format!(
        "```diff\n{}```\n",
        "+ a line of a very large diff, again and again ✓\n".repeat(4200)
    );
    assert!(body.chars().count() > 200_000);
    let out = comment(&repo, &fake, TOKEN, pr, &body);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stored = &fake.comments(pr)[0];
    assert!(
        stored.body.chars().count() <= fake_github::MAX_BODY,
        "{}",
        stored.body.chars().count()
    );
    assert!(
        stored
            .body
            .starts_with("<!-- orchestrator:comment key=config-diff -->")
    );
    assert!(
        stored
            .body
            .contains("Cut to fit GitHub's limit of 65536 characters"),
        "note"
    );
    assert!(
        stored
            .body
            .contains("(https://github.com/acme/infra/actions/runs/10001)"),
        "run link"
    );
}

#[test]
fn a_body_github_still_finds_too_long_is_cut_harder_and_sent_again() {
    let fake = FakeGitHub::start();
    let repo = shell_repo(&[("a", &[], "true")], "");
    let pr = fake.open_pull_request("Change");
    fake.inject(Fault::TooLong {
        op: "issues/create-comment",
        times: 1,
    });
    let out = comment(&repo, &fake, TOKEN, pr, &"x".repeat(10_000));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stored = fake.comments(pr);
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].body.chars().count() <= 5_100,
        "{}",
        stored[0].body.chars().count()
    );
    assert!(stored[0].body.contains("Cut to fit"));
}

#[test]
fn comment_takes_the_pull_request_from_the_event_and_needs_one() {
    let fake = FakeGitHub::start();
    let repo = shell_repo(&[("a", &[], "true")], "");
    let pr = fake.open_pull_request("Change");
    let mut event: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project_root().join("tests/fixtures/pull_request.opened.json"))
            .expect("fixture"),
    )
    .expect("json");
    event["pull_request"]["number"] = serde_json::json!(pr);
    let event = repo.write("event.json", event.to_string());
    let file = repo.write("c.md", "hello");
    let out = command(&repo, &fake, TOKEN, 11_001)
        .env("GITHUB_EVENT_PATH", &event)
        .args(["comment", "--body-file"])
        .arg(&file)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fake.comments(pr).len(), 1);

    let out = command(&repo, &fake, TOKEN, 11_002)
        .args(["comment", "--body-file"])
        .arg(&file)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no pull request to comment on"));
}

/// Sends one raw HTTP/1.1 request to the fake and returns the status.
fn raw(fake: &FakeGitHub, method: &str, path: &str, token: Option<&str>, body: &str) -> u16 {
    use std::io::{Read, Write};
    let url = fake.url();
    let host = url.trim_start_matches("http://");
    let (addr, prefix) = host
        .split_once('/')
        .map_or((host, String::new()), |(a, p)| (a, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {prefix}{path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line")
}

#[test]
fn the_fake_refuses_requests_github_would_not_accept() {
    let fake = FakeGitHub::start();
    let issues = "/repos/acme/infra/issues";
    // The shapes GitHub documents are accepted.
    assert_eq!(
        raw(
            &fake,
            "POST",
            issues,
            Some(TOKEN),
            r#"{"title": "t", "body": "b"}"#
        ),
        201
    );
    assert_eq!(
        raw(
            &fake,
            "GET",
            "/repos/acme/infra/issues?state=open&labels=x&per_page=100",
            Some(TOKEN),
            ""
        ),
        200
    );
    // Anything else is refused.
    assert_eq!(
        raw(&fake, "POST", issues, Some(TOKEN), r#"{"titel": "t"}"#),
        422,
        "misspelt field"
    );
    assert_eq!(
        raw(
            &fake,
            "POST",
            issues,
            Some(TOKEN),
            r#"{"title": "t", "labels": "a"}"#
        ),
        422,
        "wrong type"
    );
    assert_eq!(raw(&fake, "POST", issues, Some(TOKEN), "{not json"), 400);
    assert_eq!(
        raw(
            &fake,
            "GET",
            "/repos/acme/infra/issues?label=x",
            Some(TOKEN),
            ""
        ),
        400,
        "unknown parameter"
    );
    assert_eq!(
        raw(
            &fake,
            "GET",
            "/repos/acme/infra/issues?state=shut",
            Some(TOKEN),
            ""
        ),
        422,
        "not in the enum"
    );
    assert_eq!(
        raw(
            &fake,
            "PATCH",
            "/repos/acme/infra/issues/1",
            Some(TOKEN),
            r#"{"state_reason": "fixed"}"#
        ),
        422
    );
    // octocrab's update_comment sends POST; GitHub documents PATCH.
    assert_eq!(
        raw(
            &fake,
            "POST",
            "/repos/acme/infra/issues/comments/1",
            Some(TOKEN),
            r#"{"body": "x"}"#
        ),
        404
    );
    assert_eq!(
        raw(
            &fake,
            "GET",
            "/repos/acme/infra/issues/abc",
            Some(TOKEN),
            ""
        ),
        422,
        "not an issue number"
    );
    assert_eq!(raw(&fake, "GET", issues, None, ""), 401);
    assert_eq!(raw(&fake, "GET", issues, Some("ghp_wrong"), ""), 401);
    assert_eq!(
        raw(&fake, "GET", "/repos/someone/else/issues", Some(TOKEN), ""),
        404
    );
    assert_eq!(raw(&fake, "GET", "/no/such/route", Some(TOKEN), ""), 404);
    let long = serde_json::json!({"title": "t", "body": "x".repeat(65_537)}).to_string();
    assert_eq!(
        raw(&fake, "POST", issues, Some(TOKEN), &long),
        422,
        "Body is too long"
    );
    assert_eq!(
        fake.issues().len(),
        1,
        "only the valid create made an issue"
    );

    // Without /api/v3 an Enterprise Server has nothing there.
    let ghes = FakeGitHub::start_enterprise();
    assert_eq!(
        raw(&ghes, "GET", "/repos/acme/infra/issues", Some(TOKEN), ""),
        200
    );
    let bare = ghes.url().trim_end_matches("/api/v3").to_string();
    let mut stream =
        std::net::TcpStream::connect(bare.trim_start_matches("http://")).expect("connect");
    use std::io::{Read, Write};
    write!(stream, "GET /repos/acme/infra/issues HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n").expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}
