//! `CREATE EXTERNAL TABLE ... STORED AS PARQUET|CSV|JSON`: maps onto the
//! session's Parquet, CSV and JSON registration; and `INSERT INTO` such a table,
//! which adds files to its directory.
//!
//! A table declared with its columns over a directory that holds no files
//! yet is empty until an `INSERT` writes some. `INSERT` never rewrites a
//! file: each statement adds new part files with a name of its own (see
//! [`super::copy::write_files`]), then the table's file list is read
//! again so that later scans see them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion_expr::logical_plan::CreateExternalTable;
use datafusion_expr::LogicalPlan;
use ffq_dataflow::operators::scan::json as json_scan;
use ffq_dataflow::operators::{csv_scan, parquet_scan};
use ffq_dataflow::plan::{FileFormat, WriteTarget};
use ffq_dataflow::storage;
use std::path::Path;

use super::copy;
use super::objects::{catalog_lock, check_create, forget_table_data, object_name};
use super::output::{no_rows, not_supported};
use crate::catalog::{list_files, CsvOptions, TableEntry, TableKind};
use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::partitioned::{self, list_partitions, PartitionedFormat, PartitionedTable};
use crate::session::SessionState;

pub(super) fn create_external_table(
    session: &Arc<SessionState>,
    e: CreateExternalTable,
) -> Result<DataFrame> {
    let name = object_name(&e.name)?;
    if e.unbounded {
        return not_supported("UNBOUNDED external tables");
    }
    if !e.constraints.is_empty() {
        return not_supported("PRIMARY KEY and UNIQUE constraints");
    }
    if !e.column_defaults.is_empty() {
        return not_supported("column DEFAULT values");
    }
    let location = match e.locations.as_slice() {
        [one] => one.strip_prefix("file://").unwrap_or(one).to_string(),
        _ => return not_supported("several LOCATIONs; give one file or directory"),
    };
    let declared: Option<SchemaRef> = if e.schema.fields().is_empty() {
        None
    } else {
        Some(Arc::new(Schema::new(e.schema.fields().clone())))
    };
    let file_type = e.file_type.to_uppercase();
    let _guard = catalog_lock();
    if !check_create(session, &name, false, e.if_not_exists, e.or_replace)? {
        return Ok(no_rows(session));
    }
    if !e.table_partition_cols.is_empty() {
        let table = Partitioned {
            columns: e.table_partition_cols.clone(),
            location,
            declared,
        };
        let entry = partitioned_table(&name, table, &file_type, &e.options)?;
        forget_table_data(session, &name);
        session.catalog.register(entry)?;
        return Ok(no_rows(session));
    }
    match file_type.as_str() {
        "PARQUET" => {
            if let Some(key) = e.options.keys().min() {
                return Err(Error::NotSupported(format!(
                    "option '{key}' of Parquet tables"
                )));
            }
            if let Some(schema) = declared
                .clone()
                .filter(|_| is_empty_directory(&location, "parquet"))
            {
                forget_table_data(session, &name);
                register_empty(
                    session,
                    &name,
                    schema,
                    TableKind::Parquet {
                        files: vec![],
                        location,
                    },
                )?;
                return Ok(no_rows(session));
            }
            if let Some(declared) = &declared {
                check_parquet_columns(&name, &location, declared)?;
            }
            forget_table_data(session, &name);
            session.register_parquet(&name, &location)?;
        }
        "CSV" => {
            let options = csv_options(&e.options, declared.clone())?;
            forget_table_data(session, &name);
            if let Some(schema) = declared.filter(|_| is_empty_directory(&location, "csv")) {
                register_empty(
                    session,
                    &name,
                    schema,
                    TableKind::Csv {
                        files: vec![],
                        options,
                        location,
                    },
                )?;
                return Ok(no_rows(session));
            }
            session.register_csv(&name, &location, options)?;
        }
        "JSON" | "NDJSON" => {
            if let Some(key) = e.options.keys().min() {
                return Err(Error::NotSupported(format!(
                    "option '{key}' of JSON tables"
                )));
            }
            forget_table_data(session, &name);
            if let Some(schema) = declared
                .clone()
                .filter(|_| is_empty_directory(&location, "json"))
            {
                register_empty(
                    session,
                    &name,
                    schema,
                    TableKind::Json {
                        files: vec![],
                        location,
                    },
                )?;
                return Ok(no_rows(session));
            }
            session.register_json(&name, &location, declared)?;
        }
        other => {
            return Err(Error::NotSupported(format!(
                "STORED AS {other}; external tables are PARQUET, CSV or JSON"
            )))
        }
    }
    Ok(no_rows(session))
}

/// What `CREATE EXTERNAL TABLE ... PARTITIONED BY` says.
struct Partitioned {
    columns: Vec<String>,
    location: String,
    declared: Option<SchemaRef>,
}

