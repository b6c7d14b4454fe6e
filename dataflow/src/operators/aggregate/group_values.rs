//! Group keys -> dense group indices: a single integer-like key is
//! interned with a hash map on the native value; any other key list is
//! encoded with arrow-row and the encoded rows are kept contiguously in a
//! [`Rows`] buffer, found through a [`HashTable`] keyed by the hash of the
//! row bytes. Also used by the set operations to count key rows. Float
//! keys go the row way, compared in canonical form (`-0.0` is `0.0`, one
//! NaN) but emitted as first seen.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, Decimal128Type, Int16Type, Int32Type,
    Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow::row::{RowConverter, Rows, SortField};
use hashbrown::hash_map::Entry;
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

use super::packed_groups::PackedOrRows;
use crate::error::{DataflowError, Result};
use crate::execution::{canonical_keys, needs_canonical};

/// Maps key rows to dense group indices `0..len()`, in order of first
/// appearance.
pub(crate) trait GroupValues: Send {
    /// Appends the group index of each of the `num_rows` rows of `keys`.
    fn intern(&mut self, keys: &[ArrayRef], num_rows: usize, out: &mut Vec<usize>) -> Result<()>;
    fn len(&self) -> usize;
    /// The key columns of all groups, by group index.
    fn emit(&mut self) -> Result<Vec<ArrayRef>>;
    /// Bytes held (approximately).
    fn size(&self) -> usize;
}

pub(super) fn new_group_values(key_types: &[DataType]) -> Result<Box<dyn GroupValues>> {
    if key_types.is_empty() {
        return Ok(Box::new(NoGroups));
    }
    if let [dt] = key_types {
        macro_rules! prim {
            ($t:ty) => {
                return Ok(Box::new(PrimitiveGroups::<$t>::new(dt.clone())))
            };
        }
        match dt {
            DataType::Int8 => prim!(Int8Type),
            DataType::Int16 => prim!(Int16Type),
            DataType::Int32 => prim!(Int32Type),
            DataType::Int64 => prim!(Int64Type),
            DataType::UInt8 => prim!(UInt8Type),
            DataType::UInt16 => prim!(UInt16Type),
            DataType::UInt32 => prim!(UInt32Type),
            DataType::UInt64 => prim!(UInt64Type),
            DataType::Date32 => prim!(Date32Type),
            DataType::Date64 => prim!(Date64Type),
            DataType::Decimal128(_, _) => prim!(Decimal128Type),
            _ => {}
        }
    }
    if let Some(packed) = PackedOrRows::try_new(key_types) {
        return Ok(Box::new(packed));
    }
    Ok(Box::new(RowGroups::try_new(key_types)?))
}

/// No group keys: every row belongs to the one group, which always exists.
pub(super) struct NoGroups;

impl GroupValues for NoGroups {
    fn intern(&mut self, _keys: &[ArrayRef], num_rows: usize, out: &mut Vec<usize>) -> Result<()> {
        out.resize(out.len() + num_rows, 0);
        Ok(())
    }
    fn len(&self) -> usize {
        1
    }
    fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(vec![])
    }
    fn size(&self) -> usize {
        0
    }
}

/// One key of a primitive type with a hashable native value.
pub(super) struct PrimitiveGroups<T: ArrowPrimitiveType> {
    data_type: DataType,
    map: HashMap<T::Native, usize, DefaultHashBuilder>,
    values: Vec<T::Native>,
    null_group: Option<usize>,
}

impl<T: ArrowPrimitiveType> PrimitiveGroups<T>
where
    T::Native: Hash + Eq,
{
    fn new(data_type: DataType) -> Self {
        PrimitiveGroups {
            data_type,
            map: HashMap::with_hasher(DefaultHashBuilder::default()),
            values: Vec::new(),
            null_group: None,
        }
    }

    #[inline]
    fn id_of(&mut self, v: T::Native) -> usize {
        match self.map.entry(v) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                let id = self.values.len();
                self.values.push(v);
                e.insert(id);
                id
            }
        }
    }
}

impl<T: ArrowPrimitiveType> GroupValues for PrimitiveGroups<T>
where
    T::Native: Hash + Eq,
{
    fn intern(&mut self, keys: &[ArrayRef], num_rows: usize, out: &mut Vec<usize>) -> Result<()> {
        let arr = keys
            .first()
            .and_then(|k| k.as_primitive_opt::<T>())
            .ok_or_else(|| {
                DataflowError::Internal(format!(
                    "group key is not of type {}: {:?}",
                    self.data_type,
                    keys.first().map(|k| k.data_type())
                ))
            })?;
        debug_assert_eq!(arr.len(), num_rows);
        out.reserve(arr.len());
        if arr.null_count() == 0 {
            for &v in arr.values().iter() {
                let id = self.id_of(v);
                out.push(id);
            }
        } else {
            for (i, &v) in arr.values().iter().enumerate() {
                let id = if arr.is_null(i) {
                    match self.null_group {
                        Some(id) => id,
                        None => {
                            // The slot's value is a placeholder; the group
                            // is emitted as NULL.
                            let id = self.values.len();
                            self.values.push(T::Native::default());
                            self.null_group = Some(id);
                            id
                        }
                    }
                } else {
                    self.id_of(v)
                };
                out.push(id);
            }
        }
        Ok(())
    }

    fn size(&self) -> usize {
        self.map.capacity() * (std::mem::size_of::<T::Native>() + std::mem::size_of::<usize>() + 1)
            + self.values.capacity() * std::mem::size_of::<T::Native>()
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        let values = std::mem::take(&mut self.values);
        let n = values.len();
        let nulls = self.null_group.take().map(|g| {
            let mut valid = vec![true; n];
            valid[g] = false;
            NullBuffer::from(valid)
        });
        self.map.clear();
        let arr =
            PrimitiveArray::<T>::new(values.into(), nulls).with_data_type(self.data_type.clone());
        Ok(vec![Arc::new(arr)])
    }
}

