//! Clusters of real `ffq coordinator` and `ffq worker` processes on
//! loopback: parity with embedded mode, and faults (a worker killed with
//! SIGKILL while its stage runs; a worker paused with SIGSTOP past its
//! lease and resumed after its tasks were requeued).

use std::process::Command;
use std::time::{Duration, Instant};

use ffq::cluster::process::{free_port, ProcessCluster};
use ffq::cluster::protocol::ClusterStatus;
use ffq::Engine;

use crate::common::ffq_binary::{ffq_cli, ffq_process_cluster, FFQ};
use crate::common::{
    check_parity, compare_rows, normalize, output_order, tpch_cluster_engine, tpch_engine,
    tpch_query, OutputOrder,
};

/// The pid of a worker running a task attempt right now (as the worker
/// itself reports it), waiting up to 30 s for one.
pub(crate) async fn busy_worker(engine: &Engine) -> u32 {
    let client = engine.cluster().unwrap();
    let start = Instant::now();
    loop {
        let states = client.worker_states().await.unwrap();
        if let Some(busy) = states.iter().find(|s| !s.running.is_empty()) {
            let status = client.status().await.unwrap();
            if let Some(w) = status
                .workers
                .iter()
                .find(|w| w.info.id.as_str() == busy.id)
            {
                return w.info.pid;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no worker got busy"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_for(
    engine: &Engine,
    limit: Duration,
    f: impl Fn(&ClusterStatus) -> bool,
) -> Result<ClusterStatus, String> {
    let client = engine.cluster().unwrap();
    let start = Instant::now();
    loop {
        if let Ok(status) = client.status().await {
            if f(&status) {
                return Ok(status);
            }
            if start.elapsed() > limit {
                return Err(format!("{status:#?}"));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends signal `sig` (`-STOP`, `-KILL`...) to process `pid`.
pub(crate) fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_processes_give_the_embedded_results_for_tpch() {
    let cluster = ffq_process_cluster(2, 2, 10_000).await;
    let engine = tpch_cluster_engine(cluster.client_config().unwrap(), 0.01, 4).await;
    let embedded = tpch_engine(0.01, 4);
    let mut failures = Vec::new();
    for q in 1..=22 {
        if let Err(e) = check_parity(&format!("q{q}"), &tpch_query(q), &embedded, &engine).await {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Starts `sql` on `engine` in the background.
pub(crate) fn start_query(
    engine: &Engine,
    sql: String,
) -> tokio::task::JoinHandle<Result<Vec<arrow::array::RecordBatch>, String>> {
    let engine = engine.clone();
    tokio::spawn(async move {
        let df = engine.sql(&sql).await.map_err(|e| e.to_string())?;
        df.collect().await.map_err(|e| e.to_string())
    })
}

async fn compare_with_embedded(
    sql: &str,
    batches: &[arrow::array::RecordBatch],
    partitions: usize,
    sf: f64,
) {
    let e = tpch_engine(sf, partitions).sql(sql).await.unwrap();
    let order = e
        .logical_plan()
        .map(output_order)
        .unwrap_or(OutputOrder::Unordered);
    let expected = e.collect().await.unwrap();
    compare_rows(
        sql,
        &normalize(&expected).unwrap(),
        &normalize(batches).unwrap(),
        &order,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_while_its_stage_runs_is_replaced() {
    const SF: f64 = 0.1;
    let cluster = ffq_process_cluster(3, 1, 10_000).await;
    let engine = tpch_cluster_engine(cluster.client_config().unwrap(), SF, 6).await;
    let sql = tpch_query(1);
    let query = start_query(&engine, sql.clone());
    let victim = busy_worker(&engine).await;
    signal(victim, "-KILL");
    let batches = query.await.unwrap().expect("the query survives the kill");
    compare_with_embedded(&sql, &batches, 6, SF).await;
    let c = engine.cluster().unwrap().status().await.unwrap().counters;
    assert!(
        c.workers_lost >= 1 && c.requeued + c.recomputed >= 1,
        "{c:?}"
    );
    // The surviving workers hold nothing of the query afterwards.
    crate::cluster_gc::assert_cluster_clear(&engine, "a worker killed mid-query").await;
}

/// The seed scenario: a worker stops answering (SIGSTOP) past its lease;
/// the coordinator requeues its tasks as new attempts elsewhere; the worker
/// resumes and finishes its stale attempts, whose output must be ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinator_requeues_tasks_from_stale_worker() {
    const SF: f64 = 0.1;
    let cluster = ffq_process_cluster(3, 1, 1_000).await;
    let engine = tpch_cluster_engine(cluster.client_config().unwrap(), SF, 6).await;
    let sql = tpch_query(1);
    let query = start_query(&engine, sql.clone());
    let paused = busy_worker(&engine).await;
    signal(paused, "-STOP");
    // Past the lease, the coordinator sees the worker gone and requeues.
    let lost = wait_for(&engine, Duration::from_secs(20), |s| {
        s.counters.workers_lost >= 1 && s.counters.requeued >= 1
    })
    .await;
    signal(paused, "-CONT");
    lost.expect("the paused worker is declared lost and its tasks requeued");
    let batches = query.await.unwrap().expect("the query survives the pause");
    compare_with_embedded(&sql, &batches, 6, SF).await;
    // The resumed worker rejoins; what its stale attempts produced is
    // dropped, never read as the registered output.
    let status = wait_for(&engine, Duration::from_secs(30), |s| {
        s.counters.stale_frames > 0 && s.workers.iter().all(|w| w.alive)
    })
    .await
    .expect("stale frames dropped and the worker back");
    assert!(status.counters.stale_frames > 0);
    let client = engine.cluster().unwrap();
    let start = Instant::now();
    loop {
        let states = client.worker_states().await.unwrap();
        if states.len() == 3 && states.iter().all(|s| s.queries.is_empty()) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "left over: {states:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What `ffq status` prints for `cluster`.
fn ffq_status(cluster: &ProcessCluster) -> String {
    let (ok, status, err) = ffq_cli(&[
        "status",
        "--connect",
        cluster.endpoint(),
        "--cluster",
        cluster.name(),
    ]);
    assert!(ok, "{err}");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sql_connect_prints_what_embedded_prints_and_status_lists_workers() {
    let cluster = ffq_process_cluster(2, 2, 10_000).await;
    let sql = "SELECT n_name, count(*) AS suppliers FROM supplier JOIN nation ON s_nationkey = n_nationkey \
               GROUP BY n_name ORDER BY suppliers DESC, n_name LIMIT 5";
    let (ok, embedded, err) = ffq_cli(&["sql", "--tpch", "0.01", "--format", "csv", sql]);
    assert!(ok, "{err}");
    let (ok, distributed, err) = ffq_cli(&[
        "sql",
        "--connect",
        cluster.endpoint(),
        "--cluster",
        cluster.name(),
        "--tpch",
        "0.01",
        "--format",
        "csv",
        sql,
    ]);
    assert!(ok, "{err}");
    assert_eq!(distributed, embedded);
    assert_eq!(distributed.lines().count(), 6, "{distributed}");

    let status = ffq_status(&cluster);
    assert!(status.contains("workers: 2 alive"), "{status}");
    assert!(status.contains("submitted=1"), "{status}");

    // Nobody listening: a clear error naming the endpoint, exit status 1.
    let nobody = format!("tcp/127.0.0.1:{}", free_port().unwrap());
    let start = Instant::now();
    let (ok, _, err) = ffq_cli(&[
        "sql",
        "--connect",
        &nobody,
        "--cluster",
        cluster.name(),
        "SELECT 1",
    ]);
    assert!(!ok);
    assert!(
        err.contains("no coordinator") && err.contains(&nobody),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_run_with_the_memory_limit_the_cluster_gives_them() {
    for (limit, shown) in [(Some(48 << 20), "/48.0MiB "), (None, "/unlimited ")] {
        let cluster = ProcessCluster::builder(FFQ)
            .workers(2)
            .slots(1)
            .worker_memory_limit(limit)
            .start()
            .await
            .unwrap();
        let pids = cluster.worker_pids();
        assert_eq!(pids.len(), 2);
        for pid in pids {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            assert!(status.contains("VmHWM:"), "{status}");
        }
        let status = ffq_status(&cluster);
        assert_eq!(status.matches(shown).count(), 2, "{status}");
    }
}
