//! GROUPING SETS / ROLLUP / CUBE and `grouping()` against DataFusion, and
//! `INTERSECT ALL` / `EXCEPT ALL` against the SQL standard's multiset
//! semantics.
//!
//! DataFusion plans the ALL set operations as semi/anti joins, which keep
//! too many (INTERSECT ALL) or too few (EXCEPT ALL) duplicates
//! (apache/datafusion#12955), so their oracle is an equivalent standard
//! formulation run in DataFusion: numbering the copies of each row with
//! `row_number()` makes rows unique, and the DISTINCT set operation on
//! (row, copy number) keeps `min(m, n)` / `max(m - n, 0)` copies.

use std::sync::Arc;

use arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use crate::common::{normalize, run_ffq, tpch_engine, Fixture, Runs};

const SF: f64 = 0.01;

// ---------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------

/// t(k1 Utf8, k2 Int32, v Int64) with NULL keys and duplicate rows.
fn t() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k1", DataType::Utf8, true),
        Field::new("k2", DataType::Int32, true),
        Field::new("v", DataType::Int64, true),
    ]));
    let k1 = [
        Some("a"),
        Some("b"),
        None,
        Some("a"),
        Some("b"),
        None,
        Some("a"),
        Some("b"),
        Some("a"),
        Some("c"),
        None,
        Some("a"),
    ];
    let k2 = [
        Some(1),
        Some(1),
        Some(2),
        Some(1),
        None,
        Some(2),
        None,
        None,
        Some(1),
        Some(3),
        None,
        Some(1),
    ];
    let v = [
        Some(10),
        None,
        Some(5),
        Some(20),
        Some(7),
        None,
        Some(1),
        Some(3),
        Some(30),
        None,
        Some(1),
        Some(10),
    ];
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(k1.to_vec())),
            Arc::new(Int32Array::from(k2.to_vec())),
            Arc::new(Int64Array::from(v.to_vec())),
        ],
    )
    .unwrap()
}

/// u(k1 Utf8, k2 Int64, v Int64): k2 is wider than t's (compared in the
/// common type).
fn u() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k1", DataType::Utf8, true),
        Field::new("k2", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
    ]));
    let k1 = [
        Some("a"),
        Some("a"),
        None,
        None,
        Some("b"),
        Some("b"),
        Some("b"),
        Some("d"),
        None,
        Some("a"),
    ];
    let k2 = [
        Some(1),
        Some(1),
        Some(2),
        None,
        None,
        None,
        Some(1),
        Some(4),
        Some(2),
        None,
    ];
    let v = [
        Some(10),
        Some(10),
        Some(5),
        Some(1),
        Some(7),
        Some(3),
        None,
        None,
        None,
        Some(1),
    ];
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(k1.to_vec())),
            Arc::new(Int64Array::from(k2.to_vec())),
            Arc::new(Int64Array::from(v.to_vec())),
        ],
    )
    .unwrap()
}

/// t and u in FFQ and in DataFusion: in batches of three rows when
/// partitioned.
fn fixture() -> Fixture {
    Fixture::new()
        .table("t", t())
        .table("u", u())
        .split_when_partitioned(3)
}

// ---------------------------------------------------------------------------
// Grouping sets
// ---------------------------------------------------------------------------

