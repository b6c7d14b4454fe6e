//! Several group keys packed into one `u128` per row, for key lists of
//! fixed-width values and strings: the shape of most `GROUP BY a, b`
//! (TPC-H q1 groups by two one-character strings). Encoding such rows
//! with arrow-row and hashing and comparing their bytes was an eighth of
//! q1's time; here each row becomes one integer, hashed and compared as
//! such.
//!
//! A fixed-width key contributes its bits and a null bit. A string key
//! contributes a 32-bit code, its index in a per-column dictionary (0 is
//! NULL); strings of up to 12 bytes are looked up by their bytes packed
//! into a `u128` (the inline form of a string view) rather than hashed as
//! slices. Key lists wider than 128 bits, and float keys (compared in
//! canonical form), use [`super::group_values::RowGroups`].

use std::sync::Arc;

use arrow::array::{
    make_array, Array, ArrayData, ArrayRef, AsArray, StringBuilder, StringViewBuilder,
};
use arrow::buffer::{Buffer, NullBuffer};
use arrow::datatypes::DataType;
use hashbrown::hash_map::Entry;
use hashbrown::{DefaultHashBuilder, HashMap};

use super::group_values::GroupValues;
use crate::error::{DataflowError, Result};
use crate::operators::join::keys::packed_width;

/// How one key column is packed.
enum Column {
    /// A fixed-width value of `width` bytes: its bits, then a null bit.
    Fixed { data_type: DataType, width: u32 },
    /// A string: its dictionary code (0: NULL).
    Str { view: bool, dict: Dictionary },
}

impl Column {
    fn bits(&self) -> u32 {
        match self {
            Column::Fixed { width, .. } => width * 8 + 1,
            Column::Str { .. } => 32,
        }
    }
}

/// Distinct strings of one column, numbered from 1 in order of arrival.
#[derive(Default)]
struct Dictionary {
    /// Strings of up to 12 bytes, packed with their length.
    short: HashMap<u128, u32, DefaultHashBuilder>,
    long: HashMap<Box<[u8]>, u32, DefaultHashBuilder>,
    /// The string of each code, from code 1.
    values: Vec<Box<[u8]>>,
    bytes: usize,
}

/// `bytes` (at most 12) packed with their length, as an inline string
/// view holds them.
#[inline]
fn inline_form(bytes: &[u8]) -> u128 {
    let mut buf = [0u8; 16];
    buf[..4].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf[4..4 + bytes.len()].copy_from_slice(bytes);
    u128::from_le_bytes(buf)
}

impl Dictionary {
    /// The code of `bytes`, given its inline form when it has one.
    #[inline]
    fn code(&mut self, bytes: &[u8], inline: Option<u128>) -> Result<u32> {
        let next = u32::try_from(self.values.len() + 1)
            .map_err(|_| DataflowError::Execution("more than 2^32 distinct group keys".into()))?;
        let code = match inline {
            Some(k) => *self.short.entry(k).or_insert(next),
            None => match self.long.entry(bytes.into()) {
                Entry::Occupied(e) => *e.get(),
                Entry::Vacant(e) => *e.insert(next),
            },
        };
        if code == next {
            self.values.push(bytes.into());
            self.bytes += bytes.len();
        }
        Ok(code)
    }

    /// Codes of a string column, ORed into `keys` at `shift`.
    fn pack(&mut self, array: &ArrayRef, view: bool, keys: &mut [u128], shift: u32) -> Result<()> {
        let nulls = array.logical_nulls();
        let valid = |i: usize| nulls.as_ref().is_none_or(|n| n.is_valid(i));
        if view {
            let a = array.as_string_view();
            for (i, (k, &v)) in keys.iter_mut().zip(a.views().iter()).enumerate() {
                if !valid(i) {
                    continue;
                }
                let len = v as u32;
                let code = if len <= 12 {
                    // Only the length and the string's own bytes: padding
                    // is not relied upon.
                    let bits = 32 + 8 * len;
                    let k = if bits == 128 {
                        v
                    } else {
                        v & ((1u128 << bits) - 1)
                    };
                    let raw = k.to_le_bytes();
                    self.code(&raw[4..4 + len as usize], Some(k))?
                } else {
                    self.code(a.value(i).as_bytes(), None)?
                };
                *k |= (code as u128) << shift;
            }
        } else {
            let a = array.as_string::<i32>();
            for (i, k) in keys.iter_mut().enumerate() {
                if !valid(i) {
                    continue;
                }
                let bytes = a.value(i).as_bytes();
                let inline = (bytes.len() <= 12).then(|| inline_form(bytes));
                *k |= (self.code(bytes, inline)? as u128) << shift;
            }
        }
        Ok(())
    }

    /// The strings of `codes` (0: NULL) as a string (view) array.
    fn emit(&self, codes: impl Iterator<Item = u32>, view: bool) -> Result<ArrayRef> {
        let text = |code: u32| -> Result<Option<&str>> {
            if code == 0 {
                return Ok(None);
            }
            let bytes = self.values.get(code as usize - 1).ok_or_else(|| {
                DataflowError::Internal(format!("group key code {code} out of range"))
            })?;
            std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|e| DataflowError::Internal(format!("group key is not UTF-8: {e}")))
        };
        Ok(if view {
            let mut b = StringViewBuilder::new();
            for c in codes {
                b.append_option(text(c)?);
            }
            Arc::new(b.finish())
        } else {
            let mut b = StringBuilder::new();
            for c in codes {
                b.append_option(text(c)?);
            }
            Arc::new(b.finish())
        })
    }
}

