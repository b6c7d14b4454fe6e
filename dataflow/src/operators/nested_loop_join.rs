//! TODO: NestedLoopJoin is being written.
#![allow(unused)]

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::Operator;
use crate::error::{DataflowError, Result};
use crate::functions::FunctionRegistry;
use crate::expr::PhysExpr;
use crate::plan::JoinType;
use crate::runner::TaskContext;
use crate::stream::SendableRecordBatchStream;

pub struct NestedLoopJoin {
    schema: SchemaRef,
}

impl NestedLoopJoin {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        left: Arc<dyn Operator>,
        right: Arc<dyn Operator>,
        join_type: JoinType,
        filter: Option<&PhysExpr>,
        schema: SchemaRef,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        Err(DataflowError::NotSupported("NestedLoopJoin".into()))
    }
}

impl Operator for NestedLoopJoin {
    fn name(&self) -> &'static str {
        "NestedLoopJoin"
    }
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
    fn output_partitions(&self) -> usize {
        1
    }
    fn execute(&self, _partition: usize, _ctx: &Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        Err(DataflowError::NotSupported("NestedLoopJoin".into()))
    }
}
