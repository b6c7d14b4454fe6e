//! FFQ's own logical rewrites: each changes where work happens, never the
//! rows. Every test checks the plan shape and the rows against DataFusion.

use ffq::Engine;

use crate::common::{assert_all_same, explain_rows, oracle_ctx, tpch_engine, tpch_query};

const SF: f64 = 0.01;

/// The physical plan EXPLAIN shows for `sql`.
async fn physical_plan(engine: &Engine, sql: &str) -> String {
    let text: String = explain_rows(engine, &format!("EXPLAIN {sql}"))
        .await
        .into_iter()
        .filter(|(kind, _)| kind == "physical_plan")
        .map(|(_, plan)| plan)
        .collect();
    assert!(!text.is_empty(), "no physical plan for {sql}");
    text
}

/// The indentation of the first line containing `needle`: how deep that
/// operator sits.
fn depth_of(plan: &str, needle: &str) -> usize {
    let line = plan
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in:\n{plan}"));
    line.len() - line.trim_start().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q18_filters_orders_by_the_subquery_before_joining_lineitem() {
    let engine = tpch_engine(SF, 2);
    let sql = tpch_query(18);
    let plan = physical_plan(&engine, &sql).await;
    // The semi join sits below the join with lineitem (deeper in the
    // tree), next to the orders scan it filters.
    let semi = depth_of(&plan, "Semi");
    let lineitem_join = depth_of(&plan, "= l_orderkey");
    assert!(semi > lineitem_join, "{plan}");
    assert_all_same(&[&sql], &engine, &oracle_ctx(SF)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semi_and_anti_joins_over_joins_give_the_same_rows() {
    let engine = tpch_engine(SF, 3);
    let ctx = oracle_ctx(SF);
    let queries = [
        // IN over an inner join: pushed to orders.
        "SELECT c_name, o_orderkey FROM customer JOIN orders ON c_custkey = o_custkey \
         WHERE o_orderkey IN (SELECT l_orderkey FROM lineitem WHERE l_quantity > 49)",
        // NOT IN (null-aware anti) and NOT EXISTS over an inner join.
        "SELECT count(*) FROM customer JOIN orders ON c_custkey = o_custkey \
         WHERE o_orderkey NOT IN (SELECT l_orderkey FROM lineitem WHERE l_quantity > 10)",
        "SELECT count(*) FROM customer JOIN orders ON c_custkey = o_custkey \
         WHERE NOT EXISTS (SELECT 1 FROM lineitem WHERE l_orderkey = o_orderkey \
                           AND l_quantity > 10)",
        // The optional side of a LEFT JOIN: the semi join must stay above.
        "SELECT c_custkey, o_orderkey FROM customer LEFT JOIN orders ON c_custkey = o_custkey \
         WHERE o_orderkey IN (SELECT l_orderkey FROM lineitem WHERE l_quantity > 49)",
        // The preserved side of a LEFT JOIN, with a non-equi condition.
        "SELECT c_custkey, count(o_orderkey) FROM customer LEFT JOIN orders \
         ON c_custkey = o_custkey \
         WHERE EXISTS (SELECT 1 FROM nation WHERE n_nationkey = c_nationkey \
                       AND n_name < c_name) \
         GROUP BY c_custkey",
        // A key made of columns from both sides stays above the join.
        "SELECT count(*) FROM customer JOIN orders ON c_custkey = o_custkey \
         WHERE c_nationkey + o_shippriority IN (SELECT n_nationkey FROM nation)",
    ];
    assert_all_same(&queries, &engine, &ctx).await;
}
