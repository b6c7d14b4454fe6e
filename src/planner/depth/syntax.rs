//! The SQL syntax tree right after parsing: long `AND`/`OR`/`UNION` chains
//! balanced, expression nesting measured before anything plans it.

use std::ops::ControlFlow;

use datafusion_sql::parser::{CopyToSource, Statement};
use sqlparser::ast::{
    BinaryOperator, Expr, Query, SetExpr, SetOperator, SetQuantifier, Value, Values, VisitMut,
    VisitorMut,
};

use ffq_dataflow::limits::{too_deep, MAX_EXPR_DEPTH, MAX_EXPR_SUBQUERY_DEPTH, MAX_PLAN_DEPTH};

use super::{balanced, BALANCE_FROM};
use crate::error::{Error, Result};

/// Balances the long chains of `statement` and checks its expression
/// nesting against `MAX_EXPR_DEPTH` and its query nesting against
/// `MAX_PLAN_DEPTH`. Run it on the deep stack: the
/// syntax tree's own walks recurse.
pub fn check_statement(statement: &mut Statement) -> Result<()> {
    let mut visitor = Checker::default();
    let flow = match statement {
        Statement::Statement(s) => s.visit(&mut visitor),
        Statement::Explain(e) => return check_statement(&mut e.statement),
        Statement::CopyTo(c) => match &mut c.source {
            CopyToSource::Query(q) => q.visit(&mut visitor),
            CopyToSource::Relation(_) => ControlFlow::Continue(()),
        },
        Statement::CreateExternalTable(_) | Statement::Reset(_) => ControlFlow::Continue(()),
    };
    match flow {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Tracks the expression and query nesting of the walk; breaks with the
/// error once one passes its limit.
#[derive(Default)]
struct Checker {
    depth: usize,
    queries: usize,
    /// Subqueries inside expressions, nested: DataFusion's analyzer and
    /// optimizer take time exponential in this nesting.
    expr_subqueries: usize,
}

impl VisitorMut for Checker {
    type Break = Error;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<Error> {
        balance_unions(&mut query.body);
        self.queries += 1;
        if self.queries > MAX_PLAN_DEPTH {
            return ControlFlow::Break(Error::Sql(too_deep(
                "subquery",
                self.queries,
                MAX_PLAN_DEPTH,
            )));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<Error> {
        self.queries -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Error> {
        balance_and_or(expr);
        if is_subquery(expr) {
            self.expr_subqueries += 1;
            if self.expr_subqueries > MAX_EXPR_SUBQUERY_DEPTH {
                return ControlFlow::Break(Error::Sql(too_deep(
                    "subquery-in-expression",
                    self.expr_subqueries,
                    MAX_EXPR_SUBQUERY_DEPTH,
                )));
            }
        }
        self.depth += 1;
        if self.depth > MAX_EXPR_DEPTH {
            return ControlFlow::Break(Error::Sql(too_deep(
                "expression",
                self.depth + chain_depth(expr),
                MAX_EXPR_DEPTH,
            )));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Error> {
        if is_subquery(expr) {
            self.expr_subqueries -= 1;
        }
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

fn is_subquery(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. }
    )
}

/// How much deeper the left spine of `expr` goes (for the error message:
/// a `+` chain reports its full length, not the limit plus one).
fn chain_depth(expr: &Expr) -> usize {
    let mut depth = 0;
    let mut e = expr;
    while let Expr::BinaryOp { left, .. } = e {
        depth += 1;
        e = left;
    }
    depth
}

/// A chain of one `AND` or `OR` longer than `BALANCE_FROM`, balanced.
fn balance_and_or(expr: &mut Expr) {
    let op = match expr {
        Expr::BinaryOp {
            op: op @ (BinaryOperator::And | BinaryOperator::Or),
            ..
        } => op.clone(),
        _ => return,
    };
    if chain_len(expr, |e| binary_sides(e, &op)) <= BALANCE_FROM {
        return;
    }
    let whole = std::mem::replace(expr, Expr::value(Value::Null));
    let terms = collect_terms(whole, |e| match e {
        Expr::BinaryOp { left, op: o, right } if o == op => Split::Link(*left, *right),
        other => Split::Term(other),
    });
    if let Some(tree) = balanced(terms, |a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: op.clone(),
        right: Box::new(b),
    }) {
        *expr = tree;
    }
}

/// A chain of one `UNION` kind longer than `BALANCE_FROM`, balanced.
/// (`EXCEPT` is not associative; `INTERSECT` chains are left alone.)
fn balance_unions(body: &mut SetExpr) {
    let quantifier = match body {
        SetExpr::SetOperation {
            op: SetOperator::Union,
            set_quantifier,
            ..
        } => *set_quantifier,
        _ => return,
    };
    if chain_len(body, |e| union_sides(e, quantifier)) <= BALANCE_FROM {
        return;
    }
    let placeholder = SetExpr::Values(Values {
        explicit_row: false,
        value_keyword: false,
        rows: Vec::new(),
    });
    let whole = std::mem::replace(body, placeholder);
    let terms = collect_terms(whole, |e| match e {
        SetExpr::SetOperation {
            left,
            op: SetOperator::Union,
            set_quantifier,
            right,
        } if set_quantifier == quantifier => Split::Link(*left, *right),
        other => Split::Term(other),
    });
    if let Some(tree) = balanced(terms, |a, b| SetExpr::SetOperation {
        left: Box::new(a),
        op: SetOperator::Union,
        set_quantifier: quantifier,
        right: Box::new(b),
    }) {
        *body = tree;
    }
}

fn binary_sides<'a>(e: &'a Expr, op: &BinaryOperator) -> Option<[&'a Expr; 2]> {
    match e {
        Expr::BinaryOp { left, op: o, right } if o == op => Some([&**left, &**right]),
        _ => None,
    }
}

fn union_sides(e: &SetExpr, quantifier: SetQuantifier) -> Option<[&SetExpr; 2]> {
    match e {
        SetExpr::SetOperation {
            left,
            op: SetOperator::Union,
            set_quantifier,
            right,
        } if *set_quantifier == quantifier => Some([&**left, &**right]),
        _ => None,
    }
}

/// The number of terms of the chain at `root` (`links` gives the two sides
/// of a chain node, `None` for a term), counted without recursion.
fn chain_len<'a, T>(root: &'a T, links: impl Fn(&'a T) -> Option<[&'a T; 2]>) -> usize {
    let mut terms = 0;
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        match links(node) {
            Some(sides) => stack.extend(sides),
            None => terms += 1,
        }
    }
    terms
}

/// A chain node taken apart, or a term given back.
enum Split<T> {
    Link(T, T),
    Term(T),
}

/// The terms of the chain at `root`, in order (`split` takes a chain node
/// apart and gives a term back), without recursion.
fn collect_terms<T>(root: T, split: impl Fn(T) -> Split<T>) -> Vec<T> {
    let mut terms = Vec::new();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        match split(node) {
            Split::Link(left, right) => {
                stack.push(right);
                stack.push(left);
            }
            Split::Term(term) => terms.push(term),
        }
    }
    terms
}
