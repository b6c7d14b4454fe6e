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

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use futures::{FutureExt, StreamExt};

use super::build::{await_build, merged_input, OnceBuild, SharedBuild};
use super::keys::JoinKeys;
use super::spec::JoinSpec;
use super::table::{Cursor, JoinTable, ProbeMode, Prober};
use crate::error::{DataflowError, Result};
use crate::execution::{BatchBuilder, Operator, OperatorMemory, OperatorProperties, TaskContext};
use crate::expr::{evaluate_all, PhysExpr};
use crate::functions::FunctionRegistry;
use crate::plan::JoinType;
use crate::stream::{boxed, SendableRecordBatchStream};

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
    shared: OnceBuild<JoinTable>,
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
            JoinType::LeftSemi | JoinType::LeftAnti => ProbeMode::MarkBuild,
            JoinType::RightSemi | JoinType::RightAnti => ProbeMode::FirstMatch,
            _ => ProbeMode::AllPairs,
        }
    }
}

/// Where a partition gets its table from.
enum BuildSource {
    Own(SendableRecordBatchStream, OperatorMemory),
    Shared(SharedBuild<JoinTable>),
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
                    JoinTable::build(input, &keys, &schema, task_ctx.reserve(Some("build"))).await
                }
                .boxed()
            })?)
        } else {
            BuildSource::Own(
                self.left.execute(partition, ctx)?,
                ctx.reserve(Some("build")),
            )
        };
        let mut right = self.right.execute(partition, ctx)?;
        let (spec, keys) = (Arc::clone(&self.spec), Arc::clone(&self.keys));
        let mode = self.probe_mode();
        let null_aware = self.null_aware;
        let batch_size = ctx.config.batch_size.max(1);
        let schema = self.schema();
        let stream = async_stream::try_stream! {
            let table = match source {
                BuildSource::Own(input, memory) => {
                    Arc::new(JoinTable::build(input, &keys, &spec.left_schema, memory).await?)
                }
                BuildSource::Shared(build) => await_build(build).await?,
            };
            let build_rows = table.num_rows();
            let mut out = BatchBuilder::passing_large(Arc::clone(&spec.schema), batch_size);
            let mut build_matched = vec![false; if spec.tracks_build() { build_rows } else { 0 }];
            // With an empty build side some joins have no output, but the
            // probe input is still drained: an exchange producer stops
            // feeding every partition once one consumer is gone.
            let skip_probe = build_rows == 0 && spec.empty_build_gives_empty();
            let mut prober = Prober::new(&keys);
            let mut build_idx: Vec<u32> = Vec::new();
            let mut probe_idx: Vec<u32> = Vec::new();
            let (mut probe_seen, mut probe_has_null) = (false, false);
            while let Some(batch) = right.next().await {
                let batch = batch?;
                let n = batch.num_rows();
                if n == 0 || skip_probe {
                    continue;
                }
                if null_aware {
                    probe_seen = true;
                    let arrays = evaluate_all(&keys.right, &batch)?;
                    probe_has_null |= keys.nulls(&arrays).is_some_and(|nb| nb.null_count() > 0);
                }
                let mut probe_matched = vec![false; if spec.tracks_probe() { n } else { 0 }];
                if build_rows > 0 {
                    prober.prepare(&keys, &batch)?;
                    let mut cursor = Cursor::start();
                    loop {
                        build_idx.clear();
                        probe_idx.clear();
                        build_idx.reserve(n.min(batch_size));
                        probe_idx.reserve(n.min(batch_size));
                        let done = prober.probe(
                            &table,
                            mode,
                            &mut cursor,
                            batch_size,
                            &mut build_idx,
                            &mut probe_idx,
                            &mut build_matched,
                        )?;
                        if !build_idx.is_empty() {
                            let joined = spec.process_pairs(
                                &table.batch,
                                &batch,
                                std::mem::take(&mut build_idx),
                                std::mem::take(&mut probe_idx),
                                &mut build_matched,
                                &mut probe_matched,
                            )?;
                            if let Some(joined) = joined {
                                for b in out.push(joined)? {
                                    yield b;
                                }
                            }
                        }
                        if done {
                            break;
                        }
                    }
                }
                if let Some(rows) = spec.finish_probe_batch(&batch, &probe_matched)? {
                    for b in out.push(rows)? {
                        yield b;
                    }
                }
            }
            drop(right);
            if null_aware && probe_seen {
                // x NOT IN (non-empty set): false when the set holds a
                // NULL, unknown when x is NULL; either way the row goes.
                if probe_has_null {
                    build_matched.iter_mut().for_each(|m| *m = true);
                } else {
                    let arrays = evaluate_all(&keys.left, &table.batch)?;
                    if let Some(nb) = keys.nulls(&arrays) {
                        for (i, m) in build_matched.iter_mut().enumerate() {
                            *m |= nb.is_null(i);
                        }
                    }
                }
            }
            if spec.tracks_build() {
                let mut start = 0;
                while start < build_rows {
                    if let Some(rows) =
                        spec.finish_build_rows(&table.batch, &build_matched, start, batch_size)?
                    {
                        for b in out.push(rows)? {
                            yield b;
                        }
                    }
                    start += batch_size;
                }
            }
            for b in out.finish()? {
                yield b;
            }
        };
        Ok(boxed(schema, stream))
    }
}
