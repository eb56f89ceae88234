//! The exact commands each runner executes for plan, apply and destroy.
//!
//! This is the one place that knows how `tofu`, `terraform`, `helm` and
//! `shell` components are driven. It is pure: it turns a component, an action
//! and the environment and cloud into argv lists, and the process runner
//! ([`super::runner`]) executes them in order.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::{CloudName, Component, ComponentName, EnvName, Runner, Template};

/// What to do with a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Show what apply would change.
    Plan,
    /// Deploy the component.
    Apply,
    /// Remove what apply deployed.
    Destroy,
}

impl Action {
    /// The name used on the command line and in state.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Plan => "plan",
            Action::Apply => "apply",
            Action::Destroy => "destroy",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and for which environment and cloud a component's steps run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepContext {
    /// The environment being deployed.
    pub env: EnvName,
    /// The cloud being deployed.
    pub cloud: CloudName,
    /// The component's directory with `{env}` and `{cloud}` filled in, joined
    /// to the repository root.
    pub workdir: PathBuf,
    /// The component's values as a JSON file, written by the caller.
    pub values_file: PathBuf,
    /// Where the component may write its outputs as a JSON object, exported
    /// as `ORCHESTRATOR_OUTPUTS` when set.
    pub outputs_file: Option<PathBuf>,
    /// The run the steps belong to, exported as `ORCHESTRATOR_RUN_ID` when
    /// set.
    pub run_id: Option<u64>,
}

impl StepContext {
    /// The context for `component` in `env` and `cloud`. `root` and
    /// `values_file` should be absolute: the steps run inside `workdir`, so a
    /// relative values path would be resolved from there.
    pub fn new(
        root: &Path,
        component: &Component,
        env: &EnvName,
        cloud: &CloudName,
        values_file: PathBuf,
    ) -> Self {
        StepContext {
            env: env.clone(),
            cloud: cloud.clone(),
            workdir: root.join(component.path.expand(env, cloud)),
            values_file,
            outputs_file: None,
            run_id: None,
        }
    }
}

/// One program to run, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The program, looked up on `PATH`.
    pub program: String,
    /// Its arguments, passed as they are (no shell involved).
    pub args: Vec<String>,
}

impl Step {
    fn new(program: &str, args: &[&str]) -> Self {
        Step {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// Shows the step as a shell command line, quoting arguments that need it,
/// so a user can copy it to reproduce a failure.
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&quote(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", quote(arg))?;
        }
        Ok(())
    }
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Why a component's steps cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresetError {
    /// A `shell` component lacks the command this action needs.
    MissingCommand {
        /// The component.
        component: ComponentName,
        /// The action that needs the command.
        action: Action,
    },
}

impl fmt::Display for PresetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PresetError::MissingCommand { component, action } => write!(
                f,
                "component `{component}` has no `commands.{action}`: add one to \
                 orchestrator.yaml to {action} it with the shell runner"
            ),
        }
    }
}

impl std::error::Error for PresetError {}

/// The steps that perform `action` on `component`, in the order they run.
/// An empty list means there is nothing to run (a `shell` plan without a
/// plan command).
pub fn steps(
    component: &Component,
    action: Action,
    ctx: &StepContext,
) -> Result<Vec<Step>, PresetError> {
    let values = ctx.values_file.to_string_lossy();
    match component.runner {
        Runner::Tofu => Ok(tofu_like("tofu", action, &values)),
        Runner::Terraform => Ok(tofu_like("terraform", action, &values)),
        Runner::Helm => Ok(vec![helm(component.name.as_str(), action, &values)]),
        Runner::Shell => shell(component, action, ctx),
    }
}

fn tofu_like(program: &str, action: Action, values: &str) -> Vec<Step> {
    let var_file = format!("-var-file={values}");
    // `init` every time: it is idempotent, and a fresh CI runner has neither
    // providers nor modules nor a configured backend.
    let init = Step::new(program, &["init", "-input=false"]);
    let run = match action {
        Action::Plan => Step::new(program, &["plan", "-input=false", &var_file]),
        Action::Apply => Step::new(
            program,
            &["apply", "-auto-approve", "-input=false", &var_file],
        ),
        Action::Destroy => Step::new(
            program,
            &["destroy", "-auto-approve", "-input=false", &var_file],
        ),
    };
    vec![init, run]
}

fn helm(release: &str, action: Action, values: &str) -> Step {
    // The values file is JSON, which is valid YAML, so helm reads it as is.
    match action {
        Action::Plan => Step::new(
            "helm",
            &[
                "upgrade",
                "--install",
                release,
                ".",
                "-f",
                values,
                "--dry-run",
            ],
        ),
        Action::Apply => Step::new(
            "helm",
            &["upgrade", "--install", release, ".", "-f", values],
        ),
        Action::Destroy => Step::new("helm", &["uninstall", release]),
    }
}

