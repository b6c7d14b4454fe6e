//! Semi and anti joins placed below the inner joins they filter.
//!
//! DataFusion decorrelates `x IN (subquery)` and `EXISTS` into a semi (or
//! anti) join on top of the whole `FROM` clause, so in TPC-H q18 the 57
//! keys of the subquery filter the 6 M rows of `orders ⋈ lineitem` after
//! that join was built and probed. A semi or anti join only keeps or drops
//! rows by a predicate on its left input's own columns, so it commutes with
//! an inner join whenever those columns come from one side of it: filtering
//! that side first gives the same rows, with every join above seeing fewer.
//!
//! The rewrite walks down through projections that pass the key columns
//! through unchanged and through inner joins (and outer joins, on their
//! preserved side), and stops at anything else.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::Column;
use datafusion_expr::logical_plan::{Join, JoinType, Projection};
use datafusion_expr::{Expr, LogicalPlan};

use datafusion_common::Result as DfResult;

use crate::error::Result;

/// `plan` with every semi and anti join moved as far down as it commutes.
pub fn push_down_semi_joins(plan: LogicalPlan) -> Result<LogicalPlan> {
    let pushed = plan.transform_up(|node| match node {
        LogicalPlan::Join(semi) if filters_left_rows(&semi) => {
            match push_into(&semi.left, &semi)? {
                Some(plan) => Ok(Transformed::yes(plan)),
                None => Ok(Transformed::no(LogicalPlan::Join(semi))),
            }
        }
        other => Ok(Transformed::no(other)),
    })?;
    Ok(pushed.data)
}

/// Joins whose output is a subset of their left input's rows, decided row
/// by row from that row's columns (and the right input as a whole).
fn filters_left_rows(join: &Join) -> bool {
    matches!(join.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
}

/// The columns of `semi`'s left input that its condition reads.
fn left_columns(semi: &Join) -> HashSet<Column> {
    let left = semi.left.schema();
    let mut columns: HashSet<Column> = semi
        .on
        .iter()
        .flat_map(|(l, _)| l.column_refs())
        .cloned()
        .collect();
    if let Some(filter) = &semi.filter {
        columns.extend(
            filter
                .column_refs()
                .into_iter()
                .filter(|c| left.has_column(c))
                .cloned(),
        );
    }
    columns
}

/// `semi` with its left input replaced by `input`, pushed further down
/// when it can go.
fn place(semi: &Join, input: Arc<LogicalPlan>) -> DfResult<LogicalPlan> {
    if let Some(plan) = push_into(&input, semi)? {
        return Ok(plan);
    }
    with_inputs(semi, input, Arc::clone(&semi.right))
}

/// `join` (its condition and kind) over new inputs.
fn with_inputs(
    join: &Join,
    left: Arc<LogicalPlan>,
    right: Arc<LogicalPlan>,
) -> DfResult<LogicalPlan> {
    Ok(LogicalPlan::Join(Join::try_new(
        left,
        right,
        join.on.clone(),
        join.filter.clone(),
        join.join_type,
        join.join_constraint,
        join.null_equality,
        join.null_aware,
    )?))
}

/// `semi` applied below `input` (its left input, or a plan with the same
/// columns), or `None` when it cannot go below `input`'s root.
fn push_into(input: &LogicalPlan, semi: &Join) -> DfResult<Option<LogicalPlan>> {
    let needed = left_columns(semi);
    if needed.is_empty() {
        return Ok(None);
    }
    match input {
        LogicalPlan::Projection(p) if passes_through(p, &needed) => {
            let below = place(semi, Arc::clone(&p.input))?;
            Ok(Some(LogicalPlan::Projection(Projection::try_new(
                p.expr.clone(),
                Arc::new(below),
            )?)))
        }
        LogicalPlan::Join(join) => {
            let within = |side: &LogicalPlan| needed.iter().all(|c| side.schema().has_column(c));
            // A side may be filtered first when every row of it that the
            // join emits carries its own values: both sides of an inner
            // join, the preserved side of an outer one.
            let (left_ok, right_ok) = match join.join_type {
                JoinType::Inner => (true, true),
                JoinType::Left => (true, false),
                JoinType::Right => (false, true),
                _ => (false, false),
            };
            let (left, right) = if left_ok && within(&join.left) {
                (
                    Arc::new(place(semi, Arc::clone(&join.left))?),
                    Arc::clone(&join.right),
                )
            } else if right_ok && within(&join.right) {
                (
                    Arc::clone(&join.left),
                    Arc::new(place(semi, Arc::clone(&join.right))?),
                )
            } else {
                return Ok(None);
            };
            with_inputs(join, left, right).map(Some)
        }
        _ => Ok(None),
    }
}

/// Whether projection `p` outputs each of `columns` as the input column of
/// the same name (so a condition on them reads the same values below it).
fn passes_through(p: &Projection, columns: &HashSet<Column>) -> bool {
    columns.iter().all(|c| {
        p.expr
            .iter()
            .any(|e| matches!(e, Expr::Column(col) if col == c))
    })
}

#[cfg(test)]
mod tests;
