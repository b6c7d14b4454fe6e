//! `ffq tpch-gen`: write the TPC-H tables to files.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use ffq::tpch::{write_tpch_files, TpchFileFormat};
use ffq_dataflow::plan::TpchTable;

use super::CliError;

#[derive(Debug, Args)]
pub struct TpchGenArgs {
    /// Scale factor (1 = about 1 GB of data).
    #[arg(long, value_name = "SF")]
    sf: f64,

    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// File format: Parquet writes DIR/<table>/part-<i>.parquet, CSV writes
    /// DIR/<table>.csv (DIR/<table>/part-<i>.csv with several partitions).
    #[arg(long, value_enum, default_value_t = FileFormat::Parquet)]
    format: FileFormat,

    /// Files per table (nation and region: always 1); written in parallel.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    partitions: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FileFormat {
    Parquet,
    Csv,
}

pub fn run(args: TpchGenArgs) -> Result<(), CliError> {
    let format = match args.format {
        FileFormat::Parquet => TpchFileFormat::Parquet,
        FileFormat::Csv => TpchFileFormat::Csv,
    };
    let start = Instant::now();
    let files = write_tpch_files(
        args.sf,
        &args.out,
        format,
        args.partitions as usize,
        &TpchTable::ALL,
    )?;
    let (mut total_rows, mut total_bytes) = (0u64, 0u64);
    for table in TpchTable::ALL {
        let (mut rows, mut bytes, mut n) = (0u64, 0u64, 0usize);
        for f in files.iter().filter(|f| f.table == table) {
            rows += f.rows;
            bytes += f.bytes;
            n += 1;
        }
        total_rows += rows;
        total_bytes += bytes;
        let s = if n == 1 { "" } else { "s" };
        eprintln!(
            "{:<9} {rows:>11} rows {:>10} in {n} file{s}",
            table.name(),
            human_bytes(bytes)
        );
    }
    eprintln!(
        "wrote {total_rows} rows, {} to {} in {:.1}s",
        human_bytes(total_bytes),
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
