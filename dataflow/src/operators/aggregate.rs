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
//! [`Accumulator`]: datafusion_expr::Accumulator

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray, RecordBatch,
    RecordBatchOptions,
};
use arrow::buffer::NullBuffer;
use arrow::compute::prep_null_mask_filter;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, Decimal128Type, Int16Type, Int32Type,
    Int64Type, Int8Type, Schema, SchemaRef, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion_common::ScalarValue;
use datafusion_expr::{EmitTo, GroupsAccumulator};
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;
use datafusion_physical_expr::expressions::Column;
use datafusion_physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};
use futures::StreamExt;
use hashbrown::hash_map::Entry;
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

use super::{check_partition, Operator};
use crate::error::{DataflowError, Result};
use crate::expr::{AggExpr, PhysExpr};
use crate::functions::FunctionRegistry;
use crate::plan::AggregateMode;
use crate::runner::TaskContext;
use crate::stream::{boxed, SendableRecordBatchStream};

pub struct HashAggregate {
    input: Arc<dyn Operator>,
    spec: Arc<AggSpec>,
}

/// One aggregate of the operator, compiled for the operator's mode.
struct AggItem {
    func: Arc<AggregateFunctionExpr>,
    /// What the accumulator is fed per input batch: the arguments (and
    /// ordering expressions) over original rows, or the state columns of
    /// the partial output in `Final` mode.
    inputs: Vec<Arc<dyn PhysicalExpr>>,
    /// Types of `inputs`.
    input_types: Vec<DataType>,
    /// `FILTER (WHERE ...)`, applied on original rows only.
    filter: Option<Arc<dyn PhysicalExpr>>,
}

/// Everything an [`Aggregator`] needs; shared by the partitions.
pub(crate) struct AggSpec {
    mode: AggregateMode,
    /// Group key expressions over the operator's input (in `Final` mode,
    /// the first `G` columns, or `G + 1` with grouping sets).
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// Types of the key columns the groups are formed on (with grouping
    /// sets, the keys then the grouping id).
    key_types: Vec<DataType>,
    /// Grouping sets expanded in this mode (`Partial`, `Single`); empty for
    /// `Final` and for a plain GROUP BY.
    sets: Vec<GroupingSet>,
    aggs: Vec<AggItem>,
    schema: SchemaRef,
}

impl HashAggregate {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        input: Arc<dyn Operator>,
        mode: AggregateMode,
        group_by: &[PhysExpr],
        grouping_sets: &[Vec<bool>],
        aggregates: &[AggExpr],
        aggregate_input_schema: SchemaRef,
        schema: SchemaRef,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let spec = AggSpec::try_new(
            &input.schema(),
            mode,
            group_by,
            grouping_sets,
            aggregates,
            &aggregate_input_schema,
            schema,
            registry,
        )?;
        Ok(HashAggregate {
            input,
            spec: Arc::new(spec),
        })
    }
}

/// One grouping set: which keys it leaves out (NULL) and its grouping id.
struct GroupingSet {
    null_keys: Vec<bool>,
    id: ScalarValue,
}

/// The grouping id of every set, and the id's type (see the module doc).
pub fn grouping_ids(sets: &[Vec<bool>]) -> Result<(Vec<u64>, DataType)> {
    let keys = sets.first().map(|s| s.len()).unwrap_or(0);
    if let Some(bad) = sets.iter().find(|s| s.len() != keys) {
        return Err(DataflowError::Internal(format!(
            "grouping sets of {} and {keys} keys",
            bad.len()
        )));
    }
    // Occurrence number of each set among equal sets.
    let mut seen: HashMap<&[bool], u64> = HashMap::with_hasher(DefaultHashBuilder::default());
    let mut ordinals = Vec::with_capacity(sets.len());
    for s in sets {
        let n = seen.entry(s.as_slice()).or_insert(0);
        ordinals.push(*n);
        *n += 1;
    }
    let max_ordinal = ordinals.iter().copied().max().unwrap_or(0);
    let bits = keys + (u64::BITS - max_ordinal.leading_zeros()) as usize;
    let data_type = match bits {
        0..=8 => DataType::UInt8,
        9..=16 => DataType::UInt16,
        17..=32 => DataType::UInt32,
        33..=64 => DataType::UInt64,
        _ => {
            return Err(DataflowError::NotSupported(format!(
                "{} grouping sets over {keys} keys (the grouping id needs {bits} bits)",
                sets.len()
            )))
        }
    };
    let ids = sets
        .iter()
        .zip(ordinals)
        .map(|(s, ordinal)| {
            let mask = s
                .iter()
                .fold(0u64, |acc, &null| (acc << 1) | u64::from(null));
            // bits <= 64, so the shift only overflows when there is no ordinal.
            mask | ordinal.checked_shl(keys as u32).unwrap_or(0)
        })
        .collect();
    Ok((ids, data_type))
}

fn grouping_id_scalar(id: u64, data_type: &DataType) -> ScalarValue {
    match data_type {
        DataType::UInt8 => ScalarValue::UInt8(Some(id as u8)),
        DataType::UInt16 => ScalarValue::UInt16(Some(id as u16)),
        DataType::UInt32 => ScalarValue::UInt32(Some(id as u32)),
        _ => ScalarValue::UInt64(Some(id)),
    }
}

impl AggSpec {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn try_new(
        input_schema: &Schema,
        mode: AggregateMode,
        group_by: &[PhysExpr],
        grouping_sets: &[Vec<bool>],
        aggregates: &[AggExpr],
        aggregate_input_schema: &Schema,
        schema: SchemaRef,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
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
                let mut inputs = func.expressions();
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
            aggs.push(AggItem {
                func,
                inputs,
                input_types,
                filter,
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

fn field_names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// The operator input must have the types the expressions were compiled for.
fn check_same_types(input: &Schema, expected: &Schema, mode: AggregateMode) -> Result<()> {
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

impl Operator for HashAggregate {
    fn name(&self) -> &'static str {
        "HashAggregate"
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.spec.schema)
    }

    fn output_partitions(&self) -> usize {
        self.input.output_partitions()
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        check_partition(self, partition)?;
        let mut input = self.input.execute(partition, ctx)?;
        let spec = Arc::clone(&self.spec);
        let batch_size = ctx.config.batch_size.max(1);
        let ctx = Arc::clone(ctx);
        let stream = async_stream::try_stream! {
            let mut agg = Aggregator::try_new(spec)?;
            while let Some(batch) = input.next().await {
                agg.push(&batch?)?;
                ctx.report_memory(agg.size());
            }
            for out in agg.finish(batch_size)? {
                yield out;
            }
        };
        Ok(boxed(self.schema(), stream))
    }
}

/// The aggregation state of one partition.
pub(crate) struct Aggregator {
    spec: Arc<AggSpec>,
    groups: Box<dyn GroupValues>,
    accs: Vec<Box<dyn GroupsAccumulator>>,
    /// The number of groups the accumulators were last told about.
    acc_groups: usize,
    group_ids: Vec<usize>,
}

fn create_group_accumulator(
    func: &Arc<AggregateFunctionExpr>,
) -> Result<Box<dyn GroupsAccumulator>> {
    if func.groups_accumulator_supported() {
        Ok(func.create_groups_accumulator()?)
    } else {
        let f = Arc::clone(func);
        Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
            f.create_accumulator()
        })))
    }
}

