//! Scan of a memory table: partition `p` of `n` reads batches `p, p+n, ...`.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use crate::error::{DataflowError, Result};
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::stream::{boxed, SendableRecordBatchStream};

pub struct MemoryScan {
    properties: OperatorProperties,
    table: String,
    partitions: usize,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
}

impl MemoryScan {
    pub fn new(
        table: String,
        partitions: usize,
        projection: Option<Vec<usize>>,
        schema: SchemaRef,
    ) -> Self {
        MemoryScan {
            properties: OperatorProperties::new(
                "MemoryScan",
                Arc::clone(&schema),
                partitions.max(1),
            ),
            table,
            partitions: partitions.max(1),
            projection,
            schema,
        }
    }
}

impl Operator for MemoryScan {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let batches = ctx.tables.batches(&self.table).ok_or_else(|| {
            DataflowError::Plan(format!("memory table {} is not registered", self.table))
        })?;
        let (n, projection, schema) = (
            self.partitions,
            self.projection.clone(),
            Arc::clone(&self.schema),
        );
        let out = Arc::clone(&schema);
        let stream = async_stream::try_stream! {
            for batch in batches.iter().skip(partition).step_by(n) {
                let batch = match &projection {
                    Some(p) => batch.project(p)?,
                    None => batch.clone(),
                };
                // Rebind to the planned schema (same types; names may differ
                // in case or qualification).
                yield arrow::array::RecordBatch::try_new_with_options(
                    Arc::clone(&out),
                    batch.columns().to_vec(),
                    &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
                )?;
            }
        };
        Ok(boxed(schema, stream))
    }
}
