//! The process runner against real child processes: fake `tofu` and `helm`
//! scripts that record their arguments, scripts that ignore SIGINT, fork
//! grandchildren, fail transiently or print invalid UTF-8.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use orchestrator_action::config::{
    CloudName, Commands, Component, ComponentName, EnvName, Runner, Template,
};
use orchestrator_action::exec::presets::{Action, Step, StepContext};
use orchestrator_action::exec::runner::{
    self, Backoff, Job, MAX_CANCEL_GRACE, Outcome, RunEvent, RunResult, Stream, TAIL_LINES,
};
use orchestrator_action::exec::transient::TransientPatterns;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// A run's result, every event it delivered, and how long it took.
struct Ran {
    result: RunResult,
    events: Vec<RunEvent>,
    elapsed: Duration,
}

impl Ran {
    fn lines(&self, stream: Stream) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                RunEvent::Line { stream: s, text } if *s == stream => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    fn retries(&self) -> Vec<(u32, &str)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                RunEvent::Retrying {
                    attempt, pattern, ..
                } => Some((*attempt, pattern.as_str())),
                _ => None,
            })
            .collect()
    }
}

async fn run(job: &Job) -> Ran {
    run_with(job, &CancellationToken::new(), |_| {}).await
}

/// Runs `job`, also handing every event to `on_event` (which may cancel).
async fn run_with(
    job: &Job,
    cancel: &CancellationToken,
    mut on_event: impl FnMut(&RunEvent) + Send,
) -> Ran {
    let mut events = Vec::new();
    let started = Instant::now();
    let result = runner::run(job, cancel, &mut |event| {
        on_event(&event);
        events.push(event);
    })
    .await;
    Ran {
        result,
        events,
        elapsed: started.elapsed(),
    }
}

/// A job running `script` with `sh -c` in `dir`, with short timeouts and
/// millisecond backoff.
fn shell_job(dir: &Path, script: &str) -> Job {
    Job {
        steps: vec![Step {
            program: "sh".to_string(),
            args: vec!["-c".to_string(), script.to_string()],
        }],
        cwd: dir.to_path_buf(),
        env: Vec::new(),
        timeout: Duration::from_secs(10),
        retries: 0,
        transient: TransientPatterns::defaults(),
        grace: Duration::from_millis(300),
        backoff: Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(50),
        },
        kill_now: CancellationToken::new(),
    }
}

fn component(runner: Runner, commands: Commands, env: &[(&str, &str)]) -> Component {
    Component {
        name: ComponentName::parse("network").unwrap(),
        description: None,
        path: Template::parse("stacks/{cloud}/network").unwrap(),
        runner,
        depends_on: Vec::new(),
        commands,
        timeout: Duration::from_secs(10),
        retries: 0,
        retry_delay: Duration::from_millis(10),
        retry_on: None,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<IndexMap<_, _>>(),
        watch: Vec::new(),
        verify: Vec::new(),
    }
}

/// A repository root holding the component directory and a values file.
fn context(root: &Path, component: &Component) -> StepContext {
    let ctx = StepContext::new(
        root,
        component,
        &EnvName::parse("dev").unwrap(),
        &CloudName::parse("aws").unwrap(),
        root.join("values.json"),
    );
    std::fs::create_dir_all(&ctx.workdir).unwrap();
    std::fs::write(&ctx.values_file, "{}").unwrap();
    ctx
}

fn write_executable(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A directory of fake `tofu`, `terraform` and `helm` programs that append
/// their name and arguments to `$ARGV_LOG`, one line per invocation, and
/// fail when called with `$FAIL_ON` as first argument.
fn fake_tools(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["tofu", "terraform", "helm"] {
        write_executable(
            &bin.join(tool),
            "printf '%s\\n' \"$(basename \"$0\") $*\" >> \"$ARGV_LOG\"\n\
             if [ \"$1\" = \"$FAIL_ON\" ]; then echo \"Error: $1 failed\" >&2; exit 1; fi\n",
        );
    }
    bin
}

/// The component's environment putting the fake tools first on `PATH`.
fn fake_tool_env(bin: &Path, log: &Path) -> Vec<(&'static str, String)> {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    vec![
        ("PATH", path),
        ("ARGV_LOG", log.display().to_string()),
        ("FAIL_ON", "nothing".to_string()),
    ]
}

