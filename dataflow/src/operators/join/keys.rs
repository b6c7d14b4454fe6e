//! Join keys: compiled key expressions of both sides and their per-row
//! encoding. Fixed-width integer keys are packed into one `u64` or `u128`
//! (compared and hashed as integers), other keys use the arrow row format.
//! Rows with a NULL key are never inserted nor looked up unless
//! `null_equals_null` (then NULLs are part of the row encoding). Float
//! keys are encoded in canonical form (`-0.0` matches `0.0`, NaN matches
//! NaN, as the SQL `=` of hash joins means here).

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, IntervalUnit, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion_common::hash_utils::RandomState;
use datafusion_physical_expr::PhysicalExpr;

use crate::error::{DataflowError, Result};
use crate::execution::canonical_keys;
use crate::expr::PhysExpr;
use crate::functions::FunctionRegistry;

/// End of a chain.
pub(super) const NONE: u32 = u32::MAX;

/// Seeds of the join hash. They differ from the exchange's partitioning
/// seed: all rows of a hash partition share `hash % n`, which would leave
/// most buckets of a table hashed the same way empty.
pub(super) const SEED1: u64 = 0x243f_6a88_85a3_08d3;
pub(super) const SEED2: u64 = 0x1319_8a2e_0370_7344;
pub(super) const MUL1: u64 = 0xa409_3822_299f_31d0 | 1;
pub(super) const MUL2: u64 = 0x082e_fa98_ec4e_6c89;

#[inline(always)]
pub(super) fn folded_multiply(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline(always)]
pub(super) fn hash_u64(k: u64) -> u64 {
    folded_multiply(k ^ SEED1, MUL1)
}

#[inline(always)]
pub(super) fn hash_u128(k: u128) -> u64 {
    let h = folded_multiply((k as u64) ^ SEED1, MUL1);
    folded_multiply(h ^ ((k >> 64) as u64) ^ SEED2, MUL2)
}

/// Byte width of key types that can be packed (compared by bit pattern).
pub(crate) fn packed_width(dt: &DataType) -> Option<u32> {
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
pub(super) enum KeyEncoding {
    /// Fixed-width keys (byte widths) packed into a `u64`.
    Packed64(Vec<u32>),
    /// Fixed-width keys packed into a `u128`.
    Packed128(Vec<u32>),
    /// The arrow row format.
    Rows(RowConverter),
}

/// Encoded keys of a run of rows.
pub(super) enum KeyBuf {
    Packed64(Vec<u64>),
    Packed128(Vec<u128>),
    Rows(Rows),
}

impl KeyBuf {
    pub(super) fn size(&self) -> usize {
        match self {
            KeyBuf::Packed64(v) => v.capacity() * 8,
            KeyBuf::Packed128(v) => v.capacity() * 16,
            KeyBuf::Rows(r) => r.size(),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            KeyBuf::Packed64(v) => v.len(),
            KeyBuf::Packed128(v) => v.len(),
            KeyBuf::Rows(r) => r.num_rows(),
        }
    }

    pub(super) fn clear(&mut self) {
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

/// Appends one `$target` word per row to `$buf`, each key column's values
/// shifted into place by their byte width.
macro_rules! pack_keys {
    ($arrays:expr, $widths:expr, $buf:expr, $n:expr, $target:ty,
     $($w:literal => $native:ty),+) => {{
        let start = $buf.len();
        $buf.resize(start + $n, 0);
        let out = &mut $buf[start..];
        let mut shift = 0u32;
        for (a, &w) in $arrays.iter().zip($widths) {
            let data = fixed_width_data(a, w, $n)?;
            match w {
                $($w => pack_values!(data, $native, out, $target, shift),)+
                _ => return Err(DataflowError::Internal(format!("key width {w}"))),
            }
            shift += w * 8;
        }
        Ok(())
    }};
}

impl KeyEncoding {
    pub(super) fn try_new(types: &[DataType], null_equals_null: bool) -> Result<Self> {
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

    pub(super) fn empty_buf(&self) -> KeyBuf {
        match self {
            KeyEncoding::Packed64(_) => KeyBuf::Packed64(Vec::new()),
            KeyEncoding::Packed128(_) => KeyBuf::Packed128(Vec::new()),
            KeyEncoding::Rows(c) => KeyBuf::Rows(c.empty_rows(0, 0)),
        }
    }

    /// Appends the encoded keys of `arrays` (one row each) to `buf`.
    pub(super) fn append(&self, arrays: &[ArrayRef], buf: &mut KeyBuf) -> Result<()> {
        let n = arrays.first().map(|a| a.len()).unwrap_or(0);
        match (self, buf) {
            (KeyEncoding::Packed64(widths), KeyBuf::Packed64(v)) => {
                pack_keys!(arrays, widths, v, n, u64, 1 => u8, 2 => u16, 4 => u32, 8 => u64)
            }
            (KeyEncoding::Packed128(widths), KeyBuf::Packed128(v)) => {
                pack_keys!(arrays, widths, v, n, u128,
                    1 => u8, 2 => u16, 4 => u32, 8 => u64, 16 => u128)
            }
            (KeyEncoding::Rows(c), KeyBuf::Rows(rows)) => {
                Ok(c.append(rows, &canonical_keys(arrays))?)
            }
            _ => Err(DataflowError::Internal("join key encodings differ".into())),
        }
    }

    /// Writes the hashes of the keys `range` of `buf` into `out`.
    pub(super) fn hash(&self, buf: &KeyBuf, range: Range<usize>, out: &mut Vec<u64>) {
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
pub(super) fn hash_bytes(state: &RandomState, bytes: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    state.hash_one(bytes)
}

/// The array data of a packable key column, checked against its width.
pub(super) fn fixed_width_data(
    a: &ArrayRef,
    width: u32,
    n: usize,
) -> Result<arrow::array::ArrayData> {
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
    pub(super) left: Vec<Arc<dyn PhysicalExpr>>,
    pub(super) right: Vec<Arc<dyn PhysicalExpr>>,
    pub(super) encoding: KeyEncoding,
    pub(super) null_equals_null: bool,
}

impl JoinKeys {
    pub(super) fn try_new(
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
    pub(super) fn nulls(&self, arrays: &[ArrayRef]) -> Option<NullBuffer> {
        if self.null_equals_null {
            return None;
        }
        arrays.iter().fold(None, |acc, a| {
            NullBuffer::union(acc.as_ref(), a.logical_nulls().as_ref())
        })
    }
}
