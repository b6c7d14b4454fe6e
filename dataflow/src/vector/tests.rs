use super::*;
use arrow::array::{FixedSizeListArray, LargeListArray, ListArray};
use arrow::datatypes::{Field, Float32Type};
use datafusion_common::config::ConfigOptions;

fn udf(op: VectorOp) -> ScalarUDF {
    ScalarUDF::new_from_impl(VectorFunction::new(op))
}

fn invoke(
    op: VectorOp,
    a: ColumnarValue,
    b: ColumnarValue,
    rows: usize,
) -> DFResult<ColumnarValue> {
    let f = udf(op);
    let arg_fields = [&a, &b]
        .iter()
        .map(|c| Arc::new(Field::new("x", c.data_type(), true)))
        .collect::<Vec<_>>();
    let types: Vec<_> = arg_fields.iter().map(|f| f.data_type().clone()).collect();
    let rt = f.return_type(&types)?;
    f.invoke_with_args(ScalarFunctionArgs {
        args: vec![a, b],
        arg_fields,
        number_rows: rows,
        return_field: Arc::new(Field::new(op.name(), rt, true)),
        config_options: Arc::new(ConfigOptions::default()),
    })
}

fn floats(v: ColumnarValue) -> Vec<Option<f64>> {
    match v {
        ColumnarValue::Array(a) => a.as_primitive::<Float64Type>().iter().collect(),
        ColumnarValue::Scalar(ScalarValue::Float64(v)) => vec![v],
        other => panic!("unexpected {other:?}"),
    }
}

fn fsl32(rows: Vec<Option<Vec<Option<f32>>>>, size: i32) -> ColumnarValue {
    ColumnarValue::Array(Arc::new(FixedSizeListArray::from_iter_primitive::<
        Float32Type,
        _,
        _,
    >(rows, size)))
}

fn list64(rows: Vec<Option<Vec<Option<f64>>>>) -> ColumnarValue {
    ColumnarValue::Array(Arc::new(
        ListArray::from_iter_primitive::<Float64Type, _, _>(rows),
    ))
}

fn lit64(v: &[f64]) -> ColumnarValue {
    let l = ListArray::from_iter_primitive::<Float64Type, _, _>([Some(
        v.iter().copied().map(Some).collect::<Vec<_>>(),
    )]);
    ColumnarValue::Scalar(ScalarValue::List(Arc::new(l)))
}

fn close(a: &[Option<f64>], b: &[Option<f64>]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (Some(x), Some(y)) => assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}"),
            (None, None) => {}
            _ => panic!("{a:?} vs {b:?}"),
        }
    }
}

#[test]
fn fixed_size_f32_against_scalar() {
    let col = || {
        fsl32(
            vec![
                Some(vec![Some(1.0), Some(2.0), Some(3.0)]),
                None,
                Some(vec![Some(0.0), Some(0.0), Some(0.0)]),
                Some(vec![Some(1.0), None, Some(3.0)]),
                Some(vec![Some(-1.0), Some(0.5), Some(2.0)]),
            ],
            3,
        )
    };
    let q = || lit64(&[1.0, 1.0, 1.0]);
    let dot = floats(invoke(VectorOp::DotProduct, col(), q(), 5).unwrap());
    close(&dot, &[Some(6.0), None, Some(0.0), None, Some(1.5)]);
    let l2 = floats(invoke(VectorOp::L2Distance, col(), q(), 5).unwrap());
    close(
        &l2,
        &[
            Some(5f64.sqrt()),
            None,
            Some(3f64.sqrt()),
            None,
            Some((4.0f64 + 0.25 + 1.0).sqrt()),
        ],
    );
    let cos = floats(invoke(VectorOp::CosineSimilarity, col(), q(), 5).unwrap());
    close(
        &cos,
        &[
            Some(6.0 / (14f64.sqrt() * 3f64.sqrt())),
            None,
            None, // zero vector
            None,
            Some(1.5 / (5.25f64.sqrt() * 3f64.sqrt())),
        ],
    );
}

#[test]
fn list_f64_columns() {
    let a = || {
        list64(vec![
            Some(vec![Some(1.0), Some(2.0)]),
            Some(vec![Some(3.0), Some(4.0), Some(5.0)]),
            Some(vec![]),
            None,
        ])
    };
    let b = || {
        list64(vec![
            Some(vec![Some(4.0), Some(6.0)]),
            Some(vec![Some(3.0), Some(4.0), Some(5.0)]),
            Some(vec![]),
            Some(vec![Some(1.0)]),
        ])
    };
    close(
        &floats(invoke(VectorOp::L2Distance, a(), b(), 4).unwrap()),
        &[Some(5.0), Some(0.0), Some(0.0), None],
    );
    close(
        &floats(invoke(VectorOp::DotProduct, a(), b(), 4).unwrap()),
        &[Some(16.0), Some(50.0), Some(0.0), None],
    );
    close(
        &floats(invoke(VectorOp::CosineSimilarity, a(), b(), 4).unwrap()),
        &[
            Some(16.0 / (5f64.sqrt() * 52f64.sqrt())),
            Some(1.0),
            None,
            None,
        ],
    );
}

