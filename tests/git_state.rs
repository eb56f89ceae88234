//! The state in git, end to end: real repositories (a bare "origin" and
//! clones of it in a temp dir), the real binary, many processes at once.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use assert_cmd::cargo::CommandCargoExt;
use common::{GitDaemon, git, history_notes};
use serde_json::Value;
use tempfile::TempDir;

const STATE: &str = ".orchestrator/state/dev-aws.json";

/// A bare origin holding a config with `n` independent components
/// `c00`, `c01`, …, each running `./apply.sh` (which writes its outputs).
struct Fleet {
    dir: TempDir,
}

impl Fleet {
    fn new(n: usize, apply: &str) -> Fleet {
        Fleet::on(n, apply, "[aws]")
    }

    /// A fleet whose `dev` environment is on `clouds` (`[aws, gcp]`).
    fn on(n: usize, apply: &str, clouds: &str) -> Fleet {
        let fleet = Fleet {
            dir: TempDir::new().expect("temp dir"),
        };
        git(
            fleet.root(),
            &["init", "-q", "--bare", "-b", "main", "origin.git"],
        );
        let seed = fleet.root().join("seed");
        git(fleet.root(), &["init", "-q", "-b", "main", "seed"]);
        let mut config = String::from("version: 1\ndefaults: {runner: shell}\ncomponents:\n");
        for i in 0..n {
            config.push_str(&format!(
                "  c{i:02}:\n    path: stacks/c{i:02}\n    commands: {{apply: ./apply.sh}}\n"
            ));
            let script = seed.join(format!("stacks/c{i:02}/apply.sh"));
            std::fs::create_dir_all(script.parent().unwrap()).unwrap();
            std::fs::write(&script, format!("#!/bin/sh\n{apply}\n")).unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        config.push_str(&format!("environments:\n  dev: {{clouds: {clouds}}}\n"));
        std::fs::write(seed.join("orchestrator.yaml"), config).unwrap();
        std::fs::write(seed.join(".gitignore"), ".orchestrator/\n").unwrap();
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "-q", "-m", "infrastructure"]);
        git(&seed, &["remote", "add", "origin", "../origin.git"]);
        git(&seed, &["push", "-q", "origin", "main"]);
        fleet
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn origin(&self) -> PathBuf {
        self.root().join("origin.git")
    }

    /// A fresh clone of origin, as a CI job checks it out.
    fn clone(&self, name: &str) -> PathBuf {
        git(self.root(), &["clone", "-q", "origin.git", name]);
        self.root().join(name)
    }

    /// The state file on origin's state branch.
    fn state(&self) -> Value {
        self.state_of(STATE)
    }

    /// The state file `file` on origin's state branch.
    fn state_of(&self, file: &str) -> Value {
        let text = git(
            &self.origin(),
            &["show", &format!("orchestrator-state:{file}")],
        );
        serde_json::from_str(&text).expect("state on origin is JSON")
    }

    /// How many commits the state branch has.
    fn commits(&self) -> u64 {
        git(
            &self.origin(),
            &["rev-list", "--count", "orchestrator-state"],
        )
        .trim()
        .parse()
        .unwrap()
    }
}

