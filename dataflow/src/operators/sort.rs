//! Sort: sorts each partition by its sort keys.
//!
//! Input batches are coalesced into runs of about `batch_size` rows; each
//! run is sorted on arrival (so the CPU work comes in batch-sized steps) and
//! its sort keys are encoded in the arrow row format. At the end of the
//! input the runs are k-way merged (see [`Merger`]), one output batch of
//! about `batch_size` rows at a time.
//!
//! This module also holds the helpers shared with [`super::topk`] and
//! [`super::sort_merge`]: [`SortKeys`] (compiled sort expressions and their
//! row converter) and [`Merger`] (a k-way merge of sorted inputs over
//! row-encoded keys).

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::compute::{concat_batches, interleave, lexsort_to_indices, take, SortColumn};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion_common::ScalarValue;
use datafusion_physical_expr::expressions::Literal;
use datafusion_physical_expr::PhysicalSortExpr;
use futures::StreamExt;

use super::{check_partition, Operator};
use crate::error::{DataflowError, Result};
use crate::expr::SortExpr;
use crate::functions::FunctionRegistry;
use crate::runner::TaskContext;
use crate::stream::{boxed, SendableRecordBatchStream};

/// Compiled sort keys and the row converter that encodes them.
///
/// An empty `ORDER BY` list is compiled as one constant key, so that every
/// operator works unchanged (all rows compare equal).
pub struct SortKeys {
    exprs: Vec<PhysicalSortExpr>,
    converter: RowConverter,
}

impl SortKeys {
    pub fn try_new(
        order: &[SortExpr],
        schema: &Schema,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let mut exprs = order
            .iter()
            .map(|o| o.compile(schema, registry))
            .collect::<Result<Vec<_>>>()?;
        if exprs.is_empty() {
            exprs.push(PhysicalSortExpr {
                expr: Arc::new(Literal::new(ScalarValue::Boolean(Some(true)))),
                options: Default::default(),
            });
        }
        Self::from_exprs(exprs, schema)
    }

    /// Builds keys from compiled sort expressions (at least one).
    pub fn from_exprs(exprs: Vec<PhysicalSortExpr>, schema: &Schema) -> Result<Self> {
        if exprs.is_empty() {
            return Err(DataflowError::Internal("sort without keys".into()));
        }
        let types = exprs
            .iter()
            .map(|e| Ok(e.expr.data_type(schema)?))
            .collect::<Result<Vec<_>>>()?;
        let fields: Vec<SortField> = types
            .iter()
            .zip(&exprs)
            .map(|(t, e)| SortField::new_with_options(t.clone(), e.options))
            .collect();
        if !RowConverter::supports_fields(&fields) {
            let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
            return Err(DataflowError::NotSupported(format!(
                "sorting by {}",
                types.join(", ")
            )));
        }
        let converter = RowConverter::new(fields)?;
        Ok(SortKeys { exprs, converter })
    }

