//! NestedLoopJoin: joins without equi keys. The left input is collected
//! once (from all its partitions) and shared by every right partition; each
//! right batch is paired with every left row, in batch-sized chunks of
//! candidate pairs that the optional filter then checks.
//!
//! Joins that emit unmatched left rows need all of the right side in one
//! stream: the planner gathers it into one partition.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use futures::{FutureExt, StreamExt};

use super::build::{await_build, collect_batch, merged_input, HeldBatch, OnceBuild};
use super::spec::JoinSpec;
use crate::error::{DataflowError, Result};
use crate::execution::{BatchBuilder, Operator, OperatorProperties, TaskContext};
use crate::expr::PhysExpr;
use crate::functions::FunctionRegistry;
use crate::plan::JoinType;
use crate::stream::{boxed, SendableRecordBatchStream};

#[cfg(test)]
mod tests;

/// The settings of a nested loop join node (see
/// [`crate::plan::PhysicalPlan::NestedLoopJoin`]).
pub struct NestedLoopJoinConfig<'a> {
    pub join_type: JoinType,
    pub filter: Option<&'a PhysExpr>,
    pub schema: SchemaRef,
}

pub struct NestedLoopJoin {
    properties: OperatorProperties,
    left: Arc<dyn Operator>,
    right: Arc<dyn Operator>,
    spec: Arc<JoinSpec>,
    shared: OnceBuild<HeldBatch>,
}

impl NestedLoopJoin {
    pub fn try_new(
        left: Arc<dyn Operator>,
        right: Arc<dyn Operator>,
        config: NestedLoopJoinConfig<'_>,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let NestedLoopJoinConfig {
            join_type,
            filter,
            schema,
        } = config;
        if join_type.emits_unmatched_left() && right.output_partitions() != 1 {
            return Err(DataflowError::Internal(format!(
                "nested loop join {join_type:?} needs a single right partition, got {}",
                right.output_partitions()
            )));
        }
        let spec = JoinSpec::try_new(
            join_type,
            left.schema(),
            right.schema(),
            filter,
            schema,
            registry,
        )?;
        let consumers = right.output_partitions();
        Ok(NestedLoopJoin {
            properties: OperatorProperties::new(
                "NestedLoopJoin",
                Arc::clone(&spec.schema),
                consumers,
            ),
            left,
            right,
            spec: Arc::new(spec),
            shared: OnceBuild::new(consumers),
        })
    }
}

/// The candidate pairs `k in range` of `build_rows x probe_rows`, probe
/// rows varying fastest.
fn cross_pairs(
    range: std::ops::Range<usize>,
    probe_rows: usize,
    build_idx: &mut Vec<u32>,
    probe_idx: &mut Vec<u32>,
) {
    build_idx.clear();
    probe_idx.clear();
    let (mut b, mut p) = (range.start / probe_rows, range.start % probe_rows);
    for _ in range {
        build_idx.push(b as u32);
        probe_idx.push(p as u32);
        p += 1;
        if p == probe_rows {
            p = 0;
            b += 1;
        }
    }
}

impl Operator for NestedLoopJoin {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let (left, left_schema) = (Arc::clone(&self.left), self.spec.left_schema.clone());
        let task_ctx = Arc::clone(ctx);
        let build = self.shared.get(move || {
            async move {
                let input = merged_input(&left, &task_ctx)?;
                collect_batch(input, &left_schema, task_ctx.reserve(Some("build"))).await
            }
            .boxed()
        })?;
        let mut right = self.right.execute(partition, ctx)?;
        let spec = Arc::clone(&self.spec);
        let batch_size = ctx.config.batch_size.max(1);
        let schema = self.schema();
        let stream = async_stream::try_stream! {
            // `held` keeps the build side's reservation until the stream ends.
            let held = await_build(build).await?;
            let build = held.batch.clone();
            let build_rows = build.num_rows();
            if build_rows >= u32::MAX as usize {
                Err(DataflowError::Execution(format!(
                    "nested loop join build side exceeds {} rows",
                    u32::MAX - 1
                )))?;
            }
            let mut out = BatchBuilder::passing_large(Arc::clone(&spec.schema), batch_size);
            let mut build_matched = vec![false; if spec.tracks_build() { build_rows } else { 0 }];
            // Without a filter, every pair matches: semi and anti joins only
            // need to know whether the other side has rows.
            let all_match_no_pairs = spec.filter.is_none()
                && matches!(
                    spec.join_type,
                    JoinType::LeftSemi
                        | JoinType::LeftAnti
                        | JoinType::LeftMark
                        | JoinType::RightSemi
                        | JoinType::RightAnti
                        | JoinType::RightMark
                );
            // With an empty build side some joins have no output, but the
            // probe input is still drained: an exchange producer stops
            // feeding every partition once one consumer is gone.
            let skip_probe = build_rows == 0 && spec.empty_build_gives_empty();
            let mut build_idx: Vec<u32> = Vec::new();
            let mut probe_idx: Vec<u32> = Vec::new();
            while let Some(batch) = right.next().await {
                let batch = batch?;
                let n = batch.num_rows();
                if n == 0 || skip_probe {
                    continue;
                }
                let mut probe_matched = vec![false; if spec.tracks_probe() { n } else { 0 }];
                if all_match_no_pairs {
                    if build_rows > 0 {
                        build_matched.iter_mut().for_each(|m| *m = true);
                        probe_matched.iter_mut().for_each(|m| *m = true);
                    }
                } else {
                    let total = build_rows * n;
                    let mut k = 0;
                    while k < total {
                        let end = (k + batch_size).min(total);
                        cross_pairs(k..end, n, &mut build_idx, &mut probe_idx);
                        let joined = spec.process_pairs(
                            &build,
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
                        k = end;
                    }
                }
                if let Some(rows) = spec.finish_probe_batch(&batch, &probe_matched)? {
                    for b in out.push(rows)? {
                        yield b;
                    }
                }
            }
            drop(right);
            if spec.tracks_build() {
                let mut start = 0;
                while start < build_rows {
                    if let Some(rows) =
                        spec.finish_build_rows(&build, &build_matched, start, batch_size)?
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
