use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion_expr::logical_plan::builder::table_scan;
use datafusion_expr::{col, lit, out_ref_col, scalar_subquery, Expr, LogicalPlan};
use datafusion_functions_aggregate::count::count;

use super::rewrite_correlated_scalar_subqueries;

fn scan(name: &str, columns: &[&str]) -> datafusion_expr::LogicalPlanBuilder {
    let schema = Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Int32, true))
            .collect::<Vec<_>>(),
    );
    table_scan(Some(name), &schema, None).unwrap()
}

fn text(plan: &LogicalPlan) -> String {
    plan.display_indent().to_string()
}

/// `SELECT (SELECT count(*) FROM s WHERE <correlation>) AS c FROM t`.
fn select_count(correlation: Expr) -> LogicalPlan {
    let sub = scan("s", &["y"])
        .filter(correlation)
        .unwrap()
        .aggregate(Vec::<Expr>::new(), vec![count(lit(1))])
        .unwrap()
        .build()
        .unwrap();
    scan("t", &["x"])
        .project(vec![scalar_subquery(Arc::new(sub)).alias("c")])
        .unwrap()
        .build()
        .unwrap()
}

#[test]
fn a_non_equality_correlation_joins_the_domain_and_filters_the_aggregates() {
    let plan = select_count(col("s.y").lt(out_ref_col(DataType::Int32, "t.x")));
    let rewritten = rewrite_correlated_scalar_subqueries(plan).unwrap();
    let text = text(&rewritten);
    assert!(!text.contains("<subquery>"), "{text}");
    assert_eq!(text.matches("Left Join").count(), 2, "{text}");
    assert!(text.contains("Distinct"), "{text}");
    assert!(
        text.contains("FILTER (WHERE __ffq_scalar_sq_1.__ffq_row IS NOT NULL)"),
        "{text}"
    );
    assert_eq!(rewritten.schema().field(0).name(), "c");
}

#[test]
fn an_equality_correlation_is_left_to_datafusion() {
    let plan = select_count(col("s.y").eq(out_ref_col(DataType::Int32, "t.x")));
    let rewritten = rewrite_correlated_scalar_subqueries(plan.clone()).unwrap();
    assert_eq!(rewritten, plan);
}

#[test]
fn other_shapes_are_rejected_as_not_supported() {
    let sub = scan("s", &["y"])
        .filter(col("s.y").lt(out_ref_col(DataType::Int32, "t.x")))
        .unwrap()
        .project(vec![col("s.y")])
        .unwrap()
        .limit(0, Some(1))
        .unwrap()
        .build()
        .unwrap();
    let plan = scan("t", &["x"])
        .project(vec![scalar_subquery(Arc::new(sub))])
        .unwrap()
        .build()
        .unwrap();
    let err = rewrite_correlated_scalar_subqueries(plan).unwrap_err();
    assert!(
        err.to_string()
            .contains("not supported: correlated scalar subquery reading outer_ref(t.x)"),
        "{err}"
    );
}
