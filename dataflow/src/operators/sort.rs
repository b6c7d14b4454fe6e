//! TODO: Sort is being written.
#![allow(unused)]

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::Operator;
use crate::error::{DataflowError, Result};
use crate::functions::FunctionRegistry;
use crate::expr::SortExpr;
use crate::runner::TaskContext;
use crate::stream::SendableRecordBatchStream;

pub struct Sort {
    schema: SchemaRef,
}

impl Sort {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        input: Arc<dyn Operator>,
        order: &[SortExpr],
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        Err(DataflowError::NotSupported("Sort".into()))
    }
}

impl Operator for Sort {
    fn name(&self) -> &'static str {
        "Sort"
    }
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
    fn output_partitions(&self) -> usize {
        1
    }
    fn execute(&self, _partition: usize, _ctx: &Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        Err(DataflowError::NotSupported("Sort".into()))
    }
}
