//! HashJoin: builds a hash table over the left input and probes it with the
//! right input.
//!
//! Partitioned mode joins left partition `p` with right partition `p` (both
//! hash-partitioned on the keys upstream). With `collect_left`, the single
//! left input is built once and shared by every right partition (only for
//! joins that never emit unmatched left rows).
//!
//! Keys are encoded per row: fixed-width integer keys are packed into one
//! `u64` or `u128` (compared and hashed as integers), other keys use the
//! arrow row format. The table maps a hash to a chain of build rows (in
//! build order) through a `next` array; probing walks the chain and compares
//! the encoded keys. Rows with a NULL key are never inserted nor looked up
//! unless `null_equals_null` (then NULLs are part of the row encoding).

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, IntervalUnit, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion_common::hash_utils::RandomState;
use datafusion_physical_expr::PhysicalExpr;
use futures::{FutureExt, StreamExt};
use hashbrown::hash_table::{Entry, HashTable};

use super::join_util::{
    await_build, concat, merged_input, JoinSpec, OnceBuild, OutputBuffer, SharedBuild,
};
use super::{check_partition, Operator};
use crate::error::{DataflowError, Result};
use crate::expr::{evaluate_all, PhysExpr};
use crate::functions::FunctionRegistry;
use crate::plan::JoinType;
use crate::runner::TaskContext;
use crate::stream::{boxed, SendableRecordBatchStream};

/// End of a chain.
const NONE: u32 = u32::MAX;

/// Seeds of the join hash. They differ from the exchange's partitioning
/// seed: all rows of a hash partition share `hash % n`, which would leave
/// most buckets of a table hashed the same way empty.
const SEED1: u64 = 0x243f_6a88_85a3_08d3;
const SEED2: u64 = 0x1319_8a2e_0370_7344;
const MUL1: u64 = 0xa409_3822_299f_31d0 | 1;
const MUL2: u64 = 0x082e_fa98_ec4e_6c89;

#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline(always)]
fn hash_u64(k: u64) -> u64 {
    folded_multiply(k ^ SEED1, MUL1)
}

#[inline(always)]
fn hash_u128(k: u128) -> u64 {
    let h = folded_multiply((k as u64) ^ SEED1, MUL1);
    folded_multiply(h ^ ((k >> 64) as u64) ^ SEED2, MUL2)
}

// ---------------------------------------------------------------------------
// Key encoding
// ---------------------------------------------------------------------------

/// Byte width of key types that can be packed (compared by bit pattern).
fn packed_width(dt: &DataType) -> Option<u32> {
    use DataType::*;
    Some(match dt {
        Int8 | UInt8 => 1,
        Int16 | UInt16 => 2,
        Int32 | UInt32 | Date32 | Time32(_) | Decimal32(_, _) => 4,
        Interval(IntervalUnit::YearMonth) => 4,
        Int64 | UInt64 | Date64 | Time64(_) | Timestamp(_, _) | Duration(_) | Decimal64(_, _) => 8,
        Decimal128(_, _) => 16,
        _ => return None,
    })
}

/// How the keys of a row are encoded for hashing and comparison.
enum KeyEncoding {
    /// Fixed-width keys (byte widths) packed into a `u64`.
    Packed64(Vec<u32>),
    /// Fixed-width keys packed into a `u128`.
    Packed128(Vec<u32>),
    /// The arrow row format.
    Rows(RowConverter),
}

/// Encoded keys of a run of rows.
enum KeyBuf {
    Packed64(Vec<u64>),
    Packed128(Vec<u128>),
    Rows(Rows),
}

impl KeyBuf {
    fn size(&self) -> usize {
        match self {
            KeyBuf::Packed64(v) => v.capacity() * 8,
            KeyBuf::Packed128(v) => v.capacity() * 16,
            KeyBuf::Rows(r) => r.size(),
        }
    }

    fn len(&self) -> usize {
        match self {
            KeyBuf::Packed64(v) => v.len(),
            KeyBuf::Packed128(v) => v.len(),
            KeyBuf::Rows(r) => r.num_rows(),
        }
    }

    fn clear(&mut self) {
        match self {
            KeyBuf::Packed64(v) => v.clear(),
            KeyBuf::Packed128(v) => v.clear(),
            KeyBuf::Rows(r) => r.clear(),
        }
    }
}

/// Reads the values of a fixed-width array as unsigned integers of its
/// width and ORs them, shifted, into `out`.
macro_rules! pack_values {
    ($data:expr, $native:ty, $out:expr, $target:ty, $shift:expr) => {{
        let vals =
            ScalarBuffer::<$native>::new($data.buffers()[0].clone(), $data.offset(), $data.len());
        for (o, v) in $out.iter_mut().zip(vals.iter()) {
            *o |= (*v as $target) << $shift;
        }
    }};
}

impl KeyEncoding {
    fn try_new(types: &[DataType], null_equals_null: bool) -> Result<Self> {
        if !null_equals_null {
            if let Some(widths) = types.iter().map(packed_width).collect::<Option<Vec<_>>>() {
                let total: u32 = widths.iter().sum();
                if total <= 8 {
                    return Ok(KeyEncoding::Packed64(widths));
                }
                if total <= 16 {
                    return Ok(KeyEncoding::Packed128(widths));
                }
            }
        }
        let fields = types.iter().map(|t| SortField::new(t.clone())).collect();
        Ok(KeyEncoding::Rows(RowConverter::new(fields)?))
    }

    fn empty_buf(&self) -> KeyBuf {
        match self {
            KeyEncoding::Packed64(_) => KeyBuf::Packed64(Vec::new()),
            KeyEncoding::Packed128(_) => KeyBuf::Packed128(Vec::new()),
            KeyEncoding::Rows(c) => KeyBuf::Rows(c.empty_rows(0, 0)),
        }
    }

