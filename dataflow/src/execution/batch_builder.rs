//! The one place where operators coalesce output into batches of about
//! the target batch size.

use arrow::array::RecordBatch;
use arrow::compute::BatchCoalescer;
use arrow::datatypes::SchemaRef;

use crate::error::Result;

/// Gathers rows into batches of `batch_size` rows: small batches are
/// merged, large ones are sliced. [`BatchBuilder::push`] hands back the
/// batches completed so far, [`BatchBuilder::finish`] the rest.
pub struct BatchBuilder {
    coalescer: BatchCoalescer,
    batch_size: usize,
}

impl BatchBuilder {
    /// Output batches have exactly `batch_size` rows, except the last.
    pub fn new(schema: SchemaRef, batch_size: usize) -> Self {
        let batch_size = batch_size.max(1);
        BatchBuilder {
            coalescer: BatchCoalescer::new(schema, batch_size),
            batch_size,
        }
    }

    /// Like [`BatchBuilder::new`], but pieces of at least half a batch pass
    /// through without being copied (they may then make shorter batches):
    /// for operators whose output is mostly already batch-sized.
    pub fn passing_large(schema: SchemaRef, batch_size: usize) -> Self {
        let batch_size = batch_size.max(1);
        BatchBuilder {
            coalescer: BatchCoalescer::new(schema, batch_size)
                .with_biggest_coalesce_batch_size(Some((batch_size / 2).max(1))),
            batch_size,
        }
    }

    /// Adds `batch`'s rows; returns the batches completed by them.
    pub fn push(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let n = batch.num_rows();
        let mut start = 0;
        while start < n {
            let len = self.batch_size.min(n - start);
            let part = if start == 0 && len == n {
                batch.clone()
            } else {
                batch.slice(start, len)
            };
            self.coalescer.push_batch(part)?;
            start += len;
        }
        Ok(self.completed())
    }

    /// Ends the input: returns the remaining batches.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        self.coalescer.finish_buffered_batch()?;
        Ok(self.completed())
    }

    fn completed(&mut self) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        while let Some(b) = self.coalescer.next_completed_batch() {
            out.push(b);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

    use super::BatchBuilder;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]))
    }

    fn batch(rows: i32) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![Arc::new(Int32Array::from_iter_values(0..rows))],
        )
        .unwrap()
    }

    fn sizes(batches: &[RecordBatch]) -> Vec<usize> {
        batches.iter().map(|b| b.num_rows()).collect()
    }

    #[test]
    fn coalesces_small_and_slices_large() {
        let mut b = BatchBuilder::new(schema(), 4);
        assert!(b.push(batch(3)).unwrap().is_empty());
        assert_eq!(sizes(&b.push(batch(3)).unwrap()), vec![4]);
        assert_eq!(sizes(&b.push(batch(9)).unwrap()), vec![4, 4]);
        assert!(b.push(batch(0)).unwrap().is_empty());
        assert_eq!(sizes(&b.finish().unwrap()), vec![3]);
        assert!(b.finish().unwrap().is_empty());
    }

    #[test]
    fn passing_large_never_exceeds_batch_size() {
        let mut b = BatchBuilder::passing_large(schema(), 4);
        let mut out = b.push(batch(1)).unwrap();
        out.extend(b.push(batch(10)).unwrap());
        out.extend(b.finish().unwrap());
        assert_eq!(sizes(&out).iter().sum::<usize>(), 11);
        assert!(out.iter().all(|b| b.num_rows() <= 4 && b.num_rows() > 0));
    }
}
