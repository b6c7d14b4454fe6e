//! Filter: keeps the rows for which a predicate is true (NULL drops the row).

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::DataType;
use datafusion_physical_expr::PhysicalExpr;
use futures::StreamExt;

use crate::error::{DataflowError, Result};
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::expr::PhysExpr;
use crate::functions::FunctionRegistry;
use crate::stream::{boxed, SendableRecordBatchStream};

pub struct Filter {
    properties: OperatorProperties,
    input: Arc<dyn Operator>,
    predicate: Arc<dyn PhysicalExpr>,
}

impl Filter {
    pub fn try_new(
        input: Arc<dyn Operator>,
        predicate: &PhysExpr,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let schema = input.schema();
        let predicate = predicate.compile(&schema, registry)?;
        let dt = predicate.data_type(&schema)?;
        if dt != DataType::Boolean && dt != DataType::Null {
            return Err(DataflowError::Plan(format!(
                "filter predicate must be boolean, got {dt}"
            )));
        }
        Ok(Filter {
            properties: OperatorProperties::new("Filter", schema, input.output_partitions()),
            input,
            predicate,
        })
    }
}

/// Evaluates `predicate` on `batch` and keeps the rows where it is true.
pub fn filter_batch(predicate: &dyn PhysicalExpr, batch: &RecordBatch) -> Result<RecordBatch> {
    let mask = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
    let mask = match mask.as_any().downcast_ref::<BooleanArray>() {
        Some(m) => m.clone(),
        None if mask.data_type() == &DataType::Null => BooleanArray::from(vec![false; mask.len()]),
        None => {
            return Err(DataflowError::Internal(format!(
                "filter predicate evaluated to {}",
                mask.data_type()
            )))
        }
    };
    Ok(filter_record_batch(batch, &mask)?)
}

impl Operator for Filter {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut input = self.input.execute(partition, ctx)?;
        let predicate = Arc::clone(&self.predicate);
        let stream = async_stream::try_stream! {
            while let Some(batch) = input.next().await {
                let out = filter_batch(predicate.as_ref(), &batch?)?;
                if out.num_rows() > 0 {
                    yield out;
                }
            }
        };
        Ok(boxed(self.schema(), stream))
    }
}
