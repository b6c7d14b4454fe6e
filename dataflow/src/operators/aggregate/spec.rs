//! What an aggregate node computes, compiled once for the operator's mode
//! and shared by its partitions: key expressions and types, the grouping
//! sets expanded in this mode, and each aggregate's DataFusion function with
//! what it is fed.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;
use datafusion_physical_expr::expressions::Column;
use datafusion_physical_expr::PhysicalExpr;

use super::grouping_sets::{grouping_id_scalar, grouping_ids, GroupingSet};
use crate::error::{DataflowError, Result};
use crate::execution::needs_canonical;
use crate::expr::{specialize_decimal_arith, AggExpr, PhysExpr};
use crate::functions::FunctionRegistry;
use crate::plan::AggregateMode;

/// The settings of an aggregate node (see
/// [`crate::plan::PhysicalPlan::Aggregate`], whose fields they mirror).
pub struct AggregateConfig<'a> {
    pub mode: AggregateMode,
    pub group_by: &'a [PhysExpr],
    pub grouping_sets: &'a [Vec<bool>],
    pub aggregates: &'a [AggExpr],
    pub aggregate_input_schema: SchemaRef,
    pub schema: SchemaRef,
}

/// One aggregate of the operator, compiled for the operator's mode.
pub(super) struct AggItem {
    pub(super) func: Arc<AggregateFunctionExpr>,
    /// What the accumulator is fed per input batch: the arguments (and
    /// ordering expressions) over original rows, or the state columns of
    /// the partial output in `Final` mode.
    pub(super) inputs: Vec<Arc<dyn PhysicalExpr>>,
    /// Types of `inputs`.
    pub(super) input_types: Vec<DataType>,
    /// `FILTER (WHERE ...)`, applied on original rows only.
    pub(super) filter: Option<Arc<dyn PhysicalExpr>>,
    /// A DISTINCT aggregate over original rows with float inputs: they are
    /// fed in canonical form (`-0.0` is `0.0`, one NaN), so that equal
    /// values count once.
    pub(super) canonical_inputs: bool,
}

/// Everything an [`Aggregator`] needs; shared by the partitions.
pub(crate) struct AggSpec {
    pub(super) mode: AggregateMode,
    /// Group key expressions over the operator's input (in `Final` mode,
    /// the first `G` columns, or `G + 1` with grouping sets).
    pub(super) group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// Types of the key columns the groups are formed on (with grouping
    /// sets, the keys then the grouping id).
    pub(super) key_types: Vec<DataType>,
    /// Grouping sets expanded in this mode (`Partial`, `Single`); empty for
    /// `Final` and for a plain GROUP BY.
    pub(super) sets: Vec<GroupingSet>,
    pub(super) aggs: Vec<AggItem>,
    pub(super) schema: SchemaRef,
}

impl AggSpec {
    pub(crate) fn try_new(
        input_schema: &Schema,
        config: AggregateConfig<'_>,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let AggregateConfig {
            mode,
            group_by,
            grouping_sets,
            aggregates,
            aggregate_input_schema,
            schema,
        } = config;
        let aggregate_input_schema = aggregate_input_schema.as_ref();
        let lowered = aggregates
            .iter()
            .map(|a| a.compile(aggregate_input_schema, registry))
            .collect::<Result<Vec<_>>>()?;
        let g = group_by.len();
        if grouping_sets.iter().any(|s| s.len() != g) {
            return Err(DataflowError::Internal(format!(
                "grouping sets {grouping_sets:?} do not have one flag per group key ({g})"
            )));
        }
        let (set_ids, id_type) = grouping_ids(grouping_sets)?;
        let has_sets = !grouping_sets.is_empty();
        // Key columns of the groups: the keys, then the grouping id.
        let gk = g + usize::from(has_sets);
        let state_fields = lowered
            .iter()
            .map(|l| l.aggregate.state_fields())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let raw_input = matches!(mode, AggregateMode::Partial | AggregateMode::Single);

