//! `min` and `max` over Float16/32/64 as SQL orders floats: NaN is greater
//! than every number (as in PostgreSQL and DataFusion's sort), so `max` is
//! NaN as soon as one value is, and `min` is NaN only when every value is.
//!
//! DataFusion's groups accumulator for these compares with `partial_cmp`
//! and replaces the current value whenever the comparison fails, so the
//! value after a NaN wins; its row accumulator is right, but FFQ drives
//! every aggregate through a groups accumulator (also without GROUP BY).
//! The state of a partial aggregate is the value itself, so merging is
//! folding again.

use std::marker::PhantomData;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray};
use arrow::buffer::NullBuffer;
use arrow::compute::kernels::boolean::not;
use arrow::compute::{nullif, prep_null_mask_filter};
use arrow::datatypes::{ArrowPrimitiveType, DataType, Float16Type, Float32Type, Float64Type};
use datafusion_expr::{EmitTo, GroupsAccumulator};
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;

use datafusion_common::DataFusionError;

use crate::error::Result;
use crate::execution::is_nan;

/// FFQ's accumulator for `func` when it is `min` or `max` over floats.
pub(super) fn float_min_max(
    func: &AggregateFunctionExpr,
) -> Result<Option<Box<dyn GroupsAccumulator>>> {
    let is_max = match func.fun().name() {
        "max" => true,
        "min" => false,
        _ => return Ok(None),
    };
    let data_type = func.field().data_type().clone();
    Ok(match data_type {
        DataType::Float16 => Some(Box::new(FloatMinMax::<Float16Type>::new(is_max))),
        DataType::Float32 => Some(Box::new(FloatMinMax::<Float32Type>::new(is_max))),
        DataType::Float64 => Some(Box::new(FloatMinMax::<Float64Type>::new(is_max))),
        _ => None,
    })
}

/// Whether `new` replaces `current` as the maximum: NaN above every number.
fn above<N: PartialOrd>(new: &N, current: &N) -> bool {
    match (is_nan(new), is_nan(current)) {
        (_, true) => false,
        (true, false) => true,
        (false, false) => new > current,
    }
}

/// The running `min` or `max` of every group.
struct FloatMinMax<T: ArrowPrimitiveType> {
    is_max: bool,
    /// The value of each group (meaningful where `seen`).
    values: Vec<T::Native>,
    /// Whether each group has seen a non-NULL value.
    seen: Vec<bool>,
    _type: PhantomData<T>,
}

impl<T: ArrowPrimitiveType> FloatMinMax<T> {
    fn new(is_max: bool) -> Self {
        FloatMinMax {
            is_max,
            values: Vec::new(),
            seen: Vec::new(),
            _type: PhantomData,
        }
    }
}

impl<T: ArrowPrimitiveType + Send> GroupsAccumulator for FloatMinMax<T> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> datafusion_common::Result<()> {
        let input = values
            .first()
            .and_then(|v| v.as_primitive_opt::<T>())
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "min/max over {} got {:?}",
                    T::DATA_TYPE,
                    values.first().map(|v| v.data_type())
                ))
            })?;
        self.values.resize(total_num_groups, T::Native::default());
        self.seen.resize(total_num_groups, false);
        for (row, &group) in group_indices.iter().enumerate() {
            if input.is_null(row) || opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            let new = input.value(row);
            let current = &mut self.values[group];
            let replace = !self.seen[group]
                || if self.is_max {
                    above(&new, current)
                } else {
                    above(current, &new)
                };
            if replace {
                *current = new;
                self.seen[group] = true;
            }
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> datafusion_common::Result<()> {
        // A state is the value itself: merging is folding again.
        self.update_batch(values, group_indices, None, total_num_groups)
    }

    /// The state of one row is its value, NULL where filtered out.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> datafusion_common::Result<Vec<ArrayRef>> {
        let Some(value) = values.first() else {
            return Err(DataFusionError::Internal("min/max without input".into()));
        };
        Ok(vec![match opt_filter {
            Some(filter) => nullif(value, &not(&prep_null_mask_filter(filter))?)?,
            None => Arc::clone(value),
        }])
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> datafusion_common::Result<ArrayRef> {
        let values = emit_to.take_needed(&mut self.values);
        let seen = emit_to.take_needed(&mut self.seen);
        let nulls = NullBuffer::from(seen);
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        Ok(Arc::new(PrimitiveArray::<T>::new(values.into(), nulls)))
    }

    fn state(&mut self, emit_to: EmitTo) -> datafusion_common::Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }

    fn size(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<T::Native>() + self.seen.capacity()
    }
}
