//! The output of an upstream stage, read through the task context's
//! [`crate::exchange::StageInputs`] (the distributed runtime's fetches).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::{check_partition, Operator};
use crate::error::{DataflowError, Result};
use crate::runner::TaskContext;
use crate::stream::SendableRecordBatchStream;

pub struct StageInput {
    stage: u32,
    partitions: usize,
    preserve: bool,
    schema: SchemaRef,
}

impl StageInput {
    pub fn new(stage: u32, partitions: usize, preserve: bool, schema: SchemaRef) -> Self {
        StageInput {
            stage,
            partitions: partitions.max(1),
            preserve,
            schema,
        }
    }
}

impl Operator for StageInput {
    fn name(&self) -> &'static str {
        "StageInput"
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn output_partitions(&self) -> usize {
        self.partitions
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        check_partition(self, partition)?;
        let inputs = ctx.inputs.as_ref().ok_or_else(|| {
            DataflowError::Internal(format!(
                "stage {} is an input of this plan, but it runs without stage inputs",
                self.stage
            ))
        })?;
        inputs.open(
            self.stage,
            partition,
            self.preserve,
            Arc::clone(&self.schema),
        )
    }
}