impl Aggregator {
    /// Bytes of the group keys and accumulator states (approximately).
    pub(crate) fn size(&self) -> usize {
        self.groups.size() + self.accs.iter().map(|a| a.size()).sum::<usize>()
    }

    pub(crate) fn try_new(spec: Arc<AggSpec>) -> Result<Self> {
        let groups = new_group_values(&spec.key_types)?;
        let accs = spec
            .aggs
            .iter()
            .map(|a| create_group_accumulator(&a.func))
            .collect::<Result<Vec<_>>>()?;
        Ok(Aggregator {
            spec,
            groups,
            accs,
            acc_groups: 0,
            group_ids: Vec::new(),
        })
    }

    /// Folds one input batch into the groups.
    pub(crate) fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let spec = Arc::clone(&self.spec);
        let keys = crate::expr::evaluate_all(&spec.group_exprs, batch)?;
        let mut inputs = Vec::with_capacity(spec.aggs.len());
        for item in &spec.aggs {
            let values = crate::expr::evaluate_all(&item.inputs, batch)?;
            let filter = match &item.filter {
                Some(f) if spec.mode != AggregateMode::Final => {
                    Some(evaluate_filter(f.as_ref(), batch)?)
                }
                _ => None,
            };
            inputs.push((values, filter));
        }
        if spec.sets.is_empty() {
            return self.accumulate(&keys, n, &inputs);
        }
        // Every row once per grouping set.
        let nulls: Vec<ArrayRef> = keys
            .iter()
            .map(|k| new_null_array(k.data_type(), n))
            .collect();
        for set in &spec.sets {
            let mut set_keys: Vec<ArrayRef> = keys
                .iter()
                .zip(&nulls)
                .zip(&set.null_keys)
                .map(|((k, null), &is_null)| Arc::clone(if is_null { null } else { k }))
                .collect();
            set_keys.push(set.id.to_array_of_size(n)?);
            self.accumulate(&set_keys, n, &inputs)?;
        }
        Ok(())
    }

    /// Folds `n` rows with group key columns `keys` and aggregate inputs
    /// `inputs` (values and FILTER mask per aggregate) into the groups.
    fn accumulate(
        &mut self,
        keys: &[ArrayRef],
        n: usize,
        inputs: &[(Vec<ArrayRef>, Option<BooleanArray>)],
    ) -> Result<()> {
        self.group_ids.clear();
        self.groups.intern(keys, n, &mut self.group_ids)?;
        let total = self.groups.len();
        let merge = self.spec.mode == AggregateMode::Final;
        for ((values, filter), acc) in inputs.iter().zip(self.accs.iter_mut()) {
            if merge {
                acc.merge_batch(values, &self.group_ids, total)?;
            } else {
                acc.update_batch(values, &self.group_ids, filter.as_ref(), total)?;
            }
        }
        self.acc_groups = total;
        Ok(())
    }

    /// The aggregate columns of an ungrouped aggregate that saw no rows:
    /// one row (`count` 0, `sum` NULL).
    ///
    /// Final values come from fresh accumulators. Partial states must be
    /// those of the groups accumulators that merge them (a plain `avg`
    /// accumulator's empty state has count 0, not NULL, which a groups
    /// accumulator would merge as a seen group), so the group is created
    /// with one filtered-out row: priming with an empty batch would not do
    /// either, as some accumulators mark all groups seen when the values
    /// have no NULLs.
    fn empty_group_columns(&mut self) -> Result<Vec<ArrayRef>> {
        let mut columns = vec![];
        let skip = BooleanArray::from(vec![false]);
        for (item, acc) in self.spec.aggs.iter().zip(self.accs.iter_mut()) {
            match self.spec.mode {
                AggregateMode::Partial => {
                    let values: Vec<ArrayRef> = item
                        .input_types
                        .iter()
                        .map(|t| new_null_array(t, 1))
                        .collect();
                    acc.update_batch(&values, &[0], Some(&skip), 1)?;
                    columns.extend(acc.state(EmitTo::All)?);
                }
                AggregateMode::Final | AggregateMode::Single => {
                    let mut acc = item.func.create_accumulator()?;
                    columns.push(acc.evaluate()?.to_array_of_size(1)?)
                }
            }
        }
        Ok(columns)
    }

    /// With grouping sets and no input rows, the sets that group on no key
    /// still have their group (a grand total: `count` 0, `sum` NULL), as in
    /// DataFusion. Partial aggregates give it for every partition without
    /// rows; `Final` merges those into one row per such set.
    fn add_empty_grouping_sets(&mut self) -> Result<()> {
        let spec = Arc::clone(&self.spec);
        let g = spec.key_types.len().saturating_sub(1);
        let skip = BooleanArray::from(vec![false]);
        for set in spec.sets.iter().filter(|s| s.null_keys.iter().all(|&n| n)) {
            let mut keys: Vec<ArrayRef> = spec.key_types[..g]
                .iter()
                .map(|t| new_null_array(t, 1))
                .collect();
            keys.push(set.id.to_array_of_size(1)?);
            // One row that every aggregate filters out (see
            // `empty_group_columns` for why not an empty batch).
            let inputs: Vec<(Vec<ArrayRef>, Option<BooleanArray>)> = spec
                .aggs
                .iter()
                .map(|item| {
                    let values = item
                        .input_types
                        .iter()
                        .map(|t| new_null_array(t, 1))
                        .collect();
                    (values, Some(skip.clone()))
                })
                .collect();
            self.accumulate(&keys, 1, &inputs)?;
        }
        Ok(())
    }

    /// Emits all groups in batches of at most `batch_size` rows.
    pub(crate) fn finish(&mut self, batch_size: usize) -> Result<Vec<RecordBatch>> {
        if self.groups.len() == 0 {
            self.add_empty_grouping_sets()?;
        }
        let n = self.groups.len();
        if n == 0 {
            return Ok(vec![]);
        }
        let mut columns = self.groups.emit()?;
        if self.acc_groups == 0 && columns.is_empty() {
            // Ungrouped, no input rows.
            columns = self.empty_group_columns()?;
        } else if self.acc_groups != n {
            return Err(DataflowError::Internal(format!(
                "aggregate accumulators know {} of {n} groups",
                self.acc_groups
            )));
        } else {
            for acc in self.accs.iter_mut() {
                match self.spec.mode {
                    AggregateMode::Partial => columns.extend(acc.state(EmitTo::All)?),
                    AggregateMode::Final | AggregateMode::Single => {
                        columns.push(acc.evaluate(EmitTo::All)?)
                    }
                }
            }
        }
        let schema = &self.spec.schema;
        if columns.len() != schema.fields().len() {
            return Err(DataflowError::Internal(format!(
                "aggregate ({:?}) produced {} columns for an output schema of {} [{}]",
                self.spec.mode,
                columns.len(),
                schema.fields().len(),
                field_names(schema.fields().iter().map(|f| f.name())),
            )));
        }
        // Rebind to the planned schema; types only differ in representation
        // (e.g. dictionary keys come back hydrated, list item fields).
        let columns = columns
            .into_iter()
            .zip(schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c)
                } else {
                    Ok(arrow::compute::cast(&c, f.data_type())?)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        let batch = RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)?;
        let batch_size = batch_size.max(1);
        Ok((0..n)
            .step_by(batch_size)
            .map(|off| batch.slice(off, batch_size.min(n - off)))
            .collect())
    }
}

