//! Lowering DataFusion logical expressions to FFQ's [`PhysExpr`], with
//! columns resolved to positions in the input schema.

use datafusion_common::DFSchema;
use datafusion_expr::expr::{AggregateFunction, Alias, GroupingSet, NullTreatment};
use datafusion_expr::Expr;
use ffq_dataflow::expr::{AggExpr, BinaryOp, PhysExpr, SortExpr};

use crate::error::{Error, Result};

/// Lowers `expr`, resolving columns against `schema`.
pub fn lower_expr(expr: &Expr, schema: &DFSchema) -> Result<PhysExpr> {
    let l = |e: &Expr| -> Result<Box<PhysExpr>> { Ok(Box::new(lower_expr(e, schema)?)) };
    Ok(match expr {
        Expr::Alias(Alias { expr, .. }) => lower_expr(expr, schema)?,
        Expr::Column(c) => {
            let index = schema.index_of_column(c)?;
            PhysExpr::col(index, c.name.clone())
        }
        Expr::Literal(v, _) => PhysExpr::lit(v.clone()),
        Expr::BinaryExpr(b) => PhysExpr::Binary {
            left: l(&b.left)?,
            op: BinaryOp::from_df(b.op)?,
            right: l(&b.right)?,
        },
        Expr::Not(e) => PhysExpr::Not(l(e)?),
        Expr::Negative(e) => PhysExpr::Negative(l(e)?),
        Expr::IsNull(e) => PhysExpr::IsNull(l(e)?),
        Expr::IsNotNull(e) => PhysExpr::IsNotNull(l(e)?),
        Expr::IsTrue(e) => PhysExpr::IsTrue(l(e)?),
        Expr::IsFalse(e) => PhysExpr::IsFalse(l(e)?),
        Expr::IsNotTrue(e) => PhysExpr::IsNotTrue(l(e)?),
        Expr::IsNotFalse(e) => PhysExpr::IsNotFalse(l(e)?),
        Expr::IsUnknown(e) => PhysExpr::IsUnknown(l(e)?),
        Expr::IsNotUnknown(e) => PhysExpr::IsNotUnknown(l(e)?),
        Expr::Between(b) => PhysExpr::Between {
            expr: l(&b.expr)?,
            negated: b.negated,
            low: l(&b.low)?,
            high: l(&b.high)?,
        },
        Expr::Like(like) => PhysExpr::Like {
            negated: like.negated,
            expr: l(&like.expr)?,
            pattern: l(&like.pattern)?,
            escape_char: like.escape_char,
            case_insensitive: like.case_insensitive,
        },
        Expr::Case(case) => PhysExpr::Case {
            expr: case.expr.as_deref().map(&l).transpose()?,
            when_then: case
                .when_then_expr
                .iter()
                .map(|(w, t)| Ok((lower_expr(w, schema)?, lower_expr(t, schema)?)))
                .collect::<Result<_>>()?,
            else_expr: case.else_expr.as_deref().map(&l).transpose()?,
        },
        Expr::Cast(c) => PhysExpr::Cast {
            expr: l(&c.expr)?,
            data_type: c.field.data_type().clone(),
        },
        Expr::TryCast(c) => PhysExpr::TryCast {
            expr: l(&c.expr)?,
            data_type: c.field.data_type().clone(),
        },
        Expr::InList(i) => PhysExpr::InList {
            expr: l(&i.expr)?,
            list: i
                .list
                .iter()
                .map(|e| lower_expr(e, schema))
                .collect::<Result<_>>()?,
            negated: i.negated,
        },
        Expr::ScalarFunction(f) => PhysExpr::ScalarFunction {
            name: f.func.name().to_string(),
            args: f
                .args
                .iter()
                .map(|e| lower_expr(e, schema))
                .collect::<Result<_>>()?,
        },
        Expr::SimilarTo(_) => {
            return Err(Error::Plan(
                "SIMILAR TO left unrewritten (planner::similar_to runs before optimization)".into(),
            ))
        }
        Expr::ScalarVariable(..) | Expr::Placeholder(_) => {
            return Err(Error::NotSupported(format!(
                "variables and placeholders ({expr})"
            )))
        }
        Expr::Exists(_)
        | Expr::InSubquery(_)
        | Expr::ScalarSubquery(_)
        | Expr::SetComparison(_)
        | Expr::OuterReferenceColumn(..) => {
            return Err(Error::NotSupported(format!(
                "subquery that could not be turned into a join: {expr}"
            )))
        }
        Expr::AggregateFunction(_) => {
            return Err(Error::Plan(format!(
                "aggregate function outside of an aggregation: {expr}"
            )))
        }
        Expr::WindowFunction(_) => {
            return Err(Error::NotSupported(format!("window function {expr}")))
        }
        Expr::GroupingSet(_) => {
            return Err(Error::Plan(format!(
                "grouping set outside of a GROUP BY: {expr}"
            )))
        }
        Expr::Unnest(_) => return Err(Error::NotSupported("UNNEST".into())),
        other => return Err(Error::NotSupported(format!("expression {other}"))),
    })
}

