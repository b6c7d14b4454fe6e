//! Progress of running queries: rows scanned and stages done, embedded
//! and on a cluster.

use ffq::{Engine, LocalCluster};
use futures::StreamExt;

use crate::common::{connect_engine, ffq_engine};

const SQL: &str = "SELECT l_returnflag, count(*) FROM lineitem GROUP BY l_returnflag";

async fn run_with_progress(
    engine: &Engine,
) -> (
    ffq::progress::ProgressSnapshot,
    ffq::progress::ProgressSnapshot,
) {
    let df = engine.sql(SQL).await.unwrap();
    let stages = ffq::stages::stages(df.physical_plan().unwrap()).len();
    assert!(stages >= 2);
    let (mut stream, progress) = df.execute_with_progress().unwrap();
    let before = progress.snapshot();
    let mut rows = 0;
    while let Some(b) = stream.next().await {
        rows += b.unwrap().num_rows();
    }
    assert_eq!(rows, 3);
    if engine.cluster().is_none() {
        assert_eq!(progress.snapshot().stages_total, stages);
    }
    (before, progress.snapshot())
}

#[tokio::test]
async fn embedded_progress_counts_scanned_rows_and_finished_stages() {
    let engine = ffq_engine(2, 4096);
    engine.register_tpch(0.01).unwrap();
    let (before, after) = run_with_progress(&engine).await;
    assert_eq!(before.rows_scanned, 0);
    assert_eq!(before.stages_done, 0);
    assert_eq!(after.rows_scanned, 60175);
    assert_eq!(after.stages_done, after.stages_total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_progress_follows_finished_tasks() {
    let cluster = LocalCluster::start(2).await.unwrap();
    let engine = connect_engine(cluster.client_config(), 2, 4096).await;
    engine.register_tpch(0.01).unwrap();
    let (before, after) = run_with_progress(&engine).await;
    assert_eq!(before.rows_scanned, 0);
    assert_eq!(after.rows_scanned, 60175);
    assert!(after.stages_total >= 2);
    // The workers' stages are done; the client's own is the last.
    assert_eq!(after.stages_done, after.stages_total - 1);
    cluster.shutdown().await;
}
