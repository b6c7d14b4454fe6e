use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion_common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion_expr::logical_plan::builder::table_scan;
use datafusion_expr::{col, exists, in_subquery, lit, not, out_ref_col, Expr, LogicalPlan};

use super::rewrite_subqueries_in_expressions;

/// A table `name` of Int32 columns `(column, nullable)`.
fn scan(name: &str, columns: &[(&str, bool)]) -> datafusion_expr::LogicalPlanBuilder {
    let schema = Schema::new(
        columns
            .iter()
            .map(|(c, nullable)| Field::new(*c, DataType::Int32, *nullable))
            .collect::<Vec<_>>(),
    );
    table_scan(Some(name), &schema, None).unwrap()
}

fn text(plan: &LogicalPlan) -> String {
    plan.display_indent().to_string()
}

fn mark_joins(plan: &LogicalPlan) -> usize {
    text(plan).matches("LeftMark Join").count()
}

/// `SELECT t.x IN (SELECT s.y FROM s [WHERE s.k = t.k]) FROM t`.
fn select_in(nullable: bool, correlated: bool) -> LogicalPlan {
    let mut sub = scan("s", &[("y", nullable), ("k", false)]);
    if correlated {
        sub = sub
            .filter(col("s.k").eq(out_ref_col(DataType::Int32, "t.k")))
            .unwrap();
    }
    let sub = Arc::new(sub.project(vec![col("s.y")]).unwrap().build().unwrap());
    scan("t", &[("x", nullable), ("k", false)])
        .project(vec![in_subquery(col("t.x"), sub).alias("found")])
        .unwrap()
        .build()
        .unwrap()
}

#[test]
fn in_over_non_nullable_columns_is_one_mark_join() {
    let plan = rewrite_subqueries_in_expressions(select_in(false, true)).unwrap();
    assert_eq!(mark_joins(&plan), 1, "{}", text(&plan));
    assert!(!text(&plan).contains("CASE"), "{}", text(&plan));
    assert_eq!(plan.schema().field(0).name(), "found");
}

#[test]
fn in_over_nullable_columns_also_marks_non_empty_and_has_null() {
    let plan = rewrite_subqueries_in_expressions(select_in(true, true)).unwrap();
    assert_eq!(mark_joins(&plan), 3, "{}", text(&plan));
    assert!(text(&plan).contains("s.y IS NULL"), "{}", text(&plan));
    assert!(text(&plan).contains("CASE WHEN"), "{}", text(&plan));
}

#[test]
fn uncorrelated_non_empty_and_has_null_are_scalar_subqueries() {
    let plan = rewrite_subqueries_in_expressions(select_in(true, false)).unwrap();
    assert_eq!(mark_joins(&plan), 1, "{}", text(&plan));
    let mut scalar = 0;
    plan.apply_expressions(|e| {
        e.apply(|e| {
            scalar += matches!(e, datafusion_expr::Expr::ScalarSubquery(_)) as usize;
            Ok(TreeNodeRecursion::Continue)
        })
    })
    .unwrap();
    assert_eq!(scalar, 2, "{}", text(&plan));
}

/// `SELECT s.y FROM s`, y nullable.
fn nullable_column_of_s() -> Arc<LogicalPlan> {
    Arc::new(
        scan("s", &[("y", true)])
            .project(vec![col("s.y")])
            .unwrap()
            .build()
            .unwrap(),
    )
}

/// `SELECT * FROM t WHERE predicate`, before and after the rewrite.
fn filter_t(predicate: Expr) -> (LogicalPlan, LogicalPlan) {
    let plan = scan("t", &[("x", true)])
        .filter(predicate)
        .unwrap()
        .build()
        .unwrap();
    let rewritten = rewrite_subqueries_in_expressions(plan.clone()).unwrap();
    (plan, rewritten)
}

#[test]
fn top_level_where_subqueries_stay_datafusions() {
    let sub = nullable_column_of_s();
    for predicate in [
        in_subquery(col("t.x"), Arc::clone(&sub)),
        not(in_subquery(col("t.x"), Arc::clone(&sub))),
        in_subquery(col("t.x"), Arc::clone(&sub)).or(col("t.x").gt(lit(3))),
        exists(Arc::clone(&sub)).or(col("t.x").gt(lit(3))),
    ] {
        let (plan, rewritten) = filter_t(predicate);
        assert_eq!(rewritten, plan, "{}", text(&rewritten));
    }
}

#[test]
fn not_in_under_or_gets_three_valued_marks() {
    let sub = nullable_column_of_s();
    let predicate = not(in_subquery(col("t.x"), sub)).or(col("t.x").gt(lit(3)));
    let (plan, rewritten) = filter_t(predicate);
    assert_eq!(mark_joins(&rewritten), 1, "{}", text(&rewritten));
    // The filter keeps its input's columns.
    assert_eq!(rewritten.schema(), plan.schema());
}
