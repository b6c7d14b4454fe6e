//! Helpers shared by the join operators.
//!
//! Both joins reduce to the same shape: a fully collected left (build)
//! side, and a stream of right (probe) batches, each of which produces
//! candidate pairs `(build row, probe row)`. [`JoinSpec`] holds everything
//! that depends only on the join type: the optional filter over the
//! candidate pairs, the matched-row bookkeeping, and output assembly
//! (matched pairs, unmatched probe rows per probe batch, unmatched or
//! matched build rows at the end). [`OnceBuild`] builds the left side once
//! and shares it between all right partitions.

use std::sync::{Arc, Mutex};

use arrow::array::{
    new_null_array, Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, UInt32Array,
};
use arrow::buffer::BooleanBuffer;
use arrow::compute::{filter_record_batch, take, BatchCoalescer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;
use futures::future::{BoxFuture, FutureExt, Shared};

use super::Operator;
use crate::error::{DataflowError, Result};
use crate::expr::PhysExpr;
use crate::functions::FunctionRegistry;
use crate::plan::JoinType;
use crate::runner::TaskContext;
use crate::stream::{boxed, SendableRecordBatchStream};

// ---------------------------------------------------------------------------
// Building the left side once
// ---------------------------------------------------------------------------

type SharedResult<T> = std::result::Result<Arc<T>, Arc<DataflowError>>;

/// A build result shared by several partitions.
pub type SharedBuild<T> = Shared<BoxFuture<'static, SharedResult<T>>>;

/// Builds a value (the collected left side of a join) once, on first need,
/// and hands it to every consumer partition.
///
/// The build is a [`Shared`] future: whichever consumer polls it drives it,
/// and dropping one consumer does not cancel the build for the others. The
/// operator keeps the future only until each of its `consumers` partitions
/// took a handle, so the built value is freed when the last partition ends.
pub struct OnceBuild<T> {
    state: Mutex<(Option<SharedBuild<T>>, usize)>,
    consumers: usize,
}

impl<T: Send + Sync + 'static> OnceBuild<T> {
    pub fn new(consumers: usize) -> Self {
        OnceBuild {
            state: Mutex::new((None, 0)),
            consumers: consumers.max(1),
        }
    }

    /// A handle on the shared build; `make` creates the build future on the
    /// first call (it runs when first polled).
    pub fn get(
        &self,
        make: impl FnOnce() -> BoxFuture<'static, Result<T>>,
    ) -> Result<SharedBuild<T>> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| DataflowError::Internal("join build state poisoned".into()))?;
        let (fut, taken) = &mut *state;
        if *taken >= self.consumers {
            return Err(DataflowError::Internal(format!(
                "join build requested more than {} times",
                self.consumers
            )));
        }
        let handle = match fut {
            Some(f) => f.clone(),
            None => {
                let f = make()
                    .map(|r| r.map(Arc::new).map_err(Arc::new))
                    .boxed()
                    .shared();
                *fut = Some(f.clone());
                f
            }
        };
        *taken += 1;
        if *taken >= self.consumers {
            // Every consumer has its handle: let go of ours.
            *fut = None;
        }
        Ok(handle)
    }
}

/// Awaits a shared build.
pub async fn await_build<T: Send + Sync + 'static>(build: SharedBuild<T>) -> Result<Arc<T>> {
    build.await.map_err(|e| unshare_error(&e))
}

/// A copy of a shared error for one of its consumers (keeps the category).
pub fn unshare_error(e: &DataflowError) -> DataflowError {
    match e {
        DataflowError::NotSupported(m) => DataflowError::NotSupported(m.clone()),
        DataflowError::Plan(m) => DataflowError::Plan(m.clone()),
        DataflowError::File { path, message } => DataflowError::File {
            path: path.clone(),
            message: message.clone(),
        },
        DataflowError::Execution(m) => DataflowError::Execution(m.clone()),
        DataflowError::Cancelled => DataflowError::Cancelled,
        DataflowError::Internal(m) => DataflowError::Internal(m.clone()),
        other => DataflowError::Execution(other.to_string()),
    }
}

