//! Bad input gives a clear error (checked on its Display text), never a
//! panic.

use crate::common::{self, assert_contains, query_error};
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use ffq::{CsvOptions, Engine};

fn engine() -> Engine {
    let engine = common::ffq_engine(2, 8192);
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int32, true),
        Field::new("v", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("d", DataType::Date32, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![Some(1), Some(2), None])),
        Arc::new(Int64Array::from(vec![Some(10), Some(0), Some(3)])),
        Arc::new(StringArray::from(vec![Some("abc"), Some("12"), None])),
        Arc::new(Date32Array::from(vec![Some(18000), None, Some(19000)])),
    ];
    let batch = RecordBatch::try_new(schema, columns).unwrap();
    engine.register_batches("t", vec![batch.clone()]).unwrap();
    engine.register_batches("u", vec![batch]).unwrap();
    engine
}

/// The error of planning `sql` (panics when planning succeeds).
async fn plan_error(engine: &Engine, sql: &str) -> String {
    match engine.sql(sql).await {
        Ok(_) => panic!("expected an error planning {sql:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn syntax_error_has_position() {
    let e = engine();
    // At the end of the text the parser names EOF instead of a position.
    let msg = plan_error(&e, "SELECT k FROM t WHERE").await;
    assert_contains(&msg, &["EOF"]);
    let msg = plan_error(&e, "SELEC k FROM t").await;
    assert_contains(&msg, &["SELEC", "Line", "Column"]);
    let msg = plan_error(&e, "SELECT k\nFROM t\nWHERE k = = 1").await;
    assert_contains(&msg, &["Line: 3"]);
}

#[tokio::test]
async fn unknown_table_is_named() {
    let msg = plan_error(&engine(), "SELECT * FROM no_such_table").await;
    assert_contains(&msg, &["no_such_table"]);
    assert!(msg.to_lowercase().contains("not found"), "{msg}");
}

#[tokio::test]
async fn unknown_column_is_named() {
    let msg = plan_error(&engine(), "SELECT no_such_column FROM t").await;
    assert_contains(&msg, &["no_such_column"]);
    let msg = plan_error(&engine(), "SELECT k FROM t WHERE t.zzz_col > 1").await;
    assert_contains(&msg, &["zzz_col"]);
}

#[tokio::test]
async fn ambiguous_column() {
    let msg = plan_error(&engine(), "SELECT k FROM t, u").await;
    assert!(msg.to_lowercase().contains("ambiguous"), "{msg}");
    assert_contains(&msg, &["k"]);
}

#[tokio::test]
async fn type_mismatch_at_planning() {
    // Comparing a date with a boolean is rejected by type coercion.
    let msg = plan_error(&engine(), "SELECT k FROM t WHERE d = true").await;
    assert_contains(&msg, &["Date32", "Boolean"]);
    let msg = plan_error(&engine(), "SELECT d + true FROM t").await;
    assert_contains(&msg, &["Date32", "Boolean"]);
}

#[tokio::test]
async fn unknown_function_is_named() {
    let msg = plan_error(&engine(), "SELECT no_such_fn(k) FROM t").await;
    assert_contains(&msg, &["no_such_fn"]);
}

#[tokio::test]
async fn inverted_window_frame() {
    let msg = plan_error(
        &engine(),
        "SELECT sum(v) OVER (ORDER BY k ROWS BETWEEN 1 FOLLOWING AND 1 PRECEDING) FROM t",
    )
    .await;
    assert_contains(&msg, &["window frame", "1 FOLLOWING"]);
}

#[tokio::test]
async fn window_offset_that_is_not_a_constant() {
    let msg = query_error(&engine(), "SELECT lag(v, k) OVER (ORDER BY k) FROM t").await;
    assert!(msg.contains("Literal"), "{msg}");
}

#[tokio::test]
async fn more_than_one_statement() {
    let msg = plan_error(&engine(), "SELECT 1; SELECT 2").await;
    assert!(msg.contains("statement"), "{msg}");
}

#[tokio::test]
async fn empty_statement() {
    let e = engine();
    // No statement at all: an error, not a panic.
    let r = e.sql("").await;
    assert!(r.is_err(), "empty SQL should be an error");
    let r = e.sql("   -- just a comment\n").await;
    assert!(r.is_err(), "SQL with only a comment should be an error");
}

#[tokio::test]
async fn runtime_errors_are_clear() {
    let e = engine();
    // Division by zero of a column (not constant-folded at planning).
    let msg = query_error(&e, "SELECT v / (v - v) FROM t").await;
    assert!(msg.to_lowercase().contains("divide by zero"), "{msg}");
    // A cast of a non-number string.
    let msg = query_error(&e, "SELECT CAST(s AS INT) FROM t").await;
    assert_contains(&msg, &["abc"]);
}

#[tokio::test]
async fn missing_parquet_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("does_not_exist.parquet");
    let path = path.to_str().unwrap();
    let e = Engine::new();
    let err = e
        .register_parquet("p", path)
        .expect_err("missing file must fail");
    assert_contains(&err.to_string(), &[path]);
    // A directory without parquet files.
    let dir_path = dir.path().to_str().unwrap();
    let err = e
        .register_parquet("p", dir_path)
        .expect_err("empty directory must fail");
    assert_contains(&err.to_string(), &[dir_path]);
}

#[tokio::test]
async fn corrupt_parquet_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.parquet");
    std::fs::write(
        &path,
        b"this is definitely not a parquet file, just some bytes PAR1",
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let e = Engine::new();
    let msg = match e.register_parquet("p", path) {
        Err(err) => err.to_string(),
        Ok(()) => query_error(&e, "SELECT * FROM p").await,
    };
    assert_contains(&msg, &[path]);
}

#[tokio::test]
async fn truncated_parquet_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.parquet");
    std::fs::write(&path, b"").unwrap();
    let path = path.to_str().unwrap();
    let e = Engine::new();
    let msg = match e.register_parquet("p", path) {
        Err(err) => err.to_string(),
        Ok(()) => query_error(&e, "SELECT * FROM p").await,
    };
    assert_contains(&msg, &[path]);
}

