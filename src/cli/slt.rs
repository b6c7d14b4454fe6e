//! `ffq slt`: run sqllogictest (`.slt`) files against FFQ.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ffq::slt::{run_slt_file_with, slt_files, FileStatus, Report, SltOptions};
use ffq::EngineConfig;

use super::CliError;

#[derive(Debug, Args)]
pub struct SltArgs {
    /// A `.slt` file, or a directory whose `.slt` files (recursively) are run.
    #[arg(value_name = "DIR_OR_FILE")]
    path: PathBuf,

    /// Count records that FFQ does not support as failures, not skips.
    #[arg(long)]
    strict: bool,

    /// Print every failure and skip reason in full, not only the first.
    #[arg(long, short)]
    verbose: bool,

    /// Partitions per operator [default: the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=65536))]
    partitions: Option<u64>,

    /// Target rows per batch [default: 8192].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    batch_size: Option<u64>,

    /// The longest one statement may run, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

pub fn run(args: SltArgs) -> Result<(), CliError> {
    let mut engine = EngineConfig::default();
    if let Some(n) = args.partitions {
        engine.target_partitions = n as usize;
    }
    if let Some(n) = args.batch_size {
        engine.batch_size = n as usize;
    }
    let options = SltOptions {
        strict: args.strict,
        timeout: Duration::from_secs(args.timeout),
        engine,
    };
    let files = slt_files(&args.path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::msg(format!("cannot start the runtime: {e}")))?;

    // A panic of a statement is caught and reported as the failure of its
    // record: print one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("panic{location}");
    }));

    let mut report = Report::default();
    let mut out = std::io::stdout().lock();
    for file in files {
        let result = runtime.block_on(run_slt_file_with(&file, &options));
        // A closed pipe must not stop the run nor hide its exit code.
        let _ = writeln!(out, "{}", result.summary_line());
        if args.verbose && result.status != FileStatus::Passed {
            for failure in &result.failures {
                let _ = writeln!(out, "{}", indent(failure));
            }
            for skip in &result.skips {
                let _ = writeln!(out, "    skipped: {skip}");
            }
        }
        let _ = out.flush();
        report.files.push(result);
    }
    let _ = writeln!(out, "{}", report.closing_line());
    let _ = out.flush();
    if report.failed() > 0 {
        return Err(CliError::msg(format!(
            "{} of {} .slt files failed",
            report.failed(),
            report.files.len()
        )));
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
