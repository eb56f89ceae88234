//! The container action under the runner's contract, through the real
//! binary: a workspace owned by another user, only the variables a runner
//! sets (`GITHUB_*`, `RUNNER_*`, `INPUT_*` with hyphens kept, `HOME`), the
//! output and step-summary files named as the runner names them, and the
//! log read back the way the runner reads it: heredoc outputs parsed with
//! the runner's algorithm, workflow commands outside `::stop-commands::`.
//! The only stand-in is the GitHub API (`tests/fake_github`).

mod common;
mod fake_github;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use common::{copy_dir, git, project_root};
use fake_github::{FakeGitHub, TOKEN};
use serde_json::Value;
use tempfile::TempDir;

/// The token the workflow passes as `github-token`.
const WORKFLOW_TOKEN: &str = "ghs_WorkflowToken0123456789abcdefghijKLMN";
const RUN_ID: &str = "4242";

/// One step of a job, as the runner sets it up for a container action.
struct Runner {
    root: TempDir,
    output: PathBuf,
    summary: PathBuf,
    vars: BTreeMap<String, String>,
}

impl Runner {
    /// A checkout of the shipped example (a git repository whose `origin`
    /// is a bare repository beside it), owned by uid 1001 as the runner's
    /// user owns it, and the runner's directories and variables.
    fn new() -> Runner {
        let root = TempDir::new().expect("temp dir");
        let ws = root.path().join("workspace");
        let project = project_root();
        copy_dir(&project.join("environments"), &ws.join("environments"));
        copy_dir(&project.join("examples"), &ws.join("examples"));
        std::fs::copy(
            project.join("orchestrator.yaml"),
            ws.join("orchestrator.yaml"),
        )
        .expect("copy");
        std::fs::write(ws.join(".gitignore"), ".orchestrator/\n").expect("write");
        git(
            root.path(),
            &["init", "-q", "--bare", "-b", "main", "origin.git"],
        );
        git(&ws, &["init", "-q", "-b", "main"]);
        git(&ws, &["add", "-A"]);
        git(&ws, &["commit", "-q", "-m", "infrastructure"]);
        git(&ws, &["remote", "add", "origin", "../origin.git"]);
        git(&ws, &["push", "-q", "origin", "main"]);
        let sha = git(&ws, &["rev-parse", "HEAD"]).trim().to_string();
        // Tests run as root, as a container action does; the checkout
        // belongs to the runner's user.
        let chown = Command::new("chown")
            .args(["-R", "1001:1001"])
            .arg(&ws)
            .status()
            .expect("chown");
        assert!(chown.success());
        let commands = root.path().join("file_commands");
        let home = root.path().join("home");
        let temp = root.path().join("runner_temp");
        for d in [&commands, &home, &temp, &root.path().join("workflow")] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        let guid = "2f6c7d1e-0b9a-4c3d-8e5f-1a2b3c4d5e6f";
        let file = |prefix: &str| {
            let path = commands.join(format!("{prefix}{guid}"));
            std::fs::write(&path, "").expect("create");
            path
        };
        let output = file("set_output_");
        let summary = file("step_summary_");
        let mut vars = BTreeMap::new();
        let s = |p: &Path| p.display().to_string();
        for (k, v) in [
            ("GITHUB_ACTIONS", "true".to_string()),
            ("CI", "true".into()),
            ("HOME", s(&home)),
            ("GITHUB_WORKSPACE", s(&ws)),
            ("GITHUB_OUTPUT", s(&output)),
            ("GITHUB_STEP_SUMMARY", s(&summary)),
            ("GITHUB_ENV", s(&file("set_env_"))),
            ("GITHUB_STATE", s(&file("save_state_"))),
            ("GITHUB_PATH", s(&file("add_path_"))),
            ("GITHUB_RUN_ID", RUN_ID.into()),
            ("GITHUB_RUN_NUMBER", "17".into()),
            ("GITHUB_RUN_ATTEMPT", "2".into()),
            ("GITHUB_ACTOR", "octo-dev".into()),
            ("GITHUB_TRIGGERING_ACTOR", "octo-dev".into()),
            ("GITHUB_REPOSITORY", "acme/infra".into()),
            ("GITHUB_REPOSITORY_OWNER", "acme".into()),
            ("GITHUB_SERVER_URL", "https://github.com".into()),
            ("GITHUB_API_URL", "https://api.github.com".into()),
            (
                "GITHUB_GRAPHQL_URL",
                "https://api.github.com/graphql".into(),
            ),
            ("GITHUB_SHA", sha),
            ("GITHUB_REF", "refs/heads/main".into()),
            ("GITHUB_REF_NAME", "main".into()),
            ("GITHUB_WORKFLOW", "Infrastructure Orchestrator".into()),
            ("GITHUB_JOB", "deploy".into()),
            ("GITHUB_ACTION", "__self".into()),
            ("GITHUB_EVENT_NAME", "workflow_dispatch".into()),
            ("RUNNER_OS", "Linux".into()),
            ("RUNNER_ARCH", "X64".into()),
            ("RUNNER_NAME", "GitHub Actions 2".into()),
            ("RUNNER_TEMP", s(&temp)),
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("EXAMPLE_SPEED", "0".into()),
        ] {
            vars.insert(k.to_string(), v);
        }
        let mut runner = Runner {
            root,
            output,
            summary,
            vars,
        };
        // What action.yml declares as defaults: the runner passes them all.
        for (name, value) in [
            ("command", "plan"),
            ("environment", ""),
            ("cloud", ""),
            ("components", ""),
            ("max-parallel", ""),
            ("sequential", "false"),
            ("on-failure", "skip-dependents"),
            ("dry-run", "false"),
            ("changed-only", "false"),
            ("from", ""),
            ("to", ""),
            ("config", "orchestrator.yaml"),
            ("github-token", WORKFLOW_TOKEN),
            ("commit-state", "true"),
            ("open-issue-on-failure", "false"),
        ] {
            runner.input(name, value);
        }
        runner
    }

