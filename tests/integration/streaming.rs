//! Streaming and cancellation: results arrive while the query runs, and
//! dropping the output stream stops every task of the query.
//!
//! The TPC-H SF 1 tables serve as a large source that is never scanned to
//! the end: generating all 6M lineitem rows takes far longer in a debug
//! build than the bounds asserted here (see `calibrate_full_scan`).

use crate::common;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;

use crate::common::ffq_engine;

/// Waits until the runtime has at most `baseline` alive tasks; returns the
/// count seen last.
async fn wait_for_tasks(baseline: usize, within: Duration) -> Result<(), usize> {
    let handle = tokio::runtime::Handle::current();
    let deadline = Instant::now() + within;
    loop {
        let alive = handle.metrics().num_alive_tasks();
        if alive <= baseline {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(alive);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A memory table of 60 batches streams through a filter: the output comes
/// in several batches of about `batch_size` rows, with the right rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_table_streams_in_batches() {
    let engine = ffq_engine(1, 100);
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let batches: Vec<RecordBatch> = (0..60)
        .map(|b| {
            let col: ArrayRef = Arc::new(Int64Array::from_iter_values(b * 100..(b + 1) * 100));
            RecordBatch::try_new(Arc::clone(&schema), vec![col]).unwrap()
        })
        .collect();
    engine.register_batches("t", batches).unwrap();
    let df = engine.sql("SELECT * FROM t WHERE x % 2 = 0").await.unwrap();
    let mut stream = df.execute_stream().unwrap();
    let mut n_batches = 0;
    let mut rows = 0;
    let mut sum = 0i64;
    while let Some(b) = stream.next().await {
        let b = b.unwrap();
        assert!(
            b.num_rows() <= 100,
            "batch of {} rows > batch_size 100",
            b.num_rows()
        );
        let x = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        sum += x.values().iter().sum::<i64>();
        rows += b.num_rows();
        n_batches += 1;
    }
    assert_eq!(rows, 3000);
    assert_eq!(sum, (0..6000i64).filter(|x| x % 2 == 0).sum::<i64>());
    assert!(
        n_batches >= 2,
        "output came in {n_batches} batch(es): not streamed"
    );
}

/// The first batch of a filter over SF 1 lineitem (6M rows, ~730 batches
/// of 8192) arrives long before the scan could have ended; dropping the
/// stream then ends the query.
///
/// The bound is relative to the generator's own speed (measured here), so
/// it holds for debug and optimized builds of tpchgen: the first batch must
/// come within the time of generating 100 batches (1/7 of the table), and
/// at most 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_batch_arrives_before_the_scan_ends() {
    let per_batch = common::lineitem_batch_time(1.0, 8192);
    let bound = (per_batch * 100).clamp(Duration::from_millis(500), Duration::from_secs(5));
    let start = Instant::now();
    let engine = ffq_engine(1, 8192);
    engine.register_tpch(1.0).unwrap();
    let df = engine
        .sql("SELECT l_orderkey FROM lineitem WHERE l_quantity > 1")
        .await
        .unwrap();
    let mut stream = df.execute_query().unwrap();
    let tasks = stream.tasks();
    let first = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("no first batch within 30 s")
        .expect("the stream ended without a batch")
        .expect("the query failed");
    let first_at = start.elapsed();
    assert!(first.num_rows() > 0);
    assert!(
        first.num_rows() <= 8192,
        "first batch has {} rows > batch_size",
        first.num_rows()
    );
    drop(stream);
    assert!(
        tasks.upgrade().is_none(),
        "dropping the stream must drop the query's task set"
    );
    let elapsed = start.elapsed();
    eprintln!(
        "first batch after {first_at:?}, dropped after {elapsed:?} \
         (one generated batch takes {per_batch:?}, bound {bound:?})"
    );
    assert!(
        elapsed < bound,
        "first batch after {first_at:?}, stream dropped after {elapsed:?}, bound {bound:?} \
         (generating one batch takes {per_batch:?}): the source seems to be read \
         far beyond the first batch before output is produced"
    );
}

/// Starts `sql`, polls it for `poll`, drops the stream, and checks that
/// the task set is gone and the runtime's task count returns to where it
/// was before the query.
async fn assert_cancelled_on_drop(target_partitions: usize, sql: &str, poll: Duration) {
    // Not inside the query's first poll: a task busy in the one-time
    // initialization could not be aborted for seconds.
    common::warm_up_tpchgen();
    let handle = tokio::runtime::Handle::current();
    let baseline = handle.metrics().num_alive_tasks();
    let engine = ffq_engine(target_partitions, 8192);
    engine.register_tpch(1.0).unwrap();
    let df = engine.sql(sql).await.unwrap();
    let mut stream = df.execute_query().unwrap();
    let tasks = stream.tasks();

    // Wait for one batch for at most `poll` (the query cannot finish in
    // this time), then stop polling for the rest of `poll` so that
    // producers fill their channels and wait.
    let deadline = Instant::now() + poll;
    match tokio::time::timeout(poll, stream.next()).await {
        Err(_) => {}
        Ok(Some(Ok(_))) => {}
        Ok(Some(Err(e))) => panic!("query failed: {e}"),
        Ok(None) => panic!("query finished during the poll: the test is meaningless"),
    }
    tokio::time::sleep_until(deadline.into()).await;
    let running = tasks.upgrade().map(|t| t.running()).unwrap_or(0);
    let alive = handle.metrics().num_alive_tasks();
    assert!(
        running > 0 && alive > baseline,
        "while running, the query should have spawned tasks (running {running}, \
         alive {alive}, baseline {baseline})"
    );

    drop(stream);
    assert!(
        tasks.upgrade().is_none(),
        "dropping the stream must drop the query's task set"
    );
    if let Err(alive) = wait_for_tasks(baseline, Duration::from_secs(10)).await {
        panic!(
            "10 s after dropping the stream {alive} tasks are alive (baseline {baseline}): \
             query tasks were not aborted"
        );
    }
    drop(df);
}

/// An aggregate over SF 1 lineitem (no output before the input ends) with
/// 2 partitions: dropping the stream aborts the scan/partial-aggregate
/// tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_an_aggregate_cancels_its_tasks() {
    assert_cancelled_on_drop(
        2,
        "SELECT l_returnflag, l_linestatus, sum(l_quantity), count(*) \
         FROM lineitem GROUP BY l_returnflag, l_linestatus",
        Duration::from_millis(500),
    )
    .await;
}

