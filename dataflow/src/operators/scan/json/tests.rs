use super::*;
use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};

fn write_temp(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path.to_string_lossy().into_owned()
}

fn table() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]))
}

fn spec(projection: Vec<usize>, batch_size: usize) -> JsonSpec {
    let t = table();
    JsonSpec {
        schema: Arc::new(t.project(&projection).unwrap()),
        table_schema: t,
        projection,
        batch_size,
    }
}

async fn collect(path: String, spec: JsonSpec) -> Result<Vec<RecordBatch>> {
    let mut s = Box::pin(scan_file(path, spec));
    let mut out = vec![];
    while let Some(b) = s.next().await {
        out.push(b?);
    }
    Ok(out)
}

const ROWS: &str = r#"{"id": 1, "name": "ann", "amount": 1.5}

{"id": 2, "name": "bob", "extra": [1, 2]}
{"amount": 3.25, "id": 3}
{"id": 4, "name": "dee", "amount": 4}"#;

#[tokio::test]
async fn reads_lines_in_batches_with_projection_missing_fields_and_no_final_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "t.json", ROWS);
    let batches = collect(path, spec(vec![2, 0], 2)).await.unwrap();
    // Batches of at most 2 lines (the blank line counts as one).
    assert!(batches.iter().all(|b| b.num_rows() <= 2), "{batches:?}");
    let ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    let amounts: Vec<Option<f64>> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_primitive::<Float64Type>()
                .iter()
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(amounts, vec![Some(1.5), None, Some(3.25), Some(4.0)]);
}

#[tokio::test]
async fn a_malformed_line_is_named_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(
        &dir,
        "bad.json",
        "{\"id\": 1}\n{\"id\": 2}\n\n{\"id\": 3, \"name\": }\n{\"id\": 5}\n",
    );
    for batch_size in [1, 2, 100] {
        let e = collect(path.clone(), spec(vec![0], batch_size))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&path) && e.contains("line 4:"),
            "{batch_size}: {e}"
        );
    }
    // A value of the wrong type fails when the batch is built.
    let path = write_temp(&dir, "type.json", "{\"id\": 1}\n{\"id\": \"x\"}\n");
    let e = collect(path.clone(), spec(vec![0], 10))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&path) && e.contains("line 2:"), "{e}");
    // An unterminated last record.
    let path = write_temp(&dir, "cut.json", "{\"id\": 1}\n{\"id\": 2");
    let e = collect(path.clone(), spec(vec![0], 10))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&path) && e.contains("line 2:"), "{e}");
}

#[test]
fn infers_types_and_merges_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_temp(&dir, "a.json", "{\"id\": 1, \"name\": \"x\"}\n");
    let b = write_temp(&dir, "b.json", "{\"id\": 2.5, \"amount\": 2}\n");
    let schema = json_infer_files(&[a, b]).unwrap();
    let mut fields: Vec<(String, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            ("amount".into(), DataType::Int64),
            ("id".into(), DataType::Float64),
            ("name".into(), DataType::Utf8),
        ]
    );
    let c = write_temp(&dir, "c.json", "{\"id\": 1}\n\n{\"id\": }\n");
    let e = json_infer_schema(&c).unwrap_err().to_string();
    assert!(e.contains("c.json") && e.contains("line 3:"), "{e}");
    let missing = dir.path().join("missing.json");
    let e = json_infer_schema(&missing.to_string_lossy())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing.json") && e.contains("no such file"),
        "{e}"
    );
}

#[test]
fn inference_reads_a_bounded_head() {
    let dir = tempfile::tempdir().unwrap();
    // No newline in the first MiB: an error naming the file, not a read of
    // the whole file.
    let huge = format!("{{\"a\": \"{}\"}}\n", "x".repeat(2 << 20));
    let path = write_temp(&dir, "huge.json", &huge);
    let e = json_infer_files(std::slice::from_ref(&path))
        .unwrap_err()
        .to_string();
    assert!(e.contains("huge.json") && e.contains("longer than"), "{e}");
    // Whole lines up to the bound are enough.
    let mut many = String::new();
    while many.len() < (3 << 20) / 2 {
        many.push_str("{\"a\": 1, \"b\": \"some text to fill the file\"}\n");
    }
    let path = write_temp(&dir, "many.json", &many);
    let schema = json_infer_files(&[path]).unwrap();
    assert_eq!(schema.fields().len(), 2);
}
