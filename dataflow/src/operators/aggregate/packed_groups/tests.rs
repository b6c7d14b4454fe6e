use std::sync::Arc;

use arrow::array::{ArrayRef, Int16Array, Int32Array, StringArray, StringViewArray};
use arrow::datatypes::DataType;

use super::PackedGroups;
use crate::operators::aggregate::group_values::{GroupValues, RowGroups};

/// Key columns of `n` rows with repeats, NULLs, short and long strings.
fn keys(n: usize, seed: usize) -> Vec<ArrayRef> {
    let s = |i: usize| -> Option<String> {
        match (i * 7 + seed) % 9 {
            0 => None,
            1 => Some(String::new()),
            2 => Some("a string longer than twelve bytes".into()),
            3 => Some("twelve bytes".into()),
            k => Some("x".repeat(k)),
        }
    };
    vec![
        Arc::new(Int32Array::from_iter(
            (0..n).map(|i| (i % 5 != 0).then_some((i % 3) as i32 - 1)),
        )),
        Arc::new(StringViewArray::from_iter((0..n).map(s))),
        Arc::new(StringArray::from_iter((0..n).map(|i| s(i / 2)))),
        Arc::new(Int16Array::from_iter(
            (0..n).map(|i| (i % 7 == 3).then_some(-5)),
        )),
    ]
}

fn types() -> Vec<DataType> {
    vec![
        DataType::Int32,
        DataType::Utf8View,
        DataType::Utf8,
        DataType::Int16,
    ]
}

#[test]
fn packed_keys_group_and_emit_as_the_row_encoding_does() {
    let mut packed = PackedGroups::try_new(&types()).expect("4 keys fit in 128 bits");
    let mut rows = RowGroups::try_new(&types()).unwrap();
    for round in 0..2 {
        for (batch, n) in [(0, 1000), (1, 37), (2, 500)] {
            let k = keys(n, batch + round);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            packed.intern(&k, n, &mut a).unwrap();
            rows.intern(&k, n, &mut b).unwrap();
            assert_eq!(a, b, "group ids, batch {batch}");
        }
        assert_eq!(packed.len(), rows.len());
        assert!(packed.len() > 50, "{} groups", packed.len());
        let (a, b) = (packed.emit().unwrap(), rows.emit().unwrap());
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.to_data(), y.to_data());
        }
        assert_eq!(packed.len(), 0);
    }
}

#[test]
fn sliced_keys_read_their_own_rows() {
    let full = keys(100, 0);
    let sliced: Vec<ArrayRef> = full.iter().map(|a| a.slice(10, 50)).collect();
    let mut packed = PackedGroups::try_new(&types()).unwrap();
    let mut rows = RowGroups::try_new(&types()).unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    packed.intern(&sliced, 50, &mut a).unwrap();
    rows.intern(&sliced, 50, &mut b).unwrap();
    assert_eq!(a, b);
    for (x, y) in packed.emit().unwrap().iter().zip(&rows.emit().unwrap()) {
        assert_eq!(x.to_data(), y.to_data());
    }
}

#[test]
fn keys_wider_than_128_bits_or_floats_are_not_packed() {
    assert!(PackedGroups::try_new(&[DataType::Int64, DataType::Int64]).is_none());
    assert!(PackedGroups::try_new(&[DataType::Float64, DataType::Int32]).is_none());
    assert!(PackedGroups::try_new(&[DataType::Decimal128(15, 2), DataType::Utf8]).is_none());
    assert!(PackedGroups::try_new(&[DataType::Int64, DataType::Utf8, DataType::Utf8]).is_none());
    assert!(PackedGroups::try_new(&[DataType::Date32, DataType::Utf8, DataType::Utf8]).is_some());
}