    fn workspace(&self) -> PathBuf {
        self.root.path().join("workspace")
    }

    fn origin(&self) -> PathBuf {
        self.root.path().join("origin.git")
    }

    /// Sets an input as the runner does: `INPUT_` + the name upper-cased,
    /// hyphens kept.
    fn input(&mut self, name: &str, value: &str) -> &mut Runner {
        self.vars.insert(
            format!("INPUT_{}", name.replace(' ', "_").to_uppercase()),
            value.to_string(),
        );
        self
    }

    fn var(&mut self, name: &str, value: &str) -> &mut Runner {
        self.vars.insert(name.to_string(), value.to_string());
        self
    }

    fn event(&mut self, name: &str, payload: &Path) -> &mut Runner {
        let path = self.root.path().join("workflow/event.json");
        std::fs::copy(payload, &path).expect("copy event");
        self.var("GITHUB_EVENT_NAME", name);
        let path = path.display().to_string();
        self.var("GITHUB_EVENT_PATH", &path)
    }

    /// The action's process: no arguments, nothing but the runner's
    /// variables, in the workspace. Like the runner, each step starts with
    /// empty output and summary files.
    fn command(&self) -> Command {
        std::fs::write(&self.output, "").expect("reset outputs");
        std::fs::write(&self.summary, "").expect("reset summary");
        let mut cmd = Command::cargo_bin("orchestrator").expect("binary");
        cmd.env_clear()
            .envs(&self.vars)
            .current_dir(self.workspace());
        cmd
    }

    fn run(&self) -> Step {
        let out = self.command().output().expect("run");
        self.step(out)
    }

    fn spawn(&self) -> Child {
        self.command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    }

    fn step(&self, out: Output) -> Step {
        let outputs = std::fs::read_to_string(&self.output).expect("outputs");
        Step {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            log: String::from_utf8_lossy(&out.stderr).into_owned(),
            outputs: parse_file_commands(&outputs),
            summary: std::fs::read_to_string(&self.summary).expect("summary"),
        }
    }

    fn state(&self, cloud: &str) -> Value {
        let path = self
            .workspace()
            .join(format!(".orchestrator/state/dev-{cloud}.json"));
        serde_json::from_str(&std::fs::read_to_string(path).expect("state file")).expect("json")
    }
}

/// What a step left behind.
struct Step {
    code: Option<i32>,
    stdout: String,
    log: String,
    outputs: BTreeMap<String, String>,
    summary: String,
}

impl Step {
    fn output(&self, name: &str) -> &str {
        self.outputs
            .get(name)
            .unwrap_or_else(|| panic!("no output `{name}` in {:#?}", self.outputs))
    }

