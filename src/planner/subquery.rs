//! Uncorrelated scalar subqueries (`WHERE x > (SELECT avg(x) FROM t)`)
//! run before the query that uses them, and their value replaces them as a
//! literal.
//!
//! Running them first is what lets FFQ check the SQL rule that a scalar
//! subquery returns at most one row (zero rows give NULL), which a join
//! rewrite would silently break. Correlated scalar subqueries are turned
//! into joins by DataFusion's optimizer before this runs.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use datafusion_common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion_common::ScalarValue;
use datafusion_expr::{Expr, LogicalPlan, Subquery};
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::error::{Error, Result};

/// Runs the plan of a subquery: the session, seen from the planner.
pub trait SubqueryRunner: Sync {
    /// Lowers `plan` (optimized, its own subqueries already replaced) and
    /// runs it to completion.
    fn run<'a>(&'a self, plan: &'a LogicalPlan) -> BoxFuture<'a, Result<Vec<RecordBatch>>>;
}

/// Runs every uncorrelated scalar subquery of `plan` and substitutes its
/// value.
pub fn resolve_scalar_subqueries(
    runner: &dyn SubqueryRunner,
    plan: LogicalPlan,
) -> BoxFuture<'_, Result<LogicalPlan>> {
    async move {
        let subqueries = collect(&plan)?;
        if subqueries.is_empty() {
            return Ok(plan);
        }
        let mut values: HashMap<Subquery, ScalarValue> = HashMap::new();
        for sq in subqueries {
            if values.contains_key(&sq) {
                continue;
            }
            let value = run_scalar(runner, &sq).await?;
            values.insert(sq, value);
        }
        let replaced = plan
            .transform_up(|node| {
                node.map_expressions(|e| {
                    e.transform_up(|e| match e {
                        Expr::ScalarSubquery(sq) => match values.get(&sq) {
                            Some(v) => Ok(Transformed::yes(Expr::Literal(v.clone(), None))),
                            None => Ok(Transformed::no(Expr::ScalarSubquery(sq))),
                        },
                        other => Ok(Transformed::no(other)),
                    })
                })
            })
            .map_err(Error::from)?;
        Ok(replaced.data)
    }
    .boxed()
}

/// The uncorrelated scalar subqueries in the expressions of `plan`.
fn collect(plan: &LogicalPlan) -> Result<Vec<Subquery>> {
    let mut out = Vec::new();
    plan.apply(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarSubquery(sq) = e {
                    if sq.outer_ref_columns.is_empty() {
                        out.push(sq.clone());
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })
    .map_err(Error::from)?;
    Ok(out)
}

/// Runs one scalar subquery: its single value, NULL for no row, an error
/// for more than one row or column.
async fn run_scalar(runner: &dyn SubqueryRunner, sq: &Subquery) -> Result<ScalarValue> {
    let plan = sq.subquery.as_ref().clone();
    let schema = plan.schema();
    if schema.fields().len() != 1 {
        return Err(Error::Plan(format!(
            "scalar subquery must return one column, it returns {}",
            schema.fields().len()
        )));
    }
    let data_type = schema.field(0).data_type().clone();
    // The subquery may hold scalar subqueries of its own.
    let plan = resolve_scalar_subqueries(runner, plan).await?;
    let batches = runner.run(&plan).await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    match rows {
        0 => Ok(ScalarValue::try_from(&data_type)?),
        1 => {
            let batch = batches
                .iter()
                .find(|b| b.num_rows() == 1)
                .ok_or_else(|| Error::Plan("scalar subquery lost its row".into()))?;
            Ok(ScalarValue::try_from_array(batch.column(0), 0)?)
        }
        n => Err(Error::Execution(ffq_dataflow::DataflowError::Execution(
            format!("scalar subquery returned more than one row ({n} rows)"),
        ))),
    }
}
