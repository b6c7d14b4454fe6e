//! A k-way merge of sorted inputs over row-encoded keys ([`Merger`]), and
//! its use over sorted runs held in memory or spilled to disk
//! ([`RunMerge`] over [`RunSource`]s).

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch, RecordBatchOptions};
use arrow::compute::interleave;
use arrow::datatypes::SchemaRef;

use super::keys::{SortKeys, SortedRun};
use crate::error::{DataflowError, Result};
use crate::execution::SpillReader;

/// What [`Merger::next_step`] asks of its caller.
pub enum MergeStep {
    /// An output batch.
    Emit(RecordBatch),
    /// The next sorted batch of input `i` is needed: answer with
    /// [`Merger::push`] (`None` when the input is exhausted).
    Need(usize),
    /// The merge is complete.
    Done,
}

struct Cursor {
    run: SortedRun,
    pos: usize,
    /// The index of `run.batch` in `Merger::batches`.
    slot: usize,
}

/// A k-way merge of sorted inputs, each a sequence of [`SortedRun`]s, over a
/// binary min-heap of input cursors. Synchronous: the caller feeds the input
/// batches the merge asks for, so the same code serves in-memory runs and
/// streams. Ties are broken by input index.
pub struct Merger {
    schema: SchemaRef,
    batch_size: usize,
    /// Rows still to emit (`fetch`).
    remaining: usize,
    inputs: usize,
    cursors: Vec<Option<Cursor>>,
    /// Inputs with a cursor, as a min-heap (once `heap_built`).
    heap: Vec<usize>,
    heap_built: bool,
    /// Inputs `0..next_init` received their first batch (or ended).
    next_init: usize,
    /// The input whose batch the merge waits for.
    need: Option<usize>,
    /// Batches referenced by `indices` or by a cursor.
    batches: Vec<RecordBatch>,
    /// (slot, row) of the rows of the next output batch.
    indices: Vec<(usize, usize)>,
}

impl Merger {
    pub fn new(schema: SchemaRef, inputs: usize, batch_size: usize, fetch: Option<usize>) -> Self {
        Merger {
            schema,
            batch_size: batch_size.max(1),
            remaining: fetch.unwrap_or(usize::MAX),
            inputs,
            cursors: (0..inputs).map(|_| None).collect(),
            heap: Vec::with_capacity(inputs),
            heap_built: false,
            next_init: 0,
            need: None,
            batches: Vec::new(),
            indices: Vec::new(),
        }
    }

    /// Advances the merge until it has an output batch, needs an input
    /// batch, or is done.
    pub fn next_step(&mut self) -> Result<MergeStep> {
        if let Some(i) = self.need {
            return Ok(MergeStep::Need(i));
        }
        if self.remaining > 0 && self.next_init < self.inputs {
            self.need = Some(self.next_init);
            return Ok(MergeStep::Need(self.next_init));
        }
        if !self.heap_built {
            self.heap_built = true;
            for i in (0..self.heap.len() / 2).rev() {
                self.sift_down(i);
            }
        }
        loop {
            if self.remaining == 0 || self.heap.is_empty() {
                if !self.indices.is_empty() {
                    return Ok(MergeStep::Emit(self.flush()?));
                }
                self.heap.clear();
                self.cursors.iter_mut().for_each(|c| *c = None);
                self.batches.clear();
                return Ok(MergeStep::Done);
            }
            if self.indices.len() >= self.batch_size {
                return Ok(MergeStep::Emit(self.flush()?));
            }
            let top = self.heap[0];
            let single = self.heap.len() == 1;
            let room = (self.batch_size - self.indices.len()).min(self.remaining);
            let Some(c) = self.cursors[top].as_mut() else {
                return Err(DataflowError::Internal("merge heap without cursor".into()));
            };
            // The only input left: take as many rows as fit at once.
            let n = if single {
                room.min(c.run.num_rows() - c.pos)
            } else {
                1
            };
            self.indices.extend((c.pos..c.pos + n).map(|r| (c.slot, r)));
            c.pos += n;
            self.remaining -= n;
            if c.pos >= c.run.num_rows() {
                if self.remaining > 0 {
                    self.need = Some(top);
                    return Ok(MergeStep::Need(top));
                }
                continue;
            }
            if !single {
                self.sift_down(0);
            }
        }
    }

    /// Answers [`MergeStep::Need`] for input `i`: its next sorted batch, or
    /// `None` when it is exhausted. Empty batches are skipped (the merge
    /// asks again).
    pub fn push(&mut self, i: usize, run: Option<SortedRun>) -> Result<()> {
        if self.need != Some(i) {
            return Err(DataflowError::Internal(format!(
                "merge got a batch of input {i} it did not ask for"
            )));
        }
        if let Some(r) = &run {
            if r.rows.num_rows() != r.num_rows() {
                return Err(DataflowError::Internal(
                    "sort keys do not match batch".into(),
                ));
            }
            if r.batch.num_columns() != self.schema.fields().len() {
                return Err(DataflowError::Internal(format!(
                    "merge input has {} columns, expected {}",
                    r.batch.num_columns(),
                    self.schema.fields().len()
                )));
            }
        }
        match run {
            Some(run) if run.num_rows() == 0 => {}
            Some(run) => {
                self.need = None;
                let slot = self.batches.len();
                self.batches.push(run.batch.clone());
                self.cursors[i] = Some(Cursor { run, pos: 0, slot });
                if self.heap_built {
                    // `i` was the top of the heap.
                    self.sift_down(0);
                } else {
                    self.heap.push(i);
                    self.next_init += 1;
                }
            }
            None => {
                self.need = None;
                self.cursors[i] = None;
                if self.heap_built {
                    // `i` was the top of the heap: remove it.
                    if let Some(last) = self.heap.pop() {
                        if !self.heap.is_empty() {
                            self.heap[0] = last;
                            self.sift_down(0);
                        }
                    }
                } else {
                    self.next_init += 1;
                }
            }
        }
        Ok(())
    }

