//! The aggregation state of one partition: group keys interned into dense
//! group indices, and one groups accumulator per aggregate.

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::prep_null_mask_filter;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion_expr::{EmitTo, GroupsAccumulator};
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;
use datafusion_physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};

use super::float_min_max::float_min_max;
use super::group_values::{new_group_values, GroupValues};
use super::spec::{field_names, AggSpec};
use crate::error::{DataflowError, Result};
use crate::execution::canonical_keys;
use crate::operators::scan::files::conform_columns;
use crate::plan::AggregateMode;

/// The aggregation state of one partition.
pub(crate) struct Aggregator {
    spec: Arc<AggSpec>,
    groups: Box<dyn GroupValues>,
    accs: Vec<Box<dyn GroupsAccumulator>>,
    /// The number of groups the accumulators were last told about.
    acc_groups: usize,
    group_ids: Vec<usize>,
    /// Input rows folded in.
    rows: usize,
}

/// The groups accumulator of one aggregate: FFQ's own for `min`/`max` over
/// floats (NaN handling, see `float_min_max`), DataFusion's specialised one
/// where it computes the same as the row accumulator, else the row
/// accumulators behind an adapter.
///
/// DataFusion runs ungrouped aggregates with row accumulators only, and
/// some of its groups accumulators ignore DISTINCT (`bit_xor`): a DISTINCT
/// aggregate uses a specialised one only where it implements DISTINCT
/// (`count`).
pub(super) fn create_group_accumulator(
    func: &Arc<AggregateFunctionExpr>,
) -> Result<Box<dyn GroupsAccumulator>> {
    if let Some(acc) = float_min_max(func)? {
        return Ok(acc);
    }
    let honours_distinct = !func.is_distinct() || func.fun().name() == "count";
    if func.groups_accumulator_supported() && honours_distinct {
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
            rows: 0,
        })
    }

    /// Folds one input batch into the groups.
    pub(crate) fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        self.rows += n;
        let spec = Arc::clone(&self.spec);
        let keys = crate::expr::evaluate_all(&spec.group_exprs, batch)?;
        let mut inputs = Vec::with_capacity(spec.aggs.len());
        for item in &spec.aggs {
            let mut values = crate::expr::evaluate_all(&item.inputs, batch)?;
            if item.canonical_inputs {
                // DISTINCT compares values like keys: one zero, one NaN.
                values = canonical_keys(&values).into_owned();
            }
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
        let batch = conform(columns, &self.spec.schema, n, self.spec.mode)?;
        let batch_size = batch_size.max(1);
        Ok((0..n)
            .step_by(batch_size)
            .map(|off| batch.slice(off, batch_size.min(n - off)))
            .collect())
    }

    /// Input rows folded in, and the groups they formed.
    pub(crate) fn rows_and_groups(&self) -> (usize, usize) {
        (self.rows, self.groups.len())
    }

    /// Whether any rows were folded in since the aggregator was made.
    pub(crate) fn has_rows(&self) -> bool {
        self.acc_groups > 0
    }

    /// Takes the state of every group out, as one batch of `schema`: the
    /// group keys, then every aggregate's state columns (the layout a
    /// partial aggregate emits), whatever the mode; `None` without rows.
    /// The accumulators are drained: drop the aggregator afterwards.
    pub(crate) fn emit_states(&mut self, schema: &SchemaRef) -> Result<Option<RecordBatch>> {
        if !self.has_rows() {
            return Ok(None);
        }
        let n = self.groups.len();
        if self.acc_groups != n {
            return Err(DataflowError::Internal(format!(
                "aggregate accumulators know {} of {n} groups",
                self.acc_groups
            )));
        }
        let mut columns = self.groups.emit()?;
        for acc in self.accs.iter_mut() {
            columns.extend(acc.state(EmitTo::All)?);
        }
        conform(columns, schema, n, self.spec.mode).map(Some)
    }
}

/// `n` rows of `columns` as a batch of `schema`, which they must match in
/// number; types only differ in representation (e.g. dictionary keys come
/// back hydrated, list item fields) and are cast.
pub(super) fn conform(
    columns: Vec<ArrayRef>,
    schema: &SchemaRef,
    n: usize,
    mode: AggregateMode,
) -> Result<RecordBatch> {
    if columns.len() != schema.fields().len() {
        return Err(DataflowError::Internal(format!(
            "aggregate ({mode:?}) produced {} columns for a schema of {} [{}]",
            columns.len(),
            schema.fields().len(),
            field_names(schema.fields().iter().map(|f| f.name())),
        )));
    }
    Ok(conform_columns(columns, n, schema)?)
}

/// Evaluates a FILTER clause into a mask without NULLs (NULL excludes).
pub(super) fn evaluate_filter(
    filter: &dyn PhysicalExpr,
    batch: &RecordBatch,
) -> Result<BooleanArray> {
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