fn orchestrator(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("orchestrator").expect("binary");
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_TOKEN")
        .args(args);
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    orchestrator(dir, args).output().expect("run")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    orchestrator(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn status(state: &Value, component: &str) -> String {
    state["components"][component]["status"]
        .as_str()
        .unwrap_or("-")
        .to_string()
}

#[test]
fn sixteen_jobs_applying_one_component_each_all_land_in_one_state() {
    let fleet = Fleet::new(16, "true");
    // Over git's smart protocol, as GitHub serves pushes.
    let daemon = GitDaemon::serve(fleet.root());
    let clones: Vec<PathBuf> = (0..16)
        .map(|i| {
            let name = format!("job{i:02}");
            git(
                fleet.root(),
                &["clone", "-q", &daemon.url("origin.git"), &name],
            );
            fleet.root().join(name)
        })
        .collect();
    let children: Vec<Child> = clones
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let component = format!("c{i:02}");
            spawn(dir, &["apply", "--env", "dev", "--components", &component])
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let state = fleet.state();
    for i in 0..16 {
        assert_eq!(
            status(&state, &format!("c{i:02}")),
            "succeeded",
            "{state:#}"
        );
    }
    // Every write is one commit, counted by the serial and listed in the
    // history.
    let serial = state["serial"].as_u64().unwrap();
    assert_eq!(serial, fleet.commits());
    let history = state["history"].as_array().unwrap();
    let serials: Vec<u64> = history
        .iter()
        .map(|h| h["serial"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (serial + 1 - history.len() as u64..=serial).collect();
    assert_eq!(serials, expected);
    assert!(serial >= 32, "a lock and a result per job: {serial}");
    assert!(state["lock"].is_null(), "every lock released: {state:#}");
    // Each job's record was written by the job itself.
    for entry in history {
        assert!(entry["run"]["id"].as_u64().is_some());
    }
    let author = git(
        &fleet.origin(),
        &["log", "-1", "--format=%an <%ae>", "orchestrator-state"],
    );
    assert_eq!(
        author.trim(),
        "orchestrator[bot] <orchestrator[bot]@users.noreply.github.com>"
    );
}

/// Over a path remote, where the store moves the branch itself.
#[test]
fn eight_jobs_updating_one_component_take_turns_and_the_newest_record_wins() {
    let fleet = Fleet::new(
        1,
        "echo \"{\\\"job\\\": \\\"$JOB\\\"}\" > \"$ORCHESTRATOR_OUTPUTS\"",
    );
    let clones: Vec<PathBuf> = (0..8).map(|i| fleet.clone(&format!("job{i}"))).collect();
    let children: Vec<Child> = clones
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            // Each job deploys a different version of the component.
            std::fs::write(dir.join(format!("stacks/c00/version-{i}")), "").unwrap();
            orchestrator(
                dir,
                &[
                    "apply",
                    "--env",
                    "dev",
                    "--components",
                    "c00",
                    "--lock-timeout",
                    "2m",
                ],
            )
            .env("JOB", format!("job{i}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let state = fleet.state();
    let record = &state["components"]["c00"];
    assert_eq!(record["status"], "succeeded");
    // The record is the one of the job whose result was written last.
    let last = state["history"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|h| h["changes"]["c00"] == "succeeded")
        .unwrap();
    assert_eq!(record["run"]["id"], last["run"]["id"]);
    assert!(
        record["outputs"]["job"]
            .as_str()
            .unwrap()
            .starts_with("job")
    );
    assert_eq!(state["serial"].as_u64().unwrap(), fleet.commits());
    assert!(state["lock"].is_null());
}

#[test]
fn a_push_refused_by_a_hook_exits_3_and_leaves_the_local_state_alone() {
    let fleet = Fleet::new(2, "true");
    let hook = fleet.origin().join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'protected branch hook declined' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let daemon = GitDaemon::serve(fleet.root());
    git(
        fleet.root(),
        &["clone", "-q", &daemon.url("origin.git"), "job"],
    );
    let job = fleet.root().join("job");
    let out = run(&job, &["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("rejected the push"), "{said}");
    assert!(said.contains("pre-receive hook declined"), "{said}");
    assert!(said.contains("kept in the working tree"), "{said}");
    // Nothing ran and nothing was written: the lock could not be taken.
    assert!(!job.join(STATE).exists());
    assert!(!said.contains("succeeded"), "{said}");
}

#[test]
fn a_local_copy_that_cannot_be_written_is_a_warning_when_the_branch_has_the_records() {
    // The component leaves a file where the checkout's state directory
    // was, so every write of the local copy fails from then on.
    let fleet = Fleet::new(
        1,
        "mv ../../.orchestrator/state ../../state.away && touch ../../.orchestrator/state",
    );
    let job = fleet.clone("job");
    let out = run(&job, &["apply", "--env", "dev"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(!said.lines().any(|l| l.starts_with("error:")), "{said}");
    assert!(
        said.contains("warning: the local copy of the state could not be written (")
            && said.contains("Not a directory")
            && said.contains("the state branch has every record"),
        "{said}"
    );
    let pushed = fleet.state();
    assert_eq!(status(&pushed, "c00"), "succeeded");
    assert_eq!(pushed["lock"], Value::Null);

    // With the directory back, the copy there (from before the run) is
    // replaced by the branch's.
    std::fs::remove_file(job.join(".orchestrator/state")).unwrap();
    std::fs::rename(job.join("state.away"), job.join(".orchestrator/state")).unwrap();
    let out = run(&job, &["status", "--env", "dev", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let local: Value = serde_json::from_slice(&std::fs::read(job.join(STATE)).unwrap()).unwrap();
    assert_eq!(status(&local, "c00"), "succeeded");
}

#[test]
fn a_shallow_clone_reads_and_writes_the_state_branch() {
    let fleet = Fleet::new(2, "true");
    let daemon = GitDaemon::serve(fleet.root());
    let url = daemon.url("origin.git");
    git(
        fleet.root(),
        &["clone", "-q", "--depth", "1", &url, "shallow"],
    );
    let shallow = fleet.root().join("shallow");
    let out = run(&shallow, &["apply", "--env", "dev", "--components", "c00"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    git(
        fleet.root(),
        &["clone", "-q", "--depth", "1", &url, "shallow2"],
    );
    let second = fleet.root().join("shallow2");
    let out = run(&second, &["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        git(&second, &["rev-parse", "--is-shallow-repository"]).trim(),
        "true"
    );
    let state = fleet.state();
    assert_eq!(status(&state, "c00"), "succeeded");
    assert_eq!(status(&state, "c01"), "succeeded");
    // The second job saw the first one's result and did not run c00 again.
    let ran: Vec<&Value> = state["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["changes"]["c00"] == "succeeded")
        .collect();
    assert_eq!(ran.len(), 1, "{state:#}");
}

#[test]
fn a_workspace_owned_by_another_user_opens_on_github_actions_only() {
    // chown needs root, as in a container action; tests run as root here.
    let fleet = Fleet::new(1, "true");
    let job = fleet.clone("job");
    let out = Command::new("chown")
        .args(["-R", "1001:1001"])
        .arg(&job)
        .output()
        .unwrap();
    assert!(out.status.success());
    let home = TempDir::new().unwrap();

    let refused = orchestrator(&job, &["apply", "--env", "dev"])
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let said = text(&refused);
    assert!(said.contains("safe.directory"), "{said}");
    assert!(
        !fleet
            .origin()
            .join("refs/heads/orchestrator-state")
            .exists()
    );

    let out = orchestrator(&job, &["apply", "--env", "dev"])
        .env("HOME", home.path())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", &job)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(status(&fleet.state(), "c00"), "succeeded");
    let gitconfig = std::fs::read_to_string(home.path().join(".gitconfig")).unwrap();
    assert!(
        gitconfig.contains(&job.display().to_string()),
        "{gitconfig}"
    );
}

#[test]
fn a_second_apply_fails_fast_naming_the_holder() {
    let fleet = Fleet::new(1, "sleep 3");
    let first = fleet.clone("first");
    let second = fleet.clone("second");
    let running = spawn(&first, &["apply", "--env", "dev"]);
    // Wait until the first run has taken the lock (its first write).
    for _ in 0..1000 {
        if !git(&fleet.origin(), &["branch", "--list", "orchestrator-state"]).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = run(&second, &["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("locked by run"), "{said}");
    assert!(said.contains("holding the whole environment"), "{said}");
    assert!(said.contains("state unlock"), "{said}");
    let out = running.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Pushes a state whose lock is held by run 99 until `expires_at`.
fn plant_lock(fleet: &Fleet, expires_at: &str) {
    plant_lock_in(fleet, STATE, expires_at);
}

/// Pushes the state file `file` with its lock held by run 99 of another
/// machine until `expires_at`.
fn plant_lock_in(fleet: &Fleet, file: &str, expires_at: &str) {
    let job = fleet.clone("planter");
    let out = run(&job, &["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    git(&job, &["fetch", "-q", "origin", "orchestrator-state"]);
    git(&job, &["checkout", "-q", "orchestrator-state"]);
    let mut state: Value =
        serde_json::from_str(&std::fs::read_to_string(job.join(file)).unwrap()).unwrap();
    state["lock"] = serde_json::json!({"holders": [{
        "actor": "ghost", "attempt": 1, "components": null, "expires_at": expires_at,
        "host": "gone-runner", "run": 99, "started_at": "2026-01-01T00:00:00Z", "url": null
    }]});
    std::fs::write(
        job.join(file),
        serde_json::to_string_pretty(&state).unwrap(),
    )
    .unwrap();
    git(&job, &["add", "-f", file]);
    git(&job, &["commit", "-q", "-m", "plant a lock"]);
    git(&job, &["push", "-q", "origin", "orchestrator-state"]);
}

/// A run waiting for one cloud's lock holds the others' it took: cancelled
/// while it waits (Ctrl-C, or a workflow cancelled), it gives them back
/// before it exits, rather than leave them standing for ten minutes
/// before the next run on another machine.
#[test]
fn a_run_cancelled_while_it_waits_for_a_lock_gives_back_those_it_took() {
    let fleet = Fleet::on(1, "true", "[aws, gcp]");
    plant_lock_in(
        &fleet,
        ".orchestrator/state/dev-gcp.json",
        "2999-01-01T00:00:00Z",
    );
    let job = fleet.clone("job");
    std::fs::write(job.join("stacks/c00/changed"), "").unwrap();
    let mut child = spawn(
        &job,
        &[
            "apply",
            "--env",
            "dev",
            "--lock-timeout",
            "10m",
            "--format",
            "json",
        ],
    );
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut said = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let line = line.unwrap();
            if line.starts_with("Waiting up to 10m for the lock on dev-gcp") {
                let _ = tx.send(());
            }
            said.push_str(&line);
            said.push('\n');
        }
        said
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("the run waits for the lock on gcp");
    assert!(
        fleet.state()["lock"]["holders"][0]["run"].is_u64(),
        "it holds aws meanwhile: {}",
        fleet.state()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    let said = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{said}");
    let result: Value = serde_json::from_str(&stdout).expect("the result on stdout");
    assert_eq!(result["result"], "cancelled", "{result}");
    assert_eq!(result["components"], serde_json::json!({}), "{result}");
    assert_eq!(
        result["state_commit"].as_str(),
        Some(git(&fleet.origin(), &["rev-parse", "orchestrator-state"]).trim()),
        "the commit that gave the aws lock back: {result}"
    );
    assert!(
        said.contains("Cancelled before any component started in dev."),
        "{said}"
    );
    let aws = fleet.state();
    assert!(aws["lock"].is_null(), "the aws lock is given back: {aws:#}");
    assert_eq!(
        aws["components"]["c00"]["run"],
        fleet.state_of(".orchestrator/state/dev-gcp.json")["components"]["c00"]["run"],
        "nothing ran: {aws:#}"
    );
    let gcp = fleet.state_of(".orchestrator/state/dev-gcp.json");
    assert_eq!(gcp["lock"]["holders"][0]["run"], 99, "{gcp:#}");
}

#[test]
fn an_expired_lock_is_taken_over_with_a_warning() {
    let fleet = Fleet::new(1, "true");
    plant_lock(&fleet, "2026-01-01T00:10:00Z");
    let job = fleet.clone("job");
    std::fs::write(job.join("stacks/c00/changed"), "").unwrap();
    let out = run(&job, &["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("warning") && said.contains("lapsed lock of run 99"),
        "{said}"
    );
    let state = fleet.state();
    assert!(state["lock"].is_null());
    let notes = history_notes(&state);
    assert!(
        notes.iter().any(|n| n.contains("lapsed lock of run 99")),
        "{notes:?}"
    );
}

#[test]
fn a_forced_unlock_needs_a_reason_and_is_recorded() {
    let fleet = Fleet::new(1, "true");
    plant_lock(&fleet, "2999-01-01T00:00:00Z");
    let job = fleet.clone("job");
    std::fs::write(job.join("stacks/c00/changed"), "").unwrap();
    let held = run(&job, &["apply", "--env", "dev", "--components", "c00"]);
    assert_eq!(held.status.code(), Some(3), "{}", text(&held));
    assert!(text(&held).contains("run 99"), "{}", text(&held));

    let refused = run(&job, &["state", "unlock", "--env", "dev"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("--force and --reason"));

    let out = orchestrator(
        &job,
        &[
            "state",
            "unlock",
            "--env",
            "dev",
            "--force",
            "--reason",
            "runner died",
        ],
    )
    .env("USER", "alice")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("released the lock of run 99"),
        "{}",
        text(&out)
    );
    let state = fleet.state();
    assert!(state["lock"].is_null());
    let last = state["history"].as_array().unwrap().last().unwrap().clone();
    let note = last["note"].as_str().unwrap();
    assert!(
        note.contains("alice") && note.contains("runner died"),
        "{note}"
    );

    let history = run(&job, &["state", "history", "--env", "dev", "--all"]);
    assert_eq!(history.status.code(), Some(0), "{}", text(&history));
    assert!(text(&history).contains("runner died"), "{}", text(&history));
}

#[test]
fn an_unreachable_origin_keeps_the_state_locally_and_the_next_run_pushes_it() {
    // The component takes origin away mid-run, as a network outage would.
    let fleet = Fleet::new(1, "mv \"$ORIGIN\" \"$ORIGIN.away\"");
    let job = fleet.clone("job");
    let origin = fleet.origin();
    let out = orchestrator(&job, &["apply", "--env", "dev"])
        .env("ORIGIN", &origin)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("next run pushes it"), "{said}");
    let local: Value =
        serde_json::from_str(&std::fs::read_to_string(job.join(STATE)).unwrap()).unwrap();
    assert_eq!(status(&local, "c00"), "succeeded");

    std::fs::rename(origin.with_extension("git.away"), &origin).unwrap();
    let out = run(&job, &["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let state = fleet.state();
    assert_eq!(status(&state, "c00"), "succeeded");
    assert!(state["lock"].is_null(), "{state:#}");
}

/// An https-like remote that refuses every credential, counting requests.
fn refusing_server() -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/org/infra.git", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let (c, s) = (count.clone(), seen.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            c.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 8192];
            let n = stream.read(&mut buf).unwrap_or(0);
            s.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (url, count, seen)
}

#[test]
fn a_wrong_token_fails_at_once_and_never_shows_up_anywhere() {
    let fleet = Fleet::new(1, "true");
    let job = fleet.clone("job");
    let (url, requests, seen) = refusing_server();
    git(&job, &["remote", "set-url", "origin", &url]);
    let token = "ghs_NotARealTokenButSecret0123456789";
    let out = orchestrator(&job, &["apply", "--env", "dev"])
        .env("GITHUB_TOKEN", token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("authentication failed"), "{said}");
    assert!(said.contains("contents: write"), "{said}");
    // libgit2 asks again after each refusal; the store answers once.
    assert!(
        requests.load(Ordering::SeqCst) <= 4,
        "{}",
        requests.load(Ordering::SeqCst)
    );
    // The token went to the server as basic auth, and nowhere else.
    assert!(seen.lock().unwrap().contains("Authorization: Basic"));
    assert!(!said.contains(token));
    assert_nowhere(fleet.root(), token);
}

#[test]
fn the_token_stays_out_of_files_after_a_successful_run() {
    let fleet = Fleet::new(2, "true");
    let job = fleet.clone("job");
    let token = "ghs_AnotherSecretValue9876543210";
    let out = orchestrator(&job, &["apply", "--env", "dev"])
        .env("GITHUB_TOKEN", token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(token));
    assert_nowhere(fleet.root(), token);
}

#[test]
fn no_commit_keeps_the_state_local_and_says_so() {
    let fleet = Fleet::new(1, "true");
    let job = fleet.clone("job");
    let out = run(&job, &["apply", "--env", "dev", "--no-commit"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("only (--no-commit)"), "{}", text(&out));
    assert!(job.join(STATE).exists());
    assert!(git(&fleet.origin(), &["branch", "--list", "orchestrator-state"]).is_empty());
}

#[test]
fn an_https_origin_without_a_token_keeps_the_state_local_outside_github() {
    let fleet = Fleet::new(1, "true");
    let job = fleet.clone("job");
    git(
        &job,
        &[
            "remote",
            "set-url",
            "origin",
            "https://github.com/org/infra.git",
        ],
    );
    let out = run(&job, &["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("no token"), "{}", text(&out));

    let job2 = fleet.clone("job2");
    git(
        &job2,
        &[
            "remote",
            "set-url",
            "origin",
            "https://github.com/org/infra.git",
        ],
    );
    let out = orchestrator(&job2, &["apply", "--env", "dev"])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("github-token"), "{}", text(&out));
    assert!(!job2.join(STATE).exists());
}

#[test]
fn state_on_the_checked_out_branch_is_committed_there() {
    let fleet = Fleet::new(1, "true");
    let job = fleet.clone("job");
    let config = std::fs::read_to_string(job.join("orchestrator.yaml")).unwrap();
    std::fs::write(
        job.join("orchestrator.yaml"),
        format!("{config}state: {{branch: current}}\n"),
    )
    .unwrap();
    std::fs::write(job.join(".gitignore"), ".orchestrator/logs/\n").unwrap();
    git(&job, &["commit", "-q", "-am", "state on main"]);
    git(&job, &["push", "-q", "origin", "main"]);
    let out = run(&job, &["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let text = git(&fleet.origin(), &["show", &format!("main:{STATE}")]);
    let state: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status(&state, "c00"), "succeeded");
    // The checkout moved with the pushes and shows no change.
    assert_eq!(git(&job, &["status", "--porcelain"]).trim(), "");
    assert_eq!(
        git(&job, &["rev-parse", "HEAD"]),
        git(&fleet.origin(), &["rev-parse", "main"])
    );
}

/// Fails if any file under `root` (clones, origin, logs, state, git
/// config) contains `secret`.
fn assert_nowhere(root: &Path, secret: &str) {
    for entry in walk(root) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(!found, "the secret is in {}", entry.display());
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn a_failed_run_still_pushes_its_records_and_releases_the_lock() {
    let fleet = Fleet::new(1, "echo broken >&2; exit 1");
    let job = fleet.clone("job");
    let out = run(&job, &["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let state = fleet.state();
    assert_eq!(status(&state, "c00"), "failed");
    assert!(state["lock"].is_null(), "{state:#}");
}

#[test]
fn a_cancelled_run_pushes_its_records_and_releases_the_lock_before_it_exits() {
    let fleet = Fleet::new(1, "touch \"$STARTED\"; sleep 30");
    let job = fleet.clone("job");
    let started = fleet.root().join("started");
    let child = orchestrator(&job, &["apply", "--env", "dev"])
        .env("STARTED", &started)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..2000 {
        if started.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(started.exists(), "the component never started");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let state = fleet.state();
    assert_eq!(status(&state, "c00"), "cancelled");
    assert!(state["lock"].is_null(), "{state:#}");
}

#[test]
fn plan_in_a_fresh_clone_reads_what_other_jobs_pushed() {
    let fleet = Fleet::new(2, "true");
    let first = fleet.clone("first");
    let out = run(&first, &["apply", "--env", "dev", "--components", "c00"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let second = fleet.clone("second");
    let out = run(&second, &["plan", "--env", "dev", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions = common::plan_actions(&plan);
    assert_eq!(
        actions,
        [
            ("c00".to_string(), "noop".to_string()),
            ("c01".to_string(), "create".to_string())
        ]
    );
}

#[test]
fn a_run_pushes_its_own_records_even_if_its_checkout_copy_was_rewritten_meanwhile() {
    use std::time::{Duration, SystemTime};

    use orchestrator_action::config::{self, CloudName, ComponentName, EnvName};
    use orchestrator_action::events::{Event, Finished, Status, Subscriber, Target};
    use orchestrator_action::plan::Action;
    use orchestrator_action::state::lock::LOCK_TTL;
    use orchestrator_action::state::publish::{self, Claim, Publisher};
    use orchestrator_action::state::recorder::{Keeping, Recorder};
    use orchestrator_action::state::sync::Options;
    use orchestrator_action::state::{RunInfo, Store, store};

    let fleet = Fleet::new(1, "true");
    let job = fleet.clone("job");
    let config = config::load(&job.join("orchestrator.yaml")).unwrap();
    let store = Arc::new(Store::open(&config, Options::default()).unwrap());
    assert!(store.is_shared(), "{}", store.describe());
    let (env, cloud) = (
        EnvName::parse("dev").unwrap(),
        CloudName::parse("aws").unwrap(),
    );
    let target = store.target(&env, &cloud);
    let run = RunInfo {
        id: 7,
        attempt: 1,
        url: None,
        actor: None,
    };
    let claim = Claim {
        id: 7,
        run: run.clone(),
        host: None,
        components: None,
        ttl: LOCK_TTL,
    };
    publish::take_lock(&store, &target, &claim, Duration::ZERO, |_| {}, |_| true).unwrap();
    let before_the_run = std::fs::read(&target.local).unwrap();
    let state = store::read(&target.local, &env, &cloud).unwrap().unwrap();
    let mut recorder = Recorder::new(
        vec![(cloud.clone(), target.local.clone(), state)],
        Some(run),
        None,
        Keeping::Git,
    );
    let mut publisher = Publisher::new(store.clone(), vec![target.clone()], claim);
    let component = Target {
        cloud: cloud.clone(),
        component: ComponentName::parse("c00").unwrap(),
    };
    let now = SystemTime::now();
    for event in [
        Event::Started {
            target: component.clone(),
            action: Action::Create,
            at: now,
        },
        Event::Finished(Box::new(Finished {
            target: component,
            action: Action::Create,
            status: Status::Succeeded,
            attempts: 1,
            started_at: Some(now),
            finished_at: now,
            error: None,
            fingerprint: "sha256:c00".into(),
            outputs: Default::default(),
            tail: Vec::new(),
        })),
    ] {
        recorder.on_event(&event);
        publisher.on_event(&event);
    }
    let recorded = recorder.finish();
    assert!(recorded.failures.is_empty(), "{:?}", recorded.failures);

    // Another process working in the same checkout puts back an older copy
    // after this run's last write and before its last push.
    std::fs::write(&target.local, &before_the_run).unwrap();
    let report = publisher.finish(&recorded);

    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let pushed = fleet.state();
    assert_eq!(status(&pushed, "c00"), "succeeded", "{pushed}");
    assert_eq!(pushed["components"]["c00"]["fingerprint"], "sha256:c00");
    assert_eq!(pushed["lock"], Value::Null, "the lock is released");
}
