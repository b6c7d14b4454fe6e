//! SetOperation: `INTERSECT ALL` and `EXCEPT ALL` with multiset semantics.
//!
//! Per partition, the right input is read first and the number of copies of
//! each distinct right row (its key columns encoded with arrow-row, so NULL
//! equals NULL) is counted. Then the left input streams through: a left row
//! whose row still has right copies left uses one up; `INTERSECT ALL` emits
//! exactly those rows (`min(m, n)` of `m` left copies), `EXCEPT ALL` emits the
//! others (`max(m - n, 0)`). Which of equal left rows are emitted does not
//! matter: they are equal on every key, i.e. on every column.
//!
//! Both inputs must have the same partitions with equal rows in the same
//! partition (hash-partitioned on the keys, or one partition each).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;
use futures::StreamExt;

use super::aggregate::group_values::{GroupValues, RowGroups};
use crate::error::{DataflowError, Result};
use crate::execution::{BatchBuilder, Operator, OperatorProperties, TaskContext};
use crate::expr::{evaluate_all, PhysExpr};
use crate::functions::FunctionRegistry;
use crate::plan::SetOpKind;
use crate::stream::{boxed, SendableRecordBatchStream};

/// The settings of a set operation node (see
/// [`crate::plan::PhysicalPlan::SetOperation`]).
pub struct SetOpConfig<'a> {
    pub op: SetOpKind,
    pub on: &'a [(PhysExpr, PhysExpr)],
    pub schema: SchemaRef,
}

pub struct SetOperation {
    properties: OperatorProperties,
    left: Arc<dyn Operator>,
    right: Arc<dyn Operator>,
    op: SetOpKind,
    left_keys: Vec<Arc<dyn PhysicalExpr>>,
    right_keys: Vec<Arc<dyn PhysicalExpr>>,
    key_types: Vec<DataType>,
}

impl SetOperation {
    pub fn try_new(
        left: Arc<dyn Operator>,
        right: Arc<dyn Operator>,
        config: SetOpConfig<'_>,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let SetOpConfig { op, on, schema } = config;
        let (ls, rs) = (left.schema(), right.schema());
        if left.output_partitions() != right.output_partitions() {
            return Err(DataflowError::Internal(format!(
                "set operation inputs have {} and {} partitions",
                left.output_partitions(),
                right.output_partitions()
            )));
        }
        if on.is_empty() {
            return Err(DataflowError::Internal(
                "set operation without key columns".into(),
            ));
        }
        let mut left_keys = Vec::with_capacity(on.len());
        let mut right_keys = Vec::with_capacity(on.len());
        let mut key_types = Vec::with_capacity(on.len());
        for (l, r) in on {
            let (l, r) = (l.compile(&ls, registry)?, r.compile(&rs, registry)?);
            let (lt, rt) = (l.data_type(&ls)?, r.data_type(&rs)?);
            if lt != rt {
                return Err(DataflowError::Internal(format!(
                    "set operation keys {l} ({lt}) and {r} ({rt}) differ in type"
                )));
            }
            left_keys.push(l);
            right_keys.push(r);
            key_types.push(lt);
        }
        let same_columns = schema.fields().len() == ls.fields().len()
            && schema
                .fields()
                .iter()
                .zip(ls.fields())
                .all(|(a, b)| a.data_type().equals_datatype(b.data_type()));
        if !same_columns {
            return Err(DataflowError::Internal(format!(
                "set operation schema {schema:?} does not have the left input's columns {ls:?}"
            )));
        }
        Ok(SetOperation {
            properties: OperatorProperties::new(
                "SetOperation",
                Arc::clone(&schema),
                left.output_partitions(),
            ),
            left,
            right,
            op,
            left_keys,
            right_keys,
            key_types,
        })
    }
}

impl Operator for SetOperation {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut right = self.right.execute(partition, ctx)?;
        let mut left = self.left.execute(partition, ctx)?;
        let (left_keys, right_keys) = (self.left_keys.clone(), self.right_keys.clone());
        let key_types = self.key_types.clone();
        let op = self.op;
        let schema = self.schema();
        let batch_size = ctx.config.batch_size.max(1);
        // The distinct rows of the right input with their counts.
        let memory = ctx.reserve(None);
        let stream = async_stream::try_stream! {
            let mut counts = RowCounts::try_new(&key_types)?;
            while let Some(batch) = right.next().await {
                let batch = batch?;
                if batch.num_rows() > 0 {
                    counts.add(&evaluate_all(&right_keys, &batch)?)?;
                    memory.try_resize(counts.size())?;
                }
            }
            let mut out = BatchBuilder::new(Arc::clone(&schema), batch_size);
            // The left input is drained even when nothing can match: an
            // exchange stops feeding every partition once one consumer is gone.
            while let Some(batch) = left.next().await {
                let batch = batch?;
                if batch.num_rows() == 0 {
                    continue;
                }
                let keep = counts.take(&evaluate_all(&left_keys, &batch)?, op)?;
                let kept = filter_record_batch(&batch, &keep)?;
                if kept.num_rows() > 0 {
                    let kept = RecordBatch::try_new(Arc::clone(&schema), kept.columns().to_vec())?;
                    for b in out.push(kept)? {
                        yield b;
                    }
                }
            }
            for b in out.finish()? {
                yield b;
            }
        };
        Ok(boxed(self.schema(), stream))
    }
}

/// Distinct key rows with the number of their copies not used up yet.
struct RowCounts {
    rows: RowGroups,
    /// Copies left, by row index.
    counts: Vec<u64>,
    indices: Vec<usize>,
    found: Vec<Option<usize>>,
}

impl RowCounts {
    /// Bytes held: the distinct rows and their counts.
    fn size(&self) -> usize {
        self.rows.size() + self.counts.capacity() * std::mem::size_of::<u64>()
    }

    fn try_new(key_types: &[DataType]) -> Result<Self> {
        Ok(RowCounts {
            rows: RowGroups::try_new(key_types)?,
            counts: Vec::new(),
            indices: Vec::new(),
            found: Vec::new(),
        })
    }

    /// Counts one more copy of every row of `keys`.
    fn add(&mut self, keys: &[ArrayRef]) -> Result<()> {
        let num_rows = keys.first().map(|k| k.len()).unwrap_or(0);
        self.indices.clear();
        self.rows.intern(keys, num_rows, &mut self.indices)?;
        self.counts.resize(self.rows.len(), 0);
        for &i in &self.indices {
            self.counts[i] += 1;
        }
        Ok(())
    }

    /// Which rows of `keys` the set operation emits, using up copies.
    fn take(&mut self, keys: &[ArrayRef], op: SetOpKind) -> Result<BooleanArray> {
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
}

#[cfg(test)]
mod tests;
