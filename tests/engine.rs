//! `apply` and `destroy` end to end: the real binary running real shell
//! components in temporary repositories, with state on disk.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Repo, assert_contains, stderr, stdout};
use serde_json::Value;

/// A repository whose components are shell commands. Each entry is
/// `(name, depends_on, apply command)`; every component gets its own
/// directory and a destroy command that logs its name.
fn repo(components: &[(&str, &[&str], &str)], extra: &str) -> Repo {
    let repo = Repo::new();
    let mut config = String::from(
        "version: 1\ndefaults:\n  runner: shell\n  retries: 0\nmax_parallel: 8\ncomponents:\n",
    );
    for (name, deps, apply) in components {
        repo.mkdir(&format!("c/{name}"));
        config.push_str(&format!(
            "  {name}:\n    path: c/{name}\n    depends_on: [{}]\n    commands:\n      apply: {}\n      destroy: echo destroy {name} >> ../../destroyed.log\n{extra}",
            deps.join(", "),
            serde_json::to_string(apply).unwrap()
        ));
    }
    config.push_str("environments:\n  dev: {clouds: [aws]}\n");
    repo.write("orchestrator.yaml", config);
    repo
}

/// A command that records when it starts and ends, in nanoseconds.
fn timed(name: &str, seconds: f64) -> String {
    format!(
        "echo start {name} $(date +%s%N) >> ../../times.log; sleep {seconds}; echo end {name} $(date +%s%N) >> ../../times.log"
    )
}

fn times(repo: &Repo) -> Vec<(String, String, u128)> {
    std::fs::read_to_string(repo.path().join("times.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            (
                parts[0].to_string(),
                parts[1].to_string(),
                parts[2].parse().unwrap(),
            )
        })
        .collect()
}

fn at(times: &[(String, String, u128)], event: &str, name: &str) -> u128 {
    times
        .iter()
        .find(|(e, n, _)| e == event && n == name)
        .map(|t| t.2)
        .unwrap_or_else(|| panic!("no {event} {name} in {times:?}"))
}

fn json_run(repo: &Repo, args: &[&str]) -> (Option<i32>, Value) {
    let mut full = args.to_vec();
    full.extend(["--format", "json"]);
    let out = repo.run(&full);
    let doc = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)));
    (out.status.code(), doc)
}