/// Runs `action` of a `runner` component through the fake tools and returns
/// the recorded invocations, with the values file shown as `VALUES`.
async fn recorded_argv(runner: Runner, action: Action) -> Vec<String> {
    let dir = TempDir::new().unwrap();
    let bin = fake_tools(dir.path());
    let log = dir.path().join("argv.log");
    let env = fake_tool_env(&bin, &log);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let c = component(runner, Commands::default(), &env);
    let ctx = context(dir.path(), &c);
    let job = Job::new(&c, action, &ctx, TransientPatterns::defaults()).unwrap();
    let ran = run(&job).await;
    assert_eq!(ran.result.outcome, Outcome::Succeeded, "{:?}", ran.events);
    let values = ctx.values_file.display().to_string();
    std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|line| line.replace(&values, "VALUES"))
        .collect()
}

fn read_pid(path: &Path) -> i32 {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
    text.trim().parse().unwrap()
}

/// Whether `pid` is a live process. A zombie counts as gone: it has been
/// killed and only waits for its new parent (init) to reap it, which a
/// container's init may never do.
fn alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Asserts that every pid is gone, polling briefly because a signalled
/// process takes a moment to die.
async fn assert_all_gone(pids: &[i32]) {
    let until = Instant::now() + Duration::from_secs(2);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for &pid in pids {
        assert!(!alive(pid), "process {pid} is still running");
    }
}

#[tokio::test]
async fn tofu_and_terraform_init_then_run_the_action_with_the_values_file() {
    for (runner, program) in [(Runner::Tofu, "tofu"), (Runner::Terraform, "terraform")] {
        let expect = |action: &str| {
            vec![
                format!("{program} init -input=false"),
                format!("{program} {action}"),
            ]
        };
        assert_eq!(
            recorded_argv(runner, Action::Plan).await,
            expect("plan -input=false -var-file=VALUES")
        );
        assert_eq!(
            recorded_argv(runner, Action::Apply).await,
            expect("apply -auto-approve -input=false -var-file=VALUES")
        );
        assert_eq!(
            recorded_argv(runner, Action::Destroy).await,
            expect("destroy -auto-approve -input=false -var-file=VALUES")
        );
    }
}

#[tokio::test]
async fn helm_installs_dry_runs_and_uninstalls_the_release_named_after_the_component() {
    assert_eq!(
        recorded_argv(Runner::Helm, Action::Apply).await,
        ["helm upgrade --install network . -f VALUES"]
    );
    assert_eq!(
        recorded_argv(Runner::Helm, Action::Plan).await,
        ["helm upgrade --install network . -f VALUES --dry-run"]
    );
    assert_eq!(
        recorded_argv(Runner::Helm, Action::Destroy).await,
        ["helm uninstall network"]
    );
}

#[tokio::test]
async fn a_failing_init_fails_the_attempt_before_the_action_starts() {
    let dir = TempDir::new().unwrap();
    let bin = fake_tools(dir.path());
    let log = dir.path().join("argv.log");
    let mut env = fake_tool_env(&bin, &log);
    env[2].1 = "init".to_string();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let c = component(Runner::Tofu, Commands::default(), &env);
    let job = Job::new(
        &c,
        Action::Apply,
        &context(dir.path(), &c),
        TransientPatterns::defaults(),
    )
    .unwrap();

    let ran = run(&job).await;

    assert_eq!(
        ran.result.outcome,
        Outcome::Failed {
            code: Some(1),
            signal: None,
            step: "tofu init -input=false".to_string()
        }
    );
    assert_eq!(ran.result.tail, ["Error: init failed"]);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "tofu init -input=false\n"
    );
}

