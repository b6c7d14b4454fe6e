use std::sync::Arc;

use std::path::Path;

use arrow::array::UInt64Array;
use arrow::datatypes::{DataType, Field, Schema};

use super::format::{encode_csv, encode_json};
use super::*;
use crate::plan::{FileFormat, PhysicalPlan};
use crate::test_util::{gather, kv_batch, kv_schema, memory_scan, memory_scan_operator, run};

#[test]
fn csv_kernel_writes_the_header_only_when_asked() {
    let schema = kv_schema("k", "v");
    let batch = kv_batch(&schema, &[(Some(1), "a,b"), (None, "c")]);
    let with = encode_csv(&batch, true, b',').unwrap();
    assert_eq!(String::from_utf8(with).unwrap(), "k,v\n1,\"a,b\"\n,c\n");
    let without = encode_csv(&batch, false, b'|').unwrap();
    assert_eq!(String::from_utf8(without).unwrap(), "1|a,b\n|c\n");
}

#[test]
fn json_kernel_writes_one_object_per_line_without_nulls() {
    let schema = kv_schema("k", "v");
    let batch = kv_batch(&schema, &[(Some(1), "a"), (None, "b\"")]);
    let text = String::from_utf8(encode_json(&batch).unwrap()).unwrap();
    assert_eq!(text, "{\"k\":1,\"v\":\"a\"}\n{\"v\":\"b\\\"\"}\n");
}

fn write_plan(input: PhysicalPlan, target: WriteTarget, format: FileFormat) -> PhysicalPlan {
    let file_schema = input.schema();
    gather(PhysicalPlan::Write {
        input: Box::new(input),
        sink: FileSink {
            target,
            format,
            file_schema,
            partition_by: vec![],
        },
        schema: write_count_schema(),
    })
}

fn counts(batches: &[RecordBatch]) -> Vec<u64> {
    let mut all: Vec<u64> = batches
        .iter()
        .flat_map(|b| {
            let c = b.column(0).as_any().downcast_ref::<UInt64Array>().unwrap();
            c.values().to_vec()
        })
        .collect();
    all.sort();
    all
}

#[tokio::test]
async fn a_directory_gets_one_file_per_partition_with_rows() {
    let dir = tempfile::tempdir().unwrap();
    let schema = kv_schema("k", "v");
    // Batch i goes to partition i; partition 2 has none.
    let batches = vec![
        kv_batch(&schema, &[(Some(1), "a"), (Some(2), "b")]),
        kv_batch(&schema, &[(Some(3), "c")]),
    ];
    let target = WriteTarget::Directory {
        dir: format!("{}/out/", dir.path().display()),
        prefix: "part-x".into(),
    };
    let format = FileFormat::Csv {
        has_header: true,
        delimiter: b',',
    };
    let plan = write_plan(memory_scan("t", &schema, 3), target, format);
    let out = run(&plan, vec![("t", batches)], 8192).await.unwrap();
    assert_eq!(counts(&out), vec![0, 1, 2]);
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["part-x-0.csv", "part-x-1.csv"]);
    let first = std::fs::read_to_string(dir.path().join("out/part-x-0.csv")).unwrap();
    assert_eq!(first, "k,v\n1,a\n2,b\n");
}

#[tokio::test]
async fn a_single_file_needs_one_partition_and_casts_to_the_file_schema() {
    let dir = tempfile::tempdir().unwrap();
    let schema = kv_schema("k", "v");
    let path = format!("{}/one.json", dir.path().display());
    let sink = FileSink {
        target: WriteTarget::File { path: path.clone() },
        format: FileFormat::Json,
        file_schema: Arc::new(Schema::new(vec![
            Field::new("key", DataType::Int64, true),
            Field::new("value", DataType::Utf8, true),
        ])),
        partition_by: vec![],
    };
    let refused = FileWrite::try_new(memory_scan_operator("t", 2, &schema), sink.clone());
    assert!(refused
        .err()
        .is_some_and(|e| e.to_string().contains("one input partition")));

    let plan = gather(PhysicalPlan::Write {
        input: Box::new(memory_scan("t", &schema, 1)),
        sink,
        schema: write_count_schema(),
    });
    let batches = vec![kv_batch(&schema, &[(Some(7), "x")])];
    let out = run(&plan, vec![("t", batches)], 8192).await.unwrap();
    assert_eq!(counts(&out), vec![1]);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"key\":7,\"value\":\"x\"}\n"
    );
}

#[tokio::test]
async fn a_failed_write_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let schema = kv_schema("k", "v");
    let path = format!("{}/failed.parquet", dir.path().display());
    // The second batch has a NULL where the file's column is NOT NULL.
    let file_schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int32, false),
        Field::new("v", DataType::Utf8, true),
    ]));
    let plan = gather(PhysicalPlan::Write {
        input: Box::new(memory_scan("t", &schema, 1)),
        sink: FileSink {
            target: WriteTarget::File { path: path.clone() },
            format: FileFormat::Parquet {
                compression: "snappy".into(),
            },
            file_schema,
            partition_by: vec![],
        },
        schema: write_count_schema(),
    });
    let batches = vec![
        kv_batch(&schema, &[(Some(1), "a")]),
        kv_batch(&schema, &[(None, "b")]),
    ];
    let e = run(&plan, vec![("t", batches)], 8192).await.unwrap_err();
    assert!(e.to_string().contains("failed.parquet"), "{e}");
    assert!(!Path::new(&path).exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn parquet_compressions_are_checked_by_name() {
    assert!(parquet_compression("zstd(3)").is_ok());
    assert!(parquet_compression("snappy").is_ok());
    let e = parquet_compression("zip").unwrap_err().to_string();
    assert!(e.contains("'zip'"), "{e}");
}

#[test]
fn rows_split_by_partition_values_in_order_of_first_appearance() {
    let schema = kv_schema("k", "v");
    let batch = kv_batch(
        &schema,
        &[
            (Some(1), "a/b"),
            (Some(2), "x"),
            (None, "a/b"),
            (Some(3), ".x"),
        ],
    );
    let groups = super::hive::split_by_partition(&batch, &[1]).unwrap();
    let keys: Vec<Vec<String>> = groups.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        keys,
        vec![
            vec!["a%2Fb".to_string()],
            vec!["x".into()],
            vec!["%2Ex".into()]
        ]
    );
    let sizes: Vec<(usize, usize)> = groups
        .iter()
        .map(|(_, b)| (b.num_rows(), b.num_columns()))
        .collect();
    assert_eq!(sizes, vec![(2, 1), (1, 1), (1, 1)]);
    let by_k = super::hive::split_by_partition(&batch, &[0]).unwrap();
    assert_eq!(by_k[2].0, vec![NULL_PARTITION.to_string()]);
    assert_eq!(
        super::hive::hive_path(
            "/d/",
            &["a".into(), "b".into()],
            &["1".into(), "x".into()],
            "f.csv"
        ),
        "/d/a=1/b=x/f.csv"
    );
}
