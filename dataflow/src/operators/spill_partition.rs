//! Hash-partitioning batches into spill runs: the kernel of every operator
//! that spills by splitting its state on a key (the grace hash join; the
//! hash aggregate can use it the same way).
//!
//! Each row goes to run `hash(keys) % fan_out`. Rows with equal keys land
//! in the same run, so an operator can later process run `i` of one input
//! with run `i` of another, one pair at a time. The hash seed depends on
//! the partitioning `level`: rows that share a run share their hash modulo
//! the fan-out under one seed, so splitting such a run again needs another
//! seed; every level also differs from the exchange's seed, which already
//! decided which operator partition a row reached.
//!
//! Runs are made on their first row: a partition that receives nothing
//! leaves no file.
//!
//! Rows whose key has a NULL can be spread over all runs instead
//! ([`SpillPartitioner::spreading_nulls`]) where they need not meet each
//! other (a join where NULL never equals NULL): hashed, they would all
//! share one run that no re-split can make smaller.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch, UInt32Array};
use arrow::buffer::NullBuffer;
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use datafusion_common::hash_utils::{create_hashes, RandomState};
use datafusion_physical_expr::PhysicalExpr;

use super::exchange::PARTITION_HASH_SEED;
use crate::error::Result;
use crate::execution::{SpillRun, SpillWriter, TaskContext};
use crate::expr::evaluate_all;

#[cfg(test)]
mod tests;

/// The hash seed of partitioning level `level` (0 for the first split).
pub fn level_seed(level: u32) -> u64 {
    // An odd multiple of an odd constant is never 0: never the exchange's
    // seed, and distinct per level.
    PARTITION_HASH_SEED ^ 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(2 * u64::from(level) + 1)
}

/// Writes batches into `fan_out` spill runs by hash of their keys.
pub struct SpillPartitioner {
    ctx: Arc<TaskContext>,
    schema: SchemaRef,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    random_state: RandomState,
    writers: Vec<Option<SpillWriter>>,
    hashes: Vec<u64>,
    /// Whether rows with a NULL key go round-robin (see the module doc).
    spread_nulls: bool,
    /// Where the next spread row goes.
    next_spread: usize,
}

impl SpillPartitioner {
    /// A partitioner of batches of `schema` on `keys` (evaluated per
    /// batch) at partitioning `level` (see [`level_seed`]).
    pub fn new(
        ctx: &Arc<TaskContext>,
        schema: &SchemaRef,
        keys: &[Arc<dyn PhysicalExpr>],
        fan_out: usize,
        level: u32,
    ) -> Self {
        SpillPartitioner {
            ctx: Arc::clone(ctx),
            schema: Arc::clone(schema),
            keys: keys.to_vec(),
            random_state: RandomState::with_seed(level_seed(level)),
            writers: (0..fan_out.max(1)).map(|_| None).collect(),
            hashes: Vec::new(),
            spread_nulls: false,
            next_spread: level as usize,
        }
    }

    /// Spreads rows with a NULL key over all runs.
    pub fn spreading_nulls(mut self) -> Self {
        self.spread_nulls = true;
        self
    }

    /// Writes the rows of `batch` to their runs.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let n = self.writers.len();
        let arrays = evaluate_all(&self.keys, batch)?;
        self.hashes.clear();
        self.hashes.resize(batch.num_rows(), 0);
        create_hashes(&arrays, &self.random_state, &mut self.hashes)?;
        let nulls = if self.spread_nulls {
            arrays.iter().fold(None, |acc, a| {
                NullBuffer::union(acc.as_ref(), a.logical_nulls().as_ref())
            })
        } else {
            None
        };
        let mut parts: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (i, h) in self.hashes.iter().enumerate() {
            let part = if nulls.as_ref().is_some_and(|nb| nb.is_null(i)) {
                self.next_spread = (self.next_spread + 1) % n;
                self.next_spread
            } else {
                (*h % n as u64) as usize
            };
            parts[part].push(i as u32);
        }
        for (writer, indices) in self.writers.iter_mut().zip(parts) {
            if indices.is_empty() {
                continue;
            }
            let rows = if indices.len() == batch.num_rows() {
                batch.clone()
            } else {
                take_record_batch(batch, &UInt32Array::from(indices))?
            };
            let w = match writer {
                Some(w) => w,
                None => writer.insert(self.ctx.spill_writer(&self.schema)?),
            };
            w.write(&rows)?;
        }
        Ok(())
    }

    /// Ends every run: `None` where a partition received no row.
    pub fn finish(self) -> Result<Vec<Option<SpillRun>>> {
        self.writers
            .into_iter()
            .map(|w| w.map(SpillWriter::finish).transpose())
            .collect()
    }
}
