//! The `orchestrator` binary: parse arguments, run, map failures to exit codes.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use orchestrator_action::cli::{self, Cli};
use orchestrator_action::state::git;

fn main() -> ExitCode {
    // The container action passes no arguments: its inputs arrive as
    // INPUT_* variables and map onto the same commands.
    if cli::action::requested() {
        start_git(true);
        let code = cli::action::run();
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let args = Cli::parse();
    // Where neither the working directory nor the config file is in a
    // repository, or the command reads only the config, nothing opens one.
    let config_dir = args.config.parent().unwrap_or(Path::new(""));
    start_git(
        args.command.opens_repository() && (git::near(Path::new(".")) || git::near(config_dir)),
    );
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = cli::run(args, &mut out)
        .and_then(|code| out.flush().map(|()| code).map_err(cli::Failure::Io));
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(failure) => {
            let stderr = std::io::stderr();
            let color = orchestrator_action::report::colour_on_stderr();
            let _ = stderr.lock().write_all(failure.render(color).as_bytes());
            ExitCode::from(u8::try_from(failure.exit_code()).unwrap_or(1))
        }
    }
}

/// Starts libgit2 when a repository may be used. That must happen before
/// any thread starts: libgit2 sets environment variables on first use.
fn start_git(wanted: bool) {
    if !wanted {
        return;
    }
    git::init();
    // In a container action the workspace belongs to another user; every
    // command that opens the repository needs this, so it comes first.
    if let Err(e) = git::trust_workspace() {
        eprintln!("warning: {e}");
    }
}
