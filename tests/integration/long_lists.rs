//! Long `VALUES` and `IN` lists: planned in time linear in their length
//! (a generous bound that only a quadratic step breaks), with the right
//! answers, embedded and on a cluster; `VALUES` lists of constants are kept
//! from the optimizer (`planner::values`) and that shows in EXPLAIN.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::util::display::array_value_to_string;
use ffq::{Engine, LocalCluster};

use crate::common::{connect_engine, ffq_engine};

/// Planning 100,000 items takes a few seconds unoptimized; a quadratic step
/// takes minutes.
const PLAN_BOUND: Duration = Duration::from_secs(20);

/// Table `t`: `a` = 0..10,000 and `s` = "s<a>".
fn engine_with_t(engine: Engine) -> Engine {
    let a = Int64Array::from_iter_values(0..10_000);
    let s = StringArray::from_iter_values((0..10_000).map(|i| format!("s{i}")));
    let batch =
        RecordBatch::try_from_iter([("a", Arc::new(a) as ArrayRef), ("s", Arc::new(s) as _)])
            .unwrap();
    engine.register_batches("t", vec![batch]).unwrap();
    engine
}

/// `VALUES (0, 'v0'), (1, 'v1'), ...`
fn values_list(n: usize) -> String {
    let rows: Vec<String> = (0..n).map(|i| format!("({i}, 'v{i}')")).collect();
    format!("(VALUES {}) AS v(x, y)", rows.join(", "))
}

/// `0, 2, 4, ...` (n items).
fn even_numbers(n: usize) -> String {
    let items: Vec<String> = (0..n).map(|i| (2 * i).to_string()).collect();
    items.join(", ")
}

/// The rows of the result, each cell as text, joined by `|`.
async fn rows(engine: &Engine, sql: &str) -> Vec<String> {
    let df = engine
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql:.100}: {e}"));
    let batches = df
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql:.100}: {e}"));
    batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |r| {
                b.columns()
                    .iter()
                    .map(|c| array_value_to_string(c, r).unwrap())
                    .collect::<Vec<_>>()
                    .join("|")
            })
        })
        .collect()
}

/// Plans `sql` (not run) within [`PLAN_BOUND`].
async fn assert_plans_in_time(engine: &Engine, what: &str, sql: &str) {
    let start = Instant::now();
    engine
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let took = start.elapsed();
    assert!(took < PLAN_BOUND, "planning {what} took {took:?}");
}

/// The cases (SQL, expected rows) at list length `n` (at least 10,000).
fn cases(n: usize) -> Vec<(String, Vec<String>)> {
    let sum: usize = (0..n).sum();
    let strings: Vec<String> = (0..n).map(|i| format!("'s{}'", 3 * i)).collect();
    vec![
        (
            format!(
                "SELECT count(*), sum(x), min(y), max(y), count(DISTINCT y) FROM {}",
                values_list(n)
            ),
            vec![format!("{n}|{sum}|v0|v{}|{n}", max_by_text(n))],
        ),
        (
            format!(
                "SELECT count(*), sum(a) FROM t WHERE a IN ({})",
                even_numbers(n)
            ),
            vec![format!("5000|{}", (0..10_000).step_by(2).sum::<usize>())],
        ),
        (
            format!(
                "SELECT count(*) FROM t WHERE a NOT IN ({})",
                even_numbers(n)
            ),
            vec!["5000".into()],
        ),
        (
            format!("SELECT count(*) FROM t WHERE s IN ({})", strings.join(", ")),
            vec![(0..10_000).filter(|i| i % 3 == 0).count().to_string()],
        ),
        (
            format!(
                "SELECT a FROM t WHERE a < 5 AND a IN (SELECT x FROM {}) ORDER BY a",
                values_list(n)
            ),
            (0..5).map(|i| i.to_string()).collect(),
        ),
    ]
}

/// The largest of "v0".."v<n-1>" as text.
fn max_by_text(n: usize) -> String {
    (0..n).map(|i| i.to_string()).max().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_of_100_000_plan_in_linear_time() {
    let engine = engine_with_t(ffq_engine(2, 8192));
    let n = 100_000;
    assert_plans_in_time(
        &engine,
        "a VALUES list of 100,000 rows",
        &format!("SELECT sum(x) FROM {}", values_list(n)),
    )
    .await;
    assert_plans_in_time(
        &engine,
        "an IN list of 100,000 items",
        &format!("SELECT count(*) FROM t WHERE a IN ({})", even_numbers(n)),
    )
    .await;
    let start = Instant::now();
    Engine::split_sql(&format!("SELECT 1; SELECT sum(x) FROM {}", values_list(n))).unwrap();
    assert!(
        start.elapsed() < PLAN_BOUND,
        "splitting took {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lists_give_the_right_rows_embedded_and_on_a_cluster() {
    let embedded = engine_with_t(ffq_engine(2, 8192));
    let cluster = LocalCluster::start(2).await.unwrap();
    let distributed = engine_with_t(connect_engine(cluster.client_config(), 2, 8192).await);
    for (sql, expected) in cases(20_000) {
        assert_eq!(
            rows(&embedded, &sql).await,
            expected,
            "embedded: {sql:.100}"
        );
        assert_eq!(
            rows(&distributed, &sql).await,
            expected,
            "cluster: {sql:.100}"
        );
    }
}

#[tokio::test]
async fn values_of_constants_of_mixed_types_and_values_of_expressions() {
    let engine = ffq_engine(2, 8192);
    // Casts (1 to a decimal / float), NULLs and negation under the constants.
    let got = rows(
        &engine,
        "SELECT x, y, z FROM (VALUES (1, NULL, -2), (2.5, 'b', 3), (-0.5, 'c', NULL)) \
         AS v(x, y, z) ORDER BY x",
    )
    .await;
    assert_eq!(got, vec!["-0.5|c|", "1.0||-2", "2.5|b|3"]);
    // Not constants: stays a Values node, optimized as before.
    let got = rows(
        &engine,
        "SELECT x FROM (VALUES (1 + 1), (abs(-3)), (CAST('4' AS BIGINT))) AS v(x) ORDER BY x",
    )
    .await;
    assert_eq!(got, vec!["2", "3", "4"]);
}

#[tokio::test]
async fn explain_shows_values_of_literals_outside_the_optimizer() {
    let engine = ffq_engine(2, 8192);
    let plan = rows(
        &engine,
        &format!("EXPLAIN SELECT sum(x) FROM {}", values_list(1_000)),
    )
    .await
    .join("\n");
    assert!(
        plan.contains("Values: 1000 rows of literals"),
        "the logical plan:\n{plan}"
    );
    assert!(
        plan.contains("Values: 1000 rows"),
        "the physical plan:\n{plan}"
    );
}
