use arrow::datatypes::{DataType, Field, Schema};
use datafusion_expr::logical_plan::builder::table_scan;
use datafusion_expr::{col, JoinType, LogicalPlan, LogicalPlanBuilder};

use super::push_down_semi_joins;

fn scan(name: &str, columns: &[&str]) -> LogicalPlanBuilder {
    let schema = Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Int64, true))
            .collect::<Vec<_>>(),
    );
    table_scan(Some(name), &schema, None).unwrap()
}

fn join(
    left: LogicalPlanBuilder,
    right: LogicalPlan,
    join_type: JoinType,
    keys: (&str, &str),
) -> LogicalPlanBuilder {
    left.join(right, join_type, (vec![keys.0], vec![keys.1]), None)
        .unwrap()
}

fn shape(plan: &LogicalPlan) -> String {
    plan.display_indent().to_string()
}

/// `(c ⋈ o) ⋈ l`, the shape of TPC-H q18's FROM clause, under a projection.
fn three_way(join_type: JoinType) -> LogicalPlanBuilder {
    let co = join(
        scan("c", &["c_key", "c_name"]),
        scan("o", &["o_key", "o_cust"]).build().unwrap(),
        join_type,
        ("c_key", "o_cust"),
    );
    let col_names = ["c_key", "c_name", "o_key", "l_qty"];
    join(
        co,
        scan("l", &["l_key", "l_qty"]).build().unwrap(),
        JoinType::Inner,
        ("o_key", "l_key"),
    )
    .project(col_names.iter().map(|c| col(*c)))
    .unwrap()
}

fn subquery() -> LogicalPlan {
    scan("s", &["s_key"]).alias("sq").unwrap().build().unwrap()
}

#[test]
fn a_semi_join_goes_below_the_inner_joins_to_the_side_with_its_key() {
    for semi in [JoinType::LeftSemi, JoinType::LeftAnti] {
        let plan = join(
            three_way(JoinType::Inner),
            subquery(),
            semi,
            ("o_key", "s_key"),
        )
        .build()
        .unwrap();
        let pushed = push_down_semi_joins(plan.clone()).unwrap();
        let expected = format!(
            "Projection: c.c_key, c.c_name, o.o_key, l.l_qty\
            \n  Inner Join: o.o_key = l.l_key\
            \n    Inner Join: c.c_key = o.o_cust\
            \n      TableScan: c\
            \n      {semi} Join: o.o_key = sq.s_key\
            \n        TableScan: o\
            \n        SubqueryAlias: sq\
            \n          TableScan: s\
            \n    TableScan: l"
        );
        assert_eq!(shape(&pushed), expected, "{semi}");
        assert_eq!(pushed.schema(), plan.schema());
    }
}

#[test]
fn a_semi_join_stays_on_the_null_extended_side_of_an_outer_join() {
    // `o` is the optional side of `c LEFT JOIN o`: filtering it first
    // would keep customers whose orders the semi join drops.
    let plan = join(
        three_way(JoinType::Left),
        subquery(),
        JoinType::LeftSemi,
        ("o_key", "s_key"),
    )
    .build()
    .unwrap();
    let pushed = push_down_semi_joins(plan).unwrap();
    let text = shape(&pushed);
    assert!(
        text.contains("  Inner Join: o.o_key = l.l_key\n    LeftSemi Join: o.o_key = sq.s_key\n      Left Join: c.c_key = o.o_cust"),
        "{text}"
    );

    // On the preserved side it goes down.
    let plan = join(
        three_way(JoinType::Left),
        subquery(),
        JoinType::LeftSemi,
        ("c_key", "s_key"),
    )
    .build()
    .unwrap();
    let text = shape(&push_down_semi_joins(plan).unwrap());
    assert!(
        text.contains("Left Join: c.c_key = o.o_cust\n      LeftSemi Join: c.c_key = sq.s_key\n        TableScan: c"),
        "{text}"
    );
}

#[test]
fn a_key_from_both_sides_or_a_computed_column_stops_the_push() {
    // The key reads a column the projection computes.
    let plan = three_way(JoinType::Inner)
        .project(vec![
            (col("o_key") + col("l_qty")).alias("k"),
            col("c_name"),
        ])
        .unwrap();
    let plan = join(plan, subquery(), JoinType::LeftSemi, ("k", "s_key"))
        .build()
        .unwrap();
    let pushed = push_down_semi_joins(plan.clone()).unwrap();
    assert_eq!(shape(&pushed), shape(&plan));
}
