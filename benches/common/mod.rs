//! Helpers shared by the benchmarks.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use ffq::tpch::{write_tpch, TpchFileFormat};

pub const TABLES: [&str; 8] = [
    "nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
];

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn query_text(q: usize) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("queries/tpch/q{q}.sql"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Resets the peak resident set size of this process (Linux only).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size since the last reset, in MiB.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

pub struct Measured {
    pub median: Duration,
    pub peak_mib: f64,
    pub rows: usize,
}

pub async fn measure<F, Fut>(runs: usize, mut run: F) -> Measured
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<RecordBatch>>,
{
    let warm = run().await;
    let mut times = Vec::new();
    let mut peak: f64 = 0.0;
    for _ in 0..runs {
        reset_peak_rss();
        let start = Instant::now();
        let out = run().await;
        times.push(start.elapsed());
        peak = peak.max(peak_rss_mib());
        assert_eq!(rows(&out), rows(&warm), "row count changed between runs");
    }
    Measured {
        median: median(times),
        peak_mib: peak,
        rows: rows(&warm),
    }
}

/// [`measure`] of `sql` on an FFQ engine, planned and collected anew each
/// run.
pub async fn measure_ffq(runs: usize, engine: &ffq::Engine, sql: &str) -> Measured {
    measure(runs, || async {
        let df = engine.sql(sql).await.expect("ffq plans");
        df.collect().await.expect("ffq runs")
    })
    .await
}

/// The multi-threaded runtime the benchmarks run in: one thread per
/// partition, at least two.
pub fn runtime(partitions: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(partitions.max(2))
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Writes TPC-H SF `sf` as Parquet (two files per table) under `dir`
/// unless it is there already.
pub fn ensure_tpch_parquet(sf: f64, dir: &Path) {
    if !dir.join("lineitem").exists() {
        eprintln!("writing TPC-H SF {sf} Parquet to {} ...", dir.display());
        let start = Instant::now();
        write_tpch(sf, dir, TpchFileFormat::Parquet, 2).expect("write TPC-H data");
        eprintln!("written in {:.1}s", start.elapsed().as_secs_f64());
    }
}

/// The settings every TPC-H bench reads from the environment.
pub struct BenchSettings {
    pub sf: f64,
    pub runs: usize,
    pub partitions: usize,
    pub queries: Vec<usize>,
    pub dir: std::path::PathBuf,
}

impl BenchSettings {
    /// `FFQ_BENCH_SF` (1), `FFQ_BENCH_RUNS` (3), `FFQ_BENCH_PARTITIONS` (2),
    /// `FFQ_BENCH_QUERIES` (1,3,5,6,9,10,12,18), `FFQ_BENCH_DIR`
    /// (/var/tmp/ffq-bench/sf<SF>); the data is written if missing.
    pub fn from_env() -> Self {
        Self::from_env_or(1.0, 3, "1,3,5,6,9,10,12,18")
    }

    /// [`BenchSettings::from_env`] with other defaults for the scale
    /// factor, the runs and the queries.
    pub fn from_env_or(sf: f64, runs: usize, queries: &str) -> Self {
        let sf: f64 = env_or("FFQ_BENCH_SF", sf);
        let queries = std::env::var("FFQ_BENCH_QUERIES")
            .unwrap_or_else(|_| queries.into())
            .split(',')
            .filter_map(|q| q.trim().parse().ok())
            .collect();
        let dir = std::env::var("FFQ_BENCH_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| std::path::PathBuf::from(format!("/var/tmp/ffq-bench/sf{sf}")));
        ensure_tpch_parquet(sf, &dir);
        BenchSettings {
            sf,
            runs: env_or("FFQ_BENCH_RUNS", runs),
            partitions: env_or("FFQ_BENCH_PARTITIONS", 2),
            queries,
            dir,
        }
    }
}
