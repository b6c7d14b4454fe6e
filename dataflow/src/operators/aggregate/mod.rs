//! HashAggregate: grouped (and ungrouped) aggregation with DataFusion's
//! accumulators.
//!
//! Rows are mapped to dense group indices (`0..n`), and every aggregate keeps
//! the state of all groups in one [`GroupsAccumulator`] (DataFusion's
//! specialised one when the function has it, else a
//! [`GroupsAccumulatorAdapter`] over per-group [`Accumulator`]s).
//!
//! Modes (see [`AggregateMode`]):
//! - `Partial` reads original rows and emits `group keys ++ states`, where
//!   the states of each aggregate are the columns of its `state_fields()`;
//! - `Final` reads that layout (first `G` columns keys, then the states of
//!   every aggregate in order), merges and emits `group keys ++ values`;
//! - `Single` reads original rows and emits `group keys ++ values`.
//!
//! Without group keys there is exactly one group, which exists also when the
//! input is empty (`count` gives 0, `sum` NULL).
//!
//! GROUPING SETS / ROLLUP / CUBE (as DataFusion runs them): `Partial` and
//! `Single` feed every input row once per grouping set, with the keys the set
//! leaves out replaced by NULL and one more key column, `__grouping_id`, that
//! tells the sets apart (so that a NULL key value differs from "not grouped").
//! The id of a set has one bit per key, the first key being the most
//! significant, set when the key is left out; a set that appears several
//! times gets its occurrence number (0, 1, ...) in the bits above those.
//! Its type is the smallest of UInt8/16/32/64 that holds all bits. `Final`
//! groups on the keys and the id like on any other keys. On an input
//! without rows, only the sets that group on no key (`()`, the total of a
//! ROLLUP or CUBE) have a group, as in DataFusion.
//!
//! Group keys: a single integer-like key is interned with a hash map on the
//! native value; any other key list is encoded with arrow-row and the encoded
//! rows are kept contiguously in a [`Rows`] buffer, found through a
//! [`HashTable`] keyed by the hash of the row bytes.
//!
//! A partial aggregate whose first rows are nearly all distinct groups
//! passes the rest through as one state row per input row (see
//! `pass_through.rs`).
//!
//! Memory: the group table is reserved as it grows; when the pool refuses,
//! a partial aggregate emits its groups early and a final or single one
//! spills them hash-partitioned and merges one partition at a time (see
//! `spilling.rs`).
//!
//! [`Accumulator`]: datafusion_expr::Accumulator
//! [`GroupsAccumulator`]: datafusion_expr::GroupsAccumulator
//! [`GroupsAccumulatorAdapter`]: datafusion_physical_expr::GroupsAccumulatorAdapter
//! [`AggregateMode`]: crate::plan::AggregateMode
//! [`Rows`]: arrow::row::Rows
//! [`HashTable`]: hashbrown::HashTable

use std::sync::Arc;

use futures::StreamExt;

use crate::error::{DataflowError, Result};
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::functions::FunctionRegistry;
use crate::plan::AggregateMode;
use crate::stream::{boxed, SendableRecordBatchStream};

mod aggregator;
mod float_min_max;
pub mod group_values;
pub mod grouping_sets;
mod packed_groups;
mod pass_through;
mod spec;
mod spilling;
#[cfg(test)]
mod tests;

pub use grouping_sets::grouping_ids;
use spec::AggSpec;
pub use spec::AggregateConfig;
use spilling::{Finished, GroupTable, SpillPlan};

pub struct HashAggregate {
    properties: OperatorProperties,
    input: Arc<dyn Operator>,
    spec: Arc<AggSpec>,
    /// How the groups spill; `None` when they cannot (partial aggregates
    /// emit early instead, an ungrouped aggregate has one group).
    spill: Option<Arc<SpillPlan>>,
}

impl HashAggregate {
    pub fn try_new(
        input: Arc<dyn Operator>,
        config: AggregateConfig<'_>,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let spec = AggSpec::try_new(&input.schema(), config, registry)?;
        let spill = SpillPlan::of(&spec)?.map(Arc::new);
        Ok(HashAggregate {
            properties: OperatorProperties::new(
                "HashAggregate",
                Arc::clone(&spec.schema),
                input.output_partitions(),
            ),
            input,
            spec: Arc::new(spec),
            spill,
        })
    }
}

impl Operator for HashAggregate {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut input = self.input.execute(partition, ctx)?;
        let spec = Arc::clone(&self.spec);
        let plan = self.spill.clone();
        let batch_size = ctx.config.batch_size.max(1);
        let ctx = Arc::clone(ctx);
        // Group values and accumulators, until the stream ends. A partial
        // aggregate can always make room by emitting early.
        let memory = if plan.is_some() || spec.mode == AggregateMode::Partial {
            ctx.reserve_spillable(None)
        } else {
            ctx.reserve(None)
        };
        let stream = async_stream::try_stream! {
            let plan = plan.as_deref();
            let mut table =
                GroupTable::try_new(Arc::clone(&spec), &ctx, &memory, plan, 0, batch_size)?;
            let mut probe = pass_through::Probe::of(&spec);
            let mut passing = false;
            while let Some(batch) = input.next().await {
                let batch = batch?;
                if passing {
                    ctx.count_skipped_partial_rows(batch.num_rows());
                    yield pass_through::rows_to_states(&spec, &batch)?;
                    continue;
                }
                for early in table.push(&batch)? {
                    yield early;
                }
                let (rows, groups) = table.rows_and_groups();
                if probe.as_mut().is_some_and(|p| p.pass_through(rows, groups)) {
                    passing = true;
                    for b in table.emit_all()? {
                        yield b;
                    }
                }
            }
            // Spilled runs still to merge, with their level.
            let mut runs = vec![];
            match table.finish()? {
                Finished::Output(out) => {
                    for b in out {
                        yield b;
                    }
                }
                Finished::Spilled(spilled) => runs.extend(spilled.into_iter().map(|r| (r, 1))),
            }
            while let Some((run, level)) = runs.pop() {
                let merge = plan.map(|p| Arc::clone(&p.merge)).ok_or_else(|| {
                    DataflowError::Internal("aggregate spilled without a spill plan".into())
                })?;
                let mut table = GroupTable::try_new(merge, &ctx, &memory, plan, level, batch_size)?;
                for batch in run.read()? {
                    table.push(&batch?)?;
                    // Reading a run back is long work without an await.
                    tokio::task::yield_now().await;
                }
                match table.finish()? {
                    Finished::Output(out) => {
                        for b in out {
                            yield b;
                        }
                    }
                    Finished::Spilled(spilled) => {
                        runs.extend(spilled.into_iter().map(|r| (r, level + 1)))
                    }
                }
            }
        };
        Ok(boxed(self.schema(), stream))
    }
}