/// Group keys packed into a `u128` per row (see the module docs).
pub(super) struct PackedGroups {
    columns: Vec<Column>,
    /// Where each column's bits start.
    shifts: Vec<u32>,
    map: HashMap<u128, usize, DefaultHashBuilder>,
    /// The packed key of each group, by group index.
    groups: Vec<u128>,
    scratch: Vec<u128>,
}

impl PackedGroups {
    /// `None` when the keys cannot be packed into 128 bits.
    pub(super) fn try_new(key_types: &[DataType]) -> Option<Self> {
        let mut columns = Vec::with_capacity(key_types.len());
        for dt in key_types {
            columns.push(match dt {
                DataType::Utf8 => Column::Str {
                    view: false,
                    dict: Dictionary::default(),
                },
                DataType::Utf8View => Column::Str {
                    view: true,
                    dict: Dictionary::default(),
                },
                dt => Column::Fixed {
                    data_type: dt.clone(),
                    width: packed_width(dt).filter(|&w| w <= 8)?,
                },
            });
        }
        let mut shifts = Vec::with_capacity(columns.len());
        let mut at = 0u32;
        for c in &columns {
            shifts.push(at);
            at += c.bits();
        }
        (at <= 128).then(|| PackedGroups {
            columns,
            shifts,
            map: HashMap::with_hasher(DefaultHashBuilder::default()),
            groups: Vec::new(),
            scratch: Vec::new(),
        })
    }
}

/// The values of a fixed-width array as unsigned integers of its width.
fn fixed_bits(array: &ArrayRef, width: u32) -> Result<Vec<u64>> {
    let data = array.to_data();
    let (offset, len) = (data.offset(), data.len());
    let buffer = data
        .buffers()
        .first()
        .ok_or_else(|| DataflowError::Internal("fixed-width key without values".into()))?;
    let w = width as usize;
    let bytes = buffer
        .as_slice()
        .get(offset * w..(offset + len) * w)
        .ok_or_else(|| DataflowError::Internal("fixed-width key buffer too short".into()))?;
    Ok(bytes
        .chunks_exact(w)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..w].copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect())
}

impl GroupValues for PackedGroups {
    fn intern(&mut self, keys: &[ArrayRef], num_rows: usize, out: &mut Vec<usize>) -> Result<()> {
        if keys.len() != self.columns.len() {
            return Err(DataflowError::Internal(format!(
                "{} group keys, expected {}",
                keys.len(),
                self.columns.len()
            )));
        }
        self.scratch.clear();
        self.scratch.resize(num_rows, 0);
        for ((column, array), &shift) in self.columns.iter_mut().zip(keys).zip(&self.shifts) {
            if array.len() != num_rows {
                return Err(DataflowError::Internal(
                    "group key of another length".into(),
                ));
            }
            match column {
                Column::Fixed { width, .. } => {
                    let null_bit = 1u128 << (shift + *width * 8);
                    let nulls = array.logical_nulls();
                    for (i, (k, v)) in self
                        .scratch
                        .iter_mut()
                        .zip(fixed_bits(array, *width)?)
                        .enumerate()
                    {
                        if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                            *k |= null_bit;
                        } else {
                            *k |= (v as u128) << shift;
                        }
                    }
                }
                Column::Str { view, dict } => dict.pack(array, *view, &mut self.scratch, shift)?,
            }
        }
        out.reserve(num_rows);
        for &k in &self.scratch {
            let next = self.groups.len();
            let id = *self.map.entry(k).or_insert(next);
            if id == next {
                self.groups.push(k);
            }
            out.push(id);
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.groups.len()
    }

    fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        let groups = std::mem::take(&mut self.groups);
        self.map.clear();
        let n = groups.len();
        let mut out = Vec::with_capacity(self.columns.len());
        for (column, &shift) in self.columns.iter_mut().zip(&self.shifts) {
            match column {
                Column::Fixed { data_type, width } => {
                    let w = *width as usize;
                    let null_bit = 1u128 << (shift + *width * 8);
                    let mask = if w == 8 {
                        u64::MAX
                    } else {
                        (1u64 << (w * 8)) - 1
                    };
                    let mut bytes = Vec::with_capacity(n * w);
                    let mut valid = Vec::with_capacity(n);
                    for &k in &groups {
                        let v = ((k >> shift) as u64) & mask;
                        bytes.extend_from_slice(&v.to_le_bytes()[..w]);
                        valid.push(k & null_bit == 0);
                    }
                    let nulls = NullBuffer::from(valid);
                    let nulls = (nulls.null_count() > 0).then_some(nulls);
                    let data = ArrayData::builder(data_type.clone())
                        .len(n)
                        .add_buffer(Buffer::from_vec(bytes))
                        .nulls(nulls)
                        .build()?;
                    out.push(make_array(data));
                }
                Column::Str { view, dict } => {
                    let codes = groups.iter().map(|&k| (k >> shift) as u32);
                    out.push(dict.emit(codes, *view)?);
                    *dict = Dictionary::default();
                }
            }
        }
        Ok(out)
    }

    fn size(&self) -> usize {
        let dicts: usize = self
            .columns
            .iter()
            .map(|c| match c {
                Column::Fixed { .. } => 0,
                Column::Str { dict, .. } => {
                    dict.bytes
                        + dict.values.capacity() * 16
                        + dict.short.capacity() * 21
                        + dict.long.capacity() * 21
                }
            })
            .sum();
        dicts + self.map.capacity() * 25 + (self.groups.capacity() + self.scratch.capacity()) * 16
    }
}

#[cfg(test)]
mod tests;