    /// Appends the encoded keys of `arrays` (one row each) to `buf`.
    fn append(&self, arrays: &[ArrayRef], buf: &mut KeyBuf) -> Result<()> {
        let n = arrays.first().map(|a| a.len()).unwrap_or(0);
        match (self, buf) {
            (KeyEncoding::Packed64(widths), KeyBuf::Packed64(v)) => {
                let start = v.len();
                v.resize(start + n, 0);
                let out = &mut v[start..];
                let mut shift = 0u32;
                for (a, &w) in arrays.iter().zip(widths) {
                    let data = fixed_width_data(a, w, n)?;
                    match w {
                        1 => pack_values!(data, u8, out, u64, shift),
                        2 => pack_values!(data, u16, out, u64, shift),
                        4 => pack_values!(data, u32, out, u64, shift),
                        8 => pack_values!(data, u64, out, u64, shift),
                        _ => return Err(DataflowError::Internal(format!("key width {w}"))),
                    }
                    shift += w * 8;
                }
                Ok(())
            }
            (KeyEncoding::Packed128(widths), KeyBuf::Packed128(v)) => {
                let start = v.len();
                v.resize(start + n, 0);
                let out = &mut v[start..];
                let mut shift = 0u32;
                for (a, &w) in arrays.iter().zip(widths) {
                    let data = fixed_width_data(a, w, n)?;
                    match w {
                        1 => pack_values!(data, u8, out, u128, shift),
                        2 => pack_values!(data, u16, out, u128, shift),
                        4 => pack_values!(data, u32, out, u128, shift),
                        8 => pack_values!(data, u64, out, u128, shift),
                        16 => pack_values!(data, u128, out, u128, shift),
                        _ => return Err(DataflowError::Internal(format!("key width {w}"))),
                    }
                    shift += w * 8;
                }
                Ok(())
            }
            (KeyEncoding::Rows(c), KeyBuf::Rows(rows)) => Ok(c.append(rows, arrays)?),
            _ => Err(DataflowError::Internal("join key encodings differ".into())),
        }
    }

    /// Writes the hashes of the keys `range` of `buf` into `out`.
    fn hash(&self, buf: &KeyBuf, range: Range<usize>, out: &mut Vec<u64>) {
        out.clear();
        match buf {
            KeyBuf::Packed64(v) => out.extend(v[range].iter().map(|&k| hash_u64(k))),
            KeyBuf::Packed128(v) => out.extend(v[range].iter().map(|&k| hash_u128(k))),
            KeyBuf::Rows(rows) => {
                let state = RandomState::with_seed(SEED2);
                out.extend(range.map(|i| hash_bytes(&state, rows.row(i).data())));
            }
        }
    }
}

#[inline]
fn hash_bytes(state: &RandomState, bytes: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    state.hash_one(bytes)
}

/// The array data of a packable key column, checked against its width.
fn fixed_width_data(a: &ArrayRef, width: u32, n: usize) -> Result<arrow::array::ArrayData> {
    if packed_width(a.data_type()) != Some(width) || a.len() != n {
        return Err(DataflowError::Internal(format!(
            "join key column of type {} does not match its planned width {width}",
            a.data_type()
        )));
    }
    let data = a.to_data();
    if data.buffers().is_empty() {
        return Err(DataflowError::Internal(
            "join key array without values".into(),
        ));
    }
    Ok(data)
}

/// Compiled key expressions of both sides and their encoding.
pub struct JoinKeys {
    left: Vec<Arc<dyn PhysicalExpr>>,
    right: Vec<Arc<dyn PhysicalExpr>>,
    encoding: KeyEncoding,
    null_equals_null: bool,
}

impl JoinKeys {
    fn try_new(
        on: &[(PhysExpr, PhysExpr)],
        left_schema: &SchemaRef,
        right_schema: &SchemaRef,
        null_equals_null: bool,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        if on.is_empty() {
            return Err(DataflowError::Internal("hash join without keys".into()));
        }
        let mut left = Vec::with_capacity(on.len());
        let mut right = Vec::with_capacity(on.len());
        let mut types = Vec::with_capacity(on.len());
        for (l, r) in on {
            let lc = l.compile(left_schema, registry)?;
            let rc = r.compile(right_schema, registry)?;
            let lt = lc.data_type(left_schema)?;
            let rt = rc.data_type(right_schema)?;
            if !lt.equals_datatype(&rt) {
                return Err(DataflowError::Plan(format!(
                    "hash join key types differ: {l} is {lt}, {r} is {rt}"
                )));
            }
            left.push(lc);
            right.push(rc);
            types.push(lt);
        }
        Ok(JoinKeys {
            left,
            right,
            encoding: KeyEncoding::try_new(&types, null_equals_null)?,
            null_equals_null,
        })
    }

    /// Rows whose key contains a NULL (they match nothing), unless NULLs are
    /// equal.
    fn nulls(&self, arrays: &[ArrayRef]) -> Option<NullBuffer> {
        if self.null_equals_null {
            return None;
        }
        arrays.iter().fold(None, |acc, a| {
            NullBuffer::union(acc.as_ref(), a.logical_nulls().as_ref())
        })
    }
}

// ---------------------------------------------------------------------------
// The hash table
// ---------------------------------------------------------------------------

/// `(hash, first row, last row)` of a chain of build rows.
type Slot = (u64, u32, u32);

/// The built left side: its rows, encoded keys and hash table.
pub struct JoinTable {
    batch: RecordBatch,
    keys: KeyBuf,
    map: HashTable<Slot>,
    next: Vec<u32>,
}

impl JoinTable {
    /// Bytes held: build rows, keys, hash table and chains (approximately).
    pub fn size(&self) -> usize {
        self.batch.get_array_memory_size()
            + self.keys.size()
            + self.map.capacity() * std::mem::size_of::<Slot>()
            + self.next.capacity() * std::mem::size_of::<u32>()
    }

