//! The sorted runs of one Sort partition: held in memory while the
//! partition's spillable reservation allows, spilled to disk when it does
//! not (an external merge sort).
//!
//! ```text
//!  sorted runs ──> memory ──(reservation refused)──> merge them all into
//!                                                    one spilled run
//!  end of input:
//!    nothing spilled ──> merge the runs in memory (exactly as without a limit)
//!    spilled         ──> while more spilled runs than the fan-in:
//!                          merge consecutive groups of them into longer runs
//!                        final merge: the spilled runs (one batch each in
//!                        memory) followed by the runs still in memory
//! ```
//!
//! Order: the merge breaks ties by the order of its runs. Runs are only
//! ever merged in consecutive groups, in input order, and the runs still in
//! memory are newer than every spilled run, so the output is row for row
//! the output of the in-memory sort, ties included.
//!
//! Memory: the runs in memory are reserved as they arrive. A merge of
//! spilled runs reserves one read-back batch per run (the largest batch
//! written, with its encoded keys estimated from the runs it came from);
//! its fan-in is [`MAX_FAN_IN`], halved while the reservation is refused,
//! after first spilling the runs still in memory. When even two runs cannot
//! be merged, the sort fails with the refusal (resources exhausted).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use super::keys::{SortKeys, SortedRun};
use super::merge::{slices, RunMerge, RunSource};
use crate::error::{DataflowError, Result};
use crate::execution::{compact_views, OperatorMemory, SpillRun, TaskContext};

/// The most spilled runs merged at once: each holds one batch in memory
/// and an open file.
pub(crate) const MAX_FAN_IN: usize = 64;

/// The sorted runs of one partition, in memory or spilled.
pub(crate) struct SortRuns {
    ctx: Arc<TaskContext>,
    keys: Arc<SortKeys>,
    schema: SchemaRef,
    batch_size: usize,
    /// Spillable: holds `runs` and, while merging, the read-back batches.
    memory: OperatorMemory,
    /// Runs in memory, newer than every spilled run.
    runs: Vec<SortedRun>,
    /// Bytes of `runs`.
    held: usize,
    /// Spilled runs, in input order.
    spilled: Vec<SpilledRun>,
}

/// A sorted run on disk, and what its batches take when read back.
struct SpilledRun {
    run: SpillRun,
    /// The largest batch written plus its encoded keys (estimated).
    batch_bytes: usize,
    /// Bytes of encoded sort keys per row, averaged over the merged runs.
    key_bytes_per_row: usize,
}

impl SpilledRun {
    fn source(self, keys: &Arc<SortKeys>) -> Result<RunSource> {
        Ok(RunSource::Spilled {
            reader: self.run.read()?,
            keys: Arc::clone(keys),
        })
    }
}

