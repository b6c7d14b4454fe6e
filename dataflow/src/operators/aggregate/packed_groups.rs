//! Group keys packed into one `u128` per row: the shape of most
//! `GROUP BY a, b` over integers, dates and short strings (TPC-H q1 groups
//! by two one-character strings, q3 by a bigint, a date and an int).
//! Encoding such rows with arrow-row, then hashing and comparing their
//! bytes, is a fifth of q1's time; here a row is one integer, hashed and
//! compared as such, and the table holds nothing else.
//!
//! The layout is fixed when the table is made: a fixed-width key takes its
//! bits, a string key its length (4 bits) and up to `cap` bytes, where
//! `cap` shares out the bits the fixed-width keys leave; each key also
//! gets a validity bit when all of them fit. A batch that does not fit the
//! layout (a longer string, a NULL where there is no validity bit) turns
//! the table into [`RowGroups`] once: the groups so far are re-interned in
//! order, so their indices do not change. Float keys (compared in
//! canonical form) never come here.

use std::sync::Arc;

use arrow::array::{make_array, Array, ArrayData, ArrayRef, AsArray, StringViewArray};
use arrow::buffer::{Buffer, NullBuffer, ScalarBuffer};
use arrow::datatypes::DataType;
use hashbrown::{DefaultHashBuilder, HashMap};

use super::group_values::{GroupValues, RowGroups};
use crate::error::{DataflowError, Result};
use crate::operators::join::keys::packed_width;

#[cfg(test)]
mod tests;

/// Longest string kept inline in a string view, and the most a string key
/// can take here.
const MAX_INLINE: u32 = 12;

/// How one key column is packed.
#[derive(Debug, Clone)]
enum Kind {
    /// A fixed-width value of `width` bytes.
    Fixed { width: u32 },
    /// A string of at most `cap` bytes: its length (4 bits), then its bytes.
    Str { view: bool, cap: u32 },
}

#[derive(Debug, Clone)]
struct Part {
    data_type: DataType,
    kind: Kind,
    /// Where the part starts in the key.
    shift: u32,
    /// A validity bit at `shift` (the value follows it).
    nullable: bool,
}

impl Part {
    fn value_bits(&self) -> u32 {
        match self.kind {
            Kind::Fixed { width } => width * 8,
            Kind::Str { cap, .. } => 4 + cap * 8,
        }
    }

    fn value_shift(&self) -> u32 {
        self.shift + self.nullable as u32
    }
}

/// The packing of `key_types`, if they fit in 128 bits (strings with at
/// least one byte each).
fn layout(key_types: &[DataType]) -> Option<Vec<Part>> {
    let mut kinds = Vec::with_capacity(key_types.len());
    let (mut fixed_bits, mut strings) = (0u32, 0u32);
    for t in key_types {
        let kind = match t {
            DataType::Utf8View => Kind::Str { view: true, cap: 0 },
            DataType::Utf8 => Kind::Str {
                view: false,
                cap: 0,
            },
            t => {
                let width = packed_width(t)?;
                fixed_bits += width * 8;
                Kind::Fixed { width }
            }
        };
        strings += matches!(kind, Kind::Str { .. }) as u32;
        kinds.push(kind);
    }
    let columns = key_types.len() as u32;
    // Validity bits only if they leave strings at least 4 bytes (or there
    // are no strings and they fit).
    let room = |validity: u32| -> Option<u32> {
        let left = 128u32.checked_sub(fixed_bits + validity + strings * 4)?;
        Some(if strings == 0 {
            MAX_INLINE
        } else {
            (left / (8 * strings)).min(MAX_INLINE)
        })
    };
    let (nullable, cap) = match room(columns) {
        Some(cap) if cap >= 4 => (true, cap),
        _ => (false, room(0).filter(|&c| c >= 1)?),
    };
    let mut shift = 0;
    let parts = key_types
        .iter()
        .zip(kinds)
        .map(|(t, kind)| {
            let kind = match kind {
                Kind::Str { view, .. } => Kind::Str { view, cap },
                k => k,
            };
            let part = Part {
                data_type: t.clone(),
                kind,
                shift,
                nullable,
            };
            shift += part.value_bits() + nullable as u32;
            part
        })
        .collect::<Vec<_>>();
    (shift <= 128).then_some(parts)
}

/// Keys in packed form, or rows when a batch did not fit.
pub(super) enum PackedOrRows {
    Packed(PackedGroups),
    Rows(RowGroups),
}

impl PackedOrRows {
    /// `None` when `key_types` cannot be packed.
    pub(super) fn try_new(key_types: &[DataType]) -> Option<Self> {
        let parts = layout(key_types)?;
        Some(PackedOrRows::Packed(PackedGroups {
            parts,
            map: HashMap::with_hasher(DefaultHashBuilder::default()),
            keys: Vec::new(),
            scratch: Vec::new(),
        }))
    }
}