    fn json(&self, name: &str) -> Value {
        serde_json::from_str(self.output(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn commands(&self) -> Vec<WorkflowCommand> {
        workflow_commands(&self.log)
    }

    fn annotations(&self, name: &str) -> Vec<WorkflowCommand> {
        self.commands()
            .into_iter()
            .filter(|c| c.name == name)
            .collect()
    }
}

/// Parses a file-command file as the runner does
/// (`FileCommandManager`): `NAME=VALUE` lines, or `NAME<<DELIMITER`, the
/// value's lines, and the delimiter alone on a line. Panics with the
/// runner's own errors.
fn parse_file_commands(text: &str) -> BTreeMap<String, String> {
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the file must end with a newline: {text:?}"
    );
    let mut values = BTreeMap::new();
    let mut lines = text.split_inclusive('\n');
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\n').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let equals = line.find('=');
        let heredoc = line.find("<<");
        match (equals, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                values.insert(line[..e].to_string(), line[e + 1..].to_string());
            }
            (_, Some(h)) => {
                let (name, delimiter) = (&line[..h], &line[h + 2..]);
                assert!(
                    !name.is_empty() && !delimiter.is_empty(),
                    "Invalid format '{line}'"
                );
                let mut value: Vec<&str> = Vec::new();
                loop {
                    let Some(next) = lines.next() else {
                        panic!("Invalid value. Matching delimiter not found '{delimiter}'");
                    };
                    let next = next.strip_suffix('\n').unwrap_or(next);
                    if next == delimiter {
                        break;
                    }
                    value.push(next);
                }
                values.insert(name.to_string(), value.join("\n"));
            }
            _ => panic!("Invalid format '{line}'"),
        }
    }
    values
}

/// A workflow command the runner would act on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WorkflowCommand {
    name: String,
    properties: BTreeMap<String, String>,
    data: String,
}

fn unescape(text: &str, property: bool) -> String {
    let mut out = text.replace("%0D", "\r").replace("%0A", "\n");
    if property {
        out = out.replace("%3A", ":").replace("%2C", ",");
    }
    out.replace("%25", "%")
}

/// The commands in a log, read as the runner reads them: a line starting
/// with `::`, the command and its properties up to the next `::`, then the
/// data; nothing between `::stop-commands::TOKEN` and `::TOKEN::`.
fn workflow_commands(log: &str) -> Vec<WorkflowCommand> {
    let mut found = Vec::new();
    let mut stopped: Option<String> = None;
    for line in log.lines() {
        let Some(rest) = line.trim_start().strip_prefix("::") else {
            continue;
        };
        let Some(end) = rest.find("::") else {
            continue;
        };
        let (head, data) = (&rest[..end], &rest[end + 2..]);
        if let Some(token) = &stopped {
            if head == token {
                stopped = None;
            }
            continue;
        }
        let (name, props) = head.split_once(' ').unwrap_or((head, ""));
        if name == "stop-commands" {
            stopped = Some(data.to_string());
            continue;
        }
        let properties = props
            .split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), unescape(v, true)))
            .collect();
        found.push(WorkflowCommand {
            name: name.to_string(),
            properties,
            data: unescape(data, false),
        });
    }
    assert!(stopped.is_none(), "command processing left stopped");
    found
}

/// Checks that groups open and close in turn, never nested or interleaved,
/// and returns their titles.
fn groups(step: &Step) -> Vec<String> {
    let mut titles = Vec::new();
    let mut open: Option<String> = None;
    for c in step.commands() {
        match c.name.as_str() {
            "group" => {
                assert!(open.is_none(), "group `{}` opened inside {open:?}", c.data);
                open = Some(c.data.clone());
            }
            "endgroup" => {
                titles.push(open.take().expect("endgroup without a group"));
            }
            _ => {}
        }
    }
    assert!(open.is_none(), "group {open:?} never closed");
    titles
}

/// The token appears in the log only in `::add-mask::` lines, which come
/// before anything else that could print it.
fn assert_masked(step: &Step, token: &str) {
    let first = step.log.lines().next().unwrap_or("");
    assert_eq!(first, format!("::add-mask::{token}"), "{}", step.log);
    for line in step.log.lines().filter(|l| l.contains(token)) {
        assert!(line.starts_with("::add-mask::"), "unmasked: {line}");
    }
    for (name, value) in &step.outputs {
        assert!(!value.contains(token), "output {name} holds the token");
    }
    assert!(!step.summary.contains(token), "the summary holds the token");
}