        let (group_exprs, key_types) = if raw_input {
            check_same_types(input_schema, aggregate_input_schema, mode)?;
            let exprs = group_by
                .iter()
                .map(|e| e.compile(aggregate_input_schema, registry))
                .collect::<Result<Vec<_>>>()?;
            let mut types = exprs
                .iter()
                .map(|e| e.data_type(aggregate_input_schema))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if has_sets {
                types.push(id_type.clone());
            }
            (exprs, types)
        } else {
            // Final: keys (and the grouping id) are the first columns, then
            // the states in order.
            let expected = gk + state_fields.iter().map(|s| s.len()).sum::<usize>();
            if input_schema.fields().len() != expected {
                return Err(DataflowError::Internal(format!(
                    "final aggregate input has {} columns [{}], but {gk} group key columns and \
                     the aggregate states give {expected} [{}]",
                    input_schema.fields().len(),
                    field_names(input_schema.fields().iter().map(|f| f.name())),
                    field_names(state_fields.iter().flatten().map(|f| f.name())),
                )));
            }
            let exprs: Vec<Arc<dyn PhysicalExpr>> = (0..gk)
                .map(|i| {
                    Arc::new(Column::new(input_schema.field(i).name(), i)) as Arc<dyn PhysicalExpr>
                })
                .collect();
            let types: Vec<DataType> = (0..gk)
                .map(|i| input_schema.field(i).data_type().clone())
                .collect();
            if has_sets && types[g] != id_type {
                return Err(DataflowError::Internal(format!(
                    "final aggregate input column {g} (grouping id) has type {}, expected {id_type}",
                    types[g]
                )));
            }
            (exprs, types)
        };
        let sets = if raw_input {
            grouping_sets
                .iter()
                .zip(set_ids)
                .map(|(s, id)| GroupingSet {
                    null_keys: s.clone(),
                    id: grouping_id_scalar(id, &id_type),
                })
                .collect()
        } else {
            vec![]
        };

        let mut aggs = Vec::with_capacity(lowered.len());
        let mut state_col = gk;
        for (l, states) in lowered.into_iter().zip(&state_fields) {
            let func = l.aggregate;
            let (inputs, filter): (Vec<Arc<dyn PhysicalExpr>>, _) = if raw_input {
                let mut inputs = func
                    .expressions()
                    .into_iter()
                    .map(|e| specialize_decimal_arith(e, input_schema))
                    .collect::<datafusion_common::Result<Vec<_>>>()?;
                // Order-sensitive aggregates get their ordering columns
                // after the arguments.
                inputs.extend(func.order_bys().iter().map(|s| Arc::clone(&s.expr)));
                (inputs, l.filter)
            } else {
                let mut inputs: Vec<Arc<dyn PhysicalExpr>> = Vec::with_capacity(states.len());
                for sf in states {
                    let f = input_schema.field(state_col);
                    if !f.data_type().equals_datatype(sf.data_type()) {
                        return Err(DataflowError::Internal(format!(
                            "final aggregate input column {state_col} ({}) has type {}, \
                                 but state {} of {} has type {}",
                            f.name(),
                            f.data_type(),
                            sf.name(),
                            func.name(),
                            sf.data_type()
                        )));
                    }
                    inputs.push(Arc::new(Column::new(f.name(), state_col)));
                    state_col += 1;
                }
                (inputs, None)
            };
            let input_schema_for_types = if raw_input {
                aggregate_input_schema
            } else {
                input_schema
            };
            let input_types = inputs
                .iter()
                .map(|e| e.data_type(input_schema_for_types))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if inputs.is_empty() && !func.groups_accumulator_supported() {
                return Err(DataflowError::NotSupported(format!(
                    "aggregate {} without arguments",
                    func.name()
                )));
            }
            let canonical_inputs =
                raw_input && func.is_distinct() && input_types.iter().any(needs_canonical);
            aggs.push(AggItem {
                func,
                inputs,
                input_types,
                filter,
                canonical_inputs,
            });
        }

