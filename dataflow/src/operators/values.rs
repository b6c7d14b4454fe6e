//! Literal rows (`VALUES ...`, `SELECT` without `FROM`) and empty relations.

use std::sync::Arc;

use arrow::array::{new_null_array, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Schema, SchemaRef};

use super::{check_partition, Operator};
use crate::error::Result;
use crate::expr::PhysExpr;
use crate::functions::FunctionRegistry;
use crate::runner::TaskContext;
use crate::stream::{boxed, SendableRecordBatchStream};

pub struct Values {
    schema: SchemaRef,
    batch: RecordBatch,
}

impl Values {
    pub fn try_new(
        schema: SchemaRef,
        rows: &[Vec<PhysExpr>],
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        // Evaluate each cell over a one-row batch of no columns, then
        // concatenate per column and cast to the planned type.
        let one = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(1)),
        )?;
        let empty_schema = Schema::empty();
        let mut columns = Vec::with_capacity(schema.fields().len());
        for (c, field) in schema.fields().iter().enumerate() {
            let mut cells = Vec::with_capacity(rows.len());
            for row in rows {
                let e = row[c].compile(&empty_schema, registry)?;
                let v = e.evaluate(&one)?.into_array(1)?;
                cells.push(arrow::compute::cast(&v, field.data_type())?);
            }
            let refs: Vec<&dyn arrow::array::Array> = cells.iter().map(|a| a.as_ref()).collect();
            let col = if refs.is_empty() {
                new_null_array(field.data_type(), 0)
            } else {
                arrow::compute::concat(&refs)?
            };
            columns.push(col);
        }
        let batch = RecordBatch::try_new_with_options(
            Arc::clone(&schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )?;
        Ok(Values { schema, batch })
    }
}

impl Operator for Values {
    fn name(&self) -> &'static str {
        "Values"
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn output_partitions(&self) -> usize {
        1
    }

    fn execute(
        &self,
        partition: usize,
        _ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        check_partition(self, partition)?;
        let batch = self.batch.clone();
        Ok(boxed(self.schema(), futures::stream::iter([Ok(batch)])))
    }
}

/// No rows, or exactly one row with no columns (`SELECT 1` reads it).
pub struct Empty {
    schema: SchemaRef,
    produce_one_row: bool,
}

impl Empty {
    pub fn new(schema: SchemaRef, produce_one_row: bool) -> Self {
        Empty {
            schema,
            produce_one_row,
        }
    }
}

impl Operator for Empty {
    fn name(&self) -> &'static str {
        "Empty"
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn output_partitions(&self) -> usize {
        1
    }

    fn execute(
        &self,
        partition: usize,
        _ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        check_partition(self, partition)?;
        if !self.produce_one_row {
            return Ok(crate::stream::empty(self.schema()));
        }
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), 1))
            .collect();
        let batch = RecordBatch::try_new_with_options(
            self.schema(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(1)),
        )?;
        Ok(boxed(self.schema(), futures::stream::iter([Ok(batch)])))
    }
}
