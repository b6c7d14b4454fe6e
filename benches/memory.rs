//! TPC-H under a memory limit: each query runs as an `ffq sql` process once
//! without a limit and once with one, embedded and on a cluster of two
//! `ffq worker` processes; the table compares their times, their peak
//! resident memory measured from outside the process, and their rows.
//!
//! ```sh
//! cargo build --release --bin ffq
//! cargo bench --bench memory            # SF 10, queries 1 9 18 21, 2GiB / 1GiB per worker
//! FFQ_BENCH_SF=0.1 FFQ_BENCH_LIMIT=16MiB FFQ_BENCH_WORKER_LIMIT=16MiB \
//!     cargo bench --bench memory        # a quick look, spilling a lot
//! ```
//!
//! Same data and settings as the `tpch` bench (`FFQ_BENCH_DIR`,
//! `FFQ_BENCH_QUERIES`, `FFQ_BENCH_PARTITIONS`, default 2 partitions), but
//! SF 10, queries 1, 9, 18, 21 and one run (`FFQ_BENCH_RUNS`: the median
//! time and the highest peak of that many) by default. The other settings:
//!
//! - `FFQ_BIN`: the `ffq` binary (default: the one cargo builds next to
//!   this bench, so it is as optimised as the bench);
//! - `FFQ_BENCH_LIMIT` (`2GiB`): `--memory-limit` of the embedded runs;
//! - `FFQ_BENCH_WORKER_LIMIT` (`1GiB`): `--memory-limit` of each worker;
//! - `FFQ_BENCH_MODES` (`embedded,cluster`): which modes run;
//! - `FFQ_BENCH_EXPLAIN` (`1`): `0` skips the extra `EXPLAIN ANALYZE` run
//!   under the limit that tells whether the query spilled.
//!
//! Embedded, every run is `/usr/bin/time -v ffq sql --table ... --partitions
//! N --format csv --memory-limit L @query.sql`, and its peak is time's
//! "Maximum resident set size". On the cluster, every run starts a fresh
//! coordinator and two workers (one slot each, `--memory-limit` of the
//! worker or `none`), runs the client `ffq sql --connect ...`, and takes the
//! peak of the larger worker (VmHWM of /proc/PID/status, read before the
//! workers are stopped). The unlimited run of a query goes first. Rows are
//! compared as multisets of CSV lines. A target missed is marked ✗: peak at
//! most 1.25 × the limit (2.5 GiB for 2 GiB), limited time at most 1.5 ×
//! unlimited. A run that fails (e.g. `resources exhausted`) shows its error
//! and the bench goes on.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{env_or, TABLES};
use ffq::cluster::process::ProcessCluster;

/// Peak resident memory may exceed the limit by this factor (operators do
/// not reserve their working batches, and the binary itself takes some).
const RSS_TARGET: f64 = 1.25;
/// The limited run may take at most this factor of the unlimited time.
const TIME_TARGET: f64 = 1.5;

fn main() {
    let bin = ffq_binary();
    let settings = common::BenchSettings::from_env_or(10.0, 1, "1,9,18,21");
    let bench = Bench {
        bin,
        limit: std::env::var("FFQ_BENCH_LIMIT").unwrap_or_else(|_| "2GiB".into()),
        worker_limit: std::env::var("FFQ_BENCH_WORKER_LIMIT").unwrap_or_else(|_| "1GiB".into()),
        explain: env_or("FFQ_BENCH_EXPLAIN", 1) != 0,
        runs: settings.runs.max(1),
        partitions: settings.partitions,
        dir: settings.dir.clone(),
        tables: TABLES
            .iter()
            .map(|t| format!("{t}={}", settings.dir.join(t).display()))
            .collect(),
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| fail(&format!("tokio runtime: {e}"))),
    };
    let modes = std::env::var("FFQ_BENCH_MODES").unwrap_or_else(|_| "embedded,cluster".into());
    let worker_limit = match parse_size(&bench.worker_limit) {
        Ok(bytes) => bytes,
        Err(e) => fail(&format!("FFQ_BENCH_WORKER_LIMIT: {e}")),
    };

    println!(
        "TPC-H SF {}, Parquet, {} partitions, {} run(s) per cell (median time, highest peak); \
         embedded: --memory-limit {}; cluster: 2 workers with 1 slot, --memory-limit {} each, \
         peak of the larger worker; binary {}; ✓/✗: peak RSS limited ≤ {RSS_TARGET} × the limit, \
         ratio ≤ {TIME_TARGET}\n",
        settings.sf,
        bench.partitions,
        bench.runs,
        bench.limit,
        bench.worker_limit,
        bench.bin.display()
    );
    println!(
        "| query | mode | unlimited s | limited s | ratio | peak RSS unlimited | peak RSS limited \
         | spilled? | same rows |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---|---|");
    for q in settings.queries {
        let query = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("queries/tpch/q{q}.sql"));
        if modes.contains("embedded") {
            let unlimited = bench.measure(&query, Limit::Embedded("none"));
            let limited = bench.measure(&query, Limit::Embedded(&bench.limit));
            let spilled = bench
                .explain
                .then(|| bench.spill_files(&query, Limit::Embedded(&bench.limit)));
            let target = parse_size(&bench.limit).ok();
            print_row(q, "embedded", &unlimited, &limited, spilled, target);
        }
        if modes.contains("cluster") {
            let unlimited = bench.measure(&query, Limit::Workers(None));
            let limited = bench.measure(&query, Limit::Workers(Some(worker_limit)));
            let spilled = bench
                .explain
                .then(|| bench.spill_files(&query, Limit::Workers(Some(worker_limit))));
            print_row(
                q,
                "cluster",
                &unlimited,
                &limited,
                spilled,
                Some(worker_limit),
            );
        }
    }
}