        // The output schema: keys, then per aggregate its states (Partial)
        // or its value (Final, Single).
        let mut expected: Vec<String> = group_by.iter().map(|e| e.to_string()).collect();
        if has_sets {
            expected.push("__grouping_id".to_string());
        }
        match mode {
            AggregateMode::Partial => {
                expected.extend(state_fields.iter().flatten().map(|f| f.name().clone()))
            }
            AggregateMode::Final | AggregateMode::Single => {
                expected.extend(aggs.iter().map(|a| a.func.name().to_string()))
            }
        }
        if schema.fields().len() != expected.len() {
            return Err(DataflowError::Internal(format!(
                "aggregate ({mode:?}) output schema has {} columns [{}], but the group keys and \
                 aggregates give {} [{}]",
                schema.fields().len(),
                field_names(schema.fields().iter().map(|f| f.name())),
                expected.len(),
                expected.join(", "),
            )));
        }
        if has_sets && schema.field(g).data_type() != &id_type {
            return Err(DataflowError::Internal(format!(
                "aggregate ({mode:?}) output column {g} ({}) has type {}, but the grouping id \
                 of {} grouping sets over {g} keys is {id_type}",
                schema.field(g).name(),
                schema.field(g).data_type(),
                grouping_sets.len()
            )));
        }

        Ok(AggSpec {
            mode,
            group_exprs,
            key_types,
            sets,
            aggs,
            schema,
        })
    }
}

/// The layout a final or single aggregate spills its groups in: the group
/// keys (with grouping sets, and the grouping id), then the state columns
/// of every aggregate in order; the layout a partial aggregate emits.
pub(super) struct StateLayout {
    pub(super) schema: SchemaRef,
    /// The key columns, which spilled groups are partitioned by.
    pub(super) keys: Vec<Arc<dyn PhysicalExpr>>,
}

impl AggSpec {
    /// Whether the groups can be split over spill partitions: there are
    /// keys, and the mode gives final values (a partial aggregate emits its
    /// groups early instead).
    pub(super) fn can_spill(&self) -> bool {
        self.mode != AggregateMode::Partial && !self.key_types.is_empty()
    }

    /// The layout this aggregate spills its groups in.
    pub(super) fn state_layout(&self) -> Result<StateLayout> {
        let mut fields: Vec<Field> = self
            .key_types
            .iter()
            .enumerate()
            .map(|(i, t)| Field::new(format!("key{i}"), t.clone(), true))
            .collect();
        for item in &self.aggs {
            let states = item.func.state_fields()?;
            fields.extend(
                states
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true)),
            );
        }
        let schema = Arc::new(Schema::new(fields));
        let keys = (0..self.key_types.len())
            .map(|i| column(&schema, i))
            .collect();
        Ok(StateLayout { schema, keys })
    }

    /// The same aggregate in `Final` mode over spilled groups (`layout`):
    /// merges their states and gives this aggregate's output.
    pub(super) fn merging(&self, layout: &StateLayout) -> Result<AggSpec> {
        let mut col = self.key_types.len();
        let mut aggs = Vec::with_capacity(self.aggs.len());
        for item in &self.aggs {
            let states = item.func.state_fields()?.len();
            let inputs: Vec<_> = (col..col + states)
                .map(|i| column(&layout.schema, i))
                .collect();
            let input_types = (col..col + states)
                .map(|i| layout.schema.field(i).data_type().clone())
                .collect();
            col += states;
            aggs.push(AggItem {
                func: Arc::clone(&item.func),
                inputs,
                input_types,
                filter: None,
                canonical_inputs: false,
            });
        }
        if col != layout.schema.fields().len() {
            return Err(DataflowError::Internal(format!(
                "aggregate state layout has {} columns, the states give {col}",
                layout.schema.fields().len()
            )));
        }
        Ok(AggSpec {
            mode: AggregateMode::Final,
            group_exprs: layout.keys.clone(),
            key_types: self.key_types.clone(),
            sets: vec![],
            aggs,
            schema: Arc::clone(&self.schema),
        })
    }
}

fn column(schema: &Schema, i: usize) -> Arc<dyn PhysicalExpr> {
    Arc::new(Column::new(schema.field(i).name(), i))
}

pub(super) fn field_names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// The operator input must have the types the expressions were compiled for.
pub(super) fn check_same_types(
    input: &Schema,
    expected: &Schema,
    mode: AggregateMode,
) -> Result<()> {
    let same = input.fields().len() == expected.fields().len()
        && input
            .fields()
            .iter()
            .zip(expected.fields())
            .all(|(a, b)| a.data_type().equals_datatype(b.data_type()));
    if same {
        return Ok(());
    }
    let show = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(DataflowError::Internal(format!(
        "aggregate ({mode:?}) input [{}] does not match the aggregate input schema [{}]",
        show(input),
        show(expected)
    )))
}
