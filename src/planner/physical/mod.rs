//! Lowers an optimized DataFusion logical plan to FFQ's physical plan.
//!
//! Decisions made here:
//! - scans get `target_partitions` partitions (Parquet: row groups dealt
//!   over partitions; CSV: one partition per file; small TPC-H tables: one);
//! - aggregates split into partial (per input partition) and final (after
//!   a hash exchange on the group keys, or a gather without keys), except
//!   order-sensitive ones, which run in one stage after a gather; those
//!   whose accumulators need their rows in order (`nth_value ... ORDER BY`)
//!   read their input sorted;
//! - equi-joins build on the smaller side (swapping inputs when that is the
//!   right one), broadcast a small build side (`collect_left`), and
//!   otherwise hash-partition both sides on the keys (`join.rs`);
//! - sort + limit becomes per-partition top-k followed by a merge.
//!
//! Every logical node it cannot lower fails with `not supported: ...`.
//! Windows and set operations are lowered by their own modules
//! (`planner::window`, `planner::set_ops`), which get what they need as
//! arguments rather than the planner.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::{DFSchema, NullHandling};
use datafusion_expr::logical_plan::{FetchType, SkipType};
use datafusion_expr::LogicalPlan;
use ffq_dataflow::expr::{AggExpr, PhysExpr, SortExpr};
use ffq_dataflow::functions::FunctionRegistry;
use ffq_dataflow::operators::aggregate::grouping_ids;
use ffq_dataflow::operators::parquet_scan;
use ffq_dataflow::operators::tpch_scan::tpch_splits;
use ffq_dataflow::plan::{
    AggregateMode, Partitioning, PhysicalPlan, ScanSource, UnnestList, UnnestNulls,
};

mod aggregate_order;
mod join;
mod partitioned;

pub use join::BROADCAST_MAX_ROWS;

use self::aggregate_order::required_input_order;
use super::exchange::gather;
use super::expr::{group_keys, lower_aggregate, lower_expr, lower_exprs, lower_sort};
use super::values::LiteralRows;
use super::window;
use crate::catalog::FfqTableSource;
use crate::catalog::TableKind;
use crate::error::{Error, Result};

pub struct PhysicalPlanner<'a> {
    pub registry: &'a FunctionRegistry,
    pub target_partitions: usize,
}

