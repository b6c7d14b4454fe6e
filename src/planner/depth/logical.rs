//! The optimized logical plan: `AND`/`OR` chains balanced again (filter
//! pushdown rebuilds conjunctions as chains), plan and expression nesting
//! checked before lowering.

use datafusion_common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion_expr::{BinaryExpr, Expr, LogicalPlan, Operator};

use ffq_dataflow::limits::{too_deep, MAX_EXPR_DEPTH, MAX_PLAN_DEPTH};

use super::{balanced, BALANCE_FROM};
use crate::error::{Error, Result};

/// Balances every `AND`/`OR` chain of more than `BALANCE_FROM` terms in
/// the expressions of `plan` and its subqueries. Run it on the deep stack.
pub fn balance_plan(plan: LogicalPlan) -> Result<LogicalPlan> {
    let balanced = plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|e| e.transform_down(balance_and_or))
    })?;
    Ok(balanced.data)
}

fn balance_and_or(expr: Expr) -> datafusion_common::Result<Transformed<Expr>> {
    let op = match &expr {
        Expr::BinaryExpr(BinaryExpr {
            op: op @ (Operator::And | Operator::Or),
            ..
        }) => *op,
        _ => return Ok(Transformed::no(expr)),
    };
    let mut terms = 0;
    let mut stack = vec![&expr];
    while let Some(e) = stack.pop() {
        match e {
            Expr::BinaryExpr(b) if b.op == op => stack.extend([&*b.left, &*b.right]),
            _ => terms += 1,
        }
    }
    if terms <= BALANCE_FROM {
        return Ok(Transformed::no(expr));
    }
    let mut terms = Vec::with_capacity(terms);
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match e {
            Expr::BinaryExpr(b) if b.op == op => {
                stack.push(*b.right);
                stack.push(*b.left);
            }
            term => terms.push(term),
        }
    }
    let tree = balanced(terms, |a, b| {
        Expr::BinaryExpr(BinaryExpr::new(a.into(), op, b.into()))
    });
    tree.map(Transformed::yes)
        .ok_or_else(|| datafusion_common::DataFusionError::Internal("an empty chain".into()))
}

/// Refuses `plan` when operators nest deeper than `MAX_PLAN_DEPTH` or an
/// expression deeper than `MAX_EXPR_DEPTH`. Recurses at most to the
/// bounds; expressions are walked without recursion.
pub fn check_plan(plan: &LogicalPlan) -> Result<()> {
    check_plan_at(plan, 1)
}

fn check_plan_at(plan: &LogicalPlan, depth: usize) -> Result<()> {
    if depth > MAX_PLAN_DEPTH {
        return Err(Error::Plan(too_deep("plan", depth, MAX_PLAN_DEPTH)));
    }
    let mut failure = None;
    plan.apply_expressions(|root| {
        let mut exprs = vec![(root, 1usize)];
        while let Some((e, d)) = exprs.pop() {
            if d > MAX_EXPR_DEPTH {
                failure = Some(Error::Plan(too_deep("expression", d, MAX_EXPR_DEPTH)));
                return Ok(TreeNodeRecursion::Stop);
            }
            if let Some(sub) = subquery_plan(e) {
                if let Err(err) = check_plan_at(sub, depth + 1) {
                    failure = Some(err);
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
            e.apply_children(|c| {
                exprs.push((c, d + 1));
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if let Some(err) = failure {
        return Err(err);
    }
    plan.inputs()
        .into_iter()
        .try_for_each(|input| check_plan_at(input, depth + 1))
}

fn subquery_plan(e: &Expr) -> Option<&LogicalPlan> {
    match e {
        Expr::ScalarSubquery(s)
        | Expr::Exists(datafusion_expr::expr::Exists { subquery: s, .. }) => Some(&s.subquery),
        Expr::InSubquery(i) => Some(&i.subquery.subquery),
        _ => None,
    }
}