#[test]
fn mixed_f32_f64_and_large_list() {
    let a = fsl32(vec![Some(vec![Some(1.0), Some(2.0)])], 2);
    let b = ColumnarValue::Array(Arc::new(LargeListArray::from_iter_primitive::<
        Float64Type,
        _,
        _,
    >([Some(vec![Some(4.0), Some(6.0)])])));
    close(
        &floats(invoke(VectorOp::L2Distance, a, b, 1).unwrap()),
        &[Some(5.0)],
    );
}

#[test]
fn sliced_arrays() {
    let l = ListArray::from_iter_primitive::<Float64Type, _, _>([
        Some(vec![Some(9.0)]),
        Some(vec![Some(1.0), Some(2.0)]),
        Some(vec![Some(3.0), Some(4.0)]),
    ])
    .slice(1, 2);
    let f = FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
        [
            Some(vec![Some(7.0), Some(7.0)]),
            Some(vec![Some(1.0), Some(2.0)]),
            Some(vec![Some(0.0), Some(0.0)]),
        ],
        2,
    )
    .slice(1, 2);
    let out = invoke(
        VectorOp::L2Distance,
        ColumnarValue::Array(Arc::new(l)),
        ColumnarValue::Array(Arc::new(f)),
        2,
    )
    .unwrap();
    close(&floats(out), &[Some(0.0), Some(5.0)]);
}

#[test]
fn scalars_give_a_scalar() {
    let out = invoke(
        VectorOp::L2Distance,
        lit64(&[1.0, 2.0]),
        lit64(&[4.0, 6.0]),
        1,
    )
    .unwrap();
    assert!(matches!(out, ColumnarValue::Scalar(ScalarValue::Float64(Some(v))) if v == 5.0));
    let out = invoke(
        VectorOp::DotProduct,
        lit64(&[1.0]),
        ColumnarValue::Scalar(ScalarValue::Null),
        1,
    )
    .unwrap();
    assert!(matches!(
        out,
        ColumnarValue::Scalar(ScalarValue::Float64(None))
    ));
}

#[test]
fn zero_vector_cosine_is_null() {
    let out = invoke(
        VectorOp::CosineSimilarity,
        lit64(&[0.0, 0.0]),
        lit64(&[1.0, 2.0]),
        1,
    )
    .unwrap();
    assert!(matches!(
        out,
        ColumnarValue::Scalar(ScalarValue::Float64(None))
    ));
}

#[test]
fn length_mismatch_is_an_error() {
    let col = fsl32(
        vec![
            Some(vec![Some(1.0), Some(2.0), Some(3.0)]),
            Some(vec![Some(1.0), Some(2.0), Some(3.0)]),
        ],
        3,
    );
    let err = invoke(VectorOp::L2Distance, col, lit64(&[1.0, 2.0]), 2)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("l2_distance") && err.contains("row 0") && err.contains("(3 and 2)"),
        "{err}"
    );
    // Two fixed-size lists of different sizes fail at planning.
    let f = udf(VectorOp::DotProduct);
    let t = |n| DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), n);
    let err = f.return_type(&[t(3), t(4)]).unwrap_err().to_string();
    assert!(
        err.contains("dot_product") && err.contains("(3 and 4)"),
        "{err}"
    );
}

#[test]
fn bad_types_fail_planning() {
    let f = udf(VectorOp::L2Distance);
    let list = DataType::List(Arc::new(Field::new("item", DataType::Float64, true)));
    let err = f
        .return_type(&[list.clone(), DataType::Utf8])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("l2_distance expects two vectors (lists of float), got Utf8"),
        "{err}"
    );
    let strings = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    assert!(f.return_type(&[list.clone(), strings]).is_err());
    assert_eq!(
        f.return_type(&[list.clone(), list]).unwrap(),
        DataType::Float64
    );
}

#[test]
fn integer_elements_are_converted() {
    let ints = ListArray::from_iter_primitive::<arrow::datatypes::Int64Type, _, _>([Some(vec![
        Some(4),
        Some(6),
    ])]);
    let out = invoke(
        VectorOp::L2Distance,
        lit64(&[1.0, 2.0]),
        ColumnarValue::Scalar(ScalarValue::List(Arc::new(ints))),
        1,
    )
    .unwrap();
    assert!(matches!(out, ColumnarValue::Scalar(ScalarValue::Float64(Some(v))) if v == 5.0));
}
