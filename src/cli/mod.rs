//! Command-line arguments and subcommands of the `ffq` binary.

pub mod allocator;
mod cluster;
mod progress_bar;
mod repl;
mod size;
mod slt;
mod sql;
mod storage;
mod tpch_gen;

use std::fmt;

use clap::{Parser, Subcommand};

pub use repl::ReplArgs;
pub use slt::SltArgs;
pub use sql::SqlArgs;
pub use tpch_gen::TpchGenArgs;

/// FFQ: a stream-oriented SQL query engine.
///
/// Without a command, opens the interactive SQL shell (as `ffq repl`).
#[derive(Debug, Parser)]
#[command(
    name = "ffq",
    version,
    about,
    propagate_version = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The options of the REPL opened without a command.
    #[command(flatten)]
    pub repl: ReplArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run SQL statements and print their results.
    Sql(SqlArgs),
    /// Open an interactive SQL shell (the default without a command);
    /// reads statements from standard input when it is not a terminal.
    Repl(ReplArgs),
    /// Generate the TPC-H tables into Parquet or CSV files.
    TpchGen(TpchGenArgs),
    /// Run sqllogictest (.slt) files; exits 1 if any file fails.
    Slt(SltArgs),
    /// Run the coordinator of a cluster: it schedules the stages of
    /// queries on the workers.
    Coordinator(cluster::CoordinatorArgs),
    /// Run a worker of a cluster: it runs the tasks the coordinator assigns.
    Worker(cluster::WorkerArgs),
    /// Show a cluster's workers, running queries and counters.
    Status(cluster::StatusArgs),
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    let Some(command) = cli.command else {
        return repl::run(cli.repl);
    };
    match command {
        Command::Sql(args) => sql::run(args),
        Command::Repl(args) => repl::run(args),
        Command::TpchGen(args) => tpch_gen::run(args),
        Command::Slt(args) => slt::run(args),
        Command::Coordinator(args) => cluster::run_coordinator(args),
        Command::Worker(args) => cluster::run_worker(args),
        Command::Status(args) => cluster::run_status(args),
    }
}

/// An error shown to the user as one `error: ...` line.
#[derive(Debug)]
pub enum CliError {
    Engine(ffq::Error),
    Message(String),
}

impl CliError {
    pub fn msg(m: impl Into<String>) -> Self {
        CliError::Message(m.into())
    }

    /// The message on a single line.
    pub fn one_line(&self) -> String {
        let text = self.to_string();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        lines.join(" ")
    }

    /// Output went to a closed pipe (e.g. `ffq sql ... | head`).
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            CliError::Engine(e) => ffq::format::is_broken_pipe(e),
            CliError::Message(_) => false,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Engine(e) => write!(f, "{e}"),
            CliError::Message(m) => f.write_str(m),
        }
    }
}

impl From<ffq::Error> for CliError {
    fn from(e: ffq::Error) -> Self {
        CliError::Engine(e)
    }
}