#[test]
fn plan_answers_with_outputs_a_matrix_and_a_summary() {
    let mut runner = Runner::new();
    runner
        .input("command", "plan")
        .input("environment", "dev")
        .input("commit-state", "false");
    let step = runner.run();
    assert_eq!(step.code, Some(0), "{}", step.log);
    assert_eq!(step.stdout, "", "the action prints nothing on stdout");
    assert_masked(&step, WORKFLOW_TOKEN);
    assert_eq!(step.output("result"), "succeeded");
    let plan = step.json("plan");
    assert_eq!(plan.as_array().map(Vec::len), Some(2), "one plan per cloud");
    assert_eq!(plan[1]["cloud"], "azure");
    let waves = step.json("waves");
    let names = |w: &Value| -> Vec<String> {
        w.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{}/{}",
                    c["cloud"].as_str().unwrap(),
                    c["component"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(waves.as_array().map(Vec::len), Some(4));
    assert_eq!(
        names(&waves[0]),
        [
            "aws/network",
            "aws/registry",
            "azure/network",
            "azure/registry"
        ]
    );
    assert_eq!(names(&waves[3]), ["aws/platform", "azure/platform"]);
    assert_eq!(waves[0][0]["action"], "create");
    assert_eq!(
        step.output("changed-components"),
        "network,registry,clusters,dns,addons,monitoring,platform"
    );
    assert_eq!(step.output("failed-components"), "");
    assert_eq!(
        step.output("state-file"),
        ".orchestrator/state/dev-aws.json\n.orchestrator/state/dev-azure.json"
    );
    assert_eq!(step.output("state-commit"), "");
    assert_eq!(step.output("summary"), "plan dev: 14 component(s) to run");
    assert!(
        step.summary.starts_with("## 📋 plan dev\n"),
        "{}",
        step.summary
    );
    assert!(
        step.summary
            .contains("| `clusters` | aws | ➕ create | 1 | `network` |")
    );
    assert!(
        step.summary
            .contains("```mermaid\nflowchart LR\n  subgraph aws\n")
    );
    assert!(step.summary.contains("orchestrator apply --env dev"));
    // The plan's text is in the log, where no line of it is a command.
    assert!(step.log.contains("Plan for dev / aws: 7 to create"));
    assert_eq!(
        step.commands()
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["add-mask"]
    );
    // Planning writes nothing.
    assert!(!runner.workspace().join(".orchestrator/state").exists());
}

#[test]
fn apply_prints_a_group_per_component_annotates_failures_and_records_the_run() {
    let mut runner = Runner::new();
    runner
        .input("command", "apply")
        .input("environment", "dev")
        .input("cloud", "aws")
        .input("commit-state", "false")
        .var("EXAMPLE_FAIL", "clusters");
    let step = runner.run();
    assert_eq!(step.code, Some(1), "{}", step.log);
    assert_masked(&step, WORKFLOW_TOKEN);
    assert_eq!(step.output("result"), "failed");
    assert_eq!(step.output("failed-components"), "clusters");
    assert_eq!(
        step.output("summary"),
        "apply dev: failed (3 succeeded, 1 failed, 3 skipped)"
    );
    assert_eq!(
        step.output("state-file"),
        ".orchestrator/state/dev-aws.json"
    );
    assert_eq!(step.json("plan")["cloud"], "aws");

    // One whole group per component that ran, in the order they finished.
    let titles = groups(&step);
    assert_eq!(titles.len(), 4, "{titles:?}");
    for name in ["network", "registry", "dns"] {
        assert!(
            titles
                .iter()
                .any(|t| t.starts_with(&format!("{name}: create succeeded in "))),
            "{titles:?}"
        );
    }
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("clusters: create failed in "))
    );
    let clusters = &step.log[step.log.find("::group::clusters").unwrap()..];
    let body = &clusters[..clusters.find("::endgroup::").unwrap()];
    assert!(
        body.contains("UnsupportedAvailabilityZoneException"),
        "{body}"
    );

    let errors = step.annotations("error");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].properties["title"],
        "clusters failed to create on dev/aws"
    );
    assert!(errors[0].data.contains("exited with code 1"), "{errors:?}");
    assert!(
        errors[0]
            .data
            .contains("UnsupportedAvailabilityZoneException")
    );

    // The step summary: result, table, graph, and the re-run that resumes.
    let summary = &step.summary;
    assert!(
        summary.starts_with("## ❌ apply dev: failed\n"),
        "{summary}"
    );
    assert!(summary.contains(
        "[run 4242, attempt 2](https://github.com/acme/infra/actions/runs/4242/attempts/2) by `octo-dev`"
    ));
    assert!(summary.contains(
        "| `clusters` | aws | create | ❌ failed: `sh ./component.sh apply` exited with code 1 | 1 |"
    ));
    assert!(
        summary
            .contains("[clusters](https://github.com/acme/infra/actions/runs/4242/attempts/2) |")
    );
    assert!(summary.contains("| `platform` | aws | create | ⏭️ skipped"));
    assert!(summary.contains("n0_1[\"clusters\"]:::failed"));
    assert!(summary.contains("classDef failed "));
    assert!(summary.contains("gh run rerun 4242 --failed"));

    // The run is recorded with the workflow run's id, attempt, link and actor.
    let state = runner.state("aws");
    let run = &state["components"]["network"]["run"];
    assert_eq!(run["id"], 4242);
    assert_eq!(run["attempt"], 2);
    assert_eq!(run["actor"], "octo-dev");
    assert_eq!(
        run["url"],
        "https://github.com/acme/infra/actions/runs/4242/attempts/2"
    );
    assert_eq!(state["components"]["clusters"]["status"], "failed");

    // The workspace belongs to uid 1001: only it was added to safe.directory.
    let gitconfig =
        std::fs::read_to_string(runner.root.path().join("home/.gitconfig")).expect("gitconfig");
    assert!(
        gitconfig.contains(&format!("directory = {}", runner.workspace().display())),
        "{gitconfig}"
    );
}

