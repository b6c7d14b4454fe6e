//! The fast path against arrow's checked kernels: same values, same
//! NULLs, same type, and arrow's error where the result overflows.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Decimal128Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion_common::ScalarValue;
use datafusion_expr::{ColumnarValue, Operator};
use datafusion_physical_expr::expressions::{col, lit, BinaryExpr};
use datafusion_physical_expr::PhysicalExpr;

use super::{specialize, DecimalArith};

fn decimal(values: &[Option<i128>], p: u8, s: i8) -> ArrayRef {
    Arc::new(
        values
            .iter()
            .copied()
            .collect::<Decimal128Array>()
            .with_precision_and_scale(p, s)
            .unwrap(),
    )
}

fn batch(a: ArrayRef, b: ArrayRef) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("a", a.data_type().clone(), true),
        Field::new("b", b.data_type().clone(), true),
    ]);
    RecordBatch::try_new(Arc::new(schema), vec![a, b]).unwrap()
}

/// Evaluates `l op r` through DataFusion's node and through the
/// specialized one; asserts that the node was replaced and that both
/// agree (values, NULLs, type, or both fail).
fn check(batch: &RecordBatch, l: Arc<dyn PhysicalExpr>, op: Operator, r: Arc<dyn PhysicalExpr>) {
    let schema = batch.schema();
    let original: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(l, op, r));
    let fast = specialize(Arc::clone(&original), &schema).unwrap();
    assert!(
        fast.downcast_ref::<DecimalArith>().is_some(),
        "{original} not specialized"
    );
    assert_eq!(fast.to_string(), original.to_string());
    assert_eq!(
        fast.data_type(&schema).unwrap(),
        original.data_type(&schema).unwrap()
    );
    let expected = original
        .evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()));
    let got = fast
        .evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()));
    match (expected, got) {
        (Ok(e), Ok(g)) => {
            assert_eq!(g.data_type(), e.data_type(), "{original}");
            assert_eq!(g.as_ref(), e.as_ref(), "{original}");
        }
        (Err(e), Err(g)) => assert_eq!(g.to_string(), e.to_string()),
        (e, g) => panic!("{original}: expected {e:?}, got {g:?}"),
    }
}

fn operators() -> [Operator; 3] {
    [Operator::Plus, Operator::Minus, Operator::Multiply]
}

#[test]
fn small_values_with_nulls_and_mixed_scales() {
    let a = decimal(
        &[Some(12_345), None, Some(-9_999_999), Some(0), Some(1)],
        15,
        2,
    );
    let b = decimal(&[Some(7), Some(3), None, Some(-5), Some(9)], 5, 1);
    let batch = batch(a, b);
    let schema = batch.schema();
    for op in operators() {
        check(
            &batch,
            col("a", &schema).unwrap(),
            op,
            col("b", &schema).unwrap(),
        );
        check(
            &batch,
            col("b", &schema).unwrap(),
            op,
            col("a", &schema).unwrap(),
        );
        // A scalar on either side, as in `1 - l_discount`.
        let one = lit(ScalarValue::Decimal128(Some(1), 20, 0));
        check(&batch, Arc::clone(&one), op, col("a", &schema).unwrap());
        check(&batch, col("b", &schema).unwrap(), op, one);
    }
}

