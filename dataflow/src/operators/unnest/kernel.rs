//! Unnest kernels: plain functions from an input batch to output batches.
//!
//! One level of flattening works on row positions: row `r` yields
//! `len(r)` output rows (its longest list under the NULL rule), output row
//! `(r, k)` takes element `k` of each flattened list (NULL past a list's
//! end) and row `r` of every repeated column. [`Positions`] walks these
//! pairs in chunks, so a single row with a huge list still comes out in
//! batches of bounded size.
//!
//! Levels above the last (`depth` > 1) are flattened whole before the last
//! level is chunked: only the last level is bounded.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, GenericListArray, OffsetSizeTrait, RecordBatch, UInt32Array,
    UInt64Array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, SchemaRef};

use crate::error::{DataflowError, Result};
use crate::plan::{UnnestList, UnnestNulls};

/// What an unnest does, checked against its input schema.
#[derive(Debug, Clone)]
pub struct UnnestSpec {
    pub lists: Vec<UnnestList>,
    pub structs: Vec<usize>,
    pub nulls: UnnestNulls,
    /// The output schema.
    pub schema: SchemaRef,
}

impl UnnestSpec {
    fn max_depth(&self) -> usize {
        self.lists.iter().map(|l| l.depth).max().unwrap_or(0)
    }

    /// Whether input column `column` is still read after flattening level
    /// `level`: it is not unnested at all, or unnested starting at a lower
    /// level.
    fn needed_below(&self, column: usize, level: usize) -> bool {
        let mut unnested = self.lists.iter().filter(|l| l.column == column).peekable();
        unnested.peek().is_none() || unnested.any(|l| l.depth < level)
    }
}

/// The elements of a list array, row by row: where each row's list starts
/// in `values` and how long it is (`None` for a NULL list).
struct Lists {
    values: ArrayRef,
    rows: Vec<Option<(usize, usize)>>,
}

impl Lists {
    fn new(array: &ArrayRef) -> Result<Self> {
        let (values, rows) = match array.data_type() {
            DataType::List(_) => variable_lists(array.as_list::<i32>()),
            DataType::LargeList(_) => variable_lists(array.as_list::<i64>()),
            DataType::FixedSizeList(_, size) => {
                let a = array.as_fixed_size_list();
                let size = *size as usize;
                let rows = (0..a.len())
                    .map(|r| a.is_valid(r).then_some((r * size, size)))
                    .collect();
                (Arc::clone(a.values()), rows)
            }
            DataType::Null => (
                Arc::clone(array),
                std::iter::repeat_n(None, array.len()).collect(),
            ),
            other => {
                return Err(DataflowError::Plan(format!(
                    "unnest expects a list, got {other}"
                )))
            }
        };
        Ok(Lists { values, rows })
    }

    /// How many output rows row `r` asks for under `nulls`.
    fn rows_of(&self, r: usize, nulls: UnnestNulls) -> usize {
        match (self.rows[r], nulls) {
            (Some((_, len)), UnnestNulls::PreserveAndExpandEmpty) => len.max(1),
            (Some((_, len)), _) => len,
            (None, UnnestNulls::Drop) => 0,
            (None, _) => 1,
        }
    }

    /// Element `k` of each row in `rows`, NULL past a list's end.
    fn take(&self, rows: &[u32], ks: &[u64]) -> Result<ArrayRef> {
        if self.values.data_type() == &DataType::Null {
            return Ok(arrow::array::new_null_array(&DataType::Null, rows.len()));
        }
        let indices: UInt64Array = rows
            .iter()
            .zip(ks)
            .map(|(&r, &k)| match self.rows[r as usize] {
                Some((start, len)) if (k as usize) < len => Some((start as u64) + k),
                _ => None,
            })
            .collect();
        Ok(take(self.values.as_ref(), &indices, None)?)
    }
}

/// The values and per-row `(start, length)` of a `List` or `LargeList`.
fn variable_lists<O: OffsetSizeTrait>(
    a: &GenericListArray<O>,
) -> (ArrayRef, Vec<Option<(usize, usize)>>) {
    let offsets = a.value_offsets();
    let rows = (0..a.len())
        .map(|r| {
            a.is_valid(r).then(|| {
                let (s, e) = (offsets[r].as_usize(), offsets[r + 1].as_usize());
                (s, e - s)
            })
        })
        .collect();
    (Arc::clone(a.values()), rows)
}

/// Walks the output rows `(row, k)` of one level, `k < lengths[row]`.
#[derive(Default)]
struct Positions {
    lengths: Vec<usize>,
    row: usize,
    k: usize,
}

