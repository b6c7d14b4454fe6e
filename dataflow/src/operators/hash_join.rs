//! TODO: HashJoin is being written.
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

pub struct HashJoin {
    schema: SchemaRef,
}

impl HashJoin {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        left: Arc<dyn Operator>,
        right: Arc<dyn Operator>,
        join_type: JoinType,
        on: &[(PhysExpr, PhysExpr)],
        filter: Option<&PhysExpr>,
        null_equals_null: bool,
        collect_left: bool,
        schema: SchemaRef,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        Err(DataflowError::NotSupported("HashJoin".into()))
    }
}

impl Operator for HashJoin {
    fn name(&self) -> &'static str {
        "HashJoin"
    }
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
    fn output_partitions(&self) -> usize {
        1
    }
    fn execute(&self, _partition: usize, _ctx: &Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        Err(DataflowError::NotSupported("HashJoin".into()))
    }
}
