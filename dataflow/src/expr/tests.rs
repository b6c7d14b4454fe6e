use super::*;

#[test]
fn scalar_roundtrips_through_cbor() {
    for v in [
        ScalarValue::Int64(Some(42)),
        ScalarValue::Decimal128(Some(12345), 15, 2),
        ScalarValue::Utf8(Some("abc".into())),
        ScalarValue::Date32(Some(9000)),
        ScalarValue::Int32(None),
    ] {
        let e = PhysExpr::lit(v.clone());
        let mut buf = Vec::new();
        ciborium::into_writer(&e, &mut buf).unwrap();
        let back: PhysExpr = ciborium::from_reader(buf.as_slice()).unwrap();
        assert_eq!(back, e);
    }
}

#[test]
fn scalars_of_every_kind_roundtrip_through_cbor_exactly() {
    use arrow::datatypes::{DataType, TimeUnit};
    let values = [
        ScalarValue::Null,
        ScalarValue::Boolean(Some(true)),
        ScalarValue::Int8(Some(-8)),
        ScalarValue::Int16(None),
        ScalarValue::UInt64(Some(u64::MAX)),
        ScalarValue::Float32(Some(-0.0)),
        ScalarValue::Float64(Some(f64::NAN)),
        ScalarValue::Float64(Some(1e300)),
        ScalarValue::LargeUtf8(Some("large".into())),
        ScalarValue::Utf8View(Some("view".into())),
        ScalarValue::Utf8(None),
        ScalarValue::Date64(Some(-86_400_000)),
        ScalarValue::Decimal128(Some(i128::MAX / 3), 38, 10),
        ScalarValue::Decimal128(Some(-1), 5, -2),
        // Through the Arrow IPC form.
        ScalarValue::TimestampMicrosecond(Some(1), Some("+02:00".into())),
        ScalarValue::try_from(&DataType::Timestamp(TimeUnit::Nanosecond, None)).unwrap(),
        ScalarValue::Binary(Some(vec![0, 1, 255])),
    ];
    for v in values {
        let mut buf = Vec::new();
        ciborium::into_writer(&Scalar(v.clone()), &mut buf).unwrap();
        let back: Scalar = ciborium::from_reader(buf.as_slice()).unwrap();
        assert_eq!(back.0.data_type(), v.data_type(), "{v:?}");
        // NaN is not equal to itself: compare the rendering.
        assert_eq!(format!("{:?}", back.0), format!("{v:?}"));
    }
}

#[test]
fn a_decimal_type_that_cannot_exist_is_refused() {
    use ciborium::Value;
    let decimal = |precision: u8| {
        let wire = Value::Map(vec![(
            Value::Text("Decimal128".into()),
            Value::Array(vec![Value::from(1), Value::from(precision), Value::from(2)]),
        )]);
        let mut buf = Vec::new();
        ciborium::into_writer(&wire, &mut buf).unwrap();
        ciborium::from_reader::<Scalar, _>(buf.as_slice()).map_err(|e| e.to_string())
    };
    assert_eq!(
        decimal(10).unwrap().0,
        ScalarValue::Decimal128(Some(1), 10, 2)
    );
    let err = decimal(60).unwrap_err();
    assert!(err.contains("precision"), "{err}");
}

#[test]
fn a_literal_in_list_compiles_to_a_hash_set() {
    let schema = arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
        "a",
        arrow::datatypes::DataType::Int64,
        true,
    )]);
    let list = (0..1000)
        .map(|i| PhysExpr::lit(ScalarValue::Int64(Some(i))))
        .collect();
    let e = PhysExpr::InList {
        expr: Box::new(PhysExpr::Column {
            index: 0,
            name: "a".into(),
        }),
        list,
        negated: false,
    };
    let compiled = e
        .compile(&schema, &FunctionRegistry::with_defaults())
        .unwrap();
    // DataFusion's InListExpr probes a hash set when every item is constant.
    assert!(compiled.to_string().contains("IN (SET)"), "{compiled}");
}

#[test]
fn literals_larger_than_the_cbor_reader_scratch_roundtrip() {
    // A 100k-element list literal (a folded `range(100000)`) is ~800 KB of
    // IPC: far beyond ciborium's 4 KiB scratch buffer.
    let list = ScalarValue::List(Arc::new(arrow::array::ListArray::from_iter_primitive::<
        arrow::datatypes::Int64Type,
        _,
        _,
    >(vec![Some(
        (0..100_000).map(Some).collect::<Vec<_>>(),
    )])));
    let mut buf = Vec::new();
    ciborium::into_writer(&Scalar(list.clone()), &mut buf).unwrap();
    let back: Scalar = ciborium::from_reader(buf.as_slice()).unwrap();
    assert_eq!(back.0, list);
}
