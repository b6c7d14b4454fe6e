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
//!
//! Spilling: the counted right rows are reserved as they grow. When the
//! pool refuses, they are written as (key columns, copies) to spill runs
//! by hash of the keys ([`PartitionedSpill`]), counting starts afresh, and
//! the left input is then dealt over runs of the same partitioning. Equal
//! rows hash alike, so each pair of runs is a set operation of its own,
//! done one pair at a time with the in-memory algorithm; a pair whose
//! right run still does not fit is partitioned again one level deeper.
//!
//! ```text
//!  right ─▶ counts ─refused─▶ right runs 0..16 ─┐
//!  left  ──────────────────▶ left runs  0..16 ─┴▶ pair i: count right i, probe left i ─▶ out
//! ```

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;
use futures::StreamExt;

use crate::error::{DataflowError, Result};
use crate::execution::{
    BatchBuilder, Operator, OperatorProperties, PartitionedSpill, SpillRun, TaskContext,
};
use crate::expr::{evaluate_all, PhysExpr};
use crate::functions::FunctionRegistry;
use crate::plan::SetOpKind;
use crate::stream::{boxed, SendableRecordBatchStream};

mod counts;

use counts::{CountTable, Counted, CountedLayout, RowCounts};

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
        let left_schema = self.left.schema();
        let batch_size = ctx.config.batch_size.max(1);
        let ctx = Arc::clone(ctx);
        // The distinct rows of the right input with their counts.
        let memory = ctx.reserve_spillable(None);
        let stream = async_stream::try_stream! {
            let layout = CountedLayout::new(&key_types);
            let mut table = CountTable::try_new(&ctx, &memory, &key_types, &layout, 0)?;
            while let Some(batch) = right.next().await {
                let batch = batch?;
                if batch.num_rows() > 0 {
                    table.add(&evaluate_all(&right_keys, &batch)?, None)?;
                }
            }
            let mut out = BatchBuilder::new(Arc::clone(&schema), batch_size);
            let probe = Probe { keys: &left_keys, op, schema: &schema };
            // Spilled pairs of runs still to do.
            let mut pairs = vec![];
            // The left input is drained even when nothing can match: an
            // exchange stops feeding every partition once one consumer is gone.
            match table.finish()? {
                Counted::InMemory(mut counts) => {
                    while let Some(batch) = left.next().await {
                        for b in probe.rows(&mut counts, &batch?, &mut out)? {
                            yield b;
                        }
                    }
                }
                Counted::Spilled(right_runs) => {
                    let mut left_runs = right_runs.alongside(&left_schema, left_keys.clone());
                    while let Some(batch) = left.next().await {
                        left_runs.write(&batch?)?;
                    }
                    pairs = RunPair::pair_up(right_runs, left_runs, 1)?;
                }
            }
            while let Some(pair) = pairs.pop() {
                let mut table =
                    CountTable::try_new(&ctx, &memory, &key_types, &layout, pair.level)?;
                if let Some(run) = pair.right {
                    for batch in run.read()? {
                        let batch = batch?;
                        let (keys, copies) = layout.split(&batch)?;
                        table.add(keys, Some(copies))?;
                        // Reading a run back is long work without an await.
                        tokio::task::yield_now().await;
                    }
                }
                match table.finish()? {
                    Counted::InMemory(mut counts) => {
                        for batch in pair.left.read()? {
                            for b in probe.rows(&mut counts, &batch?, &mut out)? {
                                yield b;
                            }
                            tokio::task::yield_now().await;
                        }
                    }
                    Counted::Spilled(right_runs) => {
                        let mut left_runs = right_runs.alongside(&left_schema, left_keys.clone());
                        for batch in pair.left.read()? {
                            left_runs.write(&batch?)?;
                        }
                        pairs.extend(RunPair::pair_up(right_runs, left_runs, pair.level + 1)?);
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

/// Probing left rows against counted right rows.
struct Probe<'a> {
    keys: &'a [Arc<dyn PhysicalExpr>],
    op: SetOpKind,
    /// The operator's output schema (the left input's columns).
    schema: &'a SchemaRef,
}

impl Probe<'_> {
    /// The rows of `batch` the set operation emits, added to `out`; returns
    /// the batches `out` completed.
    fn rows(
        &self,
        counts: &mut RowCounts,
        batch: &RecordBatch,
        out: &mut BatchBuilder,
    ) -> Result<Vec<RecordBatch>> {
        if batch.num_rows() == 0 {
            return Ok(vec![]);
        }
        let keep = counts.take(&evaluate_all(self.keys, batch)?, self.op)?;
        let kept = filter_record_batch(batch, &keep)?;
        if kept.num_rows() == 0 {
            return Ok(vec![]);
        }
        out.push(RecordBatch::try_new(
            Arc::clone(self.schema),
            kept.columns().to_vec(),
        )?)
    }
}

/// The right and left runs of one spill partition, and the level they are
/// done at.
struct RunPair {
    right: Option<SpillRun>,
    left: SpillRun,
    level: usize,
}

impl RunPair {
    /// The pairs of `right` and `left` (partitioned alike): a partition
    /// without left rows emits nothing and is dropped.
    fn pair_up(right: PartitionedSpill, left: PartitionedSpill, level: usize) -> Result<Vec<Self>> {
        let runs = right.finish()?.into_iter().zip(left.finish()?);
        Ok(runs
            .filter_map(|(right, left)| left.map(|left| RunPair { right, left, level }))
            .collect())
    }
}

#[cfg(test)]
mod tests;