    /// Builds the table from all batches of `input`.
    async fn build(
        mut input: SendableRecordBatchStream,
        keys: &JoinKeys,
        schema: &SchemaRef,
    ) -> Result<JoinTable> {
        let mut batches = Vec::new();
        let mut buf = keys.encoding.empty_buf();
        let mut hashes = Vec::new();
        let mut map: HashTable<Slot> = HashTable::new();
        let mut next: Vec<u32> = Vec::new();
        let mut offset = 0usize;
        while let Some(batch) = input.next().await {
            let batch = batch?;
            let n = batch.num_rows();
            if n == 0 {
                continue;
            }
            if offset + n >= NONE as usize {
                return Err(DataflowError::Execution(format!(
                    "hash join build side exceeds {} rows",
                    NONE - 1
                )));
            }
            let arrays = evaluate_all(&keys.left, &batch)?;
            keys.encoding.append(&arrays, &mut buf)?;
            keys.encoding.hash(&buf, offset..offset + n, &mut hashes);
            let nulls = keys.nulls(&arrays);
            next.resize(offset + n, NONE);
            for (k, &h) in hashes.iter().enumerate() {
                if nulls.as_ref().is_some_and(|nb| nb.is_null(k)) {
                    continue;
                }
                let row = (offset + k) as u32;
                match map.entry(h, |s| s.0 == h, |s| s.0) {
                    Entry::Occupied(mut o) => {
                        let slot = o.get_mut();
                        next[slot.2 as usize] = row;
                        slot.2 = row;
                    }
                    Entry::Vacant(v) => {
                        v.insert((h, row, row));
                    }
                }
            }
            offset += n;
            batches.push(batch);
        }
        if buf.len() != offset {
            return Err(DataflowError::Internal(format!(
                "join keys encoded {} rows of {offset}",
                buf.len()
            )));
        }
        Ok(JoinTable {
            batch: concat(schema, batches)?,
            keys: buf,
            map,
            next,
        })
    }

    fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }
}

/// How the chain of a probe row is walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeMode {
    /// Every matching build row gives a pair.
    AllPairs,
    /// Only the first matching build row gives a pair (right semi / anti
    /// without filter).
    FirstMatch,
    /// No pairs: matched build rows are marked directly (left semi / anti
    /// without filter).
    MarkBuild,
}

/// Where probing of a batch resumes: the probe row and, inside its chain,
/// the next build row (`NONE`: start the row's lookup).
#[derive(Debug, Clone, Copy)]
struct Cursor {
    row: usize,
    chain: u32,
}

impl Cursor {
    fn start() -> Self {
        Cursor {
            row: 0,
            chain: NONE,
        }
    }
}

/// The encoded keys and hashes of the current probe batch (buffers reused
/// across batches).
struct Prober {
    keys: KeyBuf,
    hashes: Vec<u64>,
    nulls: Option<NullBuffer>,
}

impl Prober {
    fn new(keys: &JoinKeys) -> Self {
        Prober {
            keys: keys.encoding.empty_buf(),
            hashes: Vec::new(),
            nulls: None,
        }
    }

    fn prepare(&mut self, keys: &JoinKeys, batch: &RecordBatch) -> Result<()> {
        let arrays = evaluate_all(&keys.right, batch)?;
        self.keys.clear();
        keys.encoding.append(&arrays, &mut self.keys)?;
        let n = self.keys.len();
        if n != batch.num_rows() {
            return Err(DataflowError::Internal(format!(
                "join keys encoded {n} rows of {}",
                batch.num_rows()
            )));
        }
        keys.encoding.hash(&self.keys, 0..n, &mut self.hashes);
        self.nulls = keys.nulls(&arrays);
        Ok(())
    }

    /// Collects up to `limit` candidate pairs from `cursor` on (or marks
    /// build rows, in `MarkBuild` mode). Returns whether the batch is done.
    #[allow(clippy::too_many_arguments)]
    fn probe(
        &self,
        table: &JoinTable,
        mode: ProbeMode,
        cursor: &mut Cursor,
        limit: usize,
        build_idx: &mut Vec<u32>,
        probe_idx: &mut Vec<u32>,
        build_matched: &mut [bool],
    ) -> Result<bool> {
        let args = ProbeArgs {
            map: &table.map,
            next: &table.next,
            hashes: &self.hashes,
            nulls: self.nulls.as_ref(),
            mode,
            limit: limit.max(1),
        };
        Ok(match (&table.keys, &self.keys) {
            (KeyBuf::Packed64(b), KeyBuf::Packed64(p)) => args.run(
                |i, j| b.get(i) == p.get(j),
                cursor,
                build_idx,
                probe_idx,
                build_matched,
            ),
            (KeyBuf::Packed128(b), KeyBuf::Packed128(p)) => args.run(
                |i, j| b.get(i) == p.get(j),
                cursor,
                build_idx,
                probe_idx,
                build_matched,
            ),
            (KeyBuf::Rows(b), KeyBuf::Rows(p)) => args.run(
                |i, j| i < b.num_rows() && j < p.num_rows() && b.row(i) == p.row(j),
                cursor,
                build_idx,
                probe_idx,
                build_matched,
            ),
            _ => return Err(DataflowError::Internal("join key encodings differ".into())),
        })
    }
}

struct ProbeArgs<'a> {
    map: &'a HashTable<Slot>,
    next: &'a [u32],
    hashes: &'a [u64],
    nulls: Option<&'a NullBuffer>,
    mode: ProbeMode,
    limit: usize,
}

