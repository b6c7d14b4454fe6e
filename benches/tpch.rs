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

use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use ffq::{Engine, EngineConfig};

mod common;

use common::{measure, measure_ffq, query_text, TABLES};

fn main() {
    let common::BenchSettings {
        sf,
        runs,
        partitions,
        queries,
        dir,
    } = common::BenchSettings::from_env();

    let runtime = common::runtime(partitions);

    runtime.block_on(async {
        let engine = Engine::with_config(EngineConfig {
            target_partitions: partitions,
            batch_size: 8192,
            memory_limit: None,
            spill_dir: None,
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
            let ffq_m = measure_ffq(runs, &engine, &sql).await;
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
