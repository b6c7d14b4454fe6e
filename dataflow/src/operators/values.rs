//! Literal rows (`VALUES ...`, `SELECT` without `FROM`) and empty relations.

use std::sync::Arc;

use arrow::array::{new_null_array, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Schema, SchemaRef};

use crate::error::Result;
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::expr::PhysExpr;
use crate::functions::FunctionRegistry;
use crate::stream::{boxed, SendableRecordBatchStream};

pub struct Values {
    properties: OperatorProperties,
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
        Ok(Values {
            properties: OperatorProperties::new("Values", Arc::clone(&schema), 1),
            batch,
        })
    }
}

impl Operator for Values {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        _partition: usize,
        _ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let batch = self.batch.clone();
        Ok(boxed(self.schema(), futures::stream::iter([Ok(batch)])))
    }
}

/// No rows, or exactly one row with no columns (`SELECT 1` reads it).
pub struct Empty {
    properties: OperatorProperties,
    schema: SchemaRef,
    produce_one_row: bool,
}

impl Empty {
    pub fn new(schema: SchemaRef, produce_one_row: bool) -> Self {
        Empty {
            properties: OperatorProperties::new("Empty", Arc::clone(&schema), 1),
            schema,
            produce_one_row,
        }
    }
}

impl Operator for Empty {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        _partition: usize,
        _ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
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
