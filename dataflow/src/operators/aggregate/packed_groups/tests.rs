//! Packed keys against arrow-row keys: the same group index for every row,
//! the same emitted keys, across batches that force the switch to rows.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Date32Array, Decimal128Array, Int32Array, Int64Array, StringArray,
    StringViewArray, UInt8Array,
};
use arrow::datatypes::DataType;

use super::{layout, PackedOrRows};
use crate::operators::aggregate::group_values::{GroupValues, RowGroups};

/// Interns every batch in both tables and compares indices and the
/// emitted keys; returns whether the packed table switched to rows.
fn same_as_rows(types: &[DataType], batches: &[Vec<ArrayRef>]) -> bool {
    let mut packed = PackedOrRows::try_new(types).expect("packable key types");
    let mut rows = RowGroups::try_new(types).unwrap();
    for batch in batches {
        let n = batch[0].len();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        packed.intern(batch, n, &mut a).unwrap();
        rows.intern(batch, n, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(packed.len(), rows.len());
    }
    let switched = matches!(packed, PackedOrRows::Rows(_));
    let (a, b) = (packed.emit().unwrap(), rows.emit().unwrap());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.data_type(), y.data_type());
        assert_eq!(x.as_ref(), y.as_ref());
    }
    assert_eq!(packed.len(), 0);
    switched
}

fn views(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringViewArray::from(v.to_vec()))
}

#[test]
fn short_strings_with_nulls_stay_packed() {
    let types = [DataType::Utf8View, DataType::Utf8View];
    let b1 = vec![
        views(&[Some("A"), Some("N"), Some("A"), None, Some("")]),
        views(&[Some("F"), Some("O"), Some("F"), Some("F"), None]),
    ];
    let b2 = vec![
        views(&[Some("R"), None, Some("N"), Some("")]),
        views(&[Some("F"), Some("F"), Some("O"), Some("")]),
    ];
    assert!(!same_as_rows(&types, &[b1, b2]));
}

#[test]
fn a_longer_string_switches_to_rows_keeping_indices() {
    let types = [DataType::Utf8View, DataType::Utf8];
    let long = "a string longer than any inline view";
    let b1 = vec![
        views(&[Some("x"), Some("y"), Some("x")]),
        Arc::new(StringArray::from(vec![Some("1"), None, Some("1")])) as ArrayRef,
    ];
    let b2 = vec![
        views(&[Some("y"), Some(long), Some("x")]),
        Arc::new(StringArray::from(vec![None, Some("2"), Some("1")])) as ArrayRef,
    ];
    let b3 = vec![
        views(&[Some(long), Some("z")]),
        Arc::new(StringArray::from(vec![Some("2"), Some("3")])) as ArrayRef,
    ];
    assert!(same_as_rows(&types, &[b1, b2, b3]));
}

#[test]
fn fixed_width_keys_fill_all_128_bits() {
    // q3's keys: bigint, date, int = 128 bits, no room for validity bits.
    let types = [DataType::Int64, DataType::Date32, DataType::Int32];
    let parts = layout(&types).unwrap();
    assert!(parts.iter().all(|p| !p.nullable));
    let b1: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![-1, i64::MAX, -1, 7])),
        Arc::new(Date32Array::from(vec![9000, -3, 9000, 0])),
        Arc::new(Int32Array::from(vec![i32::MIN, 0, i32::MIN, 0])),
    ];
    assert!(!same_as_rows(&types, std::slice::from_ref(&b1)));
    // A NULL with no validity bit: rows from then on.
    let b2: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![Some(7), None])),
        Arc::new(Date32Array::from(vec![Some(0), Some(0)])),
        Arc::new(Int32Array::from(vec![Some(0), Some(0)])),
    ];
    assert!(same_as_rows(&types, &[b1, b2]));
}

#[test]
fn mixed_fixed_and_strings_with_nulls() {
    let types = [
        DataType::UInt8,
        DataType::Utf8View,
        DataType::Decimal128(15, 2),
    ];
    // 8 + 128 bits: a decimal does not fit with anything else.
    assert!(layout(&types).is_none());
    let types = [DataType::UInt8, DataType::Utf8View, DataType::Int32];
    let parts = layout(&types).unwrap();
    assert!(parts.iter().all(|p| p.nullable));
    let b: Vec<ArrayRef> = vec![
        Arc::new(UInt8Array::from(vec![
            Some(1),
            None,
            Some(1),
            Some(255),
            None,
        ])),
        views(&[Some("ab"), Some("ab"), Some("ab"), None, Some("ab")]),
        Arc::new(Int32Array::from(vec![
            Some(-5),
            Some(-5),
            Some(-5),
            None,
            Some(-5),
        ])),
    ];
    assert!(!same_as_rows(&types, &[b.clone(), b]));
}

#[test]
fn a_lone_decimal_key_fits_without_validity() {
    let types = [DataType::Decimal128(15, 2)];
    let b: Vec<ArrayRef> = vec![Arc::new(
        Decimal128Array::from(vec![12345, -1, 12345])
            .with_precision_and_scale(15, 2)
            .unwrap(),
    )];
    assert!(!same_as_rows(&types, &[b]));
}

#[test]
fn plain_strings_stay_packed_and_come_back_as_strings() {
    let types = [DataType::Utf8, DataType::Int32];
    let b: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![
            Some("MAIL"),
            None,
            Some("SHIP"),
            Some("MAIL"),
        ])),
        Arc::new(Int32Array::from(vec![Some(1), Some(1), None, Some(1)])),
    ];
    assert!(!same_as_rows(&types, &[b]));
}