fn shell(
    component: &Component,
    action: Action,
    ctx: &StepContext,
) -> Result<Vec<Step>, PresetError> {
    let commands = &component.commands;
    let command: Option<&Template> = match action {
        Action::Plan => commands.plan.as_ref(),
        Action::Apply => commands.apply.as_ref(),
        Action::Destroy => commands.destroy.as_ref(),
    };
    match (command, action) {
        (Some(command), _) => Ok(vec![shell_step(&command.expand(&ctx.env, &ctx.cloud))]),
        // A plan is only a preview: a component that cannot show one still
        // deploys, so this is not an error.
        (None, Action::Plan) => Ok(Vec::new()),
        (None, _) => Err(PresetError::MissingCommand {
            component: component.name.clone(),
            action,
        }),
    }
}

/// Characters that mean something to the shell: a command holding any of
/// them needs `sh -c`.
const SHELL_SYNTAX: &[char] = &[
    '|', '&', ';', '<', '>', '(', ')', '$', '`', '\\', '"', '\'', '*', '?', '[', ']', '#', '~',
    '=', '%', '{', '}', '!', '\n',
];

/// Words the shell understands itself (builtins and keywords), which have
/// no program of that name to run, or behave differently as one.
const SHELL_WORDS: &[&str] = &[
    ".", ":", "alias", "break", "case", "cd", "command", "continue", "echo", "eval", "exec",
    "exit", "export", "for", "getopts", "hash", "if", "printf", "read", "readonly", "return",
    "set", "shift", "test", "times", "trap", "type", "ulimit", "umask", "unalias", "unset",
    "until", "wait", "while",
];

