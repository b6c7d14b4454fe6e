//! TODO: ParquetScan is being written.
#![allow(unused)]

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::Operator;
use crate::error::{DataflowError, Result};
use crate::functions::FunctionRegistry;
use crate::expr::PhysExpr;
use crate::plan::ParquetSplit;
use crate::runner::TaskContext;
use crate::stream::SendableRecordBatchStream;

pub struct ParquetScan {
    schema: SchemaRef,
}

impl ParquetScan {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        partitions: Vec<Vec<ParquetSplit>>,
        table_schema: SchemaRef,
        projection: Option<Vec<usize>>,
        pruning: Vec<PhysExpr>,
        schema: SchemaRef,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        Err(DataflowError::NotSupported("ParquetScan".into()))
    }
}

impl Operator for ParquetScan {
    fn name(&self) -> &'static str {
        "ParquetScan"
    }
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
    fn output_partitions(&self) -> usize {
        1
    }
    fn execute(&self, _partition: usize, _ctx: &Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        Err(DataflowError::NotSupported("ParquetScan".into()))
    }
}