    fn less(&self, a: usize, b: usize) -> bool {
        match (&self.cursors[a], &self.cursors[b]) {
            (Some(x), Some(y)) => match x.run.rows.row(x.pos).cmp(&y.run.rows.row(y.pos)) {
                Ordering::Equal => a < b,
                o => o == Ordering::Less,
            },
            _ => false,
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                return;
            }
            let mut m = l;
            if l + 1 < n && self.less(self.heap[l + 1], self.heap[l]) {
                m = l + 1;
            }
            if self.less(self.heap[m], self.heap[i]) {
                self.heap.swap(i, m);
                i = m;
            } else {
                return;
            }
        }
    }

    /// Builds the output batch from `indices` and releases the batches no
    /// cursor needs any more.
    fn flush(&mut self) -> Result<RecordBatch> {
        let n = self.indices.len();
        let columns = (0..self.schema.fields().len())
            .map(|col| {
                let arrays: Vec<&dyn Array> = self
                    .batches
                    .iter()
                    .map(|b| b.column(col).as_ref())
                    .collect();
                interleave(&arrays, &self.indices)
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.indices.clear();
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        let out = RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options)?;
        let mut batches = Vec::with_capacity(self.heap.len() + 1);
        for c in self.cursors.iter_mut().flatten() {
            if c.pos < c.run.num_rows() {
                c.slot = batches.len();
                batches.push(c.run.batch.clone());
            }
        }
        self.batches = batches;
        Ok(out)
    }
}

/// Merges sorted runs held in memory, yielding batches of `batch_size`.
pub fn merge_runs(
    schema: SchemaRef,
    runs: Vec<SortedRun>,
    batch_size: usize,
    fetch: Option<usize>,
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    let mut merge = RunMerge::new(schema, runs, batch_size, fetch);
    while let Some(b) = merge.next_batch()? {
        out.push(b);
    }
    Ok(out)
}

/// One input of a [`RunMerge`]: a sorted run.
pub enum RunSource {
    /// A run held in memory (taken when the merge asks for it).
    Memory(Option<SortedRun>),
    /// A sorted run spilled to disk, read back one batch at a time; the
    /// keys are not spilled, so each batch's keys are encoded again.
    Spilled {
        reader: SpillReader,
        keys: Arc<SortKeys>,
    },
}

impl RunSource {
    /// The next sorted batch of the run, `None` at its end. A spilled run
    /// read to its end is dropped at once, which deletes its file.
    fn next_run(&mut self) -> Result<Option<SortedRun>> {
        match self {
            RunSource::Memory(run) => Ok(run.take()),
            RunSource::Spilled { reader, keys } => match reader.next() {
                Some(batch) => Ok(Some(keys.run(batch?)?)),
                None => {
                    *self = RunSource::Memory(None);
                    Ok(None)
                }
            },
        }
    }
}

/// A merge of sorted runs producing one output batch per call. Ties are
/// broken by the order of the runs, so merging consecutive runs first and
/// the results after gives the same order as merging all at once.
pub struct RunMerge {
    merger: Merger,
    sources: Vec<RunSource>,
}

impl RunMerge {
    /// A merge of runs held in memory.
    pub fn new(
        schema: SchemaRef,
        runs: Vec<SortedRun>,
        batch_size: usize,
        fetch: Option<usize>,
    ) -> Self {
        let sources = runs
            .into_iter()
            .map(|r| RunSource::Memory(Some(r)))
            .collect();
        Self::with_sources(schema, sources, batch_size, fetch)
    }

    /// A merge of runs held in memory or spilled.
    pub fn with_sources(
        schema: SchemaRef,
        sources: Vec<RunSource>,
        batch_size: usize,
        fetch: Option<usize>,
    ) -> Self {
        RunMerge {
            merger: Merger::new(schema, sources.len(), batch_size, fetch),
            sources,
        }
    }

    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            match self.merger.next_step()? {
                MergeStep::Emit(b) => return Ok(Some(b)),
                MergeStep::Need(i) => {
                    let run = match self.sources.get_mut(i) {
                        Some(source) => source.next_run()?,
                        None => None,
                    };
                    self.merger.push(i, run)?;
                }
                MergeStep::Done => return Ok(None),
            }
        }
    }
}

/// Slices `batch` into batches of at most `batch_size` rows.
pub fn slices(batch: &RecordBatch, batch_size: usize) -> Vec<RecordBatch> {
    let batch_size = batch_size.max(1);
    (0..batch.num_rows())
        .step_by(batch_size)
        .map(|off| batch.slice(off, batch_size.min(batch.num_rows() - off)))
        .collect()
}
