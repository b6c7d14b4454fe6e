//! The `ffq` command-line tool.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    if matches!(args.command, Some(cli::Command::Worker(_))) {
        cli::allocator::tune();
    }
    init_logging(&args);
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (e.g. `RUST_LOG=ffq_cluster=debug`);
/// by default cluster processes log their decisions (`info`), other
/// commands only warnings.
fn init_logging(args: &cli::Cli) {
    use tracing_subscriber::EnvFilter;
    let default = match args.command {
        Some(cli::Command::Coordinator(_) | cli::Command::Worker(_)) => "info,zenoh=warn",
        _ => "warn,zenoh=error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
