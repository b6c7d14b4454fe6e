//! Vector scoring functions for similarity search:
//!
//! - `cosine_similarity(a, b)`: `a·b / (|a| |b|)`; NULL when either vector
//!   has zero magnitude (the similarity is undefined there).
//! - `dot_product(a, b)`: `Σ aᵢ bᵢ`.
//! - `l2_distance(a, b)`: Euclidean distance `sqrt(Σ (aᵢ - bᵢ)²)`.
//!
//! Each argument is a vector: a `FixedSizeList`, `List` or `LargeList` of
//! floats (`Float16/32/64`; integer and decimal elements are accepted too and
//! converted), as a column or a scalar (a SQL literal `[1.0, 2.0]` arrives as
//! a `List<Float64>` scalar and is broadcast without being repeated per
//! row). Arithmetic is in `f64` and the result is a nullable `Float64`:
//! NULL when either vector is NULL or contains a NULL element. Two vectors of
//! different lengths in one row are an execution error naming the row and
//! both lengths (two `FixedSizeList`s of different sizes fail at planning).

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, Float64Array, NullBufferBuilder};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion_common::{exec_err, plan_err, Result as DFResult, ScalarValue};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The vector scoring functions, for [`crate::functions::FunctionRegistry`].
pub fn functions() -> Vec<Arc<ScalarUDF>> {
    [
        VectorOp::CosineSimilarity,
        VectorOp::DotProduct,
        VectorOp::L2Distance,
    ]
    .into_iter()
    .map(|op| Arc::new(ScalarUDF::new_from_impl(VectorFunction::new(op))))
    .collect()
}

/// Which score a [`VectorFunction`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VectorOp {
    CosineSimilarity,
    DotProduct,
    L2Distance,
}

impl VectorOp {
    pub fn name(self) -> &'static str {
        match self {
            VectorOp::CosineSimilarity => "cosine_similarity",
            VectorOp::DotProduct => "dot_product",
            VectorOp::L2Distance => "l2_distance",
        }
    }

    /// The score of two vectors of equal length; `None` for an undefined
    /// result (cosine similarity with a zero vector).
    #[inline]
    fn score<A: Elem, B: Elem>(self, a: &[A], b: &[B]) -> Option<f64> {
        match self {
            VectorOp::DotProduct => Some(a.iter().zip(b).map(|(x, y)| x.f64() * y.f64()).sum()),
            VectorOp::L2Distance => Some(
                a.iter()
                    .zip(b)
                    .map(|(x, y)| {
                        let d = x.f64() - y.f64();
                        d * d
                    })
                    .sum::<f64>()
                    .sqrt(),
            ),
            VectorOp::CosineSimilarity => {
                let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
                for (x, y) in a.iter().zip(b) {
                    let (x, y) = (x.f64(), y.f64());
                    dot += x * y;
                    na += x * x;
                    nb += y * y;
                }
                if na == 0.0 || nb == 0.0 {
                    None
                } else {
                    Some(dot / (na.sqrt() * nb.sqrt()))
                }
            }
        }
    }
}

/// A vector scoring function as a DataFusion scalar UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VectorFunction {
    op: VectorOp,
    signature: Signature,
}

