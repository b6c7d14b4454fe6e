//! Row-count estimates of logical plans, for join decisions (which side to
//! build, whether to broadcast). Rough on purpose: only relative sizes
//! matter, and an unknown size is treated as large.

use datafusion_expr::{JoinType, LogicalPlan};

use super::values::LiteralRows;
use crate::catalog::FfqTableSource;

/// A size we know nothing about.
pub const UNKNOWN_ROWS: f64 = 1e12;

/// Estimated output rows of `plan`.
pub fn estimate_rows(plan: &LogicalPlan) -> f64 {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let rows = scan
                .source
                .as_ref()
                .downcast_ref::<FfqTableSource>()
                .and_then(|s| s.entry.row_count)
                .map(|r| r as f64)
                .unwrap_or(UNKNOWN_ROWS);
            // Pushed-down filters (Parquet) select a part of the rows.
            let rows = rows * 0.5f64.powi(scan.filters.len().min(3) as i32);
            match scan.fetch {
                Some(f) => rows.min(f as f64),
                None => rows,
            }
        }
        LogicalPlan::Filter(f) => estimate_rows(&f.input) * 0.5,
        LogicalPlan::Projection(p) => estimate_rows(&p.input),
        LogicalPlan::SubqueryAlias(a) => estimate_rows(&a.input),
        LogicalPlan::Sort(s) => {
            let rows = estimate_rows(&s.input);
            s.fetch.map(|f| rows.min(f as f64)).unwrap_or(rows)
        }
        LogicalPlan::Limit(l) => {
            let rows = estimate_rows(&l.input);
            match l.get_fetch_type() {
                Ok(datafusion_expr::logical_plan::FetchType::Literal(Some(f))) => {
                    rows.min(f as f64)
                }
                _ => rows,
            }
        }
        LogicalPlan::Aggregate(a) => {
            if a.group_expr.is_empty() {
                1.0
            } else {
                (estimate_rows(&a.input) * 0.5).max(1.0)
            }
        }
        LogicalPlan::Distinct(d) => estimate_rows(d.input()) * 0.5,
        LogicalPlan::Join(j) => {
            let (l, r) = (estimate_rows(&j.left), estimate_rows(&j.right));
            match j.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => l,
                JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => r,
                _ if j.on.is_empty() => l * r,
                _ => l.max(r),
            }
        }
        LogicalPlan::Union(u) => u.inputs.iter().map(|i| estimate_rows(i)).sum(),
        LogicalPlan::Values(v) => v.values.len() as f64,
        LogicalPlan::Extension(e) => match e.node.as_any().downcast_ref::<LiteralRows>() {
            Some(v) => v.rows.len() as f64,
            None => UNKNOWN_ROWS,
        },
        LogicalPlan::EmptyRelation(e) => f64::from(u8::from(e.produce_one_row)),
        LogicalPlan::Window(w) => estimate_rows(&w.input),
        LogicalPlan::Repartition(r) => estimate_rows(&r.input),
        _ => UNKNOWN_ROWS,
    }
}
