//! The memory limit (`EngineConfig::memory_limit`, `--memory-limit`):
//! operators that can spill (aggregates, hash joins, sorts, set
//! operations) do so and return the same rows; queries whose other operator
//! state does not fit fail with a `resources exhausted` error naming the
//! operator and the limit; under a generous limit they return the same rows
//! as without one.

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;

use ffq::Engine;

use crate::common::differential::{check_all, check_same};
use crate::common::ffq_binary::ffq;
use crate::common::spill::{
    assert_spill_dir_empty, explain_analyze, limited_local_cluster, spilled, tpch_limited_engine,
};
use crate::common::{assert_no_failures, oracle_ctx, tpch_cluster_engine, tpch_engine, tpch_query};

const SF: f64 = 0.01;

fn limited_engine(partitions: usize, limit: usize) -> Engine {
    tpch_limited_engine(SF, partitions, limit, None)
}

/// Operators that reserve memory: one of them must be named.
const STATEFUL: [&str; 6] = [
    "HashAggregate (node ",
    "HashJoin (node ",
    "Sort (node ",
    "TopK (node ",
    "NestedLoopJoin (node ",
    "SetOperation (node ",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_under_a_tiny_limit_spills_aggregates_or_fails_with_resources_exhausted() {
    let ctx = oracle_ctx(SF);
    for partitions in [1, 2] {
        let engine = limited_engine(partitions, 4096);
        // Aggregates and a sort of their few groups (q1): the aggregate
        // spills, the rows are the oracle's.
        let q1 = tpch_query(1);
        check_same(&q1, &engine, &ctx)
            .await
            .unwrap_or_else(|e| panic!("q1 (partitions {partitions}): {e}"));
        let analyzed = explain_analyze(&engine, &q1).await;
        assert!(
            analyzed
                .lines()
                .any(|l| l.contains("Aggregate(") && l.contains(" spill_files=")),
            "q1 (partitions {partitions}) did not spill:\n{analyzed}"
        );
        // Joins with a top-k (q3), a left join under two aggregates (q13),
        // a large grouped join (q18): under 4 KiB each either spills and
        // returns the oracle's rows, or fails naming the state that could
        // not fit (a top-k's rows) — never a wrong result.
        for q in [3, 13, 18] {
            let Err(e) = check_same(&tpch_query(q), &engine, &ctx).await else {
                continue;
            };
            assert!(e.contains("resources exhausted: "), "q{q}: {e}");
            assert!(e.contains(", memory limit 4.0 KiB ("), "q{q}: {e}");
            assert!(
                STATEFUL.iter().any(|op| e.contains(op)),
                "q{q}: no operator named: {e}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_under_a_generous_limit_returns_the_same_rows() {
    let ctx = oracle_ctx(SF);
    // q15 is a script (CREATE VIEW; SELECT; DROP VIEW): `tpch_all` runs it.
    let queries: Vec<String> = (1..=22).filter(|&q| q != 15).map(tpch_query).collect();
    let queries: Vec<&str> = queries.iter().map(String::as_str).collect();
    let mut failures = Vec::new();
    for partitions in [1, 3] {
        let engine = limited_engine(partitions, 256 << 20);
        failures.extend(check_all(&queries, &engine, &ctx).await);
    }
    assert_no_failures(&failures, 2 * queries.len());
}

/// Joins of every kind whose build side does not fit in a small limit
/// (and no other state that must stay in memory): the hash join spills
/// (a grace hash join) and returns the oracle's rows.
const SPILLING_JOINS: [&str; 6] = [
    // Inner, shared (broadcast) build.
    "SELECT c_name, o_orderkey, o_totalprice FROM customer JOIN orders ON c_custkey = o_custkey",
    // Left outer with a join filter.
    "SELECT c_custkey, c_name, o_orderkey FROM customer LEFT JOIN orders \
     ON c_custkey = o_custkey AND o_totalprice > 200000",
    // Full outer.
    "SELECT o_orderkey, c_custkey, c_name FROM orders FULL JOIN customer \
     ON o_custkey = c_custkey AND o_orderpriority = '1-URGENT'",
    // Semi and anti.
    "SELECT c_custkey, c_name FROM customer WHERE c_custkey IN \
     (SELECT o_custkey FROM orders WHERE o_orderstatus = 'F')",
    "SELECT c_custkey, c_name FROM customer WHERE NOT EXISTS \
     (SELECT 1 FROM orders WHERE o_custkey = c_custkey)",
    // Null-aware anti (NOT IN).
    "SELECT c_custkey, c_name FROM customer WHERE c_custkey NOT IN \
     (SELECT o_custkey FROM orders WHERE o_orderstatus = 'O')",
];

const JOIN_SPILL_LIMIT: usize = 32 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_spill_under_a_small_limit_and_return_the_same_rows() {
    let ctx = oracle_ctx(SF);
    let mut failures = Vec::new();
    for partitions in [1, 3] {
        let engine = limited_engine(partitions, JOIN_SPILL_LIMIT);
        failures.extend(check_all(&SPILLING_JOINS, &engine, &ctx).await);
        for sql in SPILLING_JOINS {
            let text = explain_analyze(&engine, sql).await;
            assert!(
                spilled(&text, "HashJoin"),
                "{sql} (partitions {partitions}): the join did not spill:\n{text}"
            );
        }
    }
    assert_no_failures(&failures, 2 * SPILLING_JOINS.len());
}

async fn collect(engine: &Engine, sql: &str) -> Vec<RecordBatch> {
    match engine.sql(sql).await {
        Ok(df) => df.collect().await,
        Err(e) => Err(e),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// One batch of `batches` (for comparing row for row across batch cuts).
fn concat(batches: &[RecordBatch]) -> RecordBatch {
    let schema = batches[0].schema();
    concat_batches(&schema, batches).unwrap_or_else(|e| panic!("concat: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_larger_than_the_limit_spills_and_returns_the_same_rows() {
    // About 7 MiB of rows and sort keys, under 6 MiB (3 MiB for each of
    // two partitions: merging two read-back batches takes 2.1 MiB).
    let sql = "SELECT l_shipdate, l_comment, l_orderkey, l_linenumber FROM lineitem \
               ORDER BY l_shipdate DESC, l_comment, l_orderkey, l_linenumber";
    let limit = 6 << 20;
    for partitions in [1, 2] {
        let want = collect(&tpch_engine(SF, partitions), sql).await;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let engine = tpch_limited_engine(SF, partitions, limit, Some(dir.path()));
        let got = collect(&engine, sql).await;
        assert_eq!(concat(&got), concat(&want), "partitions {partitions}");
        let plan = explain_analyze(&engine, sql).await;
        let sort = plan
            .lines()
            .find(|l| l.trim_start().starts_with("Sort:"))
            .unwrap_or_else(|| panic!("no Sort in {plan}"));
        assert!(sort.contains(" spilled="), "{plan}");
        assert_spill_dir_empty(dir.path(), &format!("the sort, partitions {partitions}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_run_tasks_under_their_limit() {
    let cluster = limited_local_cluster(4096, None).await;
    let engine = tpch_cluster_engine(cluster.client_config(), SF, 2).await;
    // q3: joins and aggregates run on the workers.
    let result = match engine.sql(&tpch_query(3)).await {
        Ok(df) => df.collect().await,
        Err(e) => Err(e),
    };
    let msg = match result {
        Ok(_) => panic!("q3 fit in 4 KiB per worker"),
        Err(e) => e.to_string(),
    };
    assert!(msg.contains("resources exhausted: "), "{msg}");
    assert!(msg.contains("memory limit 4.0 KiB"), "{msg}");
    assert!(
        STATEFUL.iter().any(|op| msg.contains(op)),
        "no operator named: {msg}"
    );
}

#[test]
fn cli_memory_limit() {
    let q1 = tpch_query(1);
    // Too little: one group (no GROUP BY) whose state grows cannot spill;
    // the query fails with one error line, exit code 1.
    let o = ffq(
        &[
            "sql",
            "--tpch",
            "0.01",
            "--memory-limit",
            "4KiB",
            "select array_agg(l_comment) from lineitem",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: resources exhausted: ") && err.contains("memory limit 4.0 KiB"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // Enough: rows (4 and a header). Under 4 KiB too: the aggregate spills.
    for limit in ["1G", "4KiB"] {
        let o = ffq(
            &[
                "sql",
                "--tpch",
                "0.01",
                "--format",
                "csv",
                "--memory-limit",
                limit,
                &q1,
            ],
            None,
        );
        assert!(
            o.status.success(),
            "{limit}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).lines().count(),
            5,
            "{limit}"
        );
    }
    // The REPL takes the flag too.
    let o = ffq(
        &["repl", "--memory-limit", "512MiB"],
        Some("select 1 as a;\n"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn cli_memory_limit_parse_errors() {
    for (command, bad, says) in [
        ("sql", "2XB", "unknown unit"),
        ("sql", "lots", "expected a size"),
        ("sql", "0", "less than one byte"),
        ("sql", "-1G", "expected a size"),
        ("repl", "1.5.2GiB", "expected a size"),
    ] {
        let args = match command {
            "sql" => vec![command, "--memory-limit", bad, "select 1"],
            _ => vec![command, "--memory-limit", bad],
        };
        let o = ffq(&args, Some("select 1;\n"));
        let err = String::from_utf8_lossy(&o.stderr);
        // clap usage errors exit with 2 and name the flag.
        assert_eq!(o.status.code(), Some(2), "{command} {bad}: {err}");
        assert!(err.contains("--memory-limit"), "{command} {bad}: {err}");
        assert!(err.contains(says), "{command} {bad}: {err}");
    }
}
