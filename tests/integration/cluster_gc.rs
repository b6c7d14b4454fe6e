//! Nothing of a query outlives it on a cluster: whatever ends it (the
//! client finishing, exiting, being killed; the coordinator going away),
//! the coordinator forgets it and the workers hold no task, output or
//! table of it within a few seconds.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ffq::cluster::protocol::WorkerState;
use ffq::{Engine, LocalCluster};
use futures::StreamExt;

use crate::common::ffq_binary::{ffq, ffq_process_cluster, FFQ};
use crate::common::{tpch_cluster_engine, tpch_query};

/// How long the cluster may take to forget a query after its end.
const FORGET_WITHIN: Duration = Duration::from_secs(8);

/// Waits until the coordinator lists no query and every worker holds
/// nothing; panics with what is left otherwise.
pub(crate) async fn assert_cluster_clear(engine: &Engine, what: &str) {
    let client = engine.cluster().unwrap();
    let start = Instant::now();
    loop {
        let status = client.status().await.unwrap();
        let states = client.worker_states().await.unwrap();
        if status.queries.is_empty() && states.iter().all(is_clear) {
            return;
        }
        assert!(
            start.elapsed() < FORGET_WITHIN,
            "{what}: the cluster still holds queries after {FORGET_WITHIN:?}:\n{:#?}\n{states:#?}",
            status.queries
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_clear(state: &WorkerState) -> bool {
    state.queries.is_empty()
        && state.running.is_empty()
        && state.streams.is_empty()
        && state.buffered_bytes == 0
        && state.spilled_bytes == 0
        && state.memory_reserved == 0
}

fn connect_args<'a>(endpoint: &'a str, cluster: &'a str) -> Vec<&'a str> {
    vec!["sql", "--connect", endpoint, "--cluster", cluster]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_shot_clients_leave_nothing_behind() {
    let cluster = ffq_process_cluster(2, 2, 10_000).await;
    let engine = tpch_cluster_engine(cluster.client_config().unwrap(), 0.01, 2).await;
    for sql in [
        "SELECT count(*) FROM part",
        "SELECT count(*) FROM part",
        "SELECT count(*) FROM part",
        "SELECT n_name, count(*) FROM supplier JOIN nation ON s_nationkey = n_nationkey GROUP BY n_name",
        "SELECT count(*) FROM part",
    ] {
        let mut args = connect_args(cluster.endpoint(), cluster.name());
        args.extend(["--tpch", "0.01", sql]);
        let out = ffq(&args, None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_cluster_clear(&engine, "after five one-shot `ffq sql --connect` runs").await;
}

/// Starts `ffq sql --connect` on a long query as a child process.
fn start_client(endpoint: &str, cluster: &str, sql: &str) -> Child {
    let mut args = connect_args(endpoint, cluster);
    args.extend(["--tpch", "0.1", "--partitions", "8", sql]);
    Command::new(FFQ)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ffq sql --connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_client_leaves_nothing_behind() {
    let cluster = ffq_process_cluster(2, 1, 10_000).await;
    let engine = tpch_cluster_engine(cluster.client_config().unwrap(), 0.01, 2).await;
    let client = engine.cluster().unwrap();
    for signal in ["-KILL", "-TERM"] {
        let mut child = start_client(cluster.endpoint(), cluster.name(), &tpch_query(18));
        // Kill it once the coordinator runs its query.
        let start = Instant::now();
        loop {
            let status = client.status().await.unwrap();
            if status.queries.iter().any(|q| q.running_tasks > 0) {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the client ended before its query ran"
            );
            assert!(start.elapsed() < Duration::from_secs(60), "{status:#?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let ok = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        child.wait().unwrap();
        assert_cluster_clear(&engine, &format!("after kill {signal} of the client")).await;
    }
}

/// Opens a query's stream on `engine` and reads its first batch, so that
/// every stage ran and the workers hold the outputs the root stage reads.
async fn hold_query_open(engine: &Engine, sql: &str) -> ffq::SendableRecordBatchStream {
    let mut stream = engine.sql(sql).await.unwrap().execute_stream().unwrap();
    stream.next().await.expect("a first batch").unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_drop_everything_when_the_coordinator_goes() {
    let mut cluster = LocalCluster::start(2).await.unwrap();
    let engine = tpch_cluster_engine(cluster.client_config(), 0.01, 4).await;
    let sql = "SELECT l_orderkey, l_quantity FROM lineitem ORDER BY l_orderkey, l_linenumber";
    let open = hold_query_open(&engine, sql).await;
    assert!(
        cluster
            .worker_states()
            .iter()
            .any(|s| !s.streams.is_empty()),
        "the workers hold the query's outputs: {:#?}",
        cluster.worker_states()
    );
    cluster.stop_coordinator().await;
    let start = Instant::now();
    while !cluster.worker_states().iter().all(is_clear) {
        assert!(
            start.elapsed() < FORGET_WITHIN,
            "{:#?}",
            cluster.worker_states()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finished_and_dropped_queries_are_forgotten_and_read_stages_released() {
    let cluster = LocalCluster::start(2).await.unwrap();
    let engine = tpch_cluster_engine(cluster.client_config(), 0.01, 4).await;
    // Three stages on the workers: scans, the partial aggregate's hash
    // exchange, the final aggregate gathered to the client.
    let sql =
        "SELECT o_orderpriority, count(*) FROM orders JOIN lineitem ON o_orderkey = l_orderkey \
               GROUP BY o_orderpriority";
    let open = hold_query_open(&engine, sql).await;
    // While the client reads the last stage, the stages it does not read
    // are released already: only the root stage's inputs are held.
    let start = Instant::now();
    loop {
        let states = cluster.worker_states();
        let stages: std::collections::BTreeSet<_> = states
            .iter()
            .flat_map(|s| s.streams.iter().map(|id| id.stage))
            .collect();
        if stages.len() == 1 {
            break;
        }
        assert!(
            start.elapsed() < FORGET_WITHIN,
            "only the root's input stage should be held: {states:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(open);
    for _ in 0..3 {
        engine.sql(sql).await.unwrap().collect().await.unwrap();
    }
    assert_cluster_clear(&engine, "after finished and dropped queries").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_leave_nothing_behind() {
    let cluster = LocalCluster::start(2).await.unwrap();
    let mut engines = Vec::new();
    for _ in 0..4 {
        engines.push(tpch_cluster_engine(cluster.client_config(), 0.01, 2).await);
    }
    for round in 0..2 {
        let runs = engines.iter().enumerate().map(|(i, engine)| {
            let sql = tpch_query([3, 5, 10, 18][i]);
            let engine = engine.clone();
            tokio::spawn(async move { engine.sql(&sql).await?.collect().await })
        });
        for run in futures::future::join_all(runs).await {
            run.unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        assert_cluster_clear(
            &engines[0],
            &format!("round {round} of 4 concurrent clients"),
        )
        .await;
    }
}
