use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::config::parse_options;
use super::*;

#[test]
fn urls_are_told_from_local_paths() {
    for url in [
        "s3://bucket/prefix/",
        "S3://bucket/t.parquet",
        "gs://b/x",
        "az://container/x.csv",
        "abfss://c@acct.dfs.core.windows.net/x",
        "https://example.com/t.parquet",
        "http://127.0.0.1:9000/x",
    ] {
        assert!(is_url(url), "{url}");
    }
    for path in [
        "/tmp/t.parquet",
        "relative/dir",
        "file:///tmp/t.csv",
        "odd name with :// inside",
        "",
    ] {
        assert!(!is_url(path), "{path}");
    }
}

#[test]
fn options_parse_from_key_value_lines() {
    let text = "# credentials\naws_access_key_id = AK\n\nendpoint=http://127.0.0.1:9000\n";
    let options = parse_options(text, "f.conf").unwrap();
    assert_eq!(
        options,
        vec![
            ("aws_access_key_id".to_string(), "AK".to_string()),
            ("endpoint".to_string(), "http://127.0.0.1:9000".to_string()),
        ]
    );
    let err = parse_options("a=1\nno equals sign\n", "f.conf").unwrap_err();
    assert_eq!(
        err.to_string(),
        "f.conf: line 2: expected key=value, got \"no equals sign\""
    );
}

#[test]
fn unknown_options_and_bad_retry_settings_are_refused() {
    let err = set_options(vec![("aws_acess_key_id".into(), "x".into())]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("object store options: unknown option 'aws_acess_key_id'"),
        "{err}"
    );
    let err = set_options(vec![("retry_timeout".into(), "soon".into())]).unwrap_err();
    assert!(
        err.to_string()
            .contains("option retry_timeout=soon: expected a duration"),
        "{err}"
    );
    // Refused options leave the current ones in place.
    assert!(options().iter().all(|(k, _)| k != "retry_timeout"));
}

#[test]
fn unsupported_url_schemes_name_the_url() {
    let err = list_objects("ftp://host/t.parquet", "parquet").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("ftp://host/t.parquet: not supported"),
        "{text}"
    );
}

/// A Parquet object of 4 row groups of 10 000 rows and 4 Int64 columns.
async fn parquet_object(store: &Arc<dyn ObjectStore>, path: &ObjectPath) -> u64 {
    use arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    let columns: Vec<(String, ArrayRef)> = (0..4)
        .map(|c| {
            let values = Int64Array::from_iter_values((0..40_000).map(|i| i * 7 + c));
            (format!("c{c}"), Arc::new(values) as ArrayRef)
        })
        .collect();
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut buffer = Vec::new();
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(10_000))
        .build();
    let mut writer = ArrowWriter::try_new(&mut buffer, batch.schema(), Some(properties)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let size = buffer.len() as u64;
    store
        .put(path, object_store::PutPayload::from(buffer))
        .await
        .unwrap();
    size
}

#[tokio::test]
async fn parquet_objects_are_read_by_ranges_not_whole() {
    use futures::TryStreamExt;
    use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};

    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let path = ObjectPath::from("t/part-0.parquet");
    let size = parquet_object(&store, &path).await;

    let reader = ObjectReader::new(Arc::clone(&store), path.clone());
    let builder = ParquetRecordBatchStreamBuilder::new(reader.clone())
        .await
        .unwrap();
    assert_eq!(builder.metadata().num_row_groups(), 4);
    let footer = reader.fetched();
    assert!(footer < size / 10, "footer read {footer} of {size} bytes");

    // One column of one row group: about a sixteenth of the data.
    let mask = ProjectionMask::roots(builder.parquet_schema(), [2]);
    let batches: Vec<_> = builder
        .with_projection(mask)
        .with_row_groups(vec![1])
        .build()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 10_000);
    let first = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(first, 10_000 * 7 + 2);
    let fetched = reader.fetched();
    assert!(
        fetched < size / 4,
        "read {fetched} of {size} bytes for a sixteenth of the data"
    );
}
