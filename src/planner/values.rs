//! Long `VALUES` lists of literals, kept out of the optimizer's sight.
//!
//! DataFusion's optimizer runs about twenty rules, twice, and checks the
//! plan's invariants around them; each of those passes walks every
//! expression of the plan, so a `VALUES` list of 100,000 rows is walked a
//! hundred times although no rule can improve a row of literals. After the
//! analyzer (which coerces the rows to the column types), [`hide_literal_rows`]
//! replaces every `Values` node whose cells are all constants (literals,
//! possibly cast or negated) by a [`LiteralRows`] extension node that shows
//! the optimizer no expressions; the physical planner lowers it exactly as
//! it lowers `Values`. Rows with anything else (a function call, a scalar
//! subquery) stay a `Values` node and are optimized as before.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use datafusion_common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion_common::DFSchemaRef;
use datafusion_expr::logical_plan::{Extension, Values};
use datafusion_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};

use crate::error::Result;

/// The rows of a `VALUES` list of constants, with the list's schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LiteralRows {
    /// Shared: optimizer rules clone plan nodes freely.
    pub rows: Arc<Vec<Vec<Expr>>>,
    pub schema: DFSchemaRef,
}

impl PartialOrd for LiteralRows {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.rows
            .partial_cmp(&other.rows)
            .filter(|o| *o != Ordering::Equal || self == other)
    }
}

impl UserDefinedLogicalNodeCore for LiteralRows {
    fn name(&self) -> &str {
        "Values"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    /// None: the point of the node (see the module doc).
    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Values: {} rows of literals", self.rows.len())
    }

    fn with_exprs_and_inputs(
        &self,
        exprs: Vec<Expr>,
        inputs: Vec<LogicalPlan>,
    ) -> datafusion_common::Result<Self> {
        if !exprs.is_empty() || !inputs.is_empty() {
            return datafusion_common::internal_err!(
                "Values of literals has neither expressions nor inputs"
            );
        }
        Ok(self.clone())
    }

    /// Every column is produced whatever the parent reads: the rows are
    /// not rewritten.
    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(vec![])
    }
}

/// Replaces the `Values` nodes of constants in `plan` (also inside
/// subqueries) by [`LiteralRows`]. Run it after the analyzer.
pub fn hide_literal_rows(plan: LogicalPlan) -> Result<LogicalPlan> {
    Ok(plan
        .transform_up_with_subqueries(|plan| {
            Ok(match plan {
                LogicalPlan::Values(v) if all_constant(&v) => {
                    let Values { schema, values } = v;
                    Transformed::yes(LogicalPlan::Extension(Extension {
                        node: Arc::new(LiteralRows {
                            rows: Arc::new(values),
                            schema,
                        }),
                    }))
                }
                plan => Transformed::no(plan),
            })
        })?
        .data)
}

fn all_constant(values: &Values) -> bool {
    values.values.iter().flatten().all(is_constant)
}

/// A literal, possibly under casts and negations: what the analyzer leaves
/// of a `VALUES` cell written as a constant.
fn is_constant(e: &Expr) -> bool {
    let mut constant = true;
    let _ = e.apply(|e| {
        constant = matches!(
            e,
            Expr::Literal(..) | Expr::Cast(_) | Expr::TryCast(_) | Expr::Negative(_)
        );
        Ok(if constant {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    constant
}
