//! `CREATE EXTERNAL TABLE ... STORED AS PARQUET|CSV`: maps onto the
//! session's Parquet and CSV registration.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion_expr::logical_plan::CreateExternalTable;
use ffq_dataflow::operators::parquet_scan;

use super::objects::{catalog_lock, check_create, forget_table_data, object_name};
use super::output::{no_rows, not_supported};
use crate::catalog::{list_files, CsvOptions};
use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::session::SessionState;

pub(super) fn create_external_table(
    session: &Arc<SessionState>,
    e: CreateExternalTable,
) -> Result<DataFrame> {
    let name = object_name(&e.name)?;
    if !e.table_partition_cols.is_empty() {
        return not_supported("PARTITIONED BY in CREATE EXTERNAL TABLE");
    }
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
    match file_type.as_str() {
        "PARQUET" => {
            if let Some(key) = e.options.keys().min() {
                return Err(Error::NotSupported(format!(
                    "option '{key}' of Parquet tables"
                )));
            }
            if let Some(declared) = &declared {
                check_parquet_columns(&name, &location, declared)?;
            }
            forget_table_data(session, &name);
            session.register_parquet(&name, &location)?;
        }
        "CSV" => {
            let options = csv_options(&e.options, declared)?;
            forget_table_data(session, &name);
            session.register_csv(&name, &location, options)?;
        }
        other => {
            return Err(Error::NotSupported(format!(
                "STORED AS {other}; external tables are PARQUET or CSV"
            )))
        }
    }
    Ok(no_rows(session))
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
