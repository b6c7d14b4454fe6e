//! Hash partitioning: rows dealt by the hash of their keys, over the
//! output partitions of an exchange ([`partition_indices`]) or over
//! [`SPILL_FAN_OUT`] spill runs ([`PartitionedSpill`]), so that an operator
//! whose state does not fit (a hash aggregate's groups, a set operation's
//! counts, a hash join's build side) can later process one partition at a
//! time. It is the one partitioning kernel of every spilling operator.
//!
//! A partition is self-contained: equal keys hash alike, so every row (or
//! group state) of a key lands in the same run, and the runs of two inputs
//! partitioned with the same level (both sides of a join or of a set
//! operation) pair up by index. A partition that still does not fit is
//! partitioned again one level deeper, with a different hash seed: rows
//! that share a run share their hash modulo the fan-out under one seed, so
//! under the same seed they would land in one run again:
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
//! reservation's error back. No level uses the exchange's hash seed
//! ([`PARTITION_HASH_SEED`]), which already decided which operator
//! partition a row reached: under it, all rows of one operator partition
//! would share one spill run.
//!
//! Rows whose key has a NULL can be spread over all runs instead
//! ([`PartitionedSpill::spreading_nulls`]) where they need not meet each
//! other (a join where NULL never equals NULL): hashed, they would all
//! share one run that no re-split can make smaller.
//!
//! Runs are made on their first row: a partition that receives nothing
//! leaves no file.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::buffer::NullBuffer;
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use datafusion_common::hash_utils::{create_hashes, RandomState};
use datafusion_physical_expr::PhysicalExpr;

use super::{SpillRun, SpillWriter};
use crate::error::{DataflowError, Result};
use crate::execution::{canonical_keys, TaskContext};
use crate::expr::evaluate_all;

#[cfg(test)]
mod tests;

/// The seed of the exchange's partitioning hash. Fixed, so that every
/// process (and both sides of a join) sends equal keys to the same
/// partition.
pub const PARTITION_HASH_SEED: u64 = 0x0ffc_0ffe_e5ee_d001;

/// How many runs one level of spilling deals rows over.
pub const SPILL_FAN_OUT: usize = 16;

/// The deepest level that may spill: level 0 partitions an operator's
/// input, levels 1..=`MAX_SPILL_LEVEL` repartition one partition of the
/// level above.
pub const MAX_SPILL_LEVEL: usize = 4;

/// The hash seed of spill level `level` (0 for the first split).
fn level_seed(level: usize) -> u64 {
    // An odd multiple of an odd constant is never 0: never the exchange's
    // seed, and distinct per level.
    PARTITION_HASH_SEED ^ 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(2 * level as u64 + 1)
}

/// Row indices of each of `n` partitions, by hash of the key columns
/// `keys` in canonical form (`-0.0` and `0.0`, and all NaNs, go to one
/// partition) (`hashes` is scratch space). With `spread_nulls`, rows with a
/// NULL in any key go round-robin instead, to the partition after the
/// cursor (which moves on). Shared with the exchange.
pub fn partition_indices(
    keys: &[ArrayRef],
    n: usize,
    random_state: &RandomState,
    hashes: &mut Vec<u64>,
    spread_nulls: Option<&mut usize>,
) -> Result<Vec<Vec<u32>>> {
    let n = n.max(1);
    let num_rows = keys.first().map(|k| k.len()).unwrap_or(0);
    hashes.clear();
    hashes.resize(num_rows, 0);
    create_hashes(canonical_keys(keys).as_ref(), random_state, hashes)?;
    let mut parts: Vec<Vec<u32>> = vec![Vec::with_capacity(num_rows / n + 1); n];
    let nulls = spread_nulls.and_then(|cursor| Some((any_null(keys)?, cursor)));
    match nulls {
        None => {
            for (i, h) in hashes.iter().enumerate() {
                parts[(*h % n as u64) as usize].push(i as u32);
            }
        }
        Some((nulls, cursor)) => {
            for (i, h) in hashes.iter().enumerate() {
                let part = if nulls.is_null(i) {
                    *cursor = (*cursor + 1) % n;
                    *cursor
                } else {
                    (*h % n as u64) as usize
                };
                parts[part].push(i as u32);
            }
        }
    }
    Ok(parts)
}

/// The rows where any of `keys` is NULL (`None`: no such row).
fn any_null(keys: &[ArrayRef]) -> Option<NullBuffer> {
    keys.iter()
        .fold(None, |acc, k| {
            NullBuffer::union(acc.as_ref(), k.logical_nulls().as_ref())
        })
        .filter(|nulls| nulls.null_count() > 0)
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
    /// Where the last row with a NULL key went, when such rows are spread
    /// (see the module doc).
    spread_cursor: Option<usize>,
    /// The level: it picks the hash seed and where spreading starts.
    level: usize,
}

impl PartitionedSpill {
    /// Partitions of rows of `schema` by `keys` (expressions over
    /// `schema`) at level 0, the first split of an operator's input, which
    /// may always spill.
    pub fn new(
        ctx: &Arc<TaskContext>,
        schema: &SchemaRef,
        keys: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Self {
        Self::at_level(ctx, schema, keys, 0)
    }

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
        Ok(Self::at_level(ctx, schema, keys, level))
    }

    fn at_level(
        ctx: &Arc<TaskContext>,
        schema: &SchemaRef,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        level: usize,
    ) -> Self {
        PartitionedSpill {
            ctx: Arc::clone(ctx),
            schema: Arc::clone(schema),
            keys,
            random_state: RandomState::with_seed(level_seed(level)),
            writers: (0..SPILL_FAN_OUT).map(|_| None).collect(),
            hashes: Vec::new(),
            spread_cursor: None,
            level,
        }
    }

    /// Spreads rows with a NULL key over all runs (see the module doc).
    pub fn spreading_nulls(mut self) -> Self {
        self.spread_cursor = Some(self.level);
        self
    }

    /// Partitions of rows of another `schema` by its `keys` (of the same
    /// types as this one's) at the same level, spreading NULL keys if this
    /// one does: run `i` of both holds the same keys. For the second input
    /// of an operator that partitioned its first (e.g. the probe side
    /// after the build side).
    pub fn alongside(&self, schema: &SchemaRef, keys: Vec<Arc<dyn PhysicalExpr>>) -> Self {
        let other = Self::at_level(&self.ctx, schema, keys, self.level);
        match self.spread_cursor {
            Some(_) => other.spreading_nulls(),
            None => other,
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
        let parts = partition_indices(
            &keys,
            SPILL_FAN_OUT,
            &self.random_state,
            &mut self.hashes,
            self.spread_cursor.as_mut(),
        )?;
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

    /// Ends every run: [`SPILL_FAN_OUT`] of them in partition order (the
    /// same index pairs runs of inputs partitioned alike), `None` where a
    /// partition received no row.
    pub fn finish(self) -> Result<Vec<Option<SpillRun>>> {
        self.writers
            .into_iter()
            .map(|w| w.map(SpillWriter::finish).transpose())
            .collect()
    }
}
