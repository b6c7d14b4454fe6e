//! Literal rows (`VALUES ...`, `SELECT` without `FROM`) and empty relations.

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion_common::ScalarValue;

use crate::error::{DataflowError, Result};
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
        let width = schema.fields().len();
        if let Some(row) = rows.iter().find(|row| row.len() != width) {
            return Err(DataflowError::Plan(format!(
                "Values: a row of {} cells for {width} columns",
                row.len()
            )));
        }
        let mut columns = Vec::with_capacity(width);
        for (c, field) in schema.fields().iter().enumerate() {
            let cells: Vec<&PhysExpr> = rows.iter().map(|row| &row[c]).collect();
            let column = match same_type_literals(&cells) {
                Some(literals) => ScalarValue::iter_to_array(literals)?,
                None => evaluate_cells(&cells, registry)?,
            };
            columns.push(arrow::compute::cast(&column, field.data_type())?);
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

/// The cells' values when all are literals of one type (the common case of
/// a long `VALUES` list): one array is built from them at once.
fn same_type_literals(cells: &[&PhysExpr]) -> Option<Vec<ScalarValue>> {
    let first = match cells.first()? {
        PhysExpr::Literal(s) => s.0.data_type(),
        _ => return None,
    };
    cells
        .iter()
        .map(|e| match e {
            PhysExpr::Literal(s) if s.0.data_type() == first => Some(s.0.clone()),
            _ => None,
        })
        .collect()
}

/// Evaluates each cell over a one-row batch of no columns and concatenates
/// the values; an empty column has type `Null` (the caller casts).
fn evaluate_cells(cells: &[&PhysExpr], registry: &FunctionRegistry) -> Result<ArrayRef> {
    let one = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    let empty_schema = Schema::empty();
    let values = cells
        .iter()
        .map(|cell| match cell {
            PhysExpr::Literal(s) => Ok(s.0.to_array_of_size(1)?),
            cell => Ok(cell
                .compile(&empty_schema, registry)?
                .evaluate(&one)?
                .into_array(1)?),
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let refs: Vec<&dyn Array> = values.iter().map(|a| a.as_ref()).collect();
    Ok(if refs.is_empty() {
        new_null_array(&DataType::Null, 0)
    } else {
        arrow::compute::concat(&refs)?
    })
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