impl GroupValues for PackedOrRows {
    fn intern(&mut self, keys: &[ArrayRef], num_rows: usize, out: &mut Vec<usize>) -> Result<()> {
        if let PackedOrRows::Packed(p) = self {
            if p.pack(keys, num_rows)? {
                p.intern_scratch(out);
                return Ok(());
            }
            // Does not fit: the same groups, in the same order, as rows.
            let types: Vec<DataType> = p.parts.iter().map(|p| p.data_type.clone()).collect();
            let mut rows = RowGroups::try_new(&types)?;
            let groups = p.emit()?;
            let mut ids = Vec::with_capacity(p.len());
            rows.intern(&groups, groups.first().map_or(0, |g| g.len()), &mut ids)?;
            *self = PackedOrRows::Rows(rows);
        }
        match self {
            PackedOrRows::Rows(r) => r.intern(keys, num_rows, out),
            PackedOrRows::Packed(_) => Err(DataflowError::Internal("packed keys".into())),
        }
    }

    fn len(&self) -> usize {
        match self {
            PackedOrRows::Packed(p) => p.len(),
            PackedOrRows::Rows(r) => r.len(),
        }
    }

    fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        match self {
            PackedOrRows::Packed(p) => p.emit(),
            PackedOrRows::Rows(r) => r.emit(),
        }
    }

    fn size(&self) -> usize {
        match self {
            PackedOrRows::Packed(p) => p.size(),
            PackedOrRows::Rows(r) => r.size(),
        }
    }
}

pub(super) struct PackedGroups {
    parts: Vec<Part>,
    /// Packed key -> group index.
    map: HashMap<u128, usize, DefaultHashBuilder>,
    /// The packed key of each group, by group index.
    keys: Vec<u128>,
    /// The current batch's packed keys.
    scratch: Vec<u128>,
}

/// ORs `$values` (read as unsigned integers of the column's width) into
/// `$out`, with the validity bit, NULL rows left zero.
macro_rules! pack_fixed {
    ($data:expr, $native:ty, $out:expr, $part:expr, $nulls:expr) => {{
        let values =
            ScalarBuffer::<$native>::new($data.buffers()[0].clone(), $data.offset(), $data.len());
        let (vs, valid_bit) = ($part.value_shift(), $part.nullable as u128);
        let shift = $part.shift;
        match $nulls {
            None => {
                for (o, &v) in $out.iter_mut().zip(values.iter()) {
                    *o |= ((v as u128) << vs) | (valid_bit << shift);
                }
            }
            Some(n) => {
                for ((o, &v), valid) in $out.iter_mut().zip(values.iter()).zip(n.iter()) {
                    if valid {
                        *o |= ((v as u128) << vs) | (valid_bit << shift);
                    }
                }
            }
        }
    }};
}

impl PackedGroups {
    fn len(&self) -> usize {
        self.keys.len()
    }

    fn size(&self) -> usize {
        self.map.capacity() * (std::mem::size_of::<(u128, usize)>() + 1)
            + (self.keys.capacity() + self.scratch.capacity()) * std::mem::size_of::<u128>()
    }

