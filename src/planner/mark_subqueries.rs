//! `EXISTS (subquery)` and `x [NOT] IN (subquery)` inside expressions — the
//! SELECT list, CASE branches, function arguments, aggregate arguments,
//! GROUP BY keys and window functions, and `IN` under `NOT`/`CASE`/`IS
//! NULL` in a WHERE clause —
//! become mark joins, with SQL's three-valued `IN`.
//!
//! DataFusion decorrelates these subqueries only in a filter, and there as
//! a mark that is never NULL, so `x NOT IN (SELECT y ...)` under a `NOT`
//! or an `OR` reads "no match" as "not in" even when x is NULL or the
//! subquery yields a NULL, where SQL says unknown. This pass runs before
//! DataFusion's optimizer and computes the standard answer:
//!
//! ```text
//! x IN (S) = TRUE    when a row of S equals x
//!            FALSE   when S is empty (for this outer row)
//!            NULL    when x is NULL, or a row of S is NULL
//!            FALSE   otherwise;        x NOT IN (S) = NOT (x IN (S))
//! ```
//!
//! from up to three marks, each a LeftMark join of the outer rows with S
//! under the subquery's correlation (pulled up by DataFusion's
//! `PullUpCorrelatedExpr`, as its own rule does): *match* (`x = y`),
//! *non-empty* and *has NULL* (`y IS NULL`). A mark whose case nullability
//! rules out is left out, so `IN` over non-nullable columns is one join.
//! When S is uncorrelated, non-empty and has-NULL (and `EXISTS`) are one
//! value for every row: they become uncorrelated scalar subqueries, which
//! the engine runs first, rather than joins without keys.
//!
//! What stays DataFusion's: top-level `WHERE` conjuncts `[NOT] IN` and
//! `[NOT] EXISTS` (semi and anti joins; the `NOT IN` anti join is
//! null-aware), `IN` reached from the top of a `WHERE` through `AND`/`OR`
//! only (there a NULL filters the row out exactly as FALSE does), and
//! `EXISTS` inside `WHERE` expressions (never NULL). A subquery whose
//! correlation cannot be pulled up (or a correlated `IN` over a `LIMIT`,
//! which the pull-up would no longer apply per outer row) is left in place
//! and reported as not supported when lowered.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion_common::alias::AliasGenerator;
use datafusion_common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion_common::{Column, Result as DfResult, ScalarValue, Spans};
use datafusion_expr::expr::{Exists, InSubquery};
use datafusion_expr::expr_rewriter::NamePreserver;
use datafusion_expr::logical_plan::{Aggregate, Projection, Window};
use datafusion_expr::utils::{conjunction, disjunction, split_conjunction_owned};
use datafusion_expr::{
    lit, not, when, BinaryExpr, Expr, ExprSchemable, JoinType, LogicalPlan, LogicalPlanBuilder,
    Operator, Subquery,
};
use datafusion_functions_aggregate::count::count;
use datafusion_optimizer::decorrelate::PullUpCorrelatedExpr;

use crate::error::Result;

/// `plan` with its `EXISTS` / `IN (subquery)` expressions (other than the
/// ones DataFusion's own rule decorrelates correctly) turned into mark
/// joins; see the module doc.
pub fn rewrite_subqueries_in_expressions(plan: LogicalPlan) -> Result<LogicalPlan> {
    let aliases = AliasGenerator::new();
    let rewritten = plan.transform_up_with_subqueries(|node| rewrite_node(node, &aliases))?;
    Ok(rewritten.data)
}

