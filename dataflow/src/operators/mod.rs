//! One module per operator.
//!
//! Runtime contract of every [`Operator`]:
//! - `execute(partition)` only builds a stream: nothing runs before the
//!   stream is first polled (exchanges spawn their producer tasks then);
//! - the stream stops at the first error it yields;
//! - dropping the stream cancels its work; tasks belong to the query's
//!   [`crate::runner::QueryTasks`] and are aborted with it;
//! - CPU work happens in batch-sized steps, so a task never holds a tokio
//!   worker thread for long.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use crate::error::Result;
use crate::plan::PhysicalPlan;
use crate::runner::TaskContext;
use crate::stream::SendableRecordBatchStream;

pub mod aggregate;
pub mod csv_scan;
pub mod exchange;
pub mod filter;
pub mod hash_join;
pub mod join_util;
pub mod limit;
pub mod memory_scan;
pub mod nested_loop_join;
pub mod parquet_scan;
pub mod projection;
pub mod pruning;
pub mod set_op;
pub mod sort;
pub mod sort_merge;
pub mod stage_input;
pub mod topk;
pub mod tpch_scan;
pub mod union;
pub mod values;
pub mod window;

/// A compiled physical operator.
pub trait Operator: Send + Sync {
    fn name(&self) -> &'static str;
    fn schema(&self) -> SchemaRef;
    fn output_partitions(&self) -> usize;
    /// The stream of output partition `partition`. Called at most once per
    /// partition per query.
    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream>;
}

/// Compiles a plan tree into operators (expressions compiled, inputs
/// validated) without running anything.
pub fn compile(plan: &PhysicalPlan, ctx: &Arc<TaskContext>) -> Result<Arc<dyn Operator>> {
    // Ids in pre-order: this node before its inputs.
    let (_, metrics) = ctx.metrics.register();
    let op = compile_node(plan, ctx)?;
    Ok(crate::metrics::Instrumented::wrap(op, metrics))
}