    /// Evaluates the key columns of `batch`.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.exprs
            .iter()
            .map(|e| Ok(e.expr.evaluate(batch)?.into_array(batch.num_rows())?))
            .collect()
    }

    /// Encodes key columns (as returned by [`Self::evaluate`]) as rows.
    pub fn convert(&self, columns: &[ArrayRef]) -> Result<Rows> {
        Ok(self.converter.convert_columns(columns)?)
    }

    /// Encodes the keys of `batch` as rows.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Rows> {
        self.convert(&self.evaluate(batch)?)
    }

    /// The indices of the first `limit` rows of `batch` in sort order
    /// (all rows without a limit).
    pub fn sort_indices(&self, batch: &RecordBatch, limit: Option<usize>) -> Result<UInt32Array> {
        let columns = self.evaluate(batch)?;
        let sort_columns: Vec<SortColumn> = columns
            .into_iter()
            .zip(&self.exprs)
            .map(|(values, e)| SortColumn {
                values,
                options: Some(e.options),
            })
            .collect();
        Ok(lexsort_to_indices(&sort_columns, limit)?)
    }

    /// Sorts `batch`, keeping only its first `limit` rows if given.
    pub fn sort_batch(&self, batch: &RecordBatch, limit: Option<usize>) -> Result<RecordBatch> {
        let indices = self.sort_indices(batch, limit)?;
        take_batch(batch, &indices)
    }

    /// Sorts `batch` into a run with row-encoded keys.
    pub fn sorted_run(&self, batch: &RecordBatch) -> Result<SortedRun> {
        let columns = self.evaluate(batch)?;
        if columns.len() == 1 {
            // One key: arrow's typed sort is fastest; encode the sorted keys.
            let options = Some(self.exprs[0].options);
            let indices = lexsort_to_indices(
                &[SortColumn {
                    values: Arc::clone(&columns[0]),
                    options,
                }],
                None,
            )?;
            let key = take(columns[0].as_ref(), &indices, None)?;
            let rows = self.convert(&[key])?;
            let batch = take_batch(batch, &indices)?;
            return Ok(SortedRun { batch, rows });
        }
        // Several keys: compare the encoded rows (memcmp).
        let unsorted = self.convert(&columns)?;
        let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
        order.sort_unstable_by(|&a, &b| unsorted.row(a as usize).cmp(&unsorted.row(b as usize)));
        let mut rows = self
            .converter
            .empty_rows(order.len(), unsorted.size().min(1 << 30));
        for &i in &order {
            rows.push(unsorted.row(i as usize));
        }
        let batch = take_batch(batch, &UInt32Array::from(order))?;
        Ok(SortedRun { batch, rows })
    }

    /// Pairs an already sorted batch with its encoded keys.
    pub fn run(&self, batch: RecordBatch) -> Result<SortedRun> {
        let rows = self.encode(&batch)?;
        Ok(SortedRun { batch, rows })
    }
}

/// `take` over all columns, keeping the row count for batches without
/// columns.
pub fn take_batch(batch: &RecordBatch, indices: &UInt32Array) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(indices.len()));
    Ok(RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &options,
    )?)
}

/// A sorted batch and its row-encoded sort keys (one row per batch row).
pub struct SortedRun {
    pub batch: RecordBatch,
    pub rows: Rows,
}

impl SortedRun {
    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// Bytes held: the rows and their encoded keys.
    pub fn size(&self) -> usize {
        self.batch.get_array_memory_size() + self.rows.size()
    }
}

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

/// A merge of in-memory runs producing one output batch per call.
pub struct RunMerge {
    merger: Merger,
    runs: Vec<Option<SortedRun>>,
}

