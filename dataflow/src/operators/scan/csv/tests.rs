use super::*;
use arrow::array::{AsArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use futures::StreamExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn write_temp(name: &str, content: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "ffq-csv-scan-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join(name);
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

fn spec(has_header: bool, delimiter: u8, projection: Vec<usize>, batch: usize) -> CsvSpec {
    let t = table();
    CsvSpec {
        has_header,
        delimiter,
        schema: Arc::new(t.project(&projection).unwrap()),
        table_schema: t,
        projection,
        batch_size: batch,
    }
}

async fn collect(files: Vec<String>, spec: CsvSpec) -> Result<Vec<RecordBatch>> {
    let mut s = Box::pin(scan_files(files, spec));
    let mut out = vec![];
    while let Some(b) = s.next().await {
        out.push(b?);
    }
    Ok(out)
}

#[tokio::test]
async fn reads_header_delimiter_projection() {
    let a = write_temp("a.csv", "id|name|amount\n1|ann|1.5\n2|bob|\n3|cy|3.25\n");
    let b = write_temp("b.csv", "id|name|amount\n4|dee|4\n");
    let batches = collect(vec![a, b], spec(true, b'|', vec![2, 0], 2))
        .await
        .unwrap();
    assert!(batches
        .iter()
        .all(|b| b.num_rows() <= 2 && b.num_columns() == 2));
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
    assert_eq!(batches[0].schema().field(0).name(), "amount");
}

#[tokio::test]
async fn reads_without_header_and_empty_projection() {
    let a = write_temp("a.csv", "1,x,0.5\n2,\"y,z\",1\n");
    let batches = collect(vec![a.clone()], spec(false, b',', vec![0, 1, 2], 10))
        .await
        .unwrap();
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(
        b.column(0).as_ref(),
        &Int64Array::from(vec![1, 2]) as &dyn arrow::array::Array
    );
    assert_eq!(
        b.column(1).as_ref(),
        &StringArray::from(vec!["x", "y,z"]) as &dyn arrow::array::Array
    );
    let batches = collect(vec![a], spec(false, b',', vec![], 10))
        .await
        .unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn bad_rows_name_path_and_line() {
    // line 3 (the second data row) holds a bad value.
    let bad_value = write_temp("bad_value.csv", "id,name,amount\n1,a,1\nxx,b,2\n3,c,3\n");
    let err = collect(
        vec![bad_value.clone()],
        spec(true, b',', vec![0, 1, 2], 100),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataflowError::File { .. }), "{msg}");
    assert!(msg.contains(&bad_value) && msg.contains("line 3"), "{msg}");
    assert!(msg.contains("'xx'"), "{msg}");

    // line 4 has too few fields.
    let short = write_temp("short.csv", "id,name,amount\n1,a,1\n2,b,2\n3,c\n");
    let err = collect(vec![short.clone()], spec(true, b',', vec![0], 100))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&short) && msg.contains("line 4"), "{msg}");

    // Without a header, the bad value on line 2.
    let nh = write_temp("nh.csv", "1,a,1\n2,b,zz\n");
    let err = collect(vec![nh.clone()], spec(false, b',', vec![0, 2], 100))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&nh) && msg.contains("line 2"), "{msg}");

    let missing = format!("{nh}.missing");
    let err = collect(vec![missing.clone()], spec(false, b',', vec![0], 100))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&missing) && msg.contains("no such file"),
        "{msg}"
    );
}

#[test]
fn renumbers_value_errors_only_after_at_line() {
    assert_eq!(
        renumber_line("bad 'x' for column 0 at line 2. Row data: '[x]'").as_deref(),
        Some("bad 'x' for column 0 at line 3. Row data: '[x]'")
    );
    assert_eq!(renumber_line("no line here"), None);
}

#[test]
fn infers_schema() {
    let p = write_temp(
        "i.csv",
        "id;name;amount;day\n1;ann;1.5;2020-01-01\n2;bob;2;2020-02-03\n",
    );
    let s = csv_infer_schema(&p, true, b';').unwrap();
    let got: Vec<(&str, &DataType)> = s
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("id", &DataType::Int64),
            ("name", &DataType::Utf8),
            ("amount", &DataType::Float64),
            ("day", &DataType::Date32),
        ]
    );
    let s = csv_infer_schema(&p, false, b';').unwrap();
    assert_eq!(s.field(0).name(), "column_1");
    assert_eq!(s.field(0).data_type(), &DataType::Utf8);
    let err = csv_infer_schema(&format!("{p}.nope"), true, b',').unwrap_err();
    assert!(err.to_string().contains("i.csv.nope"), "{err}");
}

use crate::test_util::run;

#[tokio::test]
async fn operator_through_runner() {
    use crate::plan::{PhysicalPlan, ScanSource};
    let a = write_temp("a.csv", "id,name,amount\n1,a,1\n2,b,2\n3,c,3\n");
    let t = table();
    let plan = PhysicalPlan::Scan {
        source: ScanSource::Csv {
            partitions: vec![vec![a.clone(), a]],
            has_header: true,
            delimiter: b',',
        },
        table_schema: Arc::clone(&t),
        projection: Some(vec![1]),
        pruning: vec![],
        schema: Arc::new(t.project(&[1]).unwrap()),
    };
    let batches = run(&plan, vec![], 2).await.unwrap();
    let mut names = vec![];
    for b in batches {
        assert!(b.num_rows() <= 2);
        names.extend(
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap().to_string()),
        );
    }
    assert_eq!(names, ["a", "b", "c", "a", "b", "c"]);
}
