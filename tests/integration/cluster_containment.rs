//! Workers that misbehave are contained: a worker that accepts tasks and
//! never answers holds a query no longer than the progress deadline; when
//! every worker is gone a query fails after a deadline with a clear error;
//! a second worker cannot take the id of a live (or paused) one.

use std::io::{Read, Seek, SeekFrom};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffq::cluster::process::ProcessCluster;
use ffq::cluster::{FaultHook, LocalCluster, SchedulerConfig};

use crate::cluster_processes::{busy_worker, signal, start_query};
use crate::common::fake_worker::MuteWorker;
use crate::common::ffq_binary::{ffq_process_cluster, FFQ};
use crate::common::{check_parity, tpch_cluster_engine, tpch_engine, tpch_query};

const SF: f64 = 0.01;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_that_accepts_tasks_and_never_answers_holds_a_query_only_until_the_deadline() {
    const DEADLINE: Duration = Duration::from_secs(2);
    let cluster = LocalCluster::builder()
        .workers(1)
        .scheduler(SchedulerConfig {
            progress_deadline: DEADLINE,
            ..SchedulerConfig::default()
        })
        .start()
        .await
        .unwrap();
    // More free slots than the honest worker: it is picked first.
    let mute = MuteWorker::start(&cluster.client_config(), "mute", 8).await;
    cluster
        .wait_for(|s| s.workers.iter().any(|w| w.info.id.as_str() == "mute"))
        .await
        .unwrap();
    let engine = tpch_cluster_engine(cluster.client_config(), SF, 4).await;
    let embedded = tpch_engine(SF, 4);

    let start = Instant::now();
    check_parity(
        "q1 beside a mute worker",
        &tpch_query(1),
        &embedded,
        &engine,
    )
    .await
    .unwrap();
    let took = start.elapsed();
    assert!(mute.assigned() >= 1, "the mute worker was given tasks");
    assert!(
        took < DEADLINE + Duration::from_secs(15),
        "the query took {took:?}"
    );
    let status = cluster.status();
    assert!(status.counters.stalled >= 1, "{:?}", status.counters);
    let suspected = status
        .workers
        .iter()
        .find(|w| w.info.id.as_str() == "mute")
        .unwrap();
    assert!(suspected.suspected_ms.is_some(), "{suspected:?}");

    // Suspected, it gets nothing more while the honest worker can run.
    let given = mute.assigned();
    check_parity(
        "q6 beside a suspected worker",
        &tpch_query(6),
        &embedded,
        &engine,
    )
    .await
    .unwrap();
    assert_eq!(mute.assigned(), given);
    drop(mute);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_every_worker_gone_a_query_fails_after_the_wait_with_a_clear_error() {
    const WAIT: Duration = Duration::from_secs(2);
    // Every attempt fails (transiently) and is retried after 300 ms: the
    // query is mid-way when the workers go.
    let fault: FaultHook = Arc::new(|_| Some("transient (test)".into()));
    let mut cluster = LocalCluster::builder()
        .workers(2)
        .fault(fault)
        .scheduler(SchedulerConfig {
            max_attempts: 1000,
            exclude_after: 1000,
            backoff_base: Duration::from_millis(300),
            backoff_max: Duration::from_millis(300),
            no_worker_wait: WAIT,
            ..SchedulerConfig::default()
        })
        .start()
        .await
        .unwrap();
    let engine = tpch_cluster_engine(cluster.client_config(), SF, 4).await;
    let query = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let df = engine
                .sql(&tpch_query(1))
                .await
                .map_err(|e| e.to_string())?;
            df.collect().await.map_err(|e| e.to_string())
        })
    };
    cluster
        .wait_for(|s| s.counters.attempts_failed >= 2)
        .await
        .unwrap();
    cluster.stop_worker(0).await.unwrap();
    cluster.stop_worker(1).await.unwrap();
    let gone = Instant::now();
    let err = tokio::time::timeout(WAIT + Duration::from_secs(20), query)
        .await
        .expect("the query ends instead of waiting forever")
        .unwrap()
        .expect_err("no worker is left to run it");
    let took = gone.elapsed();
    assert!(
        err.contains("no live worker for stage") && err.contains("for 2s"),
        "{err}"
    );
    assert!(
        took >= WAIT && took < WAIT + Duration::from_secs(10),
        "{took:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_worker_process_killed_mid_query_fails_it_after_the_wait() {
    const WAIT: Duration = Duration::from_secs(3);
    let cluster = ProcessCluster::builder(FFQ)
        .workers(2)
        .slots(1)
        .no_worker_wait(WAIT)
        .start()
        .await
        .unwrap();
    // Six scan tasks on two one-slot workers: most are still to run when
    // the first one is seen running.
    let engine = tpch_cluster_engine(cluster.client_config().unwrap(), 0.1, 6).await;
    let query = start_query(&engine, tpch_query(1));
    busy_worker(&engine).await;
    for pid in cluster.worker_pids() {
        signal(pid, "-KILL");
    }
    let killed = Instant::now();
    let err = tokio::time::timeout(WAIT + Duration::from_secs(20), query)
        .await
        .expect("the query ends instead of waiting forever")
        .unwrap()
        .expect_err("no worker is left to run it");
    let took = killed.elapsed();
    assert!(
        err.contains("no live worker for stage") && err.contains("for 3s"),
        "{err}"
    );
    assert!(took < WAIT + Duration::from_secs(10), "{took:?}");
}

/// Runs `ffq ARGS`, killing it after `limit`: its exit status and
/// standard error, or `None` if it was still running then.
fn ffq_within(args: &[&str], limit: Duration) -> Option<(ExitStatus, String)> {
    // A file, not a pipe: nobody reads a pipe while the process runs.
    let mut stderr = tempfile::tempfile().expect("a temp file");
    let mut child = Command::new(FFQ)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr.try_clone().expect("clone the temp file"))
        .spawn()
        .expect("start ffq");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll ffq") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    stderr.seek(SeekFrom::Start(0)).expect("rewind");
    stderr.read_to_string(&mut text).expect("read stderr");
    Some((status, text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_worker_with_the_id_of_a_live_or_paused_worker_is_refused() {
    let cluster = ffq_process_cluster(2, 1, 10_000).await;
    let engine = tpch_cluster_engine(cluster.client_config().unwrap(), SF, 4).await;
    let embedded = tpch_engine(SF, 4);
    let status = engine.cluster().unwrap().status().await.unwrap();
    let held = status.workers[0].info.clone();
    let id = held.id.to_string();
    let duplicate = [
        "worker",
        "--id",
        &id,
        "--connect",
        cluster.endpoint(),
        "--listen",
        "tcp/127.0.0.1:0",
        "--cluster",
        cluster.name(),
    ];
    let refused = |what: &str| {
        let (status, stderr) = ffq_within(&duplicate, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{what}: the duplicate worker was not refused"));
        assert!(!status.success(), "{what}: {stderr}");
        assert!(
            stderr.contains(&format!("worker id {id} is already held by a live worker")),
            "{what}: {stderr}"
        );
    };
    refused("a live worker");
    signal(held.pid, "-STOP");
    refused("a paused worker");
    signal(held.pid, "-CONT");

    let start = Instant::now();
    check_parity(
        "q1 after refused duplicates",
        &tpch_query(1),
        &embedded,
        &engine,
    )
    .await
    .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let status = engine.cluster().unwrap().status().await.unwrap();
    assert_eq!(status.workers.len(), 2, "{status:?}");
    assert!(status.workers.iter().all(|w| w.alive), "{status:?}");
    assert_eq!(status.counters.workers_lost, 0, "{:?}", status.counters);
}