/// Evaluates a FILTER clause into a mask without NULLs (NULL excludes).
fn evaluate_filter(filter: &dyn PhysicalExpr, batch: &RecordBatch) -> Result<BooleanArray> {
    let n = batch.num_rows();
    let mask = filter.evaluate(batch)?.into_array(n)?;
    match mask.as_boolean_opt() {
        Some(m) if m.null_count() > 0 => Ok(prep_null_mask_filter(m)),
        Some(m) => Ok(m.clone()),
        None if mask.data_type() == &DataType::Null => Ok(BooleanArray::from(vec![false; n])),
        None => Err(DataflowError::Internal(format!(
            "aggregate filter evaluated to {}",
            mask.data_type()
        ))),
    }
}

// ---------------------------------------------------------------------------
// Group keys -> group indices

/// Maps key rows to dense group indices `0..len()`, in order of first
/// appearance.
pub(crate) trait GroupValues: Send {
    /// Appends the group index of each of the `num_rows` rows of `keys`.
    fn intern(&mut self, keys: &[ArrayRef], num_rows: usize, out: &mut Vec<usize>) -> Result<()>;
    fn len(&self) -> usize;
    /// The key columns of all groups, by group index.
    fn emit(&mut self) -> Result<Vec<ArrayRef>>;
    /// Bytes held (approximately).
    fn size(&self) -> usize;
}

fn new_group_values(key_types: &[DataType]) -> Result<Box<dyn GroupValues>> {
    if key_types.is_empty() {
        return Ok(Box::new(NoGroups));
    }
    if let [dt] = key_types {
        macro_rules! prim {
            ($t:ty) => {
                return Ok(Box::new(PrimitiveGroups::<$t>::new(dt.clone())))
            };
        }
        match dt {
            DataType::Int8 => prim!(Int8Type),
            DataType::Int16 => prim!(Int16Type),
            DataType::Int32 => prim!(Int32Type),
            DataType::Int64 => prim!(Int64Type),
            DataType::UInt8 => prim!(UInt8Type),
            DataType::UInt16 => prim!(UInt16Type),
            DataType::UInt32 => prim!(UInt32Type),
            DataType::UInt64 => prim!(UInt64Type),
            DataType::Date32 => prim!(Date32Type),
            DataType::Date64 => prim!(Date64Type),
            DataType::Decimal128(_, _) => prim!(Decimal128Type),
            _ => {}
        }
    }
    Ok(Box::new(RowGroups::try_new(key_types)?))
}

/// No group keys: every row belongs to the one group, which always exists.
struct NoGroups;

impl GroupValues for NoGroups {
    fn intern(&mut self, _keys: &[ArrayRef], num_rows: usize, out: &mut Vec<usize>) -> Result<()> {
        out.resize(out.len() + num_rows, 0);
        Ok(())
    }
    fn len(&self) -> usize {
        1
    }
    fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(vec![])
    }
    fn size(&self) -> usize {
        0
    }
}

/// One key of a primitive type with a hashable native value.
struct PrimitiveGroups<T: ArrowPrimitiveType> {
    data_type: DataType,
    map: HashMap<T::Native, usize, DefaultHashBuilder>,
    values: Vec<T::Native>,
    null_group: Option<usize>,
}

impl<T: ArrowPrimitiveType> PrimitiveGroups<T>
where
    T::Native: Hash + Eq,
{
    fn new(data_type: DataType) -> Self {
        PrimitiveGroups {
            data_type,
            map: HashMap::with_hasher(DefaultHashBuilder::default()),
            values: Vec::new(),
            null_group: None,
        }
    }

    #[inline]
    fn id_of(&mut self, v: T::Native) -> usize {
        match self.map.entry(v) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                let id = self.values.len();
                self.values.push(v);
                e.insert(id);
                id
            }
        }
    }
}