#[tokio::test]
async fn a_timeout_kills_a_child_that_ignores_sigint_and_its_grandchild() {
    let dir = TempDir::new().unwrap();
    let mut job = shell_job(
        dir.path(),
        "trap '' INT\n\
         sleep 30 &\n\
         echo $! > grandchild.pid\n\
         echo $$ > leader.pid\n\
         wait\n",
    );
    job.timeout = Duration::from_millis(500);

    let ran = run(&job).await;

    assert_eq!(
        ran.result.outcome,
        Outcome::TimedOut {
            after: Duration::from_millis(500)
        }
    );
    // SIGINT was ignored, so only SIGKILL after the grace period ended it.
    assert!(ran.elapsed >= job.timeout + job.grace, "{:?}", ran.elapsed);
    assert!(
        ran.elapsed < job.timeout + job.grace + Duration::from_secs(2),
        "{:?}",
        ran.elapsed
    );
    let leader = read_pid(&dir.path().join("leader.pid"));
    let grandchild = read_pid(&dir.path().join("grandchild.pid"));
    assert_all_gone(&[leader, grandchild]).await;
}

#[tokio::test]
async fn a_background_grandchild_holding_stdout_does_not_hang_the_run() {
    let dir = TempDir::new().unwrap();
    let job = shell_job(
        dir.path(),
        "sleep 30 &\n\
         echo $! > grandchild.pid\n\
         echo done\n",
    );

    let ran = run(&job).await;

    assert_eq!(ran.result.outcome, Outcome::Succeeded);
    assert_eq!(ran.lines(Stream::Stdout), ["done"]);
    assert!(ran.elapsed < Duration::from_secs(3), "{:?}", ran.elapsed);
    assert_all_gone(&[read_pid(&dir.path().join("grandchild.pid"))]).await;
}

#[tokio::test]
async fn cancelling_mid_run_stops_the_group_promptly_and_leaves_nothing_behind() {
    let dir = TempDir::new().unwrap();
    let mut job = shell_job(
        dir.path(),
        // Like tofu, the leader exits cleanly on SIGINT. It polls with short
        // sleeps because a SIGINT landing between fork and exec of a long
        // `sleep` would be lost, and the shell would wait for that sleep.
        // The background grandchild ignores SIGINT, as background jobs of
        // a non-interactive shell do.
        "trap 'exit 130' INT\n\
         sleep 30 &\n\
         echo $! > grandchild.pid\n\
         echo $$ > leader.pid\n\
         echo started\n\
         while :; do sleep 0.05; done\n",
    );
    // A process that stops on SIGINT must not wait out the grace period.
    job.grace = Duration::from_secs(10);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();

    let ran = run_with(&job, &cancel, move |event| {
        if matches!(event, RunEvent::Line { text, .. } if text == "started") {
            trigger.cancel();
        }
    })
    .await;

    assert_eq!(ran.result.outcome, Outcome::Cancelled);
    assert_eq!(ran.result.attempts, 1);
    assert!(ran.elapsed < Duration::from_secs(3), "{:?}", ran.elapsed);
    let leader = read_pid(&dir.path().join("leader.pid"));
    let grandchild = read_pid(&dir.path().join("grandchild.pid"));
    assert_all_gone(&[leader, grandchild]).await;
}

#[tokio::test]
async fn cancelling_a_child_that_ignores_sigint_kills_it_within_the_cancel_grace() {
    let dir = TempDir::new().unwrap();
    let mut job = shell_job(
        dir.path(),
        "trap '' INT\n\
         echo $$ > leader.pid\n\
         echo started\n\
         sleep 30\n",
    );
    // Longer than GitHub's window after a cancel: the cap must apply.
    job.grace = Duration::from_secs(60);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();

    let ran = run_with(&job, &cancel, move |event| {
        if matches!(event, RunEvent::Line { text, .. } if text == "started") {
            trigger.cancel();
        }
    })
    .await;

    assert_eq!(ran.result.outcome, Outcome::Cancelled);
    assert!(ran.elapsed >= MAX_CANCEL_GRACE, "{:?}", ran.elapsed);
    assert!(
        ran.elapsed < MAX_CANCEL_GRACE + Duration::from_secs(2),
        "{:?}",
        ran.elapsed
    );
    assert_all_gone(&[read_pid(&dir.path().join("leader.pid"))]).await;
}

