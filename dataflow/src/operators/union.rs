//! Union all: the partitions of every input, side by side.

use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use futures::StreamExt;

use crate::error::{DataflowError, Result};
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::stream::{boxed, SendableRecordBatchStream};

pub struct Union {
    properties: OperatorProperties,
    inputs: Vec<Arc<dyn Operator>>,
}

impl Union {
    pub fn try_new(inputs: Vec<Arc<dyn Operator>>, schema: SchemaRef) -> Result<Self> {
        for (i, input) in inputs.iter().enumerate() {
            let s = input.schema();
            if s.fields().len() != schema.fields().len() {
                return Err(DataflowError::Plan(format!(
                    "union input {i} has {} columns, expected {}",
                    s.fields().len(),
                    schema.fields().len()
                )));
            }
            for (a, b) in s.fields().iter().zip(schema.fields()) {
                if a.data_type() != b.data_type() {
                    return Err(DataflowError::Plan(format!(
                        "union input {i} column {} is {}, expected {}",
                        b.name(),
                        a.data_type(),
                        b.data_type()
                    )));
                }
            }
        }
        let partitions = inputs.iter().map(|i| i.output_partitions()).sum();
        Ok(Union {
            properties: OperatorProperties::new("Union", Arc::clone(&schema), partitions),
            inputs,
        })
    }
}

impl Operator for Union {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut p = partition;
        for input in &self.inputs {
            let n = input.output_partitions();
            if p < n {
                let mut stream = input.execute(p, ctx)?;
                let schema = self.schema();
                let out = Arc::clone(&schema);
                // Inputs may differ in names and nullability: rebind to ours.
                let s = async_stream::try_stream! {
                    while let Some(batch) = stream.next().await {
                        let batch = batch?;
                        yield RecordBatch::try_new_with_options(
                            Arc::clone(&out),
                            batch.columns().to_vec(),
                            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
                        )?;
                    }
                };
                return Ok(boxed(schema, s));
            }
            p -= n;
        }
        Err(DataflowError::Internal(
            "union partition out of range".into(),
        ))
    }
}