#[test]
fn values_beyond_i64_take_the_wide_or_checked_path() {
    let big = 10_i128.pow(37);
    let a = decimal(&[Some(big), Some(-big), Some(i64::MAX as i128 + 1)], 38, 0);
    let b = decimal(&[Some(100), Some(3), Some(i64::MAX as i128)], 38, 0);
    let batch = batch(a, b);
    let schema = batch.schema();
    for op in operators() {
        check(
            &batch,
            col("a", &schema).unwrap(),
            op,
            col("b", &schema).unwrap(),
        );
    }
    // `10^37 * 100` overflows i128: arrow's error comes back, not a
    // wrapped value.
    let mul = specialize(
        Arc::new(BinaryExpr::new(
            col("a", &schema).unwrap(),
            Operator::Multiply,
            col("b", &schema).unwrap(),
        )),
        &schema,
    )
    .unwrap();
    let err = mul.evaluate(&batch).unwrap_err().to_string();
    assert!(err.contains("Overflow"), "{err}");
    // Products that need more than 64 bits but fit: the wrapping i128 path.
    let a = decimal(&[Some(1 << 70), Some(-(1 << 60))], 38, 0);
    let b = decimal(&[Some(1 << 40), Some(1 << 50)], 38, 0);
    let batch2 = self::batch(a, b);
    let schema = batch2.schema();
    check(
        &batch2,
        col("a", &schema).unwrap(),
        Operator::Multiply,
        col("b", &schema).unwrap(),
    );
}

#[test]
fn rescaling_that_could_overflow_falls_back() {
    // Scale 0 against scale 30: `a` is multiplied by 10^30 first.
    let a = decimal(&[Some(10_i128.pow(8)), Some(1)], 38, 0);
    let b = decimal(&[Some(1), None], 38, 30);
    let batch = batch(a, b);
    let schema = batch.schema();
    for op in [Operator::Plus, Operator::Minus] {
        check(
            &batch,
            col("a", &schema).unwrap(),
            op,
            col("b", &schema).unwrap(),
        );
    }
}

#[test]
fn non_decimal_and_other_operators_are_left_alone() {
    let batch = batch(decimal(&[Some(1)], 10, 2), decimal(&[Some(2)], 10, 2));
    let schema = batch.schema();
    let div: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
        col("a", &schema).unwrap(),
        Operator::Divide,
        col("b", &schema).unwrap(),
    ));
    let same = specialize(Arc::clone(&div), &schema).unwrap();
    assert!(same.downcast_ref::<BinaryExpr>().is_some());
    let ints = Schema::new(vec![Field::new("i", DataType::Int64, true)]);
    let plus: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
        col("i", &ints).unwrap(),
        Operator::Plus,
        lit(ScalarValue::Int64(Some(1))),
    ));
    assert!(specialize(plus, &ints)
        .unwrap()
        .downcast_ref::<BinaryExpr>()
        .is_some());
}

#[test]
fn nested_nodes_are_all_replaced() {
    // `a * (1 - b)`: both nodes specialized, result as DataFusion's.
    let batch = batch(
        decimal(&[Some(100_000), Some(250), None], 15, 2),
        decimal(&[Some(5), Some(10), Some(1)], 15, 2),
    );
    let schema = batch.schema();
    let inner: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
        lit(ScalarValue::Decimal128(Some(1), 20, 0)),
        Operator::Minus,
        col("b", &schema).unwrap(),
    ));
    let outer: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
        col("a", &schema).unwrap(),
        Operator::Multiply,
        inner,
    ));
    let fast = specialize(Arc::clone(&outer), &schema).unwrap();
    let children = fast.children();
    assert!(children[1].downcast_ref::<DecimalArith>().is_some());
    let expected = outer.evaluate(&batch).unwrap().into_array(3).unwrap();
    let got = fast.evaluate(&batch).unwrap().into_array(3).unwrap();
    assert_eq!(got.as_ref(), expected.as_ref());
    assert_eq!(got.null_count(), 1);
    // Scalars on both sides stay scalars.
    let both = specialize(
        Arc::new(BinaryExpr::new(
            lit(ScalarValue::Decimal128(Some(2), 10, 1)),
            Operator::Multiply,
            lit(ScalarValue::Decimal128(Some(3), 10, 1)),
        )),
        &schema,
    )
    .unwrap();
    match both.evaluate(&batch).unwrap() {
        ColumnarValue::Scalar(v) => assert_eq!(v, ScalarValue::Decimal128(Some(6), 21, 2)),
        other => panic!("expected a scalar, got {other:?}"),
    }
}
