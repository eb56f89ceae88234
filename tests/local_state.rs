//! A local state file shared by several processes: runs of one environment
//! on different components at once, `state set` from another terminal
//! during a run, and the lock a run gives back with its last write. Real
//! binaries and real shell components, with state on disk (no remote).

mod common;

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{Repo, stderr};
use orchestrator_action::config::{self, CloudName, ComponentName, EnvName};
use orchestrator_action::exec::runner::process_gone;
use orchestrator_action::state::publish::{self, Claim, LOCAL_TTL, Publisher};
use orchestrator_action::state::recorder::{Keeping, Recorder};
use orchestrator_action::state::sync::Options;
use orchestrator_action::state::{RunInfo, Store, Target, store};
use serde_json::Value;

/// A shell loop that waits up to ten seconds for `file` (relative to the
/// repository), failing the component when it never comes.
fn wait_for(file: &str) -> String {
    format!(
        "for i in $(seq 500); do [ -f ../../{file} ] && break; sleep 0.02; done; [ -f ../../{file} ]"
    )
}

/// A command that marks `name` as started, then waits for `file`.
fn start_then_wait(name: &str, file: &str) -> String {
    format!("touch ../../{name}.started; {}", wait_for(file))
}

/// A repository of independent shell components, `(name, apply command)`.
fn repo(components: &[(&str, &str)]) -> Repo {
    let repo = Repo::new();
    let mut config = String::from(
        "version: 1\ndefaults:\n  runner: shell\n  retries: 0\nmax_parallel: 1\ncomponents:\n",
    );
    for (name, apply) in components {
        repo.mkdir(&format!("c/{name}"));
        config.push_str(&format!(
            "  {name}:\n    path: c/{name}\n    commands:\n      apply: {}\n",
            serde_json::to_string(apply).unwrap()
        ));
    }
    config.push_str("environments:\n  dev: {clouds: [aws]}\n");
    repo.write("orchestrator.yaml", config);
    repo
}

fn state_path(repo: &Repo) -> std::path::PathBuf {
    repo.path().join(".orchestrator/state/dev-aws.json")
}

fn state(repo: &Repo) -> Value {
    serde_json::from_str(&std::fs::read_to_string(state_path(repo)).unwrap()).unwrap()
}