const GROUPING_MEMORY: &[&str] = &[
    "SELECT k1, k2, sum(v), count(*) FROM t GROUP BY ROLLUP (k1, k2)",
    "SELECT k1, k2, sum(v), grouping(k1), grouping(k2), grouping(k1, k2) \
     FROM t GROUP BY CUBE (k1, k2)",
    "SELECT k1, k2, count(v), avg(v), min(v), max(k1) FROM t \
     GROUP BY GROUPING SETS ((k1), (k2), (k1, k2), ())",
    // A NULL key value and a key that is not grouped are told apart.
    "SELECT k1, k2, count(*) AS c, grouping(k2) AS g FROM t \
     GROUP BY GROUPING SETS ((k1, k2), (k1)) ORDER BY k1 NULLS FIRST, k2 NULLS FIRST, g",
    // Repeated sets each give their rows.
    "SELECT k1, count(*) FROM t GROUP BY GROUPING SETS ((k1), (k1), ())",
    "SELECT count(*), sum(v) FROM t GROUP BY GROUPING SETS ((), ())",
    // A plain key next to a ROLLUP.
    "SELECT k1, k2, sum(v) FROM t GROUP BY k1, ROLLUP (k2)",
    "SELECT k1, count(DISTINCT v), sum(DISTINCT v) FROM t GROUP BY ROLLUP (k1)",
    "SELECT k1, count(*) FILTER (WHERE v > 5), sum(v) FILTER (WHERE k2 = 1) \
     FROM t GROUP BY CUBE (k1)",
    "SELECT k1, k2, sum(v) FROM t GROUP BY ROLLUP (k1, k2) HAVING grouping(k2) = 1",
    "SELECT k1, sum(v) FROM t GROUP BY ROLLUP (k1) HAVING sum(v) > 10",
    "SELECT upper(k1) AS uk, k2 + 1 AS k, count(*) FROM t GROUP BY ROLLUP (upper(k1), k2 + 1)",
    "SELECT k1, count(*) FROM t WHERE v > 1000 GROUP BY ROLLUP (k1)",
    "SELECT count(*), sum(v) FROM t WHERE v > 1000 GROUP BY GROUPING SETS (())",
    "SELECT k1, k2, count(*), sum(v), avg(v), grouping(k1, k2) FROM t WHERE v > 1000 \
     GROUP BY GROUPING SETS ((k1, k2), (), (k1), ())",
    "SELECT k1, count(*) FROM t WHERE v > 1000 GROUP BY GROUPING SETS ((k1), (k1, k2))",
    "SELECT grouping(k1), k1, count(*) FROM t GROUP BY k1",
    "SELECT k1, k2, sum(v) FROM t GROUP BY CUBE (k1, k2) ORDER BY 3 DESC NULLS LAST, 1, 2 LIMIT 4",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouping_sets_memory_tables() {
    fixture().check(GROUPING_MEMORY).await;
}

const GROUPING_TPCH: &[&str] = &[
    "SELECT n_regionkey, count(*) AS c, grouping(n_regionkey) AS g FROM nation \
     GROUP BY ROLLUP (n_regionkey) ORDER BY n_regionkey",
    "SELECT l_returnflag, l_linestatus, sum(l_quantity), avg(l_extendedprice), \
     count(DISTINCT l_suppkey), grouping(l_returnflag, l_linestatus) \
     FROM lineitem GROUP BY CUBE (l_returnflag, l_linestatus)",
    "SELECT extract(year FROM o_orderdate) AS y, o_orderpriority, count(*), sum(o_totalprice) \
     FROM orders GROUP BY ROLLUP (extract(year FROM o_orderdate), o_orderpriority) \
     ORDER BY y, o_orderpriority",
    "SELECT o_orderstatus, o_orderpriority, o_shippriority, count(*) FROM orders \
     GROUP BY o_orderstatus, ROLLUP (o_orderpriority, o_shippriority)",
    "SELECT l_shipmode, l_returnflag, count(*) FROM lineitem \
     GROUP BY GROUPING SETS ((l_shipmode), (l_returnflag), (l_shipmode), ())",
    // Nine keys: the grouping id is UInt16.
    "SELECT l_returnflag, l_linestatus, l_shipmode, l_shipinstruct, l_linenumber, l_tax, \
     l_discount, l_quantity, l_suppkey, count(*), grouping(l_suppkey) \
     FROM lineitem WHERE l_orderkey < 2000 \
     GROUP BY GROUPING SETS ((l_returnflag, l_linestatus, l_shipmode, l_shipinstruct, \
     l_linenumber, l_tax, l_discount, l_quantity, l_suppkey), (l_returnflag), ())",
    "SELECT r_name, n_name, sum(s_acctbal) FROM supplier \
     JOIN nation ON s_nationkey = n_nationkey JOIN region ON n_regionkey = r_regionkey \
     GROUP BY ROLLUP (r_name, n_name) ORDER BY 3 DESC LIMIT 10",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouping_sets_tpch() {
    Runs::tpch(SF, &[1, 4]).assert_same(GROUPING_TPCH).await;
}

// ---------------------------------------------------------------------------
// INTERSECT ALL / EXCEPT ALL
// ---------------------------------------------------------------------------

/// `l op ALL r` in the standard formulation (columns `cols` on both sides).
fn standard_all(op: &str, l: &str, r: &str, cols: &str) -> String {
    format!(
        "SELECT {cols} FROM (\
         SELECT {cols}, row_number() OVER (PARTITION BY {cols}) AS rn__ FROM ({l}) l__ \
         {op} \
         SELECT {cols}, row_number() OVER (PARTITION BY {cols}) AS rn__ FROM ({r}) r__) s__"
    )
}

/// (FFQ query, oracle query) pairs.
fn set_op_cases(memory: bool) -> Vec<(String, String)> {
    let mut cases = Vec::new();
    let mut both = |l: &str, r: &str, cols: &str| {
        for op in ["INTERSECT", "EXCEPT"] {
            cases.push((
                format!("({l}) {op} ALL ({r})"),
                standard_all(op, l, r, cols),
            ));
        }
    };
    if memory {
        both("SELECT k1, k2 FROM t", "SELECT k1, k2 FROM u", "k1, k2");
        both("SELECT k1, k2 FROM u", "SELECT k1, k2 FROM t", "k1, k2");
        both(
            "SELECT k1, k2, v FROM t",
            "SELECT k1, k2, v FROM u",
            "k1, k2, v",
        );
        both("SELECT k1 FROM t", "SELECT k1 FROM u", "k1");
        both("SELECT k1 FROM t", "SELECT k1 FROM u WHERE v > 100", "k1");
        both("SELECT k1 FROM t WHERE v > 100", "SELECT k1 FROM u", "k1");
        both("SELECT k1, k2 FROM t", "SELECT k1, k2 FROM t", "k1, k2");
        both(
            "SELECT k2 AS x FROM t",
            "SELECT CAST(v AS INT) AS x FROM u",
            "x",
        );
        let ie = standard_all("INTERSECT", "SELECT k1 FROM t", "SELECT k1 FROM u", "k1");
        // Nested, inside a subquery, below an aggregate / filter / limit.
        cases.extend([
            (
                "((SELECT k1 FROM t) INTERSECT ALL (SELECT k1 FROM u)) EXCEPT ALL \
                 (SELECT k1 FROM u WHERE k2 = 1)"
                    .to_string(),
                standard_all("EXCEPT", &ie, "SELECT k1 FROM u WHERE k2 = 1", "k1"),
            ),
            (
                "SELECT k1, count(*) FROM ((SELECT k1 FROM t) EXCEPT ALL (SELECT k1 FROM u)) x \
                 GROUP BY k1"
                    .to_string(),
                format!(
                    "SELECT k1, count(*) FROM ({}) x GROUP BY k1",
                    standard_all("EXCEPT", "SELECT k1 FROM t", "SELECT k1 FROM u", "k1")
                ),
            ),
            (
                "SELECT * FROM ((SELECT k1, k2 FROM t) INTERSECT ALL (SELECT k1, k2 FROM u)) x \
                 WHERE k2 = 1"
                    .to_string(),
                format!(
                    "SELECT * FROM ({}) x WHERE k2 = 1",
                    standard_all(
                        "INTERSECT",
                        "SELECT k1, k2 FROM t",
                        "SELECT k1, k2 FROM u",
                        "k1, k2"
                    )
                ),
            ),
            (
                "SELECT k1, v FROM t WHERE k1 IN \
                 ((SELECT k1 FROM t) EXCEPT ALL (SELECT k1 FROM u))"
                    .to_string(),
                format!(
                    "SELECT k1, v FROM t WHERE k1 IN ({})",
                    standard_all("EXCEPT", "SELECT k1 FROM t", "SELECT k1 FROM u", "k1")
                ),
            ),
            (
                "(SELECT k1 FROM t) EXCEPT ALL (SELECT k1 FROM u) ORDER BY k1 NULLS FIRST"
                    .to_string(),
                format!(
                    "{} ORDER BY k1 NULLS FIRST",
                    standard_all("EXCEPT", "SELECT k1 FROM t", "SELECT k1 FROM u", "k1")
                ),
            ),
            // A DISTINCT left input (the semi/anti join is right then).
            (
                "(SELECT DISTINCT k1 FROM t) INTERSECT ALL (SELECT k1 FROM u)".to_string(),
                "SELECT DISTINCT k1 FROM t INTERSECT SELECT k1 FROM u".to_string(),
            ),
            (
                "(SELECT DISTINCT k1 FROM t) EXCEPT ALL (SELECT k1 FROM u)".to_string(),
                "SELECT DISTINCT k1 FROM t EXCEPT SELECT k1 FROM u".to_string(),
            ),
            // The DISTINCT variants are unchanged.
            (
                "SELECT k1, k2 FROM t INTERSECT SELECT k1, k2 FROM u".to_string(),
                "SELECT k1, k2 FROM t INTERSECT SELECT k1, k2 FROM u".to_string(),
            ),
            (
                "SELECT k1, k2 FROM t EXCEPT SELECT k1, k2 FROM u".to_string(),
                "SELECT k1, k2 FROM t EXCEPT SELECT k1, k2 FROM u".to_string(),
            ),
        ]);
    } else {
        both(
            "SELECT n_regionkey AS k FROM nation",
            "SELECT r_regionkey AS k FROM region",
            "k",
        );
        both(
            "SELECT l_returnflag, l_linestatus FROM lineitem",
            "SELECT l_returnflag, l_linestatus FROM lineitem WHERE l_quantity > 10",
            "l_returnflag, l_linestatus",
        );
        both(
            "SELECT o_custkey AS c FROM orders",
            "SELECT c_custkey AS c FROM customer WHERE c_mktsegment = 'BUILDING'",
            "c",
        );
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_ops_all_memory_tables() {
    fixture().runs().assert_same_as(&set_op_cases(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_ops_all_tpch() {
    Runs::tpch(SF, &[1, 4])
        .assert_same_as(&set_op_cases(false))
        .await;
}

/// The example of the issue: 5 and 20 rows (DataFusion gives 25 and 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_ops_all_row_counts() {
    let engine = tpch_engine(SF, 2);
    let count = |sql: &'static str| {
        let engine = &engine;
        async move {
            let (_, batches) = run_ffq(sql, engine).await.unwrap();
            normalize(&batches).unwrap().len()
        }
    };
    assert_eq!(
        count("select n_regionkey from nation intersect all select r_regionkey from region").await,
        5
    );
    assert_eq!(
        count("select n_regionkey from nation except all select r_regionkey from region").await,
        20
    );
    assert_eq!(
        count("select n_regionkey from nation intersect select r_regionkey from region").await,
        5
    );
    assert_eq!(
        count("select n_regionkey from nation except select r_regionkey from region").await,
        0
    );
}
