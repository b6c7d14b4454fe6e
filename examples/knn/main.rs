//! Exact k-nearest-neighbour search with a custom operator, embedded and on
//! a local cluster whose workers register the same operator.
//!
//! ```sh
//! cargo run --release --example knn            # 100k random 8-d vectors, k = 5
//! cargo run --release --example knn -- 1000000 # more vectors
//! ```

mod operator;

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{FixedSizeListArray, Float32Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::pretty::pretty_format_batches;
use ffq::dataflow::custom::OperatorRegistry;
use ffq::{Engine, LocalCluster};
use operator::{KnnConfig, KnnFactory, NAME};

const DIM: i32 = 8;

/// `n` vectors of `DIM` pseudo-random floats in [0, 1).
fn vectors(n: usize) -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "v",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), DIM),
            true,
        ),
    ]));
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .step_by(8192)
        .map(|start| {
            let rows = 8192.min(n - start);
            let ids = Int64Array::from_iter_values(start as i64..(start + rows) as i64);
            let values = Float32Array::from_iter_values((0..rows * DIM as usize).map(|_| next()));
            let v = FixedSizeListArray::new(
                Arc::new(Field::new("item", DataType::Float32, true)),
                DIM,
                Arc::new(values),
                None,
            );
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(ids), Arc::new(v)]).unwrap()
        })
        .collect()
}

#[tokio::main]
async fn main() -> ffq::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let data = vectors(n);
    let config = KnnConfig {
        column: "v".into(),
        k: 5,
        query: vec![0.5; DIM as usize],
    }
    .render();
    let sql = "SELECT id, v FROM points";

    let embedded = Engine::new();
    embedded.register_operator(NAME, Arc::new(KnnFactory))?;
    embedded.register_batches("points", data.clone())?;
    let local = run_knn(&embedded, sql, &config, &format!("embedded, {n} vectors")).await?;

    // Two workers, each registering the operator.
    let mut cluster = LocalCluster::builder().workers(0).start().await?;
    for _ in 0..2 {
        cluster
            .add_worker_with(|w| {
                let mut ops = OperatorRegistry::default();
                ops.register(NAME, Arc::new(KnnFactory));
                w.operators = ops;
            })
            .await?;
    }
    let distributed = Engine::connect(cluster.client_config()).await?;
    distributed.register_operator(NAME, Arc::new(KnnFactory))?;
    distributed.register_batches("points", data)?;
    let remote = run_knn(&distributed, sql, &config, "2 workers").await?;
    let same =
        pretty_format_batches(&local)?.to_string() == pretty_format_batches(&remote)?.to_string();
    println!("same rows: {same}");
    cluster.shutdown().await;
    if same {
        Ok(())
    } else {
        Err(ffq::Error::InvalidArgument(
            "the cluster's rows differ from embedded".into(),
        ))
    }
}

/// Runs `sql` with the k-NN operator on `engine`; prints the rows and the
/// time under `label`.
async fn run_knn(
    engine: &Engine,
    sql: &str,
    config: &str,
    label: &str,
) -> ffq::Result<Vec<RecordBatch>> {
    let start = Instant::now();
    let batches = engine
        .sql(sql)
        .await?
        .with_operator(NAME, config)?
        .collect()
        .await?;
    println!(
        "{label}, {:?}:\n{}",
        start.elapsed(),
        pretty_format_batches(&batches)?
    );
    Ok(batches)
}