impl Positions {
    fn new(lists: &[(usize, Lists)], nulls: UnnestNulls, num_rows: usize) -> Self {
        let lengths = (0..num_rows)
            .map(|r| {
                lists
                    .iter()
                    .map(|(_, l)| l.rows_of(r, nulls))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        Positions {
            lengths,
            row: 0,
            k: 0,
        }
    }

    /// The next at most `max` output rows, as input rows and element
    /// positions; `None` when all are out.
    fn next_chunk(&mut self, max: usize) -> Option<(Vec<u32>, Vec<u64>)> {
        let (mut rows, mut ks) = (Vec::new(), Vec::new());
        while rows.len() < max && self.row < self.lengths.len() {
            let len = self.lengths[self.row];
            let n = (len - self.k).min(max - rows.len());
            rows.extend(std::iter::repeat_n(self.row as u32, n));
            ks.extend((self.k..self.k + n).map(|k| k as u64));
            self.k += n;
            if self.k == len {
                self.row += 1;
                self.k = 0;
            }
        }
        (!rows.is_empty()).then_some((rows, ks))
    }
}

/// The unnest of one input batch, handed out in batches of bounded size
/// by [`BatchUnnest::next_batch`].
pub struct BatchUnnest<'a> {
    spec: &'a UnnestSpec,
    /// Input columns (repeated by the levels above the last), `None` once
    /// no longer read.
    columns: Vec<Option<ArrayRef>>,
    /// The lists of the last level, with their index in `spec.lists`.
    lists: Vec<(usize, Lists)>,
    positions: Positions,
    /// A batch without list columns: its structs flattened, not yet out.
    structs_only: bool,
}

impl<'a> BatchUnnest<'a> {
    /// Flattens the levels above the last; the last is flattened as
    /// [`BatchUnnest::next_batch`] is called.
    pub fn new(spec: &'a UnnestSpec, batch: &RecordBatch) -> Result<Self> {
        let mut columns: Vec<Option<ArrayRef>> =
            batch.columns().iter().cloned().map(Some).collect();
        let mut num_rows = batch.num_rows();
        if spec.lists.is_empty() {
            return Ok(BatchUnnest {
                spec,
                columns,
                lists: vec![],
                positions: Positions::default(),
                structs_only: num_rows > 0,
            });
        }
        // Each list entry's partly flattened array, once its flattening
        // has begun.
        let mut partial: Vec<Option<ArrayRef>> = vec![None; spec.lists.len()];
        for level in (2..=spec.max_depth()).rev() {
            let lists = level_lists(spec, level, &columns, &partial)?;
            let mut positions = Positions::new(&lists, spec.nulls, num_rows);
            let (rows, ks) = positions.next_chunk(usize::MAX).unwrap_or_default();
            for (i, c) in columns.iter_mut().enumerate() {
                *c = match c.take() {
                    Some(c) if spec.needed_below(i, level) => Some(take_rows(&c, &rows)?),
                    _ => None,
                };
            }
            for (j, l) in &lists {
                partial[*j] = Some(l.take(&rows, &ks)?);
            }
            num_rows = rows.len();
        }
        let lists = level_lists(spec, 1, &columns, &partial)?;
        let positions = Positions::new(&lists, spec.nulls, num_rows);
        Ok(BatchUnnest {
            spec,
            columns,
            lists,
            positions,
            structs_only: false,
        })
    }

    /// The next at most `max_rows` output rows; `None` when all are out.
    pub fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        if std::mem::take(&mut self.structs_only) {
            let columns = self.columns.iter().flatten().cloned().enumerate().collect();
            return flatten_structs(self.spec, columns).map(Some);
        }
        let Some((rows, ks)) = self.positions.next_chunk(max_rows.max(1)) else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(self.columns.len());
        for (i, c) in self.columns.iter().enumerate() {
            let mut unnested = self
                .lists
                .iter()
                .filter(|(j, _)| self.spec.lists[*j].column == i)
                .peekable();
            if unnested.peek().is_none() {
                let c = c.as_ref().ok_or_else(|| {
                    DataflowError::Internal(format!("unnest: input column {i} was dropped"))
                })?;
                out.push((i, take_rows(c, &rows)?));
            } else {
                for (_, l) in unnested {
                    out.push((i, l.take(&rows, &ks)?));
                }
            }
        }
        flatten_structs(self.spec, out).map(Some)
    }
}

/// The lists flattened at `level`, with their index in `spec.lists`: those
/// starting at this level read their input column, deeper ones continue
/// from their partly flattened array.
fn level_lists(
    spec: &UnnestSpec,
    level: usize,
    columns: &[Option<ArrayRef>],
    partial: &[Option<ArrayRef>],
) -> Result<Vec<(usize, Lists)>> {
    spec.lists
        .iter()
        .enumerate()
        .filter(|(_, l)| l.depth >= level)
        .map(|(j, l)| {
            let source = if l.depth == level {
                columns.get(l.column).and_then(Option::as_ref)
            } else {
                partial[j].as_ref()
            };
            let source = source.ok_or_else(|| {
                DataflowError::Internal(format!(
                    "unnest: no input for column {} at level {level}",
                    l.column
                ))
            })?;
            Ok((j, Lists::new(source)?))
        })
        .collect()
}

fn take_rows(column: &ArrayRef, rows: &[u32]) -> Result<ArrayRef> {
    let indices = UInt32Array::from(rows.to_vec());
    Ok(take(column.as_ref(), &indices, None)?)
}

/// The output columns with the input column each comes from (a list
/// column unnested twice gives two), as a batch of the output schema: the
/// struct columns of `spec` replaced by their fields.
fn flatten_structs(spec: &UnnestSpec, columns: Vec<(usize, ArrayRef)>) -> Result<RecordBatch> {
    let mut out = Vec::with_capacity(spec.schema.fields().len());
    for (input_column, c) in columns {
        if spec.structs.contains(&input_column) {
            let s = c.as_struct_opt().ok_or_else(|| {
                DataflowError::Plan(format!(
                    "unnest expects a struct in column {input_column}, got {}",
                    c.data_type()
                ))
            })?;
            // A NULL struct unnests to NULL fields.
            for field in s.columns() {
                out.push(match s.nulls() {
                    Some(n) if n.null_count() > 0 => with_nulls(field, n)?,
                    _ => Arc::clone(field),
                });
            }
        } else {
            out.push(c);
        }
    }
    Ok(RecordBatch::try_new(Arc::clone(&spec.schema), out)?)
}

/// `field` NULL wherever its struct is NULL.
fn with_nulls(field: &ArrayRef, nulls: &arrow::buffer::NullBuffer) -> Result<ArrayRef> {
    let combined = arrow::buffer::NullBuffer::union(field.nulls(), Some(nulls));
    let data = field.to_data().into_builder().nulls(combined).build()?;
    Ok(arrow::array::make_array(data))
}