#[test]
fn apply_commits_the_state_with_the_token_and_reports_the_commit() {
    let mut runner = Runner::new();
    runner
        .input("command", "apply")
        .input("environment", "dev")
        .input("cloud", "azure")
        .input("components", "network registry");
    let step = runner.run();
    assert_eq!(step.code, Some(0), "{}", step.log);
    assert_eq!(step.output("result"), "succeeded");
    assert_eq!(step.output("changed-components"), "network,registry");
    let tip = git(&runner.origin(), &["rev-parse", "orchestrator-state"]);
    assert_eq!(step.output("state-commit"), tip.trim());
    assert!(step.summary.contains(
        "gh workflow run environment-promotion.yml -f source_environment=dev -f target_environment=staging"
    ));
    // A second run has nothing to do, and says so.
    let again = runner.run();
    assert_eq!(again.code, Some(0), "{}", again.log);
    assert_eq!(again.output("summary"), "apply dev: nothing to do");
    assert_eq!(again.output("changed-components"), "");
    assert_eq!(again.json("waves"), serde_json::json!([]));
}

#[test]
fn a_failed_component_opens_an_issue_through_the_input_token() {
    let fake = FakeGitHub::start();
    let mut runner = Runner::new();
    runner
        .input("command", "apply")
        .input("environment", "dev")
        .input("cloud", "aws")
        .input("commit-state", "false")
        .input("open-issue-on-failure", "true")
        .input("github-token", TOKEN)
        .var("GITHUB_API_URL", &fake.url())
        .var("ORCHESTRATOR_GITHUB_RETRY_DELAY", "20ms")
        .var("ORCHESTRATOR_GITHUB_SPACING", "0s")
        .var("EXAMPLE_FAIL", "dns");
    let step = runner.run();
    assert_eq!(step.code, Some(1), "{}", step.log);
    assert_masked(&step, TOKEN);
    let issues = fake.issues_with("<!-- orchestrator:failure env=dev cloud=aws component=dns -->");
    assert_eq!(issues.len(), 1, "{}", step.log);
    let body = &issues[0].body;
    assert!(
        body.contains(
            "[run 4242, attempt 2](https://github.com/acme/infra/actions/runs/4242/attempts/2)"
        ),
        "{body}"
    );
    assert!(body.contains("| Started by | `octo-dev` |"), "{body}");
    assert!(!fake.everything_sent().contains(TOKEN));
}