impl<T: ArrowPrimitiveType> GroupValues for PrimitiveGroups<T>
where
    T::Native: Hash + Eq,
{
    fn intern(&mut self, keys: &[ArrayRef], num_rows: usize, out: &mut Vec<usize>) -> Result<()> {
        let arr = keys
            .first()
            .and_then(|k| k.as_primitive_opt::<T>())
            .ok_or_else(|| {
                DataflowError::Internal(format!(
                    "group key is not of type {}: {:?}",
                    self.data_type,
                    keys.first().map(|k| k.data_type())
                ))
            })?;
        debug_assert_eq!(arr.len(), num_rows);
        out.reserve(arr.len());
        if arr.null_count() == 0 {
            for &v in arr.values().iter() {
                let id = self.id_of(v);
                out.push(id);
            }
        } else {
            for (i, &v) in arr.values().iter().enumerate() {
                let id = if arr.is_null(i) {
                    match self.null_group {
                        Some(id) => id,
                        None => {
                            // The slot's value is a placeholder; the group
                            // is emitted as NULL.
                            let id = self.values.len();
                            self.values.push(T::Native::default());
                            self.null_group = Some(id);
                            id
                        }
                    }
                } else {
                    self.id_of(v)
                };
                out.push(id);
            }
        }
        Ok(())
    }

    fn size(&self) -> usize {
        self.map.capacity() * (std::mem::size_of::<T::Native>() + std::mem::size_of::<usize>() + 1)
            + self.values.capacity() * std::mem::size_of::<T::Native>()
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        let values = std::mem::take(&mut self.values);
        let n = values.len();
        let nulls = self.null_group.take().map(|g| {
            let mut valid = vec![true; n];
            valid[g] = false;
            NullBuffer::from(valid)
        });
        self.map.clear();
        let arr =
            PrimitiveArray::<T>::new(values.into(), nulls).with_data_type(self.data_type.clone());
        Ok(vec![Arc::new(arr)])
    }
}

/// Any list of keys, encoded as arrow rows: maps each distinct key row to a
/// dense index (also used by the multiset set operations).
pub(crate) struct RowGroups {
    converter: RowConverter,
    /// The encoded key row of each group, by group index.
    rows: Rows,
    /// (hash of the row bytes, group index)
    table: HashTable<(u64, usize)>,
    hasher: DefaultHashBuilder,
    /// The encoded rows of the current batch.
    scratch: Rows,
}

impl RowGroups {
    pub(crate) fn try_new(key_types: &[DataType]) -> Result<Self> {
        let converter = RowConverter::new(
            key_types
                .iter()
                .map(|t| SortField::new(t.clone()))
                .collect(),
        )?;
        let rows = converter.empty_rows(0, 0);
        let scratch = converter.empty_rows(0, 0);
        Ok(RowGroups {
            converter,
            rows,
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            scratch,
        })
    }

    /// The index of each row of `keys` among the rows seen so far (`None`
    /// for a row never interned), without adding any.
    pub(crate) fn lookup(&mut self, keys: &[ArrayRef], out: &mut Vec<Option<usize>>) -> Result<()> {
        let RowGroups {
            converter,
            rows,
            table,
            hasher,
            scratch,
        } = self;
        scratch.clear();
        converter.append(scratch, keys)?;
        out.reserve(scratch.num_rows());
        for row in scratch.iter() {
            let bytes = row.data();
            let h = hasher.hash_one(bytes);
            out.push(
                table
                    .find(h, |&(gh, gid)| gh == h && rows.row(gid).data() == bytes)
                    .map(|&(_, gid)| gid),
            );
        }
        Ok(())
    }
}

impl GroupValues for RowGroups {
    fn intern(&mut self, keys: &[ArrayRef], num_rows: usize, out: &mut Vec<usize>) -> Result<()> {
        let RowGroups {
            converter,
            rows,
            table,
            hasher,
            scratch,
        } = self;
        scratch.clear();
        converter.append(scratch, keys)?;
        debug_assert_eq!(scratch.num_rows(), num_rows);
        out.reserve(scratch.num_rows());
        for row in scratch.iter() {
            let bytes = row.data();
            let h = hasher.hash_one(bytes);
            let found = table
                .find(h, |&(gh, gid)| gh == h && rows.row(gid).data() == bytes)
                .map(|&(_, gid)| gid);
            let id = match found {
                Some(id) => id,
                None => {
                    let id = rows.num_rows();
                    rows.push(row);
                    table.insert_unique(h, (h, id), |&(gh, _)| gh);
                    id
                }
            };
            out.push(id);
        }
        Ok(())
    }

    fn size(&self) -> usize {
        self.rows.size()
            + self.scratch.size()
            + self.table.capacity() * std::mem::size_of::<(u64, usize)>()
    }

    fn len(&self) -> usize {
        self.rows.num_rows()
    }

    fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        let columns = self.converter.convert_rows(self.rows.iter())?;
        self.rows.clear();
        self.table.clear();
        Ok(columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int32Array, Int64Array, StringArray};
    use arrow::datatypes::Field;
    use datafusion_common::ScalarValue;

    use crate::expr::BinaryOp;

    fn registry() -> FunctionRegistry {
        FunctionRegistry::with_defaults()
    }

    fn agg(func: &str, args: Vec<PhysExpr>, alias: &str) -> AggExpr {
        AggExpr {
            func: func.into(),
            args,
            distinct: false,
            filter: None,
            order_by: vec![],
            alias: alias.into(),
        }
    }

    fn col(i: usize, name: &str) -> PhysExpr {
        PhysExpr::col(i, name)
    }

