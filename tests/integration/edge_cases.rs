//! Edge cases against DataFusion over small hand-made memory tables: NULLs,
//! empty inputs, duplicates, ties, set operations, expressions, non-equi
//! joins, NULL ordering; each with 1 partition and with 3 partitions and
//! tiny batches.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::common::{
    assert_all_same, check_same, normalize, register_both, render_row, render_rows, split, Fixture,
    Row,
};

/// Days since 1970-01-01 of a (proleptic Gregorian) date.
fn days(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe as i32 - 719468
}

fn t1() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("k", DataType::Int32, true),
        Field::new("v", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("d", DataType::Date32, true),
        Field::new("m", DataType::Decimal128(10, 2), true),
        Field::new("f", DataType::Float64, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from((1..=10).collect::<Vec<i32>>())),
        Arc::new(Int32Array::from(vec![
            Some(1),
            Some(2),
            None,
            Some(1),
            Some(3),
            Some(2),
            None,
            Some(4),
            Some(1),
            Some(5),
        ])),
        Arc::new(Int64Array::from(vec![
            Some(10),
            Some(20),
            Some(5),
            None,
            Some(15),
            Some(20),
            None,
            Some(1),
            Some(30),
            Some(7),
        ])),
        Arc::new(StringArray::from(vec![
            Some("apple"),
            Some("banana"),
            Some("cherry"),
            None,
            Some("Apple pie"),
            Some("abc"),
            Some("a_c"),
            Some(""),
            Some("banana"),
            Some(" padded "),
        ])),
        Arc::new(Date32Array::from(vec![
            Some(days(2020, 1, 15)),
            Some(days(2020, 2, 29)),
            None,
            Some(days(2021, 12, 31)),
            Some(days(2019, 7, 4)),
            Some(days(2020, 1, 1)),
            Some(days(2020, 3, 1)),
            Some(days(2024, 2, 29)),
            Some(days(2020, 1, 15)),
            Some(days(2000, 1, 1)),
        ])),
        Arc::new(
            Decimal128Array::from(vec![
                Some(1234),
                Some(1),
                Some(10000),
                Some(-550),
                None,
                Some(777),
                Some(0),
                Some(9999999),
                Some(110),
                Some(333),
            ])
            .with_precision_and_scale(10, 2)
            .unwrap(),
        ),
        Arc::new(Float64Array::from(vec![
            Some(1.5),
            Some(-2.25),
            Some(0.1),
            None,
            Some(3.0),
            Some(1e10),
            Some(0.0),
            Some(-0.5),
            Some(2.5),
            Some(1.0 / 3.0),
        ])),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn t2() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int32, true),
        Field::new("w", DataType::Utf8, true),
        Field::new("y", DataType::Int32, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![
            Some(1),
            Some(1),
            Some(2),
            None,
            None,
            Some(6),
            Some(3),
        ])),
        Arc::new(StringArray::from(vec![
            Some("one"),
            Some("uno"),
            Some("two"),
            Some("null1"),
            Some("null2"),
            Some("six"),
            None,
        ])),
        Arc::new(Int32Array::from(vec![
            Some(5),
            Some(15),
            Some(2),
            Some(7),
            Some(3),
            Some(10),
            None,
        ])),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// t3: like t2.k but without NULLs (for NOT IN without NULLs).
fn t3() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int32, true)]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Int32Array::from(vec![
            Some(1),
            Some(2),
            Some(2),
            Some(7),
        ]))],
    )
    .unwrap()
}

/// Duplicate-heavy tables: every key several times on both sides.
fn dup(name_v: &str, n: i32) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int32, true),
        Field::new(name_v, DataType::Int64, false),
    ]));
    let keys: Vec<Option<i32>> = (0..n)
        .map(|i| if i % 7 == 6 { None } else { Some(i % 4) })
        .collect();
    let vals: Vec<i64> = (0..n as i64).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from(keys)),
            Arc::new(Int64Array::from(vals)),
        ],
    )
    .unwrap()
}

fn empty_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int32, true),
        Field::new("v", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]))
}