fn rewrite_node(node: LogicalPlan, aliases: &AliasGenerator) -> DfResult<Transformed<LogicalPlan>> {
    match node {
        LogicalPlan::Projection(p) if p.expr.iter().any(has_predicate_subquery) => {
            let mut marks = MarkJoins::new(Arc::unwrap_or_clone(p.input), aliases);
            let exprs = marks.rewrite_named(p.expr)?;
            let projection = Projection::try_new(exprs, Arc::new(marks.plan))?;
            Ok(Transformed::yes(LogicalPlan::Projection(projection)))
        }
        LogicalPlan::Aggregate(a)
            if a.group_expr.iter().any(has_predicate_subquery)
                || a.aggr_expr.iter().any(has_predicate_subquery) =>
        {
            let mut marks = MarkJoins::new(Arc::unwrap_or_clone(a.input), aliases);
            let group = marks.rewrite_named(a.group_expr)?;
            let aggr = marks.rewrite_named(a.aggr_expr)?;
            let aggregate = Aggregate::try_new(Arc::new(marks.plan), group, aggr)?;
            Ok(Transformed::yes(LogicalPlan::Aggregate(aggregate)))
        }
        LogicalPlan::Window(w) if w.window_expr.iter().any(has_predicate_subquery) => {
            // A window passes its input's columns through: the marks are
            // projected away above it.
            let mut columns = w.input.schema().columns();
            let mut marks = MarkJoins::new(Arc::unwrap_or_clone(w.input), aliases);
            let exprs = marks.rewrite_named(w.window_expr)?;
            let count = exprs.len();
            let window = Window::try_new(exprs, Arc::new(marks.plan))?;
            let all = window.schema.columns();
            columns.extend(all[all.len() - count..].iter().cloned());
            let plan = LogicalPlanBuilder::from(LogicalPlan::Window(window))
                .project(columns.into_iter().map(Expr::Column))?
                .build()?;
            Ok(Transformed::yes(plan))
        }
        LogicalPlan::Filter(f) if needs_marks_in_filter(&f.predicate) => {
            let columns = f.input.schema().columns();
            let mut marks = MarkJoins::new(Arc::unwrap_or_clone(f.input), aliases);
            let conjuncts = split_conjunction_owned(f.predicate)
                .into_iter()
                .map(|c| match is_not_in(&c) {
                    true => Ok(c),
                    false => marks.rewrite_filter_term(c),
                })
                .collect::<DfResult<Vec<_>>>()?;
            let mut filtered = LogicalPlanBuilder::from(marks.plan);
            if let Some(predicate) = conjunction(conjuncts) {
                filtered = filtered.filter(predicate)?;
            }
            // The marks are the filter's business: its output keeps the
            // input's columns.
            let plan = filtered
                .project(columns.into_iter().map(Expr::Column))?
                .build()?;
            Ok(Transformed::yes(plan))
        }
        other => Ok(Transformed::no(other)),
    }
}

fn has_predicate_subquery(expr: &Expr) -> bool {
    expr.exists(|e| Ok(matches!(e, Expr::Exists(_) | Expr::InSubquery(_))))
        .unwrap_or(false)
}

/// Whether a filter predicate holds an `IN (subquery)` whose NULL would be
/// read differently from FALSE (see [`MarkJoins::rewrite_filter_term`]).
fn needs_marks_in_filter(predicate: &Expr) -> bool {
    fn needs(e: &Expr) -> bool {
        match e {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::And | Operator::Or,
                right,
            }) => needs(left) || needs(right),
            Expr::InSubquery(i) if !i.negated => false,
            other => other
                .exists(|e| Ok(matches!(e, Expr::InSubquery(_))))
                .unwrap_or(false),
        }
    }
    datafusion_expr::utils::split_conjunction(predicate)
        .into_iter()
        .any(|c| !is_not_in(c) && needs(c))
}

/// A top-level `NOT IN` conjunct: DataFusion's null-aware anti join.
fn is_not_in(conjunct: &Expr) -> bool {
    match conjunct {
        Expr::Not(inner) => matches!(inner.as_ref(), Expr::InSubquery(_)),
        Expr::InSubquery(i) => i.negated,
        _ => false,
    }
}

/// The input of a node, growing a mark join per subquery rewritten.
struct MarkJoins<'a> {
    plan: LogicalPlan,
    aliases: &'a AliasGenerator,
}

impl<'a> MarkJoins<'a> {
    fn new(plan: LogicalPlan, aliases: &'a AliasGenerator) -> Self {
        MarkJoins { plan, aliases }
    }

