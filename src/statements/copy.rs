//! `COPY (query) TO 'path'` and `COPY table TO 'path'`, and the file
//! writes `INSERT INTO` a file-backed table shares with it
//! ([`write_files`]).
//!
//! The format comes from `STORED AS` (PARQUET, CSV, JSON), else from the
//! target's extension. A target ending in `/` (or without an extension, as
//! in DataFusion) is a directory receiving one file per partition; any
//! other target is one file. The query runs as usual, topped by a
//! [`PhysicalPlan::Write`] whose counts are gathered: on a cluster each
//! worker task writes its partition's file, and only row counts reach the
//! client. The answer is one row, `count`, the rows written.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{Array, ArrayRef, UInt64Array};
use arrow::datatypes::{Schema, SchemaRef};
use datafusion_expr::logical_plan::dml::CopyTo;
use datafusion_expr::LogicalPlan;
use ffq_dataflow::operators::write::parquet_compression;
use ffq_dataflow::plan::{
    write_count_schema, FileFormat, FileSink, Partitioning, PhysicalPlan, WriteTarget,
};

use super::external::csv_options;
use super::objects::check_unique_columns;
use super::output::rows;
use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::session::SessionState;

/// Parquet compression when none is given (DataFusion's default).
const DEFAULT_PARQUET_COMPRESSION: &str = "zstd(3)";

pub(super) async fn copy_to(session: &Arc<SessionState>, copy: CopyTo) -> Result<DataFrame> {
    let location = copy
        .output_url
        .strip_prefix("file://")
        .unwrap_or(&copy.output_url)
        .to_string();
    let format = file_format(&copy.file_type.get_ext(), &copy.options, &location)?;
    let target = if is_directory(&location) {
        WriteTarget::Directory {
            dir: location,
            prefix: unique_prefix(),
        }
    } else if copy.partition_by.is_empty() {
        WriteTarget::File { path: location }
    } else {
        return Err(Error::Plan(format!(
            "COPY ... PARTITIONED BY writes a directory of partitions; end '{location}' with '/'"
        )));
    };
    let input = Arc::unwrap_or_clone(copy.input);
    let count = write_files(session, input, target, format, None, &copy.partition_by).await?;
    count_result(session, count)
}

/// Whether a COPY target names a directory: it ends in `/`, or it has no
/// file extension.
fn is_directory(location: &str) -> bool {
    location.ends_with('/') || Path::new(location).extension().is_none()
}

/// The format `name` (from `STORED AS` or the target's extension) with
/// its `OPTIONS` (keys as datafusion-sql normalizes them: `format.`
/// prefixed, lower-case).
pub(super) fn file_format(
    name: &str,
    options: &HashMap<String, String>,
    target: &str,
) -> Result<FileFormat> {
    let format = match name.to_lowercase().as_str() {
        "parquet" => {
            let mut compression = DEFAULT_PARQUET_COMPRESSION.to_string();
            for (key, value) in sorted(options) {
                match key {
                    "format.compression" => compression = value.to_lowercase(),
                    _ => return unsupported_option(key, "Parquet", "format.compression"),
                }
            }
            parquet_compression(&compression)?;
            FileFormat::Parquet { compression }
        }
        "csv" => {
            let csv = csv_options(options, None)?;
            FileFormat::Csv {
                has_header: csv.has_header,
                delimiter: csv.delimiter,
            }
        }
        "json" | "ndjson" => {
            for (key, value) in sorted(options) {
                let uncompressed = value.is_empty() || value.eq_ignore_ascii_case("uncompressed");
                if !(key == "format.compression" && uncompressed) {
                    return unsupported_option(key, "JSON", "none");
                }
            }
            FileFormat::Json
        }
        other => {
            return Err(Error::NotSupported(format!(
                "file format '{other}' for '{target}'; write PARQUET, CSV or JSON \
                 (STORED AS, or a .parquet, .csv or .json file name)"
            )))
        }
    };
    Ok(format)
}

fn sorted(options: &HashMap<String, String>) -> Vec<(&str, &str)> {
    let mut all: Vec<(&str, &str)> = options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    all.sort();
    all
}

fn unsupported_option<T>(key: &str, format: &str, supported: &str) -> Result<T> {
    Err(Error::NotSupported(format!(
        "option '{key}' when writing {format} files (supported: {supported})"
    )))
}

/// A file name prefix no other write of this or any process uses.
pub(super) fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("part-{nanos:x}-{:x}-{n}", std::process::id())
}

/// Runs `query` and writes its rows to `target` in `format`, with the
/// columns of `file_schema` (the query's own when `None`), in Hive-style
/// directories of the columns `partition_by` (if any); returns the number
/// of rows written.
pub(super) async fn write_files(
    session: &Arc<SessionState>,
    query: LogicalPlan,
    target: WriteTarget,
    format: FileFormat,
    file_schema: Option<SchemaRef>,
    partition_by: &[String],
) -> Result<u64> {
    let (logical, physical) = session.plan_query(query).await?;
    let file_schema = match file_schema {
        Some(schema) => schema,
        None => {
            let schema = Schema::new(logical.schema().fields().clone());
            check_unique_columns("COPY", &schema)?;
            // The physical types, which the rows arrive in.
            let fields: Vec<_> = physical
                .schema()
                .fields()
                .iter()
                .zip(schema.fields())
                .map(|(p, l)| p.as_ref().clone().with_name(l.name()))
                .collect();
            Arc::new(Schema::new(fields))
        }
    };
    // The planner gathers a query's output into one partition; a
    // directory takes the partitions as they are, one file each.
    let input = match (physical, &target) {
        (
            PhysicalPlan::Exchange {
                input,
                partitioning: Partitioning::Gather,
            },
            WriteTarget::Directory { .. },
        ) => *input,
        (physical, _) => physical,
    };
    let partition_by = partition_by
        .iter()
        .map(|name| {
            file_schema.index_of(name).map_err(|_| {
                Error::Plan(format!(
                    "partition column '{name}' is not a column of the rows written"
                ))
            })
        })
        .collect::<Result<Vec<usize>>>()?;
    if partition_by.len() == file_schema.fields().len() {
        return Err(Error::Plan(
            "every column is a partition column: no column is left for the files".into(),
        ));
    }
    let write = PhysicalPlan::Write {
        input: Box::new(input),
        sink: FileSink {
            target,
            format,
            file_schema,
            partition_by,
        },
        schema: write_count_schema(),
    };
    let plan = PhysicalPlan::Exchange {
        input: Box::new(write),
        partitioning: Partitioning::Gather,
    };
    let mut written = 0u64;
    for batch in session.collect(&plan).await? {
        let counts = batch
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| Error::Plan("a write returned counts that are not UInt64".into()))?;
        written += counts.iter().flatten().sum::<u64>();
    }
    Ok(written)
}

/// The answer of a write: one row, `count`.
pub(super) fn count_result(session: &Arc<SessionState>, count: u64) -> Result<DataFrame> {
    let counts: ArrayRef = Arc::new(UInt64Array::from(vec![count]));
    rows(session, write_count_schema(), vec![counts])
}