/// The tables of every query here, in FFQ and in DataFusion: in batches of
/// two rows when partitioned.
fn fixture() -> Fixture {
    Fixture::new()
        .table("t1", t1())
        .table("t2", t2())
        .table("t3", t3())
        .table("d1", dup("a", 30))
        .table("d2", dup("b", 20))
        .empty_table("e", empty_schema())
        .split_when_partitioned(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_join_keys() {
    fixture()
        .check(&[
            "SELECT a.id, b.w, b.y FROM t1 a JOIN t2 b ON a.k = b.k",
            "SELECT a.id, b.w FROM t1 a LEFT JOIN t2 b ON a.k = b.k",
            "SELECT a.id, b.w FROM t1 a RIGHT JOIN t2 b ON a.k = b.k",
            "SELECT a.id, a.k, b.k, b.w FROM t1 a FULL JOIN t2 b ON a.k = b.k",
            "SELECT a.id, b.w FROM t1 a JOIN t2 b ON a.k IS NOT DISTINCT FROM b.k",
            "SELECT a.id, b.w FROM t1 a JOIN t2 b ON a.k = b.k AND a.s = b.w",
            "SELECT a.id, b.w FROM t1 a JOIN t2 b ON a.k = b.y",
            "SELECT count(*) FROM t1 a JOIN t2 b ON a.k = b.k",
            "SELECT count(*), count(b.k) FROM t1 a FULL OUTER JOIN t2 b ON a.k = b.k",
        ])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semi_and_anti_joins() {
    fixture().check(&[
        "SELECT id FROM t1 WHERE k IN (SELECT k FROM t2)",
        "SELECT id FROM t1 WHERE k NOT IN (SELECT k FROM t2)",
        "SELECT id FROM t1 WHERE k NOT IN (SELECT k FROM t3)",
        "SELECT id FROM t1 WHERE k NOT IN (SELECT k FROM t2 WHERE k IS NOT NULL)",
        "SELECT id FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE t2.k = t1.k)",
        "SELECT id FROM t1 WHERE NOT EXISTS (SELECT 1 FROM t2 WHERE t2.k = t1.k)",
        "SELECT id FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE t2.k = t1.k AND t2.y > t1.id)",
        "SELECT id FROM t1 WHERE NOT EXISTS (SELECT 1 FROM t2 WHERE t2.k = t1.k AND t2.y > t1.id)",
        "SELECT k, w FROM t2 WHERE k IN (SELECT k FROM t1 WHERE v > 10)",
        "SELECT k, w FROM t2 WHERE k NOT IN (SELECT k FROM t1 WHERE v > 10)",
        "SELECT id FROM t1 WHERE v > (SELECT avg(v) FROM t1)",
        "SELECT id, (SELECT max(y) FROM t2 WHERE t2.k = t1.k) AS my FROM t1",
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nulls_in_aggregates_and_group_keys() {
    fixture().check(&[
        "SELECT count(*), count(k), count(v), sum(v), min(v), max(v), avg(v) FROM t1",
        "SELECT min(s), max(s), min(d), max(d), sum(m), avg(m), min(f), max(f), sum(f) FROM t1",
        "SELECT k, count(*), count(v), sum(v), avg(v), min(s) FROM t1 GROUP BY k",
        "SELECT k, s, count(*) FROM t1 GROUP BY k, s",
        "SELECT sum(v), avg(v), min(v), count(v) FROM t1 WHERE v IS NULL",
        "SELECT k, sum(v) FROM t1 WHERE v IS NULL GROUP BY k",
        "SELECT count(DISTINCT k), count(DISTINCT s), sum(DISTINCT v) FROM t1",
        "SELECT k, count(DISTINCT s), count(DISTINCT v) FROM t1 GROUP BY k",
        "SELECT k, count(*) FILTER (WHERE v > 5), sum(v) FILTER (WHERE s LIKE 'b%') FROM t1 GROUP BY k",
        "SELECT k % 2 AS parity, count(*) FROM t1 GROUP BY k % 2",
        "SELECT y, count(*) FROM t2 GROUP BY y",
        "SELECT a.k, count(*), sum(b) FROM d1 a JOIN d2 b ON a.k = b.k GROUP BY a.k",
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_tables() {
    fixture()
        .check(&[
            "SELECT * FROM e",
            "SELECT count(*), sum(v), min(v), max(s), avg(v), count(DISTINCT k) FROM e",
            "SELECT k, count(*) FROM e GROUP BY k",
            "SELECT count(*) FROM t1 WHERE 1 = 0",
            "SELECT sum(v) FROM t1 WHERE id > 100",
            "SELECT t1.id, e.v FROM t1 JOIN e ON t1.k = e.k",
            "SELECT t1.id, e.v FROM t1 LEFT JOIN e ON t1.k = e.k",
            "SELECT t1.id, e.v FROM e LEFT JOIN t1 ON t1.k = e.k",
            "SELECT t1.id, e.v FROM t1 RIGHT JOIN e ON t1.k = e.k",
            "SELECT t1.id, e.v FROM e RIGHT JOIN t1 ON t1.k = e.k",
            "SELECT t1.id, e.v FROM t1 FULL JOIN e ON t1.k = e.k",
            "SELECT t1.id, e.v FROM e FULL JOIN t1 ON t1.k = e.k",
            "SELECT id FROM t1 WHERE k IN (SELECT k FROM e)",
            "SELECT id FROM t1 WHERE k NOT IN (SELECT k FROM e)",
            "SELECT id FROM t1 WHERE NOT EXISTS (SELECT 1 FROM e WHERE e.k = t1.k)",
            "SELECT t1.id, e.k FROM t1 CROSS JOIN e",
            "SELECT * FROM e ORDER BY k LIMIT 5",
            "SELECT k FROM e UNION ALL SELECT k FROM t3",
            "SELECT k FROM e UNION SELECT k FROM e",
            "SELECT t1.id FROM t1 JOIN e ON t1.id < e.k",
            "SELECT t1.id, e.k FROM t1 LEFT JOIN e ON t1.id < e.k",
        ])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_join_keys() {
    fixture()
        .check(&[
            "SELECT a.k, a.a, b.b FROM d1 a JOIN d2 b ON a.k = b.k",
            "SELECT a.a, b.b FROM d1 a LEFT JOIN d2 b ON a.k = b.k AND b.b < 10",
            "SELECT a.a, b.b FROM d1 a RIGHT JOIN d2 b ON a.k = b.k AND a.a > 20",
            "SELECT a.a, b.b FROM d1 a FULL JOIN d2 b ON a.k = b.k AND a.a < b.b",
            "SELECT a FROM d1 WHERE k IN (SELECT k FROM d2)",
            "SELECT a FROM d1 WHERE k NOT IN (SELECT k FROM d2 WHERE k IS NOT NULL)",
            "SELECT a.a, b.b, c.y FROM d1 a JOIN d2 b ON a.k = b.k JOIN t2 c ON b.k = c.k",
        ])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_limit_ties_and_offset() {
    fixture()
        .check(&[
            // Ties at the LIMIT boundary: only the key values of the last tie
            // group are compared.
            "SELECT k, id FROM t1 ORDER BY k LIMIT 3",
            "SELECT k, id FROM t1 ORDER BY k DESC NULLS LAST LIMIT 4",
            "SELECT v, s FROM t1 ORDER BY v DESC LIMIT 2",
            "SELECT a.k, a.a FROM d1 a ORDER BY a.k LIMIT 9",
            // Unique keys: exact.
            "SELECT k, id FROM t1 ORDER BY k, id LIMIT 5",
            "SELECT id FROM t1 ORDER BY id LIMIT 3 OFFSET 2",
            "SELECT id FROM t1 ORDER BY id DESC OFFSET 5",
            "SELECT id FROM t1 ORDER BY id LIMIT 0",
            "SELECT id FROM t1 ORDER BY id OFFSET 100",
            "SELECT id, v FROM t1 ORDER BY v NULLS FIRST, id LIMIT 4 OFFSET 1",
            // LIMIT without ORDER BY: only the count is deterministic.
            "SELECT count(*) FROM (SELECT id FROM t1 LIMIT 3)",
            "SELECT count(*) FROM (SELECT id FROM t1 LIMIT 3 OFFSET 8)",
            "SELECT count(*) FROM (SELECT a.a FROM d1 a JOIN d2 b ON a.k = b.k LIMIT 7)",
        ])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_nulls_first_last() {
    fixture()
        .check(&[
            "SELECT id, k FROM t1 ORDER BY k, id",
            "SELECT id, k FROM t1 ORDER BY k NULLS FIRST, id",
            "SELECT id, k FROM t1 ORDER BY k DESC, id",
            "SELECT id, k FROM t1 ORDER BY k DESC NULLS LAST, id DESC",
            "SELECT id, s FROM t1 ORDER BY s, id",
            "SELECT id, s FROM t1 ORDER BY s DESC NULLS LAST, id",
            "SELECT id, d FROM t1 ORDER BY d NULLS FIRST, id",
            "SELECT id, m FROM t1 ORDER BY m DESC, id",
            "SELECT id, f FROM t1 ORDER BY f, id",
            "SELECT id FROM t1 ORDER BY v, id",
            "SELECT id, v FROM t1 ORDER BY v * -1, id",
            "SELECT k, count(*) AS c FROM t1 GROUP BY k ORDER BY c DESC, k NULLS FIRST",
        ])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_having_union() {
    fixture().check(&[
        "SELECT DISTINCT k FROM t1",
        "SELECT DISTINCT k, s FROM t1",
        "SELECT DISTINCT a.k FROM d1 a JOIN d2 b ON a.k = b.k",
        "SELECT k, sum(v) FROM t1 GROUP BY k HAVING sum(v) > 10",
        "SELECT k, count(*) FROM t1 GROUP BY k HAVING count(*) > 1",
        "SELECT k FROM t1 GROUP BY k HAVING max(s) LIKE 'b%'",
        "SELECT k FROM t1 UNION ALL SELECT k FROM t2",
        "SELECT k FROM t1 UNION SELECT k FROM t2",
        "SELECT v FROM t1 UNION SELECT y FROM t2",
        "SELECT k, 'left' AS side FROM t1 UNION ALL SELECT k, 'right' FROM t3 UNION ALL SELECT k, 'e' FROM e",
        "SELECT k FROM t1 INTERSECT SELECT k FROM t2",
        "SELECT k FROM t1 EXCEPT SELECT k FROM t2",
        "SELECT count(*) FROM (SELECT k FROM t1 UNION SELECT k FROM t2)",
        "SELECT k, count(*) FROM (SELECT k FROM t1 UNION ALL SELECT k FROM t2) u GROUP BY k",
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_in_between_like() {
    fixture().check(&[
        "SELECT id, CASE WHEN v > 10 THEN 'big' WHEN v IS NULL THEN 'none' ELSE 'small' END FROM t1",
        "SELECT id, CASE k WHEN 1 THEN 'one' WHEN 2 THEN 'two' END AS name FROM t1",
        "SELECT id FROM t1 WHERE k IN (1, 3)",
        "SELECT id FROM t1 WHERE k IN (1, 3, NULL)",
        "SELECT id FROM t1 WHERE k NOT IN (1, 2)",
        "SELECT id FROM t1 WHERE k NOT IN (1, NULL)",
        "SELECT id FROM t1 WHERE v BETWEEN 5 AND 20",
        "SELECT id FROM t1 WHERE v NOT BETWEEN 5 AND 20",
        "SELECT id FROM t1 WHERE s LIKE 'a%'",
        "SELECT id FROM t1 WHERE s NOT LIKE '%a%'",
        "SELECT id FROM t1 WHERE s LIKE 'a_c'",
        "SELECT id FROM t1 WHERE s ILIKE 'APP%'",
        "SELECT id, k IS NULL, v IS NOT NULL, k = NULL FROM t1",
        "SELECT id FROM t1 WHERE NOT (k > 1)",
        "SELECT id, coalesce(k, -1), nullif(v, 20) FROM t1",
        "SELECT id, k > 1 AND v > 10, k > 1 OR v > 10 FROM t1",
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_functions() {
    fixture()
        .check(&[
            "SELECT id, upper(s), lower(s), length(s), char_length(s) FROM t1",
            "SELECT id, substr(s, 2, 3), substring(s from 1 for 2), s || '!' FROM t1",
            "SELECT id, concat(s, '-', k), trim(s), ltrim(s), rtrim(s) FROM t1",
            "SELECT id, replace(s, 'a', 'A'), starts_with(s, 'a'), strpos(s, 'an') FROM t1",
            "SELECT id, lpad(s, 8, '*'), reverse(s), left(s, 2), right(s, 2) FROM t1",
            "SELECT s, count(*) FROM t1 GROUP BY s",
            "SELECT id, CAST(k AS VARCHAR), CAST(v AS VARCHAR) || 'x' FROM t1",
        ])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_functions() {
    fixture().check(&[
        "SELECT id, extract(year FROM d), extract(month FROM d), extract(day FROM d) FROM t1",
        "SELECT id, date_part('year', d), date_part('dow', d) FROM t1",
        "SELECT id, d + interval '1' day, d - interval '1' month, d + interval '1' year FROM t1",
        "SELECT id FROM t1 WHERE d >= date '2020-01-01' AND d < date '2020-03-01'",
        "SELECT id FROM t1 WHERE d BETWEEN '2020-01-01' AND '2021-12-31'",
        "SELECT id, date_trunc('month', d) FROM t1",
        "SELECT id, CAST(d AS VARCHAR) FROM t1",
        "SELECT extract(year FROM d) AS y, count(*) FROM t1 GROUP BY extract(year FROM d)",
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimal_arithmetic() {
    fixture().check(&[
        "SELECT id, m * 2, m + m, m - 1, m * m FROM t1",
        "SELECT id, m / 3, m * (1 - 0.05), m * (1 + 0.1) * 2 FROM t1",
        "SELECT sum(m), avg(m), min(m), max(m), sum(m * 2) FROM t1",
        "SELECT k, sum(m), avg(m) FROM t1 GROUP BY k",
        "SELECT id, CAST(m AS DECIMAL(20, 4)) AS m4, CAST(m AS DOUBLE) AS md, CAST(v AS DECIMAL(12, 2)) AS vd FROM t1",
        "SELECT id FROM t1 WHERE m > 1.5",
        "SELECT id, round(f, 1), abs(m), f * 2 + 1 FROM t1",
        "SELECT id, v / 3, v % 3, v * 1.5 FROM t1",
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_equi_and_cross_joins() {
    fixture()
        .check(&[
            "SELECT a.id, b.w FROM t1 a JOIN t2 b ON a.k = b.k AND a.id < b.y",
            "SELECT a.id, b.w FROM t1 a LEFT JOIN t2 b ON a.k = b.k AND a.v > b.y",
            "SELECT a.id, b.w FROM t1 a RIGHT JOIN t2 b ON a.k = b.k AND a.id < b.y",
            "SELECT a.id, b.w FROM t1 a FULL JOIN t2 b ON a.k = b.k AND a.id < b.y",
            "SELECT a.id, b.w FROM t1 a JOIN t2 b ON a.id < b.y",
            "SELECT a.id, b.w FROM t1 a LEFT JOIN t2 b ON a.id < b.y",
            "SELECT a.id, b.w FROM t1 a RIGHT JOIN t2 b ON a.id > b.y",
            "SELECT a.id, b.w FROM t1 a FULL JOIN t2 b ON a.id > b.y + 5",
            "SELECT a.id, b.w FROM t1 a JOIN t2 b ON a.k <> b.k",
            "SELECT a.id, b.w FROM t1 a CROSS JOIN t2 b",
            "SELECT a.id, b.k FROM t1 a, t3 b WHERE a.id > b.k",
            "SELECT count(*) FROM t1 a, t2 b, t3 c",
            "SELECT a.id FROM t1 a WHERE EXISTS (SELECT 1 FROM t2 b WHERE a.id < b.y)",
        ])
        .await;
}

/// Several partitions with larger tables: a join and an aggregate over
/// 2000 rows split in 40 batches, compared at 1, 3 and 8 partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiple_partitions() {
    let n = 2000;
    let big = dup("a", n);
    let queries = [
        "SELECT k, count(*), sum(a), min(a), max(a) FROM big GROUP BY k",
        "SELECT count(DISTINCT a % 97) FROM big",
        "SELECT x.k, count(*) FROM big x JOIN d2 y ON x.k = y.k GROUP BY x.k",
        "SELECT a FROM big WHERE a % 13 = 0 ORDER BY a DESC LIMIT 50",
        "SELECT k, a FROM big ORDER BY k NULLS FIRST, a LIMIT 100 OFFSET 300",
        "SELECT DISTINCT k FROM big",
        "SELECT x.a, y.b FROM big x LEFT JOIN d2 y ON x.k = y.k AND y.b > 15 WHERE x.a < 100",
    ];
    let mut baseline: Option<Vec<Vec<Row>>> = None;
    for (p, batch_size) in [(1, 8192), (3, 64), (8, 100)] {
        let (engine, ctx) = fixture().setup(p, batch_size);
        register_both(&engine, &ctx, "big", big.schema(), split(&big, 50));
        assert_all_same(&queries, &engine, &ctx).await;
        let mut results = Vec::new();
        for q in queries {
            let batches = engine.sql(q).await.unwrap().collect().await.unwrap();
            let mut rows = normalize(&batches).unwrap();
            if !q.contains("ORDER BY") {
                rows.sort_by_key(render_row);
            }
            results.push(rows);
        }
        match &baseline {
            None => baseline = Some(results),
            Some(base) => {
                for ((q, b), r) in queries.iter().zip(base).zip(&results) {
                    pretty_assertions::assert_eq!(
                        render_rows(b),
                        render_rows(r),
                        "{q}: 1 partition (left) vs {p} partitions (right)"
                    );
                }
            }
        }
    }
}

/// A plain scan of every column type (sanity check of the test setup and
/// of the normalization).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_sanity() {
    let (engine, ctx) = fixture().setup(1, 8192);
    check_same("SELECT id, k, v, s, d, m, f FROM t1", &engine, &ctx)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
