//! Vector scoring functions (`l2_distance`, `cosine_similarity`,
//! `dot_product`) from SQL, checked against a brute-force computation in
//! the test: nearest-neighbour queries (`ORDER BY score LIMIT k`, planned as
//! a TopK), partition counts, bad input, and a distributed cluster.

use std::sync::Arc;

use arrow::array::{Array, AsArray, FixedSizeListArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Int64Type, Schema};
use ffq::{Engine, LocalCluster};

use crate::common::{connect_engine, ffq_engine, query_error};

const ROWS: i64 = 1000;
const DIM: i32 = 3;
const QUERY: [f64; 3] = [0.1, 0.2, 0.3];
const QUERY_SQL: &str = "[0.1, 0.2, 0.3]";

/// Deterministic pseudo-random value in [-1, 1) (splitmix64 of `seed`).
fn rand(seed: u64) -> f32 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

/// Row `id`'s vector: NULL for some rows, the zero vector for row 500.
fn vector(id: i64) -> Option<Vec<f32>> {
    if id % 23 == 7 {
        return None;
    }
    if id == 500 {
        return Some(vec![0.0; DIM as usize]);
    }
    Some((0..DIM as u64).map(|d| rand(id as u64 * 16 + d)).collect())
}

fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "v",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), DIM),
            true,
        ),
    ]));
    let v = FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
        ids.clone()
            .map(|id| vector(id).map(|v| v.into_iter().map(Some).collect::<Vec<_>>())),
        DIM,
    );
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from_iter_values(ids)), Arc::new(v)],
    )
    .unwrap()
}

fn batches() -> Vec<RecordBatch> {
    vec![batch(0..400), batch(400..800), batch(800..ROWS)]
}

fn engine(partitions: usize) -> Engine {
    let engine = ffq_engine(partitions, 8192);
    engine.register_batches("t", batches()).unwrap();
    engine
}

// Brute force, in f64 like the functions.

fn dot(v: &[f32]) -> f64 {
    v.iter().zip(QUERY).map(|(x, q)| *x as f64 * q).sum()
}

fn l2(v: &[f32]) -> f64 {
    v.iter()
        .zip(QUERY)
        .map(|(x, q)| (*x as f64 - q) * (*x as f64 - q))
        .sum::<f64>()
        .sqrt()
}

fn cosine(v: &[f32]) -> Option<f64> {
    let norm = v.iter().map(|x| *x as f64 * *x as f64).sum::<f64>().sqrt();
    let qnorm = QUERY.iter().map(|q| q * q).sum::<f64>().sqrt();
    (norm != 0.0).then(|| dot(v) / (norm * qnorm))
}

/// The ids of the `k` best non-NULL scores (ascending, or descending when
/// `desc`).
fn brute_top_k(score: impl Fn(&[f32]) -> Option<f64>, k: usize, desc: bool) -> Vec<i64> {
    let mut scored: Vec<(f64, i64)> = (0..ROWS)
        .filter_map(|id| vector(id).and_then(|v| score(&v)).map(|s| (s, id)))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    if desc {
        scored.reverse();
    }
    scored.into_iter().take(k).map(|(_, id)| id).collect()
}

async fn run(engine: &Engine, sql: &str) -> ffq::Result<Vec<RecordBatch>> {
    engine.sql(sql).await?.collect().await
}

