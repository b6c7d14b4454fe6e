//! TODO: CsvScan is being written.
#![allow(unused)]

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::Operator;
use crate::error::{DataflowError, Result};

use crate::runner::TaskContext;
use crate::stream::SendableRecordBatchStream;

pub struct CsvScan {
    schema: SchemaRef,
}

impl CsvScan {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        partitions: Vec<Vec<String>>,
        has_header: bool,
        delimiter: u8,
        table_schema: SchemaRef,
        projection: Option<Vec<usize>>,
        schema: SchemaRef,
    ) -> Result<Self> {
        Err(DataflowError::NotSupported("CsvScan".into()))
    }
}

impl Operator for CsvScan {
    fn name(&self) -> &'static str {
        "CsvScan"
    }
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
    fn output_partitions(&self) -> usize {
        1
    }
    fn execute(&self, _partition: usize, _ctx: &Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        Err(DataflowError::NotSupported("CsvScan".into()))
    }
}