/// What the bench runs, and how.
struct Bench {
    bin: PathBuf,
    limit: String,
    worker_limit: String,
    explain: bool,
    runs: usize,
    partitions: usize,
    /// `NAME=PATH` of every table, as `--table` takes it.
    /// Where the tables are (the workers' --allow-path).
    dir: std::path::PathBuf,
    tables: Vec<String>,
    /// Where the clusters are started (zenoh needs a multi-thread runtime).
    runtime: tokio::runtime::Runtime,
}

/// Where a query runs, under which memory limit.
enum Limit<'a> {
    /// In the `ffq sql` process, with this `--memory-limit`.
    Embedded(&'a str),
    /// On two workers, each limited to this many bytes (`None`: no limit).
    Workers(Option<usize>),
}

/// The measurements of `runs` runs of one query in one setting.
struct Measured {
    median: Duration,
    peak_kib: u64,
    /// The output's CSV lines, sorted.
    rows: Vec<String>,
}

/// One `ffq sql` process run under `/usr/bin/time -v`.
struct Run {
    elapsed: Duration,
    peak_kib: u64,
    stdout: String,
}

impl Bench {
    /// Runs `query` `self.runs` times under `limit`.
    fn measure(&self, query: &Path, limit: Limit) -> Result<Measured, String> {
        let sql = format!("@{}", query.display());
        let mut times = Vec::new();
        let mut peak_kib = 0;
        let mut rows: Option<Vec<String>> = None;
        for _ in 0..self.runs {
            let (run, peak) = self.run(&sql, &limit)?;
            times.push(run.elapsed);
            peak_kib = peak_kib.max(peak);
            let mut lines: Vec<String> = run.stdout.lines().map(str::to_string).collect();
            lines.sort_unstable();
            match &rows {
                Some(first) if *first != lines => return Err("rows changed between runs".into()),
                Some(_) => {}
                None => rows = Some(lines),
            }
        }
        Ok(Measured {
            median: common::median(times),
            peak_kib,
            rows: rows.unwrap_or_default(),
        })
    }

    /// Runs `query` as `EXPLAIN ANALYZE` under `limit` and counts the
    /// spill files it shows.
    fn spill_files(&self, query: &Path, limit: Limit) -> Result<u64, String> {
        let (run, _) = self.run(&explain_analyze(query)?, &limit)?;
        Ok(spill_files(&run.stdout))
    }

    /// Runs `sql` once under `limit`; returns the client's run and the peak
    /// in KiB: the `ffq sql` process's embedded, the larger worker's on a
    /// cluster (a fresh one: two workers with one slot each).
    fn run(&self, sql: &str, limit: &Limit) -> Result<(Run, u64), String> {
        let workers = match limit {
            Limit::Embedded(limit) => {
                let run = self.sql(&["--memory-limit", limit], sql)?;
                let peak = run.peak_kib;
                return Ok((run, peak));
            }
            Limit::Workers(limit) => *limit,
        };
        let cluster = self
            .runtime
            .block_on(
                ProcessCluster::builder(&self.bin)
                    .workers(2)
                    .slots(1)
                    .worker_memory_limit(workers)
                    .allow_path(&self.dir)
                    .start(),
            )
            .map_err(|e| format!("start the cluster: {e}"))?;
        let connect = ["--connect", cluster.endpoint(), "--cluster", cluster.name()];
        let run = self.sql(&connect, sql)?;
        // Read while the workers still run.
        let peak = cluster
            .worker_pids()
            .into_iter()
            .map(peak_rss_kib)
            .max()
            .unwrap_or(0);
        Ok((run, peak))
    }

