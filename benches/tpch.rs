//! TPC-H on Parquet: FFQ and DataFusion side by side, in one run, on the same
//! files.
//!
//! ```sh
//! cargo bench --bench tpch                      # SF 1, queries 1 3 5 6 9 10 12 18
//! FFQ_BENCH_SF=0.1 FFQ_BENCH_QUERIES=1,6 cargo bench --bench tpch
//! ```
//!
//! Data: written once by `ffq::tpch::write_tpch` (what `ffq tpch-gen` runs)
//! under `$FFQ_BENCH_DIR` (default `/var/tmp/ffq-bench/sf<SF>`), two files
//! per table; both engines run with 2 partitions. Each query runs
//! `FFQ_BENCH_RUNS` times (default 3) per engine after one warm-up run; the
//! table shows the median, the ratio FFQ / DataFusion, and the peak resident
//! memory of the process during the query (Linux: VmHWM, reset before each
//! query through /proc/self/clear_refs).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use ffq::tpch::{write_tpch, TpchFileFormat};
use ffq::{Engine, EngineConfig};

const TABLES: [&str; 8] = [
    "nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn query_text(q: usize) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("queries/tpch/q{q}.sql"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Resets the peak resident set size of this process (Linux only).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size since the last reset, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

struct Measured {
    median: Duration,
    peak_mib: f64,
    rows: usize,
}

async fn measure<F, Fut>(runs: usize, mut run: F) -> Measured
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

fn main() {
    let sf: f64 = env_or("FFQ_BENCH_SF", 1.0);
    let runs: usize = env_or("FFQ_BENCH_RUNS", 3);
    let partitions: usize = env_or("FFQ_BENCH_PARTITIONS", 2);
    let queries: Vec<usize> = std::env::var("FFQ_BENCH_QUERIES")
        .unwrap_or_else(|_| "1,3,5,6,9,10,12,18".into())
        .split(',')
        .filter_map(|q| q.trim().parse().ok())
        .collect();
    let dir: PathBuf = std::env::var("FFQ_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(format!("/var/tmp/ffq-bench/sf{sf}")));

    if !dir.join("lineitem").exists() {
        eprintln!("writing TPC-H SF {sf} Parquet to {} ...", dir.display());
        let start = Instant::now();
        write_tpch(sf, &dir, TpchFileFormat::Parquet, 2).expect("write TPC-H data");
        eprintln!("written in {:.1}s", start.elapsed().as_secs_f64());
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(partitions.max(2))
        .enable_all()
        .build()
        .expect("tokio runtime");

    runtime.block_on(async {
        let engine = Engine::with_config(EngineConfig {
            target_partitions: partitions,
            batch_size: 8192,
        });
        let ctx = SessionContext::new_with_config(
            SessionConfig::new().with_target_partitions(partitions),
        );
        for t in TABLES {
            let path = dir.join(t);
            let path = path.to_string_lossy();
            engine.register_parquet(t, &path).expect("register with ffq");
            ctx.register_parquet(t, path.as_ref(), ParquetReadOptions::default())
                .await
                .expect("register with datafusion");
        }

        println!(
            "TPC-H SF {sf}, Parquet, {partitions} partitions, median of {runs} runs\n"
        );
        println!(
            "| query | ffq ms | datafusion ms | ffq/datafusion | ffq peak MiB | datafusion peak MiB | rows |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for q in queries {
            let sql = query_text(q);
            let ffq_m = measure(runs, || async {
                let df = engine.sql(&sql).await.expect("ffq plans");
                df.collect().await.expect("ffq runs")
            })
            .await;
            let df_m = measure(runs, || async {
                let df = ctx.sql(&sql).await.expect("datafusion plans");
                df.collect().await.expect("datafusion runs")
            })
            .await;
            let ratio = ffq_m.median.as_secs_f64() / df_m.median.as_secs_f64();
            println!(
                "| q{q} | {:.0} | {:.0} | {ratio:.2} | {:.0} | {:.0} | {}{} |",
                ffq_m.median.as_secs_f64() * 1e3,
                df_m.median.as_secs_f64() * 1e3,
                ffq_m.peak_mib,
                df_m.peak_mib,
                ffq_m.rows,
                if ffq_m.rows == df_m.rows { "" } else { " (row counts differ!)" },
            );
        }
    });
}