impl RunMerge {
    pub fn new(
        schema: SchemaRef,
        runs: Vec<SortedRun>,
        batch_size: usize,
        fetch: Option<usize>,
    ) -> Self {
        RunMerge {
            merger: Merger::new(schema, runs.len(), batch_size, fetch),
            runs: runs.into_iter().map(Some).collect(),
        }
    }

    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            match self.merger.next_step()? {
                MergeStep::Emit(b) => return Ok(Some(b)),
                MergeStep::Need(i) => {
                    let run = self.runs.get_mut(i).and_then(Option::take);
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

/// Accumulates input batches into runs of at least `batch_size` rows.
pub(crate) struct RunBuilder {
    pending: Vec<RecordBatch>,
    rows: usize,
    target: usize,
}

impl RunBuilder {
    pub(crate) fn new(target: usize) -> Self {
        RunBuilder {
            pending: Vec::new(),
            rows: 0,
            target: target.max(1),
        }
    }

    /// Adds a batch; returns the accumulated batch once it is big enough.
    pub(crate) fn push(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        self.rows += batch.num_rows();
        self.pending.push(batch);
        if self.rows >= self.target {
            return self.finish();
        }
        Ok(None)
    }

    /// The accumulated rows, if any.
    pub(crate) fn finish(&mut self) -> Result<Option<RecordBatch>> {
        self.rows = 0;
        match self.pending.len() {
            0 => Ok(None),
            1 => Ok(self.pending.pop()),
            _ => {
                let schema = self.pending[0].schema();
                let batch = concat_batches(&schema, &self.pending)?;
                self.pending.clear();
                Ok(Some(batch))
            }
        }
    }
}

pub struct Sort {
    input: Arc<dyn Operator>,
    keys: Arc<SortKeys>,
}

impl Sort {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        input: Arc<dyn Operator>,
        order: &[SortExpr],
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let keys = SortKeys::try_new(order, &input.schema(), registry)?;
        Ok(Sort {
            input,
            keys: Arc::new(keys),
        })
    }
}

impl Operator for Sort {
    fn name(&self) -> &'static str {
        "Sort"
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
        let mut input = self.input.execute(partition, ctx)?;
        let keys = Arc::clone(&self.keys);
        let schema = self.schema();
        let batch_size = ctx.config.batch_size.max(1);
        let out_schema = Arc::clone(&schema);
        let ctx = Arc::clone(ctx);
        let stream = async_stream::try_stream! {
            let mut builder = RunBuilder::new(batch_size);
            let mut runs = Vec::new();
            let mut held = 0;
            while let Some(batch) = input.next().await {
                if let Some(b) = builder.push(batch?)? {
                    let run = keys.sorted_run(&b)?;
                    held += run.size();
                    ctx.report_memory(held);
                    runs.push(run);
                }
            }
            if let Some(b) = builder.finish()? {
                let run = keys.sorted_run(&b)?;
                ctx.report_memory(held + run.size());
                runs.push(run);
            }
            if runs.len() == 1 {
                let run = runs.pop();
                for b in run.iter().flat_map(|r| slices(&r.batch, batch_size)) {
                    yield b;
                }
            } else if !runs.is_empty() {
                let mut merge = RunMerge::new(out_schema, runs, batch_size, None);
                while let Some(b) = merge.next_batch()? {
                    yield b;
                }
            }
        };
        Ok(boxed(schema, stream))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field};
    use arrow::util::pretty::pretty_format_batches;

    use crate::expr::PhysExpr;
    use crate::plan::{PhysicalPlan, ScanSource};
    use crate::runner::{execute, ExecConfig};
    use crate::tables::MemoryTableMap;
    pub(crate) use crate::test_util::TestExchange;

    /// Runs `plan` over memory table "t" made of `batches`.
    pub(crate) async fn run_plan(
        plan: PhysicalPlan,
        batches: Vec<RecordBatch>,
        batch_size: usize,
    ) -> Result<Vec<RecordBatch>> {
        let tables = MemoryTableMap::default();
        tables.insert("t", batches);
        let config = ExecConfig {
            batch_size,
            ..ExecConfig::default()
        };
        let mut stream = execute(
            &plan,
            config,
            Arc::new(FunctionRegistry::with_defaults()),
            Arc::new(tables),
            Arc::new(TestExchange),
        )?;
        let mut out = Vec::new();
        while let Some(b) = stream.next().await {
            out.push(b?);
        }
        Ok(out)
    }

    pub(crate) fn scan(schema: &SchemaRef, partitions: usize) -> PhysicalPlan {
        PhysicalPlan::Scan {
            source: ScanSource::Memory {
                table: "t".into(),
                partitions,
            },
            table_schema: Arc::clone(schema),
            projection: None,
            pruning: vec![],
            schema: Arc::clone(schema),
        }
    }

    pub(crate) fn key(index: usize, asc: bool, nulls_first: bool) -> SortExpr {
        SortExpr {
            expr: PhysExpr::col(index, format!("c{index}")),
            asc,
            nulls_first,
        }
    }

    pub(crate) fn fmt(batches: &[RecordBatch]) -> String {
        pretty_format_batches(batches).unwrap().to_string()
    }

    /// A batch of (a int32, s utf8, d decimal(10,2)).
    pub(crate) fn batch(
        a: Vec<Option<i32>>,
        s: Vec<Option<&str>>,
        d: Vec<Option<i128>>,
    ) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("d", DataType::Decimal128(10, 2), true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(a)),
                Arc::new(StringArray::from(s)),
                Arc::new(
                    Decimal128Array::from(d)
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ],
        )
        .unwrap()
    }

    /// Rows of the test batches as (a, s, d) tuples.
    pub(crate) fn tuples(
        batches: &[RecordBatch],
    ) -> Vec<(Option<i32>, Option<String>, Option<i128>)> {
        let mut out = Vec::new();
        for b in batches {
            let a = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
            let s = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            let d = b
                .column(2)
                .as_any()
                .downcast_ref::<Decimal128Array>()
                .unwrap();
            for i in 0..b.num_rows() {
                out.push((
                    a.is_valid(i).then(|| a.value(i)),
                    s.is_valid(i).then(|| s.value(i).to_string()),
                    d.is_valid(i).then(|| d.value(i)),
                ));
            }
        }
        out
    }

    type Tuple = (Option<i32>, Option<String>, Option<i128>);

    /// Reference comparison of one key of the tuples.
    pub(crate) fn cmp_key(x: &Tuple, y: &Tuple, k: &SortExpr) -> Ordering {
        fn opt<T: Ord>(a: &Option<T>, b: &Option<T>, asc: bool, nulls_first: bool) -> Ordering {
            match (a, b) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => {
                    if nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (Some(_), None) => {
                    if nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (Some(a), Some(b)) => {
                    if asc {
                        a.cmp(b)
                    } else {
                        b.cmp(a)
                    }
                }
            }
        }
        let PhysExpr::Column { index, .. } = &k.expr else {
            panic!()
        };
        match index {
            0 => opt(&x.0, &y.0, k.asc, k.nulls_first),
            1 => opt(&x.1, &y.1, k.asc, k.nulls_first),
            _ => opt(&x.2, &y.2, k.asc, k.nulls_first),
        }
    }

    pub(crate) fn cmp_keys(x: &Tuple, y: &Tuple, keys: &[SortExpr]) -> Ordering {
        keys.iter()
            .map(|k| cmp_key(x, y, k))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    }

    /// Pseudo-random test data with NULLs and many ties.
    pub(crate) fn random_batches(n_batches: usize, rows: usize, seed: u64) -> Vec<RecordBatch> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let words = ["", "a", "ab", "b", "ba", "zzz", "Z", "é"];
        (0..n_batches)
            .map(|_| {
                let mut a = vec![];
                let mut s = vec![];
                let mut d = vec![];
                for _ in 0..rows {
                    let r = next();
                    a.push((r % 7 != 0).then_some((r >> 8) as i32 % 5 - 2));
                    s.push((r % 5 != 1).then(|| words[(r >> 20) as usize % words.len()]));
                    d.push((r % 6 != 2).then_some(((r >> 30) % 2001) as i128 - 1000));
                }
                batch(a, s, d)
            })
            .collect()
    }

    fn schema3() -> SchemaRef {
        batch(vec![], vec![], vec![]).schema()
    }

    #[test]
    fn sort_multi_key_mixed_directions_and_nulls() {
        let b = batch(
            vec![Some(1), None, Some(1), Some(2), None, Some(1)],
            vec![Some("b"), Some("a"), None, Some("a"), None, Some("b")],
            vec![Some(150), Some(-5), Some(0), None, Some(7), Some(-150)],
        );
        let schema = b.schema();
        let registry = FunctionRegistry::with_defaults();
        // a ASC NULLS FIRST, s DESC NULLS LAST, d DESC NULLS FIRST
        let order = vec![
            key(0, true, true),
            key(1, false, false),
            key(2, false, true),
        ];
        let keys = SortKeys::try_new(&order, &schema, &registry).unwrap();
        let expected = "\
+---+---+-------+
| a | s | d     |
+---+---+-------+
|   | a | -0.05 |
|   |   | 0.07  |
| 1 | b | 1.50  |
| 1 | b | -1.50 |
| 1 |   | 0.00  |
| 2 | a |       |
+---+---+-------+";
        let sorted = keys.sort_batch(&b, None).unwrap();
        assert_eq!(fmt(&[sorted]), expected);
        let run = keys.sorted_run(&b).unwrap();
        assert_eq!(fmt(std::slice::from_ref(&run.batch)), expected);
        // The encoded keys are in order.
        for i in 1..run.rows.num_rows() {
            assert!(run.rows.row(i - 1) <= run.rows.row(i));
        }
        // Single key (typed sort path), decimal DESC NULLS LAST.
        let keys = SortKeys::try_new(&[key(2, false, false)], &schema, &registry).unwrap();
        let run = keys.sorted_run(&b).unwrap();
        let d: Vec<_> = tuples(&[run.batch]).into_iter().map(|t| t.2).collect();
        assert_eq!(
            d,
            vec![Some(150), Some(7), Some(0), Some(-5), Some(-150), None]
        );
    }

    #[test]
    fn merge_runs_matches_reference() {
        let registry = FunctionRegistry::with_defaults();
        let schema = schema3();
        let orders = [
            vec![key(0, true, true), key(1, false, false)],
            vec![
                key(1, true, false),
                key(2, false, true),
                key(0, false, false),
            ],
            vec![key(2, true, true)],
        ];
        for order in &orders {
            let keys = SortKeys::try_new(order, &schema, &registry).unwrap();
            let input = random_batches(5, 37, 11);
            let runs: Vec<_> = input.iter().map(|b| keys.sorted_run(b).unwrap()).collect();
            let out = merge_runs(Arc::clone(&schema), runs, 16, None).unwrap();
            assert!(out.iter().all(|b| b.num_rows() <= 16));
            let got = tuples(&out);
            let mut want = tuples(&input);
            want.sort_by(|x, y| cmp_keys(x, y, order));
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(cmp_keys(g, w, order), Ordering::Equal, "{g:?} vs {w:?}");
            }
            // Same multiset of rows.
            let mut g = got.clone();
            g.sort();
            let mut w = want.clone();
            w.sort();
            assert_eq!(g, w);
        }
    }

    #[test]
    fn merge_with_empty_runs_and_fetch() {
        let registry = FunctionRegistry::with_defaults();
        let schema = schema3();
        let order = vec![key(0, false, false)];
        let keys = SortKeys::try_new(&order, &schema, &registry).unwrap();
        let runs = vec![
            keys.sorted_run(&batch(vec![], vec![], vec![])).unwrap(),
            keys.sorted_run(&batch(
                vec![Some(1), Some(3)],
                vec![None, None],
                vec![None, None],
            ))
            .unwrap(),
            keys.sorted_run(&batch(
                vec![Some(2), None],
                vec![None, None],
                vec![None, None],
            ))
            .unwrap(),
        ];
        let out = merge_runs(Arc::clone(&schema), runs, 2, Some(3)).unwrap();
        let a: Vec<_> = tuples(&out).into_iter().map(|t| t.0).collect();
        assert_eq!(a, vec![Some(3), Some(2), Some(1)]);
        assert!(merge_runs(schema, vec![], 2, None).unwrap().is_empty());
    }

    #[tokio::test]
    async fn sort_operator_end_to_end() {
        let input = random_batches(7, 50, 3);
        let schema = input[0].schema();
        let order = vec![key(1, false, true), key(0, true, false), key(2, true, true)];
        for batch_size in [1, 16, 1000] {
            let plan = PhysicalPlan::Sort {
                input: Box::new(scan(&schema, 1)),
                order: order.clone(),
                fetch: None,
            };
            let out = run_plan(plan, input.clone(), batch_size).await.unwrap();
            assert!(out.iter().all(|b| b.num_rows() <= batch_size));
            let got = tuples(&out);
            assert_eq!(got.len(), 350);
            for w in got.windows(2) {
                assert_ne!(cmp_keys(&w[0], &w[1], &order), Ordering::Greater);
            }
        }
        // Empty input.
        let plan = PhysicalPlan::Sort {
            input: Box::new(scan(&schema, 1)),
            order: order.clone(),
            fetch: None,
        };
        assert!(run_plan(plan, vec![], 16).await.unwrap().is_empty());
        // No keys: rows pass (in any order).
        let plan = PhysicalPlan::Sort {
            input: Box::new(scan(&schema, 1)),
            order: vec![],
            fetch: None,
        };
        let out = run_plan(plan, input.clone(), 64).await.unwrap();
        assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 350);
    }

    #[tokio::test]
    async fn sort_strings_nulls_first_across_batches() {
        let b = batch(
            vec![Some(1), Some(2), Some(3), Some(4)],
            vec![Some("pear"), None, Some("apple"), Some("fig")],
            vec![None; 4],
        );
        let schema = b.schema();
        let plan = PhysicalPlan::Sort {
            input: Box::new(scan(&schema, 1)),
            order: vec![key(1, true, true)],
            fetch: None,
        };
        let out = run_plan(plan, vec![b.slice(0, 2), b.slice(2, 2)], 3)
            .await
            .unwrap();
        let a: Vec<_> = tuples(&out).into_iter().map(|t| t.0).collect();
        assert_eq!(a, vec![Some(2), Some(3), Some(4), Some(1)]);
    }
}