    /// `exprs` rewritten by [`Self::rewrite`], each keeping its name (the
    /// node's output columns).
    fn rewrite_named(&mut self, exprs: Vec<Expr>) -> DfResult<Vec<Expr>> {
        let preserver = NamePreserver::new_for_projection();
        exprs
            .into_iter()
            .map(|e| {
                let name = preserver.save(&e);
                Ok(name.restore(self.rewrite(e)?))
            })
            .collect()
    }

    /// `expr` with every `EXISTS` and `IN (subquery)` read from marks.
    fn rewrite(&mut self, expr: Expr) -> DfResult<Expr> {
        expr.transform_up(|e| match e {
            Expr::Exists(exists) => self.exists(exists),
            Expr::InSubquery(in_subquery) => self.in_subquery(in_subquery),
            other => Ok(Transformed::no(other)),
        })
        .data()
    }

    /// A term of a WHERE clause: an `IN (subquery)` reached from the top
    /// through `AND`/`OR` alone keeps DataFusion's mark, since NULL and
    /// FALSE both drop the row there; elsewhere (under `NOT`, `CASE`, `IS
    /// NULL`, a comparison) it needs the three-valued answer. `EXISTS` is
    /// never NULL and stays DataFusion's.
    fn rewrite_filter_term(&mut self, term: Expr) -> DfResult<Expr> {
        match term {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: op @ (Operator::And | Operator::Or),
                right,
            }) => Ok(Expr::BinaryExpr(BinaryExpr {
                left: Box::new(self.rewrite_filter_term(*left)?),
                op,
                right: Box::new(self.rewrite_filter_term(*right)?),
            })),
            Expr::InSubquery(ref i) if !i.negated => Ok(term),
            other => other
                .transform_up(|e| match e {
                    Expr::InSubquery(in_subquery) => self.in_subquery(in_subquery),
                    other => Ok(Transformed::no(other)),
                })
                .data(),
        }
    }

    fn exists(&mut self, exists: Exists) -> DfResult<Transformed<Expr>> {
        let sub = Arc::clone(&exists.subquery.subquery);
        let found = if is_correlated(&exists.subquery) {
            self.mark(&sub, None)?
        } else {
            Some(uncorrelated_exists(&sub, None)?)
        };
        Ok(match found {
            Some(mark) if exists.negated => Transformed::yes(not(mark)),
            Some(mark) => Transformed::yes(mark),
            None => Transformed::no(Expr::Exists(exists)),
        })
    }

    fn in_subquery(&mut self, in_subquery: InSubquery) -> DfResult<Transformed<Expr>> {
        let sub = Arc::clone(&in_subquery.subquery.subquery);
        let correlated = is_correlated(&in_subquery.subquery);
        if correlated && has_limit(&sub) {
            // The correlation would be pulled above the LIMIT, which then
            // no longer limits each outer row's rows.
            return Ok(Transformed::no(Expr::InSubquery(in_subquery)));
        }
        let x = in_subquery.expr.as_ref().clone();
        let Some(matched) = self.mark(&sub, Some(&x))? else {
            return Ok(Transformed::no(Expr::InSubquery(in_subquery)));
        };
        let y = Expr::Column(Column::from(sub.schema().qualified_field(0)));
        let mut unknown = Vec::new();
        if x.nullable(self.plan.schema())? {
            let non_empty = if correlated {
                self.mark(&sub, None)?
            } else {
                Some(uncorrelated_exists(&sub, None)?)
            };
            let Some(non_empty) = non_empty else {
                return Ok(Transformed::no(Expr::InSubquery(in_subquery)));
            };
            unknown.push(x.clone().is_null().and(non_empty));
        }
        if sub.schema().field(0).is_nullable() {
            let has_null = if correlated {
                let nulls = LogicalPlanBuilder::from(sub.as_ref().clone())
                    .filter(y.clone().is_null())?
                    .build()?;
                self.mark(&Arc::new(nulls), None)?
            } else {
                Some(uncorrelated_exists(&sub, Some(y.is_null()))?)
            };
            let Some(has_null) = has_null else {
                return Ok(Transformed::no(Expr::InSubquery(in_subquery)));
            };
            unknown.push(has_null);
        }
        let value = match disjunction(unknown) {
            None => matched,
            Some(unknown) => when(matched, lit(true))
                .when(unknown, lit(ScalarValue::Boolean(None)))
                .otherwise(lit(false))?,
        };
        Ok(Transformed::yes(if in_subquery.negated {
            not(value)
        } else {
            value
        }))
    }

    /// Joins the outer rows with `sub` as a LeftMark join under the
    /// subquery's correlation (and `x = y`, its first column, for `IN`),
    /// and returns the mark column. `None` when the correlation cannot be
    /// pulled out of the subquery.
    fn mark(&mut self, sub: &Arc<LogicalPlan>, x: Option<&Expr>) -> DfResult<Option<Expr>> {
        let in_predicate = match x {
            Some(x) => match sub.head_output_expr()? {
                Some(y) => Some(x.clone().eq(y)),
                None => return Ok(None),
            },
            None => None,
        };
        let mut pull_up = PullUpCorrelatedExpr::new()
            .with_in_predicate_opt(in_predicate)
            .with_exists_sub_query(x.is_none());
        let pulled = sub.as_ref().clone().rewrite(&mut pull_up).data()?;
        if !pull_up.can_pull_up {
            return Ok(None);
        }
        let alias = self.aliases.next("__ffq_sq");
        let right = LogicalPlanBuilder::from(pulled)
            .alias(alias.clone())?
            .build()?;
        let correlated: BTreeSet<Column> = pull_up
            .correlated_subquery_cols_map
            .values()
            .flatten()
            .cloned()
            .collect();
        let mut conditions = Vec::new();
        if let Some(x) = x {
            let y = Column::new(Some(alias.clone()), right.schema().field(0).name());
            conditions.push(x.clone().eq(Expr::Column(y)));
        }
        for filter in pull_up.join_filters {
            conditions.push(requalify(filter, &correlated, &alias)?);
        }
        let condition = conjunction(conditions).unwrap_or_else(|| lit(true));
        self.plan = LogicalPlanBuilder::from(self.plan.clone())
            .join_on(right, JoinType::LeftMark, Some(condition))?
            .build()?;
        Ok(Some(Expr::Column(Column::new(Some(alias), "mark"))))
    }
}

