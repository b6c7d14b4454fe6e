//! TopK: `ORDER BY ... LIMIT k` per partition with bounded memory.
//!
//! Every input batch is first cut down to its own best `k` rows, and the
//! kept rows are buffered; once the buffer holds more than
//! `k + max(k, batch_size)` rows it is compacted (sorted and truncated to
//! `k`). So memory stays within about `2k + batch_size` rows, and the sort
//! work is amortised over the input. At the end the best `k` rows are
//! emitted in order, in batches of `batch_size` rows.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use futures::StreamExt;

use super::{slices, SortKeys};
use crate::error::Result;
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::expr::SortExpr;
use crate::functions::FunctionRegistry;
use crate::stream::{boxed, SendableRecordBatchStream};

#[cfg(test)]
mod tests;

pub struct TopK {
    properties: OperatorProperties,
    input: Arc<dyn Operator>,
    keys: Arc<SortKeys>,
    k: usize,
}

impl TopK {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        input: Arc<dyn Operator>,
        order: &[SortExpr],
        k: usize,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let keys = SortKeys::try_new(order, &input.schema(), registry)?;
        Ok(TopK {
            properties: OperatorProperties::new("TopK", input.schema(), input.output_partitions()),
            input,
            keys: Arc::new(keys),
            k,
        })
    }
}

/// The best `k` rows of a stream of batches, in bounded memory.
pub struct TopKBuffer {
    keys: Arc<SortKeys>,
    k: usize,
    /// Compact once more than this many rows are buffered.
    limit: usize,
    batches: Vec<RecordBatch>,
    rows: usize,
}

impl TopKBuffer {
    pub fn new(keys: Arc<SortKeys>, k: usize, batch_size: usize) -> Self {
        TopKBuffer {
            keys,
            k,
            limit: k.saturating_add(k.max(batch_size).max(1)),
            batches: Vec::new(),
            rows: 0,
        }
    }

    /// Buffered rows (for tests).
    pub fn buffered_rows(&self) -> usize {
        self.rows
    }

    /// Bytes of the buffered batches.
    pub fn size(&self) -> usize {
        self.batches.iter().map(|b| b.get_array_memory_size()).sum()
    }

    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if self.k == 0 || batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = if batch.num_rows() > self.k {
            self.keys.sort_batch(&batch, Some(self.k))?
        } else {
            batch
        };
        self.rows += batch.num_rows();
        self.batches.push(batch);
        if self.rows > self.limit {
            self.compact()?;
        }
        Ok(())
    }

    /// Sorts the buffer and keeps its best `k` rows.
    fn compact(&mut self) -> Result<()> {
        let Some(first) = self.batches.first() else {
            return Ok(());
        };
        let all = if self.batches.len() == 1 {
            first.clone()
        } else {
            concat_batches(&first.schema(), &self.batches)?
        };
        let best = self.keys.sort_batch(&all, Some(self.k))?;
        self.rows = best.num_rows();
        self.batches = vec![best];
        Ok(())
    }

    /// The best `k` rows in order (at most one batch).
    pub fn finish(mut self) -> Result<Option<RecordBatch>> {
        self.compact()?;
        Ok(self.batches.pop().filter(|b| b.num_rows() > 0))
    }
}

impl Operator for TopK {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if self.k == 0 {
            return Ok(crate::stream::empty(self.schema()));
        }
        let mut input = self.input.execute(partition, ctx)?;
        let batch_size = ctx.config.batch_size.max(1);
        let mut buffer = TopKBuffer::new(Arc::clone(&self.keys), self.k, batch_size);
        let memory = ctx.reserve(None);
        let stream = async_stream::try_stream! {
            while let Some(batch) = input.next().await {
                buffer.push(batch?)?;
                memory.try_resize(buffer.size())?;
            }
            if let Some(best) = buffer.finish()? {
                for b in slices(&best, batch_size) {
                    yield b;
                }
            }
        };
        Ok(boxed(self.schema(), stream))
    }
}