#[tokio::test]
async fn cancelling_during_the_backoff_starts_no_new_attempt() {
    let dir = TempDir::new().unwrap();
    let mut job = shell_job(
        dir.path(),
        "echo run >> runs.log\n\
         echo 'Error: Error acquiring the state lock' >&2\n\
         exit 1\n",
    );
    job.retries = 3;
    job.backoff = Backoff {
        base: Duration::from_secs(30),
        max: Duration::from_secs(30),
    };
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();

    let ran = run_with(&job, &cancel, move |event| {
        if matches!(event, RunEvent::Retrying { .. }) {
            trigger.cancel();
        }
    })
    .await;

    assert_eq!(ran.result.outcome, Outcome::Cancelled);
    assert_eq!(ran.result.attempts, 1);
    assert!(ran.elapsed < Duration::from_secs(3), "{:?}", ran.elapsed);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("runs.log")).unwrap(),
        "run\n"
    );
}

#[tokio::test]
async fn a_run_cancelled_before_it_starts_runs_nothing() {
    let dir = TempDir::new().unwrap();
    let job = shell_job(dir.path(), "touch ran");
    let cancel = CancellationToken::new();
    cancel.cancel();

    let ran = run_with(&job, &cancel, |_| {}).await;

    assert_eq!(ran.result.outcome, Outcome::Cancelled);
    assert_eq!(ran.result.attempts, 0);
    assert!(ran.events.is_empty());
    assert!(!dir.path().join("ran").exists());
}

#[tokio::test]
async fn a_transient_failure_is_retried_and_the_retry_can_succeed() {
    let dir = TempDir::new().unwrap();
    let mut job = shell_job(
        dir.path(),
        "if [ ! -e attempted ]; then\n\
           touch attempted\n\
           echo 'Error: Failed to retrieve provider: Get \"https://registry.opentofu.org/v1/providers\": net/http: TLS handshake timeout' >&2\n\
           exit 1\n\
         fi\n\
         echo applied\n",
    );
    job.retries = 2;

    let ran = run(&job).await;

    assert_eq!(ran.result.outcome, Outcome::Succeeded);
    assert_eq!(ran.result.attempts, 2);
    assert_eq!(ran.retries(), [(2, "TLS handshake timeout")]);
    // The tail is the last attempt's alone.
    assert_eq!(ran.result.tail, ["applied"]);
}

#[tokio::test]
async fn an_ordinary_failure_is_not_retried() {
    let dir = TempDir::new().unwrap();
    let mut job = shell_job(
        dir.path(),
        "echo run >> runs.log\n\
         echo 'Error: Invalid reference' >&2\n\
         exit 1\n",
    );
    job.retries = 2;

    let ran = run(&job).await;

    assert!(matches!(
        ran.result.outcome,
        Outcome::Failed { code: Some(1), .. }
    ));
    assert_eq!(ran.result.attempts, 1);
    assert!(ran.retries().is_empty());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("runs.log")).unwrap(),
        "run\n"
    );
}

#[tokio::test]
async fn a_failure_that_stays_transient_stops_after_every_retry_is_spent() {
    let dir = TempDir::new().unwrap();
    let mut job = shell_job(
        dir.path(),
        "echo run >> runs.log\n\
         echo 'Error: Error acquiring the state lock' >&2\n\
         exit 1\n",
    );
    job.retries = 2;

    let ran = run(&job).await;

    assert!(matches!(
        ran.result.outcome,
        Outcome::Failed { code: Some(1), .. }
    ));
    assert_eq!(ran.result.attempts, 3);
    assert_eq!(
        ran.retries(),
        [
            (2, "Error acquiring the state lock"),
            (3, "Error acquiring the state lock")
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("runs.log")).unwrap(),
        "run\nrun\nrun\n"
    );
}

