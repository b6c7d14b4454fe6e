//! The output of an upstream stage, read through the task context's
//! [`crate::exchange::StageInputs`] (the distributed runtime's fetches).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use crate::error::{DataflowError, Result};
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::stream::SendableRecordBatchStream;

pub struct StageInput {
    properties: OperatorProperties,
    stage: u32,
    preserve: bool,
    schema: SchemaRef,
}

impl StageInput {
    pub fn new(stage: u32, partitions: usize, preserve: bool, schema: SchemaRef) -> Self {
        StageInput {
            properties: OperatorProperties::new(
                "StageInput",
                Arc::clone(&schema),
                partitions.max(1),
            ),
            stage,
            preserve,
            schema,
        }
    }
}

impl Operator for StageInput {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
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
