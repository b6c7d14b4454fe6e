//! Decimal `+`, `-` and `*` without a per-row overflow check when a batch
//! cannot overflow.
//!
//! Arrow's decimal kernels check every row for `i128` overflow
//! (`checked_mul`, and for `+`/`-` of different scales two checked
//! rescaling multiplies per row), even for a scalar operand. Money columns
//! are far from that range: `l_extendedprice * (1 - l_discount)` multiplies
//! values below 10^9. So per batch we take the largest magnitude of each
//! operand (one pass, no branches); when those bound the result below
//! 2^126, the plain wrapping operations are exact and give the same values
//! as the checked kernel, and when both operands fit in `i64` a product is
//! one 64×64→128-bit multiply. Anything else (a batch that could overflow,
//! NULL scalars, other types) goes to arrow's kernel, which keeps its error
//! for a real overflow. The result type is arrow's, which is also the type
//! DataFusion planned; [`specialize`] only replaces nodes where the two
//! agree.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, RecordBatch};
use arrow::compute::kernels::numeric;
use arrow::compute::{binary, unary};
use arrow::datatypes::{DataType, Decimal128Type, Schema};
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::ScalarValue;
use datafusion_expr::{ColumnarValue, Operator};
use datafusion_physical_expr::expressions::BinaryExpr;
use datafusion_physical_expr::PhysicalExpr;

#[cfg(test)]
mod tests;

/// Largest scale or precision of a `Decimal128`.
const MAX_DIGITS: u8 = 38;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ArithOp {
    Add,
    Sub,
    Mul,
}

/// Replaces every decimal `+`, `-`, `*` node of `expr` by a
/// [`DecimalArith`] standing for it.
pub(crate) fn specialize(
    expr: Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> datafusion_common::Result<Arc<dyn PhysicalExpr>> {
    expr.transform_up(|e| {
        Ok(match DecimalArith::try_new(&e, schema)? {
            Some(arith) => Transformed::yes(Arc::new(arith) as Arc<dyn PhysicalExpr>),
            None => Transformed::no(e),
        })
    })
    .map(|t| t.data)
}

/// A decimal `+`, `-` or `*` with the fast path described in the module
/// docs; `original` is the DataFusion node it replaces (display, equality).
#[derive(Debug)]
pub(crate) struct DecimalArith {
    op: ArithOp,
    left: Arc<dyn PhysicalExpr>,
    right: Arc<dyn PhysicalExpr>,
    original: Arc<dyn PhysicalExpr>,
    /// Result precision and scale.
    precision: u8,
    scale: i8,
    /// Multipliers that bring each operand to the result scale (`+`, `-`).
    left_factor: i128,
    right_factor: i128,
}

impl DecimalArith {
    fn try_new(
        expr: &Arc<dyn PhysicalExpr>,
        schema: &Schema,
    ) -> datafusion_common::Result<Option<Self>> {
        let Some(b) = expr.downcast_ref::<BinaryExpr>() else {
            return Ok(None);
        };
        let op = match b.op() {
            Operator::Plus => ArithOp::Add,
            Operator::Minus => ArithOp::Sub,
            Operator::Multiply => ArithOp::Mul,
            _ => return Ok(None),
        };
        let (DataType::Decimal128(p1, s1), DataType::Decimal128(p2, s2)) =
            (b.left().data_type(schema)?, b.right().data_type(schema)?)
        else {
            return Ok(None);
        };
        let Some((precision, scale)) = result_type(op, (p1, s1), (p2, s2)) else {
            return Ok(None);
        };
        if expr.data_type(schema)? != DataType::Decimal128(precision, scale) {
            return Ok(None);
        }
        let factor = |s: i8| 10i128.pow((scale - s) as u32);
        let (left_factor, right_factor) = match op {
            ArithOp::Mul => (1, 1),
            ArithOp::Add | ArithOp::Sub => (factor(s1), factor(s2)),
        };
        Ok(Some(DecimalArith {
            op,
            left: Arc::clone(b.left()),
            right: Arc::clone(b.right()),
            original: Arc::clone(expr),
            precision,
            scale,
            left_factor,
            right_factor,
        }))
    }

    /// Arrow's kernel: the reference semantics, used when the fast path
    /// cannot prove the result exact.
    fn fallback(
        &self,
        lhs: &ColumnarValue,
        rhs: &ColumnarValue,
    ) -> datafusion_common::Result<ColumnarValue> {
        let kernel = match self.op {
            ArithOp::Add => numeric::add,
            ArithOp::Sub => numeric::sub,
            ArithOp::Mul => numeric::mul,
        };
        Ok(match (lhs, rhs) {
            (ColumnarValue::Array(l), ColumnarValue::Array(r)) => {
                ColumnarValue::Array(kernel(l, r)?)
            }
            (ColumnarValue::Array(l), ColumnarValue::Scalar(r)) => {
                ColumnarValue::Array(kernel(l, &r.to_scalar()?)?)
            }
            (ColumnarValue::Scalar(l), ColumnarValue::Array(r)) => {
                ColumnarValue::Array(kernel(&l.to_scalar()?, r)?)
            }
            (ColumnarValue::Scalar(l), ColumnarValue::Scalar(r)) => {
                let one = kernel(&l.to_scalar()?, &r.to_scalar()?)?;
                ColumnarValue::Scalar(ScalarValue::try_from_array(one.as_ref(), 0)?)
            }
        })
    }

    fn fast(&self, lhs: &ColumnarValue, rhs: &ColumnarValue) -> Option<ArrayRef> {
        let l = Operand::of(lhs)?;
        let r = Operand::of(rhs)?;
        let (lm, rm) = (l.magnitude(), r.magnitude());
        let array = match self.op {
            ArithOp::Mul => {
                if lm <= i64::MAX as u128 && rm <= i64::MAX as u128 {
                    // Both fit in i64: the product fits in i127.
                    combine(&l, &r, |a, b| (a as i64 as i128) * (b as i64 as i128))?
                } else if bits(lm) + bits(rm) <= 126 {
                    combine(&l, &r, i128::wrapping_mul)?
                } else {
                    return None;
                }
            }
            ArithOp::Add | ArithOp::Sub => {
                let (lf, rf) = (self.left_factor, self.right_factor);
                if bits(lm) + bits(lf as u128) > 125 || bits(rm) + bits(rf as u128) > 125 {
                    return None;
                }
                match (self.op, lf, rf) {
                    (ArithOp::Add, 1, 1) => combine(&l, &r, |a, b| a + b)?,
                    (ArithOp::Sub, 1, 1) => combine(&l, &r, |a, b| a - b)?,
                    (ArithOp::Add, _, _) => combine(&l, &r, |a, b| a * lf + b * rf)?,
                    _ => combine(&l, &r, |a, b| a * lf - b * rf)?,
                }
            }
        };
        let array = array
            .with_precision_and_scale(self.precision, self.scale)
            .ok()?;
        Some(Arc::new(array))
    }
}

/// Arrow's result type of a decimal operation (`None` where arrow fails or
/// where this module does not apply: negative scales).
fn result_type(op: ArithOp, (p1, s1): (u8, i8), (p2, s2): (u8, i8)) -> Option<(u8, i8)> {
    if s1 < 0 || s2 < 0 {
        return None;
    }
    match op {
        ArithOp::Mul => {
            let scale = s1.checked_add(s2)?;
            (scale as u8 <= MAX_DIGITS).then(|| (p1.saturating_add(p2 + 1).min(MAX_DIGITS), scale))
        }
        ArithOp::Add | ArithOp::Sub => {
            let scale = s1.max(s2);
            let integer_digits = (p1 as i8 - s1).max(p2 as i8 - s2);
            let precision = (scale.saturating_add(integer_digits) as u8)
                .saturating_add(1)
                .min(MAX_DIGITS);
            Some((precision, scale))
        }
    }
}

/// Bits needed for a magnitude.
fn bits(m: u128) -> u32 {
    128 - m.leading_zeros()
}

enum Operand<'a> {
    Array(&'a Decimal128Array),
    Scalar(i128),
}

impl<'a> Operand<'a> {
    fn of(value: &'a ColumnarValue) -> Option<Self> {
        match value {
            ColumnarValue::Array(a) => match a.data_type() {
                DataType::Decimal128(..) => {
                    Some(Operand::Array(a.as_primitive::<Decimal128Type>()))
                }
                _ => None,
            },
            ColumnarValue::Scalar(ScalarValue::Decimal128(Some(v), ..)) => {
                Some(Operand::Scalar(*v))
            }
            _ => None,
        }
    }

    /// The largest absolute value, NULL slots included (their values are
    /// arbitrary: at worst they send the batch to the checked kernel).
    fn magnitude(&self) -> u128 {
        match self {
            Operand::Array(a) => a
                .values()
                .iter()
                .fold(0u128, |m, v| m.max(v.unsigned_abs())),
            Operand::Scalar(v) => v.unsigned_abs(),
        }
    }
}

/// Applies `f` row by row (NULL in, NULL out); `None` for two scalars,
/// which the caller leaves to arrow.
fn combine(
    l: &Operand<'_>,
    r: &Operand<'_>,
    f: impl Fn(i128, i128) -> i128,
) -> Option<Decimal128Array> {
    match (l, r) {
        (Operand::Array(a), Operand::Array(b)) => binary(*a, *b, f).ok(),
        (Operand::Array(a), Operand::Scalar(s)) => Some(unary(*a, |v| f(v, *s))),
        (Operand::Scalar(s), Operand::Array(b)) => Some(unary(*b, |v| f(*s, v))),
        (Operand::Scalar(_), Operand::Scalar(_)) => None,
    }
}

impl fmt::Display for DecimalArith {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.original.fmt(f)
    }
}