impl VectorFunction {
    pub fn new(op: VectorOp) -> Self {
        VectorFunction {
            op,
            // Types are checked in `return_type`, which gives a clearer
            // error than a signature mismatch would.
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for VectorFunction {
    fn name(&self) -> &str {
        self.op.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        let name = self.name();
        if arg_types.len() != 2 {
            return plan_err!(
                "{name} expects two vectors (lists of float), got {} arguments",
                arg_types.len()
            );
        }
        for t in arg_types {
            if !is_vector_type(t) {
                return plan_err!("{name} expects two vectors (lists of float), got {t}");
            }
        }
        if let (DataType::FixedSizeList(_, a), DataType::FixedSizeList(_, b)) =
            (&arg_types[0], &arg_types[1])
        {
            if a != b {
                return plan_err!("{name}: the vectors have different lengths ({a} and {b})");
            }
        }
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let name = self.name();
        let [a, b] = args.args.as_slice() else {
            return exec_err!("{name} expects two arguments, got {}", args.args.len());
        };
        let all_scalar =
            matches!(a, ColumnarValue::Scalar(_)) && matches!(b, ColumnarValue::Scalar(_));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let (Some(a), Some(b)) = (Vectors::try_new(name, a)?, Vectors::try_new(name, b)?) else {
            // A NULL-typed argument: every result is NULL.
            return Ok(if all_scalar {
                ColumnarValue::Scalar(ScalarValue::Float64(None))
            } else {
                ColumnarValue::Array(new_null_array(&DataType::Float64, rows))
            });
        };
        for v in [&a, &b] {
            if !v.broadcast && v.len < rows {
                return exec_err!("{name}: an argument has {} rows, expected {rows}", v.len);
            }
        }
        let out = match (&a.values, &b.values) {
            (Values::F32(x), Values::F32(y)) => score_rows(self.op, &a, x, &b, y, rows)?,
            (Values::F32(x), Values::F64(y)) => score_rows(self.op, &a, x, &b, y, rows)?,
            (Values::F64(x), Values::F32(y)) => score_rows(self.op, &a, x, &b, y, rows)?,
            (Values::F64(x), Values::F64(y)) => score_rows(self.op, &a, x, &b, y, rows)?,
        };
        Ok(if all_scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(Arc::new(out))
        })
    }
}

/// Whether `t` is accepted as a vector argument.
fn is_vector_type(t: &DataType) -> bool {
    match t {
        DataType::Null => true,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            f.data_type().is_numeric()
        }
        _ => false,
    }
}

/// Vector elements, read as `f64`.
trait Elem: Copy {
    fn f64(self) -> f64;
}

impl Elem for f32 {
    #[inline]
    fn f64(self) -> f64 {
        self as f64
    }
}

impl Elem for f64 {
    #[inline]
    fn f64(self) -> f64 {
        self
    }
}

enum Values {
    F32(ScalarBuffer<f32>),
    F64(ScalarBuffer<f64>),
}

enum Layout {
    Fixed(usize),
    Small(OffsetBuffer<i32>),
    Large(OffsetBuffer<i64>),
}

/// One argument: the flat element values of its vectors and where each row's
/// vector lies in them. A scalar is a one-row column read for every row.
struct Vectors {
    values: Values,
    /// Element-level nulls, only when some element is NULL.
    value_nulls: Option<NullBuffer>,
    layout: Layout,
    /// Row-level (vector) nulls.
    nulls: Option<NullBuffer>,
    len: usize,
    broadcast: bool,
}

impl Vectors {
    /// `None` for a NULL-typed argument or a NULL scalar (all results NULL).
    fn try_new(name: &str, arg: &ColumnarValue) -> DFResult<Option<Self>> {
        let (array, broadcast) = match arg {
            ColumnarValue::Scalar(s) if s.is_null() => return Ok(None),
            ColumnarValue::Scalar(s) => (s.to_array_of_size(1)?, true),
            ColumnarValue::Array(a) => (Arc::clone(a), false),
        };
        let (layout, values) = match array.data_type() {
            DataType::Null => return Ok(None),
            DataType::FixedSizeList(_, size) => {
                let l = array.as_fixed_size_list();
                (Layout::Fixed(*size as usize), Arc::clone(l.values()))
            }
            DataType::List(_) => {
                let l = array.as_list::<i32>();
                (Layout::Small(l.offsets().clone()), Arc::clone(l.values()))
            }
            DataType::LargeList(_) => {
                let l = array.as_list::<i64>();
                (Layout::Large(l.offsets().clone()), Arc::clone(l.values()))
            }
            other => return exec_err!("{name} expects two vectors (lists of float), got {other}"),
        };
        let values: ArrayRef = match values.data_type() {
            DataType::Float32 | DataType::Float64 => values,
            t if t.is_numeric() => cast(&values, &DataType::Float64)?,
            other => {
                return exec_err!(
                    "{name} expects two vectors (lists of float), got a list of {other}"
                )
            }
        };
        let value_nulls = values.logical_nulls().filter(|n| n.null_count() > 0);
        let values = match values.data_type() {
            DataType::Float32 => Values::F32(values.as_primitive::<Float32Type>().values().clone()),
            _ => Values::F64(values.as_primitive::<Float64Type>().values().clone()),
        };
        Ok(Some(Vectors {
            values,
            value_nulls,
            layout,
            nulls: array.logical_nulls().filter(|n| n.null_count() > 0),
            len: array.len(),
            broadcast,
        }))
    }

    /// The element range of `row`'s vector; `None` when the vector is NULL
    /// or holds a NULL element.
    #[inline]
    fn range(&self, row: usize) -> Option<(usize, usize)> {
        let row = if self.broadcast { 0 } else { row };
        if self.nulls.as_ref().is_some_and(|n| n.is_null(row)) {
            return None;
        }
        let (start, end) = match &self.layout {
            Layout::Fixed(size) => (row * size, (row + 1) * size),
            Layout::Small(o) => (o[row] as usize, o[row + 1] as usize),
            Layout::Large(o) => (o[row] as usize, o[row + 1] as usize),
        };
        if let Some(n) = &self.value_nulls {
            if n.inner().slice(start, end - start).count_set_bits() != end - start {
                return None;
            }
        }
        Some((start, end))
    }
}

fn score_rows<A: Elem, B: Elem>(
    op: VectorOp,
    a: &Vectors,
    a_values: &[A],
    b: &Vectors,
    b_values: &[B],
    rows: usize,
) -> DFResult<Float64Array> {
    let mut out = Vec::with_capacity(rows);
    let mut valid = NullBufferBuilder::new(rows);
    // A scalar side is the same vector for every row: resolve it once.
    let fixed_a = a.broadcast.then(|| a.range(0));
    let fixed_b = b.broadcast.then(|| b.range(0));
    for row in 0..rows {
        let ra = fixed_a.unwrap_or_else(|| a.range(row));
        let rb = fixed_b.unwrap_or_else(|| b.range(row));
        let score = match (ra, rb) {
            (Some((sa, ea)), Some((sb, eb))) => {
                if ea - sa != eb - sb {
                    return exec_err!(
                        "{}: the vectors in row {row} have different lengths ({} and {})",
                        op.name(),
                        ea - sa,
                        eb - sb
                    );
                }
                op.score(&a_values[sa..ea], &b_values[sb..eb])
            }
            _ => None,
        };
        match score {
            Some(v) => {
                out.push(v);
                valid.append_non_null();
            }
            None => {
                out.push(0.0);
                valid.append_null();
            }
        }
    }
    Ok(Float64Array::new(out.into(), valid.finish()))
}

#[cfg(test)]
mod tests;
