//! Probing one built table: the probe batches in, the joined rows out in
//! chunks of at most a batch of pairs, then the build rows the join type
//! emits at the end. The in-memory join runs it once; the grace join once
//! per partition pair.

use std::sync::Arc;

use arrow::array::RecordBatch;
use futures::{Stream, StreamExt};

use super::super::keys::JoinKeys;
use super::super::spec::JoinSpec;
use super::super::table::{Cursor, JoinTable, ProbeMode, Prober};
use crate::error::Result;
use crate::execution::{OperatorMemory, TaskContext};
use crate::expr::evaluate_all;
use crate::stream::SendableRecordBatchStream;

/// What a null-aware anti join (`NOT IN`) must know about the whole probe
/// side before it emits a build row.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct NotInFacts {
    /// Any probe row at all (`x NOT IN (empty set)` is true even for a
    /// NULL `x`).
    seen: bool,
    /// Any probe row with a NULL key (then no row qualifies).
    has_null: bool,
}

impl NotInFacts {
    /// Whether no build row can qualify, whatever its key (the probe side
    /// holds a NULL).
    pub(super) fn removes_every_row(&self) -> bool {
        self.has_null
    }

    pub(super) fn observe(&mut self, keys: &JoinKeys, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.seen = true;
        if !self.has_null {
            let arrays = evaluate_all(&keys.right, batch)?;
            self.has_null = keys.nulls(&arrays).is_some_and(|nb| nb.null_count() > 0);
        }
        Ok(())
    }
}

/// What probing a table needs, the same for every table of a partition.
#[derive(Clone)]
pub(super) struct ProbeSettings {
    pub(super) spec: Arc<JoinSpec>,
    pub(super) keys: Arc<JoinKeys>,
    pub(super) mode: ProbeMode,
    /// Candidate pairs per chunk, and build rows per emitted batch.
    pub(super) batch_size: usize,
    /// `NOT IN` semantics (see [`NotInFacts`]).
    pub(super) null_aware: bool,
}

/// The probing of one table: per probe batch, then the build rows.
pub(super) struct TableProbe {
    table: Arc<JoinTable>,
    spec: Arc<JoinSpec>,
    keys: Arc<JoinKeys>,
    mode: ProbeMode,
    batch_size: usize,
    prober: Prober,
    build_matched: Vec<bool>,
    build_idx: Vec<u32>,
    probe_idx: Vec<u32>,
    /// The probe batch being joined, its matched rows, where probing
    /// resumes, and whether all its pairs were produced.
    batch: Option<RecordBatch>,
    probe_matched: Vec<bool>,
    cursor: Cursor,
    pairs_done: bool,
    /// The next build row [`TableProbe::next_build_rows`] looks at.
    build_start: usize,
}

impl TableProbe {
    pub(super) fn new(table: Arc<JoinTable>, settings: &ProbeSettings) -> Self {
        let spec = &settings.spec;
        let tracked = if spec.tracks_build() {
            table.num_rows()
        } else {
            0
        };
        TableProbe {
            prober: Prober::new(&settings.keys),
            table,
            spec: Arc::clone(spec),
            keys: Arc::clone(&settings.keys),
            mode: settings.mode,
            batch_size: settings.batch_size.max(1),
            build_matched: vec![false; tracked],
            build_idx: Vec::new(),
            probe_idx: Vec::new(),
            batch: None,
            probe_matched: Vec::new(),
            cursor: Cursor::start(),
            pairs_done: true,
            build_start: 0,
        }
    }

    /// Whether probe batches cannot give output: the build side is empty
    /// and so is the join's output then. (They must still be drained: an
    /// exchange producer stops feeding every partition once one consumer
    /// is gone.)
    pub(super) fn skips_probe(&self) -> bool {
        self.table.num_rows() == 0 && self.spec.empty_build_gives_empty()
    }

    /// Starts joining `batch`; [`TableProbe::next_rows`] gives its output.
    pub(super) fn start(&mut self, batch: RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        self.probe_matched.clear();
        if self.spec.tracks_probe() {
            self.probe_matched.resize(n, false);
        }
        self.pairs_done = self.table.num_rows() == 0;
        if !self.pairs_done {
            self.prober.prepare(&self.keys, &batch)?;
        }
        self.cursor = Cursor::start();
        self.batch = Some(batch);
        Ok(())
    }