impl ProbeArgs<'_> {
    /// The probe loop, specialized per key comparison `eq(build, probe)`.
    #[inline(always)]
    fn run<E: Fn(usize, usize) -> bool>(
        &self,
        eq: E,
        cursor: &mut Cursor,
        build_idx: &mut Vec<u32>,
        probe_idx: &mut Vec<u32>,
        build_matched: &mut [bool],
    ) -> bool {
        let n = self.hashes.len();
        let next = |i: u32| self.next.get(i as usize).copied().unwrap_or(NONE);
        let mut j = cursor.row;
        let mut i = cursor.chain;
        while j < n {
            if i == NONE {
                if self.nulls.is_some_and(|nb| nb.is_null(j)) {
                    j += 1;
                    continue;
                }
                let h = self.hashes[j];
                match self.map.find(h, |s| s.0 == h) {
                    Some(s) => i = s.1,
                    None => {
                        j += 1;
                        continue;
                    }
                }
            }
            match self.mode {
                ProbeMode::AllPairs => {
                    while i != NONE {
                        let cur = i;
                        i = next(cur);
                        if eq(cur as usize, j) {
                            build_idx.push(cur);
                            probe_idx.push(j as u32);
                            if build_idx.len() >= self.limit {
                                *cursor = if i == NONE {
                                    Cursor {
                                        row: j + 1,
                                        chain: NONE,
                                    }
                                } else {
                                    Cursor { row: j, chain: i }
                                };
                                return false;
                            }
                        }
                    }
                }
                ProbeMode::FirstMatch => {
                    while i != NONE {
                        if eq(i as usize, j) {
                            build_idx.push(i);
                            probe_idx.push(j as u32);
                            break;
                        }
                        i = next(i);
                    }
                    i = NONE;
                    if build_idx.len() >= self.limit {
                        *cursor = Cursor {
                            row: j + 1,
                            chain: NONE,
                        };
                        return false;
                    }
                }
                ProbeMode::MarkBuild => {
                    while i != NONE {
                        if eq(i as usize, j) {
                            match build_matched.get_mut(i as usize) {
                                // All rows of this key were marked together.
                                Some(true) => break,
                                Some(m) => *m = true,
                                None => break,
                            }
                        }
                        i = next(i);
                    }
                    i = NONE;
                }
            }
            j += 1;
        }
        *cursor = Cursor {
            row: n,
            chain: NONE,
        };
        true
    }
}

// ---------------------------------------------------------------------------
// The operator
// ---------------------------------------------------------------------------

pub struct HashJoin {
    left: Arc<dyn Operator>,
    right: Arc<dyn Operator>,
    spec: Arc<JoinSpec>,
    keys: Arc<JoinKeys>,
    collect_left: bool,
    /// `NOT IN` semantics for a left anti join: any NULL on the right
    /// removes every row, and left rows with a NULL key never qualify
    /// (unless the right side is empty).
    null_aware: bool,
    shared: OnceBuild<JoinTable>,
}

impl HashJoin {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        left: Arc<dyn Operator>,
        right: Arc<dyn Operator>,
        join_type: JoinType,
        on: &[(PhysExpr, PhysExpr)],
        filter: Option<&PhysExpr>,
        null_equals_null: bool,
        null_aware: bool,
        collect_left: bool,
        schema: SchemaRef,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let (left_schema, right_schema) = (left.schema(), right.schema());
        if null_aware
            && (join_type != JoinType::LeftAnti
                || filter.is_some()
                || right.output_partitions() != 1
                || collect_left)
        {
            return Err(DataflowError::NotSupported(format!(
                "null-aware {join_type:?} join with a filter or several probe partitions \
                 (NOT IN with a correlated subquery)"
            )));
        }
        if collect_left && join_type.emits_unmatched_left() {
            return Err(DataflowError::Internal(format!(
                "hash join {join_type:?} cannot collect its left side"
            )));
        }
        if !collect_left && left.output_partitions() != right.output_partitions() {
            return Err(DataflowError::Internal(format!(
                "partitioned hash join: left has {} partitions, right {}",
                left.output_partitions(),
                right.output_partitions()
            )));
        }
        let keys = JoinKeys::try_new(on, &left_schema, &right_schema, null_equals_null, registry)?;
        let spec = JoinSpec::try_new(
            join_type,
            left_schema,
            right_schema,
            filter,
            schema,
            registry,
        )?;
        let consumers = right.output_partitions();
        Ok(HashJoin {
            left,
            right,
            spec: Arc::new(spec),
            keys: Arc::new(keys),
            collect_left,
            null_aware,
            shared: OnceBuild::new(consumers),
        })
    }

    fn probe_mode(&self) -> ProbeMode {
        if self.spec.filter.is_some() {
            return ProbeMode::AllPairs;
        }
        match self.spec.join_type {
            JoinType::LeftSemi | JoinType::LeftAnti => ProbeMode::MarkBuild,
            JoinType::RightSemi | JoinType::RightAnti => ProbeMode::FirstMatch,
            _ => ProbeMode::AllPairs,
        }
    }
}

/// Where a partition gets its table from.
enum BuildSource {
    Own(SendableRecordBatchStream),
    Shared(SharedBuild<JoinTable>),
}

