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
use arrow::datatypes::SchemaRef;
use futures::StreamExt;

use super::sort::{slices, SortKeys};
use super::{check_partition, Operator};
use crate::error::Result;
use crate::expr::SortExpr;
use crate::functions::FunctionRegistry;
use crate::runner::TaskContext;
use crate::stream::{boxed, SendableRecordBatchStream};

pub struct TopK {
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
    fn name(&self) -> &'static str {
        "TopK"
    }

    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }

    fn output_partitions(&self) -> usize {
        self.input.output_partitions()
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        check_partition(self, partition)?;
        if self.k == 0 {
            return Ok(crate::stream::empty(self.schema()));
        }
        let mut input = self.input.execute(partition, ctx)?;
        let batch_size = ctx.config.batch_size.max(1);
        let mut buffer = TopKBuffer::new(Arc::clone(&self.keys), self.k, batch_size);
        let ctx = Arc::clone(ctx);
        let stream = async_stream::try_stream! {
            while let Some(batch) = input.next().await {
                buffer.push(batch?)?;
                ctx.report_memory(buffer.size());
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

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use super::*;
    use crate::operators::sort::tests::{
        batch, cmp_keys, key, random_batches, run_plan, scan, tuples,
    };
    use crate::plan::PhysicalPlan;

    #[test]
    fn topk_buffer_with_ties_is_bounded_and_exact() {
        let registry = FunctionRegistry::with_defaults();
        let input = random_batches(40, 25, 5);
        let schema = input[0].schema();
        let order = vec![key(0, false, true), key(1, true, false)];
        let keys = Arc::new(SortKeys::try_new(&order, &schema, &registry).unwrap());
        let mut want = tuples(&input);
        want.sort_by(|x, y| cmp_keys(x, y, &order));
        for k in [1, 3, 10, 57, 999, 1000, 5000] {
            let mut buf = TopKBuffer::new(Arc::clone(&keys), k, 8);
            for b in &input {
                buf.push(b.clone()).unwrap();
                assert!(buf.buffered_rows() <= k + k.max(8) + 25);
            }
            let got = tuples(&buf.finish().unwrap().into_iter().collect::<Vec<_>>());
            assert_eq!(got.len(), k.min(1000));
            // Sorted, and each position ties with the reference (ties may
            // pick other rows).
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(cmp_keys(g, w, &order), Ordering::Equal);
            }
            // Every kept row is one of the input rows.
            for g in &got {
                assert!(want.contains(g));
            }
        }
    }

    #[test]
    fn topk_zero_and_empty() {
        let registry = FunctionRegistry::with_defaults();
        let b = batch(vec![Some(1)], vec![None], vec![None]);
        let keys =
            Arc::new(SortKeys::try_new(&[key(0, true, true)], &b.schema(), &registry).unwrap());
        let mut buf = TopKBuffer::new(Arc::clone(&keys), 0, 8);
        buf.push(b).unwrap();
        assert!(buf.finish().unwrap().is_none());
        let buf = TopKBuffer::new(keys, 3, 8);
        assert!(buf.finish().unwrap().is_none());
    }

    #[tokio::test]
    async fn topk_operator() {
        let b = batch(
            vec![Some(5), Some(1), None, Some(5), Some(3), Some(5)],
            vec![Some("x"), Some("y"), Some("z"), Some("w"), None, Some("v")],
            vec![Some(1), Some(2), Some(3), Some(4), Some(5), Some(6)],
        );
        let schema = b.schema();
        let plan = |k| PhysicalPlan::Sort {
            input: Box::new(scan(&schema, 1)),
            order: vec![key(0, false, false), key(2, true, true)],
            fetch: Some(k),
        };
        let input = vec![b.slice(0, 3), b.slice(3, 3)];
        let out = run_plan(plan(2), input.clone(), 1).await.unwrap();
        let got: Vec<_> = tuples(&out).into_iter().map(|t| (t.0, t.2)).collect();
        assert_eq!(got, vec![(Some(5), Some(1)), (Some(5), Some(4))]);
        // k larger than the input: a full sort, NULLs last.
        let out = run_plan(plan(100), input.clone(), 4).await.unwrap();
        let got: Vec<_> = tuples(&out).into_iter().map(|t| t.2).collect();
        assert_eq!(
            got,
            vec![Some(1), Some(4), Some(6), Some(5), Some(2), Some(3)]
        );
        assert!(out.iter().all(|b| b.num_rows() <= 4));
        assert!(run_plan(plan(0), input, 4).await.unwrap().is_empty());
    }
}
