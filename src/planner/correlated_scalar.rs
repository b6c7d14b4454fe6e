//! Correlated scalar subqueries that DataFusion cannot decorrelate: an
//! aggregate over rows correlated by something other than equalities,
//! `(SELECT count(*) FROM s WHERE s.y < t.x)`.
//!
//! DataFusion's `scalar_subquery_to_join` groups the subquery by its
//! correlated columns, which only works for `inner_col = outer_expr`. For
//! the rest this pass (run before DataFusion's optimizer) computes the
//! subquery once per distinct value of the outer columns it reads (the
//! *domain*), and joins the result back:
//!
//! ```text
//! outer ⟕ (Aggregate[group by d] ( Distinct(outer cols) AS d
//!                                   ⟕ subquery rows (+ __ffq_row) ON correlation ))
//!       ON outer cols IS NOT DISTINCT FROM d
//! ```
//!
//! Every aggregate gets `FILTER (WHERE __ffq_row IS NOT NULL)`, so an outer
//! value without matching rows aggregates the empty set: `count` is 0,
//! `sum` NULL, as the subquery itself would answer. Only the shape
//! `[Projection] ← Aggregate without GROUP BY ← body` is rewritten (one row
//! per outer row, whatever the data); another correlated scalar subquery
//! that DataFusion cannot decorrelate either (`ORDER BY y LIMIT 1` under a
//! non-equality correlation) is rejected as not supported, naming it.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion_common::alias::AliasGenerator;
use datafusion_common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion_common::{Column, DataFusionError, NullEquality, Result as DfResult};
use datafusion_expr::expr::AggregateFunction;
use datafusion_expr::expr_rewriter::NamePreserver;
use datafusion_expr::logical_plan::{Aggregate, Projection};
use datafusion_expr::utils::conjunction;
use datafusion_expr::{lit, Expr, JoinType, LogicalPlan, LogicalPlanBuilder, Subquery};
use datafusion_optimizer::decorrelate::PullUpCorrelatedExpr;

use super::mark_subqueries::requalify;

use crate::error::Result;

/// `plan` with its correlated aggregate scalar subqueries that DataFusion
/// cannot decorrelate joined in through their domain (see the module doc).
pub fn rewrite_correlated_scalar_subqueries(plan: LogicalPlan) -> Result<LogicalPlan> {
    let aliases = AliasGenerator::new();
    let rewritten = plan.transform_up_with_subqueries(|node| rewrite_node(node, &aliases))?;
    Ok(rewritten.data)
}

fn rewrite_node(node: LogicalPlan, aliases: &AliasGenerator) -> DfResult<Transformed<LogicalPlan>> {
    match node {
        LogicalPlan::Projection(p) if p.expr.iter().any(has_scalar_subquery) => {
            let preserver = NamePreserver::new_for_projection();
            let mut joins = DomainJoins::new(Arc::unwrap_or_clone(p.input), aliases);
            let mut changed = false;
            let exprs = p
                .expr
                .into_iter()
                .map(|e| {
                    let name = preserver.save(&e);
                    let rewritten = joins.rewrite(e)?;
                    changed |= rewritten.transformed;
                    Ok(name.restore(rewritten.data))
                })
                .collect::<DfResult<Vec<_>>>()?;
            let projection = Projection::try_new(exprs, Arc::new(joins.plan))?;
            Ok(Transformed::new_transformed(
                LogicalPlan::Projection(projection),
                changed,
            ))
        }
        LogicalPlan::Filter(f) if has_scalar_subquery(&f.predicate) => {
            let columns = f.input.schema().columns();
            let mut joins = DomainJoins::new(Arc::unwrap_or_clone(f.input), aliases);
            let predicate = joins.rewrite(f.predicate)?;
            let changed = predicate.transformed;
            let plan = LogicalPlanBuilder::from(joins.plan)
                .filter(predicate.data)?
                .project(columns.into_iter().map(Expr::Column))?
                .build()?;
            Ok(Transformed::new_transformed(plan, changed))
        }
        other => Ok(Transformed::no(other)),
    }
}

fn has_scalar_subquery(expr: &Expr) -> bool {
    expr.exists(|e| Ok(matches!(e, Expr::ScalarSubquery(sq) if !sq.outer_ref_columns.is_empty())))
        .unwrap_or(false)
}