/// The catalog entry of a Hive-partitioned table: partition columns typed
/// as declared (strings when no columns are declared), file columns
/// declared or inferred from the first file.
fn partitioned_table(
    name: &str,
    table: Partitioned,
    file_type: &str,
    options: &HashMap<String, String>,
) -> Result<TableEntry> {
    let Partitioned {
        columns,
        location,
        declared,
    } = table;
    let format = match file_type {
        "PARQUET" | "JSON" | "NDJSON" => {
            if let Some(key) = options.keys().min() {
                return Err(Error::NotSupported(format!(
                    "option '{key}' of partitioned {file_type} tables"
                )));
            }
            if file_type == "PARQUET" {
                PartitionedFormat::Parquet
            } else {
                PartitionedFormat::Json
            }
        }
        "CSV" => PartitionedFormat::Csv(csv_options(options, None)?),
        other => {
            return Err(Error::NotSupported(format!(
                "STORED AS {other}; external tables are PARQUET, CSV or JSON"
            )))
        }
    };
    let (declared_files, types) = match &declared {
        Some(schema) => {
            let mut types = Vec::with_capacity(columns.len());
            for column in &columns {
                let field = schema.field_with_name(column).map_err(|_| {
                    Error::Plan(format!(
                        "partition column '{column}' of table '{name}' is not among its declared columns"
                    ))
                })?;
                types.push(field.data_type().clone());
            }
            let files: Vec<_> = schema
                .fields()
                .iter()
                .filter(|f| !columns.contains(f.name()))
                .cloned()
                .collect();
            (Some(Arc::new(Schema::new(files))), types)
        }
        None => (None, vec![DataType::Utf8; columns.len()]),
    };
    let dirs = list_partitions(&location, &columns, &types, format.extension())?;
    let file_schema = match declared_files {
        Some(schema) => schema,
        None => {
            let Some(first) = dirs.first().and_then(|d| d.files.first()) else {
                return Err(Error::file(
                    &location,
                    format!(
                        "no .{} files in partition directories; declare the columns",
                        format.extension()
                    ),
                ));
            };
            match &format {
                PartitionedFormat::Parquet => parquet_scan::parquet_file_schema(first)?,
                PartitionedFormat::Csv(o) => {
                    csv_scan::csv_infer_schema(first, o.has_header, o.delimiter)?
                }
                PartitionedFormat::Json => json_scan::json_infer_schema(first)?,
            }
        }
    };
    Ok(TableEntry {
        name: name.to_string(),
        schema: partitioned::table_schema(&file_schema, &columns, &types),
        kind: TableKind::Partitioned(Arc::new(PartitionedTable {
            format,
            location,
            columns,
            dirs,
        })),
        row_count: None,
    })
}

/// Whether `location` is a directory (or object prefix, ending in `/`)
/// without `.ext` files.
fn is_empty_directory(location: &str, ext: &str) -> bool {
    let directory = if storage::is_url(location) {
        location.ends_with('/')
    } else {
        Path::new(location).is_dir()
    };
    directory && list_files(location, ext).is_err()
}

fn register_empty(
    session: &Arc<SessionState>,
    name: &str,
    schema: SchemaRef,
    kind: TableKind,
) -> Result<()> {
    let row_count = matches!(kind, TableKind::Parquet { .. }).then_some(0);
    session.catalog.register(TableEntry {
        name: name.to_string(),
        schema,
        kind,
        row_count,
    })
}

/// `INSERT INTO` a Parquet, CSV or JSON table: runs `input` and writes its
/// rows as new files in the table's directory (in its `col=value/`
/// directories when it is partitioned); returns the rows written.
pub(super) async fn insert(
    session: &Arc<SessionState>,
    entry: &Arc<TableEntry>,
    input: LogicalPlan,
    overwrite: bool,
) -> Result<u64> {
    let name = &entry.name;
    if overwrite {
        return Err(Error::NotSupported(format!(
            "INSERT OVERWRITE into file-backed table '{name}'; INSERT INTO appends files"
        )));
    }
    let mut partition_by: &[String] = &[];
    let (location, format) = match &entry.kind {
        TableKind::Parquet { location, .. } => (
            location,
            copy::file_format("parquet", &HashMap::new(), location)?,
        ),
        TableKind::Partitioned(table) => {
            partition_by = &table.columns;
            let format = match &table.format {
                PartitionedFormat::Parquet => {
                    copy::file_format("parquet", &HashMap::new(), &table.location)?
                }
                PartitionedFormat::Csv(options) => FileFormat::Csv {
                    has_header: options.has_header,
                    delimiter: options.delimiter,
                },
                PartitionedFormat::Json => FileFormat::Json,
            };
            (&table.location, format)
        }
        TableKind::Json { location, .. } => (location, FileFormat::Json),
        TableKind::Csv {
            location, options, ..
        } => (
            location,
            FileFormat::Csv {
                has_header: options.has_header,
                delimiter: options.delimiter,
            },
        ),
        _ => {
            return Err(Error::NotSupported(format!(
                "INSERT into table '{name}': not a file-backed table"
            )))
        }
    };
    let location = location.strip_prefix("file://").unwrap_or(location);
    if storage::is_url(location) {
        if !location.ends_with('/') {
            return not_one_file(name, location);
        }
    } else {
        match std::fs::metadata(location) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return not_one_file(name, location),
            Err(e) => {
                return Err(Error::file(
                    location,
                    format!("the directory of table '{name}' cannot be read: {e}"),
                ))
            }
        }
    }
    let target = WriteTarget::Directory {
        dir: location.to_string(),
        prefix: copy::unique_prefix(),
    };
    let schema = Arc::clone(&entry.schema);
    let written =
        copy::write_files(session, input, target, format, Some(schema), partition_by).await?;
    refresh_files(session, entry, written)?;
    Ok(written)
}

