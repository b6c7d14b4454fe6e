//! Self-tests of the comparison helpers in `common`: they must accept
//! equivalent results and reject different ones.

use std::sync::Arc;

use arrow::array::{ArrayRef, Decimal128Array, Float64Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use crate::common::{compare_rows, compare_schemas, normalize, Cell, OutputOrder, Row};

fn batch(ks: Vec<Option<i32>>, fs: Vec<Option<f64>>, ms: Vec<Option<i128>>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int32, true),
        Field::new("f", DataType::Float64, true),
        Field::new("m", DataType::Decimal128(10, 2), true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(ks)),
        Arc::new(Float64Array::from(fs)),
        Arc::new(
            Decimal128Array::from(ms)
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
    ];
    RecordBatch::try_new(schema, cols).unwrap()
}

fn rows(b: &RecordBatch) -> Vec<Row> {
    normalize(std::slice::from_ref(b)).unwrap()
}

#[test]
fn normalizes_cells() {
    let b = batch(
        vec![Some(1), None],
        vec![Some(0.5), None],
        vec![Some(150), Some(-1)],
    );
    let r = rows(&b);
    assert!(matches!(r[0][0], Cell::Text(ref s) if s == "1"));
    assert!(matches!(r[1][0], Cell::Null));
    assert!(matches!(r[0][1], Cell::Float(f) if f == 0.5));
    assert!(matches!(r[0][2], Cell::Text(ref s) if s == "1.50"));
    assert!(matches!(r[1][2], Cell::Text(ref s) if s == "-0.01"));
    let s = StringArray::from(vec![Some(""), None]);
    let b = RecordBatch::try_from_iter(vec![("s", Arc::new(s) as ArrayRef)]).unwrap();
    let r = rows(&b);
    assert!(matches!(r[0][0], Cell::Text(ref s) if s.is_empty()));
    assert!(matches!(r[1][0], Cell::Null));
}

#[test]
fn unordered_accepts_permutations_and_float_noise() {
    let a = batch(
        vec![Some(1), Some(2), None],
        vec![Some(1.0), Some(1e9), None],
        vec![Some(1), Some(2), None],
    );
    let b = batch(
        vec![None, Some(2), Some(1)],
        vec![None, Some(1e9 + 1e-3), Some(1.0 + 1e-12)],
        vec![None, Some(2), Some(1)],
    );
    compare_rows("t", &rows(&a), &rows(&b), &OutputOrder::Unordered).unwrap();
}

#[test]
fn rejects_differences() {
    let a = batch(
        vec![Some(1), Some(2)],
        vec![Some(1.0), Some(2.0)],
        vec![Some(1), Some(2)],
    );
    // A float beyond the tolerance.
    let b = batch(
        vec![Some(1), Some(2)],
        vec![Some(1.0), Some(2.001)],
        vec![Some(1), Some(2)],
    );
    assert!(compare_rows("t", &rows(&a), &rows(&b), &OutputOrder::Unordered).is_err());
    // Decimals are exact.
    let b = batch(
        vec![Some(1), Some(2)],
        vec![Some(1.0), Some(2.0)],
        vec![Some(1), Some(3)],
    );
    assert!(compare_rows("t", &rows(&a), &rows(&b), &OutputOrder::Unordered).is_err());
    // NULL is not a value.
    let b = batch(
        vec![Some(1), None],
        vec![Some(1.0), Some(2.0)],
        vec![Some(1), Some(2)],
    );
    assert!(compare_rows("t", &rows(&a), &rows(&b), &OutputOrder::Unordered).is_err());
    // A missing row, a duplicated row.
    let b = batch(vec![Some(1)], vec![Some(1.0)], vec![Some(1)]);
    assert!(compare_rows("t", &rows(&a), &rows(&b), &OutputOrder::Unordered).is_err());
    let b = batch(
        vec![Some(1), Some(1)],
        vec![Some(1.0), Some(1.0)],
        vec![Some(1), Some(1)],
    );
    assert!(compare_rows("t", &rows(&a), &rows(&b), &OutputOrder::Unordered).is_err());
    // The wrong order.
    let b = batch(
        vec![Some(2), Some(1)],
        vec![Some(2.0), Some(1.0)],
        vec![Some(2), Some(1)],
    );
    assert!(compare_rows("t", &rows(&a), &rows(&b), &OutputOrder::Exact).is_err());
    let keys = OutputOrder::Keys {
        keys: vec![0],
        limited: false,
    };
    assert!(compare_rows("t", &rows(&a), &rows(&b), &keys).is_err());
}

#[test]
fn ties_compare_as_multisets() {
    let keys = OutputOrder::Keys {
        keys: vec![0],
        limited: false,
    };
    let a = batch(
        vec![Some(1), Some(1), Some(2)],
        vec![Some(1.0), Some(2.0), Some(3.0)],
        vec![Some(1), Some(2), Some(3)],
    );
    let b = batch(
        vec![Some(1), Some(1), Some(2)],
        vec![Some(2.0), Some(1.0), Some(3.0)],
        vec![Some(2), Some(1), Some(3)],
    );
    compare_rows("t", &rows(&a), &rows(&b), &keys).unwrap();
    assert!(compare_rows("t", &rows(&a), &rows(&b), &OutputOrder::Exact).is_err());
    // The last tie group of a LIMIT may hold other rows with the same key.
    let a = batch(
        vec![Some(1), Some(2), Some(2)],
        vec![Some(1.0), Some(2.0), Some(3.0)],
        vec![Some(1), Some(2), Some(3)],
    );
    let b = batch(
        vec![Some(1), Some(2), Some(2)],
        vec![Some(1.0), Some(4.0), Some(5.0)],
        vec![Some(1), Some(4), Some(5)],
    );
    let limited = OutputOrder::Keys {
        keys: vec![0],
        limited: true,
    };
    compare_rows("t", &rows(&a), &rows(&b), &limited).unwrap();
    assert!(compare_rows("t", &rows(&a), &rows(&b), &keys).is_err());
    // ... but not a different key.
    let b = batch(
        vec![Some(1), Some(2), Some(3)],
        vec![Some(1.0), Some(2.0), Some(3.0)],
        vec![Some(1), Some(2), Some(3)],
    );
    assert!(compare_rows("t", &rows(&a), &rows(&b), &limited).is_err());
}

#[test]
fn schemas_compare_names_and_types_not_nullability() {
    let a = Schema::new(vec![Field::new("x", DataType::Int64, false)]);
    let b = Schema::new(vec![Field::new("x", DataType::Int64, true)]);
    assert!(compare_schemas("t", &a, &b).unwrap().is_some());
    let c = Schema::new(vec![Field::new("y", DataType::Int64, false)]);
    assert!(compare_schemas("t", &a, &c).is_err());
    let d = Schema::new(vec![Field::new("x", DataType::Int32, false)]);
    assert!(compare_schemas("t", &a, &d).is_err());
}