/// The input of a node, growing a left join per subquery rewritten.
struct DomainJoins<'a> {
    plan: LogicalPlan,
    aliases: &'a AliasGenerator,
}

/// A correlated aggregate subquery taken apart.
struct Parts {
    /// The expressions over the aggregate's output (its one column).
    value: Expr,
    aggregate: Aggregate,
    /// The aggregate's input without its correlated filters.
    rows: LogicalPlan,
    /// The correlated filters, outer references made plain columns.
    correlation: Vec<Expr>,
}

impl<'a> DomainJoins<'a> {
    fn new(plan: LogicalPlan, aliases: &'a AliasGenerator) -> Self {
        DomainJoins { plan, aliases }
    }

    fn rewrite(&mut self, expr: Expr) -> DfResult<Transformed<Expr>> {
        expr.transform_up(|e| match e {
            Expr::ScalarSubquery(sq) if !sq.outer_ref_columns.is_empty() => {
                match self.join_domain(&sq)? {
                    Some(value) => Ok(Transformed::yes(value)),
                    None => Ok(Transformed::no(Expr::ScalarSubquery(sq))),
                }
            }
            other => Ok(Transformed::no(other)),
        })
    }

    /// Joins the subquery's value per outer row into the plan and returns
    /// its column; `None` to leave the subquery to DataFusion.
    fn join_domain(&mut self, sq: &Subquery) -> DfResult<Option<Expr>> {
        if datafusion_can_decorrelate(sq) {
            return Ok(None);
        }
        let Some(parts) = take_apart(sq)? else {
            return Err(DataFusionError::NotImplemented(format!(
                "correlated scalar subquery reading {}: only an aggregate without GROUP BY \
                 (such as count(*) or max(x)) over the correlated rows, or a \
                 correlation by equalities, can be joined in",
                sq.outer_ref_columns
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let row_columns: BTreeSet<Column> = parts.rows.schema().columns().into_iter().collect();
        let outer: Vec<Column> = {
            let mut cols = BTreeSet::new();
            for c in &parts.correlation {
                cols.extend(c.column_refs().into_iter().cloned());
            }
            cols.into_iter()
                .filter(|c| !row_columns.contains(c))
                .collect()
        };
        if outer.is_empty() || !outer.iter().all(|c| self.plan.schema().has_column(c)) {
            return Ok(None);
        }
        let name = self.aliases.next("__ffq_scalar_sq");
        let domain_alias = format!("{name}_domain");
        let value_alias = format!("{name}_value");
        let key = |i: usize| format!("c{i}");

        let domain = LogicalPlanBuilder::from(self.plan.clone())
            .project(
                outer
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Expr::Column(c.clone()).alias(key(i))),
            )?
            .distinct()?
            .alias(domain_alias.clone())?
            .build()?;
        let Ok(rows) = LogicalPlanBuilder::from(parts.rows)
            .project(
                row_columns
                    .iter()
                    .cloned()
                    .map(Expr::Column)
                    .chain([lit(true).alias(ROW_MARKER)]),
            )
            .and_then(|b| b.alias(name.clone()))
            .and_then(|b| b.build())
        else {
            // Columns of the same name from different tables cannot be
            // re-qualified by one alias.
            return Ok(None);
        };
        let to_rows = |e: Expr| requalify(e, &row_columns, &name);
        let condition = conjunction(
            parts
                .correlation
                .into_iter()
                .map(|c| {
                    let c = to_rows(c)?;
                    c.transform(|e| match e {
                        Expr::Column(col) => match outer.iter().position(|o| *o == col) {
                            Some(i) => Ok(Transformed::yes(Expr::Column(Column::new(
                                Some(domain_alias.clone()),
                                key(i),
                            )))),
                            None => Ok(Transformed::no(Expr::Column(col))),
                        },
                        other => Ok(Transformed::no(other)),
                    })
                    .data()
                })
                .collect::<DfResult<Vec<_>>>()?,
        );
        let joined = LogicalPlanBuilder::from(domain)
            .join_on(rows, JoinType::Left, condition)?
            .build()?;

        // The aggregates see only matched rows, and keep their names so
        // that the expressions above them still find them.
        let matched = Expr::Column(Column::new(Some(name.clone()), ROW_MARKER)).is_not_null();
        let preserver = NamePreserver::new_for_projection();
        let aggr = parts
            .aggregate
            .aggr_expr
            .iter()
            .map(|e| {
                let saved = preserver.save(e);
                let filtered = to_rows(e.clone())?
                    .transform(|e| match e {
                        Expr::AggregateFunction(mut f) => {
                            only_matched(&mut f, &matched);
                            Ok(Transformed::yes(Expr::AggregateFunction(f)))
                        }
                        other => Ok(Transformed::no(other)),
                    })
                    .data()?;
                Ok(saved.restore(filtered))
            })
            .collect::<DfResult<Vec<_>>>()?;
        let group: Vec<Expr> = (0..outer.len())
            .map(|i| Expr::Column(Column::new(Some(domain_alias.clone()), key(i))))
            .collect();
        let aggregated = Aggregate::try_new(Arc::new(joined), group.clone(), aggr)?;
        let value = LogicalPlanBuilder::from(LogicalPlan::Aggregate(aggregated))
            .project(group.into_iter().chain([parts.value.alias(VALUE)]))?
            .alias(value_alias.clone())?
            .build()?;
        let value_keys: Vec<Column> = (0..outer.len())
            .map(|i| Column::new(Some(value_alias.clone()), key(i)))
            .collect();
        // A NULL outer value has its own domain row: the keys match NULLs.
        self.plan = LogicalPlanBuilder::from(self.plan.clone())
            .join_detailed(
                value,
                JoinType::Left,
                (outer, value_keys),
                None,
                NullEquality::NullEqualsNull,
            )?
            .build()?;
        Ok(Some(Expr::Column(Column::new(Some(value_alias), VALUE))))
    }
}

const ROW_MARKER: &str = "__ffq_row";
const VALUE: &str = "__ffq_value";

/// Whether DataFusion's own pull-up (as `scalar_subquery_to_join` runs it)
/// takes the subquery; it handles equality correlation, with the count
/// bug, better than a domain join.
fn datafusion_can_decorrelate(sq: &Subquery) -> bool {
    let mut pull_up = PullUpCorrelatedExpr::new().with_need_handle_count_bug(true);
    match sq.subquery.as_ref().clone().rewrite(&mut pull_up) {
        Ok(_) => pull_up.can_pull_up,
        Err(_) => false,
    }
}

/// `[Projection] ← Aggregate (no GROUP BY) ← body` with the body's
/// correlated filters pulled out; `None` for any other shape.
fn take_apart(sq: &Subquery) -> DfResult<Option<Parts>> {
    let (value, aggregate) = match sq.subquery.as_ref() {
        LogicalPlan::Projection(p) => match (p.expr.as_slice(), p.input.as_ref()) {
            ([e], LogicalPlan::Aggregate(a)) => (e.clone().unalias(), a.clone()),
            _ => return Ok(None),
        },
        LogicalPlan::Aggregate(a) if a.aggr_expr.len() == 1 => {
            let field = a.schema.qualified_field(0);
            (Expr::Column(Column::from(field)), a.clone())
        }
        _ => return Ok(None),
    };
    let outer_above_body = value.contains_outer()
        || aggregate
            .aggr_expr
            .iter()
            .any(|e| e.contains_outer() || has_any_subquery(e));
    if !aggregate.group_expr.is_empty() || outer_above_body || has_any_subquery(&value) {
        return Ok(None);
    }
    let mut pull_up = PullUpCorrelatedExpr::new();
    let rows = aggregate.input.as_ref().clone().rewrite(&mut pull_up)?.data;
    if !pull_up.can_pull_up
        || pull_up.join_filters.is_empty()
        || !rows.all_out_ref_exprs().is_empty()
    {
        return Ok(None);
    }
    Ok(Some(Parts {
        value,
        aggregate,
        rows,
        correlation: pull_up.join_filters,
    }))
}

fn has_any_subquery(e: &Expr) -> bool {
    e.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
        ))
    })
    .unwrap_or(true)
}

/// Adds `matched` to the aggregate's FILTER.
fn only_matched(f: &mut AggregateFunction, matched: &Expr) {
    let filter = match f.params.filter.take() {
        Some(existing) => existing.as_ref().clone().and(matched.clone()),
        None => matched.clone(),
    };
    f.params.filter = Some(Box::new(filter));
}

#[cfg(test)]
mod tests;