/// All partitions of `input` as one stream (read concurrently, so that
/// partitions fed by the same exchange cannot block each other).
pub fn merged_input(
    input: &Arc<dyn Operator>,
    ctx: &Arc<TaskContext>,
) -> Result<SendableRecordBatchStream> {
    let n = input.output_partitions();
    if n == 1 {
        return input.execute(0, ctx);
    }
    let streams = (0..n)
        .map(|p| input.execute(p, ctx))
        .collect::<Result<Vec<_>>>()?;
    Ok(boxed(input.schema(), futures::stream::select_all(streams)))
}

/// Collects a stream into one batch of `schema`.
pub async fn collect_batch(
    mut input: SendableRecordBatchStream,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    use futures::StreamExt;
    let mut batches = Vec::new();
    while let Some(b) = input.next().await {
        let b = b?;
        if b.num_rows() > 0 {
            batches.push(b);
        }
    }
    concat(schema, batches)
}

/// Concatenates batches into one batch of `schema`.
pub fn concat(schema: &SchemaRef, mut batches: Vec<RecordBatch>) -> Result<RecordBatch> {
    if batches.len() == 1 {
        if let Some(b) = batches.pop() {
            return rebind(schema, b.columns().to_vec(), b.num_rows());
        }
    }
    Ok(arrow::compute::concat_batches(schema, &batches)?)
}