#[test]
fn sigterm_cancels_the_run_exits_130_and_still_answers() {
    let mut runner = Runner::new();
    runner
        .input("command", "apply")
        .input("environment", "dev")
        .input("cloud", "aws")
        .input("commit-state", "false")
        .var("EXAMPLE_SPEED", "20");
    let child = runner.spawn();
    let state = runner.workspace().join(".orchestrator/state/dev-aws.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&state).is_ok_and(|s| s.contains("\"running\"")) {
        assert!(Instant::now() < deadline, "no component started");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let out = child.wait_with_output().expect("wait");
    let step = runner.step(out);
    assert_eq!(step.code, Some(130), "{}", step.log);
    assert_eq!(step.output("result"), "cancelled");
    assert!(
        step.summary.starts_with("## ⏹️ apply dev: cancelled\n"),
        "{}",
        step.summary
    );
    assert!(step.summary.contains("gh run rerun 4242 --failed"));
    let recorded = runner.state("aws");
    assert_eq!(recorded["components"]["platform"]["status"], "cancelled");
    assert!(
        recorded["components"]
            .as_object()
            .unwrap()
            .values()
            .all(|c| c["status"] != "running"),
        "{recorded:#}"
    );
    groups(&step);
}

#[test]
fn a_bad_input_is_an_error_naming_it_and_the_outputs_are_still_written() {
    let mut runner = Runner::new();
    runner
        .input("command", "apply")
        .input("environment", "dev")
        .input("dry-run", "yes");
    let step = runner.run();
    assert_eq!(step.code, Some(2), "{}", step.log);
    let errors = step.annotations("error");
    assert_eq!(errors.len(), 1, "{}", step.log);
    assert_eq!(errors[0].properties["title"], "Invalid input");
    assert_eq!(
        errors[0].data,
        "input `dry-run`: `yes` is not a boolean: use true or false"
    );
    assert_eq!(step.output("result"), "failed");
    assert_eq!(step.output("summary"), "invalid input `dry-run`");
    assert_eq!(step.output("waves"), "[]");
    assert_eq!(step.output("plan"), "null");

    runner.input("dry-run", "false").input("environment", "");
    let step = runner.run();
    assert_eq!(step.code, Some(2));
    assert_eq!(
        step.annotations("error")[0].data,
        "input `environment`: is required for `apply`"
    );
}

#[test]
fn every_event_payload_is_read_and_described() {
    let fixtures = project_root().join("tests/fixtures");
    let hooks = fixtures.join("github-webhooks");
    let cases = [
        (
            "pull_request",
            fixtures.join("pull_request.opened.json"),
            "pull_request (opened) on #2 from changes into master in Codertocat/Hello-World",
        ),
        (
            "pull_request",
            hooks.join("pull_request.synchronize.json"),
            "pull_request (synchronize) on #2 from changes into master (ec26c3e) in Codertocat/Hello-World",
        ),
        (
            "issue_comment",
            hooks.join("issue_comment.created.json"),
            "issue_comment (created) on issue #1 in Codertocat/Hello-World",
        ),
        (
            "push",
            hooks.join("push.branch.json"),
            "push at refs/heads/master (6113728) in Codertocat/Hello-World",
        ),
        (
            "push",
            hooks.join("push.tag.json"),
            "push at refs/tags/simple-tag (0000000) in Codertocat/Hello-World",
        ),
        (
            "workflow_dispatch",
            hooks.join("workflow_dispatch.json"),
            "workflow_dispatch at refs/heads/master with inputs name in octo-org/octo-repo",
        ),
    ];
    assert_eq!(
        std::fs::read_dir(&hooks).unwrap().count() + 1,
        cases.len(),
        "every payload is tried"
    );
    for (event, path, want) in cases {
        let mut runner = Runner::new();
        runner.input("command", "validate").event(event, &path);
        let step = runner.run();
        assert_eq!(step.code, Some(0), "{event}: {}", step.log);
        assert!(
            step.annotations("warning").is_empty(),
            "{event}: {}",
            step.log
        );
        assert!(
            step.log.lines().any(|l| l == format!("Event: {want}")),
            "{}: {}",
            path.display(),
            step.log
        );
        assert_eq!(step.output("result"), "succeeded");
        assert!(
            step.summary
                .starts_with("## ✅ validate: orchestrator.yaml is valid")
        );
    }
    let mut runner = Runner::new();
    let bad = runner.root.path().join("garbage.json");
    std::fs::write(&bad, "not json").unwrap();
    runner.input("command", "validate").event("push", &bad);
    let step = runner.run();
    assert_eq!(step.code, Some(0));
    let warnings = step.annotations("warning");
    assert_eq!(warnings.len(), 1, "{}", step.log);
    assert!(warnings[0].data.contains("is not a JSON event payload"));
}

