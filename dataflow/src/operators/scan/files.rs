//! What the file scans (Parquet, CSV, JSON) share: resolving the
//! projection, binding read columns to the planned schema, the shape of
//! scans reading whole files per partition, and file errors.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::cast;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;

use crate::error::{DataflowError, Result};
use crate::execution::OperatorProperties;

/// The columns a table scan reads (see [`crate::plan::PhysicalPlan::Scan`]).
pub struct ScanColumns {
    /// The full schema of the table.
    pub table_schema: SchemaRef,
    /// Indices of the table columns to read; `None` reads all.
    pub projection: Option<Vec<usize>>,
    /// The output schema (the projected table schema).
    pub schema: SchemaRef,
}

/// A scan whose partition `p` reads the whole files `partitions[p]` (CSV,
/// JSON): its properties and resolved columns.
pub(crate) struct FileListScan {
    pub properties: OperatorProperties,
    pub partitions: Vec<Vec<String>>,
    pub table_schema: SchemaRef,
    /// Resolved: indices of the table columns read.
    pub projection: Vec<usize>,
    pub schema: SchemaRef,
}

impl FileListScan {
    /// Checks `columns` for the operator `name`.
    pub fn try_new(
        name: &'static str,
        partitions: Vec<Vec<String>>,
        columns: ScanColumns,
    ) -> Result<Self> {
        let ScanColumns {
            table_schema,
            projection,
            schema,
        } = columns;
        let projection = check_projection(&table_schema, projection, &schema, name)?;
        Ok(FileListScan {
            properties: OperatorProperties::new(name, Arc::clone(&schema), partitions.len().max(1)),
            partitions,
            table_schema,
            projection,
            schema,
        })
    }

    /// The files partition `partition` reads.
    pub fn files(&self, partition: usize) -> Vec<String> {
        self.partitions.get(partition).cloned().unwrap_or_default()
    }
}

/// Resolves a scan's projection (`None` = all columns) and checks it
/// against the table and output schemas.
pub(crate) fn check_projection(
    table_schema: &Schema,
    projection: Option<Vec<usize>>,
    schema: &Schema,
    what: &str,
) -> Result<Vec<usize>> {
    let n = table_schema.fields().len();
    let projection = projection.unwrap_or_else(|| (0..n).collect());
    if let Some(bad) = projection.iter().find(|&&i| i >= n) {
        return Err(DataflowError::Plan(format!(
            "{what}: projected column {bad} out of range (table has {n} columns)"
        )));
    }
    if projection.len() != schema.fields().len() {
        return Err(DataflowError::Plan(format!(
            "{what}: {} projected columns but the output schema has {}",
            projection.len(),
            schema.fields().len()
        )));
    }
    Ok(projection)
}

/// Binds `columns` to the planned output `schema`, casting columns whose
/// type differs only in representation (e.g. Utf8 vs Utf8View).
pub(crate) fn conform_columns(
    columns: Vec<ArrayRef>,
    num_rows: usize,
    schema: &SchemaRef,
) -> std::result::Result<RecordBatch, ArrowError> {
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c)
            } else {
                cast(&c, f.data_type()).map_err(|e| {
                    ArrowError::CastError(format!(
                        "column {}: cannot read {} as {}: {e}",
                        f.name(),
                        c.data_type(),
                        f.data_type()
                    ))
                })
            }
        })
        .collect::<std::result::Result<Vec<_>, ArrowError>>()?;
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(num_rows)),
    )
}

/// Maps an error of file `path` into a [`DataflowError::File`].
pub(crate) fn file_error(path: &str, e: impl std::fmt::Display) -> DataflowError {
    DataflowError::file(path, e)
}

/// Maps an I/O error opening `path`.
pub(crate) fn open_error(path: &str, e: std::io::Error) -> DataflowError {
    if e.kind() == std::io::ErrorKind::NotFound {
        DataflowError::file(path, "no such file")
    } else {
        DataflowError::file(path, e)
    }
}
