//! Pass-through partial aggregation, embedded and on a cluster: a partial
//! aggregate whose input is nearly all distinct groups passes rows through
//! as partial states (EXPLAIN ANALYZE counts them as
//! `skipped_partial_rows`), one that reduces or has a DISTINCT aggregate
//! keeps hashing, and both give DataFusion's rows.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use ffq::{Engine, LocalCluster};

use crate::common::{
    assert_same, connect_engine, explain_rows, ffq_engine, oracle_session, register_both,
};

/// Rows of `u`: two partitions of about 150,000 rows, past the 100,000 rows
/// a partial aggregate probes before it decides.
const ROWS: i64 = 300_000;

/// `u(k, g, v, f, s)`: `k` unique (NULL every 997th row), `g` = k % 3,
/// `v` with NULLs, `f` a float, `s` one of four strings.
fn table_u() -> (Arc<Schema>, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("g", DataType::Int64, false),
        Field::new("v", DataType::Int64, true),
        Field::new("f", DataType::Float64, false),
        Field::new("s", DataType::Utf8, false),
    ]));
    let batches = (0..ROWS)
        .step_by(8192)
        .map(|start| {
            let rows = start..(start + 8192).min(ROWS);
            let k: Int64Array = rows.clone().map(|i| (i % 997 != 0).then_some(i)).collect();
            let g = Int64Array::from_iter_values(rows.clone().map(|i| i % 3));
            let v: Int64Array = rows
                .clone()
                .map(|i| (i % 11 != 0).then_some((i * 7) % 1000 - 500))
                .collect();
            let f = Float64Array::from_iter_values(rows.clone().map(|i| (i % 100) as f64 / 4.0));
            let s =
                StringArray::from_iter_values(rows.map(|i| ["w", "x", "y", "z"][i as usize % 4]));
            let columns: Vec<ArrayRef> = vec![
                Arc::new(k),
                Arc::new(g),
                Arc::new(v),
                Arc::new(f),
                Arc::new(s),
            ];
            RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
        })
        .collect();
    (schema, batches)
}

/// Every plain aggregate kind, grouped by the unique key: passes through.
const NOT_REDUCING: &str = "SELECT k, count(*) AS n, count(v) AS nv, sum(v) AS sv, avg(f) AS af, \
     min(v) AS mn, max(s) AS mx, sum(v) FILTER (WHERE v > 0) AS sp FROM u GROUP BY k";
/// DISTINCT aggregates over two different columns (one alone would be
/// rewritten into a plain aggregate over a GROUP BY): keeps hashing.
const DISTINCT: &str = "SELECT k, count(DISTINCT v) AS dv, count(DISTINCT s) AS ds, sum(v) AS sv \
     FROM u GROUP BY k";
/// Three groups: keeps hashing.
const REDUCING: &str = "SELECT g, count(*) AS n, sum(v) AS sv, avg(f) AS af FROM u GROUP BY g";

/// The partial aggregate's line of `EXPLAIN ANALYZE sql`.
async fn partial_aggregate_line(engine: &Engine, sql: &str) -> String {
    let plan = explain_rows(engine, &format!("EXPLAIN ANALYZE {sql}"))
        .await
        .into_iter()
        .map(|(_, plan)| plan)
        .collect::<Vec<_>>()
        .join("\n");
    plan.lines()
        .find(|l| l.contains("Aggregate(Partial)"))
        .unwrap_or_else(|| panic!("no partial aggregate in:\n{plan}"))
        .to_string()
}

fn skipped_rows(line: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("skipped_partial_rows="))
        .map_or(0, |v| v.parse().unwrap())
}

/// Checks the three queries' rows against DataFusion and which partial
/// aggregates passed rows through.
async fn check(label: &str, engine: &Engine, oracle: &SessionContext) {
    for sql in [NOT_REDUCING, DISTINCT, REDUCING] {
        assert_same(sql, engine, oracle).await;
    }
    let line = partial_aggregate_line(engine, NOT_REDUCING).await;
    // Each partition passes through what follows its first 100,000 rows.
    let skipped = skipped_rows(&line);
    assert!(
        (50_000..=100_000).contains(&skipped),
        "{label}: {skipped} rows passed through: {line}"
    );
    for sql in [DISTINCT, REDUCING] {
        let line = partial_aggregate_line(engine, sql).await;
        assert_eq!(skipped_rows(&line), 0, "{label}: {line}");
    }
    let line = partial_aggregate_line(engine, DISTINCT).await;
    assert!(line.contains("DISTINCT"), "{label}: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_aggregates_pass_through_only_when_they_do_not_reduce_embedded() {
    let (schema, batches) = table_u();
    let engine = ffq_engine(2, 8192);
    let oracle = oracle_session();
    register_both(&engine, &oracle, "u", schema, batches);
    check("embedded", &engine, &oracle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_aggregates_pass_through_only_when_they_do_not_reduce_on_a_cluster() {
    let (schema, batches) = table_u();
    let cluster = LocalCluster::start(2).await.unwrap();
    let engine = connect_engine(cluster.client_config(), 2, 8192).await;
    let oracle = oracle_session();
    register_both(&engine, &oracle, "u", schema, batches);
    check("cluster", &engine, &oracle).await;
}