/// A shell command as a step. Like make, a command with no shell syntax
/// runs directly, split on whitespace: the result is the same, and the
/// shell's extra process (and its start-up time) is saved on every run.
/// Anything else runs under `sh -c`.
fn shell_step(script: &str) -> Step {
    let words: Vec<&str> = script.split_whitespace().collect();
    let simple =
        !script.contains(SHELL_SYNTAX) && words.first().is_some_and(|w| !SHELL_WORDS.contains(w));
    match words.split_first() {
        Some((program, args)) if simple => Step::new(program, args),
        _ => Step::new("sh", &["-c", script]),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use indexmap::IndexMap;

    use super::*;
    use crate::config::Commands;

    fn component(runner: Runner, commands: Commands) -> Component {
        Component {
            name: ComponentName::parse("addons").unwrap(),
            description: None,
            path: Template::parse("stacks/{cloud}/addons").unwrap(),
            runner,
            depends_on: Vec::new(),
            commands,
            timeout: Duration::from_secs(60),
            retries: 0,
            retry_delay: Duration::from_millis(10),
            retry_on: None,
            env: IndexMap::new(),
            watch: Vec::new(),
            verify: Vec::new(),
        }
    }

    fn ctx(c: &Component) -> StepContext {
        StepContext::new(
            Path::new("/repo"),
            c,
            &EnvName::parse("dev").unwrap(),
            &CloudName::parse("aws").unwrap(),
            PathBuf::from("/tmp/values.json"),
        )
    }

    fn argv(runner: Runner, commands: Commands, action: Action) -> Vec<String> {
        let c = component(runner, commands);
        steps(&c, action, &ctx(&c))
            .unwrap()
            .iter()
            .map(Step::to_string)
            .collect()
    }

    fn shell_commands() -> Commands {
        Commands {
            plan: Some(Template::parse("./plan.sh {env}").unwrap()),
            apply: Some(Template::parse("./apply.sh {env} {cloud}").unwrap()),
            destroy: Some(Template::parse("./destroy.sh --cloud={cloud}").unwrap()),
        }
    }

    #[test]
    fn the_working_directory_fills_in_the_path_template_under_the_root() {
        let c = component(Runner::Tofu, Commands::default());
        assert_eq!(ctx(&c).workdir, PathBuf::from("/repo/stacks/aws/addons"));
    }

    #[test]
    fn tofu_plan_inits_then_plans_with_the_values_file() {
        assert_eq!(
            argv(Runner::Tofu, Commands::default(), Action::Plan),
            [
                "tofu init -input=false",
                "tofu plan -input=false -var-file=/tmp/values.json"
            ]
        );
    }

    #[test]
    fn tofu_apply_inits_then_applies_without_prompting() {
        assert_eq!(
            argv(Runner::Tofu, Commands::default(), Action::Apply),
            [
                "tofu init -input=false",
                "tofu apply -auto-approve -input=false -var-file=/tmp/values.json"
            ]
        );
    }

    #[test]
    fn tofu_destroy_inits_then_destroys_without_prompting() {
        assert_eq!(
            argv(Runner::Tofu, Commands::default(), Action::Destroy),
            [
                "tofu init -input=false",
                "tofu destroy -auto-approve -input=false -var-file=/tmp/values.json"
            ]
        );
    }

    #[test]
    fn terraform_runs_the_same_steps_as_tofu_with_its_own_program() {
        for action in [Action::Plan, Action::Apply, Action::Destroy] {
            let tofu = argv(Runner::Tofu, Commands::default(), action);
            let terraform = argv(Runner::Terraform, Commands::default(), action);
            let expected: Vec<String> = tofu
                .iter()
                .map(|s| s.replacen("tofu", "terraform", 1))
                .collect();
            assert_eq!(terraform, expected, "{action}");
        }
    }

    #[test]
    fn helm_plan_is_a_dry_run_upgrade() {
        assert_eq!(
            argv(Runner::Helm, Commands::default(), Action::Plan),
            ["helm upgrade --install addons . -f /tmp/values.json --dry-run"]
        );
    }

    #[test]
    fn helm_apply_upgrades_or_installs_the_release_named_after_the_component() {
        assert_eq!(
            argv(Runner::Helm, Commands::default(), Action::Apply),
            ["helm upgrade --install addons . -f /tmp/values.json"]
        );
    }

    #[test]
    fn helm_destroy_uninstalls_the_release() {
        assert_eq!(
            argv(Runner::Helm, Commands::default(), Action::Destroy),
            ["helm uninstall addons"]
        );
    }

    #[test]
    fn shell_runs_each_command_with_env_and_cloud_filled_in() {
        let c = component(Runner::Shell, shell_commands());
        let run = |action| steps(&c, action, &ctx(&c)).unwrap();
        assert_eq!(run(Action::Plan), [Step::new("./plan.sh", &["dev"])]);
        assert_eq!(
            run(Action::Apply),
            [Step::new("./apply.sh", &["dev", "aws"])]
        );
        assert_eq!(
            run(Action::Destroy),
            [Step::new("sh", &["-c", "./destroy.sh --cloud=aws"])]
        );
    }

    #[test]
    fn only_commands_without_shell_syntax_skip_the_shell() {
        let direct = |s: &str, program: &str, args: &[&str]| {
            assert_eq!(shell_step(s), Step::new(program, args), "{s}")
        };
        direct("sleep 0.2", "sleep", &["0.2"]);
        direct(
            "  sh ./component.sh   apply ",
            "sh",
            &["./component.sh", "apply"],
        );
        direct("true", "true", &[]);
        let shell = |s: &str| assert_eq!(shell_step(s), Step::new("sh", &["-c", s]), "{s}");
        for s in [
            "echo $HOME",
            "a | b",
            "a && b",
            "a; b",
            "x > out",
            "ls *.tf",
            "cd dir",
            "exit 1",
            "echo hi",
            "FOO=1 run",
            "run 'quoted arg'",
            "test -f x",
            "a\nb",
            "",
        ] {
            shell(s);
        }
    }

    #[test]
    fn shell_plan_without_a_command_has_nothing_to_run() {
        let commands = Commands {
            plan: None,
            ..shell_commands()
        };
        assert!(argv(Runner::Shell, commands, Action::Plan).is_empty());
    }

    #[test]
    fn shell_destroy_without_a_command_is_an_error_naming_the_key() {
        let c = component(
            Runner::Shell,
            Commands {
                destroy: None,
                ..shell_commands()
            },
        );
        let err = steps(&c, Action::Destroy, &ctx(&c)).unwrap_err();
        assert!(err.to_string().contains("`commands.destroy`"), "{err}");
        assert!(err.to_string().contains("`addons`"), "{err}");
    }

    #[test]
    fn shell_apply_without_a_command_is_an_error_not_a_panic() {
        let c = component(Runner::Shell, Commands::default());
        let err = steps(&c, Action::Apply, &ctx(&c)).unwrap_err();
        assert!(err.to_string().contains("`commands.apply`"), "{err}");
    }

    #[test]
    fn arguments_with_spaces_or_quotes_are_shown_quoted() {
        let step = Step::new("sh", &["-c", "echo it's done"]);
        assert_eq!(step.to_string(), r"sh -c 'echo it'\''s done'");
    }
}
