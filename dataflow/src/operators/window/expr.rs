//! Compiling the plan's window expressions into DataFusion's window
//! expressions (aggregates over frames, and window UDFs).

use std::any::Any;
use std::sync::Arc;

use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use datafusion_common::Result as DFResult;
use datafusion_expr::function::{ExpressionArgs, PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion_expr::{LimitEffect, PartitionEvaluator, WindowUDF};
use datafusion_physical_expr::aggregate::AggregateExprBuilder;
use datafusion_physical_expr::window::{
    PlainAggregateWindowExpr, SlidingAggregateWindowExpr, StandardWindowExpr,
    StandardWindowFunctionExpr, WindowExpr as DfWindowExpr,
};
use datafusion_physical_expr::PhysicalExpr;

use crate::error::{DataflowError, Result};
use crate::expr::{positional_df_schema, PhysExpr};
use crate::functions::FunctionRegistry;
use crate::plan::window::{WindowExpr, WindowFunc};

impl WindowExpr {
    /// Builds DataFusion's window expression over batches of `input`.
    pub fn compile(
        &self,
        input: &Schema,
        registry: &FunctionRegistry,
    ) -> Result<Arc<dyn DfWindowExpr>> {
        let df_schema = positional_df_schema(input)?;
        let compile = |e: &PhysExpr| e.compile_with(&df_schema, registry);
        let args = self.args.iter().map(compile).collect::<Result<Vec<_>>>()?;
        let partition_by = self
            .partition_by
            .iter()
            .map(compile)
            .collect::<Result<Vec<_>>>()?;
        let order_by = self
            .order_by
            .iter()
            .map(|s| s.compile(input, registry))
            .collect::<Result<Vec<_>>>()?;
        if self.frame.is_inverted() {
            return Err(DataflowError::Plan(format!(
                "invalid window frame {}: the start bound is after the end bound",
                self.frame
            )));
        }
        let frame = Arc::new(self.frame.to_df());
        let positional: SchemaRef = Arc::new(df_schema.as_arrow().clone());
        Ok(match &self.func {
            WindowFunc::Aggregate(name) => {
                let fun = registry.aggregate(name)?;
                let mut builder = AggregateExprBuilder::new(fun, args)
                    .schema(Arc::clone(&positional))
                    .alias(self.name.clone())
                    .with_ignore_nulls(self.ignore_nulls);
                if self.distinct {
                    builder = builder.distinct();
                }
                let aggregate = Arc::new(builder.build()?);
                let filter = self.filter.as_ref().map(compile).transpose()?;
                if frame.is_ever_expanding() {
                    Arc::new(PlainAggregateWindowExpr::new(
                        aggregate,
                        &partition_by,
                        &order_by,
                        frame,
                        filter,
                    ))
                } else {
                    Arc::new(SlidingAggregateWindowExpr::new(
                        aggregate,
                        &partition_by,
                        &order_by,
                        frame,
                        filter,
                    ))
                }
            }
            WindowFunc::Window(name) => {
                if self.distinct || self.filter.is_some() {
                    return Err(DataflowError::NotSupported(format!(
                        "DISTINCT or FILTER in window function {name}"
                    )));
                }
                let fun = registry.window(name)?;
                let input_fields = args
                    .iter()
                    .map(|a| a.return_field(&positional))
                    .collect::<DFResult<Vec<_>>>()?;
                let udwf = UdwfExpr {
                    fun,
                    args,
                    input_fields,
                    name: self.name.clone(),
                    ignore_nulls: self.ignore_nulls,
                };
                // Creating an evaluator validates the arguments (literal
                // offsets, ntile's bucket count) before anything runs.
                udwf.create_evaluator()?;
                Arc::new(StandardWindowExpr::new(
                    Arc::new(udwf),
                    &partition_by,
                    &order_by,
                    frame,
                ))
            }
        })
    }

    /// The output field (named `name`) over `input`.
    pub fn field(&self, input: &Schema, registry: &FunctionRegistry) -> Result<Field> {
        let f = self.compile(input, registry)?.field()?;
        Ok(Field::new(
            &self.name,
            f.data_type().clone(),
            f.is_nullable(),
        ))
    }
}

/// A window UDF with its arguments, as DataFusion's standard window
/// expression wants it.
#[derive(Debug)]
struct UdwfExpr {
    fun: Arc<WindowUDF>,
    args: Vec<Arc<dyn PhysicalExpr>>,
    input_fields: Vec<FieldRef>,
    name: String,
    ignore_nulls: bool,
}

impl StandardWindowFunctionExpr for UdwfExpr {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn field(&self) -> DFResult<FieldRef> {
        self.fun
            .field(WindowUDFFieldArgs::new(&self.input_fields, &self.name))
    }

    fn expressions(&self) -> Vec<Arc<dyn PhysicalExpr>> {
        self.fun
            .expressions(ExpressionArgs::new(&self.args, &self.input_fields))
    }

    fn create_evaluator(&self) -> DFResult<Box<dyn PartitionEvaluator>> {
        self.fun
            .partition_evaluator_factory(PartitionEvaluatorArgs::new(
                &self.args,
                &self.input_fields,
                false,
                self.ignore_nulls,
            ))
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn limit_effect(&self) -> LimitEffect {
        self.fun.inner().limit_effect(&self.args)
    }
}
