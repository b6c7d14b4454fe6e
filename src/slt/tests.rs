//! Unit tests of the sqllogictest runner: rendering, rounding, the
//! column validator and a run over small files.

use super::*;
use arrow::array::RecordBatch;
use arrow::array::{BooleanArray, Decimal128Array, Float64Array, Int32Array, StringArray};
use arrow::datatypes::Field;
use arrow::datatypes::{DataType, Schema};
use sqllogictest::DBOutput;
use std::sync::Arc;

#[test]
fn rounding() {
    assert_eq!(round_decimal_string("1.50", 12), "1.5");
    assert_eq!(round_decimal_string("2.000", 12), "2");
    assert_eq!(round_decimal_string("0.30000000000000004", 12), "0.3");
    assert_eq!(round_decimal_string("-0.0000000000001", 12), "0");
    assert_eq!(round_decimal_string("9.9999999999999", 12), "10");
    assert_eq!(round_decimal_string("0.0000000000005", 12), "0");
    assert_eq!(
        round_decimal_string("0.0000000000015", 12),
        "0.000000000002"
    );
    assert_eq!(round_decimal_string("-12.345", 2), "-12.34");
    assert_eq!(round_decimal_string("-12.3451", 2), "-12.35");
    assert_eq!(round_decimal_string("100", 12), "100");
    assert_eq!(round_decimal_string("abc", 12), "abc");
}

#[test]
fn rendering() {
    let schema = Schema::new(vec![
        Field::new("i", DataType::Int32, true),
        Field::new("f", DataType::Float64, true),
        Field::new("d", DataType::Decimal128(10, 2), true),
        Field::new("s", DataType::Utf8, true),
        Field::new("b", DataType::Boolean, true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema.clone()),
        vec![
            Arc::new(Int32Array::from(vec![Some(1), None])),
            Arc::new(Float64Array::from(vec![Some(0.1 + 0.2), Some(f64::NAN)])),
            Arc::new(
                Decimal128Array::from(vec![Some(150), None])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            Arc::new(StringArray::from(vec![Some(""), None])),
            Arc::new(BooleanArray::from(vec![Some(true), None])),
        ],
    )
    .unwrap();
    let DBOutput::Rows { types, rows } = batches_to_output(&schema, &[batch]).unwrap() else {
        panic!("expected rows")
    };
    assert_eq!(
        types,
        vec![
            ColType::Integer,
            ColType::Float,
            ColType::Float,
            ColType::Text,
            ColType::Text
        ]
    );
    assert_eq!(rows[0], vec!["1", "0.3", "1.5", "(empty)", "true"]);
    assert_eq!(rows[1], vec!["NULL", "NaN", "NULL", "NULL", "NULL"]);
    assert!(matches!(
        batches_to_output(&Schema::empty(), &[]).unwrap(),
        DBOutput::StatementComplete(0)
    ));
}

#[test]
fn validator() {
    use ColType::*;
    assert!(column_validator(&vec![Integer, Text], &vec![Integer, Text]));
    assert!(column_validator(
        &vec![Integer, Text],
        &vec![Integer, Other('B')]
    ));
    assert!(!column_validator(&vec![Integer, Text], &vec![Float, Text]));
    assert!(!column_validator(&vec![Integer], &vec![Integer, Text]));
}

#[tokio::test]
async fn runs_a_file() {
    let dir = std::env::temp_dir().join(format!("ffq-slt-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ok = dir.join("a_ok.slt");
    std::fs::write(
        &ok,
        "query IT\nSELECT 1, 'x'\n----\n1 x\n\nstatement error\nSELECT nope\n",
    )
    .unwrap();
    let bad = dir.join("b_bad.slt");
    std::fs::write(
        &bad,
        "query I\nSELECT 1\n----\n2\n\nquery I\nSELECT 3\n----\n3\n",
    )
    .unwrap();
    let skip = dir.join("c_skip.slt");
    std::fs::write(
        &skip,
        "query I\nSELECT 1\n----\n1\n\nquery T\nSELECT (SELECT a FROM (VALUES (1)) s(a) WHERE s.a < t.b LIMIT 1) FROM (VALUES (2)) t(b)\n----\nx\n\n\
         statement ok\nBEGIN\n\nquery I\nSELECT 1\n----\n1\n",
    )
    .unwrap();
    let report = run_slt_dir(&dir).await.unwrap();
    assert_eq!(report.files.len(), 3);
    assert_eq!(
        report.files[0].status,
        FileStatus::Passed,
        "{:?}",
        report.files[0]
    );
    assert_eq!(report.files[0].passed, 2);
    assert_eq!(report.files[1].status, FileStatus::Failed);
    assert_eq!((report.files[1].passed, report.files[1].failed), (1, 1));
    assert!(
        report.files[1]
            .summary_line()
            .contains("b_bad.slt:1: query result mismatch"),
        "{}",
        report.files[1].summary_line()
    );
    let skipped = &report.files[2];
    assert_eq!(skipped.status, FileStatus::Skipped, "{skipped:?}");
    assert!(
        skipped.summary_line().contains("not supported"),
        "{}",
        skipped.summary_line()
    );
    assert_eq!((skipped.passed, skipped.skipped), (1, 3), "{skipped:?}");
    assert_eq!(report.closing_line(), "1 passed, 1 failed, 1 skipped");

    let strict = SltOptions {
        strict: true,
        ..SltOptions::default()
    };
    let report = run_slt_path(&skip, &strict).await.unwrap();
    assert_eq!(report.files[0].status, FileStatus::Failed);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn values_keep_inner_spaces_and_a_failed_set_stops_nothing() {
    let dir = std::env::temp_dir().join(format!("ffq-slt-spaces-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("spaces.slt");
    std::fs::write(
        &file,
        "statement ok\nSET memory_limit = 10\n\n\
         query T\nSELECT 'a  b'\n----\na  b\n\n\
         query T\nSELECT 'a b'\n----\na  b\n\n\
         query T\nSELECT '   '\n----\n   \n\n\
         statement ok\nSET no_such_setting = 1\n\n\
         query I\nSELECT 1\n----\n1\n",
    )
    .unwrap();
    let report = run_slt_path(&file, &SltOptions::default()).await.unwrap();
    let f = &report.files[0];
    // The SET of a fixed setting is skipped (not supported), the unknown
    // one fails: both alone. Two spaces are not one.
    assert_eq!((f.passed, f.failed, f.skipped), (3, 2, 1), "{f:?}");
    assert!(f.failures[0].contains("a b"), "{:?}", f.failures);
    assert!(
        f.failures[1].contains("no_such_setting"),
        "{:?}",
        f.failures
    );
    std::fs::remove_dir_all(&dir).ok();
}