impl PartialEq for DecimalArith {
    fn eq(&self, other: &Self) -> bool {
        self.original.as_ref() == other.original.as_ref()
    }
}

impl Eq for DecimalArith {}

impl Hash for DecimalArith {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.original.as_ref().hash(state)
    }
}

impl PhysicalExpr for DecimalArith {
    fn data_type(&self, _input_schema: &Schema) -> datafusion_common::Result<DataType> {
        Ok(DataType::Decimal128(self.precision, self.scale))
    }

    fn nullable(&self, input_schema: &Schema) -> datafusion_common::Result<bool> {
        self.original.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> datafusion_common::Result<ColumnarValue> {
        let lhs = self.left.evaluate(batch)?;
        let rhs = self.right.evaluate(batch)?;
        match self.fast(&lhs, &rhs) {
            Some(array) => Ok(ColumnarValue::Array(array)),
            None => self.fallback(&lhs, &rhs),
        }
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.left, &self.right]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> datafusion_common::Result<Arc<dyn PhysicalExpr>> {
        let [left, right]: [Arc<dyn PhysicalExpr>; 2] =
            children.try_into().map_err(|c: Vec<_>| {
                datafusion_common::DataFusionError::Internal(format!(
                    "decimal arithmetic takes 2 children, got {}",
                    c.len()
                ))
            })?;
        let original = Arc::clone(&self.original)
            .with_new_children(vec![Arc::clone(&left), Arc::clone(&right)])?;
        Ok(Arc::new(DecimalArith {
            left,
            right,
            original,
            ..*self.as_ref()
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.original.fmt_sql(f)
    }
}