impl PhysicalPlanner<'_> {
    /// Lowers `plan` into a physical plan with a single output partition.
    /// Runs on the deep stack: lowering recurses over plan and expressions.
    pub fn plan(&self, plan: &LogicalPlan) -> Result<PhysicalPlan> {
        ffq_dataflow::limits::on_deep_stack(|| Ok(gather(self.lower(plan)?)))
    }

    fn lower(&self, plan: &LogicalPlan) -> Result<PhysicalPlan> {
        match plan {
            LogicalPlan::TableScan(scan) => self.lower_scan(scan),
            LogicalPlan::Projection(p) => {
                let input = self.lower(&p.input)?;
                let exprs = lower_exprs(&p.expr, p.input.schema())?;
                let schema = self.expr_schema(&exprs, &input.schema(), p.schema.as_ref())?;
                Ok(PhysicalPlan::Projection {
                    input: Box::new(input),
                    exprs,
                    schema,
                })
            }
            LogicalPlan::Filter(f) => {
                let input = self.lower(&f.input)?;
                let predicate = lower_expr(&f.predicate, f.input.schema())?;
                Ok(PhysicalPlan::Filter {
                    input: Box::new(input),
                    predicate,
                })
            }
            LogicalPlan::SubqueryAlias(a) => self.lower(&a.input),
            LogicalPlan::Repartition(r) => self.lower(&r.input),
            LogicalPlan::Aggregate(a) => self.lower_aggregate(a),
            LogicalPlan::Join(j) => self.lower_join(j),
            LogicalPlan::Sort(s) => {
                let input = self.lower(&s.input)?;
                let order = s
                    .expr
                    .iter()
                    .map(|e| lower_sort(e, s.input.schema()))
                    .collect::<Result<Vec<_>>>()?;
                Ok(sorted(input, order, s.fetch))
            }
            LogicalPlan::Limit(l) => {
                let skip = match l.get_skip_type()? {
                    SkipType::Literal(n) => n,
                    SkipType::UnsupportedExpr => {
                        return Err(Error::NotSupported("OFFSET that is not a constant".into()))
                    }
                };
                let fetch = match l.get_fetch_type()? {
                    FetchType::Literal(n) => n,
                    FetchType::UnsupportedExpr => {
                        return Err(Error::NotSupported("LIMIT that is not a constant".into()))
                    }
                };
                let input = self.lower(&l.input)?;
                let input = if input.output_partitions() > 1 {
                    // Each partition needs at most skip + fetch rows.
                    let local = match fetch {
                        Some(f) => PhysicalPlan::Limit {
                            input: Box::new(input),
                            skip: 0,
                            fetch: Some(f.saturating_add(skip)),
                        },
                        None => input,
                    };
                    gather(local)
                } else {
                    input
                };
                Ok(PhysicalPlan::Limit {
                    input: Box::new(input),
                    skip,
                    fetch,
                })
            }
            LogicalPlan::Union(u) => {
                let inputs = u
                    .inputs
                    .iter()
                    .map(|i| self.lower(i))
                    .collect::<Result<Vec<_>>>()?;
                let schema = Arc::new(u.schema.as_arrow().clone());
                for (i, input) in inputs.iter().enumerate() {
                    let s = input.schema();
                    for (a, b) in s.fields().iter().zip(schema.fields()) {
                        if a.data_type() != b.data_type() {
                            return Err(Error::Plan(format!(
                                "UNION input {i}: column {} is {} but the union has {}",
                                b.name(),
                                a.data_type(),
                                b.data_type()
                            )));
                        }
                    }
                }
                let schema = relax_nullability(&schema, inputs.iter().map(|i| i.schema()));
                Ok(PhysicalPlan::Union { inputs, schema })
            }
            LogicalPlan::EmptyRelation(e) => Ok(PhysicalPlan::Empty {
                schema: Arc::new(e.schema.as_arrow().clone()),
                produce_one_row: e.produce_one_row,
            }),
            LogicalPlan::Values(v) => lower_values(&v.values, &v.schema),
            LogicalPlan::Distinct(_) => Err(Error::NotSupported(
                "DISTINCT that the optimizer did not rewrite".into(),
            )),
            LogicalPlan::Window(w) => window::lower_window(
                w,
                self.lower(&w.input)?,
                self.registry,
                self.target_partitions,
            ),
            LogicalPlan::Subquery(_) => Err(Error::NotSupported(
                "subquery that could not be turned into a join".into(),
            )),
            LogicalPlan::Unnest(u) => lower_unnest(u, self.lower(&u.input)?),
            // The session runs recursive CTEs before lowering (see
            // `planner::recursive_cte`); only EXPLAIN, which runs nothing,
            // meets one here.
            LogicalPlan::RecursiveQuery(q) => Err(Error::NotSupported(format!(
                "EXPLAIN of recursive CTE {} (its iterations run before the query; \
                 EXPLAIN ANALYZE runs it)",
                q.name
            ))),
            LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => Err(Error::NotSupported(
                "EXPLAIN inside another statement".into(),
            )),
            LogicalPlan::Statement(_) => Err(Error::NotSupported(
                "transaction and session statements".into(),
            )),
            LogicalPlan::Dml(d) => Err(Error::NotSupported(format!("{} statements", d.op))),
            LogicalPlan::Ddl(d) => Err(Error::NotSupported(format!("{} statements", d.name()))),
            LogicalPlan::Copy(_) => Err(Error::NotSupported("COPY".into())),
            LogicalPlan::DescribeTable(_) => Err(Error::NotSupported("DESCRIBE".into())),
            LogicalPlan::Extension(e) => match e.node.as_any().downcast_ref::<LiteralRows>() {
                Some(v) => lower_values(&v.rows, &v.schema),
                None => {
                    super::set_ops::lower_extension(e, self.target_partitions, &|p| self.lower(p))
                }
            },
        }
    }

    fn lower_scan(&self, scan: &datafusion_expr::logical_plan::TableScan) -> Result<PhysicalPlan> {
        let entry = scan
            .source
            .as_ref()
            .downcast_ref::<FfqTableSource>()
            .map(|s| Arc::clone(&s.entry))
            .ok_or_else(|| Error::NotSupported(format!("table source of {}", scan.table_name)))?;
        let table_schema = Arc::clone(&entry.schema);
        let schema = match &scan.projection {
            Some(p) => Arc::new(table_schema.project(p)?),
            None => Arc::clone(&table_schema),
        };
        let n = self.target_partitions.max(1);
        if let TableKind::Partitioned(table) = &entry.kind {
            let table_df = DFSchema::try_from_qualified_schema(
                scan.table_name.clone(),
                table_schema.as_ref(),
            )?;
            let filters: Vec<PhysExpr> = scan
                .filters
                .iter()
                .filter_map(|f| lower_expr(f, &table_df).ok())
                .collect();
            let plan = partitioned::lower_partitioned_scan(
                table,
                &table_schema,
                scan.projection.as_ref(),
                &filters,
                n,
                self.registry,
            )?;
            return Ok(with_fetch(plan, scan.fetch));
        }
        let source = match &entry.kind {
            TableKind::Memory => ScanSource::Memory {
                table: entry.name.clone(),
                partitions: n,
            },
            TableKind::Tpch {
                table,
                scale_factor,
            } => ScanSource::Tpch {
                table: *table,
                scale_factor: *scale_factor,
                partitions: if tpch_splits(*table) { n } else { 1 },
            },
            TableKind::Parquet { files, .. } => ScanSource::Parquet {
                partitions: parquet_scan::parquet_splits(files, n)?,
            },
            TableKind::Partitioned(_) => {
                return Err(Error::Plan("partitioned tables are lowered above".into()))
            }
            TableKind::Json { files, .. } => ScanSource::Json {
                partitions: files.iter().map(|f| vec![f.clone()]).collect(),
            },
            TableKind::Csv { files, options, .. } => ScanSource::Csv {
                partitions: files.iter().map(|f| vec![f.clone()]).collect(),
                has_header: options.has_header,
                delimiter: options.delimiter,
            },
        };
        let pruning = if matches!(entry.kind, TableKind::Parquet { .. }) {
            let table_df = DFSchema::try_from_qualified_schema(
                scan.table_name.clone(),
                table_schema.as_ref(),
            )?;
            // A filter the pruner cannot use is simply not used: the Filter
            // above the scan still applies every predicate to the rows.
            scan.filters
                .iter()
                .filter_map(|f| lower_expr(f, &table_df).ok())
                .collect()
        } else {
            vec![]
        };
        let plan = PhysicalPlan::Scan {
            source,
            table_schema,
            projection: scan.projection.clone(),
            pruning,
            schema,
        };
        Ok(with_fetch(plan, scan.fetch))
    }

    fn lower_aggregate(
        &self,
        a: &datafusion_expr::logical_plan::Aggregate,
    ) -> Result<PhysicalPlan> {
        let input = self.lower(&a.input)?;
        let input_schema = input.schema();
        let in_df = a.input.schema();
        let (keys, grouping_sets) = group_keys(&a.group_expr)?;
        let group_by = keys
            .iter()
            .map(|e| lower_expr(e, in_df))
            .collect::<Result<Vec<_>>>()?;
        let g = group_by.len();
        // Columns the groups are formed on: the keys, then with grouping
        // sets the `__grouping_id` (as in the logical schema).
        let gk = g + usize::from(!grouping_sets.is_empty());
        let out = a.schema.as_ref();
        let mut aggregates = a
            .aggr_expr
            .iter()
            .enumerate()
            .map(|(i, e)| lower_aggregate(e, in_df, out.field(gk + i).name()))
            .collect::<Result<Vec<AggExpr>>>()?;
        let input_order = required_input_order(&mut aggregates, self.registry)?;

        // Output fields: group keys as evaluated (nullable in grouping sets,
        // which set keys to NULL), the grouping id, then aggregate results.
        let mut final_fields = self.expr_fields(&group_by, &input_schema, out)?;
        if !grouping_sets.is_empty() {
            final_fields = final_fields
                .into_iter()
                .map(|f| f.with_nullable(true))
                .collect();
            final_fields.push(grouping_id_field(&grouping_sets, out.field(g))?);
        }
        let mut state_fields = Vec::new();
        for (i, agg) in aggregates.iter().enumerate() {
            let lowered = agg.compile(&input_schema, self.registry)?;
            let f = lowered.aggregate.field();
            final_fields.push(Field::new(
                out.field(gk + i).name(),
                f.data_type().clone(),
                f.is_nullable(),
            ));
            for s in lowered.aggregate.state_fields()? {
                state_fields.push(s.as_ref().clone());
            }
        }
        let final_schema = Arc::new(Schema::new(final_fields.clone()));
        let order_sensitive = aggregates.iter().any(|a| !a.order_by.is_empty());

        if input.output_partitions() == 1 || order_sensitive {
            // One stage: a partial/final split would merge states that
            // order-sensitive accumulators cannot always order.
            let input = match input_order {
                Some(order) => sorted(input, order, None),
                None => gather(input),
            };
            return Ok(PhysicalPlan::Aggregate {
                input: Box::new(input),
                mode: AggregateMode::Single,
                group_by,
                grouping_sets,
                aggregates,
                aggregate_input_schema: input_schema,
                schema: final_schema,
            });
        }
        let mut partial_fields: Vec<Field> = final_fields[..gk].to_vec();
        partial_fields.extend(state_fields);
        let partial_schema = Arc::new(Schema::new(partial_fields));
        let partial = PhysicalPlan::Aggregate {
            input: Box::new(input),
            mode: AggregateMode::Partial,
            group_by: group_by.clone(),
            grouping_sets: grouping_sets.clone(),
            aggregates: aggregates.clone(),
            aggregate_input_schema: Arc::clone(&input_schema),
            schema: Arc::clone(&partial_schema),
        };
        let partitioning = if gk == 0 {
            Partitioning::Gather
        } else {
            Partitioning::Hash {
                keys: (0..gk)
                    .map(|i| PhysExpr::col(i, partial_schema.field(i).name()))
                    .collect(),
                partitions: self.target_partitions.max(1),
            }
        };
        Ok(PhysicalPlan::Aggregate {
            input: Box::new(PhysicalPlan::Exchange {
                input: Box::new(partial),
                partitioning,
            }),
            mode: AggregateMode::Final,
            group_by,
            grouping_sets,
            aggregates,
            aggregate_input_schema: input_schema,
            schema: final_schema,
        })
    }

    /// Output fields of `exprs` over `input`, named like the logical schema.
    fn expr_fields(
        &self,
        exprs: &[PhysExpr],
        input: &Schema,
        logical: &DFSchema,
    ) -> Result<Vec<Field>> {
        exprs
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let compiled = e.compile(input, self.registry)?;
                let f = compiled
                    .return_field(input)
                    .map_err(ffq_dataflow::DataflowError::from)?;
                Ok(Field::new(
                    logical.field(i).name(),
                    f.data_type().clone(),
                    f.is_nullable(),
                ))
            })
            .collect()
    }

    fn expr_schema(
        &self,
        exprs: &[PhysExpr],
        input: &Schema,
        logical: &DFSchema,
    ) -> Result<SchemaRef> {
        Ok(Arc::new(Schema::new(
            self.expr_fields(exprs, input, logical)?,
        )))
    }
}