impl Operator for HashJoin {
    fn name(&self) -> &'static str {
        "HashJoin"
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.spec.schema)
    }

    fn output_partitions(&self) -> usize {
        self.right.output_partitions()
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        check_partition(self, partition)?;
        let source = if self.collect_left {
            let (left, keys, schema) = (
                Arc::clone(&self.left),
                Arc::clone(&self.keys),
                self.spec.left_schema.clone(),
            );
            let task_ctx = Arc::clone(ctx);
            BuildSource::Shared(self.shared.get(move || {
                async move {
                    let input = merged_input(&left, &task_ctx)?;
                    JoinTable::build(input, &keys, &schema).await
                }
                .boxed()
            })?)
        } else {
            BuildSource::Own(self.left.execute(partition, ctx)?)
        };
        let mut right = self.right.execute(partition, ctx)?;
        let (spec, keys) = (Arc::clone(&self.spec), Arc::clone(&self.keys));
        let mode = self.probe_mode();
        // A shared build table is counted once, by partition 0.
        let report = (!self.collect_left || partition == 0).then(|| Arc::clone(ctx));
        let null_aware = self.null_aware;
        let batch_size = ctx.config.batch_size.max(1);
        let schema = self.schema();
        let stream = async_stream::try_stream! {
            let table = match source {
                BuildSource::Own(input) => {
                    Arc::new(JoinTable::build(input, &keys, &spec.left_schema).await?)
                }
                BuildSource::Shared(build) => await_build(build).await?,
            };
            if let Some(ctx) = &report {
                ctx.report_memory(table.size());
            }
            let build_rows = table.num_rows();
            let mut out = OutputBuffer::new(Arc::clone(&spec.schema), batch_size);
            let mut build_matched = vec![false; if spec.tracks_build() { build_rows } else { 0 }];
            // With an empty build side some joins have no output, but the
            // probe input is still drained: an exchange producer stops
            // feeding every partition once one consumer is gone.
            let skip_probe = build_rows == 0 && spec.empty_build_gives_empty();
            let mut prober = Prober::new(&keys);
            let mut build_idx: Vec<u32> = Vec::new();
            let mut probe_idx: Vec<u32> = Vec::new();
            let (mut probe_seen, mut probe_has_null) = (false, false);
            while let Some(batch) = right.next().await {
                let batch = batch?;
                let n = batch.num_rows();
                if n == 0 || skip_probe {
                    continue;
                }
                if null_aware {
                    probe_seen = true;
                    let arrays = evaluate_all(&keys.right, &batch)?;
                    probe_has_null |= keys.nulls(&arrays).is_some_and(|nb| nb.null_count() > 0);
                }
                let mut probe_matched = vec![false; if spec.tracks_probe() { n } else { 0 }];
                if build_rows > 0 {
                    prober.prepare(&keys, &batch)?;
                    let mut cursor = Cursor::start();
                    loop {
                        build_idx.clear();
                        probe_idx.clear();
                        build_idx.reserve(n.min(batch_size));
                        probe_idx.reserve(n.min(batch_size));
                        let done = prober.probe(
                            &table,
                            mode,
                            &mut cursor,
                            batch_size,
                            &mut build_idx,
                            &mut probe_idx,
                            &mut build_matched,
                        )?;
                        if !build_idx.is_empty() {
                            let joined = spec.process_pairs(
                                &table.batch,
                                &batch,
                                std::mem::take(&mut build_idx),
                                std::mem::take(&mut probe_idx),
                                &mut build_matched,
                                &mut probe_matched,
                            )?;
                            if let Some(joined) = joined {
                                out.push(joined)?;
                                while let Some(b) = out.next_batch() {
                                    yield b;
                                }
                            }
                        }
                        if done {
                            break;
                        }
                    }
                }
                if let Some(rows) = spec.finish_probe_batch(&batch, &probe_matched)? {
                    out.push(rows)?;
                    while let Some(b) = out.next_batch() {
                        yield b;
                    }
                }
            }
            drop(right);
            if null_aware && probe_seen {
                // x NOT IN (non-empty set): false when the set holds a
                // NULL, unknown when x is NULL; either way the row goes.
                if probe_has_null {
                    build_matched.iter_mut().for_each(|m| *m = true);
                } else {
                    let arrays = evaluate_all(&keys.left, &table.batch)?;
                    if let Some(nb) = keys.nulls(&arrays) {
                        for (i, m) in build_matched.iter_mut().enumerate() {
                            *m |= nb.is_null(i);
                        }
                    }
                }
            }
            if spec.tracks_build() {
                let mut start = 0;
                while start < build_rows {
                    if let Some(rows) =
                        spec.finish_build_rows(&table.batch, &build_matched, start, batch_size)?
                    {
                        out.push(rows)?;
                        while let Some(b) = out.next_batch() {
                            yield b;
                        }
                    }
                    start += batch_size;
                }
            }
            out.finish()?;
            while let Some(b) = out.next_batch() {
                yield b;
            }
        };
        Ok(boxed(schema, stream))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

    use super::*;
    use crate::expr::BinaryOp;
    use crate::operators::join_util::test_util::*;
    use crate::plan::{JoinType, PhysicalPlan};

    fn left_rows() -> Vec<(Option<i32>, &'static str)> {
        vec![
            (Some(1), "l1"),
            (Some(2), "l2a"),
            (Some(2), "l2b"),
            (None, "lnull"),
            (Some(4), "l4"),
        ]
    }

    fn right_rows() -> Vec<(Option<i32>, &'static str)> {
        vec![
            (Some(2), "r2"),
            (Some(3), "r3"),
            (None, "rnull"),
            (Some(1), "r1a"),
            (Some(1), "r1b"),
        ]
    }

    struct Case {
        join_type: JoinType,
        filter: Option<PhysExpr>,
        null_equals_null: bool,
        collect_left: bool,
        /// Partitions of each side (hash exchanged on the key when > 1).
        partitions: usize,
        batch_size: usize,
    }

    impl Case {
        fn new(join_type: JoinType) -> Self {
            Case {
                join_type,
                filter: None,
                null_equals_null: false,
                collect_left: false,
                partitions: 1,
                batch_size: 2,
            }
        }
    }

    async fn run_case(
        case: &Case,
        left: Vec<(Option<i32>, &str)>,
        right: Vec<(Option<i32>, &str)>,
    ) -> Vec<String> {
        let ls = kv_schema("lk", "lv");
        let rs = kv_schema("rk", "rv");
        // Split each side into batches of two rows.
        let lb: Vec<RecordBatch> = left.chunks(2).map(|c| kv_batch(&ls, c)).collect();
        let rb: Vec<RecordBatch> = right.chunks(2).map(|c| kv_batch(&rs, c)).collect();
        let p = case.partitions;
        let (lp, rp) = if case.collect_left {
            (
                gather(scan("l", &ls, 2)),
                if p > 1 {
                    hash_exchange(scan("r", &rs, 2), 0, p)
                } else {
                    scan("r", &rs, 1)
                },
            )
        } else if p > 1 {
            (
                hash_exchange(scan("l", &ls, 2), 0, p),
                hash_exchange(scan("r", &rs, 3), 0, p),
            )
        } else {
            (scan("l", &ls, 1), scan("r", &rs, 1))
        };
        let join = PhysicalPlan::HashJoin {
            left: Box::new(lp),
            right: Box::new(rp),
            join_type: case.join_type,
            on: vec![(PhysExpr::col(0, "lk"), PhysExpr::col(0, "rk"))],
            filter: case.filter.clone(),
            null_equals_null: case.null_equals_null,
            null_aware: false,
            collect_left: case.collect_left,
            schema: join_schema(&ls, &rs, case.join_type),
        };
        let plan = if join.output_partitions() > 1 {
            gather(join)
        } else {
            join
        };
        let out = run(&plan, vec![("l", lb), ("r", rb)], case.batch_size)
            .await
            .unwrap();
        assert_batch_sizes(&out, case.batch_size);
        rows(&out)
    }

    fn expected(join_type: JoinType) -> Vec<String> {
        use JoinType::*;
        let v: &[&str] = match join_type {
            Inner => &["1|l1|1|r1a", "1|l1|1|r1b", "2|l2a|2|r2", "2|l2b|2|r2"],
            Left => &[
                "1|l1|1|r1a",
                "1|l1|1|r1b",
                "2|l2a|2|r2",
                "2|l2b|2|r2",
                "NULL|lnull|NULL|NULL",
                "4|l4|NULL|NULL",
            ],
            Right => &[
                "1|l1|1|r1a",
                "1|l1|1|r1b",
                "2|l2a|2|r2",
                "2|l2b|2|r2",
                "NULL|NULL|3|r3",
                "NULL|NULL|NULL|rnull",
            ],
            Full => &[
                "1|l1|1|r1a",
                "1|l1|1|r1b",
                "2|l2a|2|r2",
                "2|l2b|2|r2",
                "NULL|lnull|NULL|NULL",
                "4|l4|NULL|NULL",
                "NULL|NULL|3|r3",
                "NULL|NULL|NULL|rnull",
            ],
            LeftSemi => &["1|l1", "2|l2a", "2|l2b"],
            LeftAnti => &["NULL|lnull", "4|l4"],
            RightSemi => &["2|r2", "1|r1a", "1|r1b"],
            RightAnti => &["3|r3", "NULL|rnull"],
        };
        sorted(v)
    }

    const ALL: [JoinType; 8] = [
        JoinType::Inner,
        JoinType::Left,
        JoinType::Right,
        JoinType::Full,
        JoinType::LeftSemi,
        JoinType::LeftAnti,
        JoinType::RightSemi,
        JoinType::RightAnti,
    ];

    #[tokio::test]
    async fn all_join_types_single_partition() {
        for jt in ALL {
            let got = run_case(&Case::new(jt), left_rows(), right_rows()).await;
            assert_eq!(got, expected(jt), "{jt:?}");
        }
    }

    #[tokio::test]
    async fn all_join_types_partitioned() {
        for jt in ALL {
            for batch_size in [1, 3, 100] {
                let case = Case {
                    partitions: 3,
                    batch_size,
                    ..Case::new(jt)
                };
                let got = run_case(&case, left_rows(), right_rows()).await;
                assert_eq!(got, expected(jt), "{jt:?} batch_size={batch_size}");
            }
        }
    }

    #[tokio::test]
    async fn collect_left_shared_build() {
        for jt in [
            JoinType::Inner,
            JoinType::Right,
            JoinType::RightSemi,
            JoinType::RightAnti,
        ] {
            for partitions in [1, 3] {
                let case = Case {
                    collect_left: true,
                    partitions,
                    ..Case::new(jt)
                };
                let got = run_case(&case, left_rows(), right_rows()).await;
                assert_eq!(got, expected(jt), "{jt:?} partitions={partitions}");
            }
        }
    }

    #[test]
    fn collect_left_rejects_left_emitting_joins() {
        let ls = kv_schema("lk", "lv");
        let rs = kv_schema("rk", "rv");
        let left: Arc<dyn Operator> = Arc::new(crate::operators::memory_scan::MemoryScan::new(
            "l".into(),
            1,
            None,
            ls.clone(),
        ));
        let right: Arc<dyn Operator> = Arc::new(crate::operators::memory_scan::MemoryScan::new(
            "r".into(),
            1,
            None,
            rs.clone(),
        ));
        let on = [(PhysExpr::col(0, "lk"), PhysExpr::col(0, "rk"))];
        let reg = FunctionRegistry::with_defaults();
        for jt in [
            JoinType::Left,
            JoinType::Full,
            JoinType::LeftSemi,
            JoinType::LeftAnti,
        ] {
            let r = HashJoin::try_new(
                left.clone(),
                right.clone(),
                jt,
                &on,
                None,
                false,
                false,
                true,
                join_schema(&ls, &rs, jt),
                &reg,
            );
            assert!(matches!(r, Err(DataflowError::Internal(_))), "{jt:?}");
        }
        // Mismatched key types are a clear error.
        let rs2 = Arc::new(Schema::new(vec![
            Field::new("rk", DataType::Int64, true),
            Field::new("rv", DataType::Utf8, true),
        ]));
        let right2: Arc<dyn Operator> = Arc::new(crate::operators::memory_scan::MemoryScan::new(
            "r".into(),
            1,
            None,
            rs2.clone(),
        ));
        let r = HashJoin::try_new(
            left,
            right2,
            JoinType::Inner,
            &on,
            None,
            false,
            false,
            false,
            join_schema(&ls, &rs2, JoinType::Inner),
            &reg,
        );
        match r {
            Err(DataflowError::Plan(m)) => assert!(m.contains("key types differ"), "{m}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[tokio::test]
    async fn null_equals_null() {
        let mut case = Case::new(JoinType::Inner);
        case.null_equals_null = true;
        let got = run_case(&case, left_rows(), right_rows()).await;
        let mut exp = expected(JoinType::Inner);
        exp.push("NULL|lnull|NULL|rnull".into());
        exp.sort();
        assert_eq!(got, exp);

        let mut case = Case::new(JoinType::LeftAnti);
        case.null_equals_null = true;
        case.partitions = 2;
        assert_eq!(
            run_case(&case, left_rows(), right_rows()).await,
            sorted(&["4|l4"])
        );

        let mut case = Case::new(JoinType::Full);
        case.null_equals_null = true;
        let got = run_case(&case, left_rows(), right_rows()).await;
        assert_eq!(
            got,
            sorted(&[
                "1|l1|1|r1a",
                "1|l1|1|r1b",
                "2|l2a|2|r2",
                "2|l2b|2|r2",
                "NULL|lnull|NULL|rnull",
                "4|l4|NULL|NULL",
                "NULL|NULL|3|r3",
            ])
        );
    }

    #[tokio::test]
    async fn empty_sides() {
        use JoinType::*;
        for jt in ALL {
            // Empty build side.
            let got = run_case(&Case::new(jt), vec![], right_rows()).await;
            let exp: Vec<String> = match jt {
                Right | Full => sorted(&[
                    "NULL|NULL|2|r2",
                    "NULL|NULL|3|r3",
                    "NULL|NULL|NULL|rnull",
                    "NULL|NULL|1|r1a",
                    "NULL|NULL|1|r1b",
                ]),
                RightAnti => sorted(&["2|r2", "3|r3", "NULL|rnull", "1|r1a", "1|r1b"]),
                _ => vec![],
            };
            assert_eq!(got, exp, "empty build {jt:?}");
            // Empty probe side.
            let got = run_case(&Case::new(jt), left_rows(), vec![]).await;
            let exp: Vec<String> = match jt {
                Left | Full => sorted(&[
                    "1|l1|NULL|NULL",
                    "2|l2a|NULL|NULL",
                    "2|l2b|NULL|NULL",
                    "NULL|lnull|NULL|NULL",
                    "4|l4|NULL|NULL",
                ]),
                LeftAnti => sorted(&["1|l1", "2|l2a", "2|l2b", "NULL|lnull", "4|l4"]),
                _ => vec![],
            };
            assert_eq!(got, exp, "empty probe {jt:?}");
        }
    }

    /// `lv < rv` over left ++ right columns (column 1 and column 3).
    fn lv_lt_rv() -> PhysExpr {
        PhysExpr::Binary {
            left: Box::new(PhysExpr::col(1, "lv")),
            op: BinaryOp::Lt,
            right: Box::new(PhysExpr::col(3, "rv")),
        }
    }

    #[tokio::test]
    async fn non_equi_filter() {
        use JoinType::*;
        let left = vec![(Some(1), "b"), (Some(1), "d"), (Some(2), "a"), (None, "a")];
        let right = vec![
            (Some(1), "c"),
            (Some(1), "a"),
            (Some(2), "a"),
            (Some(3), "z"),
        ];
        for jt in ALL {
            for partitions in [1, 2] {
                let case = Case {
                    filter: Some(lv_lt_rv()),
                    partitions,
                    batch_size: 1,
                    ..Case::new(jt)
                };
                let got = run_case(&case, left.clone(), right.clone()).await;
                // Matching pairs: (1,b)-(1,c) only.
                let exp: &[&str] = match jt {
                    Inner => &["1|b|1|c"],
                    Left => &[
                        "1|b|1|c",
                        "1|d|NULL|NULL",
                        "2|a|NULL|NULL",
                        "NULL|a|NULL|NULL",
                    ],
                    Right => &["1|b|1|c", "NULL|NULL|1|a", "NULL|NULL|2|a", "NULL|NULL|3|z"],
                    Full => &[
                        "1|b|1|c",
                        "1|d|NULL|NULL",
                        "2|a|NULL|NULL",
                        "NULL|a|NULL|NULL",
                        "NULL|NULL|1|a",
                        "NULL|NULL|2|a",
                        "NULL|NULL|3|z",
                    ],
                    LeftSemi => &["1|b"],
                    LeftAnti => &["1|d", "2|a", "NULL|a"],
                    RightSemi => &["1|c"],
                    RightAnti => &["1|a", "2|a", "3|z"],
                };
                assert_eq!(got, sorted(exp), "{jt:?} partitions={partitions}");
            }
        }
    }

    #[tokio::test]
    async fn duplicate_keys_explode_in_batch_sized_chunks() {
        // 30 x 40 rows with the same key: 1200 output rows in chunks.
        let left: Vec<(Option<i32>, &str)> = (0..30).map(|_| (Some(7), "l")).collect();
        let right: Vec<(Option<i32>, &str)> = (0..40).map(|_| (Some(7), "r")).collect();
        let mut case = Case::new(JoinType::Inner);
        case.batch_size = 64;
        let got = run_case(&case, left.clone(), right.clone()).await;
        assert_eq!(got.len(), 1200);
        assert!(got.iter().all(|r| r == "7|l|7|r"));
        case.join_type = JoinType::LeftSemi;
        assert_eq!(run_case(&case, left.clone(), right.clone()).await.len(), 30);
        case.join_type = JoinType::RightSemi;
        assert_eq!(run_case(&case, left, right).await.len(), 40);
    }

    fn i64_str_batch(
        schema: &SchemaRef,
        a: Vec<Option<i64>>,
        b: Vec<Option<i64>>,
        v: Vec<&str>,
    ) -> RecordBatch {
        RecordBatch::try_new(
            Arc::clone(schema),
            vec![
                Arc::new(Int64Array::from(a)),
                Arc::new(Int64Array::from(b)),
                Arc::new(StringArray::from(v)),
            ],
        )
        .unwrap()
    }

    /// Two Int64 keys (packed u128), and string keys (row format).
    #[tokio::test]
    async fn multi_column_and_string_keys() {
        let schema = |p: &str| -> SchemaRef {
            Arc::new(Schema::new(vec![
                Field::new(format!("{p}a"), DataType::Int64, true),
                Field::new(format!("{p}b"), DataType::Int64, true),
                Field::new(format!("{p}v"), DataType::Utf8, true),
            ]))
        };
        let (ls, rs) = (schema("l"), schema("r"));
        let lb = i64_str_batch(
            &ls,
            vec![Some(1), Some(1), Some(2), None, Some(-1)],
            vec![Some(1), Some(2), Some(1), Some(1), Some(i64::MAX)],
            vec!["x", "y", "z", "w", "m"],
        );
        let rb = i64_str_batch(
            &rs,
            vec![Some(1), Some(2), Some(2), None, Some(-1)],
            vec![Some(2), Some(1), Some(2), Some(1), Some(i64::MAX)],
            vec!["y", "q", "z", "w", "m"],
        );
        let run_keys = |on: Vec<(PhysExpr, PhysExpr)>, nen: bool| {
            let (ls, rs, lb, rb) = (ls.clone(), rs.clone(), lb.clone(), rb.clone());
            async move {
                let plan = PhysicalPlan::HashJoin {
                    left: Box::new(scan("l", &ls, 1)),
                    right: Box::new(scan("r", &rs, 1)),
                    join_type: JoinType::Inner,
                    on,
                    filter: None,
                    null_equals_null: nen,
                    null_aware: false,
                    collect_left: false,
                    schema: join_schema(&ls, &rs, JoinType::Inner),
                };
                rows(
                    &run(&plan, vec![("l", vec![lb]), ("r", vec![rb])], 8)
                        .await
                        .unwrap(),
                )
            }
        };
        let ab = vec![
            (PhysExpr::col(0, "la"), PhysExpr::col(0, "ra")),
            (PhysExpr::col(1, "lb"), PhysExpr::col(1, "rb")),
        ];
        assert_eq!(
            run_keys(ab.clone(), false).await,
            sorted(&[
                "1|2|y|1|2|y",
                "2|1|z|2|1|q",
                "-1|9223372036854775807|m|-1|9223372036854775807|m"
            ])
        );
        // Same with NULL = NULL (row format).
        assert_eq!(
            run_keys(ab, true).await,
            sorted(&[
                "1|2|y|1|2|y",
                "2|1|z|2|1|q",
                "NULL|1|w|NULL|1|w",
                "-1|9223372036854775807|m|-1|9223372036854775807|m"
            ])
        );
        // String key.
        let v = vec![(PhysExpr::col(2, "lv"), PhysExpr::col(2, "rv"))];
        assert_eq!(
            run_keys(v, false).await,
            sorted(&[
                "1|2|y|1|2|y",
                "2|1|z|2|2|z",
                "NULL|1|w|NULL|1|w",
                "-1|9223372036854775807|m|-1|9223372036854775807|m"
            ])
        );
    }

    /// Kernel-level check of the chunked probe: resuming inside a chain.
    #[tokio::test]
    async fn probe_resumes_inside_chains() {
        let ls = kv_schema("lk", "lv");
        let rs = kv_schema("rk", "rv");
        let lb = kv_batch(
            &ls,
            &[
                (Some(5), "a"),
                (Some(6), "b"),
                (Some(5), "c"),
                (Some(5), "d"),
            ],
        );
        let rb = kv_batch(
            &rs,
            &[(Some(5), "x"), (Some(6), "y"), (None, "z"), (Some(5), "w")],
        );
        let reg = FunctionRegistry::with_defaults();
        let keys = JoinKeys::try_new(
            &[(PhysExpr::col(0, "lk"), PhysExpr::col(0, "rk"))],
            &ls,
            &rs,
            false,
            &reg,
        )
        .unwrap();
        let input = crate::stream::boxed(ls.clone(), futures::stream::iter(vec![Ok(lb)]));
        let table = JoinTable::build(input, &keys, &ls).await.unwrap();
        let mut prober = Prober::new(&keys);
        prober.prepare(&keys, &rb).unwrap();
        for limit in 1..=8 {
            let mut cursor = Cursor::start();
            let mut pairs = Vec::new();
            loop {
                let (mut b, mut p) = (Vec::new(), Vec::new());
                let done = prober
                    .probe(
                        &table,
                        ProbeMode::AllPairs,
                        &mut cursor,
                        limit,
                        &mut b,
                        &mut p,
                        &mut [],
                    )
                    .unwrap();
                assert!(b.len() <= limit);
                pairs.extend(b.into_iter().zip(p));
                if done {
                    break;
                }
            }
            // Chains are in build order.
            assert_eq!(
                pairs,
                vec![(0, 0), (2, 0), (3, 0), (1, 1), (0, 3), (2, 3), (3, 3)],
                "limit={limit}"
            );
        }
    }
}