/// Starts `apply` of `components` (comma-separated) in dev.
fn apply(repo: &Repo, components: &str) -> Child {
    repo.command()
        .env("NO_COLOR", "1")
        .args(["apply", "--env", "dev", "--components", components])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Polls `done` for up to ten seconds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn finished(child: Child) -> Output {
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    out
}

/// The serials of the history, and its notes in order.
fn history(state: &Value) -> (Vec<u64>, Vec<String>) {
    let entries = state["history"].as_array().unwrap();
    let serials = entries.iter().map(|h| h["serial"].as_u64().unwrap());
    let notes = entries.iter().filter_map(|h| h["note"].as_str());
    (serials.collect(), notes.map(str::to_string).collect())
}

/// The run id in a "lock taken by run N" note.
fn run_id(note: &str) -> &str {
    note.strip_prefix("lock taken by run ").unwrap()
}

#[test]
fn a_local_apply_gives_back_its_lock_after_its_last_record() {
    let repo = repo(&[("net", "true"), ("app", "true")]);
    let out = repo.run(&["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let state = state(&repo);
    assert!(state["lock"].is_null(), "{state:#}");
    // The lock taken, a start and an end per component, the lock released.
    assert_eq!(state["serial"], 6, "{state:#}");
    let (serials, notes) = history(&state);
    assert_eq!(serials, [1, 2, 3, 4, 5, 6]);
    let id = run_id(&notes[0]);
    assert_eq!(
        notes,
        [
            format!("lock taken by run {id}"),
            format!("lock released by run {id}")
        ]
    );
    let (first, last) = (&state["history"][0], &state["history"][5]);
    assert_eq!(last["note"], format!("lock released by run {id}"));
    assert_eq!(last["changes"], serde_json::json!({}));
    assert_eq!(last["run"], first["run"], "{state:#}");
    for name in ["net", "app"] {
        assert_eq!(state["components"][name]["status"], "succeeded");
    }
}

#[test]
fn two_runs_on_different_components_at_once_keep_each_others_records() {
    // The first component of each run waits for the other run's, so both
    // runs are writing the file at the same time.
    let repo = repo(&[
        ("a1", &start_then_wait("a1", "b1.started")),
        ("a2", "sleep 0.1"),
        ("a3", "sleep 0.1"),
        ("b1", &start_then_wait("b1", "a1.started")),
        ("b2", "sleep 0.1"),
        ("b3", "sleep 0.1"),
    ]);
    let (first, second) = (apply(&repo, "a1,a2,a3"), apply(&repo, "b1,b2,b3"));
    finished(first);
    finished(second);

    let state = state(&repo);
    let components = state["components"].as_object().unwrap();
    let names: Vec<&str> = components.keys().map(String::as_str).collect();
    assert_eq!(names, ["a1", "a2", "a3", "b1", "b2", "b3"], "{state:#}");
    assert!(components.values().all(|r| r["status"] == "succeeded"));
    assert!(state["lock"].is_null(), "{state:#}");
    // Per run: the lock taken, a start and an end per component, the lock
    // released. Nothing lost, so nothing merged back.
    let (serials, notes) = history(&state);
    assert_eq!(serials, (1..=16).collect::<Vec<u64>>(), "{state:#}");
    let taken: Vec<&str> = notes
        .iter()
        .filter(|n| n.starts_with("lock taken"))
        .map(|n| run_id(n))
        .collect();
    assert_eq!(taken.len(), 2, "{notes:?}");
    let mut released: Vec<&str> = notes
        .iter()
        .filter_map(|n| n.strip_prefix("lock released by run "))
        .collect();
    released.sort();
    let mut expected = taken.clone();
    expected.sort();
    assert_eq!(released, expected, "{notes:?}");
    assert_eq!(notes.len(), 4, "{notes:?}");
}

#[test]
fn a_state_file_replaced_during_a_run_is_left_as_it_was_and_the_run_says_so() {
    let repo = repo(&[("slow", &start_then_wait("slow", "go")), ("after", "true")]);
    let run = apply(&repo, "slow,after");
    wait_until("slow is recorded as running", || {
        repo.path().join("slow.started").exists()
            && state(&repo)["components"]["slow"]["status"] == "running"
    });
    // Another state takes the file's place: same environment and cloud,
    // another lineage, nothing of this run's in it.
    let mut other = state(&repo);
    other["lineage"] = Value::from("another-lineage");
    other["components"] = serde_json::json!({});
    let replaced = serde_json::to_string_pretty(&other).unwrap();
    repo.write(".orchestrator/state/dev-aws.json.new", &replaced);
    std::fs::rename(
        repo.path().join(".orchestrator/state/dev-aws.json.new"),
        state_path(&repo),
    )
    .unwrap();
    repo.write("go", "");
    let out = run.wait_with_output().unwrap();

    // A state conflict: the run's records could not be kept.
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("another-lineage"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(state_path(&repo)).unwrap(),
        replaced,
        "the replacing file is left untouched"
    );
}

#[test]
fn a_state_set_from_another_terminal_during_a_run_is_kept() {
    let repo = repo(&[
        ("slow", &start_then_wait("slow", "go")),
        ("after", "true"),
        ("other", "true"),
    ]);
    let run = apply(&repo, "slow,after");
    wait_until("slow is recorded as running", || {
        repo.path().join("slow.started").exists()
            && state(&repo)["components"]["slow"]["status"] == "running"
    });
    let set = repo.run(&[
        "state",
        "set",
        "--env",
        "dev",
        "--component",
        "other",
        "--status",
        "succeeded",
        "--reason",
        "applied by hand",
    ]);
    assert_eq!(set.status.code(), Some(0), "{}", stderr(&set));
    repo.write("go", "");
    finished(run);

    let state = state(&repo);
    let other = &state["components"]["other"];
    assert_eq!(other["status"], "succeeded", "{state:#}");
    assert_eq!(other["error"], "set by hand: applied by hand");
    for name in ["slow", "after"] {
        assert_eq!(
            state["components"][name]["status"], "succeeded",
            "{state:#}"
        );
    }
    assert!(state["lock"].is_null(), "{state:#}");
    // One run at a time (`max_parallel: 1`), in name order; the hand-set
    // record lands while slow runs.
    let changes: Vec<String> = state["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let changes = h["changes"].as_object().unwrap();
            let named = changes
                .iter()
                .map(|(k, v)| format!("{k} {}", v.as_str().unwrap()));
            named.collect::<Vec<_>>().join(", ")
        })
        .collect();
    assert_eq!(
        changes,
        [
            "",
            "after running",
            "after succeeded",
            "slow running",
            "other succeeded",
            "slow succeeded",
            ""
        ],
        "{state:#}"
    );
    let (serials, _) = history(&state);
    assert_eq!(serials, [1, 2, 3, 4, 5, 6, 7], "{state:#}");
}

/// A run `id` of the repository in local mode, as `apply` sets it up: its
/// target locked, a recorder that gives the claim back with its last
/// write, and its publisher.
fn locked_run(repo: &Repo, id: u64) -> (Target, Recorder, Publisher) {
    let config = config::load(&repo.path().join("orchestrator.yaml")).expect("config");
    let options = Options {
        no_commit: true,
        ..Options::default()
    };
    let store = Arc::new(Store::open(&config, options).expect("store"));
    let target = store.target(
        &EnvName::parse("dev").unwrap(),
        &CloudName::parse("aws").unwrap(),
    );
    let run = RunInfo {
        id,
        attempt: 1,
        url: None,
        actor: None,
    };
    let claim = Claim {
        id,
        run: run.clone(),
        host: None,
        components: Some(vec![ComponentName::parse("net").unwrap()]),
        ttl: LOCAL_TTL,
    };
    publish::take_lock(&store, &target, &claim, Duration::ZERO, |_| {}, |_| true).unwrap();
    let state = store::read(&target.local, &target.env, &target.cloud)
        .unwrap()
        .unwrap();
    let recorder = Recorder::new(
        vec![(target.cloud.clone(), target.local.clone(), state)],
        Some(run),
        None,
        Keeping::Local {
            release: Some(claim.holder(SystemTime::now())),
        },
    );
    let publisher = Publisher::new(store, vec![target.clone()], claim);
    (target, recorder, publisher)
}

#[test]
fn when_the_recorders_last_write_fails_the_publisher_still_gives_back_the_lock() {
    let repo = repo(&[("net", "true")]);
    let (target, mut recorder, publisher) = locked_run(&repo, 42);
    let locked = std::fs::read(&target.local).unwrap();

    // The last write finds a file it must not overwrite.
    std::fs::write(&target.local, "{\"serial\": ").unwrap();
    let outcome = recorder.finish();
    assert!(outcome.released.is_empty());
    assert_eq!(outcome.failures.len(), 1, "{:?}", outcome.failures);
    let failed = &outcome.failures[0];
    assert!(failed.lasting, "{failed:?}");
    assert!(
        failed.last.contains(&target.local.display().to_string()),
        "{failed:?}"
    );
    assert_eq!(std::fs::read(&target.local).unwrap(), b"{\"serial\": ");

    // Repaired by hand, the file gets the lock released by the publisher.
    std::fs::write(&target.local, &locked).unwrap();
    let report = publisher.finish(&outcome);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let state = store::read(&target.local, &target.env, &target.cloud)
        .unwrap()
        .unwrap();
    assert_eq!(state.lock, None);
    assert_eq!(
        state.history.last().unwrap().note.as_deref(),
        Some("lock released by run 42")
    );
}

#[test]
fn after_the_recorders_last_write_the_publisher_has_nothing_left_to_write() {
    let repo = repo(&[("net", "true")]);
    let (target, mut recorder, publisher) = locked_run(&repo, 43);
    let outcome = recorder.finish();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.released, std::slice::from_ref(&target.cloud));
    let released = std::fs::read(&target.local).unwrap();
    let report = publisher.finish(&outcome);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(std::fs::read(&target.local).unwrap(), released);
    let state = store::read(&target.local, &target.env, &target.cloud)
        .unwrap()
        .unwrap();
    assert_eq!(state.lock, None);
    assert_eq!(state.serial, 2, "taken, then released");
    assert!(stale_files(target.local.parent().unwrap()).is_empty());
}

/// Temporary files left in the state directory.
fn stale_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn the_lock_of_a_run_killed_on_this_machine_is_taken_over_at_once() {
    lock_of_a_killed_run_is_taken_over(true);
}

#[test]
fn the_lock_of_a_killed_run_nobody_has_reaped_yet_is_taken_over_at_once() {
    // As in a container whose first process reaps nothing.
    lock_of_a_killed_run_is_taken_over(false);
}

/// A command that writes its process id to `<name>.pid`, then marks `name`
/// as started and waits for `file`.
fn recorded_start_then_wait(name: &str, file: &str) -> String {
    format!(
        "echo $$ > ../../{name}.pid; {}",
        start_then_wait(name, file)
    )
}

/// The process id a component wrote with [`recorded_start_then_wait`].
fn recorded_pid(repo: &Repo, name: &str) -> u32 {
    let file = repo.path().join(format!("{name}.pid"));
    std::fs::read_to_string(file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Starts an apply of `net`, waits for the component to start, and kills
/// the orchestrator outright, reaping it or not (as in a container whose
/// first process reaps nothing). The component goes on.
fn killed_while_net_runs(repo: &Repo, reaped: bool) -> Child {
    let mut killed = apply(repo, "net");
    let started = repo.path().join("net.started");
    wait_until("net started", || started.exists());
    killed.kill().unwrap();
    if reaped {
        killed.wait().unwrap();
    } else {
        let stat = format!("/proc/{}/stat", killed.id());
        wait_until("the run exited", || {
            std::fs::read_to_string(&stat).is_ok_and(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
        });
    }
    killed
}

fn lock_of_a_killed_run_is_taken_over(reaped: bool) {
    let repo = repo(&[("net", &recorded_start_then_wait("net", "go"))]);
    let mut killed = killed_while_net_runs(&repo, reaped);
    // What it started ends on its own.
    repo.write("go", "");
    let net = recorded_pid(&repo, "net");
    wait_until("net ended", || process_gone(net));
    let held = state(&repo);
    assert_eq!(
        held["lock"]["holders"][0]["pid"].as_u64(),
        Some(u64::from(killed.id())),
        "{held:#}"
    );

    // The next run does not wait out the claim's 24 hours.
    let out = repo.run(&["apply", "--env", "dev", "--lock-timeout", "0s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "took over the lapsed lock of run {}",
            held["lock"]["holders"][0]["run"]
        )),
        "{}",
        stderr(&out)
    );
    let state = state(&repo);
    assert!(state["lock"].is_null(), "{state:#}");
    assert_eq!(state["components"]["net"]["status"], "succeeded");
    // Reaped now if it was not before (a second wait returns the same).
    killed.wait().unwrap();
}

/// A killed run's components go on: its lock stands until they end, since
/// a second run would deploy the same things beside them. The refusal says
/// what still runs; a run that waits takes the lock as soon as they end.
#[test]
fn the_lock_of_a_killed_run_stands_while_what_it_started_still_runs() {
    let repo = repo(&[("net", &recorded_start_then_wait("net", "go"))]);
    let mut killed = killed_while_net_runs(&repo, true);
    let net = recorded_pid(&repo, "net");
    assert!(!process_gone(net));
    let before = std::fs::read(state_path(&repo)).unwrap();

    let out = repo.run(&["apply", "--env", "dev", "--lock-timeout", "0s"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains(&format!("killed on {}", hostname())),
        "{said}"
    );
    assert!(said.contains(&format!("{net} `")), "{said}");
    assert!(said.contains(&format!("kill -TERM {net}")), "{said}");
    assert_eq!(std::fs::read(state_path(&repo)).unwrap(), before);

    // A run that waits goes ahead once what was left running ends.
    let waiting = repo
        .command()
        .args(["apply", "--env", "dev", "--lock-timeout", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    repo.write("go", "");
    let out = finished(waiting);
    let said = stderr(&out);
    assert!(
        said.contains("Waiting up to 30s for the lock on dev-aws"),
        "{said}"
    );
    assert!(said.contains("took over the lapsed lock of run"), "{said}");
    assert!(process_gone(net));
    let state = state(&repo);
    assert!(state["lock"].is_null(), "{state:#}");
    assert_eq!(state["components"]["net"]["status"], "succeeded");
    killed.wait().unwrap();
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}