/// `input` sorted by `order` into one partition (each partition sorted,
/// then merged), at most `fetch` rows.
/// `plan` under a limit of `fetch` rows per partition, when there is one.
fn with_fetch(plan: PhysicalPlan, fetch: Option<usize>) -> PhysicalPlan {
    match fetch {
        Some(f) => PhysicalPlan::Limit {
            input: Box::new(plan),
            skip: 0,
            fetch: Some(f),
        },
        None => plan,
    }
}

fn sorted(input: PhysicalPlan, order: Vec<SortExpr>, fetch: Option<usize>) -> PhysicalPlan {
    let sorted = PhysicalPlan::Sort {
        input: Box::new(input),
        order: order.clone(),
        fetch,
    };
    if sorted.output_partitions() > 1 {
        PhysicalPlan::SortPreservingMerge {
            input: Box::new(sorted),
            order,
            fetch,
        }
    } else {
        sorted
    }
}

/// The `__grouping_id` output field of an aggregate with grouping sets:
/// the logical field, whose type must be the one the operator computes.
fn grouping_id_field(grouping_sets: &[Vec<bool>], logical: &Field) -> Result<Field> {
    let (_, id_type) = grouping_ids(grouping_sets)?;
    if logical.name() != datafusion_expr::Aggregate::INTERNAL_GROUPING_ID
        || logical.data_type() != &id_type
    {
        return Err(Error::Plan(format!(
            "aggregate with {} grouping sets: expected the output field {}: {id_type} after \
             the keys, found {}: {}",
            grouping_sets.len(),
            datafusion_expr::Aggregate::INTERNAL_GROUPING_ID,
            logical.name(),
            logical.data_type()
        )));
    }
    Ok(Field::new(logical.name(), id_type, false))
}

