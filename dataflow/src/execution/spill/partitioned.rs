//! Hash-partitioned spilling: rows dealt by the hash of their keys over
//! [`SPILL_FAN_OUT`] spill runs, so that an operator whose hash table does
//! not fit can later process one partition at a time.
//!
//! A partition is self-contained: equal keys hash alike, so every row (or
//! group state) of a key lands in the same run, and the runs of two inputs
//! partitioned with the same level (e.g. both sides of a set operation)
//! pair up by index. A partition that still does not fit is partitioned
//! again one level deeper, with a different hash seed so that its rows
//! spread out instead of landing in one run again:
//!
//! ```text
//!  input ──▶ table ──refused──▶ level 0: runs 0..16 ──▶ run i ──▶ table
//!                                                         │ refused
//!                                                         ▼
//!                                     level 1: runs 0..16 of run i ──▶ ...
//! ```
//!
//! Past [`MAX_SPILL_LEVEL`] the state cannot be split further (one key
//! holds it all): [`PartitionedSpill::try_new`] gives the refused
//! reservation's error back. No level uses the exchange's hash seed, which
//! would put all rows of one exchange partition into the same spill run.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use datafusion_common::hash_utils::{create_hashes, RandomState};
use datafusion_physical_expr::PhysicalExpr;

use super::{SpillRun, SpillWriter};
use crate::error::{DataflowError, Result};
use crate::execution::TaskContext;
use crate::expr::evaluate_all;

/// How many runs one level of spilling deals rows over.
pub const SPILL_FAN_OUT: usize = 16;

/// The deepest level that may spill: level 0 partitions an operator's
/// input, levels 1..=`MAX_SPILL_LEVEL` repartition one partition of the
/// level above.
pub const MAX_SPILL_LEVEL: usize = 4;

/// The hash seed of spill level `level` (not the exchange's).
fn level_seed(level: usize) -> u64 {
    0x5e11_0ff5_eed0_0000 ^ (level as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Row indices of each of `n` partitions, by hash of the key columns
/// `keys` (`hashes` is scratch space). Shared with the exchange.
pub fn partition_indices(
    keys: &[ArrayRef],
    n: usize,
    random_state: &RandomState,
    hashes: &mut Vec<u64>,
) -> Result<Vec<Vec<u32>>> {
    let num_rows = keys.first().map(|k| k.len()).unwrap_or(0);
    hashes.clear();
    hashes.resize(num_rows, 0);
    create_hashes(keys, random_state, hashes)?;
    let mut parts: Vec<Vec<u32>> = vec![Vec::with_capacity(num_rows / n + 1); n];
    for (i, h) in hashes.iter().enumerate() {
        parts[(*h % n as u64) as usize].push(i as u32);
    }
    Ok(parts)
}

/// Rows of one schema dealt over [`SPILL_FAN_OUT`] spill runs by the hash
/// of their keys, at one level (see the module doc). Runs are opened when
/// their first row arrives.
pub struct PartitionedSpill {
    ctx: Arc<TaskContext>,
    schema: SchemaRef,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    random_state: RandomState,
    writers: Vec<Option<SpillWriter>>,
    hashes: Vec<u64>,
}

impl PartitionedSpill {
    /// Partitions of rows of `schema` by `keys` (expressions over
    /// `schema`) at spill level `level`. Past [`MAX_SPILL_LEVEL`] nothing
    /// can be split further: fails with `refused`, the error of the
    /// reservation that asked for the spill.
    pub fn try_new(
        ctx: &Arc<TaskContext>,
        schema: &SchemaRef,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        level: usize,
        refused: DataflowError,
    ) -> Result<Self> {
        if level > MAX_SPILL_LEVEL {
            return Err(refused);
        }
        Ok(PartitionedSpill {
            ctx: Arc::clone(ctx),
            schema: Arc::clone(schema),
            keys,
            random_state: RandomState::with_seed(level_seed(level)),
            writers: (0..SPILL_FAN_OUT).map(|_| None).collect(),
            hashes: Vec::new(),
        })
    }

    /// Partitions of rows of another `schema` by its `keys` (of the same
    /// types as this one's) at the same level: run `i` of both holds the
    /// same keys. For the second input of an operator that partitioned
    /// its first (e.g. the probe side after the build side).
    pub fn alongside(&self, schema: &SchemaRef, keys: Vec<Arc<dyn PhysicalExpr>>) -> Self {
        PartitionedSpill {
            ctx: Arc::clone(&self.ctx),
            schema: Arc::clone(schema),
            keys,
            random_state: self.random_state.clone(),
            writers: (0..SPILL_FAN_OUT).map(|_| None).collect(),
            hashes: Vec::new(),
        }
    }

    /// Appends the rows of `batch` to the runs of their partitions. A
    /// large batch (e.g. a whole hash table's) is dealt out a slice of the
    /// configured batch size at a time, so that the copies per partition
    /// stay small.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let (n, chunk) = (batch.num_rows(), self.ctx.config.batch_size.max(1));
        for offset in (0..n).step_by(chunk) {
            self.write_slice(&batch.slice(offset, chunk.min(n - offset)))?;
        }
        Ok(())
    }

    fn write_slice(&mut self, batch: &RecordBatch) -> Result<()> {
        let keys = evaluate_all(&self.keys, batch)?;
        let parts = partition_indices(&keys, SPILL_FAN_OUT, &self.random_state, &mut self.hashes)?;
        for (p, indices) in parts.into_iter().enumerate() {
            if indices.is_empty() {
                continue;
            }
            let rows = if indices.len() == batch.num_rows() {
                batch.clone()
            } else {
                take_record_batch(batch, &UInt32Array::from(indices))?
            };
            let writer = match &mut self.writers[p] {
                Some(w) => w,
                slot => slot.insert(self.ctx.spill_writer(&self.schema)?),
            };
            writer.write(&rows)?;
        }
        Ok(())
    }

    /// Ends every run: the partitions that got rows, in partition order
    /// (the same index pairs runs of inputs partitioned alike).
    pub fn finish(self) -> Result<Vec<(usize, SpillRun)>> {
        let mut runs = Vec::new();
        for (p, w) in self.writers.into_iter().enumerate() {
            if let Some(w) = w {
                runs.push((p, w.finish()?));
            }
        }
        Ok(runs)
    }
}

#[cfg(test)]
mod tests;
