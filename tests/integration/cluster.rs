//! The distributed runtime against embedded mode: same schema, same rows.
//! Clusters here are [`LocalCluster`]s: a coordinator and workers in this
//! process, each with its own zenoh session over loopback TCP.

use std::time::Instant;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use ffq::cluster::{FaultHook, SchedulerConfig};
use ffq::tpch::{write_tpch, TpchFileFormat};
use ffq::{Engine, LocalCluster};

use crate::common::spill::stream_after_first_batch;
use crate::common::{check_parity, query_error, tpch_cluster_engine, tpch_engine, tpch_query};

const SF: f64 = 0.01;

/// Every TPC-H query, on a cluster of `workers` workers; returns the
/// failures.
async fn tpch_parity(workers: usize, embedded: &Engine) -> Vec<String> {
    let cluster = LocalCluster::start(workers).await.unwrap();
    let engine = tpch_cluster_engine(cluster.client_config(), SF, 4).await;
    let mut failures = Vec::new();
    let start = Instant::now();
    for q in 1..=22 {
        let label = format!("q{q} on {workers} worker(s)");
        if let Err(e) = check_parity(&label, &tpch_query(q), embedded, &engine).await {
            failures.push(e);
        }
    }
    eprintln!("22 queries on {workers} worker(s): {:?}", start.elapsed());
    cluster.shutdown().await;
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tpch_parity_on_one_two_and_three_workers() {
    let embedded = tpch_engine(SF, 4);
    let mut failures = Vec::new();
    for workers in [1, 2, 3] {
        failures.extend(tpch_parity(workers, &embedded).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The engine's cluster workers, read through their zenoh state queryables,
/// until every one holds nothing (tasks, outputs, cached tables); panics
/// with what is left after 10 s.
async fn assert_workers_clear(engine: &Engine, after: &str) {
    let client = engine.cluster().expect("a cluster engine");
    let start = Instant::now();
    loop {
        let states = client.worker_states().await.unwrap();
        let status = client.status().await.unwrap();
        let clear = states.iter().all(|s| {
            s.running.is_empty()
                && s.streams.is_empty()
                && s.buffered_bytes == 0
                && s.queries.is_empty()
        }) && status.queries.is_empty();
        if clear && !states.is_empty() {
            return;
        }
        if start.elapsed() > Duration::from_secs(10) {
            panic!(
                "after {after}, the cluster still holds: {states:#?}\n{:#?}",
                status.queries
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_collection_after_success_failure_and_dropped_stream() {
    let cluster = LocalCluster::builder()
        .workers(2)
        .scheduler(SchedulerConfig {
            backoff_base: Duration::from_millis(10),
            ..SchedulerConfig::default()
        })
        .start()
        .await
        .unwrap();
    let engine = tpch_cluster_engine(cluster.client_config(), SF, 4).await;
    assert_eq!(cluster.worker_states().len(), 2);

    // Success.
    let rows: usize = engine
        .sql(&tpch_query(3))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 10);
    assert_workers_clear(&engine, "a successful query").await;

    // Failure: a cast that fails at run time on the workers. It would fail
    // the same way again: the query fails without retrying it.
    let err = query_error(&engine, "SELECT sum(CAST(l_comment AS INT)) FROM lineitem").await;
    assert!(
        err.contains("failed (worker ") && err.contains("Cannot cast"),
        "{err}"
    );
    assert!(!err.contains("attempts"), "retried: {err}");
    assert_workers_clear(&engine, "a failed query").await;

    // A stream dropped after its first batch.
    let stream =
        stream_after_first_batch(&engine, "SELECT l_orderkey, l_comment FROM lineitem").await;
    drop(stream);
    assert_workers_clear(&engine, "a dropped stream").await;
    cluster.shutdown().await;
}

/// A hook failing the first `failures` attempts of stage 1, task 0.
fn failing_hook(failures: u32) -> FaultHook {
    Arc::new(move |a| {
        (a.stage.0 == 1 && a.task.0 == 0 && a.attempt.0 < failures)
            .then(|| format!("injected failure of attempt {}", a.attempt.0))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_failing_twice_then_succeeding_gives_the_embedded_result() {
    let cluster = LocalCluster::builder()
        .workers(2)
        .fault(failing_hook(2))
        .start()
        .await
        .unwrap();
    let engine = tpch_cluster_engine(cluster.client_config(), SF, 4).await;
    let embedded = tpch_engine(SF, 4);
    check_parity("q5, failing twice", &tpch_query(5), &embedded, &engine)
        .await
        .unwrap();
    let c = cluster.status().counters;
    assert_eq!(c.attempts_failed, 2, "{c:?}");
    assert_eq!(c.queries_failed, 0, "{c:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_that_always_fails_fails_the_query_within_the_attempt_budget() {
    let cluster = LocalCluster::builder()
        .workers(2)
        .fault(failing_hook(u32::MAX))
        .start()
        .await
        .unwrap();
    let engine = tpch_cluster_engine(cluster.client_config(), SF, 4).await;
    let start = Instant::now();
    let err = query_error(&engine, &tpch_query(1)).await;
    assert!(
        err.contains("stage 1 task 0 failed after 4 attempts")
            && err.contains("injected failure of attempt 3"),
        "{err}"
    );
    // Backoffs 0.1 + 0.2 + 0.4 s: well under the bound.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let c = cluster.status().counters;
    assert_eq!((c.attempts_failed, c.queries_failed), (4, 1), "{c:?}");
    assert_workers_clear(&engine, "a query that always fails").await;
    cluster.shutdown().await;
}

fn people(ids: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("nation", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let n = ids.end - ids.start;
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(ids.clone())),
            Arc::new(Int64Array::from_iter(
                ids.clone().map(|i| (i % 7 != 0).then_some(i % 25)),
            )),
            Arc::new(StringArray::from_iter(
                (0..n).map(|i| Some(format!("p{i}"))),
            )),
        ],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_tables_are_shipped_to_the_workers() {
    let cluster = LocalCluster::start(2).await.unwrap();
    let engine = tpch_cluster_engine(cluster.client_config(), SF, 3).await;
    let embedded = tpch_engine(SF, 3);
    let batches = vec![people(0..500), people(500..1200), people(1200..1201)];
    engine.register_batches("people", batches.clone()).unwrap();
    embedded.register_batches("people", batches).unwrap();
    for sql in [
        "SELECT n_name, count(*) AS c, min(name) AS m FROM people JOIN nation ON nation = n_nationkey GROUP BY n_name",
        "SELECT * FROM people WHERE nation IS NULL ORDER BY id DESC LIMIT 7",
        "SELECT count(*), sum(id) FROM people",
    ] {
        check_parity(sql, sql, &embedded, &engine).await.unwrap();
    }
    assert_workers_clear(&engine, "queries over memory tables").await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parquet_and_csv_tables_are_read_by_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let pq = dir.path().join("pq");
    let csv = dir.path().join("csv");
    write_tpch(SF, &pq, TpchFileFormat::Parquet, 3).unwrap();
    write_tpch(SF, &csv, TpchFileFormat::Csv, 2).unwrap();
    let cluster = LocalCluster::start(2).await.unwrap();
    let engine = tpch_cluster_engine(cluster.client_config(), SF, 4).await;
    let embedded = tpch_engine(SF, 4);
    for e in [&engine, &embedded] {
        e.register_parquet("pq_lineitem", pq.join("lineitem").to_str().unwrap())
            .unwrap();
        e.register_csv(
            "csv_orders",
            csv.join("orders").to_str().unwrap(),
            Default::default(),
        )
        .unwrap();
    }
    let sql = "SELECT o_orderpriority, count(*) AS n, sum(l_quantity) AS q \
               FROM pq_lineitem JOIN csv_orders ON l_orderkey = o_orderkey \
               WHERE l_shipdate > DATE '1995-01-01' GROUP BY o_orderpriority ORDER BY o_orderpriority";
    check_parity("parquet join csv", sql, &embedded, &engine)
        .await
        .unwrap();
    cluster.shutdown().await;
}