/// An engine with `contents` written to a CSV file registered as `c` with
/// two `Int64` columns (so registration reads no records); returns the
/// error of `SELECT a, b FROM c`.
async fn csv_query_error(contents: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, contents).unwrap();
    let path = path.to_str().unwrap().to_string();
    let e = Engine::new();
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("b", DataType::Int64, true),
    ]));
    e.register_csv(
        "c",
        &path,
        CsvOptions {
            schema: Some(schema),
            ..CsvOptions::default()
        },
    )
    .expect("registering with an explicit schema reads no records");
    (query_error(&e, "SELECT a, b FROM c").await, path)
}

#[tokio::test]
async fn csv_wrong_field_count_names_line_and_path() {
    // The record on line 4 has one field instead of two.
    let (msg, path) = csv_query_error("a,b\n1,2\n3,4\n5\n6,7\n").await;
    assert_contains(&msg, &[&path, "line 4"]);
}

#[tokio::test]
async fn csv_bad_value_names_line_and_path() {
    let (msg, path) = csv_query_error("a,b\n1,2\n3,4\n5,x\n").await;
    assert_contains(&msg, &[&path, "line 4"]);
}

#[tokio::test]
async fn missing_csv_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.csv");
    let path = path.to_str().unwrap();
    let err = Engine::new()
        .register_csv("c", path, CsvOptions::default())
        .expect_err("missing file must fail");
    assert_contains(&err.to_string(), &[path]);
}

#[tokio::test]
async fn invalid_arguments() {
    let e = Engine::new();
    let err = e.register_tpch(0.0).expect_err("scale factor 0");
    assert!(err.to_string().contains('0'), "{err}");
    let err = e.register_tpch(f64::NAN).expect_err("scale factor NaN");
    assert!(!err.to_string().is_empty());
    let err = e.register_batches("x", vec![]).expect_err("no batches");
    assert_contains(&err.to_string(), &["x"]);
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, true)]));
    let err = e
        .register_memory("bad name", schema, vec![])
        .expect_err("bad name");
    assert_contains(&err.to_string(), &["bad name"]);
}

/// Writes `batch` as the Parquet file `dir/file`.
fn write_parquet(dir: &std::path::Path, file: &str, batch: &RecordBatch) {
    let out = std::fs::File::create(dir.join(file)).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(out, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

fn one_column(name: &str, column: ArrayRef) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(
        name,
        column.data_type().clone(),
        true,
    )]));
    RecordBatch::try_new(schema, vec![column]).unwrap()
}

#[tokio::test]
async fn parquet_files_whose_column_types_conflict_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(
        dir.path(),
        "a.parquet",
        &one_column("x", Arc::new(Int64Array::from(vec![5]))),
    );
    write_parquet(
        dir.path(),
        "b.parquet",
        &one_column("x", Arc::new(StringArray::from(vec!["six"]))),
    );
    let e = common::ffq_engine(2, 8192);
    let msg = e
        .register_parquet("t", dir.path().to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert_contains(
        &msg,
        &["b.parquet", "column x", "Utf8", "Int64", "a.parquet"],
    );
}

#[tokio::test]
async fn csv_files_whose_column_types_conflict_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "x,y\n1,2\n").unwrap();
    std::fs::write(dir.path().join("b.csv"), "x,y\nsix,3\n").unwrap();
    let e = common::ffq_engine(2, 8192);
    let path = dir.path().to_str().unwrap();
    let msg = e
        .register_csv("t", path, CsvOptions::default())
        .unwrap_err()
        .to_string();
    assert_contains(&msg, &["b.csv", "column x", "Utf8", "Int64", "a.csv"]);
    // Without a conflict the files read as one table.
    std::fs::write(dir.path().join("b.csv"), "x,y\n6,3\n").unwrap();
    e.register_csv("t", path, CsvOptions::default()).unwrap();
    let rows = e
        .sql("SELECT sum(x), sum(y) FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&rows)
        .unwrap()
        .to_string();
    assert!(text.contains("| 7 ") && text.contains("| 5 "), "{text}");
}

#[tokio::test]
async fn special_files_as_table_paths_are_named_for_what_they_are() {
    let e = common::ffq_engine(2, 8192);
    let msg = e
        .register_csv("t", "/dev/zero", CsvOptions::default())
        .unwrap_err()
        .to_string();
    assert_contains(
        &msg,
        &[
            "/dev/zero",
            "character device",
            "not a regular file or a directory",
        ],
    );
    assert!(!msg.contains("os error 20"), "{msg}");

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let msg = e
        .register_parquet("p", fifo.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert_contains(&msg, &["pipe", "a FIFO (named pipe)"]);
}