#[tokio::test]
async fn lines_from_stdout_and_stderr_both_arrive_in_order_per_stream() {
    let dir = TempDir::new().unwrap();
    let job = shell_job(
        dir.path(),
        "for i in 1 2 3; do echo \"out $i\"; echo \"err $i\" >&2; done\n\
         printf 'no newline at the end'\n",
    );

    let ran = run(&job).await;

    assert_eq!(ran.result.outcome, Outcome::Succeeded);
    assert_eq!(
        ran.lines(Stream::Stdout),
        ["out 1", "out 2", "out 3", "no newline at the end"]
    );
    assert_eq!(ran.lines(Stream::Stderr), ["err 1", "err 2", "err 3"]);
}

#[tokio::test]
async fn non_utf8_output_is_replaced_and_does_not_break_the_run() {
    let dir = TempDir::new().unwrap();
    let job = shell_job(dir.path(), "printf 'bad \\377 byte\\n'; echo after");

    let ran = run(&job).await;

    assert_eq!(ran.result.outcome, Outcome::Succeeded);
    assert_eq!(ran.lines(Stream::Stdout), ["bad \u{fffd} byte", "after"]);
}

#[tokio::test]
async fn the_tail_keeps_the_last_lines_of_a_failed_attempt() {
    let dir = TempDir::new().unwrap();
    let job = shell_job(
        dir.path(),
        "i=1; while [ $i -le 60 ]; do echo \"line $i\"; i=$((i + 1)); done; exit 3",
    );

    let ran = run(&job).await;

    assert!(matches!(
        ran.result.outcome,
        Outcome::Failed { code: Some(3), .. }
    ));
    assert_eq!(ran.result.tail.len(), TAIL_LINES);
    assert_eq!(ran.result.tail.first().unwrap(), "line 11");
    assert_eq!(ran.result.tail.last().unwrap(), "line 60");
}

#[tokio::test]
async fn a_shell_component_sees_its_environment_and_runs_in_its_directory() {
    let dir = TempDir::new().unwrap();
    let commands = Commands {
        apply: Some(
            Template::parse(
                "echo \"$ORCHESTRATOR_ENV $ORCHESTRATOR_CLOUD $ORCHESTRATOR_COMPONENT\"; \
                 echo \"config=$ORCHESTRATOR_CONFIG\"; \
                 echo \"greeting=$GREETING\"; \
                 echo \"cwd=$(pwd -P)\"; \
                 echo 'deploying {env} in {cloud}'",
            )
            .unwrap(),
        ),
        ..Commands::default()
    };
    let c = component(Runner::Shell, commands, &[("GREETING", "hello")]);
    let ctx = context(dir.path(), &c);
    let job = Job::new(&c, Action::Apply, &ctx, TransientPatterns::defaults()).unwrap();

    let ran = run(&job).await;

    assert_eq!(ran.result.outcome, Outcome::Succeeded, "{:?}", ran.events);
    let workdir = ctx.workdir.canonicalize().unwrap();
    assert_eq!(
        ran.lines(Stream::Stdout),
        [
            "dev aws network".to_string(),
            format!("config={}", ctx.values_file.display()),
            "greeting=hello".to_string(),
            format!("cwd={}", workdir.display()),
            "deploying dev in aws".to_string(),
        ]
    );
}

#[tokio::test]
async fn a_missing_program_is_reported_as_not_started_and_not_retried() {
    let dir = TempDir::new().unwrap();
    let mut job = shell_job(dir.path(), "");
    job.steps = vec![Step {
        program: "orchestrator-test-no-such-program".to_string(),
        args: vec!["apply".to_string()],
    }];
    job.retries = 2;

    let ran = run(&job).await;

    match &ran.result.outcome {
        Outcome::NotStarted { step, error } => {
            assert_eq!(step, "orchestrator-test-no-such-program apply");
            assert_eq!(
                error,
                "`orchestrator-test-no-such-program` was not found on PATH"
            );
        }
        other => panic!("expected NotStarted, got {other:?}"),
    }
    assert_eq!(ran.result.attempts, 1);
}

