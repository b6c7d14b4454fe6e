//! Aggregate calls in plans, and their lowering to DataFusion's aggregate
//! expressions.

use std::fmt;

use arrow::datatypes::Schema;
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::expr::{AggregateFunction, AggregateFunctionParams};
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::Expr;
use datafusion_physical_expr::aggregate::{LoweredAggregate, LoweredAggregateBuilder};
use serde::{Deserialize, Serialize};

use super::{positional_df_schema, PhysExpr, SortExpr};
use crate::error::Result;
use crate::functions::FunctionRegistry;

/// An aggregate call: `name(DISTINCT? args) FILTER (WHERE filter)`, output
/// column `alias`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggExpr {
    /// The aggregate function's name in the [`FunctionRegistry`].
    pub func: String,
    pub args: Vec<PhysExpr>,
    pub distinct: bool,
    pub filter: Option<PhysExpr>,
    pub order_by: Vec<SortExpr>,
    /// The output column name.
    pub alias: String,
    /// `IGNORE NULLS` (`first_value`, `last_value`, `nth_value`,
    /// `array_agg`): NULL inputs are skipped.
    #[serde(default)]
    pub ignore_nulls: bool,
}

impl AggExpr {
    /// Builds DataFusion's aggregate expression (accumulator factory, state
    /// fields, output field) and the optional filter, over the aggregate's
    /// original input schema.
    pub fn compile(&self, input: &Schema, registry: &FunctionRegistry) -> Result<LoweredAggregate> {
        let df_schema = positional_df_schema(input)?;
        let func = registry.aggregate(&self.func)?;
        let args = self
            .args
            .iter()
            .map(|e| e.to_logical(registry))
            .collect::<Result<Vec<_>>>()?;
        let filter = self
            .filter
            .as_ref()
            .map(|f| f.to_logical(registry).map(Box::new))
            .transpose()?;
        let order_by = self
            .order_by
            .iter()
            .map(|s| {
                Ok(datafusion_expr::SortExpr::new(
                    s.expr.to_logical(registry)?,
                    s.asc,
                    s.nulls_first,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let expr = Expr::AggregateFunction(AggregateFunction {
            func,
            params: AggregateFunctionParams {
                args,
                distinct: self.distinct,
                filter,
                order_by,
                null_treatment: self
                    .ignore_nulls
                    .then_some(datafusion_expr::expr::NullTreatment::IgnoreNulls),
            },
        });
        let schema = df_schema.as_arrow().clone();
        Ok(LoweredAggregateBuilder::new(
            &expr,
            &df_schema,
            &schema,
            &ExecutionProps::new(),
            &PhysicalPlanningContext::default(),
        )
        .with_name(self.alias.clone())
        .build()?)
    }
}

impl fmt::Display for AggExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let args: Vec<String> = self.args.iter().map(|e| e.to_string()).collect();
        let distinct = if self.distinct { "DISTINCT " } else { "" };
        write!(f, "{}({distinct}{})", self.func, args.join(", "))?;
        if self.ignore_nulls {
            write!(f, " IGNORE NULLS")?;
        }
        if let Some(filter) = &self.filter {
            write!(f, " FILTER (WHERE {filter})")?;
        }
        Ok(())
    }
}
