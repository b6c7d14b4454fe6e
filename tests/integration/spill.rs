//! Spilling under a tiny memory limit: all 22 TPC-H queries at SF 0.1
//! under 16 MiB return the rows they return without a limit, embedded
//! (1 and 4 partitions) and on a 2-worker cluster; the aggregate, join and
//! sort operators show what they spilled in `EXPLAIN ANALYZE`; the spill
//! directory is empty again after success, after an error and after a
//! dropped stream.

use std::path::Path;

use ffq::{Engine, EngineConfig};

use crate::common::differential::{assert_no_failures, check_parity};
use crate::common::spill::{
    assert_spill_dir_empty as assert_empty, cluster_spilled_bytes, explain_analyze as analyze,
    leftovers, limited_local_cluster, spilled, stream_after_first_batch, tpch_limited_engine,
};
use crate::common::{query_error, tpch_engine, tpch_query};

const SF: f64 = 0.1;
const LIMIT: usize = 16 << 20;

/// A sort far larger than the limit (lineitem is ~70 MiB at SF 0.1).
const BIG_SORT: &str = "SELECT l_orderkey, l_linenumber, l_comment FROM lineitem \
                        ORDER BY l_comment, l_orderkey, l_linenumber";

fn limited_engine(partitions: usize, spill_dir: &Path) -> Engine {
    tpch_limited_engine(SF, partitions, LIMIT, Some(spill_dir))
}

/// Asserts that an operator line containing `operator` spilled.
fn assert_spilled(plan: &str, operator: &str, what: &str) {
    assert!(
        spilled(plan, operator),
        "{what}: no {operator} line spilled in\n{plan}"
    );
}

fn all_queries() -> Vec<(String, String)> {
    (1..=22)
        .map(|q| (format!("q{q}"), tpch_query(q)))
        .chain([("big sort".to_string(), BIG_SORT.to_string())])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_under_16_mib_embedded_returns_the_unlimited_rows() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let queries = all_queries();
    let mut failures = Vec::new();
    for partitions in [1, 4] {
        let unlimited = tpch_engine(SF, partitions);
        let limited = limited_engine(partitions, dir.path());
        for (name, sql) in &queries {
            let label = format!("{name}, {partitions} partitions, 16 MiB");
            if let Err(e) = check_parity(&label, sql, &unlimited, &limited).await {
                failures.push(e);
            }
        }
        assert_empty(dir.path(), &format!("{partitions} partitions")).await;
    }
    assert_no_failures(&failures, 2 * queries.len());

    // What spilled: a large grouped aggregate under joins (q18), a join
    // whose build side is larger than the limit (q9), and a large sort.
    let limited = limited_engine(4, dir.path());
    let q18 = analyze(&limited, &tpch_query(18)).await;
    assert_spilled(&q18, "Aggregate", "q18");
    assert_spilled(&analyze(&limited, &tpch_query(9)).await, "HashJoin", "q9");
    assert_spilled(&analyze(&limited, BIG_SORT).await, "Sort", "big sort");
    assert_empty(dir.path(), "EXPLAIN ANALYZE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spill_files_are_removed_after_an_error_and_a_dropped_stream() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let engine = limited_engine(2, dir.path());

    // The sort spills runs before the rows with a non-numeric comment
    // reach the failing cast.
    let failing = "SELECT l_orderkey FROM lineitem ORDER BY l_comment, \
                   CASE WHEN l_orderkey > 500000 THEN CAST(l_comment AS INT) ELSE 0 END";
    let err = query_error(&engine, failing).await;
    assert!(err.contains("Cannot cast"), "{err}");
    assert_empty(dir.path(), "an error").await;

    // A spilling sort whose consumer goes away after the first batch.
    let stream = stream_after_first_batch(&engine, BIG_SORT).await;
    assert!(!leftovers(dir.path()).is_empty(), "the sort did not spill");
    drop(stream);
    assert_empty(dir.path(), "a dropped stream").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tpch_under_16_mib_per_worker_returns_the_unlimited_rows() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cluster = limited_local_cluster(LIMIT, Some(dir.path())).await;
    let client = Engine::connect_with_config(
        cluster.client_config(),
        EngineConfig {
            target_partitions: 4,
            batch_size: 8192,
            memory_limit: Some(LIMIT),
            spill_dir: Some(dir.path().to_path_buf()),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("connect: {e}"));
    client
        .register_tpch(SF)
        .unwrap_or_else(|e| panic!("register_tpch: {e}"));
    let unlimited = tpch_engine(SF, 4);
    let queries = all_queries();
    let mut failures = Vec::new();
    for (name, sql) in &queries {
        let label = format!("{name}, 2 workers, 16 MiB each");
        if let Err(e) = check_parity(&label, sql, &unlimited, &client).await {
            failures.push(e);
        }
    }
    assert_no_failures(&failures, queries.len());
    assert!(cluster_spilled_bytes(&cluster) > 0, "no task spilled");
    for w in cluster.worker_states() {
        assert_eq!(w.memory_limit, Some(LIMIT as u64), "{w:?}");
    }
    assert_empty(dir.path(), "the cluster's queries").await;
    cluster.shutdown().await;
}