    /// Input: k1 Utf8, k2 Int32, v Int64, f Float64
    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k1", DataType::Utf8, true),
            Field::new("k2", DataType::Int32, true),
            Field::new("v", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
        ]))
    }

    fn batch(k1: Vec<Option<&str>>, k2: Vec<Option<i32>>, v: Vec<Option<i64>>) -> RecordBatch {
        let f: Vec<Option<f64>> = v.iter().map(|x| x.map(|x| x as f64 / 2.0)).collect();
        RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(StringArray::from(k1)),
                Arc::new(Int32Array::from(k2)),
                Arc::new(Int64Array::from(v)),
                Arc::new(Float64Array::from(f)),
            ],
        )
        .unwrap()
    }

    fn batch1() -> RecordBatch {
        batch(
            vec![
                Some("a"),
                Some("b"),
                None,
                Some("a"),
                Some("b"),
                None,
                Some("a"),
            ],
            vec![Some(1), Some(1), Some(2), Some(1), None, Some(2), None],
            vec![Some(10), None, Some(5), Some(20), Some(7), None, Some(1)],
        )
    }

    fn batch2() -> RecordBatch {
        batch(
            vec![Some("b"), Some("a"), Some("c"), None],
            vec![None, Some(1), Some(3), Some(2)],
            vec![Some(3), Some(30), None, Some(1)],
        )
    }

    fn standard_aggs() -> Vec<AggExpr> {
        vec![
            agg("count", vec![col(2, "v")], "cnt"),
            agg(
                "count",
                vec![PhysExpr::lit(ScalarValue::Int64(Some(1)))],
                "cnt_star",
            ),
            agg("sum", vec![col(2, "v")], "s"),
            agg("min", vec![col(2, "v")], "mn"),
            agg("max", vec![col(0, "k1")], "mx"),
            agg("avg", vec![col(3, "f")], "av"),
        ]
    }

    /// The schema the planner would compute.
    fn out_schema(
        mode: AggregateMode,
        group_by: &[PhysExpr],
        aggs: &[AggExpr],
        input: &Schema,
    ) -> SchemaRef {
        let reg = registry();
        let mut fields: Vec<Field> = group_by
            .iter()
            .map(|g| {
                let e = g.compile(input, &reg).unwrap();
                Field::new(g.to_string(), e.data_type(input).unwrap(), true)
            })
            .collect();
        for a in aggs {
            let l = a.compile(input, &reg).unwrap();
            match mode {
                AggregateMode::Partial => fields.extend(
                    l.aggregate
                        .state_fields()
                        .unwrap()
                        .iter()
                        .map(|f| f.as_ref().clone()),
                ),
                _ => fields.push(l.aggregate.field().as_ref().clone()),
            }
        }
        Arc::new(Schema::new(fields))
    }

    fn spec(
        mode: AggregateMode,
        group_by: &[PhysExpr],
        aggs: &[AggExpr],
        operator_input: &Schema,
    ) -> Arc<AggSpec> {
        let input = input_schema();
        let schema = out_schema(mode, group_by, aggs, &input);
        Arc::new(
            AggSpec::try_new(
                operator_input,
                mode,
                group_by,
                &[],
                aggs,
                &input,
                schema,
                &registry(),
            )
            .unwrap(),
        )
    }

    fn run(spec: &Arc<AggSpec>, batches: &[RecordBatch], batch_size: usize) -> Vec<RecordBatch> {
        let mut a = Aggregator::try_new(Arc::clone(spec)).unwrap();
        for b in batches {
            a.push(b).unwrap();
        }
        a.finish(batch_size).unwrap()
    }

    fn run_single(group_by: &[PhysExpr], aggs: &[AggExpr], batches: &[RecordBatch]) -> Vec<String> {
        let s = spec(AggregateMode::Single, group_by, aggs, &input_schema());
        rows_of(&run(&s, batches, 3))
    }

    /// Partial over each input separately, then one Final over all partial
    /// outputs.
    fn run_two_phase(
        group_by: &[PhysExpr],
        aggs: &[AggExpr],
        inputs: &[Vec<RecordBatch>],
    ) -> Vec<String> {
        let partial = spec(AggregateMode::Partial, group_by, aggs, &input_schema());
        let mut partial_out = vec![];
        for input in inputs {
            partial_out.extend(run(&partial, input, 2));
        }
        let final_spec = spec(AggregateMode::Final, group_by, aggs, &partial.schema);
        rows_of(&run(&final_spec, &partial_out, 1024))
    }

    /// Rows rendered as strings, sorted.
    fn rows_of(batches: &[RecordBatch]) -> Vec<String> {
        let mut out = vec![];
        for b in batches {
            for r in 0..b.num_rows() {
                let cells: Vec<String> = b
                    .columns()
                    .iter()
                    .map(|c| {
                        let v = ScalarValue::try_from_array(c, r).unwrap();
                        if v.is_null() {
                            "NULL".to_string()
                        } else {
                            v.to_string()
                        }
                    })
                    .collect();
                out.push(cells.join("|"));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn grouped_basic_aggregates_with_nulls() {
        let g = [col(0, "k1")];
        let got = run_single(&g, &standard_aggs(), &[batch1(), batch2()]);
        // a: v 10,20,1,30 ; b: v NULL,7,3 ; c: NULL ; NULL: 5,NULL,1
        assert_eq!(
            got,
            vec![
                "NULL|2|3|6|1|NULL|1.5",
                "a|4|4|61|1|a|7.625",
                "b|2|3|10|3|b|2.5",
                "c|0|1|NULL|NULL|c|NULL",
            ]
        );
    }

    #[test]
    fn output_types_match_aggregate_fields() {
        let g = [col(0, "k1")];
        let s = spec(AggregateMode::Single, &g, &standard_aggs(), &input_schema());
        let out = run(&s, &[batch1()], 100);
        assert_eq!(out[0].schema(), s.schema);
        assert_eq!(out[0].column(1).data_type(), &DataType::Int64);
        assert_eq!(out[0].column(6).data_type(), &DataType::Float64);
    }

    #[test]
    fn multiple_keys_with_null_keys() {
        let g = [col(0, "k1"), col(1, "k2")];
        let aggs = [agg("sum", vec![col(2, "v")], "s")];
        let got = run_single(&g, &aggs, &[batch1(), batch2()]);
        assert_eq!(
            got,
            vec![
                "NULL|2|6",
                "a|1|60",
                "a|NULL|1",
                "b|1|NULL",
                "b|NULL|10",
                "c|3|NULL",
            ]
        );
    }

    #[test]
    fn single_integer_key_with_nulls() {
        let g = [col(1, "k2")];
        let aggs = [
            agg("count", vec![col(2, "v")], "c"),
            agg("sum", vec![col(2, "v")], "s"),
        ];
        let got = run_single(&g, &aggs, &[batch1(), batch2()]);
        assert_eq!(got, vec!["1|3|60", "2|2|6", "3|0|NULL", "NULL|3|11"]);
        // Same through two phases.
        let two = run_two_phase(&g, &aggs, &[vec![batch1()], vec![batch2()]]);
        assert_eq!(two, got);
    }

    #[test]
    fn empty_input_with_and_without_groups() {
        let aggs = standard_aggs();
        // Grouped: no rows at all.
        assert!(run_single(&[col(0, "k1")], &aggs, &[]).is_empty());
        assert!(run_two_phase(&[col(0, "k1")], &aggs, &[vec![], vec![]]).is_empty());
        // Ungrouped: one row.
        let empty = batch(vec![], vec![], vec![]);
        let expected = vec!["0|0|NULL|NULL|NULL|NULL"];
        assert_eq!(run_single(&[], &aggs, &[]), expected);
        assert_eq!(
            run_single(&[], &aggs, std::slice::from_ref(&empty)),
            expected
        );
        assert_eq!(run_two_phase(&[], &aggs, &[vec![], vec![empty]]), expected);
        // Partial without groups emits one row of states.
        let partial = spec(AggregateMode::Partial, &[], &aggs, &input_schema());
        let out = run(&partial, &[], 10);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].num_rows(), 1);
        assert_eq!(out[0].schema(), partial.schema);
        // Final over no partial rows at all.
        let final_spec = spec(AggregateMode::Final, &[], &aggs, &partial.schema);
        assert_eq!(rows_of(&run(&final_spec, &[], 10)), expected);
    }

    #[test]
    fn ungrouped_aggregates() {
        let got = run_single(&[], &standard_aggs(), &[batch1(), batch2()]);
        assert_eq!(got, vec!["8|11|77|1|c|4.8125"]);
        let two = run_two_phase(&[], &standard_aggs(), &[vec![batch1()], vec![batch2()]]);
        assert_eq!(two, got);
    }

    #[test]
    fn partial_final_round_trip_equals_single() {
        let mut aggs = standard_aggs();
        let mut d = agg("count", vec![col(2, "v")], "dc");
        d.distinct = true;
        aggs.push(d);
        let mut ds = agg("count", vec![col(0, "k1")], "dcs");
        ds.distinct = true;
        aggs.push(ds);
        for g in [
            vec![],
            vec![col(0, "k1")],
            vec![col(1, "k2")],
            vec![col(0, "k1"), col(1, "k2")],
        ] {
            let single = run_single(&g, &aggs, &[batch1(), batch2(), batch1()]);
            let two = run_two_phase(&g, &aggs, &[vec![batch1(), batch2()], vec![batch1()]]);
            assert_eq!(single, two, "group by {g:?}");
        }
    }

    #[test]
    fn count_distinct() {
        let mut d = agg("count", vec![col(2, "v")], "dc");
        d.distinct = true;
        let mut ds = agg("count", vec![col(0, "k1")], "dcs");
        ds.distinct = true;
        let mut sd = agg("sum", vec![col(2, "v")], "sd");
        sd.distinct = true;
        let aggs = [d, ds, sd];
        // Ungrouped over the data twice: v = {10,5,20,7,1,3,30}, k1 = {a,b,c}.
        let got = run_single(&[], &aggs, &[batch1(), batch2(), batch1()]);
        assert_eq!(got, vec!["7|3|76"]);
        let two = run_two_phase(&[], &aggs, &[vec![batch1()], vec![batch2(), batch1()]]);
        assert_eq!(two, got);
        // Grouped by k2.
        let got = run_single(&[col(1, "k2")], &aggs, &[batch1(), batch2(), batch1()]);
        assert_eq!(
            got,
            vec!["1|3|2|60", "2|2|0|6", "3|0|1|NULL", "NULL|3|2|11"]
        );
        let two = run_two_phase(
            &[col(1, "k2")],
            &aggs,
            &[vec![batch1()], vec![batch2(), batch1()]],
        );
        assert_eq!(two, got);
    }

    #[test]
    fn filter_clause() {
        let pred = PhysExpr::Binary {
            left: Box::new(col(2, "v")),
            op: BinaryOp::Gt,
            right: Box::new(PhysExpr::lit(ScalarValue::Int64(Some(5)))),
        };
        let mut c = agg(
            "count",
            vec![PhysExpr::lit(ScalarValue::Int64(Some(1)))],
            "c",
        );
        c.filter = Some(pred.clone());
        let mut s = agg("sum", vec![col(2, "v")], "s");
        s.filter = Some(pred.clone());
        let mut mx = agg("max", vec![col(0, "k1")], "mx");
        mx.filter = Some(pred);
        let aggs = [c, s, mx, agg("count", vec![col(2, "v")], "all")];
        // v > 5 (NULL v excluded): a: 10,20,30 ; b: 7 ; NULL: none ; c: none
        let got = run_single(&[col(0, "k1")], &aggs, &[batch1(), batch2()]);
        assert_eq!(
            got,
            vec![
                "NULL|0|NULL|NULL|2",
                "a|3|60|a|4",
                "b|1|7|b|2",
                "c|0|NULL|NULL|0",
            ]
        );
        let two = run_two_phase(&[col(0, "k1")], &aggs, &[vec![batch1()], vec![batch2()]]);
        assert_eq!(two, got);
        let got = run_single(&[], &aggs, &[batch1(), batch2()]);
        assert_eq!(got, vec!["4|67|b|8"]);
    }

    #[test]
    fn order_sensitive_aggregates() {
        use crate::expr::SortExpr;
        let desc = |e: PhysExpr| SortExpr {
            expr: e,
            asc: false,
            nulls_first: false,
        };
        let mut fv = agg("first_value", vec![col(2, "v")], "fv");
        fv.order_by = vec![desc(col(2, "v"))];
        let mut fs = agg("first_value", vec![col(0, "k1")], "fs");
        fs.order_by = vec![desc(col(2, "v"))];
        let mut aa = agg("array_agg", vec![col(2, "v")], "aa");
        aa.order_by = vec![desc(col(2, "v"))];
        let aggs = [fv, fs, agg("max", vec![col(2, "v")], "mx"), aa];
        let g = [col(1, "k2")];
        let got = run_single(&g, &aggs, &[batch1(), batch2()]);
        // k2=1: v 10,NULL,20,30 (k1 a,b,a,a); k2=2: 5,NULL,1; 3: NULL; NULL: 7,1,3
        // (list display shows NULL elements as empty)
        assert_eq!(
            got,
            vec![
                "1|30|a|30|[30, 20, 10, ]",
                "2|5|NULL|5|[5, 1, ]",
                "3|NULL|c|NULL|[]",
                "NULL|7|b|7|[7, 3, 1]",
            ]
        );
        let two = run_two_phase(&g, &aggs, &[vec![batch1()], vec![batch2()]]);
        assert_eq!(two, got);
    }

    #[test]
    fn output_is_sliced_to_batch_size() {
        let n = 10_000i64;
        let schema = input_schema();
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("k{}", i % 1000)),
                )),
                Arc::new(Int32Array::from_iter_values(
                    (0..n).map(|i| (i % 777) as i32),
                )),
                Arc::new(Int64Array::from_iter_values(0..n)),
                Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64))),
            ],
        )
        .unwrap();
        // k1 = i % 1000, k2 = i % 777: the pair is unique per row (lcm > n).
        for (g, expected) in [
            (vec![col(0, "k1")], 1000),
            (vec![col(1, "k2")], 777),
            (vec![col(0, "k1"), col(1, "k2")], n as usize),
        ] {
            let s = spec(
                AggregateMode::Single,
                &g,
                &[agg("sum", vec![col(2, "v")], "s")],
                &input_schema(),
            );
            let out = run(&s, &[b.clone(), b.slice(100, 500)], 256);
            assert!(out.iter().all(|b| b.num_rows() <= 256));
            let total: usize = out.iter().map(|b| b.num_rows()).sum();
            assert_eq!(total, expected, "group by {g:?}");
            let sum: i64 = out
                .iter()
                .map(|b| {
                    b.column(g.len())
                        .as_primitive::<Int64Type>()
                        .values()
                        .iter()
                        .sum::<i64>()
                })
                .sum();
            assert_eq!(sum, (0..n).sum::<i64>() + (100..600).sum::<i64>());
        }
    }

    // ---- grouping sets ----------------------------------------------------

    fn sets_schema(
        mode: AggregateMode,
        group_by: &[PhysExpr],
        sets: &[Vec<bool>],
        aggs: &[AggExpr],
    ) -> SchemaRef {
        let base = out_schema(mode, group_by, aggs, &input_schema());
        let (_, id_type) = grouping_ids(sets).unwrap();
        let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.insert(group_by.len(), Field::new("__grouping_id", id_type, false));
        Arc::new(Schema::new(fields))
    }

    fn sets_spec(
        mode: AggregateMode,
        group_by: &[PhysExpr],
        sets: &[Vec<bool>],
        aggs: &[AggExpr],
        operator_input: &Schema,
    ) -> Arc<AggSpec> {
        Arc::new(
            AggSpec::try_new(
                operator_input,
                mode,
                group_by,
                sets,
                aggs,
                &input_schema(),
                sets_schema(mode, group_by, sets, aggs),
                &registry(),
            )
            .unwrap(),
        )
    }

    /// Single, and Partial per input then Final; both must agree.
    fn run_sets(
        group_by: &[PhysExpr],
        sets: &[Vec<bool>],
        aggs: &[AggExpr],
        inputs: &[Vec<RecordBatch>],
    ) -> Vec<String> {
        let single = sets_spec(AggregateMode::Single, group_by, sets, aggs, &input_schema());
        let all: Vec<RecordBatch> = inputs.iter().flatten().cloned().collect();
        let out = run(&single, &all, 3);
        assert!(out.iter().all(|b| b.schema() == single.schema));
        let got = rows_of(&out);
        let partial = sets_spec(
            AggregateMode::Partial,
            group_by,
            sets,
            aggs,
            &input_schema(),
        );
        let mut partial_out = vec![];
        for input in inputs {
            partial_out.extend(run(&partial, input, 2));
        }
        let final_spec = sets_spec(AggregateMode::Final, group_by, sets, aggs, &partial.schema);
        assert_eq!(rows_of(&run(&final_spec, &partial_out, 1024)), got);
        got
    }

    #[test]
    fn grouping_id_values_and_types() {
        let (f, t) = (false, true);
        // ROLLUP(a, b)
        let (ids, ty) = grouping_ids(&[vec![f, f], vec![f, t], vec![t, t]]).unwrap();
        assert_eq!((ids, ty), (vec![0, 1, 3], DataType::UInt8));
        // The first key is the most significant bit.
        let (ids, _) = grouping_ids(&[vec![t, f], vec![f, t]]).unwrap();
        assert_eq!(ids, vec![2, 1]);
        // Repeated sets get their occurrence number above the key bits.
        let (ids, ty) = grouping_ids(&[vec![f, t], vec![f, t], vec![t, t], vec![f, t]]).unwrap();
        assert_eq!((ids, ty), (vec![1, 5, 3, 9], DataType::UInt8));
        // 7 keys and an ordinal of 2 need 9 bits.
        let (_, ty) = grouping_ids(&[vec![f; 7], vec![f; 7], vec![f; 7]]).unwrap();
        assert_eq!(ty, DataType::UInt16);
        assert_eq!(grouping_ids(&[vec![f; 8]]).unwrap().1, DataType::UInt8);
        assert_eq!(grouping_ids(&[vec![f; 9]]).unwrap().1, DataType::UInt16);
        assert_eq!(grouping_ids(&[vec![f; 17]]).unwrap().1, DataType::UInt32);
        assert_eq!(grouping_ids(&[vec![f; 33]]).unwrap().1, DataType::UInt64);
        assert_eq!(grouping_ids(&[vec![t; 64]]).unwrap().0, vec![u64::MAX]);
        assert!(grouping_ids(&[vec![f; 64], vec![f; 64]]).is_err());
        assert!(grouping_ids(&[vec![f; 2], vec![f; 3]]).is_err());
    }

    #[test]
    fn rollup_two_keys() {
        let (f, t) = (false, true);
        let g = [col(0, "k1"), col(1, "k2")];
        let sets = [vec![f, f], vec![f, t], vec![t, t]];
        let aggs = [agg("sum", vec![col(2, "v")], "s")];
        let got = run_sets(&g, &sets, &aggs, &[vec![batch1()], vec![batch2()]]);
        // k1|k2|__grouping_id|sum: a NULL key (id 0) differs from a key
        // that is not grouped (id 1, 3).
        assert_eq!(
            got,
            vec![
                "NULL|2|0|6",
                "NULL|NULL|1|6",
                "NULL|NULL|3|77",
                "a|1|0|60",
                "a|NULL|0|1",
                "a|NULL|1|61",
                "b|1|0|NULL",
                "b|NULL|0|10",
                "b|NULL|1|10",
                "c|3|0|NULL",
                "c|NULL|1|NULL",
            ]
        );
    }

    #[test]
    fn grouping_sets_with_aggregate_states_and_filter() {
        let (f, t) = (false, true);
        // GROUPING SETS ((k2), (k1), (k2)) with avg, count(distinct) and
        // a FILTER clause.
        let g = [col(0, "k1"), col(1, "k2")];
        let sets = [vec![t, f], vec![f, t], vec![t, f]];
        let mut dc = agg("count", vec![col(0, "k1")], "dc");
        dc.distinct = true;
        let mut c = agg(
            "count",
            vec![PhysExpr::lit(ScalarValue::Int64(Some(1)))],
            "c",
        );
        c.filter = Some(PhysExpr::Binary {
            left: Box::new(col(2, "v")),
            op: BinaryOp::Gt,
            right: Box::new(PhysExpr::lit(ScalarValue::Int64(Some(5)))),
        });
        let aggs = [agg("avg", vec![col(3, "f")], "av"), dc, c];
        let got = run_sets(
            &g,
            &sets,
            &aggs,
            &[vec![batch1(), batch2()], vec![batch1()]],
        );
        // Per k2 (twice: ids 2 and 6) and per k1 (id 1).
        let by_k2 = [
            "NULL|1|{}|9|2|5",
            "NULL|2|{}|1.8333333333333333|0|0",
            "NULL|3|{}|NULL|1|0",
            "NULL|NULL|{}|1.9|2|2",
        ];
        let mut expected: Vec<String> = by_k2
            .iter()
            .flat_map(|r| [r.replace("{}", "2"), r.replace("{}", "6")])
            .collect();
        expected.extend(
            [
                "NULL|NULL|1|1.8333333333333333|0|0",
                "a|NULL|1|6.571428571428571|1|5",
                "b|NULL|1|2.8333333333333335|1|2",
                "c|NULL|1|NULL|1|0",
            ]
            .map(String::from),
        );
        expected.sort();
        // (f = v / 2; batch1 counts twice)
        assert_eq!(got, expected);
    }

    #[test]
    fn grouping_sets_empty_input_and_empty_set() {
        let (f, t) = (false, true);
        let aggs = [agg("count", vec![col(2, "v")], "c")];
        // ROLLUP(k1) over no rows: only the total, once (one partial row
        // per empty partition, merged).
        let got = run_sets(
            &[col(0, "k1")],
            &[vec![f], vec![t]],
            &aggs,
            &[vec![], vec![]],
        );
        assert_eq!(got, vec!["NULL|1|0"]);
        let more = [
            agg("count", vec![col(2, "v")], "c"),
            agg("sum", vec![col(2, "v")], "s"),
            agg("avg", vec![col(3, "f")], "a"),
            agg("max", vec![col(0, "k1")], "m"),
        ];
        let sets = [vec![f, f], vec![t, t], vec![f, t], vec![t, t]];
        let g = [col(0, "k1"), col(1, "k2")];
        let got = run_sets(&g, &sets, &more, &[vec![], vec![]]);
        assert_eq!(
            got,
            vec![
                "NULL|NULL|3|0|NULL|NULL|NULL",
                "NULL|NULL|7|0|NULL|NULL|NULL"
            ]
        );
        // Only one partition without rows: its total merges with the others.
        let got = run_sets(&g, &sets, &more, &[vec![batch1()], vec![]]);
        let single = run_sets(&g, &sets, &more, &[vec![batch1()]]);
        assert_eq!(got, single);
        // No set without keys: no rows.
        let got = run_sets(&g, &[vec![f, t], vec![t, f]], &aggs, &[vec![], vec![]]);
        assert!(got.is_empty());
        // GROUPING SETS ((), ()): two totals told apart by the id.
        let got = run_sets(
            &[],
            &[vec![], vec![]],
            &aggs,
            &[vec![batch1()], vec![batch2()]],
        );
        assert_eq!(got, vec!["0|8", "1|8"]);
    }

    #[test]
    fn schema_column_count_mismatch_is_internal_error() {
        let input = input_schema();
        let aggs = [agg("avg", vec![col(3, "f")], "av")];
        // Final-style schema given to a Partial aggregate (avg has 2 states).
        let wrong = out_schema(AggregateMode::Final, &[col(0, "k1")], &aggs, &input);
        let err = AggSpec::try_new(
            &input,
            AggregateMode::Partial,
            &[col(0, "k1")],
            &[],
            &aggs,
            &input,
            wrong,
            &registry(),
        )
        .err()
        .unwrap();
        let msg = err.to_string();
        assert!(matches!(err, DataflowError::Internal(_)), "{msg}");
        assert!(msg.contains("2 columns") && msg.contains("3"), "{msg}");
    }

    // ---- operator through the runner -------------------------------------

    use crate::test_util::TestExchange as NoExchange;

    #[tokio::test]
    async fn operator_partial_then_final_through_runner() {
        use crate::plan::{PhysicalPlan, ScanSource};
        let tables = crate::tables::MemoryTableMap::default();
        tables.insert("t", vec![batch1(), batch2()]);
        let input = input_schema();
        let g = vec![col(0, "k1")];
        let aggs = standard_aggs();
        let scan = PhysicalPlan::Scan {
            source: ScanSource::Memory {
                table: "t".into(),
                partitions: 1,
            },
            table_schema: Arc::clone(&input),
            projection: None,
            pruning: vec![],
            schema: Arc::clone(&input),
        };
        let partial_schema = out_schema(AggregateMode::Partial, &g, &aggs, &input);
        let partial = PhysicalPlan::Aggregate {
            input: Box::new(scan),
            mode: AggregateMode::Partial,
            group_by: g.clone(),
            grouping_sets: vec![],
            aggregates: aggs.clone(),
            aggregate_input_schema: Arc::clone(&input),
            schema: partial_schema,
        };
        let final_plan = PhysicalPlan::Aggregate {
            input: Box::new(partial),
            mode: AggregateMode::Final,
            group_by: g.clone(),
            grouping_sets: vec![],
            aggregates: aggs.clone(),
            aggregate_input_schema: Arc::clone(&input),
            schema: out_schema(AggregateMode::Final, &g, &aggs, &input),
        };
        let config = crate::runner::ExecConfig {
            batch_size: 2,
            ..Default::default()
        };
        let mut stream = crate::runner::execute(
            &final_plan,
            config,
            Arc::new(registry()),
            Arc::new(tables),
            Arc::new(NoExchange),
        )
        .unwrap();
        let mut batches = vec![];
        while let Some(b) = stream.next().await {
            let b = b.unwrap();
            assert!(b.num_rows() <= 2);
            batches.push(b);
        }
        assert_eq!(
            rows_of(&batches),
            run_single(&g, &aggs, &[batch1(), batch2()])
        );
    }
}
