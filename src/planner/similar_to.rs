//! `SIMILAR TO` with the standard's patterns: every `Expr::SimilarTo` is
//! rewritten, before analysis and optimization, into FFQ's `similar_to`
//! function (see `ffq_dataflow::similar_to`). DataFusion's own evaluation
//! reads the pattern as a raw regular expression, and its simplifier folds
//! constant `SIMILAR TO`s with that evaluation; after the rewrite both the
//! folding and the operators use the standard's reading. Output column
//! names stay those of the written expression.

use std::sync::Arc;

use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_expr::expr::{Like, ScalarFunction};
use datafusion_expr::expr_rewriter::NamePreserver;
use datafusion_expr::{lit, Expr, LogicalPlan};
use ffq_dataflow::functions::FunctionRegistry;
use ffq_dataflow::similar_to::NAME;

use crate::error::{Error, Result};

/// `plan` with every `SIMILAR TO` (also in subqueries) replaced.
pub fn rewrite_similar_to(plan: LogicalPlan, registry: &FunctionRegistry) -> Result<LogicalPlan> {
    let func = registry.scalar(NAME)?;
    let rewritten = plan.transform_up_with_subqueries(|node| {
        let names = NamePreserver::new(&node);
        node.map_expressions(|e| {
            let saved = names.save(&e);
            let t = e.transform_up(|e| match e {
                Expr::SimilarTo(like) => similar_to_call(like, &func).map(Transformed::yes),
                other => Ok(Transformed::no(other)),
            })?;
            Ok(if t.transformed {
                Transformed::yes(saved.restore(t.data))
            } else {
                t
            })
        })
    });
    rewritten.map(|t| t.data).map_err(Error::from)
}

fn similar_to_call(
    like: Like,
    func: &Arc<datafusion_expr::ScalarUDF>,
) -> datafusion_common::Result<Expr> {
    if like.case_insensitive {
        return datafusion_common::not_impl_err!("case-insensitive SIMILAR TO");
    }
    // The standard's default escape is the backslash.
    let escape = like.escape_char.unwrap_or('\\').to_string();
    let call = Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::clone(func),
        vec![*like.expr, *like.pattern, lit(escape)],
    ));
    Ok(if like.negated {
        Expr::Not(Box::new(call))
    } else {
        call
    })
}