fn statuses(doc: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = doc["components"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, c)| (k.clone(), c["status"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

/// The components `plan --changed` selects in dev, in plan order.
fn changed(repo: &Repo) -> Vec<String> {
    let (code, doc) = json_run(repo, &["plan", "--env", "dev", "--changed"]);
    assert_eq!(code, Some(0), "{doc}");
    doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn state(repo: &Repo) -> Value {
    serde_json::from_slice(&state_bytes(repo)).unwrap()
}

/// The state file as it is on disk, to compare before and after.
fn state_bytes(repo: &Repo) -> Vec<u8> {
    std::fs::read(repo.path().join(".orchestrator/state/dev-aws.json")).unwrap()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn dependencies_finish_before_dependents_start_and_independent_ones_overlap() {
    let repo = repo(
        &[
            ("a", &[], &timed("a", 0.4)),
            ("b", &[], &timed("b", 0.4)),
            ("c", &["a", "b"], &timed("c", 0.05)),
        ],
        "",
    );
    let (code, doc) = json_run(&repo, &["apply", "--env", "dev"]);
    assert_eq!(code, Some(0), "{doc}");
    let t = times(&repo);
    assert!(
        at(&t, "start", "c") >= at(&t, "end", "a") && at(&t, "start", "c") >= at(&t, "end", "b"),
        "{t:?}"
    );
    assert!(
        at(&t, "start", "a") < at(&t, "end", "b") && at(&t, "start", "b") < at(&t, "end", "a"),
        "a and b overlap: {t:?}"
    );
}

#[test]
fn the_result_lists_components_in_plan_order_not_the_order_they_finished() {
    // They finish b, c, a; the plan is wave by wave, by name within a wave.
    let repo = repo(
        &[
            ("a", &[], "sleep 0.4"),
            ("b", &[], "true"),
            ("c", &["b"], "true"),
        ],
        "",
    );
    let (code, doc) = json_run(&repo, &["apply", "--env", "dev"]);
    assert_eq!(code, Some(0), "{doc}");
    let names: Vec<&str> = doc["components"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["a", "b", "c"], "{doc}");
    let finished = |n: &str| {
        doc["components"][n]["finished_at"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(finished("c") <= finished("a"), "{doc}");
}

#[test]
fn sequential_runs_one_at_a_time() {
    let repo = repo(
        &[("a", &[], &timed("a", 0.2)), ("b", &[], &timed("b", 0.2))],
        "",
    );
    let (code, _) = json_run(&repo, &["apply", "--env", "dev", "--sequential"]);
    assert_eq!(code, Some(0));
    let t = times(&repo);
    assert!(at(&t, "start", "b") >= at(&t, "end", "a"), "{t:?}");
}

fn failing_diamond() -> Repo {
    // net -> bad -> after-bad ; net -> good (slow, so it is running when bad fails)
    repo(
        &[
            ("net", &[], "true"),
            ("bad", &["net"], "echo boom >&2; exit 3"),
            ("after-bad", &["bad"], "true"),
            ("good", &["net"], "sleep 0.5"),
            ("after-good", &["good"], "true"),
        ],
        "",
    )
}

#[test]
fn a_failure_skips_only_its_dependents_and_exits_1() {
    let repo = failing_diamond();
    let (code, doc) = json_run(&repo, &["apply", "--env", "dev"]);
    assert_eq!(code, Some(1));
    assert_eq!(doc["result"], "failed");
    assert_eq!(
        statuses(&doc),
        pairs(&[
            ("after-bad", "skipped"),
            ("after-good", "succeeded"),
            ("bad", "failed"),
            ("good", "succeeded"),
            ("net", "succeeded")
        ])
    );
    assert_eq!(doc["components"]["after-bad"]["error"], "bad failed");
    assert!(
        doc["components"]["bad"]["error"]
            .as_str()
            .unwrap()
            .contains("exited with code 3")
    );
}

#[test]
fn stop_lets_running_components_finish_and_starts_nothing_new() {
    let repo = failing_diamond();
    let (code, doc) = json_run(&repo, &["apply", "--env", "dev", "--on-failure", "stop"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        statuses(&doc),
        pairs(&[
            ("after-bad", "skipped"),
            ("after-good", "skipped"),
            ("bad", "failed"),
            ("good", "succeeded"),
            ("net", "succeeded")
        ])
    );
}

#[test]
fn under_a_cap_the_caps_hold_and_stop_starts_none_of_those_waiting_for_a_slot() {
    // Independent components, one at a time: while `bad` runs, the next is
    // already prepared and waiting for the slot; `bad` failing must keep it
    // from starting, and no two components may ever run at once.
    let stopped = repo(
        &[
            ("a", &[], &timed("a", 0.1)),
            (
                "bad",
                &[],
                "echo start bad $(date +%s%N) >> ../../times.log; exit 1",
            ),
            ("c", &[], &timed("c", 0.1)),
            ("d", &[], &timed("d", 0.1)),
        ],
        "",
    );
    let (code, doc) = json_run(
        &stopped,
        &[
            "apply",
            "--env",
            "dev",
            "--max-parallel",
            "1",
            "--on-failure",
            "stop",
        ],
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        statuses(&doc),
        pairs(&[
            ("a", "succeeded"),
            ("bad", "failed"),
            ("c", "skipped"),
            ("d", "skipped")
        ])
    );
    assert_eq!(
        doc["components"]["c"]["error"],
        "the run stopped after a failure"
    );
    let t = times(&stopped);
    assert!(at(&t, "start", "bad") >= at(&t, "end", "a"), "{t:?}");
    assert!(t.iter().all(|(_, n, _)| n == "a" || n == "bad"), "{t:?}");

    // With a cap of two, at most two run at any moment.
    let names = ["p", "q", "r", "s", "u"];
    let commands: Vec<String> = names.iter().map(|n| timed(n, 0.15)).collect();
    let specs: Vec<(&str, &[&str], &str)> = names
        .iter()
        .zip(&commands)
        .map(|(n, c)| (*n, &[] as &[&str], c.as_str()))
        .collect();
    let capped = repo(&specs, "");
    let (code, _) = json_run(&capped, &["apply", "--env", "dev", "--max-parallel", "2"]);
    assert_eq!(code, Some(0));
    let t = times(&capped);
    for (_, name, start) in t.iter().filter(|(e, _, _)| e == "start") {
        let running = names
            .iter()
            .filter(|n| at(&t, "start", n) <= *start && at(&t, "end", n) > *start)
            .count();
        assert!(running <= 2, "{running} running when {name} started: {t:?}");
    }
}

#[test]
fn continue_runs_dependents_of_a_failure_anyway() {
    let repo = failing_diamond();
    let (code, doc) = json_run(
        &repo,
        &["apply", "--env", "dev", "--on-failure", "continue"],
    );
    assert_eq!(code, Some(1));
    assert_eq!(doc["components"]["after-bad"]["status"], "succeeded");
}

/// A component that installs a tool its dependents run: that the tool was
/// missing when an earlier component looked for it does not stick.
#[test]
fn a_program_installed_by_a_dependency_is_found_by_its_dependents() {
    let repo = repo(
        &[
            ("early", &[], "orchestrator-test-tool"),
            (
                "tools",
                &["early"],
                "printf '#!/bin/sh\\necho tool ran\\n' > ../../bin/orchestrator-test-tool && \
                 chmod +x ../../bin/orchestrator-test-tool",
            ),
            ("late", &["tools"], "orchestrator-test-tool"),
        ],
        "",
    );
    repo.mkdir("bin");
    let path = format!(
        "{}:{}",
        repo.path().join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let out = repo
        .command()
        .env("PATH", path)
        .args(["apply", "--env", "dev", "--on-failure", "continue"])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        statuses(&doc),
        pairs(&[
            ("early", "failed"),
            ("late", "succeeded"),
            ("tools", "succeeded")
        ])
    );
    assert_eq!(
        doc["components"]["early"]["error"],
        "`orchestrator-test-tool` could not start: `orchestrator-test-tool` was not found on PATH"
    );
    assert!(
        stderr(&out)
            .lines()
            .any(|l| l.starts_with("late ") && l.ends_with("| tool ran")),
        "{}",
        stderr(&out)
    );
}

/// `orchestrator apply` in a terminal (a pseudo-terminal made by
/// `script`), with `no_color` as `NO_COLOR`: its combined output.
fn apply_in_a_terminal(repo: &Repo, no_color: bool) -> String {
    let binary = assert_cmd::cargo::cargo_bin("orchestrator");
    let mut script = Command::new("script");
    script
        .current_dir(repo.path())
        .args(["--quiet", "--return", "--command"])
        .arg(format!("{} apply --env dev", binary.display()))
        .arg("/dev/null")
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .env_remove("GITHUB_ACTIONS");
    if no_color {
        script.env("NO_COLOR", "1");
    }
    let out = script.output().expect("script (util-linux) runs");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    stdout(&out)
}

#[test]
fn in_a_terminal_statuses_are_coloured_unless_no_color_is_set() {
    let repo = repo(
        &[
            ("good", &[], "true"),
            ("bad", &[], "exit 1"),
            ("after", &["bad"], "true"),
        ],
        "",
    );
    let shown = apply_in_a_terminal(&repo, false);
    for coloured in [
        "good   \x1b[32msucceeded\x1b[0m",
        "bad    \x1b[31mfailed\x1b[0m",
        "after  \x1b[33mskipped\x1b[0m: bad failed",
        "Run \x1b[31mfailed\x1b[0m in",
    ] {
        assert!(
            shown.contains(coloured),
            "missing `{}` in:\n{}",
            coloured.escape_debug(),
            shown.escape_debug()
        );
    }
    std::fs::remove_dir_all(repo.path().join(".orchestrator")).unwrap();
    let plain = apply_in_a_terminal(&repo, true);
    assert!(plain.contains("Run failed in"), "{plain}");
    for painted in ["\x1b[32m", "\x1b[31m", "\x1b[33m"] {
        assert!(
            !plain.contains(painted),
            "NO_COLOR is set: {}",
            plain.escape_debug()
        );
    }
}

#[test]
fn a_skip_is_recorded_when_its_cause_fails_while_other_branches_still_run() {
    let repo = repo(
        &[
            ("bad", &[], "exit 1"),
            ("app", &["bad"], "true"),
            ("slow", &[], "while [ ! -f ../../go ]; do sleep 0.02; done"),
        ],
        "",
    );
    /// The run, which `slow` holds until `go` exists: written and waited
    /// for however the test ends, so no run is left waiting.
    struct Held<'a>(&'a Repo, Option<std::process::Child>);
    impl Held<'_> {
        fn finish(&mut self) -> Output {
            self.0.write("go", "");
            self.1.take().unwrap().wait_with_output().unwrap()
        }
    }
    impl Drop for Held<'_> {
        fn drop(&mut self) {
            if self.1.is_some() {
                self.finish();
            }
        }
    }
    let mut held = Held(
        &repo,
        Some(
            repo.command()
                .args(["apply", "--env", "dev", "--format", "json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ),
    );
    let path = repo.path().join(".orchestrator/state/dev-aws.json");
    let status = |state: &Value, name: &str| state["components"][name]["status"].clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        // The file is replaced whole, so every read parses.
        let state: Option<Value> = std::fs::read_to_string(&path)
            .ok()
            .map(|text| serde_json::from_str(&text).unwrap());
        if let Some(state) = state.filter(|s| status(s, "app") == "skipped") {
            break state;
        }
        assert!(Instant::now() < deadline, "app never recorded as skipped");
        std::thread::sleep(Duration::from_millis(20));
    };
    // `slow` waits for the file written below: the skip came first.
    assert_eq!(status(&seen, "slow"), "running", "{seen}");
    assert_eq!(seen["components"]["app"]["error"], "bad failed");
    let out = held.finish();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        statuses(&doc),
        pairs(&[("app", "skipped"), ("bad", "failed"), ("slow", "succeeded")])
    );
}

#[test]
fn a_second_apply_does_nothing_and_resume_runs_only_what_did_not_succeed() {
    let repo = repo(
        &[
            ("net", &[], "echo net >> ../../ran.log"),
            (
                "flaky",
                &["net"],
                "echo flaky >> ../../ran.log; test -f ../../fixed",
            ),
            ("app", &["flaky"], "echo app >> ../../ran.log"),
        ],
        "",
    );
    let (code, _) = json_run(&repo, &["apply", "--env", "dev"]);
    assert_eq!(code, Some(1));
    assert_eq!(state(&repo)["components"]["app"]["status"], "skipped");
    repo.write("fixed", "");
    let (code, doc) = json_run(&repo, &["apply", "--env", "dev"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        statuses(&doc),
        pairs(&[("app", "succeeded"), ("flaky", "succeeded")])
    );
    assert_eq!(doc["components"]["flaky"]["action"], "update");
    // Skipped before it ever ran: this is its first deployment.
    assert_eq!(doc["components"]["app"]["action"], "create");
    let ran = std::fs::read_to_string(repo.path().join("ran.log")).unwrap();
    assert_eq!(ran, "net\nflaky\nflaky\napp\n");
    let (code, doc) = json_run(&repo, &["apply", "--env", "dev"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        doc["components"],
        serde_json::json!({}),
        "nothing left to do"
    );
}

#[test]
fn changed_selects_the_edited_component_and_its_dependents_only() {
    let repo = repo(
        &[
            ("net", &[], "true"),
            ("dns", &["net"], "true"),
            ("app", &["dns"], "true"),
            ("other", &["net"], "true"),
        ],
        "",
    );
    assert_eq!(json_run(&repo, &["apply", "--env", "dev"]).0, Some(0));
    repo.write("environments/dev/dns.yaml", "zone: example.com\n");
    let (code, doc) = json_run(&repo, &["plan", "--env", "dev", "--changed"]);
    assert_eq!(code, Some(0));
    let planned: Vec<(&str, &str)> = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["action"].as_str().unwrap()))
        .collect();
    assert_eq!(planned, [("dns", "update"), ("app", "update")]);
    let (code, doc) = json_run(&repo, &["apply", "--env", "dev", "--changed"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        statuses(&doc),
        pairs(&[("app", "succeeded"), ("dns", "succeeded")])
    );
}

#[test]
fn in_a_git_repository_changes_are_found_per_directory_committed_or_not() {
    let repo = repo(
        &[
            ("net", &[], "true"),
            ("net2", &[], "true"),
            ("app", &["net"], "true"),
        ],
        "",
    );
    for name in ["net", "net2", "app"] {
        repo.write(&format!("c/{name}/main.tf"), format!("# {name}\n"));
    }
    common::git(repo.path(), &["init", "-q", "-b", "main"]);
    common::git(repo.path(), &["add", "-A"]);
    common::git(repo.path(), &["commit", "-q", "-m", "components"]);
    assert_eq!(json_run(&repo, &["apply", "--env", "dev"]).0, Some(0));
    let fingerprint = |name: &str| state(&repo)["components"][name]["fingerprint"].clone();
    let before = fingerprint("net");
    assert!(changed(&repo).is_empty(), "nothing changed yet");

    // An untracked file under c/net2 changes net2 only, although "c/net" is
    // a prefix of its path.
    repo.write("c/net2/extra.tf", "# new\n");
    assert_eq!(changed(&repo), ["net2"]);

    // An uncommitted edit, then the same edit committed: both change net
    // and its dependent, and the committed one is recorded by tree id.
    repo.write("c/net/main.tf", "# net, edited\n");
    assert_eq!(changed(&repo), ["net", "net2", "app"]);
    common::git(repo.path(), &["add", "-A"]);
    common::git(repo.path(), &["commit", "-q", "-m", "edit net"]);
    assert_eq!(changed(&repo), ["net", "net2", "app"]);
    assert_eq!(json_run(&repo, &["apply", "--env", "dev"]).0, Some(0));
    assert_ne!(fingerprint("net"), before);
    assert!(changed(&repo).is_empty(), "all applied");
}

/// The local modules a root uses live outside its directory: what it
/// watches is part of it, a file or a directory, in a repository or not.
#[test]
fn a_change_in_a_watched_module_or_file_changes_the_components_watching_it() {
    let repo = repo(
        &[
            ("net", &[], "true"),
            ("app", &["net"], "true"),
            ("dns", &[], "true"),
        ],
        "",
    );
    repo.write("modules/vpc/main.tf", "# vpc\n");
    repo.write("scripts/common.sh", "# common\n");
    let config = std::fs::read_to_string(repo.path().join("orchestrator.yaml")).unwrap();
    let config = config
        .replace(
            "  retries: 0\n",
            "  retries: 0\n  watch: [scripts/common.sh]\n",
        )
        .replace(
            "    path: c/net\n",
            "    path: c/net\n    watch: [modules/vpc]\n",
        );
    repo.write("orchestrator.yaml", &config);
    let changed = || changed(&repo);
    let apply = || assert_eq!(json_run(&repo, &["apply", "--env", "dev"]).0, Some(0));
    apply();
    assert!(changed().is_empty());
    repo.write("modules/vpc/main.tf", "# vpc, edited\n");
    assert_eq!(changed(), ["net", "app"]);
    apply();
    repo.write("scripts/common.sh", "# common, edited\n");
    assert_eq!(changed(), ["dns", "net", "app"]);
    apply();

    // In a repository: the committed module, then an edit to it.
    common::git(repo.path(), &["init", "-q", "-b", "main"]);
    repo.write(".gitignore", ".orchestrator/\n");
    common::git(repo.path(), &["add", "-A"]);
    common::git(repo.path(), &["commit", "-q", "-m", "all"]);
    apply();
    assert!(changed().is_empty());
    repo.write("modules/vpc/main.tf", "# vpc, edited again\n");
    common::git(repo.path(), &["commit", "-q", "-am", "vpc"]);
    assert_eq!(changed(), ["net", "app"]);

    // A watched path that is not there is a mistake, named where written.
    repo.write(
        "orchestrator.yaml",
        config.replace("watch: [modules/vpc]", "watch: [modules/vcp]"),
    );
    let out = repo.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let said = common::stderr(&out);
    assert!(said.contains("path `modules/vcp` does not exist"), "{said}");
    assert!(said.contains("components.net.watch[0]"), "{said}");
}

/// A component directory that links to a shared one (one root for several
/// stacks) changes when the files it links to change.
#[test]
fn a_component_whose_directory_is_a_link_changes_with_what_it_links_to() {
    let repo = repo(&[("net", &[], "true")], "");
    std::fs::remove_dir(repo.path().join("c/net")).unwrap();
    repo.write("shared/net/main.tf", "# one\n");
    std::os::unix::fs::symlink("../shared/net", repo.path().join("c/net")).unwrap();
    repo.write(".gitignore", ".orchestrator/\n");
    common::git(repo.path(), &["init", "-q", "-b", "main"]);
    common::git(repo.path(), &["add", "-A"]);
    common::git(repo.path(), &["commit", "-q", "-m", "linked"]);
    assert_eq!(json_run(&repo, &["apply", "--env", "dev"]).0, Some(0));
    assert!(changed(&repo).is_empty());
    repo.write("shared/net/main.tf", "# two\n");
    common::git(
        repo.path(),
        &["commit", "-q", "-am", "edit the shared root"],
    );
    assert_eq!(changed(&repo), ["net"]);
}

#[test]
fn scratch_directories_of_killed_runs_are_removed_and_a_finished_run_leaves_none() {
    let repo = repo(&[("net", &[], "test -s \"$ORCHESTRATOR_CONFIG\"")], "");
    repo.write("environments/dev/net.yaml", "password: hunter2\n");
    let tmp = tempfile::TempDir::new().unwrap();
    // A process that has exited and been reaped: its id names no process.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let abandoned = tmp.path().join(format!("orchestrator-run-{dead}-AbCdEf"));
    std::fs::create_dir_all(abandoned.join("aws")).unwrap();
    std::fs::write(
        abandoned.join("aws/net.values.json"),
        "{\"password\":\"hunter2\"}",
    )
    .unwrap();
    let running = tmp
        .path()
        .join(format!("orchestrator-run-{}-GhIjKl", std::process::id()));
    std::fs::create_dir_all(&running).unwrap();
    let unrelated = tmp.path().join("orchestrator-run-notes");
    std::fs::create_dir_all(&unrelated).unwrap();
    // A live run whose id names no process here (it runs in another PID
    // namespace sharing the directory): its lock says it is in use.
    let elsewhere = tmp.path().join(format!("orchestrator-run-{dead}-MnOpQr"));
    std::fs::create_dir_all(&elsewhere).unwrap();
    let _held = nix::fcntl::Flock::lock(
        std::fs::File::create(elsewhere.join(".in-use")).unwrap(),
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .unwrap();

    let out = repo
        .command()
        .env("TMPDIR", tmp.path())
        .args(["apply", "--env", "dev", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!abandoned.exists(), "a dead run's scratch is removed");
    assert!(running.exists(), "a live run's scratch is left alone");
    assert!(unrelated.exists(), "only scratch directories are touched");
    assert!(elsewhere.exists(), "a locked scratch directory is in use");
    let left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut expected = vec![
        format!("orchestrator-run-{}-GhIjKl", std::process::id()),
        format!("orchestrator-run-{dead}-MnOpQr"),
        "orchestrator-run-notes".to_string(),
    ];
    let mut left = left;
    left.sort();
    expected.sort();
    assert_eq!(left, expected, "the run removed its own scratch");
}

#[test]
fn destroy_runs_in_reverse_order_and_only_what_state_says_exists() {
    let repo = repo(
        &[
            ("net", &[], "true"),
            ("mid", &["net"], "true"),
            ("top", &["mid"], "true"),
            ("never", &[], "true"),
        ],
        "",
    );
    assert_eq!(
        json_run(
            &repo,
            &["apply", "--env", "dev", "--components", "net,mid,top"]
        )
        .0,
        Some(0)
    );
    let (code, doc) = json_run(&repo, &["destroy", "--env", "dev"]);
    assert_eq!(code, Some(0), "{doc}");
    let log = std::fs::read_to_string(repo.path().join("destroyed.log")).unwrap();
    assert_eq!(log, "destroy top\ndestroy mid\ndestroy net\n");
    assert_eq!(state(&repo)["components"]["net"]["status"], "destroyed");
    assert!(
        doc["components"].get("never").is_none(),
        "never deployed, so not destroyed"
    );
}

#[test]
fn a_deployed_component_removed_from_the_config_is_reported_until_marked_gone() {
    let repo = repo(&[("net", &[], "true"), ("app", &["net"], "true")], "");
    assert_eq!(json_run(&repo, &["apply", "--env", "dev"]).0, Some(0));
    let config = std::fs::read_to_string(repo.path().join("orchestrator.yaml")).unwrap();
    let start = config.find("  app:").unwrap();
    let end = config.find("environments:").unwrap();
    repo.write(
        "orchestrator.yaml",
        format!("{}{}", &config[..start], &config[end..]),
    );
    let warning =
        "warning: dev / aws: `app` is recorded as succeeded but is no longer in orchestrator.yaml";
    for args in [
        &["plan", "--env", "dev"][..],
        &["apply", "--env", "dev"][..],
    ] {
        let out = repo.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(warning), "{args:?}: {}", stderr(&out));
    }
    let (_, status) = json_run(&repo, &["status", "--env", "dev"]);
    assert_eq!(status["components"]["app"]["status"], "succeeded");
    assert_eq!(status["components"]["app"]["defined"], false);
    assert_eq!(status["components"]["net"]["defined"], true);

    let before = state_bytes(&repo);
    let set = |component: &str, status: &str| {
        repo.run(&[
            "state",
            "set",
            "--env",
            "dev",
            "--component",
            component,
            "--status",
            status,
            "--reason",
            "removed by hand",
            "--no-commit",
        ])
    };
    for (component, status, says) in [
        ("app", "succeeded", "cannot mark `app` succeeded"),
        ("gone", "destroyed", "unknown component `gone`"),
    ] {
        let out = set(component, status);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
    let after = state_bytes(&repo);
    assert_eq!(before, after, "refusals change nothing");

    let out = set("app", "destroyed");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(state(&repo)["components"]["app"]["status"], "destroyed");
    let out = repo.run(&["plan", "--env", "dev"]);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let (_, status) = json_run(&repo, &["status", "--env", "dev"]);
    assert!(status["components"].get("app").is_none(), "{status}");
}

#[test]
fn with_format_json_the_result_is_alone_on_stdout_and_the_run_shows_on_stderr() {
    let repo = repo(&[("net", &[], "echo hello from net")], "");
    let out = repo.run(&["apply", "--env", "dev", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["components"]["net"]["status"], "succeeded");
    assert!(!stdout(&out).contains("hello"), "{}", stdout(&out));
    let err = stderr(&out);
    assert_contains(
        &err,
        &[
            "net  started (create)",
            "| hello from net",
            "net  succeeded in",
        ],
    );
    assert!(
        !err.contains("COMPONENT"),
        "the result replaces the summary table:\n{err}"
    );
}

#[test]
fn a_run_keeps_the_logs_of_the_latest_fifty_runs() {
    let repo = repo(&[("net", &[], "echo hello")], "");
    let logs = repo.path().join(".orchestrator/logs");
    // Fifty runs from 2020, one second apart.
    let old: Vec<String> = (0..50)
        .map(|i: u64| ((1_600_000_000 + i) * 1_000_000).to_string())
        .collect();
    for id in &old {
        std::fs::create_dir_all(logs.join(id)).unwrap();
    }
    assert_eq!(json_run(&repo, &["apply", "--env", "dev"]).0, Some(0));
    let mut left: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left.len(), 50, "{left:?}");
    assert!(!left.contains(&old[0]), "the oldest went");
    // This run's own log is there.
    let own = left.last().unwrap();
    let log = std::fs::read_to_string(logs.join(own).join("aws/net.log")).unwrap();
    assert!(log.contains("hello"), "{log}");
}

#[test]
fn destroy_refuses_shell_components_without_a_destroy_command_and_changes_nothing() {
    let repo = Repo::new();
    for name in ["net", "app", "db"] {
        repo.mkdir(&format!("c/{name}"));
    }
    repo.write(
        "orchestrator.yaml",
        "version: 1\ndefaults: {runner: shell}\ncomponents:\n\
         \x20 net: {path: c/net, commands: {apply: 'true', destroy: 'echo net >> ../../destroyed.log'}}\n\
         \x20 app: {path: c/app, depends_on: [net], commands: {apply: 'true'}}\n\
         \x20 db: {path: c/db, depends_on: [net], commands: {apply: 'true'}}\n\
         environments:\n  dev: {clouds: [aws]}\n",
    );
    assert_eq!(json_run(&repo, &["apply", "--env", "dev"]).0, Some(0));
    let before = state_bytes(&repo);
    for args in [
        &["destroy", "--env", "dev"][..],
        &["destroy", "--env", "dev", "--dry-run"][..],
    ] {
        let out = repo.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out)
                .contains("cannot destroy app, db: shell components need `commands.destroy`"),
            "{}",
            stderr(&out)
        );
    }
    // The preview shows the plan and says the same.
    let out = repo.run(&["plan", "--env", "dev", "--destroy"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("3 to destroy"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(
            "warning: `destroy` would refuse to run: cannot destroy app, db: shell components need `commands.destroy`"
        ),
        "{}",
        stderr(&out)
    );
    assert!(!repo.path().join("destroyed.log").exists());
    let after = state_bytes(&repo);
    assert_eq!(before, after, "the state is untouched");
}

#[test]
fn what_no_run_ever_started_is_created_by_apply_and_left_alone_by_destroy() {
    let repo = repo(
        &[
            ("net", &[], "true"),
            ("bad", &["net"], "exit 1"),
            ("app", &["bad"], "true"),
        ],
        "",
    );
    let (code, doc) = json_run(&repo, &["apply", "--env", "dev"]);
    assert_eq!(code, Some(1), "{doc}");
    assert_eq!(doc["components"]["app"]["status"], "skipped");
    assert_eq!(state(&repo)["components"]["app"]["status"], "skipped");

    let (code, plan) = json_run(&repo, &["plan", "--env", "dev"]);
    assert_eq!(code, Some(0), "{plan}");
    let actions = common::plan_actions(&plan);
    assert_eq!(
        actions,
        [
            ("net".to_string(), "noop".to_string()),
            // Started and failed: it may have left something behind.
            ("bad".to_string(), "update".to_string()),
            // Skipped before it ever ran: nothing of it exists.
            ("app".to_string(), "create".to_string()),
        ]
    );

    let (code, doc) = json_run(&repo, &["destroy", "--env", "dev"]);
    assert_eq!(code, Some(0), "{doc}");
    let log = std::fs::read_to_string(repo.path().join("destroyed.log")).unwrap();
    assert_eq!(log, "destroy bad\ndestroy net\n");
    assert!(doc["components"].get("app").is_none(), "{doc}");
    assert_eq!(state(&repo)["components"]["app"]["status"], "skipped");
}

#[test]
fn a_destroy_refuses_while_what_depends_on_it_is_deployed_and_says_so() {
    let repo = repo(
        &[
            ("base", &[], "true"),
            ("net", &["base"], "true"),
            ("mid", &["net"], "true"),
        ],
        "",
    );
    assert_eq!(json_run(&repo, &["apply", "--env", "dev"]).0, Some(0));
    let out = repo.run(&["destroy", "--env", "dev", "--components", "net"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "these components are still deployed and depend on what this run destroys: mid on aws (depends on net)"
        ),
        "{}",
        stderr(&out)
    );
    assert!(!repo.path().join("destroyed.log").exists());
    let out = repo.run(&["plan", "--env", "dev", "--destroy", "--components", "net"]);
    let text = stdout(&out);
    assert!(
        text.contains(
            "Not in this run, and still deployed though they depend on what it destroys:\n  mid (depends on net)\nAdd --with-dependents"
        ),
        "{text}"
    );
    // What `net` depends on does not matter to its destroy.
    assert!(!text.contains("deployed and current"), "{text}");
    let (code, _) = json_run(
        &repo,
        &[
            "destroy",
            "--env",
            "dev",
            "--components",
            "net",
            "--with-dependents",
        ],
    );
    assert_eq!(code, Some(0));
    let log = std::fs::read_to_string(repo.path().join("destroyed.log")).unwrap();
    assert_eq!(log, "destroy mid\ndestroy net\n");
    // Nothing left to destroy of `net`: still nothing said of `base`.
    let out = repo.run(&["plan", "--env", "dev", "--destroy", "--components", "net"]);
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));
    assert!(
        !stdout(&out).contains("Not in this run"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_dependency_outside_the_run_must_be_deployed_or_the_run_refuses() {
    let repo = repo(
        &[
            ("net", &[], "true"),
            ("app", &["net"], "echo ran > ../../app.ran"),
        ],
        "",
    );
    let out = repo.run(&["apply", "--env", "dev", "--components", "app"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("net on aws (needed by app)"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--with-deps"));
    assert!(!repo.path().join("app.ran").exists());
    assert!(
        !repo
            .path()
            .join(".orchestrator/state/dev-aws.json")
            .exists(),
        "nothing recorded"
    );
    let (code, doc) = json_run(
        &repo,
        &[
            "apply",
            "--env",
            "dev",
            "--components",
            "app",
            "--with-deps",
        ],
    );
    assert_eq!(code, Some(0));
    assert_eq!(
        statuses(&doc),
        pairs(&[("app", "succeeded"), ("net", "succeeded")])
    );
    let (code, _) = json_run(&repo, &["apply", "--env", "dev", "--components", "app"]);
    assert_eq!(code, Some(0), "net is deployed now, so app alone may run");
}

/// Moves the state directory away and puts a file in its place, so every
/// state write fails until [`RESTORE_STATE`] undoes it; run from a
/// component's directory.
const BREAK_STATE: &str =
    "mv ../../.orchestrator/state ../../state.away && touch ../../.orchestrator/state";
const RESTORE_STATE: &str =
    "rm ../../.orchestrator/state && mv ../../state.away ../../.orchestrator/state";

fn error_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("error:")).collect()
}

#[test]
fn a_state_that_cannot_be_written_at_the_end_is_one_error_and_the_next_run_does_the_rest() {
    // After a pause that lets its start be recorded.
    let repo = repo(&[("net", &[], &format!("sleep 0.3; {BREAK_STATE}"))], "");
    let out = repo.run(&["apply", "--env", "dev"]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the local state file could not be written: {err}"
    );
    // The run's last write, and the write that gives back its lock after
    // it, fail for one reason: it is told once, saying what became of the
    // records.
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].starts_with("error: the state could not be written:")
            && errors[0].contains(".orchestrator/state/")
            && errors[0].contains("dev-aws.json"),
        "{err}"
    );
    assert!(
        err.contains("the next apply runs again what it does not show as done"),
        "{err}"
    );
    let kept: Value = serde_json::from_slice(
        &std::fs::read(repo.path().join("state.away/dev-aws.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(kept["components"]["net"]["status"], "running");

    // Put back, the state is the one before: the next run takes over the
    // dead run's lock and deploys what it lacks.
    std::fs::remove_file(repo.path().join(".orchestrator/state")).unwrap();
    std::fs::rename(
        repo.path().join("state.away"),
        repo.path().join(".orchestrator/state"),
    )
    .unwrap();
    repo.write(
        "orchestrator.yaml",
        std::fs::read_to_string(repo.path().join("orchestrator.yaml"))
            .unwrap()
            .replace(
                &serde_json::to_string(&format!("sleep 0.3; {BREAK_STATE}")).unwrap(),
                "echo again",
            ),
    );
    let (code, doc) = json_run(&repo, &["apply", "--env", "dev"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(statuses(&doc), pairs(&[("net", "succeeded")]));
    let state = state(&repo);
    assert_eq!(state["components"]["net"]["status"], "succeeded");
    assert_eq!(state["lock"], Value::Null);
}

#[test]
fn state_writes_that_fail_during_a_run_are_made_good_by_a_later_one_and_only_warned_of() {
    let repo = repo(
        &[
            ("net", &[], BREAK_STATE),
            // Long enough for the writes of net's end and app's start to
            // fail before the directory is back.
            ("app", &["net"], &format!("sleep 0.5; {RESTORE_STATE}")),
        ],
        "",
    );
    let out = repo.run(&["apply", "--env", "dev"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(error_lines(&err), Vec::<&str>::new());
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains("of the state failed"))
        .collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].ends_with("a later one recorded everything"),
        "{err}"
    );
    let state = state(&repo);
    assert_eq!(state["components"]["net"]["status"], "succeeded");
    assert_eq!(state["components"]["app"]["status"], "succeeded");
    assert_eq!(state["lock"], Value::Null);
}

#[test]
fn dry_run_prints_the_plan_and_touches_nothing() {
    let repo = repo(&[("net", &[], "echo ran > ../../net.ran")], "");
    let out = repo.run(&["apply", "--env", "dev", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("net        create"),
        "{}",
        stdout(&out)
    );
    assert!(!repo.path().join("net.ran").exists());
    assert!(!repo.path().join(".orchestrator").exists());
}

#[test]
fn components_see_their_environment_and_values_and_their_outputs_are_recorded() {
    let repo = repo(
        &[(
            "net",
            &[],
            "printf '%s %s %s %s\\n' \"$ORCHESTRATOR_ENV\" \"$ORCHESTRATOR_CLOUD\" \"$ORCHESTRATOR_COMPONENT\" \"$ORCHESTRATOR_RUN_ID\" > ../../seen; cp \"$ORCHESTRATOR_CONFIG\" ../../values.json; echo '{\"vpc_id\": \"vpc-123\"}' > \"$ORCHESTRATOR_OUTPUTS\"; echo \"$GREETING\" >> ../../seen",
        )],
        "    env: {GREETING: hello}\n",
    );
    repo.write(
        "environments/dev/net.yaml",
        "cidr: 10.0.0.0/16\nzones: [a, b]\n",
    );
    let (code, result) = json_run(&repo, &["apply", "--env", "dev"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        std::fs::read_to_string(repo.path().join("seen")).unwrap(),
        format!("dev aws net {}\nhello\n", result["run_id"])
    );
    let values: Value =
        serde_json::from_str(&std::fs::read_to_string(repo.path().join("values.json")).unwrap())
            .unwrap();
    assert_eq!(
        values,
        serde_json::json!({"cidr": "10.0.0.0/16", "zones": ["a", "b"]})
    );
    assert_eq!(
        state(&repo)["components"]["net"]["outputs"],
        serde_json::json!({"vpc_id": "vpc-123"})
    );
}

/// One root deployed to several environments and clouds needs to say which
/// one it is to its tools (a profile, a backend key, a namespace): its
/// variables may name them, and the shell's own `${env}` stays the shell's.
#[test]
fn variables_name_the_environment_and_cloud_a_component_is_deployed_to() {
    let repo = repo(
        &[(
            "net",
            &[],
            "printf '%s|%s|%s\\n' \"$AWS_PROFILE\" \"$TF_CLI_ARGS_init\" \"$LITERAL\" > ../../seen-$ORCHESTRATOR_CLOUD",
        )],
        "    env:\n      AWS_PROFILE: acme-{env}\n      TF_CLI_ARGS_init: -backend-config=key={env}/{cloud}/net.tfstate\n      LITERAL: ${env}\n",
    );
    let config = std::fs::read_to_string(repo.path().join("orchestrator.yaml")).unwrap();
    repo.write(
        "orchestrator.yaml",
        config.replace("dev: {clouds: [aws]}", "dev: {clouds: [aws, gcp]}"),
    );
    let (code, doc) = json_run(&repo, &["apply", "--env", "dev"]);
    assert_eq!(code, Some(0), "{doc}");
    for cloud in ["aws", "gcp"] {
        assert_eq!(
            std::fs::read_to_string(repo.path().join(format!("seen-{cloud}"))).unwrap(),
            format!("acme-dev|-backend-config=key=dev/{cloud}/net.tfstate|${{env}}\n")
        );
    }
}

/// Variables hold text: one written as a number reaches the component as
/// written, not as the number YAML reads (`1.10` is 1.1, and an integer
/// beyond 64 bits a rounded float); a boolean as `true` or `false`.
#[test]
fn variables_written_as_numbers_reach_components_as_written() {
    let repo = repo(
        &[(
            "net",
            &[],
            "printf '%s|%s|%s|%s\\n' \"$K8S_VERSION\" \"$ACCOUNT\" \"$PORT\" \"$DEBUG\" > ../../seen",
        )],
        "    env:\n      K8S_VERSION: 1.30\n      ACCOUNT: 123456789012345678901234\n      PORT: 0x1F90\n      DEBUG: True\n",
    );
    let (code, doc) = json_run(&repo, &["apply", "--env", "dev"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("seen")).unwrap(),
        "1.30|123456789012345678901234|0x1F90|true\n"
    );
}

/// The log directory of the only run in `repo`.
fn run_logs(repo: &Repo) -> std::path::PathBuf {
    let runs: Vec<_> = std::fs::read_dir(repo.path().join(".orchestrator/logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

#[test]
fn a_component_that_prints_gets_a_log_of_every_line_and_a_silent_one_gets_none() {
    let repo = repo(
        &[
            ("loud", &[], "echo one; echo two >&2; echo three"),
            ("quiet", &[], "true"),
            ("mute-failure", &[], "false"),
        ],
        "",
    );
    let (code, doc) = json_run(&repo, &["apply", "--env", "dev"]);
    assert_eq!(code, Some(1), "{doc}");
    let logs = run_logs(&repo);
    let text = std::fs::read_to_string(logs.join("aws/loud.log")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("# create loud on aws, started "),
        "{text}"
    );
    assert_eq!(lines[1], "$ sh -c 'echo one; echo two >&2; echo three'");
    // Standard output and standard error come through separate pipes, so
    // only each stream's own order is certain.
    let mut printed = lines[2..5].to_vec();
    printed.sort_unstable();
    assert_eq!(printed, ["! two", "one", "three"], "{text}");
    assert!(text.find("one").unwrap() < text.find("three").unwrap());
    assert_eq!(lines[5], "# succeeded");
    assert_eq!(lines.len(), 6, "{text}");
    assert!(!logs.join("aws/quiet.log").exists());
    assert!(!logs.join("aws/mute-failure.log").exists());
    // A silent failure is still explained, in the result and the state.
    assert_eq!(
        doc["components"]["mute-failure"]["error"],
        "`false` exited with code 1"
    );
    assert_eq!(
        state(&repo)["components"]["mute-failure"]["error"],
        "`false` exited with code 1"
    );
}

#[test]
fn the_summary_points_to_the_logs_only_when_a_component_printed() {
    let silent = repo(&[("quiet", &[], "true")], "");
    let out = silent.run(&["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Run succeeded in "),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("Logs:"), "{}", stderr(&out));
    assert!(!silent.path().join(".orchestrator/logs").exists());

    let loud = repo(&[("loud", &[], "echo hello")], "");
    let out = loud.run(&["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let logs = run_logs(&loud);
    let run_id = logs.file_name().unwrap().to_str().unwrap();
    assert!(
        stderr(&out).contains(&format!("Logs: .orchestrator/logs/{run_id}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_line_of_a_chatty_component_reaches_the_report_and_its_log_in_order() {
    let repo = repo(&[("chatty", &[], "seq 20000")], "");
    let out = repo.run(&["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = stderr(&out);
    let printed: Vec<&str> = report
        .lines()
        .filter_map(|l| l.strip_prefix("chatty").map(str::trim_start))
        .filter_map(|l| l.strip_prefix("| "))
        .filter(|l| !l.starts_with('$'))
        .collect();
    let expected: Vec<String> = (1..=20000).map(|i| i.to_string()).collect();
    assert_eq!(printed, expected);
    let log = std::fs::read_to_string(run_logs(&repo).join("aws/chatty.log")).unwrap();
    let logged: Vec<&str> = log.lines().filter(|l| !l.starts_with(['#', '$'])).collect();
    assert_eq!(logged, expected);
}

#[test]
fn a_timeout_fails_the_component() {
    let repo = repo(&[("slow", &[], "sleep 30")], "    timeout: 1s\n");
    let started = Instant::now();
    let (code, doc) = json_run(&repo, &["apply", "--env", "dev"]);
    assert_eq!(code, Some(1));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        doc["components"]["slow"]["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 1s"),
        "{doc}"
    );
}

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// A repository whose `stubborn` component ignores SIGINT and has a
/// grandchild, so only the SIGKILL after the grace period ends them, with
/// `after` depending on it; and a JSON apply of it, started and waited for
/// until the component runs. Returns the run and the pids of the
/// component and its grandchild.
fn stubborn_run() -> (Repo, std::process::Child, i32, i32) {
    let repo = repo(
        &[
            (
                "stubborn",
                &[],
                "trap '' INT; sleep 60 & echo $! > ../../grandchild.pid; echo $$ > ../../child.pid; wait",
            ),
            ("after", &["stubborn"], "true"),
        ],
        "",
    );
    let child = repo
        .command()
        .args(["apply", "--env", "dev", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid_file = repo.path().join("grandchild.pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(pid_file.exists() && repo.path().join("child.pid").exists()) {
        assert!(Instant::now() < deadline, "component never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let read_pid = |f: &str| {
        std::fs::read_to_string(repo.path().join(f))
            .unwrap()
            .trim()
            .parse::<i32>()
            .unwrap()
    };
    let (grandchild, component) = (read_pid("grandchild.pid"), read_pid("child.pid"));
    (repo, child, component, grandchild)
}

fn signal(child: &std::process::Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// Waits up to two seconds for `pids` to be gone.
fn all_gone(pids: &[i32]) -> bool {
    let gone = Instant::now() + Duration::from_secs(2);
    while pids.iter().any(|p| pid_alive(*p)) && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(20));
    }
    !pids.iter().any(|p| pid_alive(*p))
}

#[test]
fn sigterm_cancels_within_five_seconds_records_cancelled_and_leaves_no_process() {
    let (repo, child, component, grandchild) = stubborn_run();
    let signalled = Instant::now();
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let out: Output = child.wait_with_output().unwrap();
    let took = signalled.elapsed();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["result"], "cancelled");
    let recorded = state(&repo);
    assert_eq!(recorded["components"]["stubborn"]["status"], "cancelled");
    assert_eq!(recorded["components"]["after"]["status"], "cancelled");
    assert_eq!(
        recorded["components"]["stubborn"]["error"],
        "the run was cancelled while it ran"
    );
    assert_eq!(
        recorded["components"]["after"]["error"],
        "the run was cancelled before it started"
    );
    assert!(all_gone(&[grandchild, component]), "processes left behind");
}

/// A second Ctrl-C does not wait out the three seconds of grace: what
/// still runs is killed at once, and the run is recorded as cancelled.
#[test]
fn a_second_interrupt_kills_what_still_runs_at_once() {
    let (repo, child, component, grandchild) = stubborn_run();
    signal(&child, nix::sys::signal::Signal::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    let again = Instant::now();
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let out: Output = child.wait_with_output().unwrap();
    let took = again.elapsed();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{said}");
    assert!(said.contains("(Ctrl-C again kills them now)"), "{said}");
    assert!(
        said.contains("Killing the running components now"),
        "{said}"
    );
    // Well within the grace the first interrupt gave.
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(
        state(&repo)["components"]["stubborn"]["status"],
        "cancelled"
    );
    assert!(all_gone(&[grandchild, component]), "processes left behind");
}

#[test]
fn a_component_can_trap_the_cancelling_sigint_when_the_orchestrator_started_ignoring_it() {
    // Background jobs of a script start with SIGINT ignored, and a shell
    // cannot trap a signal that was ignored when it started.
    let repo = repo(
        &[(
            "trapper",
            &[],
            "trap 'echo caught > ../../trapped; exit 1' INT; echo $$ > ../../child.pid; while :; do sleep 0.05; done",
        )],
        "",
    );
    let child = Command::new("sh")
        .args([
            "-c",
            "trap '' INT; exec \"$0\" apply --env dev --format json",
            assert_cmd::cargo::cargo_bin("orchestrator")
                .to_str()
                .unwrap(),
        ])
        .current_dir(repo.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !repo.path().join("child.pid").exists() {
        assert!(Instant::now() < deadline, "component never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(repo.path().join("trapped")).unwrap(),
        "caught\n"
    );
}

#[test]
fn a_corrupt_state_file_is_refused_and_left_as_it_was() {
    let repo = repo(&[("net", &[], "echo ran > ../../net.ran")], "");
    let corrupt = "{\n  \"serial\": 3,\n  oops\n}\n";
    repo.write(".orchestrator/state/dev-aws.json", corrupt);
    let out = repo.run(&["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("dev-aws.json:3:3"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join(".orchestrator/state/dev-aws.json")).unwrap(),
        corrupt
    );
    assert!(!repo.path().join("net.ran").exists());
}

#[test]
fn a_state_file_from_a_newer_version_is_refused() {
    let repo = repo(&[("net", &[], "true")], "");
    let newer =
        r#"{"schema_version": 2, "environment": "dev", "cloud": "aws", "something_new": true}"#;
    repo.write(".orchestrator/state/dev-aws.json", newer);
    let out = repo.run(&["plan", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("newer"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(repo.path().join(".orchestrator/state/dev-aws.json")).unwrap(),
        newer
    );
}

#[test]
fn status_and_state_next_show_what_is_done_and_what_can_run() {
    let repo = repo(
        &[
            ("net", &[], "true"),
            ("app", &["net"], "true"),
            ("other", &[], "exit 1"),
        ],
        "",
    );
    let (code, _) = json_run(
        &repo,
        &["apply", "--env", "dev", "--components", "net,other"],
    );
    assert_eq!(code, Some(1));
    let (_, status) = json_run(&repo, &["status", "--env", "dev"]);
    assert_eq!(status["components"]["net"]["status"], "succeeded");
    assert_eq!(status["components"]["net"]["current"], true);
    assert_eq!(status["components"]["other"]["status"], "failed");
    assert_eq!(status["components"]["app"]["status"], Value::Null);
    let (_, next) = json_run(&repo, &["state", "next", "--env", "dev"]);
    assert_eq!(next["next"], serde_json::json!(["app", "other"]));
    let (code, valid) = json_run(&repo, &["state", "validate", "--env", "dev"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        (valid["exists"].clone(), valid["cloud"].clone()),
        (Value::Bool(true), Value::from("aws"))
    );
    let out = repo.run(&["state", "get", "--env", "dev", "--component", "net"]);
    let record: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(record["status"], "succeeded");
    let out = repo.run(&["state", "get", "--env", "dev", "--component", "nett"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did you mean `net`?"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn state_set_records_an_operator_decision_with_its_reason() {
    let repo = repo(&[("net", &[], "exit 1"), ("app", &["net"], "true")], "");
    let out = repo.run(&[
        "state",
        "set",
        "--env",
        "dev",
        "--component",
        "net",
        "--status",
        "succeeded",
        "--reason",
        "applied by hand",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let record = &state(&repo)["components"]["net"];
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["error"], "set by hand: applied by hand");
    let (code, doc) = json_run(&repo, &["apply", "--env", "dev"]);
    assert_eq!(code, Some(0), "net is done, so only app runs: {doc}");
    assert_eq!(statuses(&doc), pairs(&[("app", "succeeded")]));
}

#[test]
fn the_example_applies_end_to_end_with_parallel_branches() {
    let root = common::project_root();
    let repo = Repo::new();
    for entry in ["orchestrator.yaml", "environments", "examples"] {
        copy(&root.join(entry), &repo.path().join(entry));
    }
    let out = repo
        .command()
        .env("EXAMPLE_SPEED", "0")
        // The README's first command.
        .args(["apply", "--env", "dev", "--no-commit", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["components"].as_object().unwrap().len(),
        14,
        "7 components on 2 clouds"
    );
    assert!(
        doc["components"]
            .as_object()
            .unwrap()
            .values()
            .all(|c| c["status"] == "succeeded")
    );
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn retry_on_replaces_the_built_in_transient_patterns() {
    let flaky =
        "if [ -f ../../{m} ]; then echo ok; else touch ../../{m}; echo '{msg}' >&2; exit 1; fi";
    let repo = repo(
        &[
            (
                "custom",
                &[],
                &flaky
                    .replace("{m}", "custom.marker")
                    .replace("{msg}", "quota service says: try later"),
            ),
            (
                "builtin",
                &[],
                &flaky
                    .replace("{m}", "builtin.marker")
                    .replace("{msg}", "net/http: TLS handshake timeout"),
            ),
        ],
        "    retries: 2\n    retry_delay: 10ms\n    retry_on: ['try later']\n",
    );
    let (code, doc) = json_run(&repo, &["apply", "--env", "dev"]);
    assert_eq!(code, Some(1), "{doc}");
    assert_eq!(doc["components"]["custom"]["status"], "succeeded");
    assert_eq!(doc["components"]["custom"]["attempts"], 2);
    assert_eq!(
        doc["components"]["builtin"]["status"], "failed",
        "the built-in set no longer applies"
    );
    assert_eq!(doc["components"]["builtin"]["attempts"], 1);
}

#[test]
fn tofu_components_run_init_then_apply_with_their_values_as_a_var_file() {
    let repo = Repo::new();
    repo.mkdir("stacks/net");
    repo.write(
        "orchestrator.yaml",
        "version: 1\ncomponents:\n  net: {path: stacks/net, runner: tofu}\nenvironments:\n  dev: {clouds: [aws]}\n",
    );
    repo.write("environments/dev/net.yaml", "cidr: 10.1.0.0/16\n");
    let bin = repo.path().join("bin");
    let fake = "#!/bin/sh\necho \"$*\" >> \"$RECORD\"\nfor a in \"$@\"; do case $a in -var-file=*) cat \"${a#-var-file=}\" > \"$VALUES\";; esac; done\n";
    repo.write("bin/tofu", fake);
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(bin.join("tofu")).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(
        bin.join("tofu"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = repo
        .command()
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("RECORD", repo.path().join("argv.log"))
        .env("VALUES", repo.path().join("values.json"))
        .args(["apply", "--env", "dev", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let argv = std::fs::read_to_string(repo.path().join("argv.log")).unwrap();
    let lines: Vec<&str> = argv.lines().collect();
    assert_eq!(lines[0], "init -input=false");
    assert!(
        lines[1].starts_with("apply -auto-approve -input=false -var-file=/"),
        "{argv}"
    );
    assert!(lines[1].ends_with("/net.values.json"), "{argv}");
    let values: Value =
        serde_json::from_str(&std::fs::read_to_string(repo.path().join("values.json")).unwrap())
            .unwrap();
    assert_eq!(values, serde_json::json!({"cidr": "10.1.0.0/16"}));
}

/// `tofu init` fills `.terraform/`, and a local backend writes its state
/// next to the code on every apply: none of it makes the component changed,
/// in a repository that ignores none of it, so a second apply does nothing.
#[test]
fn what_tofu_leaves_in_a_component_does_not_make_it_deploy_again() {
    let repo = Repo::new();
    repo.write(
        "orchestrator.yaml",
        "version: 1\ncomponents:\n  net: {path: stacks/net, runner: tofu}\n  app: {path: stacks/app, runner: tofu, depends_on: [net]}\nenvironments:\n  dev: {clouds: [aws]}\n",
    );
    repo.write("stacks/net/main.tf", "# net\n");
    repo.write("stacks/app/main.tf", "# app\n");
    repo.write(".gitignore", ".orchestrator/\n*.log\n");
    // Like tofu: a provider cache on init; on apply, the state (its serial
    // moving on every time) with a backup, and a log git is told to ignore.
    let fake = "#!/bin/sh\n\
        echo \"$(basename \"$PWD\") $1\" >> \"$RECORD\"\n\
        case $1 in\n\
        init) mkdir -p .terraform/providers && echo binary > .terraform/providers/aws;;\n\
        apply) [ -f terraform.tfstate ] && cp terraform.tfstate terraform.tfstate.backup\n\
               echo \"{\\\"serial\\\": $$}\" > terraform.tfstate; echo \"pid $$\" > apply.log;;\n\
        esac\n";
    repo.write("bin/tofu", fake);
    std::fs::set_permissions(
        repo.path().join("bin/tofu"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    common::git(repo.path(), &["init", "-q", "-b", "main"]);
    common::git(repo.path(), &["add", "-A"]);
    common::git(repo.path(), &["commit", "-q", "-m", "stacks"]);
    let record = repo.path().join("calls.log");
    let run = |args: &[&str]| {
        let out = repo
            .command()
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    repo.path().join("bin").display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("RECORD", &record)
            .args(args)
            .args(["--env", "dev", "--format", "json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let to_run = |plan: &Value| -> Vec<String> {
        common::plan_actions(plan)
            .into_iter()
            .filter(|(_, action)| action != "noop")
            .map(|(name, _)| name)
            .collect()
    };
    run(&["apply"]);
    assert!(repo.path().join("stacks/net/terraform.tfstate").exists());
    assert!(
        repo.path()
            .join("stacks/net/.terraform/providers/aws")
            .exists()
    );
    assert_eq!(to_run(&run(&["plan"])), Vec::<String>::new());
    run(&["apply"]);

    // An uncommitted edit is deployed once; the state and the log that
    // the deploy rewrites do not call for another.
    repo.write("stacks/net/main.tf", "# net, edited\n");
    assert_eq!(to_run(&run(&["plan"])), ["net"]);
    run(&["apply"]);
    assert_eq!(to_run(&run(&["plan"])), Vec::<String>::new());
    run(&["apply"]);
    let calls = std::fs::read_to_string(&record).unwrap();
    let applies: Vec<&str> = calls.lines().filter(|l| l.ends_with(" apply")).collect();
    assert_eq!(applies, ["net apply", "app apply", "net apply"], "{calls}");
}

#[test]
fn killing_the_orchestrator_with_sigkill_never_leaves_a_torn_state_file() {
    let names: Vec<String> = (0..60).map(|i| format!("c{i:02}")).collect();
    let specs: Vec<(&str, &[&str], &str)> = names
        .iter()
        .map(|n| (n.as_str(), &[][..], "true"))
        .collect();
    let repo = repo(&specs, "");
    let path = repo.path().join(".orchestrator/state/dev-aws.json");
    let mut rng = fastrand::Rng::with_seed(7);
    let mut last_serial = 0;
    for _ in 0..25 {
        let _ = std::fs::remove_dir_all(repo.path().join(".orchestrator/logs"));
        let mut child = repo
            .command()
            .args([
                "apply",
                "--env",
                "dev",
                "--format",
                "json",
                "--on-failure",
                "continue",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.u64(5..150)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if path.exists() {
            let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .expect("state parses after SIGKILL");
            let serial = doc["serial"].as_u64().unwrap();
            assert!(
                serial >= last_serial,
                "serial went back from {last_serial} to {serial}"
            );
            last_serial = serial;
        }
        // Start over half of the time so runs are killed at every stage.
        if rng.bool() {
            let _ = std::fs::remove_file(&path);
            last_serial = 0;
        }
    }
}
