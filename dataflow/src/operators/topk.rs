//! TODO: TopK is being written.
#![allow(unused)]

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::Operator;
use crate::error::{DataflowError, Result};
use crate::functions::FunctionRegistry;
use crate::expr::SortExpr;
use crate::runner::TaskContext;
use crate::stream::SendableRecordBatchStream;

pub struct TopK {
    schema: SchemaRef,
}

impl TopK {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        input: Arc<dyn Operator>,
        order: &[SortExpr],
        k: usize,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        Err(DataflowError::NotSupported("TopK".into()))
    }
}

impl Operator for TopK {
    fn name(&self) -> &'static str {
        "TopK"
    }
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
    fn output_partitions(&self) -> usize {
        1
    }
    fn execute(&self, _partition: usize, _ctx: &Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        Err(DataflowError::NotSupported("TopK".into()))
    }
}