    /// The next output rows of the current probe batch (the pairs of at
    /// most a batch of candidates, then its unmatched or matched rows);
    /// `None` once the batch is done.
    pub(super) fn next_rows(&mut self) -> Result<Option<RecordBatch>> {
        while !self.pairs_done {
            let Some(batch) = self.batch.as_ref() else {
                return Ok(None);
            };
            let (n, limit) = (batch.num_rows(), self.batch_size);
            self.build_idx.clear();
            self.probe_idx.clear();
            self.build_idx.reserve(n.min(limit));
            self.probe_idx.reserve(n.min(limit));
            self.pairs_done = self.prober.probe(
                &self.table,
                self.mode,
                &mut self.cursor,
                limit,
                &mut self.build_idx,
                &mut self.probe_idx,
                &mut self.build_matched,
            )?;
            if !self.build_idx.is_empty() {
                let joined = self.spec.process_pairs(
                    &self.table.batch,
                    batch,
                    std::mem::take(&mut self.build_idx),
                    std::mem::take(&mut self.probe_idx),
                    &mut self.build_matched,
                    &mut self.probe_matched,
                )?;
                if joined.is_some() {
                    return Ok(joined);
                }
            }
        }
        match self.batch.take() {
            Some(batch) => self.spec.finish_probe_batch(&batch, &self.probe_matched),
            None => Ok(None),
        }
    }

    /// After the last probe batch: applies what a null-aware anti join
    /// learnt about the whole probe side.
    pub(super) fn end_probe(&mut self, not_in: Option<NotInFacts>) -> Result<()> {
        let Some(facts) = not_in.filter(|f| f.seen) else {
            return Ok(());
        };
        // x NOT IN (non-empty set): false when the set holds a NULL,
        // unknown when x is NULL; either way the row goes.
        if facts.has_null {
            self.build_matched.iter_mut().for_each(|m| *m = true);
        } else {
            let arrays = evaluate_all(&self.keys.left, &self.table.batch)?;
            if let Some(nb) = self.keys.nulls(&arrays) {
                for (i, m) in self.build_matched.iter_mut().enumerate() {
                    *m |= nb.is_null(i);
                }
            }
        }
        Ok(())
    }

    /// The table's reservation, emptied, once this probe is done with the
    /// table (a new one if the table is still shared).
    pub(super) fn into_memory(self, ctx: &TaskContext) -> OperatorMemory {
        Arc::try_unwrap(self.table)
            .map(JoinTable::into_memory)
            .unwrap_or_else(|_| ctx.reserve_spillable(Some("build")))
    }

    /// After [`TableProbe::end_probe`]: the next build rows the join emits
    /// (unmatched or matched ones, a batch at a time); `None` at the end.
    pub(super) fn next_build_rows(&mut self) -> Result<Option<RecordBatch>> {
        if !self.spec.tracks_build() {
            return Ok(None);
        }
        let rows = self.table.num_rows();
        while self.build_start < rows {
            let start = self.build_start;
            self.build_start += self.batch_size;
            let out = self.spec.finish_build_rows(
                &self.table.batch,
                &self.build_matched,
                start,
                self.batch_size,
            )?;
            if out.is_some() {
                return Ok(out);
            }
        }
        Ok(None)
    }
}

/// The in-memory join of a partition: every batch of `right` through
/// `table`, then the build rows the join emits. Output pieces are not
/// batch-sized (the caller coalesces them).
pub(super) fn join_in_memory(
    table: Arc<JoinTable>,
    mut right: SendableRecordBatchStream,
    settings: ProbeSettings,
) -> impl Stream<Item = Result<RecordBatch>> + Send {
    async_stream::try_stream! {
        let mut not_in = settings.null_aware.then(NotInFacts::default);
        let mut probe = TableProbe::new(table, &settings);
        while let Some(batch) = right.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 || probe.skips_probe() {
                continue;
            }
            if let Some(facts) = not_in.as_mut() {
                facts.observe(&settings.keys, &batch)?;
            }
            probe.start(batch)?;
            while let Some(rows) = probe.next_rows()? {
                yield rows;
            }
        }
        drop(right);
        probe.end_probe(not_in)?;
        while let Some(rows) = probe.next_build_rows()? {
            yield rows;
        }
    }
}