    /// Packs the batch's keys into `scratch`; `false` (nothing changed) if
    /// a row does not fit the layout.
    fn pack(&mut self, keys: &[ArrayRef], n: usize) -> Result<bool> {
        if keys.len() != self.parts.len() || keys.iter().any(|k| k.len() != n) {
            return Err(DataflowError::Internal(format!(
                "{} group key columns of {n} rows expected",
                self.parts.len()
            )));
        }
        self.scratch.clear();
        self.scratch.resize(n, 0);
        for (part, array) in self.parts.iter().zip(keys) {
            let nulls = array.logical_nulls().filter(|n| n.null_count() > 0);
            if nulls.is_some() && !part.nullable {
                return Ok(false);
            }
            let out = &mut self.scratch[..];
            match part.kind {
                Kind::Fixed { width } => {
                    let data = array.to_data();
                    if packed_width(array.data_type()) != Some(width) || data.buffers().is_empty() {
                        return Err(DataflowError::Internal(format!(
                            "group key of type {} packed as {width} bytes",
                            array.data_type()
                        )));
                    }
                    match width {
                        1 => pack_fixed!(data, u8, out, part, &nulls),
                        2 => pack_fixed!(data, u16, out, part, &nulls),
                        4 => pack_fixed!(data, u32, out, part, &nulls),
                        8 => pack_fixed!(data, u64, out, part, &nulls),
                        16 => pack_fixed!(data, u128, out, part, &nulls),
                        w => return Err(DataflowError::Internal(format!("key width {w}"))),
                    }
                }
                Kind::Str { view, cap } => {
                    if !pack_strings(array, view, cap, part, nulls.as_ref(), out)? {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }

    fn intern_scratch(&mut self, out: &mut Vec<usize>) {
        out.reserve(self.scratch.len());
        for &k in &self.scratch {
            let next = self.keys.len();
            let id = *self.map.entry(k).or_insert(next);
            if id == next {
                self.keys.push(k);
            }
            out.push(id);
        }
    }

    fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        let keys = std::mem::take(&mut self.keys);
        self.map = HashMap::with_hasher(DefaultHashBuilder::default());
        self.scratch = Vec::new();
        self.parts.iter().map(|p| unpack(p, &keys)).collect()
    }
}

/// A string's packed form: its length, then its bytes.
#[inline]
fn packed_string(len: u32, bytes: u128) -> u128 {
    len as u128 | (bytes << 4)
}

/// ORs a string column into `out`; `false` if a string is longer than
/// `cap`.
fn pack_strings(
    array: &ArrayRef,
    view: bool,
    cap: u32,
    part: &Part,
    nulls: Option<&NullBuffer>,
    out: &mut [u128],
) -> Result<bool> {
    let valid = |i: usize| nulls.is_none_or(|n| n.is_valid(i));
    let (vs, valid_bit) = (part.value_shift(), (part.nullable as u128) << part.shift);
    if view {
        let a = array
            .as_string_view_opt()
            .ok_or_else(|| not_a_string(array))?;
        let views = a.views();
        let fits = match nulls {
            None => views.iter().all(|&v| v as u32 <= cap),
            Some(_) => views
                .iter()
                .enumerate()
                .all(|(i, &v)| !valid(i) || v as u32 <= cap),
        };
        if !fits {
            return Ok(false);
        }
        for (i, (o, &v)) in out.iter_mut().zip(views.iter()).enumerate() {
            if valid(i) {
                let len = v as u32;
                // The string's own bytes only: view padding is not relied on.
                let bytes = (v >> 32) & ((1u128 << (8 * len)) - 1);
                *o |= (packed_string(len, bytes) << vs) | valid_bit;
            }
        }
    } else {
        let a = array
            .as_string_opt::<i32>()
            .ok_or_else(|| not_a_string(array))?;
        for (i, o) in out.iter_mut().enumerate() {
            if !valid(i) {
                continue;
            }
            let s = a.value(i).as_bytes();
            if s.len() as u32 > cap {
                return Ok(false);
            }
            let mut buf = [0u8; 16];
            buf[..s.len()].copy_from_slice(s);
            let bytes = u128::from_le_bytes(buf);
            *o |= (packed_string(s.len() as u32, bytes) << vs) | valid_bit;
        }
    }
    Ok(true)
}

fn not_a_string(array: &ArrayRef) -> DataflowError {
    DataflowError::Internal(format!(
        "group key of type {} packed as a string",
        array.data_type()
    ))
}

/// The column of `part` for every key.
fn unpack(part: &Part, keys: &[u128]) -> Result<ArrayRef> {
    let nulls = part.nullable.then(|| {
        NullBuffer::from(
            keys.iter()
                .map(|k| (k >> part.shift) & 1 == 1)
                .collect::<Vec<_>>(),
        )
    });
    let nulls = nulls.filter(|n| n.null_count() > 0);
    let bits = part.value_bits();
    let mask = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    let values = keys.iter().map(|k| (k >> part.value_shift()) & mask);
    match part.kind {
        Kind::Fixed { width } => {
            let buffer = match width {
                1 => Buffer::from_iter(values.map(|v| v as u8)),
                2 => Buffer::from_iter(values.map(|v| v as u16)),
                4 => Buffer::from_iter(values.map(|v| v as u32)),
                8 => Buffer::from_iter(values.map(|v| v as u64)),
                _ => Buffer::from_iter(values),
            };
            let data = ArrayData::builder(part.data_type.clone())
                .len(keys.len())
                .add_buffer(buffer)
                .nulls(nulls)
                .build()?;
            Ok(make_array(data))
        }
        Kind::Str { view, .. } => {
            // An inline view: the length, then the bytes from bit 32.
            let views: ScalarBuffer<u128> = values.map(|v| (v & 0xf) | ((v >> 4) << 32)).collect();
            let array = StringViewArray::try_new(views, vec![], nulls)?;
            if view {
                Ok(Arc::new(array))
            } else {
                Ok(arrow::compute::cast(&array, &DataType::Utf8)?)
            }
        }
    }
}