impl SortRuns {
    /// Reserves (nothing yet) at once, so that the partitions of the sort
    /// share the pool fairly from their first run.
    pub(crate) fn new(
        ctx: &Arc<TaskContext>,
        keys: Arc<SortKeys>,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Self {
        SortRuns {
            ctx: Arc::clone(ctx),
            keys,
            schema,
            batch_size: batch_size.max(1),
            memory: ctx.reserve_spillable(None),
            runs: Vec::new(),
            held: 0,
            spilled: Vec::new(),
        }
    }

    /// Adds a sorted run; spills the runs in memory when the reservation
    /// is refused.
    pub(crate) fn push(&mut self, run: SortedRun) -> Result<()> {
        let held = self.held + run.size();
        self.runs.push(run);
        match self.memory.try_resize(held) {
            Ok(()) => {
                self.held = held;
                Ok(())
            }
            Err(DataflowError::ResourcesExhausted { .. }) => self.spill_runs(),
            Err(e) => Err(e),
        }
    }

    /// Ends the input: the sorted rows, one batch of about `batch_size`
    /// rows at a time.
    pub(crate) fn finish(mut self) -> Result<SortedOutput> {
        if self.spilled.is_empty() {
            let batches = if self.runs.len() <= 1 {
                let run = self.runs.pop();
                let batches = run.iter().flat_map(|r| slices(&r.batch, self.batch_size));
                Batches::Slices(batches.collect::<Vec<_>>().into_iter())
            } else {
                let runs = std::mem::take(&mut self.runs);
                Batches::Merge(RunMerge::new(
                    Arc::clone(&self.schema),
                    runs,
                    self.batch_size,
                    None,
                ))
            };
            return Ok(SortedOutput {
                batches,
                _memory: self.memory,
            });
        }
        loop {
            let fan_in = self.reserve_merge()?;
            if self.spilled.len() <= fan_in {
                break;
            }
            self.merge_pass(fan_in)?;
        }
        let mut sources = Vec::with_capacity(self.spilled.len() + self.runs.len());
        for s in std::mem::take(&mut self.spilled) {
            sources.push(s.source(&self.keys)?);
        }
        sources.extend(
            std::mem::take(&mut self.runs)
                .into_iter()
                .map(|r| RunSource::Memory(Some(r))),
        );
        let merge =
            RunMerge::with_sources(Arc::clone(&self.schema), sources, self.batch_size, None);
        Ok(SortedOutput {
            batches: Batches::Merge(merge),
            _memory: self.memory,
        })
    }

    /// Merges the runs in memory into one spilled run and frees the
    /// reservation.
    fn spill_runs(&mut self) -> Result<()> {
        let runs = std::mem::take(&mut self.runs);
        if runs.is_empty() {
            return Ok(());
        }
        let rows: usize = runs.iter().map(SortedRun::num_rows).sum();
        let key_bytes: usize = runs.iter().map(|r| r.rows.size()).sum();
        let key_bytes_per_row = key_bytes.div_ceil(rows.max(1));
        let sources = runs
            .into_iter()
            .map(|r| RunSource::Memory(Some(r)))
            .collect();
        let spilled = self.write_merged(sources, key_bytes_per_row)?;
        self.spilled.push(spilled);
        self.held = 0;
        self.memory.free();
        Ok(())
    }

    /// Reserves memory to merge spilled runs, one read-back batch each, on
    /// top of the runs in memory; returns how many runs may be merged at
    /// once. On a refusal, spills the runs in memory first, then halves the
    /// fan-in. Two read-back batches are the least any merge needs to make
    /// progress: like an operator's input batch in flight, they are working
    /// memory, used without a reservation when the pool refuses even that
    /// (the pool's fair share can shrink below it while other operators of
    /// the query still hold their reservations).
    fn reserve_merge(&mut self) -> Result<usize> {
        let mut fan_in = self.spilled.len().min(MAX_FAN_IN);
        loop {
            let smallest = self.spilled.len().min(2);
            let per_run = self.spilled.iter().map(|s| s.batch_bytes).max();
            let needs = self.held + fan_in * per_run.unwrap_or(0);
            match self.memory.try_resize(needs) {
                Ok(()) => return Ok(fan_in),
                Err(DataflowError::ResourcesExhausted { .. }) if !self.runs.is_empty() => {
                    self.spill_runs()?;
                    fan_in = self.spilled.len().min(MAX_FAN_IN);
                }
                Err(DataflowError::ResourcesExhausted { .. }) if fan_in > smallest => {
                    fan_in = (fan_in / 2).max(smallest);
                }
                Err(DataflowError::ResourcesExhausted { .. }) => {
                    self.memory.free();
                    return Ok(fan_in);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One merge pass: merges the spilled runs in consecutive groups of
    /// `fan_in` into longer runs.
    fn merge_pass(&mut self, fan_in: usize) -> Result<()> {
        let mut rest = std::mem::take(&mut self.spilled).into_iter();
        loop {
            let group: Vec<SpilledRun> = rest.by_ref().take(fan_in.max(2)).collect();
            if group.len() <= 1 {
                self.spilled.extend(group);
                return Ok(());
            }
            let key_bytes_per_row = group.iter().map(|s| s.key_bytes_per_row).max();
            let sources = group
                .into_iter()
                .map(|s| s.source(&self.keys))
                .collect::<Result<Vec<_>>>()?;
            let merged = self.write_merged(sources, key_bytes_per_row.unwrap_or(0))?;
            self.spilled.push(merged);
        }
    }

    /// Merges `sources` into a new spilled run, batch by batch.
    fn write_merged(
        &self,
        sources: Vec<RunSource>,
        key_bytes_per_row: usize,
    ) -> Result<SpilledRun> {
        let mut merge =
            RunMerge::with_sources(Arc::clone(&self.schema), sources, self.batch_size, None);
        let mut writer = self.ctx.spill_writer(&self.schema)?;
        let mut batch_bytes = 0;
        while let Some(b) = merge.next_batch()? {
            // Measured as it will be read back: view arrays compacted.
            let b = compact_views(&b)?;
            let bytes = b.get_array_memory_size() + b.num_rows() * key_bytes_per_row;
            batch_bytes = batch_bytes.max(bytes);
            writer.write(&b)?;
        }
        Ok(SpilledRun {
            run: writer.finish()?,
            batch_bytes,
            key_bytes_per_row,
        })
    }
}

/// The sorted rows of one partition, and the memory they hold until the
/// output is dropped.
pub(crate) struct SortedOutput {
    batches: Batches,
    _memory: OperatorMemory,
}

enum Batches {
    /// One run (or none), cut into batches.
    Slices(std::vec::IntoIter<RecordBatch>),
    Merge(RunMerge),
}

impl SortedOutput {
    pub(crate) fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        match &mut self.batches {
            Batches::Slices(batches) => Ok(batches.next()),
            Batches::Merge(merge) => merge.next_batch(),
        }
    }
}
