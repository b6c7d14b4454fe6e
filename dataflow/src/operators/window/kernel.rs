//! The window operator's kernel over one input partition: cuts the sorted
//! input into window partitions and evaluates each when it is complete.
//!
//! Buffering and evaluating are separate steps ([`WindowKernel::buffer`],
//! [`WindowKernel::evaluate_complete`]) so that the operator can reserve
//! what an evaluation takes before it starts. When that is refused, the
//! operator hands the first buffered window partition to chunked
//! evaluation ([`WindowKernel::start_chunked`], `large.rs`): from then on
//! the rows of that partition, buffered and still to come, wait in a
//! backlog that [`WindowKernel::step`] works off one batch at a time, and
//! the rows after it are buffered again as usual.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::{concat, concat_batches, partition};
use arrow::datatypes::SchemaRef;
use datafusion_physical_expr::window::WindowExpr as DfWindowExpr;
use datafusion_physical_expr::PhysicalExpr;

use super::large::{ChunkedPlan, Drain, Finished, LargePartition};
use super::streaming::with_columns;
use crate::error::{DataflowError, Result};
use crate::execution::{BatchBuilder, SpillWriter};
use crate::expr::evaluate_all;

/// Bytes per row estimated for each window function's output column.
const OUTPUT_BYTES_PER_ROW: usize = 16;

