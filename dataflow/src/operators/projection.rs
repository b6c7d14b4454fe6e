//! Projection: evaluates one expression per output column.

use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use datafusion_physical_expr::PhysicalExpr;
use futures::StreamExt;

use crate::error::{DataflowError, Result};
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::expr::{evaluate_all, PhysExpr};
use crate::functions::FunctionRegistry;
use crate::stream::{boxed, SendableRecordBatchStream};

pub struct Projection {
    properties: OperatorProperties,
    input: Arc<dyn Operator>,
    exprs: Arc<Vec<Arc<dyn PhysicalExpr>>>,
}

impl Projection {
    pub fn try_new(
        input: Arc<dyn Operator>,
        exprs: &[PhysExpr],
        schema: SchemaRef,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let input_schema = input.schema();
        let exprs = exprs
            .iter()
            .map(|e| e.compile(&input_schema, registry))
            .collect::<Result<Vec<_>>>()?;
        if exprs.len() != schema.fields().len() {
            return Err(DataflowError::Internal(format!(
                "projection has {} expressions for {} columns",
                exprs.len(),
                schema.fields().len()
            )));
        }
        Ok(Projection {
            properties: OperatorProperties::new(
                "Projection",
                Arc::clone(&schema),
                input.output_partitions(),
            ),
            input,
            exprs: Arc::new(exprs),
        })
    }
}

/// Evaluates `exprs` on `batch` into a batch of `schema`.
pub fn project_batch(
    exprs: &[Arc<dyn PhysicalExpr>],
    schema: &SchemaRef,
    batch: &RecordBatch,
) -> Result<RecordBatch> {
    let columns = evaluate_all(exprs, batch)?;
    // Types come from the planner's schema; a mismatch would be a planner bug
    // that arrow reports here with the column.
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

impl Operator for Projection {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut input = self.input.execute(partition, ctx)?;
        let exprs = Arc::clone(&self.exprs);
        let schema = self.schema();
        let out_schema = Arc::clone(&schema);
        let stream = async_stream::try_stream! {
            while let Some(batch) = input.next().await {
                yield project_batch(&exprs, &out_schema, &batch?)?;
            }
        };
        Ok(boxed(schema, stream))
    }
}
