//! Plan node -> operator: the one module that knows every operator.
//!
//! [`compile`] numbers the plan's nodes ([`PhysicalPlan::numbered`]),
//! builds each node's operator over its compiled inputs (expressions
//! compiled, inputs validated; nothing runs), and wraps it in
//! [`Instrumented`] with the counters of the node's id.

use std::sync::Arc;

use crate::error::{DataflowError, Result};
use crate::execution::{Instrumented, Operator, TaskContext};
use crate::operators::{
    aggregate, exchange, filter, join, limit, projection, scan, set_op, sort, stage_input, union,
    unnest, values, window, write,
};
use crate::plan::{NodeId, NumberedNode, PhysicalPlan, ScanSource};

/// Compiles a plan tree into operators without running anything.
///
/// Runs on the deep stack: DataFusion's expression compiler recurses with
/// large frames, and plans come up to the bounds of [`crate::limits`].
pub fn compile(plan: &PhysicalPlan, ctx: &Arc<TaskContext>) -> Result<Arc<dyn Operator>> {
    crate::limits::on_deep_stack(|| compile_at(&plan.numbered(), NodeId(0), ctx))
}

fn compile_at(
    nodes: &[NumberedNode<'_>],
    id: NodeId,
    ctx: &Arc<TaskContext>,
) -> Result<Arc<dyn Operator>> {
    let node = nodes
        .get(id.0)
        .ok_or_else(|| DataflowError::Internal(format!("no plan node {}", id.0)))?;
    let inputs = node
        .children
        .iter()
        .map(|&c| compile_at(nodes, c, ctx))
        .collect::<Result<Vec<_>>>()?;
    let op = compile_node(node.node, Inputs(inputs), ctx)?;
    Ok(Instrumented::wrap(op, id, ctx.metrics.register(id)))
}

/// The compiled inputs of a node, taken in order.
struct Inputs(Vec<Arc<dyn Operator>>);

impl Inputs {
    fn one(self) -> Result<Arc<dyn Operator>> {
        let [input] = self.exactly::<1>()?;
        Ok(input)
    }

    fn two(self) -> Result<(Arc<dyn Operator>, Arc<dyn Operator>)> {
        let [left, right] = self.exactly::<2>()?;
        Ok((left, right))
    }

    fn exactly<const N: usize>(self) -> Result<[Arc<dyn Operator>; N]> {
        let n = self.0.len();
        self.0
            .try_into()
            .map_err(|_| DataflowError::Internal(format!("expected {N} inputs, got {n}")))
    }
}

fn compile_node(
    plan: &PhysicalPlan,
    inputs: Inputs,
    ctx: &Arc<TaskContext>,
) -> Result<Arc<dyn Operator>> {
    let registry = &ctx.registry;
    Ok(match plan {
        PhysicalPlan::Scan {
            source,
            table_schema,
            projection,
            pruning,
            schema,
        } => {
            let columns = || scan::files::ScanColumns {
                table_schema: Arc::clone(table_schema),
                projection: projection.clone(),
                schema: Arc::clone(schema),
            };
            match source {
                ScanSource::Memory { table, partitions } => {
                    Arc::new(scan::memory::MemoryScan::new(
                        table.clone(),
                        *partitions,
                        projection.clone(),
                        Arc::clone(schema),
                    ))
                }
                ScanSource::Tpch {
                    table,
                    scale_factor,
                    partitions,
                } => Arc::new(scan::tpch::TpchScan::try_new(
                    *table,
                    *scale_factor,
                    *partitions,
                    projection.clone(),
                    Arc::clone(schema),
                )?),
                ScanSource::Parquet { partitions } => Arc::new(
                    scan::parquet::ParquetScan::try_new(partitions.clone(), columns(), pruning)?,
                ),
                ScanSource::Json { partitions } => Arc::new(scan::json::JsonScan::try_new(
                    partitions.clone(),
                    columns(),
                )?),
                ScanSource::Csv {
                    partitions,
                    has_header,
                    delimiter,
                } => {
                    let format = scan::csv::CsvFormat {
                        has_header: *has_header,
                        delimiter: *delimiter,
                    };
                    Arc::new(scan::csv::CsvScan::try_new(
                        partitions.clone(),
                        format,
                        columns(),
                    )?)
                }
            }
        }
        PhysicalPlan::Values { schema, rows } => {
            Arc::new(values::Values::try_new(Arc::clone(schema), rows, registry)?)
        }
        PhysicalPlan::Empty {
            schema,
            produce_one_row,
        } => Arc::new(values::Empty::new(Arc::clone(schema), *produce_one_row)),
        PhysicalPlan::Filter { predicate, .. } => {
            Arc::new(filter::Filter::try_new(inputs.one()?, predicate, registry)?)
        }
        PhysicalPlan::Projection { exprs, schema, .. } => Arc::new(
            projection::Projection::try_new(inputs.one()?, exprs, Arc::clone(schema), registry)?,
        ),
        PhysicalPlan::Aggregate {
            mode,
            group_by,
            grouping_sets,
            aggregates,
            aggregate_input_schema,
            schema,
            ..
        } => {
            let config = aggregate::AggregateConfig {
                mode: *mode,
                group_by,
                grouping_sets,
                aggregates,
                aggregate_input_schema: Arc::clone(aggregate_input_schema),
                schema: Arc::clone(schema),
            };
            Arc::new(aggregate::HashAggregate::try_new(
                inputs.one()?,
                config,
                registry,
            )?)
        }
        PhysicalPlan::HashJoin {
            join_type,
            on,
            filter,
            null_equals_null,
            null_aware,
            collect_left,
            schema,
            ..
        } => {
            let (left, right) = inputs.two()?;
            let config = join::hash_join::HashJoinConfig {
                join_type: *join_type,
                on,
                filter: filter.as_ref(),
                null_equals_null: *null_equals_null,
                null_aware: *null_aware,
                collect_left: *collect_left,
                schema: Arc::clone(schema),
            };
            Arc::new(join::hash_join::HashJoin::try_new(
                left, right, config, registry,
            )?)
        }
        PhysicalPlan::NestedLoopJoin {
            join_type,
            filter,
            schema,
            ..
        } => {
            let (left, right) = inputs.two()?;
            let config = join::nested_loop::NestedLoopJoinConfig {
                join_type: *join_type,
                filter: filter.as_ref(),
                schema: Arc::clone(schema),
            };
            Arc::new(join::nested_loop::NestedLoopJoin::try_new(
                left, right, config, registry,
            )?)
        }
        PhysicalPlan::Sort { order, fetch, .. } => {
            let input = inputs.one()?;
            match fetch {
                Some(k) => Arc::new(sort::topk::TopK::try_new(input, order, *k, registry)?),
                None => Arc::new(sort::Sort::try_new(input, order, registry)?),
            }
        }
        PhysicalPlan::SortPreservingMerge { order, fetch, .. } => {
            Arc::new(sort::preserving_merge::SortPreservingMerge::try_new(
                inputs.one()?,
                order,
                *fetch,
                registry,
            )?)
        }
        PhysicalPlan::Limit { skip, fetch, .. } => {
            Arc::new(limit::Limit::new(inputs.one()?, *skip, *fetch))
        }
        PhysicalPlan::Union { schema, .. } => {
            Arc::new(union::Union::try_new(inputs.0, Arc::clone(schema))?)
        }
        PhysicalPlan::Window { exprs, schema, .. } => Arc::new(window::Window::try_new(
            inputs.one()?,
            exprs,
            Arc::clone(schema),
            registry,
        )?),
        PhysicalPlan::Unnest {
            lists,
            structs,
            nulls,
            schema,
            ..
        } => Arc::new(unnest::Unnest::try_new(
            inputs.one()?,
            lists,
            structs,
            *nulls,
            Arc::clone(schema),
        )?),
        PhysicalPlan::SetOperation { op, on, schema, .. } => {
            let (left, right) = inputs.two()?;
            let config = set_op::SetOpConfig {
                op: *op,
                on,
                schema: Arc::clone(schema),
            };
            Arc::new(set_op::SetOperation::try_new(
                left, right, config, registry,
            )?)
        }
        PhysicalPlan::Custom {
            name,
            config,
            schema,
            ..
        } => ctx
            .operators
            .require(name)?
            .create(config, inputs.0, Arc::clone(schema))?,
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
        PhysicalPlan::Write { sink, .. } => {
            Arc::new(write::FileWrite::try_new(inputs.one()?, sink.clone())?)
        }
        PhysicalPlan::Exchange { partitioning, .. } => Arc::new(exchange::Exchange::try_new(
            inputs.one()?,
            partitioning,
            registry,
        )?),
    })
}