/// The union schema, nullable where any input is.
fn relax_nullability(schema: &SchemaRef, inputs: impl Iterator<Item = SchemaRef>) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for input in inputs {
        for (f, i) in fields.iter_mut().zip(input.fields()) {
            if i.is_nullable() {
                *f = f.clone().with_nullable(true);
            }
        }
    }
    Arc::new(Schema::new(fields))
}

/// `UNNEST`: per partition, as DataFusion's plan says which input columns
/// are lists (and how deep) and which are structs.
fn lower_unnest(
    u: &datafusion_expr::logical_plan::Unnest,
    input: PhysicalPlan,
) -> Result<PhysicalPlan> {
    let lists = u
        .list_type_columns
        .iter()
        .map(|(column, list)| UnnestList {
            column: *column,
            depth: list.depth,
        })
        .collect();
    let nulls = match u.options.null_handling {
        NullHandling::Drop => UnnestNulls::Drop,
        NullHandling::Preserve => UnnestNulls::Preserve,
        NullHandling::PreserveAndExpandEmpty => UnnestNulls::PreserveAndExpandEmpty,
    };
    Ok(PhysicalPlan::Unnest {
        input: Box::new(input),
        lists,
        structs: u.struct_type_columns.clone(),
        nulls,
        schema: Arc::new(u.schema.as_arrow().clone()),
    })
}

/// `VALUES` rows: expressions over no input.
fn lower_values(rows: &[Vec<datafusion_expr::Expr>], schema: &DFSchema) -> Result<PhysicalPlan> {
    let empty = DFSchema::empty();
    let rows = rows
        .iter()
        .map(|row| lower_exprs(row, &empty))
        .collect::<Result<Vec<_>>>()?;
    Ok(PhysicalPlan::Values {
        schema: Arc::new(schema.as_arrow().clone()),
        rows,
    })
}