/// Builds a batch of `schema` from columns (names may differ from the
/// columns' original batches; types must match).
pub fn rebind(schema: &SchemaRef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

// ---------------------------------------------------------------------------
// The join filter
// ---------------------------------------------------------------------------

/// A join condition over left columns followed by right columns, evaluated
/// on candidate pairs. Only the columns it reads are gathered.
pub struct JoinFilter {
    expr: Arc<dyn PhysicalExpr>,
    left_cols: Vec<usize>,
    right_cols: Vec<usize>,
    schema: SchemaRef,
}

impl JoinFilter {
    pub fn try_new(
        filter: &PhysExpr,
        left: &Schema,
        right: &Schema,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let nl = left.fields().len();
        let total = nl + right.fields().len();
        let mut cols = Vec::new();
        filter.columns(&mut cols);
        cols.sort_unstable();
        cols.dedup();
        if let Some(&c) = cols.iter().find(|&&c| c >= total) {
            return Err(DataflowError::Internal(format!(
                "join filter {filter} reads column {c} of {total}"
            )));
        }
        let left_cols: Vec<usize> = cols.iter().copied().filter(|&c| c < nl).collect();
        let right_cols: Vec<usize> = cols.iter().filter(|&&c| c >= nl).map(|c| c - nl).collect();
        let mut fields: Vec<Field> = Vec::with_capacity(cols.len());
        fields.extend(left_cols.iter().map(|&c| left.field(c).clone()));
        fields.extend(right_cols.iter().map(|&c| right.field(c).clone()));
        let schema = Arc::new(Schema::new(fields));
        // Column `c` of left ++ right becomes its position among `cols`.
        let remapped = filter.map_columns(&|c| cols.binary_search(&c).unwrap_or(c));
        let expr = remapped.compile(&schema, registry)?;
        let dt = expr.data_type(&schema)?;
        if dt != DataType::Boolean && dt != DataType::Null {
            return Err(DataflowError::Plan(format!(
                "join filter must be boolean, got {dt}"
            )));
        }
        Ok(JoinFilter {
            expr,
            left_cols,
            right_cols,
            schema,
        })
    }

    /// Keeps the pairs for which the filter is true.
    pub fn retain(
        &self,
        build: &RecordBatch,
        probe: &RecordBatch,
        build_idx: &mut Vec<u32>,
        probe_idx: &mut Vec<u32>,
    ) -> Result<()> {
        let n = build_idx.len();
        if n == 0 {
            return Ok(());
        }
        let mut columns = Vec::with_capacity(self.left_cols.len() + self.right_cols.len());
        if !self.left_cols.is_empty() {
            let idx = Indices::new(build_idx.clone());
            for &c in &self.left_cols {
                columns.push(idx.gather(build.column(c))?);
            }
        }
        if !self.right_cols.is_empty() {
            let idx = Indices::new(probe_idx.clone());
            for &c in &self.right_cols {
                columns.push(idx.gather(probe.column(c))?);
            }
        }
        let batch = rebind(&self.schema, columns, n)?;
        let mask = self.expr.evaluate(&batch)?.into_array(n)?;
        let mask = match mask.as_any().downcast_ref::<BooleanArray>() {
            Some(m) => m,
            None if mask.data_type() == &DataType::Null => {
                build_idx.clear();
                probe_idx.clear();
                return Ok(());
            }
            None => {
                return Err(DataflowError::Internal(format!(
                    "join filter evaluated to {}",
                    mask.data_type()
                )))
            }
        };
        if mask.len() != n {
            return Err(DataflowError::Internal(format!(
                "join filter returned {} values for {n} rows",
                mask.len()
            )));
        }
        let mut w = 0;
        for k in 0..n {
            if mask.is_valid(k) && mask.value(k) {
                build_idx[w] = build_idx[k];
                probe_idx[w] = probe_idx[k];
                w += 1;
            }
        }
        build_idx.truncate(w);
        probe_idx.truncate(w);
        Ok(())
    }
}

/// Row indices to gather from one side: a contiguous run of rows is a
/// zero-copy slice, anything else a `take`.
struct Indices {
    arr: UInt32Array,
    run: Option<usize>,
}

impl Indices {
    fn new(idx: Vec<u32>) -> Self {
        let run = idx.first().and_then(|&first| {
            idx.iter()
                .enumerate()
                .all(|(k, &i)| i as usize == first as usize + k)
                .then_some(first as usize)
        });
        Indices {
            arr: UInt32Array::from(idx),
            run,
        }
    }

    fn gather(&self, col: &ArrayRef) -> Result<ArrayRef> {
        match self.run {
            Some(first) if first + self.arr.len() <= col.len() => {
                Ok(col.slice(first, self.arr.len()))
            }
            _ => Ok(take(col.as_ref(), &self.arr, None)?),
        }
    }
}

// ---------------------------------------------------------------------------
// Join-type logic and output assembly
// ---------------------------------------------------------------------------

/// What a join operator needs to know about its join type and output.
pub struct JoinSpec {
    pub join_type: JoinType,
    pub schema: SchemaRef,
    pub left_schema: SchemaRef,
    pub right_schema: SchemaRef,
    pub filter: Option<JoinFilter>,
}

impl JoinSpec {
    pub fn try_new(
        join_type: JoinType,
        left_schema: SchemaRef,
        right_schema: SchemaRef,
        filter: Option<&PhysExpr>,
        schema: SchemaRef,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let expected: Vec<&Field> = match join_type {
            JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => left_schema
                .fields()
                .iter()
                .chain(right_schema.fields().iter())
                .map(|f| f.as_ref())
                .collect(),
            JoinType::LeftSemi | JoinType::LeftAnti => {
                left_schema.fields().iter().map(|f| f.as_ref()).collect()
            }
            JoinType::RightSemi | JoinType::RightAnti => {
                right_schema.fields().iter().map(|f| f.as_ref()).collect()
            }
        };
        if expected.len() != schema.fields().len() {
            return Err(DataflowError::Internal(format!(
                "{join_type:?} join: output schema has {} columns, inputs give {}",
                schema.fields().len(),
                expected.len()
            )));
        }
        for (out, inp) in schema.fields().iter().zip(expected) {
            if !out.data_type().equals_datatype(inp.data_type()) {
                return Err(DataflowError::Internal(format!(
                    "{join_type:?} join: output column {} has type {}, input gives {}",
                    out.name(),
                    out.data_type(),
                    inp.data_type()
                )));
            }
        }
        let filter = filter
            .map(|f| JoinFilter::try_new(f, &left_schema, &right_schema, registry))
            .transpose()?;
        Ok(JoinSpec {
            join_type,
            schema,
            left_schema,
            right_schema,
            filter,
        })
    }

    /// Whether matched build rows must be tracked (the join emits build rows
    /// after the probe side ends).
    pub fn tracks_build(&self) -> bool {
        self.join_type.emits_unmatched_left()
    }

    /// Whether matched probe rows must be tracked per probe batch.
    pub fn tracks_probe(&self) -> bool {
        matches!(
            self.join_type,
            JoinType::Right | JoinType::Full | JoinType::RightSemi | JoinType::RightAnti
        )
    }

    /// Whether probing can be skipped when the build side is empty (the
    /// output then has no rows).
    pub fn empty_build_gives_empty(&self) -> bool {
        !matches!(
            self.join_type,
            JoinType::Right | JoinType::Full | JoinType::RightAnti
        )
    }

    /// Filters candidate pairs, marks matched rows, and returns the joined
    /// rows of the pairs (for inner and outer joins).
    pub fn process_pairs(
        &self,
        build: &RecordBatch,
        probe: &RecordBatch,
        mut build_idx: Vec<u32>,
        mut probe_idx: Vec<u32>,
        build_matched: &mut [bool],
        probe_matched: &mut [bool],
    ) -> Result<Option<RecordBatch>> {
        if let Some(f) = &self.filter {
            f.retain(build, probe, &mut build_idx, &mut probe_idx)?;
        }
        if build_idx.is_empty() {
            return Ok(None);
        }
        if self.tracks_build() {
            for &b in &build_idx {
                if let Some(m) = build_matched.get_mut(b as usize) {
                    *m = true;
                }
            }
        }
        if self.tracks_probe() {
            for &p in &probe_idx {
                if let Some(m) = probe_matched.get_mut(p as usize) {
                    *m = true;
                }
            }
        }
        match self.join_type {
            JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => {
                Ok(Some(self.pair_output(build, probe, build_idx, probe_idx)?))
            }
            _ => Ok(None),
        }
    }

    /// The joined rows of pairs: build columns then probe columns.
    pub fn pair_output(
        &self,
        build: &RecordBatch,
        probe: &RecordBatch,
        build_idx: Vec<u32>,
        probe_idx: Vec<u32>,
    ) -> Result<RecordBatch> {
        let n = build_idx.len();
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        let bi = Indices::new(build_idx);
        for c in build.columns() {
            columns.push(bi.gather(c)?);
        }
        let pi = Indices::new(probe_idx);
        for c in probe.columns() {
            columns.push(pi.gather(c)?);
        }
        rebind(&self.schema, columns, n)
    }

    /// After all pairs of a probe batch: its unmatched rows (right and full
    /// outer, right anti) or its matched rows (right semi).
    pub fn finish_probe_batch(
        &self,
        probe: &RecordBatch,
        probe_matched: &[bool],
    ) -> Result<Option<RecordBatch>> {
        let want = match self.join_type {
            JoinType::Right | JoinType::Full | JoinType::RightAnti => false,
            JoinType::RightSemi => true,
            _ => return Ok(None),
        };
        let n = probe.num_rows();
        let mask = BooleanArray::new(
            BooleanBuffer::collect_bool(n, |i| {
                probe_matched.get(i).copied().unwrap_or(false) == want
            }),
            None,
        );
        if mask.true_count() == 0 {
            return Ok(None);
        }
        let rows = filter_record_batch(probe, &mask)?;
        let m = rows.num_rows();
        let columns = if matches!(self.join_type, JoinType::Right | JoinType::Full) {
            self.left_schema
                .fields()
                .iter()
                .map(|f| new_null_array(f.data_type(), m))
                .chain(rows.columns().iter().cloned())
                .collect()
        } else {
            rows.columns().to_vec()
        };
        Ok(Some(rebind(&self.schema, columns, m)?))
    }

    /// After the probe side ended, for build rows `start..start + len`: the
    /// unmatched ones (left and full outer, left anti) or the matched ones
    /// (left semi).
    pub fn finish_build_rows(
        &self,
        build: &RecordBatch,
        build_matched: &[bool],
        start: usize,
        len: usize,
    ) -> Result<Option<RecordBatch>> {
        let want = match self.join_type {
            JoinType::Left | JoinType::Full | JoinType::LeftAnti => false,
            JoinType::LeftSemi => true,
            _ => return Ok(None),
        };
        let len = len.min(build.num_rows().saturating_sub(start));
        if len == 0 {
            return Ok(None);
        }
        let mask = BooleanArray::new(
            BooleanBuffer::collect_bool(len, |i| {
                build_matched.get(start + i).copied().unwrap_or(false) == want
            }),
            None,
        );
        if mask.true_count() == 0 {
            return Ok(None);
        }
        let rows = filter_record_batch(&build.slice(start, len), &mask)?;
        let m = rows.num_rows();
        let mut columns = rows.columns().to_vec();
        if matches!(self.join_type, JoinType::Left | JoinType::Full) {
            columns.extend(
                self.right_schema
                    .fields()
                    .iter()
                    .map(|f| new_null_array(f.data_type(), m)),
            );
        }
        Ok(Some(rebind(&self.schema, columns, m)?))
    }
}

// ---------------------------------------------------------------------------
// Output batching
// ---------------------------------------------------------------------------

/// Gathers join output into batches of about `batch_size` rows: small
/// batches are coalesced, large ones are sliced.
pub struct OutputBuffer {
    coalescer: BatchCoalescer,
    batch_size: usize,
}

impl OutputBuffer {
    pub fn new(schema: SchemaRef, batch_size: usize) -> Self {
        let batch_size = batch_size.max(1);
        OutputBuffer {
            coalescer: BatchCoalescer::new(schema, batch_size)
                .with_biggest_coalesce_batch_size(Some((batch_size / 2).max(1))),
            batch_size,
        }
    }

    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let mut start = 0;
        while start < n {
            let len = self.batch_size.min(n - start);
            let part = if start == 0 && len == n {
                batch.clone()
            } else {
                batch.slice(start, len)
            };
            self.coalescer.push_batch(part)?;
            start += len;
        }
        Ok(())
    }

    pub fn next_batch(&mut self) -> Option<RecordBatch> {
        self.coalescer.next_completed_batch()
    }

    /// Flushes the buffered rows (then call [`Self::next_batch`]).
    pub fn finish(&mut self) -> Result<()> {
        Ok(self.coalescer.finish_buffered_batch()?)
    }
}

