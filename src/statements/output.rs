//! The results of statements: no rows for DDL, rows for the rest.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};

use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::session::SessionState;

pub(super) fn not_supported(what: &str) -> Result<DataFrame> {
    Err(Error::NotSupported(what.to_string()))
}

/// The result of a statement without rows: no columns, no batches.
pub(super) fn no_rows(session: &Arc<SessionState>) -> DataFrame {
    DataFrame::rows(Arc::clone(session), Arc::new(Schema::empty()), vec![])
}

pub(super) fn rows(
    session: &Arc<SessionState>,
    schema: SchemaRef,
    columns: Vec<ArrayRef>,
) -> Result<DataFrame> {
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok(DataFrame::rows(Arc::clone(session), schema, vec![batch]))
}