async fn ids(engine: &Engine, sql: &str) -> Vec<i64> {
    let batches = run(engine, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

/// (id, score) rows of a two-column query.
async fn scores(engine: &Engine, sql: &str) -> Vec<(i64, Option<f64>)> {
    let batches = run(engine, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = vec![];
    for b in &batches {
        let id = b.column(0).as_primitive::<Int64Type>();
        let s = b.column(1).as_primitive::<Float64Type>();
        out.extend((0..b.num_rows()).map(|i| (id.value(i), s.is_valid(i).then(|| s.value(i)))));
    }
    out
}

fn nearest_sql() -> String {
    format!("SELECT id FROM t ORDER BY l2_distance(v, {QUERY_SQL}) LIMIT 5")
}

fn most_similar_sql() -> String {
    // DESC puts NULLs first by default: a NULL vector is not similar.
    format!("SELECT id FROM t ORDER BY cosine_similarity(v, {QUERY_SQL}) DESC NULLS LAST LIMIT 10")
}

#[tokio::test]
async fn array_literals() {
    let e = engine(2);
    let rows = run(&e, "SELECT l2_distance([1.0, 2.0], [4.0, 6.0]) AS d")
        .await
        .unwrap();
    assert_eq!(
        rows[0].column(0).as_primitive::<Float64Type>().value(0),
        5.0
    );
    // Integer literals are accepted as vectors too.
    let rows = run(
        &e,
        "SELECT dot_product([1, 2], [3.0, 4.0]) AS d, cosine_similarity([0.0, 0.0], [1.0, 1.0]) AS c",
    )
    .await
    .unwrap();
    assert_eq!(
        rows[0].column(0).as_primitive::<Float64Type>().value(0),
        11.0
    );
    assert!(
        rows[0].column(1).is_null(0),
        "cosine of a zero vector is NULL"
    );
}

#[tokio::test]
async fn nearest_neighbours_use_top_k() {
    let e = engine(4);
    let sql = nearest_sql();
    let got = ids(&e, &sql).await;
    assert_eq!(got, brute_top_k(|v| Some(l2(v)), 5, false), "{sql}");
    let plan = e.sql(&sql).await.unwrap().explain();
    assert!(
        plan.contains("TopK(k=5)"),
        "{sql} should use a TopK:\n{plan}"
    );

    let got = ids(&e, &most_similar_sql()).await;
    assert_eq!(got, brute_top_k(cosine, 10, true));
}

#[tokio::test]
async fn scores_match_brute_force() {
    let e = engine(3);
    let sql = format!(
        "SELECT id, dot_product(v, {QUERY_SQL}) FROM t UNION ALL \
         SELECT id + {ROWS}, l2_distance({QUERY_SQL}, v) FROM t UNION ALL \
         SELECT id + {}, cosine_similarity(v, {QUERY_SQL}) FROM t",
        2 * ROWS
    );
    let mut got = scores(&e, &sql).await;
    got.sort_by_key(|(id, _)| *id);
    assert_eq!(got.len(), 3 * ROWS as usize);
    for (id, score) in got {
        let v = vector(id % ROWS);
        let expected = match id / ROWS {
            0 => v.as_deref().map(dot),
            1 => v.as_deref().map(l2),
            _ => v.as_deref().and_then(cosine),
        };
        match (score, expected) {
            (Some(s), Some(x)) => assert!(
                (s - x).abs() <= 1e-6 * x.abs().max(1e-9),
                "row {id}: got {s}, expected {x}"
            ),
            (None, None) => {}
            _ => panic!("row {id}: got {score:?}, expected {expected:?}"),
        }
    }
}

#[tokio::test]
async fn partition_counts_agree() {
    let one = engine(1);
    let four = engine(4);
    let filtered = format!(
        "SELECT id, l2_distance(v, {QUERY_SQL}) AS d FROM t \
         WHERE l2_distance(v, {QUERY_SQL}) < 0.6 ORDER BY id"
    );
    for sql in [nearest_sql(), most_similar_sql()] {
        assert_eq!(ids(&one, &sql).await, ids(&four, &sql).await, "{sql}");
    }
    let a = scores(&one, &filtered).await;
    assert!(!a.is_empty());
    assert_eq!(a, scores(&four, &filtered).await);
}

#[tokio::test]
async fn bad_input_fails_clearly() {
    let e = engine(2);
    let err = query_error(&e, "SELECT l2_distance(v, 'x') FROM t").await;
    assert!(
        err.contains("l2_distance expects two vectors (lists of float), got Utf8"),
        "{err}"
    );
    let err = query_error(&e, "SELECT id, dot_product(v, [1.0, 2.0]) FROM t").await;
    assert!(
        err.contains("dot_product") && err.contains("(3 and 2)"),
        "{err}"
    );
    let err = query_error(&e, "SELECT cosine_similarity(v) FROM t").await;
    assert!(err.contains("cosine_similarity"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nearest_neighbours_on_a_cluster() {
    let cluster = LocalCluster::start(2).await.unwrap();
    let engine = connect_engine(cluster.client_config(), 3, 8192).await;
    engine.register_batches("t", batches()).unwrap();
    let embedded = engine_ids(&nearest_sql()).await;
    assert_eq!(ids(&engine, &nearest_sql()).await, embedded);
    assert_eq!(
        ids(&engine, &most_similar_sql()).await,
        brute_top_k(cosine, 10, true)
    );
    cluster.shutdown().await;
}

async fn engine_ids(sql: &str) -> Vec<i64> {
    ids(&engine(2), sql).await
}