/// As in a shell: a bare name is looked for on PATH only, never in the
/// component's directory, which a pull request can fill.
#[tokio::test]
async fn a_program_of_the_same_name_in_the_component_directory_is_not_run_instead() {
    let dir = TempDir::new().unwrap();
    let planted = dir.path().join("orchestrator-test-planted");
    std::fs::write(&planted, "#!/bin/sh\ntouch ran\n").unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut job = shell_job(dir.path(), "");
    job.steps = vec![Step {
        program: "orchestrator-test-planted".to_string(),
        args: Vec::new(),
    }];

    let ran = run(&job).await;

    assert!(
        matches!(&ran.result.outcome, Outcome::NotStarted { error, .. } if error.contains("not found on PATH")),
        "{:?}",
        ran.result.outcome
    );
    assert!(!dir.path().join("ran").exists(), "the planted file ran");
    // By its path, it runs.
    job.steps[0].program = planted.display().to_string();
    assert!(matches!(run(&job).await.result.outcome, Outcome::Succeeded));
    assert!(dir.path().join("ran").exists());
}

/// A relative PATH entry means a directory under the one the step runs in,
/// as for a shell started there, whichever component it is.
#[tokio::test]
async fn a_relative_path_entry_is_relative_to_the_components_directory() {
    let root = TempDir::new().unwrap();
    for name in ["one", "two"] {
        let bin = root.path().join(name).join("tools");
        std::fs::create_dir_all(&bin).unwrap();
        let tool = bin.join("orchestrator-test-relative");
        std::fs::write(&tool, format!("#!/bin/sh\necho {name}\n")).unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for name in ["one", "two"] {
        let mut job = shell_job(&root.path().join(name), "");
        job.env = vec![(
            "PATH".to_string(),
            format!("tools:{}", std::env::var("PATH").unwrap()),
        )];
        job.steps = vec![Step {
            program: "orchestrator-test-relative".to_string(),
            args: Vec::new(),
        }];
        let ran = run(&job).await;
        assert!(
            matches!(ran.result.outcome, Outcome::Succeeded),
            "{:?}",
            ran.result.outcome
        );
        assert_eq!(
            ran.lines(Stream::Stdout),
            [name],
            "the tool of `{name}` ran"
        );
    }
}

#[tokio::test]
async fn each_step_is_announced_before_it_runs() {
    let dir = TempDir::new().unwrap();
    let mut job = shell_job(dir.path(), "echo first");
    job.steps.push(Step {
        program: "sh".to_string(),
        args: vec!["-c".to_string(), "echo second".to_string()],
    });

    let ran = run(&job).await;

    let announced: Vec<String> = ran
        .events
        .iter()
        .map(|e| match e {
            RunEvent::Step { attempt, command } => format!("{attempt}: {command}"),
            RunEvent::Line { text, .. } => text.clone(),
            RunEvent::Retrying { .. } => "retrying".to_string(),
        })
        .collect();
    assert_eq!(
        announced,
        [
            "1: sh -c 'echo first'",
            "first",
            "1: sh -c 'echo second'",
            "second"
        ]
    );
}

#[tokio::test]
async fn a_step_that_closes_its_output_early_is_still_waited_for() {
    let dir = TempDir::new().unwrap();
    // Both pipes close well before the process ends; its exit status and
    // its last act (the marker file) must still be seen.
    let job = shell_job(
        dir.path(),
        "echo out; echo err >&2; exec >&- 2>&-; sleep 0.3; touch done; exit 3",
    );

    let ran = run(&job).await;

    assert_eq!(ran.lines(Stream::Stdout), ["out"]);
    assert_eq!(ran.lines(Stream::Stderr), ["err"]);
    assert!(
        matches!(ran.result.outcome, Outcome::Failed { code: Some(3), .. }),
        "{:?}",
        ran.result.outcome
    );
    assert!(
        dir.path().join("done").exists(),
        "the process ran to its end"
    );
}
