//! TPC-H on Parquet: embedded FFQ and a cluster of two `ffq worker`
//! processes (plus an `ffq coordinator` process) on loopback, side by side
//! in one run, on the same files.
//!
//! ```sh
//! cargo bench --bench cluster                   # SF 1, queries 1 3 5 6 9 10 12 18
//! FFQ_BENCH_SF=0.1 FFQ_BENCH_QUERIES=1,6 cargo bench --bench cluster
//! ```
//!
//! Same data and settings as the `tpch` bench (`FFQ_BENCH_DIR`,
//! `FFQ_BENCH_RUNS`, `FFQ_BENCH_PARTITIONS`, default 2 partitions). Each
//! worker has one slot, so both modes run two partitions at a time on this
//! machine; `FFQ_BENCH_WORKERS` changes the number of workers. The table
//! shows medians, the ratio cluster / embedded, and checks that both
//! return the same number of rows.

mod common;

use common::{env_or, measure_ffq, query_text, TABLES};
use ffq::cluster::process::ProcessCluster;
use ffq::{Engine, EngineConfig};

fn main() {
    let common::BenchSettings {
        sf,
        runs,
        partitions,
        queries,
        dir,
    } = common::BenchSettings::from_env();
    let workers: usize = env_or("FFQ_BENCH_WORKERS", 2);

    let runtime = common::runtime(partitions);
    runtime.block_on(async {
        let config = EngineConfig {
            target_partitions: partitions,
            batch_size: 8192,
            memory_limit: None,
            spill_dir: None,
        };
        let processes = ProcessCluster::builder(env!("CARGO_BIN_EXE_ffq"))
            .workers(workers)
            .slots(1)
            .cluster("bench")
            .allow_path(&dir)
            .start()
            .await
            .expect("start the coordinator and worker processes");
        let embedded = Engine::with_config(config.clone());
        let cluster =
            Engine::connect_with_config(processes.client_config().expect("cluster config"), config)
                .await
                .expect("connect to the coordinator");
        for t in TABLES {
            let path = dir.join(t);
            let path = path.to_string_lossy();
            embedded.register_parquet(t, &path).expect("register");
            cluster.register_parquet(t, &path).expect("register");
        }
        println!(
            "TPC-H SF {sf}, Parquet, {partitions} partitions, median of {runs} runs; \
             cluster: {workers} worker processes with 1 slot each, on loopback\n"
        );
        println!("| query | embedded ms | cluster ms | cluster/embedded | rows |");
        println!("|---|---:|---:|---:|---:|");
        for q in queries {
            let sql = query_text(q);
            let e = measure_ffq(runs, &embedded, &sql).await;
            let c = measure_ffq(runs, &cluster, &sql).await;
            println!(
                "| q{q} | {:.0} | {:.0} | {:.2} | {}{} |",
                e.median.as_secs_f64() * 1e3,
                c.median.as_secs_f64() * 1e3,
                c.median.as_secs_f64() / e.median.as_secs_f64(),
                e.rows,
                if e.rows == c.rows {
                    ""
                } else {
                    " (row counts differ!)"
                },
            );
        }
    });
}
