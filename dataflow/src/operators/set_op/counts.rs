//! The right input of a set operation as distinct key rows with their
//! number of copies ([`RowCounts`]), kept within a memory reservation
//! ([`CountTable`]): when the pool refuses, the counted rows go to spill
//! runs by hash of the key (see the module doc of [`super`]).

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use datafusion_physical_expr::expressions::Column;
use datafusion_physical_expr::PhysicalExpr;

use crate::error::{DataflowError, Result};
use crate::execution::{OperatorMemory, PartitionedSpill, TaskContext};
use crate::operators::aggregate::group_values::{GroupValues, RowGroups};
use crate::operators::scan::files::conform_columns;
use crate::plan::SetOpKind;

/// Distinct key rows with the number of their copies not used up yet.
pub(super) struct RowCounts {
    rows: RowGroups,
    /// Copies left, by row index.
    counts: Vec<u64>,
    indices: Vec<usize>,
    found: Vec<Option<usize>>,
}

impl RowCounts {
    /// Bytes held: the distinct rows and their counts.
    pub(super) fn size(&self) -> usize {
        self.rows.size() + self.counts.capacity() * std::mem::size_of::<u64>()
    }

    pub(super) fn try_new(key_types: &[DataType]) -> Result<Self> {
        Ok(RowCounts {
            rows: RowGroups::try_new(key_types)?,
            counts: Vec::new(),
            indices: Vec::new(),
            found: Vec::new(),
        })
    }

    /// Counts the rows of `keys`: `copies` of each (one each without).
    pub(super) fn add(&mut self, keys: &[ArrayRef], copies: Option<&UInt64Array>) -> Result<()> {
        let num_rows = keys.first().map(|k| k.len()).unwrap_or(0);
        self.indices.clear();
        self.rows.intern(keys, num_rows, &mut self.indices)?;
        self.counts.resize(self.rows.len(), 0);
        match copies {
            None => {
                for &i in &self.indices {
                    self.counts[i] += 1;
                }
            }
            Some(copies) => {
                for (&i, n) in self.indices.iter().zip(copies.values()) {
                    self.counts[i] += n;
                }
            }
        }
        Ok(())
    }

    /// Which rows of `keys` the set operation emits, using up copies.
    pub(super) fn take(&mut self, keys: &[ArrayRef], op: SetOpKind) -> Result<BooleanArray> {
        self.found.clear();
        self.rows.lookup(keys, &mut self.found)?;
        let keep = self.found.iter().map(|found| {
            let matched = match *found {
                Some(i) if self.counts[i] > 0 => {
                    self.counts[i] -= 1;
                    true
                }
                _ => false,
            };
            match op {
                SetOpKind::IntersectAll => matched,
                SetOpKind::ExceptAll => !matched,
            }
        });
        Ok(keep.collect::<Vec<_>>().into())
    }

    /// Takes every counted row out, as one batch of `layout`: the key
    /// columns, then the number of copies. Drop the counts afterwards.
    fn drain(&mut self, layout: &CountedLayout) -> Result<Option<RecordBatch>> {
        if self.counts.is_empty() {
            return Ok(None);
        }
        let n = self.counts.len();
        let mut columns = self.rows.emit()?;
        columns.push(Arc::new(UInt64Array::from(std::mem::take(
            &mut self.counts,
        ))));
        Ok(Some(conform_columns(columns, n, &layout.schema)?))
    }
}

/// How counted rows are spilled: the key columns, then `copies` (UInt64).
pub(super) struct CountedLayout {
    pub(super) schema: SchemaRef,
    /// The key columns, which the runs are partitioned by.
    keys: Vec<Arc<dyn PhysicalExpr>>,
}

impl CountedLayout {
    pub(super) fn new(key_types: &[DataType]) -> Self {
        let mut fields: Vec<Field> = key_types
            .iter()
            .enumerate()
            .map(|(i, t)| Field::new(format!("key{i}"), t.clone(), true))
            .collect();
        fields.push(Field::new("copies", DataType::UInt64, false));
        let schema = Arc::new(Schema::new(fields));
        let keys = (0..key_types.len())
            .map(|i| Arc::new(Column::new(schema.field(i).name(), i)) as Arc<dyn PhysicalExpr>)
            .collect();
        CountedLayout { schema, keys }
    }

    /// The key columns and copies of a spilled batch.
    pub(super) fn split<'b>(
        &self,
        batch: &'b RecordBatch,
    ) -> Result<(&'b [ArrayRef], &'b UInt64Array)> {
        let k = self.keys.len();
        let copies = batch
            .columns()
            .get(k)
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .ok_or_else(|| {
                DataflowError::Internal(format!(
                    "spilled set operation rows have no copies column after {k} keys"
                ))
            })?;
        Ok((&batch.columns()[..k], copies))
    }
}

/// The end of a [`CountTable`]'s input.
pub(super) enum Counted {
    /// Everything fit: probe these counts.
    InMemory(RowCounts),
    /// The counts went to spill runs, partitioned by this.
    Spilled(PartitionedSpill),
}

/// [`RowCounts`] within a reservation, at one spill level (0: the
/// operator's right input).
pub(super) struct CountTable<'a> {
    ctx: &'a Arc<TaskContext>,
    memory: &'a OperatorMemory,
    key_types: &'a [DataType],
    layout: &'a CountedLayout,
    level: usize,
    counts: RowCounts,
    spill: Option<PartitionedSpill>,
}

impl<'a> CountTable<'a> {
    pub(super) fn try_new(
        ctx: &'a Arc<TaskContext>,
        memory: &'a OperatorMemory,
        key_types: &'a [DataType],
        layout: &'a CountedLayout,
        level: usize,
    ) -> Result<Self> {
        Ok(CountTable {
            ctx,
            memory,
            key_types,
            layout,
            level,
            counts: RowCounts::try_new(key_types)?,
            spill: None,
        })
    }

    /// Counts the rows of `keys` (see [`RowCounts::add`]); spills the
    /// counts when the reservation is refused.
    pub(super) fn add(&mut self, keys: &[ArrayRef], copies: Option<&UInt64Array>) -> Result<()> {
        self.counts.add(keys, copies)?;
        let Err(refused) = self.memory.try_resize(self.counts.size()) else {
            return Ok(());
        };
        if self.spill.is_none() {
            self.spill = Some(PartitionedSpill::try_new(
                self.ctx,
                &self.layout.schema,
                self.layout.keys.clone(),
                self.level,
                refused,
            )?);
        }
        self.write_counts()?;
        self.counts = RowCounts::try_new(self.key_types)?;
        self.memory.try_resize(self.counts.size())
    }

    /// Ends the input.
    pub(super) fn finish(mut self) -> Result<Counted> {
        if self.spill.is_none() {
            return Ok(Counted::InMemory(self.counts));
        }
        self.write_counts()?;
        self.memory.free();
        match self.spill.take() {
            Some(spill) => Ok(Counted::Spilled(spill)),
            None => Ok(Counted::InMemory(self.counts)),
        }
    }

    fn write_counts(&mut self) -> Result<()> {
        let (Some(spill), Some(counted)) = (self.spill.as_mut(), self.counts.drain(self.layout)?)
        else {
            return Ok(());
        };
        spill.write(&counted)
    }
}