/// The operator's state over one input partition: the rows of the current
/// (incomplete) window partition, the rows of complete window partitions
/// not evaluated yet, the window partition evaluated in chunks if one did
/// not fit, and the output being coalesced.
pub struct WindowKernel {
    exprs: Arc<Vec<Arc<dyn DfWindowExpr>>>,
    keys: Arc<Vec<Arc<dyn PhysicalExpr>>>,
    input_schema: SchemaRef,
    schema: SchemaRef,
    pending: Vec<RecordBatch>,
    /// Rows of complete window partitions, in order, to evaluate.
    complete: Vec<RecordBatch>,
    /// The partition key values of the last buffered row (arrays of one).
    last_key: Option<Vec<ArrayRef>>,
    output: BatchBuilder,
    /// How a window partition that does not fit is evaluated; `None`
    /// when it cannot be.
    chunked: Option<Arc<ChunkedPlan>>,
    /// The window partition evaluated in chunks, if any.
    large: Option<LargePartition>,
    /// Rows of [`Self::large`] and after it, in order, to feed to it.
    backlog: VecDeque<RecordBatch>,
    /// A spilled window partition being read back.
    drain: Option<Box<Drain>>,
    input_ended: bool,
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
            complete: Vec::new(),
            last_key: None,
            chunked: None,
            large: None,
            backlog: VecDeque::new(),
            drain: None,
            input_ended: false,
        }
    }

    /// Lets a window partition that does not fit be evaluated in chunks
    /// by `plan`.
    pub fn with_chunked(mut self, plan: Option<Arc<ChunkedPlan>>) -> Self {
        self.chunked = plan;
        self
    }

    /// Bytes held: the buffered rows, of the window partition not complete
    /// yet and of the complete ones not evaluated yet, the backlog, and
    /// what the chunked evaluation retains (slices count their whole
    /// buffers, which they keep alive).
    pub fn size(&self) -> usize {
        let rows: usize = self
            .pending
            .iter()
            .chain(&self.complete)
            .chain(&self.backlog)
            .map(RecordBatch::get_array_memory_size)
            .sum();
        rows + self.large.as_ref().map_or(0, LargePartition::size)
            + self.drain.as_ref().map_or(0, |d| d.size())
    }

    /// Whether rows buffered before the last refusal (or after the window
    /// partition in chunks) wait in the backlog: while they are worked
    /// off, what is held does not grow beyond what was held then.
    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Bytes that evaluating the complete rows adds to [`Self::size`]
    /// (estimated): their copy into one batch when they are in pieces, and
    /// the output (the rows again, with the window columns).
    pub fn evaluation_size(&self) -> usize {
        let bytes: usize = self
            .complete
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum();
        let rows: usize = self.complete.iter().map(RecordBatch::num_rows).sum();
        let copy = if self.complete.len() > 1 { bytes } else { 0 };
        copy + bytes + rows * self.exprs.len() * OUTPUT_BYTES_PER_ROW
    }

    /// Takes the next input batch (in the required order) and evaluates
    /// the window partitions it completes: returns the output batches
    /// completed so far.
    pub fn push(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        self.buffer(batch)?;
        self.evaluate_complete()
    }

    /// Ends the input: evaluates the last window partition and flushes.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        self.end_input();
        let mut out = self.evaluate_complete()?;
        out.extend(self.flush()?);
        Ok(out)
    }

    /// Buffers the next input batch (in the required order); the rows of
    /// the window partitions it completes wait for
    /// [`Self::evaluate_complete`].
    pub fn buffer(&mut self, batch: RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        if self.large.is_some() || !self.backlog.is_empty() {
            self.backlog.push_back(batch);
            return Ok(());
        }
        if self.keys.is_empty() {
            self.pending.push(batch);
            return Ok(());
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
            return Ok(());
        }
        // Everything before the batch's last window partition is complete.
        self.complete.append(&mut self.pending);
        if last_start > 0 {
            self.complete.push(batch.slice(0, last_start));
        }
        self.pending.push(batch.slice(last_start, n - last_start));
        Ok(())
    }

    /// Ends the input: the last window partition is complete.
    pub fn end_input(&mut self) {
        self.complete.append(&mut self.pending);
        self.last_key = None;
        self.input_ended = true;
    }

    /// Hands the first buffered window partition to chunked evaluation,
    /// with a spill run from `spill_writer` if the plan spills. `false`
    /// when it cannot be: no plan for it, a partition in chunks already
    /// (whose own state is what does not fit), or nothing buffered.
    pub fn start_chunked(
        &mut self,
        spill_writer: impl FnOnce(&SchemaRef) -> Result<SpillWriter>,
    ) -> Result<bool> {
        let Some(plan) = &self.chunked else {
            return Ok(false);
        };
        if self.large.is_some() || self.drain.is_some() {
            return Ok(false);
        }
        let Some(first) = self
            .complete
            .iter()
            .chain(&self.pending)
            .find(|b| b.num_rows() > 0)
        else {
            return Ok(false);
        };
        let key = evaluate_all(&self.keys, &first.slice(0, 1))?;
        let spill = if plan.spills() {
            Some(spill_writer(&self.input_schema)?)
        } else {
            None
        };
        self.large = Some(LargePartition::try_new(Arc::clone(plan), key, spill)?);
        self.backlog.extend(self.complete.drain(..));
        self.backlog.extend(self.pending.drain(..));
        self.last_key = None;
        Ok(true)
    }

    /// One step of chunked evaluation: reads back one spilled batch, or
    /// feeds one backlog batch to the partition in chunks. Returns the
    /// output batches completed, `None` when there is nothing to do until
    /// more input arrives or the buffered rows are evaluated.
    pub fn step(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        if let Some(drain) = &mut self.drain {
            match drain.next()? {
                Some(out) => return self.emit(out).map(Some),
                None => self.drain = None,
            }
        }
        let Some(large) = &mut self.large else {
            // The rows after the partition in chunks are buffered again;
            // the operator then evaluates them or starts the next
            // partition in chunks.
            for batch in std::mem::take(&mut self.backlog) {
                self.buffer(batch)?;
            }
            if self.input_ended {
                self.end_input();
            }
            return Ok(None);
        };
        let Some(batch) = self.backlog.pop_front() else {
            if self.input_ended {
                return self.finish_large().map(Some);
            }
            return Ok(None);
        };
        let n = continuing_rows(&self.keys, &large.key, &batch)?;
        let out = large.push(&batch.slice(0, n))?;
        let mut outputs = self.emit(out)?;
        if n < batch.num_rows() {
            self.backlog
                .push_front(batch.slice(n, batch.num_rows() - n));
            outputs.extend(self.finish_large()?);
        }
        Ok(Some(outputs))
    }

    /// Ends the partition in chunks: emits its last rows, or starts
    /// reading it back when it spilled.
    fn finish_large(&mut self) -> Result<Vec<RecordBatch>> {
        match self.large.take() {
            Some(large) => match large.finish()? {
                Finished::Done(out) => self.emit(out),
                Finished::Spilled(drain) => {
                    self.drain = Some(drain);
                    Ok(vec![])
                }
            },
            None => Ok(vec![]),
        }
    }

    fn emit(&mut self, out: Option<RecordBatch>) -> Result<Vec<RecordBatch>> {
        match out {
            Some(b) => self.output.push(b),
            None => Ok(vec![]),
        }
    }

    /// Evaluates the complete window partitions buffered; returns the
    /// output batches completed so far.
    pub fn evaluate_complete(&mut self) -> Result<Vec<RecordBatch>> {
        let complete = std::mem::take(&mut self.complete);
        self.evaluate(complete)
    }

    /// The output rows not yet emitted, at the end.
    pub fn flush(&mut self) -> Result<Vec<RecordBatch>> {
        self.output.finish()
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
        let values = results
            .into_iter()
            .map(|arrays| {
                Ok(if arrays.len() == 1 {
                    Arc::clone(&arrays[0])
                } else {
                    let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
                    concat(&refs)?
                })
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let out = with_columns(&self.schema, &batch, values)?;
        self.output.push(out)
    }
}

/// How many rows at the start of `batch` have the partition key `key`.
fn continuing_rows(
    keys: &[Arc<dyn PhysicalExpr>],
    key: &[ArrayRef],
    batch: &RecordBatch,
) -> Result<usize> {
    if keys.is_empty() {
        return Ok(batch.num_rows());
    }
    let values = evaluate_all(keys, batch)?;
    if !same_key(key, &values, 0)? {
        return Ok(0);
    }
    Ok(partition(&values)?.ranges().first().map_or(0, |r| r.end))
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
