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