#[test]
fn unwatched_modules_and_versions_read_as_numbers_are_warnings_at_their_line() {
    let mut runner = Runner::new();
    let work = runner.workspace();
    std::fs::remove_dir_all(work.join("environments")).unwrap();
    std::fs::create_dir_all(work.join("stacks/net")).unwrap();
    std::fs::create_dir_all(work.join("modules/vpc")).unwrap();
    std::fs::write(
        work.join("stacks/net/main.tf"),
        "module \"vpc\" {\n  source = \"../../modules/vpc\"\n}\n",
    )
    .unwrap();
    std::fs::write(
        work.join("orchestrator.yaml"),
        "version: 1\ncomponents:\n  net: {path: stacks/net, runner: tofu}\nenvironments:\n  dev: {clouds: [aws]}\n",
    )
    .unwrap();
    // And a version YAML reads as a number.
    std::fs::create_dir_all(work.join("environments/dev")).unwrap();
    std::fs::write(
        work.join("environments/dev/net.yaml"),
        "eks_version: 1.30\n",
    )
    .unwrap();
    runner.input("command", "validate");
    let step = runner.run();
    assert_eq!(step.code, Some(0), "{}", step.log);
    let warnings = step.annotations("warning");
    assert_eq!(warnings.len(), 2, "{}", step.log);
    assert_eq!(warnings[0].properties["file"], "environments/dev/net.yaml");
    assert_eq!(warnings[0].properties["line"], "1");
    assert_eq!(warnings[0].properties["title"], "`eks_version`");
    assert!(warnings[0].data.contains("the number 1.3"), "{warnings:?}");
    assert_eq!(warnings[1].properties["file"], "stacks/net/main.tf");
    assert_eq!(warnings[1].properties["line"], "2");
    assert_eq!(warnings[1].properties["col"], "12");
    assert_eq!(warnings[1].properties["title"], "`components.net.watch`");
    assert!(warnings[1].data.contains("modules/vpc"), "{warnings:?}");
    assert!(
        step.summary.contains("| Where | Key | Warning |"),
        "{}",
        step.summary
    );
}

#[test]
fn config_errors_are_annotated_at_their_file_and_line() {
    let mut runner = Runner::new();
    let config = runner.workspace().join("orchestrator.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("depends_on: [clusters]", "depends_on: [clusterz]", 1),
    )
    .unwrap();
    runner.input("command", "validate");
    let step = runner.run();
    assert_eq!(step.code, Some(2), "{}", step.log);
    let errors = step.annotations("error");
    assert_eq!(errors.len(), 1, "{}", step.log);
    assert_eq!(errors[0].properties["file"], "orchestrator.yaml");
    assert_eq!(
        errors[0].properties["title"],
        "`components.monitoring.depends_on`"
    );
    let line: usize = errors[0].properties["line"].parse().unwrap();
    assert_eq!(
        text.lines().nth(line - 1).map(str::trim),
        Some("depends_on: [clusters]")
    );
    assert!(
        errors[0].data.contains("did you mean `clusters`?"),
        "{errors:?}"
    );
    assert_eq!(step.output("result"), "failed");
    assert!(
        step.summary.starts_with("## ❌ validate: 1 problem\n"),
        "{}",
        step.summary
    );
}

#[test]
fn diff_and_an_unready_promotion_answer_with_what_differs() {
    let mut runner = Runner::new();
    runner
        .input("command", "diff")
        .input("from", "dev")
        .input("to", "staging")
        .input("components", "clusters,platform");
    let step = runner.run();
    assert_eq!(step.code, Some(0), "{}", step.log);
    assert_eq!(step.output("changed-components"), "clusters,platform");
    assert!(step.summary.contains("<details>"), "{}", step.summary);
    assert!(step.log.contains("dev → staging"));

    runner.input("command", "promote");
    let before = std::fs::read_to_string(
        runner
            .workspace()
            .join("environments/staging/clusters.yaml"),
    )
    .unwrap();
    let step = runner.run();
    assert_eq!(step.code, Some(1), "{}", step.log);
    assert_eq!(step.output("result"), "failed");
    let errors = step.annotations("error");
    assert_eq!(
        errors[0].properties["title"],
        "dev is not ready to be promoted to staging"
    );
    assert!(
        errors[0].data.contains("dev/aws: nothing is recorded yet"),
        "{errors:?}"
    );
    let after = std::fs::read_to_string(
        runner
            .workspace()
            .join("environments/staging/clusters.yaml"),
    )
    .unwrap();
    assert_eq!(before, after, "a refused promotion writes nothing");
}