/// Any list of keys, encoded as arrow rows: maps each distinct key row to a
/// dense index (also used by the multiset set operations). Float keys are
/// compared in canonical form (`-0.0` is `0.0`, one NaN), and each group
/// keeps the key row it was first seen with, which it is emitted as.
pub(crate) struct RowGroups {
    converter: RowConverter,
    /// The encoded (canonical) key row of each group, by group index.
    rows: Rows,
    /// (hash of the row bytes, group index)
    table: HashTable<(u64, usize)>,
    hasher: DefaultHashBuilder,
    /// The encoded rows of the current batch.
    scratch: Rows,
    /// With float keys: the key rows as given.
    originals: Option<Box<FirstSeen>>,
}

/// The key rows of groups with float keys as given (not canonical).
struct FirstSeen {
    /// The key row each group was first seen with, by group index.
    groups: Rows,
    /// The current batch's key rows.
    batch: Rows,
}

impl RowGroups {
    pub(crate) fn try_new(key_types: &[DataType]) -> Result<Self> {
        let converter = RowConverter::new(
            key_types
                .iter()
                .map(|t| SortField::new(t.clone()))
                .collect(),
        )?;
        let rows = converter.empty_rows(0, 0);
        let scratch = converter.empty_rows(0, 0);
        let originals = key_types.iter().any(needs_canonical).then(|| {
            Box::new(FirstSeen {
                groups: converter.empty_rows(0, 0),
                batch: converter.empty_rows(0, 0),
            })
        });
        Ok(RowGroups {
            converter,
            rows,
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            scratch,
            originals,
        })
    }

    /// Encodes `keys` into `scratch` in canonical form (and as given into
    /// the originals' scratch).
    fn encode(&mut self, keys: &[ArrayRef]) -> Result<()> {
        self.scratch.clear();
        self.converter
            .append(&mut self.scratch, &canonical_keys(keys))?;
        if let Some(first_seen) = &mut self.originals {
            first_seen.batch.clear();
            self.converter.append(&mut first_seen.batch, keys)?;
        }
        Ok(())
    }

    /// The index of each row of `keys` among the rows seen so far (`None`
    /// for a row never interned), without adding any.
    pub(crate) fn lookup(&mut self, keys: &[ArrayRef], out: &mut Vec<Option<usize>>) -> Result<()> {
        self.encode(keys)?;
        let RowGroups {
            rows,
            table,
            hasher,
            scratch,
            ..
        } = self;
        out.reserve(scratch.num_rows());
        for row in scratch.iter() {
            let bytes = row.data();
            let h = hasher.hash_one(bytes);
            out.push(find_group(table, rows, h, bytes));
        }
        Ok(())
    }
}

/// The group whose encoded key is `bytes` (hashed to `h`), if it exists:
/// the probe both interning and lookup make.
fn find_group(table: &HashTable<(u64, usize)>, rows: &Rows, h: u64, bytes: &[u8]) -> Option<usize> {
    table
        .find(h, |&(gh, gid)| gh == h && rows.row(gid).data() == bytes)
        .map(|&(_, gid)| gid)
}

impl GroupValues for RowGroups {
    fn intern(&mut self, keys: &[ArrayRef], num_rows: usize, out: &mut Vec<usize>) -> Result<()> {
        self.encode(keys)?;
        let RowGroups {
            rows,
            table,
            hasher,
            scratch,
            originals,
            ..
        } = self;
        debug_assert_eq!(scratch.num_rows(), num_rows);
        out.reserve(scratch.num_rows());
        for (i, row) in scratch.iter().enumerate() {
            let bytes = row.data();
            let h = hasher.hash_one(bytes);
            let id = match find_group(table, rows, h, bytes) {
                Some(id) => id,
                None => {
                    let id = rows.num_rows();
                    rows.push(row);
                    if let Some(first_seen) = originals {
                        first_seen.groups.push(first_seen.batch.row(i));
                    }
                    table.insert_unique(h, (h, id), |&(gh, _)| gh);
                    id
                }
            };
            out.push(id);
        }
        Ok(())
    }

    fn size(&self) -> usize {
        let originals = self
            .originals
            .as_ref()
            .map_or(0, |f| f.groups.size() + f.batch.size());
        self.rows.size()
            + self.scratch.size()
            + originals
            + self.table.capacity() * std::mem::size_of::<(u64, usize)>()
    }

    fn len(&self) -> usize {
        self.rows.num_rows()
    }

    fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        let emitted = match &mut self.originals {
            Some(first_seen) => {
                let columns = self.converter.convert_rows(first_seen.groups.iter())?;
                first_seen.groups.clear();
                columns
            }
            None => self.converter.convert_rows(self.rows.iter())?,
        };
        self.rows.clear();
        self.table.clear();
        Ok(emitted)
    }
}