    /// `/usr/bin/time -v ffq sql --table ... FLAGS QUERY`.
    fn sql(&self, flags: &[&str], query: &str) -> Result<Run, String> {
        let mut command = Command::new("/usr/bin/time");
        command.arg("-v").arg(&self.bin).arg("sql");
        for table in &self.tables {
            command.args(["--table", table]);
        }
        command
            .args(["--partitions", &self.partitions.to_string()])
            .args(["--format", "csv"])
            .args(flags)
            .arg(query);
        let output = command
            .output()
            .map_err(|e| format!("cannot run /usr/bin/time: {e}"))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            // time's report follows the program's own error.
            let error = stderr
                .lines()
                .find(|l| !l.trim().is_empty() && !l.starts_with('\t'))
                .unwrap_or("no error message");
            let error = error.strip_prefix("error: ").unwrap_or(error);
            return Err(format!("failed: {error}"));
        }
        let report = |what: &str| {
            stderr
                .lines()
                .find_map(|l| l.trim().strip_prefix(what))
                .map(str::trim)
                .ok_or_else(|| format!("no {what:?} in the output of /usr/bin/time -v"))
        };
        let peak_kib = report("Maximum resident set size (kbytes):")?
            .parse()
            .map_err(|e| format!("maximum resident set size: {e}"))?;
        let elapsed = parse_elapsed(report("Elapsed (wall clock) time (h:mm:ss or m:ss):")?)?;
        Ok(Run {
            elapsed,
            peak_kib,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        })
    }
}

/// The `ffq` binary: `FFQ_BIN`, or the one cargo built with this bench.
fn ffq_binary() -> PathBuf {
    let bin = std::env::var_os("FFQ_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ffq")));
    if !bin.is_file() {
        fail(&format!(
            "no ffq binary at {} (build it with `cargo build --release --bin ffq`, or set FFQ_BIN)",
            bin.display()
        ));
    }
    if !Path::new("/usr/bin/time").is_file() {
        fail("this bench measures with /usr/bin/time -v (GNU time): install it");
    }
    bin
}

fn fail(message: &str) -> ! {
    eprintln!("memory bench: {message}");
    std::process::exit(2)
}

/// The text of `EXPLAIN ANALYZE <query>`.
fn explain_analyze(query: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(query).map_err(|e| format!("{}: {e}", query.display()))?;
    Ok(format!(
        "EXPLAIN ANALYZE {}",
        text.trim().trim_end_matches(';')
    ))
}

/// The spill files an `EXPLAIN ANALYZE` output counts over its operators.
fn spill_files(explained: &str) -> u64 {
    explained
        .split("spill_files=")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .sum()
}

/// The peak resident memory of a running process in KiB (0 if unknown).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// time's wall clock: `m:ss.cc` or `h:mm:ss`.
fn parse_elapsed(text: &str) -> Result<Duration, String> {
    let seconds = text.split(':').try_fold(0.0, |total, part| {
        part.parse::<f64>()
            .map(|v| total * 60.0 + v)
            .map_err(|e| format!("elapsed time {text:?}: {e}"))
    })?;
    Ok(Duration::from_secs_f64(seconds))
}

/// A size as `--memory-limit` takes it (`512MiB`, `2GiB`, `1G`, bytes).
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("unknown unit in {text:?}")),
    };
    let number: f64 = number.parse().map_err(|e| format!("size {text:?}: {e}"))?;
    Ok((number * (1u64 << shift) as f64) as usize)
}

fn print_row(
    q: usize,
    mode: &str,
    unlimited: &Result<Measured, String>,
    limited: &Result<Measured, String>,
    spilled: Option<Result<u64, String>>,
    limit: Option<usize>,
) {
    let seconds = |m: &Result<Measured, String>| match m {
        Ok(m) => format!("{:.2}", m.median.as_secs_f64()),
        Err(e) => cell(e),
    };
    let peak = |m: &Result<Measured, String>| match m {
        Ok(m) => format!("{:.0} MiB", m.peak_kib as f64 / 1024.0),
        Err(_) => "–".into(),
    };
    let (ratio, same) = match (unlimited, limited) {
        (Ok(u), Ok(l)) => {
            let ratio = l.median.as_secs_f64() / u.median.as_secs_f64().max(1e-3);
            let same = if u.rows == l.rows {
                format!("yes ({} rows)", u.rows.len().saturating_sub(1))
            } else {
                "**no** ✗".into()
            };
            (format!("{ratio:.2}{}", mark(ratio <= TIME_TARGET)), same)
        }
        _ => ("–".into(), "–".into()),
    };
    let peak_limited = match (limited, limit) {
        (Ok(m), Some(limit)) => {
            let within = m.peak_kib as f64 * 1024.0 <= limit as f64 * RSS_TARGET;
            format!("{}{}", peak(limited), mark(within))
        }
        _ => peak(limited),
    };
    let spilled = match spilled {
        None => "not checked".into(),
        Some(Ok(0)) => "no".into(),
        Some(Ok(files)) => format!("yes ({files} files)"),
        Some(Err(e)) => cell(&e),
    };
    println!(
        "| q{q} | {mode} | {} | {} | {ratio} | {} | {peak_limited} | {spilled} | {same} |",
        seconds(unlimited),
        seconds(limited),
        peak(unlimited),
    );
}

fn mark(within_target: bool) -> &'static str {
    if within_target {
        " ✓"
    } else {
        " ✗"
    }
}

/// An error as a table cell: its first line, shortened, without `|`.
fn cell(error: &str) -> String {
    let line = error.lines().next().unwrap_or_default().replace('|', "/");
    let short: String = line.chars().take(100).collect();
    if short.len() < line.len() {
        format!("{short}…")
    } else {
        short
    }
}
