//! Custom operators: the k-NN operator of `examples/knn`, embedded and on
//! clusters whose workers may or may not be able to run it.

#[path = "../../examples/knn/operator.rs"]
mod knn;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, FixedSizeListArray, Float32Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::pretty::pretty_format_batches;
use ffq::cluster::SchedulerConfig;
use ffq::dataflow::custom::OperatorRegistry;
use ffq::{Engine, LocalCluster};
use knn::{KnnConfig, KnnFactory, NAME};

const DIM: usize = 4;

fn points(n: usize) -> Vec<RecordBatch> {
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "v",
            DataType::FixedSizeList(Arc::clone(&item), DIM as i32),
            true,
        ),
    ]));
    (0..n)
        .step_by(1000)
        .map(|start| {
            let rows = 1000.min(n - start);
            // Distinct pseudo-random coordinates (no ties in distance).
            let values = Float32Array::from_iter_values((0..rows * DIM).map(|i| {
                let mut x = ((start * DIM + i) as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                x ^= x >> 29;
                x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                x ^= x >> 32;
                (x >> 40) as f32 / (1u64 << 24) as f32
            }));
            let nulls = (0..rows).map(|r| (start + r) % 97 != 0).collect::<Vec<_>>();
            let v = FixedSizeListArray::new(
                Arc::clone(&item),
                DIM as i32,
                Arc::new(values),
                Some(nulls.into()),
            );
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from_iter_values(
                        start as i64..(start + rows) as i64,
                    )),
                    Arc::new(v),
                ],
            )
            .unwrap()
        })
        .collect()
}

fn config(k: usize) -> String {
    KnnConfig {
        column: "v".into(),
        k,
        query: vec![0.25, 0.5, 0.75, 0.1],
    }
    .render()
}

const SQL: &str = "SELECT id, v FROM points WHERE id % 3 <> 1";

fn knn_registry() -> OperatorRegistry {
    let mut ops = OperatorRegistry::default();
    ops.register(NAME, Arc::new(KnnFactory));
    ops
}