/// The group keys of an aggregate's GROUP BY, in the order of its output
/// columns, and for GROUPING SETS / ROLLUP / CUBE the grouping sets: per
/// set, one flag per key, `true` when the set leaves the key out (empty for
/// a plain GROUP BY). Mirrors how DataFusion expands grouping sets.
pub fn group_keys(group_expr: &[Expr]) -> Result<(Vec<&Expr>, Vec<Vec<bool>>)> {
    let set = match group_expr {
        [Expr::GroupingSet(set)] => set,
        _ => {
            if group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
                return Err(Error::Plan(
                    "a grouping set must be the only GROUP BY expression".into(),
                ));
            }
            // Duplicate keys are one output column (as in DataFusion).
            let mut keys: Vec<&Expr> = Vec::with_capacity(group_expr.len());
            for e in group_expr {
                if !keys.contains(&e) {
                    keys.push(e);
                }
            }
            return Ok((keys, vec![]));
        }
    };
    let keys = set.distinct_expr();
    let n = keys.len();
    let sets = match set {
        GroupingSet::GroupingSets(sets) => sets
            .iter()
            .map(|s| keys.iter().map(|k| !s.contains(k)).collect())
            .collect(),
        // (), (a), (a, b), ...
        GroupingSet::Rollup(_) => (0..=n)
            .map(|len| (0..n).map(|i| i >= len).collect())
            .collect(),
        // Every subset of the keys.
        GroupingSet::Cube(_) => {
            if n >= 32 {
                return Err(Error::NotSupported(format!("CUBE of {n} expressions")));
            }
            (0..1u64 << n)
                .map(|mask| (0..n).map(|i| mask & (1 << i) != 0).collect())
                .collect()
        }
    };
    Ok((keys, sets))
}

pub fn lower_exprs(exprs: &[Expr], schema: &DFSchema) -> Result<Vec<PhysExpr>> {
    exprs.iter().map(|e| lower_expr(e, schema)).collect()
}

pub fn lower_sort(sort: &datafusion_expr::SortExpr, schema: &DFSchema) -> Result<SortExpr> {
    Ok(SortExpr {
        expr: lower_expr(&sort.expr, schema)?,
        asc: sort.asc,
        nulls_first: sort.nulls_first,
    })
}

/// Lowers an aggregate call (possibly aliased) named `alias` in the output.
pub fn lower_aggregate(expr: &Expr, schema: &DFSchema, alias: &str) -> Result<AggExpr> {
    match expr {
        Expr::Alias(Alias { expr, .. }) => lower_aggregate(expr, schema, alias),
        Expr::AggregateFunction(AggregateFunction { func, params }) => {
            // RESPECT NULLS is what every aggregate does by default.
            let ignore_nulls = matches!(params.null_treatment, Some(NullTreatment::IgnoreNulls));
            Ok(AggExpr {
                func: func.name().to_string(),
                args: lower_exprs(&params.args, schema)?,
                distinct: params.distinct,
                filter: params
                    .filter
                    .as_deref()
                    .map(|f| lower_expr(f, schema))
                    .transpose()?,
                order_by: params
                    .order_by
                    .iter()
                    .map(|s| lower_sort(s, schema))
                    .collect::<Result<_>>()?,
                alias: alias.to_string(),
                ignore_nulls,
            })
        }
        other => Err(Error::NotSupported(format!("aggregate expression {other}"))),
    }
}
