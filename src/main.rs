//! The `orchestrator` binary: parse arguments, run, map failures to exit codes.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use orchestrator_action::cli::{self, Cli};

fn main() -> ExitCode {
    let args = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = cli::run(args, &mut out)
        .and_then(|code| out.flush().map(|()| code).map_err(cli::Failure::Io));
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(failure) => {
            let stderr = std::io::stderr();
            let color = stderr.is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let _ = stderr.lock().write_all(failure.render(color).as_bytes());
            ExitCode::from(u8::try_from(failure.exit_code()).unwrap_or(1))
        }
    }
}
