//! Assembling join output from index lists: the rows of one side picked
//! by row index (a zero-copy slice for a contiguous run), and batches
//! rebuilt under the output schema.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::SchemaRef;

use crate::error::Result;

/// Builds a batch of `schema` from columns (names may differ from the
/// columns' original batches; types must match).
pub fn rebind(schema: &SchemaRef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// Row indices to gather from one side: a contiguous run of rows is a
/// zero-copy slice, anything else a `take`.
pub(super) struct Indices {
    arr: UInt32Array,
    run: Option<usize>,
}

impl Indices {
    pub(super) fn new(idx: Vec<u32>) -> Self {
        let run = idx.first().and_then(|&first| {
            idx.iter()
                .enumerate()
                .all(|(k, &i)| i as usize == first as usize + k)
                .then_some(first as usize)
        });
        Indices {
            arr: UInt32Array::from(idx),
            run,
        }
    }

    pub(super) fn gather(&self, col: &ArrayRef) -> Result<ArrayRef> {
        match self.run {
            Some(first) if first + self.arr.len() <= col.len() => {
                Ok(col.slice(first, self.arr.len()))
            }
            _ => Ok(take(col.as_ref(), &self.arr, None)?),
        }
    }
}
