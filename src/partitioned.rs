//! Hive-style partitioned tables (`CREATE EXTERNAL TABLE ... PARTITIONED
//! BY (year, month) LOCATION '/dir/'`): files live in
//! `/dir/year=2024/month=1/part.parquet`, and the partition columns are
//! table columns whose value is the directory's. The table's schema is the
//! files' columns followed by the partition columns (typed as declared;
//! strings when the table declares no columns), all partition columns
//! nullable (`__HIVE_DEFAULT_PARTITION__` is NULL).
//!
//! The directories are listed when the table is created (like the files
//! of other tables); the physical planner reads only the directories whose
//! values pass the query's filters on partition columns
//! (`planner::physical::partitioned`), so a pruned directory's files are
//! never opened. Local directories only, for now.

use std::path::Path;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::ScalarValue;

use crate::catalog::CsvOptions;
use crate::error::{Error, Result};

/// The value Hive writes for a NULL partition value.
const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// How the files of a partitioned table are stored.
#[derive(Debug, Clone)]
pub enum PartitionedFormat {
    Parquet,
    Csv(CsvOptions),
    Json,
}

impl PartitionedFormat {
    pub fn extension(&self) -> &'static str {
        match self {
            PartitionedFormat::Parquet => "parquet",
            PartitionedFormat::Csv(_) => "csv",
            PartitionedFormat::Json => "json",
        }
    }
}

/// One leaf directory: its partition values (one per partition column)
/// and its files.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionDir {
    pub values: Vec<ScalarValue>,
    pub files: Vec<String>,
}

/// A partitioned table's storage.
#[derive(Debug, Clone)]
pub struct PartitionedTable {
    pub format: PartitionedFormat,
    pub location: String,
    /// The partition columns, in `PARTITIONED BY` order: the last fields of
    /// the table schema.
    pub columns: Vec<String>,
    /// The leaf directories holding files, sorted by path.
    pub dirs: Vec<PartitionDir>,
}

impl PartitionedTable {
    /// The number of columns read from the files (the first fields of the
    /// table schema).
    pub fn file_columns(&self, table_schema: &Schema) -> usize {
        table_schema.fields().len() - self.columns.len()
    }
}

/// Lists `location` as a Hive-style tree over `columns`: the leaf
/// directories (`col=value` at each level, in order) holding files with
/// extension `ext`. Values are typed by `types` (one per column).
pub fn list_partitions(
    location: &str,
    columns: &[String],
    types: &[DataType],
    ext: &str,
) -> Result<Vec<PartitionDir>> {
    if ffq_dataflow::storage::is_url(location) {
        return Err(Error::NotSupported(format!(
            "PARTITIONED BY on object storage ({location}); use a local directory"
        )));
    }
    let root = location.strip_prefix("file://").unwrap_or(location);
    if !Path::new(root).is_dir() {
        return Err(Error::file(
            root,
            "a partitioned table's LOCATION must be a directory",
        ));
    }
    let mut dirs = Vec::new();
    walk(
        Path::new(root),
        columns,
        types,
        &mut Vec::new(),
        ext,
        &mut dirs,
    )?;
    Ok(dirs)
}

fn walk(
    dir: &Path,
    columns: &[String],
    types: &[DataType],
    values: &mut Vec<ScalarValue>,
    ext: &str,
    out: &mut Vec<PartitionDir>,
) -> Result<()> {
    let shown = dir.display().to_string();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::file(&shown, e))?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !name.starts_with('.') && !name.starts_with('_')
        })
        .collect();
    entries.sort_by_key(|e| e.file_name());
    let level = values.len();
    if level == columns.len() {
        let files: Vec<String> = entries
            .iter()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == ext))
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if !files.is_empty() {
            out.push(PartitionDir {
                values: values.clone(),
                files,
            });
        }
        return Ok(());
    }
    for entry in entries {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let column = &columns[level];
        let Some(raw) = name
            .split_once('=')
            .filter(|(key, _)| key == column)
            .map(|(_, value)| value)
        else {
            return Err(Error::file(
                path.display().to_string(),
                format!("expected a directory named {column}=<value> (PARTITIONED BY)"),
            ));
        };
        values.push(partition_value(raw, &types[level], &path)?);
        walk(&path, columns, types, values, ext, out)?;
        values.pop();
    }
    Ok(())
}

/// The typed value of directory `path`'s partition value `raw`
/// (percent-escapes decoded as Hive writes them).
fn partition_value(raw: &str, data_type: &DataType, path: &Path) -> Result<ScalarValue> {
    if raw == NULL_PARTITION {
        return Ok(ScalarValue::try_from(data_type)?);
    }
    let decoded = percent_decode(raw);
    ScalarValue::try_from_string(decoded.clone(), data_type).map_err(|e| {
        Error::file(
            path.display().to_string(),
            format!("partition value '{decoded}' is not a {data_type}: {e}"),
        )
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The table schema: `file_schema` then the partition columns (nullable).
pub fn table_schema(file_schema: &Schema, columns: &[String], types: &[DataType]) -> SchemaRef {
    let mut fields: Vec<Field> = file_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for (name, data_type) in columns.iter().zip(types) {
        fields.push(Field::new(name, data_type.clone(), true));
    }
    std::sync::Arc::new(Schema::new(fields))
}