/// A join over SF 1 with 2 partitions (repartition exchanges, a hash table
/// being built): dropping the stream aborts every task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_join_cancels_its_tasks() {
    assert_cancelled_on_drop(
        2,
        "SELECT o_orderpriority, count(*) FROM orders JOIN lineitem ON o_orderkey = l_orderkey \
         GROUP BY o_orderpriority",
        Duration::from_millis(500),
    )
    .await;
}

/// A streaming filter with 2 partitions, dropped after its first batch,
/// while producers are blocked on full exchange channels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_blocked_pipeline_cancels_its_tasks() {
    assert_cancelled_on_drop(
        2,
        "SELECT l_orderkey, l_comment FROM lineitem WHERE l_discount > 0.01",
        Duration::from_millis(500),
    )
    .await;
}

/// Not a test of FFQ: how long a full scan of SF 1 lineitem takes in this
/// build (the bounds above assume much more than 5 s).
/// Run with `cargo test --test integration streaming::calibrate -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn calibrate_full_scan() {
    eprintln!(
        "one generated batch: {:?}",
        common::lineitem_batch_time(1.0, 8192)
    );
    let engine = ffq_engine(1, 8192);
    engine.register_tpch(1.0).unwrap();
    let start = Instant::now();
    let df = engine
        .sql("SELECT l_orderkey FROM lineitem WHERE l_quantity > 1")
        .await
        .unwrap();
    let mut stream = df.execute_stream().unwrap();
    let mut rows = 0;
    while let Some(b) = stream.next().await {
        rows += b.unwrap().num_rows();
    }
    eprintln!(
        "full scan of SF 1 lineitem: {rows} rows in {:?}",
        start.elapsed()
    );
}