fn has_limit(plan: &LogicalPlan) -> bool {
    plan.exists(|n| Ok(matches!(n, LogicalPlan::Limit(_))))
        .unwrap_or(true)
}

fn is_correlated(subquery: &Subquery) -> bool {
    !subquery.outer_ref_columns.is_empty()
}

/// `expr` with its references to `columns` (of a subquery) renamed to the
/// alias the subquery is joined under.
pub(super) fn requalify(expr: Expr, columns: &BTreeSet<Column>, alias: &str) -> DfResult<Expr> {
    expr.transform(|e| match e {
        Expr::Column(c) if columns.contains(&c) => Ok(Transformed::yes(Expr::Column(Column::new(
            Some(alias.to_string()),
            c.name,
        )))),
        other => Ok(Transformed::no(other)),
    })
    .data()
}

/// `EXISTS (SELECT * FROM sub [WHERE filter])` for an uncorrelated `sub`:
/// a scalar subquery of one Boolean, which the engine runs once before
/// the query (see `planner::subquery`).
fn uncorrelated_exists(sub: &Arc<LogicalPlan>, filter: Option<Expr>) -> DfResult<Expr> {
    let mut plan = LogicalPlanBuilder::from(sub.as_ref().clone());
    if let Some(filter) = filter {
        plan = plan.filter(filter)?;
    }
    let counted = plan
        .limit(0, Some(1))?
        .aggregate(Vec::<Expr>::new(), vec![count(lit(1))])?
        .build()?;
    let rows = Expr::Column(Column::from(counted.schema().qualified_field(0)));
    let exists = LogicalPlanBuilder::from(counted)
        .project(vec![rows.gt(lit(0i64)).alias("exists")])?
        .build()?;
    Ok(Expr::ScalarSubquery(Subquery {
        subquery: Arc::new(exists),
        outer_ref_columns: vec![],
        spans: Spans::new(),
    }))
}

#[cfg(test)]
mod tests;