fn not_one_file<T>(name: &str, location: &str) -> Result<T> {
    Err(Error::NotSupported(format!(
        "INSERT into table '{name}' stored in one file ({location}); create the table over a \
         directory (LOCATION '/dir/') to append files"
    )))
}

/// Lists the table's files again after an INSERT added `written` rows.
fn refresh_files(session: &Arc<SessionState>, entry: &Arc<TableEntry>, written: u64) -> Result<()> {
    let _guard = catalog_lock();
    let current = session.catalog.get(&entry.name);
    let unchanged = current
        .as_ref()
        .is_some_and(|c| Arc::ptr_eq(c, entry) || c.schema.fields() == entry.schema.fields());
    let Some(current) = current.filter(|_| unchanged) else {
        return Err(Error::Plan(format!(
            "table '{}' was dropped or changed while the INSERT ran (its files were written)",
            entry.name
        )));
    };
    let kind = match &current.kind {
        TableKind::Parquet { location, .. } => TableKind::Parquet {
            files: list_files(location, "parquet")?,
            location: location.clone(),
        },
        TableKind::Csv {
            options, location, ..
        } => TableKind::Csv {
            files: list_files(location, "csv")?,
            options: options.clone(),
            location: location.clone(),
        },
        TableKind::Json { location, .. } => TableKind::Json {
            files: list_files(location, "json")?,
            location: location.clone(),
        },
        TableKind::Partitioned(table) => {
            let types: Vec<_> = current.schema.fields()[table.file_columns(&current.schema)..]
                .iter()
                .map(|f| f.data_type().clone())
                .collect();
            let dirs = list_partitions(
                &table.location,
                &table.columns,
                &types,
                table.format.extension(),
            )?;
            TableKind::Partitioned(Arc::new(PartitionedTable {
                dirs,
                ..table.as_ref().clone()
            }))
        }
        other => other.clone(),
    };
    session.catalog.register(TableEntry {
        name: current.name.clone(),
        schema: Arc::clone(&current.schema),
        kind,
        row_count: current.row_count.map(|rows| rows + written),
    })
}

/// CSV options from `OPTIONS (...)` (keys as datafusion-sql normalizes
/// them: lower-case, `format.` prefixed).
pub(super) fn csv_options(
    options: &HashMap<String, String>,
    schema: Option<SchemaRef>,
) -> Result<CsvOptions> {
    let mut csv = CsvOptions {
        schema,
        ..CsvOptions::default()
    };
    let mut keys: Vec<&String> = options.keys().collect();
    keys.sort();
    for key in keys {
        let value = &options[key];
        match key.as_str() {
            "format.has_header" => {
                csv.has_header = match value.to_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "option '{key}' must be true or false, got '{value}'"
                        )))
                    }
                }
            }
            "format.delimiter" => {
                csv.delimiter = match value.as_bytes() {
                    [b] if b.is_ascii() => *b,
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "option '{key}' must be one ASCII character, got '{value}'"
                        )))
                    }
                }
            }
            "format.compression"
                if value.is_empty() || value.eq_ignore_ascii_case("uncompressed") => {}
            _ => {
                return Err(Error::NotSupported(format!(
                    "option '{key}' of CSV tables (supported: format.has_header, format.delimiter)"
                )))
            }
        }
    }
    Ok(csv)
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

/// Declared columns of a Parquet table must be the file's columns, in
/// order, with the same types (any string type matches a string column).
fn check_parquet_columns(name: &str, location: &str, declared: &Schema) -> Result<()> {
    let files = list_files(location, "parquet")?;
    let file_schema = parquet_scan::parquet_file_schema(&files[0])?;
    let render = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let same = declared.fields().len() == file_schema.fields().len()
        && declared
            .fields()
            .iter()
            .zip(file_schema.fields())
            .all(|(d, f)| {
                d.name() == f.name()
                    && (d.data_type() == f.data_type()
                        || (is_string(d.data_type()) && is_string(f.data_type())))
            });
    if same {
        Ok(())
    } else {
        Err(Error::Plan(format!(
            "the columns declared for table '{name}' ({}) do not match the Parquet file {} ({}); \
             declare the file's columns or none",
            render(declared),
            files[0],
            render(&file_schema)
        )))
    }
}
