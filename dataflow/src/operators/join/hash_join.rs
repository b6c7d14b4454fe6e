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
//!
//! The build side is a spillable reservation. When the pool refuses it,
//! the partition becomes a grace hash join (`grace.rs`): build and probe
//! rows are hash-partitioned to disk and joined one partition pair at a
//! time by the same probing (`probe.rs`). A shared build spills once and
//! every probe partition reads its runs. Without a memory limit nothing
//! changes: the table is built and probed as before.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use futures::{FutureExt, StreamExt};

use self::grace::{build_or_spill, grace_join, BuildSide};
use self::probe::{join_in_memory, ProbeSettings};
use super::build::{await_build, merged_input, OnceBuild, SharedBuild};
use super::keys::JoinKeys;
use super::spec::JoinSpec;
use super::table::ProbeMode;
use crate::error::{DataflowError, Result};
use crate::execution::{BatchBuilder, Operator, OperatorMemory, OperatorProperties, TaskContext};
use crate::expr::PhysExpr;
use crate::functions::FunctionRegistry;
use crate::plan::JoinType;
use crate::stream::{boxed, SendableRecordBatchStream};

mod grace;
mod probe;
#[cfg(test)]
mod tests;

/// The settings of a hash join node (see
/// [`crate::plan::PhysicalPlan::HashJoin`], whose fields they mirror).
pub struct HashJoinConfig<'a> {
    pub join_type: JoinType,
    pub on: &'a [(PhysExpr, PhysExpr)],
    pub filter: Option<&'a PhysExpr>,
    pub null_equals_null: bool,
    pub null_aware: bool,
    pub collect_left: bool,
    pub schema: SchemaRef,
}

pub struct HashJoin {
    properties: OperatorProperties,
    left: Arc<dyn Operator>,
    right: Arc<dyn Operator>,
    spec: Arc<JoinSpec>,
    keys: Arc<JoinKeys>,
    collect_left: bool,
    /// `NOT IN` semantics for a left anti join: any NULL on the right
    /// removes every row, and left rows with a NULL key never qualify
    /// (unless the right side is empty).
    null_aware: bool,
    shared: OnceBuild<BuildSide>,
}

impl HashJoin {
    pub fn try_new(
        left: Arc<dyn Operator>,
        right: Arc<dyn Operator>,
        config: HashJoinConfig<'_>,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let HashJoinConfig {
            join_type,
            on,
            filter,
            null_equals_null,
            null_aware,
            collect_left,
            schema,
        } = config;
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
            properties: OperatorProperties::new("HashJoin", Arc::clone(&spec.schema), consumers),
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
            JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => ProbeMode::MarkBuild,
            JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => {
                ProbeMode::FirstMatch
            }
            _ => ProbeMode::AllPairs,
        }
    }
}

/// Where a partition gets its table from.
enum BuildSource {
    Own(SendableRecordBatchStream, OperatorMemory),
    Shared(SharedBuild<BuildSide>),
}

impl Operator for HashJoin {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
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
                    let memory = task_ctx.reserve_spillable(Some("build"));
                    build_or_spill(input, &keys, &schema, memory, &task_ctx).await
                }
                .boxed()
            })?)
        } else {
            BuildSource::Own(
                self.left.execute(partition, ctx)?,
                ctx.reserve_spillable(Some("build")),
            )
        };
        let right = self.right.execute(partition, ctx)?;
        let settings = ProbeSettings {
            spec: Arc::clone(&self.spec),
            keys: Arc::clone(&self.keys),
            mode: self.probe_mode(),
            batch_size: ctx.config.batch_size.max(1),
            null_aware: self.null_aware,
        };
        let schema = self.schema();
        let ctx = Arc::clone(ctx);
        let stream = async_stream::try_stream! {
            let (spec, keys) = (&settings.spec, &settings.keys);
            let build = match source {
                BuildSource::Own(input, memory) => {
                    build_or_spill(input, keys, &spec.left_schema, memory, &ctx).await?
                }
                BuildSource::Shared(build) => BuildSide::clone(&*await_build(build).await?),
            };
            let mut out = BatchBuilder::passing_large(Arc::clone(&spec.schema), settings.batch_size);
            let mut joined = match build {
                BuildSide::Table(table) => join_in_memory(table, right, settings.clone()).boxed(),
                BuildSide::Spilled(runs) => grace_join(runs, right, settings.clone(), ctx).boxed(),
            };
            while let Some(rows) = joined.next().await {
                for b in out.push(rows?)? {
                    yield b;
                }
            }
            for b in out.finish()? {
                yield b;
            }
        };
        Ok(boxed(schema, stream))
    }
}
