//! The window operator's kernel over one input partition: cuts the sorted
//! input into window partitions and evaluates each when it is complete.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::{concat, concat_batches, partition};
use arrow::datatypes::SchemaRef;
use datafusion_physical_expr::window::WindowExpr as DfWindowExpr;
use datafusion_physical_expr::PhysicalExpr;

use crate::error::{DataflowError, Result};
use crate::execution::BatchBuilder;
use crate::expr::evaluate_all;

/// The operator's state over one input partition: the rows of the current
/// (incomplete) window partition, and the output being coalesced.
pub struct WindowKernel {
    exprs: Arc<Vec<Arc<dyn DfWindowExpr>>>,
    keys: Arc<Vec<Arc<dyn PhysicalExpr>>>,
    input_schema: SchemaRef,
    schema: SchemaRef,
    pending: Vec<RecordBatch>,
    /// The partition key values of the last buffered row (arrays of one).
    last_key: Option<Vec<ArrayRef>>,
    output: BatchBuilder,
}

impl WindowKernel {
    pub fn new(
        exprs: Arc<Vec<Arc<dyn DfWindowExpr>>>,
        keys: Arc<Vec<Arc<dyn PhysicalExpr>>>,
        input_schema: SchemaRef,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Self {
        WindowKernel {
            exprs,
            keys,
            input_schema,
            output: BatchBuilder::new(Arc::clone(&schema), batch_size),
            schema,
            pending: Vec::new(),
            last_key: None,
        }
    }

    /// Bytes held: the rows of the window partition not complete yet
    /// (slices count their whole buffers, so this errs high).
    pub fn size(&self) -> usize {
        self.pending
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum()
    }

    /// Takes the next input batch (in the required order); returns the
    /// output batches completed so far.
    pub fn push(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(vec![]);
        }
        if self.keys.is_empty() {
            self.pending.push(batch);
            return Ok(vec![]);
        }
        let keys = evaluate_all(&self.keys, &batch)?;
        let last_start = partition(&keys)?
            .ranges()
            .last()
            .map(|r| r.start)
            .unwrap_or(0);
        let continues = match &self.last_key {
            Some(prev) => same_key(prev, &keys, 0)?,
            None => true,
        };
        self.last_key = Some(keys.iter().map(|k| k.slice(n - 1, 1)).collect());
        if last_start == 0 && continues {
            self.pending.push(batch);
            return Ok(vec![]);
        }
        // Everything before the batch's last window partition is complete.
        let mut complete = std::mem::take(&mut self.pending);
        if last_start > 0 {
            complete.push(batch.slice(0, last_start));
        }
        self.pending.push(batch.slice(last_start, n - last_start));
        self.evaluate(complete)
    }

    /// Ends the input: evaluates the last window partition and flushes.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        let pending = std::mem::take(&mut self.pending);
        self.last_key = None;
        let mut out = self.evaluate(pending)?;
        out.extend(self.output.finish()?);
        Ok(out)
    }

    /// Evaluates complete window partitions (sorted rows) into output rows.
    fn evaluate(&mut self, mut batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let batch = if batches.len() > 1 {
            concat_batches(&self.input_schema, &batches)?
        } else {
            match batches.pop() {
                Some(b) => b,
                None => return Ok(vec![]),
            }
        };
        let n = batch.num_rows();
        if n == 0 {
            return Ok(vec![]);
        }
        let ranges = if self.keys.is_empty() {
            std::iter::once(0..n).collect()
        } else {
            partition(&evaluate_all(&self.keys, &batch)?)?.ranges()
        };
        let mut results: Vec<Vec<ArrayRef>> =
            vec![Vec::with_capacity(ranges.len()); self.exprs.len()];
        for r in &ranges {
            let part = batch.slice(r.start, r.end - r.start);
            for (e, out) in self.exprs.iter().zip(results.iter_mut()) {
                let values = e.evaluate(&part)?;
                if values.len() != part.num_rows() {
                    return Err(DataflowError::Internal(format!(
                        "window function {} returned {} rows for {}",
                        e.name(),
                        values.len(),
                        part.num_rows()
                    )));
                }
                out.push(values);
            }
        }
        let mut columns = batch.columns().to_vec();
        for arrays in results {
            columns.push(if arrays.len() == 1 {
                Arc::clone(&arrays[0])
            } else {
                let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
                concat(&refs)?
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        let out = RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options)?;
        self.output.push(out)
    }
}

/// Whether row `i` of `keys` has the partition key `prev` (NULLs equal).
fn same_key(prev: &[ArrayRef], keys: &[ArrayRef], i: usize) -> Result<bool> {
    let pairs = prev
        .iter()
        .zip(keys)
        .map(|(p, k)| Ok(concat(&[p.as_ref(), k.slice(i, 1).as_ref()])?))
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(partition(&pairs)?.len() == 1)
}