fn compile_node(plan: &PhysicalPlan, ctx: &Arc<TaskContext>) -> Result<Arc<dyn Operator>> {
    let registry = &ctx.registry;
    Ok(match plan {
        PhysicalPlan::Scan {
            source,
            table_schema,
            projection,
            pruning,
            schema,
        } => {
            use crate::plan::ScanSource;
            match source {
                ScanSource::Memory { table, partitions } => Arc::new(memory_scan::MemoryScan::new(
                    table.clone(),
                    *partitions,
                    projection.clone(),
                    Arc::clone(schema),
                )),
                ScanSource::Tpch {
                    table,
                    scale_factor,
                    partitions,
                } => Arc::new(tpch_scan::TpchScan::try_new(
                    *table,
                    *scale_factor,
                    *partitions,
                    projection.clone(),
                    Arc::clone(schema),
                )?),
                ScanSource::Parquet { partitions } => Arc::new(parquet_scan::ParquetScan::try_new(
                    partitions.clone(),
                    Arc::clone(table_schema),
                    projection.clone(),
                    pruning.clone(),
                    Arc::clone(schema),
                    registry,
                )?),
                ScanSource::Csv {
                    partitions,
                    has_header,
                    delimiter,
                } => Arc::new(csv_scan::CsvScan::try_new(
                    partitions.clone(),
                    *has_header,
                    *delimiter,
                    Arc::clone(table_schema),
                    projection.clone(),
                    Arc::clone(schema),
                )?),
            }
        }
        PhysicalPlan::Values { schema, rows } => {
            Arc::new(values::Values::try_new(Arc::clone(schema), rows, registry)?)
        }
        PhysicalPlan::Empty {
            schema,
            produce_one_row,
        } => Arc::new(values::Empty::new(Arc::clone(schema), *produce_one_row)),
        PhysicalPlan::Filter { input, predicate } => {
            let input = compile(input, ctx)?;
            Arc::new(filter::Filter::try_new(input, predicate, registry)?)
        }
        PhysicalPlan::Projection {
            input,
            exprs,
            schema,
        } => {
            let input = compile(input, ctx)?;
            Arc::new(projection::Projection::try_new(
                input,
                exprs,
                Arc::clone(schema),
                registry,
            )?)
        }
        PhysicalPlan::Aggregate {
            input,
            mode,
            group_by,
            grouping_sets,
            aggregates,
            aggregate_input_schema,
            schema,
        } => {
            let input = compile(input, ctx)?;
            Arc::new(aggregate::HashAggregate::try_new(
                input,
                *mode,
                group_by,
                grouping_sets,
                aggregates,
                Arc::clone(aggregate_input_schema),
                Arc::clone(schema),
                registry,
            )?)
        }
        PhysicalPlan::HashJoin {
            left,
            right,
            join_type,
            on,
            filter,
            null_equals_null,
            null_aware,
            collect_left,
            schema,
        } => {
            let left = compile(left, ctx)?;
            let right = compile(right, ctx)?;
            Arc::new(hash_join::HashJoin::try_new(
                left,
                right,
                *join_type,
                on,
                filter.as_ref(),
                *null_equals_null,
                *null_aware,
                *collect_left,
                Arc::clone(schema),
                registry,
            )?)
        }
        PhysicalPlan::NestedLoopJoin {
            left,
            right,
            join_type,
            filter,
            schema,
        } => {
            let left = compile(left, ctx)?;
            let right = compile(right, ctx)?;
            Arc::new(nested_loop_join::NestedLoopJoin::try_new(
                left,
                right,
                *join_type,
                filter.as_ref(),
                Arc::clone(schema),
                registry,
            )?)
        }
        PhysicalPlan::Sort {
            input,
            order,
            fetch,
        } => {
            let input = compile(input, ctx)?;
            match fetch {
                Some(k) => Arc::new(topk::TopK::try_new(input, order, *k, registry)?),
                None => Arc::new(sort::Sort::try_new(input, order, registry)?),
            }
        }
        PhysicalPlan::SortPreservingMerge {
            input,
            order,
            fetch,
        } => {
            let input = compile(input, ctx)?;
            Arc::new(sort_merge::SortPreservingMerge::try_new(
                input, order, *fetch, registry,
            )?)
        }
        PhysicalPlan::Limit { input, skip, fetch } => {
            let input = compile(input, ctx)?;
            Arc::new(limit::Limit::new(input, *skip, *fetch))
        }
        PhysicalPlan::Union { inputs, schema } => {
            let inputs = inputs
                .iter()
                .map(|i| compile(i, ctx))
                .collect::<Result<Vec<_>>>()?;
            Arc::new(union::Union::try_new(inputs, Arc::clone(schema))?)
        }
        PhysicalPlan::Window {
            input,
            exprs,
            schema,
        } => {
            let input = compile(input, ctx)?;
            Arc::new(window::Window::try_new(
                input,
                exprs,
                Arc::clone(schema),
                registry,
            )?)
        }
        PhysicalPlan::SetOperation {
            left,
            right,
            op,
            on,
            schema,
        } => {
            let left = compile(left, ctx)?;
            let right = compile(right, ctx)?;
            Arc::new(set_op::SetOperation::try_new(
                left,
                right,
                *op,
                on,
                Arc::clone(schema),
                registry,
            )?)
        }
        PhysicalPlan::Custom {
            name,
            config,
            inputs,
            schema,
            ..
        } => {
            let factory = ctx.operators.require(name)?;
            let inputs = inputs
                .iter()
                .map(|i| compile(i, ctx))
                .collect::<Result<Vec<_>>>()?;
            factory.create(config, inputs, Arc::clone(schema))?
        }
        PhysicalPlan::StageInput {
            stage,
            partitions,
            preserve,
            schema,
        } => Arc::new(stage_input::StageInput::new(
            *stage,
            *partitions,
            *preserve,
            Arc::clone(schema),
        )),
        PhysicalPlan::Exchange {
            input,
            partitioning,
        } => {
            let input = compile(input, ctx)?;
            Arc::new(exchange::Exchange::try_new(input, partitioning, registry)?)
        }
    })
}

/// Checks a partition index against an operator's partition count.
pub(crate) fn check_partition(op: &dyn Operator, partition: usize) -> Result<()> {
    if partition >= op.output_partitions() {
        return Err(crate::error::DataflowError::Internal(format!(
            "{}: partition {partition} out of range (0..{})",
            op.name(),
            op.output_partitions()
        )));
    }
    Ok(())
}
