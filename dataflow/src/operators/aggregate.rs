//! TODO: HashAggregate is being written.
#![allow(unused)]

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::Operator;
use crate::error::{DataflowError, Result};
use crate::functions::FunctionRegistry;
use crate::expr::{AggExpr, PhysExpr};
use crate::plan::AggregateMode;
use crate::runner::TaskContext;
use crate::stream::SendableRecordBatchStream;

pub struct HashAggregate {
    schema: SchemaRef,
}

impl HashAggregate {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        input: Arc<dyn Operator>,
        mode: AggregateMode,
        group_by: &[PhysExpr],
        aggregates: &[AggExpr],
        aggregate_input_schema: SchemaRef,
        schema: SchemaRef,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        Err(DataflowError::NotSupported("HashAggregate".into()))
    }
}

impl Operator for HashAggregate {
    fn name(&self) -> &'static str {
        "HashAggregate"
    }
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
    fn output_partitions(&self) -> usize {
        1
    }
    fn execute(&self, _partition: usize, _ctx: &Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        Err(DataflowError::NotSupported("HashAggregate".into()))
    }
}