// ---------------------------------------------------------------------------
// Test helpers shared by the join tests
// ---------------------------------------------------------------------------

#[cfg(test)]
pub(crate) mod test_util {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use arrow::util::display::{ArrayFormatter, FormatOptions};

    use futures::StreamExt;

    use crate::error::Result;

    use crate::expr::PhysExpr;
    use crate::functions::FunctionRegistry;
    use crate::plan::{Partitioning, PhysicalPlan, ScanSource};
    use crate::runner::{execute, ExecConfig};
    pub use crate::test_util::TestExchange;

    use crate::tables::MemoryTableMap;

    /// A table of nullable (Int32 key, Utf8 value) rows, `(k, v)`.
    pub fn kv_schema(k: &str, v: &str) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(k, DataType::Int32, true),
            Field::new(v, DataType::Utf8, true),
        ]))
    }

    pub fn kv_batch(schema: &SchemaRef, rows: &[(Option<i32>, &str)]) -> RecordBatch {
        let k: ArrayRef = Arc::new(Int32Array::from(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ));
        let v: ArrayRef = Arc::new(StringArray::from(
            rows.iter().map(|r| Some(r.1)).collect::<Vec<_>>(),
        ));
        RecordBatch::try_new(Arc::clone(schema), vec![k, v]).unwrap()
    }

    /// A memory scan plan over `name` with `partitions` partitions.
    pub fn scan(name: &str, schema: &SchemaRef, partitions: usize) -> PhysicalPlan {
        PhysicalPlan::Scan {
            source: ScanSource::Memory {
                table: name.to_string(),
                partitions,
            },
            table_schema: Arc::clone(schema),
            projection: None,
            pruning: vec![],
            schema: Arc::clone(schema),
        }
    }

    pub fn hash_exchange(input: PhysicalPlan, key: usize, partitions: usize) -> PhysicalPlan {
        PhysicalPlan::Exchange {
            input: Box::new(input),
            partitioning: Partitioning::Hash {
                keys: vec![PhysExpr::col(key, "k")],
                partitions,
            },
        }
    }

    pub fn gather(input: PhysicalPlan) -> PhysicalPlan {
        PhysicalPlan::Exchange {
            input: Box::new(input),
            partitioning: Partitioning::Gather,
        }
    }

    /// Output schema of a join of `left` and `right` of `join_type`
    /// (outer-joined sides nullable).
    pub fn join_schema(
        left: &SchemaRef,
        right: &SchemaRef,
        join_type: crate::plan::JoinType,
    ) -> SchemaRef {
        use crate::plan::JoinType::*;
        let nullable = |fs: &arrow::datatypes::Fields| -> Vec<Field> {
            fs.iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect()
        };
        let fields = match join_type {
            Inner | Left | Right | Full => {
                let mut f = nullable(left.fields());
                f.extend(nullable(right.fields()));
                f
            }
            LeftSemi | LeftAnti => nullable(left.fields()),
            RightSemi | RightAnti => nullable(right.fields()),
        };
        Arc::new(Schema::new(fields))
    }

    /// Runs `plan` over memory `tables` and returns the output batches.
    pub async fn run(
        plan: &PhysicalPlan,
        tables: Vec<(&str, Vec<RecordBatch>)>,
        batch_size: usize,
    ) -> Result<Vec<RecordBatch>> {
        let map = MemoryTableMap::default();
        for (n, b) in tables {
            map.insert(n, b);
        }
        let config = ExecConfig {
            batch_size,
            ..ExecConfig::default()
        };
        let mut stream = execute(
            plan,
            config,
            Arc::new(FunctionRegistry::with_defaults()),
            Arc::new(map),
            Arc::new(TestExchange),
        )?;
        let mut out = Vec::new();
        while let Some(b) = stream.next().await {
            out.push(b?);
        }
        Ok(out)
    }

    /// The rows of `batches` as `a|b|c` strings (NULL for nulls), sorted.
    pub fn rows(batches: &[RecordBatch]) -> Vec<String> {
        let opts = FormatOptions::default().with_null("NULL");
        let mut out = Vec::new();
        for b in batches {
            let fmts: Vec<ArrayFormatter> = b
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
                .collect();
            for r in 0..b.num_rows() {
                let cells: Vec<String> = fmts.iter().map(|f| f.value(r).to_string()).collect();
                out.push(cells.join("|"));
            }
        }
        out.sort();
        out
    }

    pub fn sorted(v: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    /// Sanity check of batch sizes.
    pub fn assert_batch_sizes(batches: &[RecordBatch], max: usize) {
        for b in batches {
            assert!(b.num_rows() > 0, "empty batch");
            assert!(
                b.num_rows() <= max,
                "batch of {} rows > {max}",
                b.num_rows()
            );
        }
    }
}
