//! Key columns in the one form that hash-based operators hash and compare:
//! in SQL `-0.0 = 0.0`, and NaN is one value for grouping (as in
//! PostgreSQL and DataFusion), but the bit patterns (which hashes and the
//! arrow row format see) differ. Every place that hashes or encodes keys
//! — group values, join keys, the hash exchange and spill partitioning —
//! passes them through [`canonical_keys`] first, so that equal keys meet
//! in the same group, bucket and partition.
//!
//! Only top-level Float16/32/64 columns are rewritten; floats nested in
//! structs or lists keep their bit patterns.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::datatypes::{ArrowPrimitiveType, DataType, Float16Type, Float32Type, Float64Type};

/// Whether keys of type `data_type` need [`canonical_keys`].
pub fn needs_canonical(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Float16 | DataType::Float32 | DataType::Float64
    )
}

/// `keys` with every float zero made `+0.0` and every NaN the one quiet
/// NaN; borrowed unchanged when no key is a float.
pub fn canonical_keys(keys: &[ArrayRef]) -> Cow<'_, [ArrayRef]> {
    if !keys.iter().any(|k| needs_canonical(k.data_type())) {
        return Cow::Borrowed(keys);
    }
    Cow::Owned(keys.iter().map(canonical_key).collect())
}

/// One key column in canonical form (see [`canonical_keys`]).
pub fn canonical_key(key: &ArrayRef) -> ArrayRef {
    match key.data_type() {
        DataType::Float16 => {
            canonical_floats::<Float16Type>(key, <Float16Type as ArrowPrimitiveType>::Native::NAN)
        }
        DataType::Float32 => canonical_floats::<Float32Type>(key, f32::NAN),
        DataType::Float64 => canonical_floats::<Float64Type>(key, f64::NAN),
        _ => Arc::clone(key),
    }
}

/// Whether float `v` is a NaN (of any sign or payload).
pub fn is_nan<N: PartialOrd>(v: &N) -> bool {
    v.partial_cmp(v).is_none()
}

fn canonical_floats<T: ArrowPrimitiveType>(key: &ArrayRef, nan: T::Native) -> ArrayRef {
    // The default of a float is +0.0, which -0.0 equals.
    let zero = T::Native::default();
    let canonical = key.as_primitive::<T>().unary::<_, T>(|v| {
        if is_nan(&v) {
            nan
        } else if v == zero {
            zero
        } else {
            v
        }
    });
    Arc::new(canonical)
}