#[test]
fn promote_writes_the_target_values_once_the_source_is_deployed() {
    let mut runner = Runner::new();
    runner
        .input("command", "apply")
        .input("environment", "dev")
        .input("commit-state", "false");
    assert_eq!(runner.run().code, Some(0));
    runner
        .input("command", "promote")
        .input("environment", "")
        .input("from", "dev")
        .input("to", "staging");
    let step = runner.run();
    assert_eq!(step.code, Some(0), "{}", step.log);
    assert_eq!(step.output("result"), "succeeded");
    let changed = step.output("changed-components").to_string();
    assert!(changed.contains("clusters"), "{changed}");
    let status = git(
        &runner.workspace(),
        &["-c", "safe.directory=*", "status", "--porcelain"],
    );
    assert!(
        status.contains("environments/staging/clusters.yaml"),
        "{status}"
    );
    assert!(step.log.contains("Wrote "), "{}", step.log);
}

/// action.yml as the project's YAML parser reads it, as JSON.
fn action_yml() -> Value {
    let text = std::fs::read_to_string(project_root().join("action.yml")).unwrap();
    orchestrator_action::yaml::parse(&text)
        .expect("action.yml parses")
        .to_json()
}

#[test]
fn action_yml_declares_exactly_what_the_binary_reads_and_writes() {
    let doc = action_yml();
    let inputs = doc["inputs"].as_object().expect("inputs");
    let declared: Vec<&str> = inputs.keys().map(String::as_str).collect();
    assert_eq!(declared, orchestrator_action::cli::action::INPUTS);
    for (name, input) in inputs {
        assert!(
            input["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}"
        );
        assert!(input["default"].is_string(), "`{name}` has no default");
    }
    let outputs = doc["outputs"].as_object().expect("outputs");
    let declared: Vec<&str> = outputs.keys().map(String::as_str).collect();
    assert_eq!(declared, orchestrator_action::cli::action::OUTPUTS);
    for (name, output) in outputs {
        assert!(
            output["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{name}"
        );
    }
    assert_eq!(doc["runs"]["using"], "docker");
    assert_eq!(doc["runs"]["image"], "Dockerfile");
    assert!(
        doc["runs"]["args"].is_null(),
        "inputs are read from INPUT_*, never args"
    );
}

/// A markdown table's rows under the heading that starts with `heading`:
/// each row's cells, trimmed.
fn table_after(markdown: &str, heading: &str) -> Vec<Vec<String>> {
    let start = markdown
        .find(heading)
        .unwrap_or_else(|| panic!("no `{heading}` in the README"));
    markdown[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn the_readme_tables_match_action_yml() {
    let doc = action_yml();
    let readme = std::fs::read_to_string(project_root().join("README.md")).unwrap();
    let inputs = doc["inputs"].as_object().expect("inputs");
    let rows = table_after(&readme, "### Inputs");
    let listed: Vec<&str> = rows.iter().map(|r| r[0].trim_matches('`')).collect();
    let declared: Vec<&str> = inputs.keys().map(String::as_str).collect();
    assert_eq!(listed, declared, "README inputs against action.yml");
    for row in &rows {
        let name = row[0].trim_matches('`');
        let default = inputs[name]["default"].as_str().unwrap_or_default();
        let shown = if default.is_empty() { "\"\"" } else { default };
        assert_eq!(row[1].trim_matches('`'), shown, "default of `{name}`");
    }
    let outputs = doc["outputs"].as_object().expect("outputs");
    let rows = table_after(&readme, "### Outputs");
    let listed: Vec<&str> = rows.iter().map(|r| r[0].trim_matches('`')).collect();
    let declared: Vec<&str> = outputs.keys().map(String::as_str).collect();
    assert_eq!(listed, declared, "README outputs against action.yml");
}