fn render(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

/// The expected rows: embedded FFQ with the operator.
async fn embedded_knn(k: usize) -> String {
    let engine = Engine::new();
    engine
        .register_operator(NAME, Arc::new(KnnFactory))
        .unwrap();
    engine.register_batches("points", points(5000)).unwrap();
    let batches = engine
        .sql(SQL)
        .await
        .unwrap()
        .with_operator(NAME, &config(k))
        .unwrap()
        .collect()
        .await
        .unwrap();
    render(&batches)
}

async fn cluster_engine(cluster: &LocalCluster) -> Engine {
    let engine = Engine::connect(cluster.client_config()).await.unwrap();
    engine
        .register_operator(NAME, Arc::new(KnnFactory))
        .unwrap();
    engine.register_batches("points", points(5000)).unwrap();
    engine
}

async fn run_knn(engine: &Engine, k: usize) -> ffq::Result<String> {
    let batches = engine
        .sql(SQL)
        .await?
        .with_operator(NAME, &config(k))?
        .collect()
        .await?;
    Ok(render(&batches))
}

#[tokio::test]
async fn knn_operator_embedded_matches_brute_force() {
    let data = points(5000);
    let q = [0.25f64, 0.5, 0.75, 0.1];
    let mut all: Vec<(f64, i64)> = Vec::new();
    for b in &data {
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let v = b
            .column(1)
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .unwrap();
        for r in 0..b.num_rows() {
            if v.is_null(r) || ids.value(r) % 3 == 1 {
                continue;
            }
            let x = v.value(r);
            let x = x.as_any().downcast_ref::<Float32Array>().unwrap();
            let d: f64 = (0..DIM)
                .map(|i| (x.value(i) as f64 - q[i]).powi(2))
                .sum::<f64>()
                .sqrt();
            all.push((d, ids.value(r)));
        }
    }
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let engine = Engine::new();
    engine
        .register_operator(NAME, Arc::new(KnnFactory))
        .unwrap();
    engine.register_batches("points", data).unwrap();
    let batches = engine
        .sql(SQL)
        .await
        .unwrap()
        .with_operator(NAME, &config(7))
        .unwrap()
        .collect()
        .await
        .unwrap();
    let got: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    let want: Vec<i64> = all.iter().take(7).map(|(_, id)| *id).collect();
    assert_eq!(got, want);
    // Unknown operators and bad configs are refused up front.
    let df = engine.sql(SQL).await.unwrap();
    let e = df.with_operator("nope", "").err().unwrap().to_string();
    assert!(
        e.contains("operator nope is not registered") && e.contains("knn"),
        "{e}"
    );
    let e = df
        .with_operator(NAME, "column=id;k=3;query=1")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("column id is Int64"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinator_assigns_custom_operator_tasks_only_to_capable_workers() {
    let expected = embedded_knn(5).await;
    let mut cluster = LocalCluster::builder().workers(2).start().await.unwrap();
    let capable = cluster
        .add_worker_with(|w| w.operators = knn_registry())
        .await
        .unwrap();
    let engine = cluster_engine(&cluster).await;
    for _ in 0..4 {
        assert_eq!(run_knn(&engine, 5).await.unwrap(), expected);
    }
    // A worker given a task it cannot build fails it explicitly: none did.
    let status = cluster.status();
    assert_eq!(status.counters.attempts_failed, 0, "{:?}", status.counters);
    let advertised: Vec<_> = status
        .workers
        .iter()
        .filter(|w| !w.info.operators.is_empty())
        .collect();
    assert_eq!(advertised.len(), 1);
    assert_eq!(advertised[0].info.id, capable);
    assert_eq!(advertised[0].info.operators, vec![NAME.to_string()]);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_that_cannot_build_the_operator_fails_explicitly_and_the_task_runs_elsewhere() {
    let expected = embedded_knn(5).await;
    // The impostor advertises knn without a factory and has the most free
    // slots, so it gets the k-NN task first.
    let impostor = |w: &mut ffq::cluster::WorkerConfig| {
        w.slots = 4;
        w.advertise = Some(vec![NAME.to_string()]);
    };
    let start = || {
        LocalCluster::builder()
            .workers(0)
            .scheduler(SchedulerConfig {
                backoff_base: Duration::from_millis(10),
                ..SchedulerConfig::default()
            })
            .start()
    };
    // Alone, it fails every attempt, with an explicit error.
    let mut cluster = start().await.unwrap();
    cluster.add_worker_with(impostor).await.unwrap();
    let engine = cluster_engine(&cluster).await;
    let err = run_knn(&engine, 5).await.unwrap_err().to_string();
    assert!(
        err.contains("cannot run operator knn") && err.contains("failed after 4 attempts"),
        "{err}"
    );
    cluster.shutdown().await;
    // With a capable worker too, the impostor fails its attempt and the
    // retry goes to the capable worker.
    let mut cluster = start().await.unwrap();
    cluster.add_worker_with(impostor).await.unwrap();
    cluster
        .add_worker_with(|w| {
            w.slots = 1;
            w.operators = knn_registry();
        })
        .await
        .unwrap();
    let engine = cluster_engine(&cluster).await;
    assert_eq!(run_knn(&engine, 5).await.unwrap(), expected);
    assert_eq!(cluster.status().counters.attempts_failed, 1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_waits_for_a_capable_worker_that_joins_late() {
    let expected = embedded_knn(3).await;
    let mut cluster = LocalCluster::start(1).await.unwrap();
    let engine = cluster_engine(&cluster).await;
    let query = {
        let engine = engine.clone();
        tokio::spawn(async move { run_knn(&engine, 3).await })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!query.is_finished(), "no worker can run knn yet");
    let status = cluster.status();
    assert_eq!(status.queries.len(), 1);
    assert_eq!(status.counters.attempts_failed, 0);
    cluster
        .add_worker_with(|w| w.operators = knn_registry())
        .await
        .unwrap();
    let start = Instant::now();
    assert_eq!(query.await.unwrap().unwrap(), expected);
    assert!(start.elapsed() < Duration::from_secs(10));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_capable_worker_the_query_fails_after_the_deadline() {
    let cluster = LocalCluster::builder()
        .workers(2)
        .scheduler(SchedulerConfig {
            capability_wait: Duration::from_millis(300),
            ..SchedulerConfig::default()
        })
        .start()
        .await
        .unwrap();
    let engine = cluster_engine(&cluster).await;
    let err = run_knn(&engine, 3).await.unwrap_err().to_string();
    assert!(err.contains("no worker can run operator knn"), "{err}");
    assert_eq!(cluster.status().counters.attempts_failed, 0);
    cluster.shutdown().await;
}
