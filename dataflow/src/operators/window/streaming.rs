//! Evaluating window expressions over one window partition fed in
//! chunks, in memory bounded by the frames rather than by the partition.
//!
//! This drives DataFusion's stateful window evaluation (the one its
//! bounded window operator uses) for a single window partition: each
//! chunk is appended to the partition's retained rows, every expression
//! computes the rows whose frames are complete, the rows all expressions
//! computed are emitted, and the rows no future frame can reach are
//! dropped. Running aggregates, sliding frames ending at or before a
//! bounded FOLLOWING offset, `row_number`, `rank`, `dense_rank`, `lag`,
//! `lead` and the value functions over such frames qualify
//! ([`streams`]); frames reaching UNBOUNDED FOLLOWING and functions that
//! need the partition's size do not.
//!
//! Rows computed per call are the same as those of the in-memory
//! evaluation: the frame of each row, and so the accumulator updates and
//! retractions, do not depend on how the rows were chunked.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use datafusion_expr::window_state::PartitionBatchState;
use datafusion_physical_expr::window::{
    PartitionBatches, PartitionKey, PartitionWindowAggStates, WindowEvalContext,
    WindowExpr as DfWindowExpr,
};

use crate::error::{DataflowError, Result};
use crate::plan::window::WindowExpr;

/// Whether `expr` (compiled into `compiled`) can be evaluated in chunks
/// with bounded memory. IGNORE NULLS is left out: `lag`/`lead` then look
/// back over a number of rows that the frame does not bound.
pub fn streams(expr: &WindowExpr, compiled: &Arc<dyn DfWindowExpr>) -> bool {
    !expr.ignore_nulls && compiled.uses_bounded_memory()
}

/// The state of some window expressions over the rows of one window
/// partition fed so far.
pub struct StreamingWindow {
    exprs: Vec<Arc<dyn DfWindowExpr>>,
    /// One state map per expression, holding the one partition.
    states: Vec<PartitionWindowAggStates>,
    /// The one partition's retained rows.
    partition: PartitionBatches,
    /// Rows at the start of the retained rows that were emitted.
    emitted: usize,
}

/// The key of the one partition in DataFusion's per-partition maps.
fn key() -> PartitionKey {
    vec![]
}

impl StreamingWindow {
    /// A new window partition of rows of `input` for `exprs`, all of which
    /// [`streams`].
    pub fn new(exprs: Vec<Arc<dyn DfWindowExpr>>, input: SchemaRef) -> Self {
        let mut partition = PartitionBatches::default();
        partition.insert(key(), PartitionBatchState::new(input));
        StreamingWindow {
            states: exprs
                .iter()
                .map(|_| PartitionWindowAggStates::default())
                .collect(),
            exprs,
            partition,
            emitted: 0,
        }
    }

    /// Bytes held: the retained rows (slices count their whole buffers)
    /// and the computed values not emitted yet.
    pub fn size(&self) -> usize {
        let rows: usize = self
            .partition
            .values()
            .map(|p| p.record_batch.get_array_memory_size())
            .sum();
        let values: usize = self
            .states
            .iter()
            .flat_map(|s| s.values())
            .map(|s| s.state.out_col.get_array_memory_size())
            .sum();
        rows + values
    }

    /// Takes the next rows of the partition; returns the rows whose values
    /// are now known, with one column per expression.
    pub fn push(&mut self, rows: &RecordBatch) -> Result<Option<(RecordBatch, Vec<ArrayRef>)>> {
        let part = self.part_mut()?;
        part.record_batch =
            concat_batches(&part.record_batch.schema(), [&part.record_batch, rows])?;
        self.evaluate()
    }

    /// Ends the partition; returns the remaining rows with their values.
    pub fn finish(&mut self) -> Result<Option<(RecordBatch, Vec<ArrayRef>)>> {
        self.part_mut()?.is_end = true;
        self.evaluate()
    }

    fn part_mut(&mut self) -> Result<&mut PartitionBatchState> {
        self.partition
            .get_mut(&key())
            .ok_or_else(|| DataflowError::Internal("window: streamed partition missing".into()))
    }

    /// Computes what the expressions can, emits what all of them computed,
    /// and drops the rows no frame needs any more.
    fn evaluate(&mut self) -> Result<Option<(RecordBatch, Vec<ArrayRef>)>> {
        let ctx = WindowEvalContext::default();
        for (e, state) in self.exprs.iter().zip(&mut self.states) {
            e.evaluate_stateful(&self.partition, state, &ctx)?;
        }
        let rows = match self.partition.get(&key()) {
            Some(p) => p.record_batch.clone(),
            None => {
                return Err(DataflowError::Internal(
                    "window: streamed partition missing".into(),
                ))
            }
        };
        let states = self
            .states
            .iter_mut()
            .map(|s| {
                s.get_mut(&key()).map(|w| &mut w.state).ok_or_else(|| {
                    DataflowError::Internal("window: state of a streamed partition missing".into())
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ready = states
            .iter()
            .map(|s| s.out_col.len())
            .min()
            .unwrap_or(rows.num_rows() - self.emitted);
        let out = if ready > 0 {
            let values = states.iter().map(|s| s.out_col.slice(0, ready)).collect();
            let out_rows = rows.slice(self.emitted, ready);
            self.emitted += ready;
            Some((out_rows, values))
        } else {
            None
        };
        let mut prune = self.emitted;
        for s in states {
            let left = s.out_col.len() - ready;
            s.out_col = s.out_col.slice(ready, left);
            prune = prune
                .min(s.window_frame_range.start)
                .min(s.last_calculated_index);
        }
        if prune > 0 {
            let part = self.part_mut()?;
            let n = part.record_batch.num_rows();
            part.record_batch = part.record_batch.slice(prune, n - prune);
            for s in &mut self.states {
                if let Some(w) = s.get_mut(&key()) {
                    w.state.prune_state(prune);
                }
            }
            self.emitted -= prune;
        }
        Ok(out)
    }
}

/// `rows` with `values` appended as columns, as a batch of `schema`.
pub fn with_columns(
    schema: &SchemaRef,
    rows: &RecordBatch,
    values: impl IntoIterator<Item = ArrayRef>,
) -> Result<RecordBatch> {
    let mut columns = rows.columns().to_vec();
    columns.extend(values);
    let options = RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}
