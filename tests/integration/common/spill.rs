//! Helpers of the memory-limit and spill tests: an engine under a limit,
//! the text of `EXPLAIN ANALYZE`, and waiting for a spill directory to
//! empty.

use std::path::Path;
use std::time::{Duration, Instant};

use arrow::array::{Array, StringArray};
use ffq::cluster::SchedulerConfig;
use ffq::{Engine, EngineConfig, LocalCluster, SendableRecordBatchStream};
use futures::StreamExt;

/// An engine with the TPC-H tables at `sf`, `partitions` partitions and a
/// memory limit of `limit` bytes, spilling to `spill_dir` (`None`: the
/// system temp dir).
pub fn tpch_limited_engine(
    sf: f64,
    partitions: usize,
    limit: usize,
    spill_dir: Option<&Path>,
) -> Engine {
    let engine = Engine::with_config(EngineConfig {
        target_partitions: partitions,
        batch_size: 8192,
        memory_limit: Some(limit),
        spill_dir: spill_dir.map(Path::to_path_buf),
    });
    engine
        .register_tpch(sf)
        .unwrap_or_else(|e| panic!("register_tpch({sf}): {e}"));
    engine
}

/// An in-process cluster of 2 workers, each with a memory limit of `limit`
/// bytes spilling to `spill_dir` (`None`: the system temp dir), retrying
/// failed tasks after 10 ms.
pub async fn limited_local_cluster(limit: usize, spill_dir: Option<&Path>) -> LocalCluster {
    let mut cluster = LocalCluster::builder()
        .workers(0)
        .scheduler(SchedulerConfig {
            backoff_base: Duration::from_millis(10),
            ..SchedulerConfig::default()
        })
        .start()
        .await
        .unwrap_or_else(|e| panic!("cluster: {e}"));
    for _ in 0..2 {
        let spill_dir = spill_dir.map(Path::to_path_buf);
        cluster
            .add_worker_with(move |w| {
                w.memory_limit = Some(limit);
                if let Some(dir) = spill_dir {
                    w.spill_dir = dir;
                }
            })
            .await
            .unwrap_or_else(|e| panic!("worker: {e}"));
    }
    cluster
}

/// Bytes the tasks of `cluster`'s workers spilled.
pub fn cluster_spilled_bytes(cluster: &LocalCluster) -> u64 {
    cluster
        .worker_states()
        .iter()
        .map(|w| w.task_spilled_bytes)
        .sum()
}

/// The plan text `EXPLAIN ANALYZE <sql>` returns (panics on an error).
pub async fn explain_analyze(engine: &Engine, sql: &str) -> String {
    let batches = match engine.sql(&format!("EXPLAIN ANALYZE {sql}")).await {
        Ok(df) => df.collect().await,
        Err(e) => Err(e),
    }
    .unwrap_or_else(|e| panic!("EXPLAIN ANALYZE {sql}: {e}"));
    let mut text = String::new();
    for b in batches {
        let plans = b
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap_or_else(|| panic!("EXPLAIN ANALYZE: the plan column is not text"));
        for i in 0..plans.len() {
            text.push_str(plans.value(i));
            text.push('\n');
        }
    }
    text
}

/// Whether a line of `plan` for an operator whose description contains
/// `operator` shows spill counters.
pub fn spilled(plan: &str, operator: &str) -> bool {
    plan.lines()
        .any(|l| l.contains(operator) && l.contains(" spill_files="))
}

/// The entries of `dir` (spill directories of queries still held).
pub fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits up to 10 s for `dir` to be empty (a query's directory goes with
/// its operators, which tasks may drop a moment after the last batch or a
/// dropped stream), then asserts it.
pub async fn assert_spill_dir_empty(dir: &Path, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !leftovers(dir).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        leftovers(dir),
        Vec::<String>::new(),
        "spill files after {after}"
    );
}

/// The output stream of `sql` after its first batch (not empty), for a
/// test to drop mid-way.
pub async fn stream_after_first_batch(engine: &Engine, sql: &str) -> SendableRecordBatchStream {
    let mut stream = engine
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .execute_stream()
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let first = stream
        .next()
        .await
        .unwrap_or_else(|| panic!("{sql}: no batch"))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert!(first.num_rows() > 0, "{sql}: an empty first batch");
    stream
}
