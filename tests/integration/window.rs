//! Window functions against DataFusion: ranking, offsets, value functions,
//! aggregates over ROWS / RANGE / GROUPS frames, NULLs in partition and
//! order keys, with and without PARTITION BY; with 1 partition and with 3
//! partitions and tiny batches; plus TPC-H queries. And window partitions
//! far larger than the memory limit (embedded and on 2 workers), which
//! are evaluated in chunks or spilled, with the rows of an unlimited run.

use std::path::Path;
use std::sync::Arc;

use crate::common::spill::{
    assert_spill_dir_empty, cluster_spilled_bytes, explain_analyze, limited_local_cluster, spilled,
    stream_after_first_batch,
};
use crate::common::{
    assert_no_failures, check_against, check_parity, query_error, run_ffq, run_oracle, Fixture,
    Runs,
};
use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use ffq::{Engine, EngineConfig};

/// 30 rows: `id` unique; `k` (partition key) and `g` with NULLs; `v` with
/// NULLs and ties; floats, decimals and dates.
fn w() -> RecordBatch {
    let n = 30;
    let ids: Vec<i32> = (1..=n).collect();
    let k: Vec<Option<i32>> = ids
        .iter()
        .map(|i| match (i * 7) % 9 {
            0 | 5 => None,
            1..=3 => Some(1),
            4 | 6 => Some(2),
            7 => Some(3),
            _ => Some(i % 2 + 10),
        })
        .collect();
    let g: Vec<Option<&str>> = ids
        .iter()
        .map(|i| match i % 4 {
            0 => None,
            1 => Some("a"),
            2 => Some("b"),
            _ => Some("a"),
        })
        .collect();
    let v: Vec<Option<i64>> = ids
        .iter()
        .map(|i| {
            if i % 7 == 3 {
                None
            } else {
                Some(((i * 5) % 6) as i64)
            }
        })
        .collect();
    let f: Vec<Option<f64>> = ids
        .iter()
        .map(|i| {
            if i % 11 == 4 {
                None
            } else {
                Some((*i as f64) * 0.75 - 6.0)
            }
        })
        .collect();
    let d: Vec<Option<i128>> = ids
        .iter()
        .map(|i| {
            if i % 9 == 8 {
                None
            } else {
                Some((*i as i128) * 137 % 1000)
            }
        })
        .collect();
    let dt: Vec<Option<i32>> = ids
        .iter()
        .map(|i| {
            if i % 13 == 12 {
                None
            } else {
                Some(18000 + (i * 3) % 17)
            }
        })
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("k", DataType::Int32, true),
        Field::new("g", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
        Field::new("f", DataType::Float64, true),
        Field::new("d", DataType::Decimal128(10, 2), true),
        Field::new("dt", DataType::Date32, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(ids)),
        Arc::new(Int32Array::from(k)),
        Arc::new(StringArray::from(g)),
        Arc::new(Int64Array::from(v)),
        Arc::new(Float64Array::from(f)),
        Arc::new(
            Decimal128Array::from(d)
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
        Arc::new(Date32Array::from(dt)),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// `w` and an empty table `e` of the same schema, in FFQ and in
/// DataFusion: in batches of three rows when partitioned.
fn fixture() -> Fixture {
    let w = w();
    let schema = w.schema();
    Fixture::new()
        .table("w", w)
        .empty_table("e", schema)
        .split_when_partitioned(3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranking_functions() {
    fixture()
        .check(&[
            "SELECT id, k, v, row_number() OVER (PARTITION BY k ORDER BY v, id) AS rn FROM w",
            "SELECT id, k, v, \
            rank() OVER (PARTITION BY k ORDER BY v) AS r, \
            dense_rank() OVER (PARTITION BY k ORDER BY v) AS dr, \
            percent_rank() OVER (PARTITION BY k ORDER BY v) AS pr, \
            cume_dist() OVER (PARTITION BY k ORDER BY v) AS cd \
         FROM w",
            "SELECT id, rank() OVER (PARTITION BY k ORDER BY v DESC NULLS FIRST) AS r, \
            dense_rank() OVER (PARTITION BY g ORDER BY v DESC NULLS LAST) AS dr \
         FROM w",
            "SELECT id, ntile(3) OVER (PARTITION BY k ORDER BY id) AS t3, \
            ntile(5) OVER (ORDER BY v, id) AS t5 FROM w",
            // Unaliased: the output names are DataFusion's.
            "SELECT id, rank() OVER (PARTITION BY k, g ORDER BY v) FROM w",
            "SELECT id, row_number() OVER (PARTITION BY k % 2 ORDER BY f DESC, id) AS rn FROM w",
        ])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_and_value_functions() {
    fixture().check(&[
        "SELECT id, \
            lag(v) OVER (PARTITION BY k ORDER BY id) AS l1, \
            lag(v, 2, -1) OVER (PARTITION BY k ORDER BY id) AS l2, \
            lead(v, 1, 0) OVER (PARTITION BY k ORDER BY id) AS l3, \
            lead(g, 3) OVER (PARTITION BY k ORDER BY id) AS l4 \
         FROM w",
        "SELECT id, lag(d, 1) OVER (ORDER BY dt, id) AS ld, lead(dt) OVER (ORDER BY id) AS nd FROM w",
        "SELECT id, \
            first_value(v) OVER (PARTITION BY k ORDER BY id) AS fv, \
            last_value(v) OVER (PARTITION BY k ORDER BY id) AS lv, \
            last_value(v) OVER (PARTITION BY k ORDER BY id \
                ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS lv_all, \
            nth_value(v, 2) OVER (PARTITION BY k ORDER BY id) AS nv \
         FROM w",
        "SELECT id, first_value(g) OVER (PARTITION BY k ORDER BY id \
                ROWS BETWEEN 1 FOLLOWING AND 3 FOLLOWING) AS fg, \
            nth_value(f, 3) OVER (ORDER BY id ROWS BETWEEN 2 PRECEDING AND 2 FOLLOWING) AS nf \
         FROM w",
        "SELECT id, v - lag(v) OVER (PARTITION BY k ORDER BY id) AS delta FROM w",
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_over_rows_frames() {
    fixture().check(&[
        "SELECT id, \
            sum(v) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS s, \
            avg(f) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS a, \
            count(v) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS c, \
            min(v) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) AS mn, \
            max(v) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN CURRENT ROW AND 2 FOLLOWING) AS mx \
         FROM w",
        "SELECT id, sum(d) OVER (PARTITION BY g ORDER BY id \
                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running, \
            count(*) OVER (PARTITION BY g ORDER BY id \
                ROWS BETWEEN 3 PRECEDING AND 1 PRECEDING) AS before3 \
         FROM w",
        "SELECT id, min(g) OVER (ORDER BY id ROWS BETWEEN 4 PRECEDING AND 4 FOLLOWING) AS mg, \
            max(dt) OVER (ORDER BY id ROWS BETWEEN 2 FOLLOWING AND UNBOUNDED FOLLOWING) AS md \
         FROM w",
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_over_range_and_groups_frames() {
    fixture()
        .check(&[
            // Default frame with ORDER BY: RANGE UNBOUNDED PRECEDING to the
            // current row and its peers (ties in v).
            "SELECT id, k, v, sum(v) OVER (PARTITION BY k ORDER BY v) AS s, \
            count(*) OVER (PARTITION BY k ORDER BY v \
                RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS c, \
            max(id) OVER (PARTITION BY k ORDER BY v) AS m \
         FROM w",
            "SELECT id, sum(v) OVER (ORDER BY v RANGE BETWEEN 2 PRECEDING AND 1 FOLLOWING) AS s, \
            count(*) OVER (PARTITION BY g ORDER BY f \
                RANGE BETWEEN 1.5 PRECEDING AND CURRENT ROW) AS c \
         FROM w",
            "SELECT id, avg(f) OVER (PARTITION BY k ORDER BY v DESC \
                RANGE BETWEEN 1 PRECEDING AND 1 FOLLOWING) AS a \
         FROM w",
            "SELECT id, count(*) OVER (ORDER BY dt \
                RANGE BETWEEN INTERVAL '3' DAY PRECEDING AND CURRENT ROW) AS c \
         FROM w",
            "SELECT id, sum(v) OVER (PARTITION BY k ORDER BY v \
                GROUPS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s \
         FROM w",
            "SELECT id, sum(v) OVER (PARTITION BY k ORDER BY v \
                RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS s \
         FROM w",
        ])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_partition_by_and_whole_partition() {
    fixture()
        .check(&[
            "SELECT id, sum(v) OVER () AS total, count(*) OVER () AS n, \
            row_number() OVER (ORDER BY id) AS rn, \
            avg(v) OVER (ORDER BY id ROWS BETWEEN 3 PRECEDING AND 3 FOLLOWING) AS a \
         FROM w",
            "SELECT id, 100.0 * v / sum(v) OVER (PARTITION BY k) AS pct, \
            min(f) OVER (PARTITION BY g) AS mf FROM w",
            "SELECT k, row_number() OVER (PARTITION BY k ORDER BY v) AS rn FROM e",
            "SELECT sum(v) OVER () AS s FROM e",
        ])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_in_larger_queries() {
    fixture().check(&[
        // Several windows with different PARTITION BY (stacked nodes).
        "SELECT id, rank() OVER (PARTITION BY k ORDER BY v) AS rk, \
            sum(v) OVER (PARTITION BY g ORDER BY id) AS sg, \
            count(*) OVER () AS n, \
            row_number() OVER (PARTITION BY k ORDER BY id) AS rn \
         FROM w",
        // Top-N per group.
        "SELECT * FROM (SELECT id, k, v, \
            row_number() OVER (PARTITION BY k ORDER BY v DESC NULLS LAST, id) AS rn FROM w) x \
         WHERE rn <= 2 ORDER BY k, rn",
        // Over an aggregate.
        "SELECT k, sum(v) AS s, rank() OVER (ORDER BY sum(v) DESC NULLS LAST) AS r \
         FROM w GROUP BY k",
        // Ordered output.
        "SELECT id, dense_rank() OVER (ORDER BY v) AS dr FROM w ORDER BY dr, id",
        "SELECT id, lag(id) OVER (PARTITION BY g ORDER BY id) AS prev FROM w \
         ORDER BY id LIMIT 7",
        // A window over a join, filtered afterwards.
        "SELECT a.id, b.id AS bid, row_number() OVER (PARTITION BY a.k ORDER BY a.id, b.id) AS rn \
         FROM w a JOIN w b ON a.g = b.g AND a.id < b.id AND b.id < a.id + 4",
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_ignore_nulls_and_distinct() {
    fixture()
        .check(&[
            "SELECT id, sum(v) FILTER (WHERE v > 1) OVER (PARTITION BY k ORDER BY id) AS s FROM w",
            "SELECT id, lag(v) IGNORE NULLS OVER (ORDER BY id) AS l, \
            first_value(v) IGNORE NULLS OVER (PARTITION BY g ORDER BY id DESC) AS fv \
         FROM w",
            "SELECT id, count(DISTINCT v) OVER (PARTITION BY k) AS c FROM w",
        ])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_windows() {
    let sf = 0.01;
    let queries = [
        // Rank of customers by order total per nation (top 3).
        "SELECT n_name, c_custkey, total, rnk FROM ( \
            SELECT n_name, c_custkey, total, \
                rank() OVER (PARTITION BY n_name ORDER BY total DESC) AS rnk \
            FROM (SELECT c_nationkey, c_custkey, sum(o_totalprice) AS total \
                  FROM customer, orders WHERE c_custkey = o_custkey \
                  GROUP BY c_nationkey, c_custkey) t, nation \
            WHERE n_nationkey = c_nationkey) r \
         WHERE rnk <= 3 ORDER BY n_name, rnk, c_custkey",
        // Running quantity per order.
        "SELECT l_orderkey, l_linenumber, \
            sum(l_quantity) OVER (PARTITION BY l_orderkey ORDER BY l_linenumber) AS running, \
            lead(l_shipdate) OVER (PARTITION BY l_orderkey ORDER BY l_linenumber) AS next_ship \
         FROM lineitem WHERE l_orderkey < 2000",
        // Moving average of order prices per priority.
        "SELECT o_orderkey, o_orderpriority, \
            avg(o_totalprice) OVER (PARTITION BY o_orderpriority ORDER BY o_orderdate, o_orderkey \
                ROWS BETWEEN 5 PRECEDING AND CURRENT ROW) AS moving, \
            percent_rank() OVER (PARTITION BY o_orderpriority ORDER BY o_totalprice) AS pr \
         FROM orders",
    ];
    Runs::tpch(sf, &[1, 3]).assert_same(&queries).await;
}

/// Queries DataFusion rejects fail in FFQ too (with an error, not a
/// panic); those it accepts give the same result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_windows_fail_like_datafusion() {
    let queries = [
        "SELECT ntile(0) OVER (ORDER BY id) FROM w",
        "SELECT sum(v) OVER (ORDER BY id ROWS BETWEEN 1 FOLLOWING AND 1 PRECEDING) FROM w",
        "SELECT sum(v) OVER (ORDER BY v RANGE BETWEEN 3 PRECEDING AND 5 PRECEDING) FROM w",
        "SELECT lag(v, id) OVER (ORDER BY id) FROM w",
        "SELECT sum(v) OVER (ORDER BY v, id RANGE BETWEEN 1 PRECEDING AND CURRENT ROW) FROM w",
        "SELECT nth_value(v, 0) OVER (ORDER BY id) FROM w",
        "SELECT sum(v) OVER (ORDER BY g RANGE BETWEEN 1 PRECEDING AND CURRENT ROW) FROM w",
        "SELECT sum(v) OVER (ORDER BY id GROUPS BETWEEN 2 PRECEDING AND 1 PRECEDING) FROM w",
        "SELECT ntile(-2) OVER (ORDER BY id) FROM w",
    ];
    let runs = fixture().runs();
    let mut failures = Vec::new();
    for (engine, ctx) in runs.iter() {
        let p = engine.config().target_partitions;
        for sql in queries {
            match run_oracle(sql, ctx).await {
                Ok(oracle) => {
                    let label = format!("{sql} (partitions {p})");
                    if let Err(e) = check_against(&label, sql, engine, &oracle).await {
                        failures.push(e);
                    }
                }
                Err(oracle_err) => {
                    if let Ok((_, batches)) = run_ffq(sql, engine).await {
                        failures.push(format!(
                            "{sql}: DataFusion fails ({oracle_err}) but FFQ returned {} rows",
                            batches.iter().map(|b| b.num_rows()).sum::<usize>()
                        ));
                    }
                }
            }
        }
    }
    assert_no_failures(&failures, queries.len() * runs.len());
}

/// Rows of the table of the window-spill tests (`big`).
const BIG_ROWS: i32 = 200_000;
/// A limit far below one window partition of `big` (~3 MiB of rows).
const BIG_LIMIT: usize = 1 << 20;

/// `big(id, k, v)` in a Parquet file (a memory table would be held in
/// the pool): `id` unique and scrambled; `k` in 3 huge window partitions
/// and a NULL one; `v` with ~40 ties per value and NULLs.
fn big_parquet() -> tempfile::TempDir {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("k", DataType::Int32, true),
        Field::new("v", DataType::Int64, true),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("big.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, Arc::clone(&schema), None).unwrap();
    let rows: Vec<i32> = (0..BIG_ROWS).collect();
    for c in rows.chunks(10_000) {
        let id = c.iter().map(|i| (i * 7919) % BIG_ROWS);
        let k = c.iter().map(|i| (i % 4 != 0).then_some(i % 4));
        let v = c
            .iter()
            .map(|i| (i % 307 != 5).then_some((i % 5003) as i64));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from_iter_values(id)),
            Arc::new(Int32Array::from_iter(k)),
            Arc::new(Int64Array::from_iter(v)),
        ];
        writer
            .write(&RecordBatch::try_new(Arc::clone(&schema), columns).unwrap())
            .unwrap();
    }
    writer.close().unwrap();
    dir
}

fn big_path(table: &tempfile::TempDir) -> String {
    table.path().join("big.parquet").display().to_string()
}

fn big_engine_config(partitions: usize, limit: Option<&Path>) -> EngineConfig {
    EngineConfig {
        target_partitions: partitions,
        batch_size: 1024,
        memory_limit: limit.map(|_| BIG_LIMIT),
        spill_dir: limit.map(Path::to_path_buf),
    }
}

/// An engine with `big`, under [`BIG_LIMIT`] spilling to `spill_dir`
/// (`None`: no limit).
fn big_engine(table: &tempfile::TempDir, partitions: usize, spill_dir: Option<&Path>) -> Engine {
    let engine = Engine::with_config(big_engine_config(partitions, spill_dir));
    engine.register_parquet("big", &big_path(table)).unwrap();
    engine
}

/// Window expressions that stream in chunks over a window partition
/// `over` (PARTITION BY or not): ranks with ties, running aggregates by
/// ROWS and RANGE (peers), a sliding frame, lag and lead.
fn streamed_windows(over: &str) -> String {
    format!(
        "SELECT id, k, v, \
            row_number() OVER ({over} ORDER BY v, id) AS rn, \
            rank() OVER ({over} ORDER BY v) AS r, \
            dense_rank() OVER ({over} ORDER BY v) AS dr, \
            sum(v) OVER ({over} ORDER BY v) AS running_range, \
            count(v) OVER ({over} ORDER BY v, id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running_rows, \
            min(id) OVER ({over} ORDER BY v, id ROWS BETWEEN 3 PRECEDING AND 2 FOLLOWING) AS sliding, \
            lag(v, 2) OVER ({over} ORDER BY v, id) AS lag2, \
            lead(id) OVER ({over} ORDER BY v, id) AS lead1 \
         FROM big"
    )
}

/// Whole-partition aggregates and functions of the partition's size
/// (these spill the window partition), with a streamed expression in the
/// same window node.
fn whole_partition_windows(over: &str) -> String {
    format!(
        "SELECT id, k, v, \
            sum(v) OVER ({over}) AS total, \
            count(*) OVER ({over}) AS n, \
            avg(v) OVER ({over}) AS mean, \
            max(id) OVER ({over} ORDER BY v RANGE BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS max_id, \
            row_number() OVER ({over} ORDER BY v, id) AS rn, \
            ntile(6) OVER ({over} ORDER BY v, id) AS tile, \
            percent_rank() OVER ({over} ORDER BY v) AS pr, \
            cume_dist() OVER ({over} ORDER BY v) AS cd \
         FROM big"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_partitions_larger_than_the_memory_limit() {
    let table = big_parquet();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut queries = 0;
    // Without PARTITION BY the input is gathered into one partition.
    for (over, partitions) in [("", 1), ("PARTITION BY k", 2)] {
        let unlimited = big_engine(&table, partitions, None);
        let limited = big_engine(&table, partitions, Some(dir.path()));
        for (what, sql, spills) in [
            ("streamed", streamed_windows(over), false),
            (
                "whole-partition and sized",
                whole_partition_windows(over),
                true,
            ),
        ] {
            queries += 1;
            let label = format!("{what} OVER ({over}), {partitions} partitions, 1 MiB");
            if let Err(e) = check_parity(&label, &sql, &unlimited, &limited).await {
                failures.push(e);
            }
            let plan = explain_analyze(&limited, &sql).await;
            assert_eq!(spilled(&plan, "Window:"), spills, "{label}:\n{plan}");
            assert!(spilled(&plan, "Sort:"), "{label}:\n{plan}");
        }
    }
    assert_no_failures(&failures, queries);
    assert_spill_dir_empty(dir.path(), "window queries").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_spill_files_are_removed_after_an_error_and_a_dropped_stream() {
    let table = big_parquet();
    let dir = tempfile::tempdir().unwrap();
    let engine = big_engine(&table, 2, Some(dir.path()));

    // The frame of the first row reaches the last: the window partition
    // must be held.
    let to_end = "SELECT id, sum(v) OVER (ORDER BY id \
                  ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS rest FROM big";
    let err = query_error(&engine, to_end).await;
    assert!(err.starts_with("resources exhausted: Window"), "{err}");
    assert_spill_dir_empty(dir.path(), "an error").await;

    let stream = stream_after_first_batch(&engine, &whole_partition_windows("")).await;
    drop(stream);
    assert_spill_dir_empty(dir.path(), "a dropped stream").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn window_partitions_larger_than_the_limit_of_each_worker() {
    let table = big_parquet();
    let dir = tempfile::tempdir().unwrap();
    let cluster = limited_local_cluster(BIG_LIMIT, Some(dir.path())).await;
    let client = Engine::connect_with_config(
        cluster.client_config(),
        big_engine_config(2, Some(dir.path())),
    )
    .await
    .unwrap();
    client.register_parquet("big", &big_path(&table)).unwrap();
    let unlimited = big_engine(&table, 2, None);
    for sql in [
        streamed_windows(""),
        whole_partition_windows("PARTITION BY k"),
    ] {
        check_parity(&sql, &sql, &unlimited, &client).await.unwrap();
    }
    assert!(cluster_spilled_bytes(&cluster) > 0, "no task spilled");
    assert_spill_dir_empty(dir.path(), "the cluster's window queries").await;
    cluster.shutdown().await;
}
