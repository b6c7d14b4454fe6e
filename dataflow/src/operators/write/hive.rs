//! Hive-style partitioned writes: rows are split by the values of the
//! partition columns, and each group goes to a file under
//! `dir/col=value/...`, without the partition columns (their values are in
//! the path).

use std::collections::HashMap;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::Result;

/// The directory name of a NULL partition value (as Hive writes it).
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Splits `batch` by the values of `columns` (rendered as path text):
/// one entry per distinct combination in order of first appearance, with
/// the group's rows of the other columns.
pub(crate) fn split_by_partition(
    batch: &RecordBatch,
    columns: &[usize],
) -> Result<Vec<(Vec<String>, RecordBatch)>> {
    let keep: Vec<usize> = (0..batch.num_columns())
        .filter(|c| !columns.contains(c))
        .collect();
    if columns.is_empty() {
        return Ok(vec![(vec![], batch.project(&keep)?)]);
    }
    let options = FormatOptions::default();
    let formatters = columns
        .iter()
        .map(|&c| ArrayFormatter::try_new(batch.column(c).as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut order: Vec<Vec<String>> = Vec::new();
    let mut rows: HashMap<Vec<String>, Vec<u32>> = HashMap::new();
    for row in 0..batch.num_rows() {
        let key: Vec<String> = columns
            .iter()
            .zip(&formatters)
            .map(|(&c, f)| {
                if batch.column(c).is_null(row) {
                    NULL_PARTITION.to_string()
                } else {
                    escape(&f.value(row).to_string())
                }
            })
            .collect();
        let entry = rows.entry(key.clone()).or_default();
        if entry.is_empty() {
            order.push(key);
        }
        entry.push(row as u32);
    }
    let projected = batch.project(&keep)?;
    order
        .into_iter()
        .map(|key| {
            let indices = UInt32Array::from(rows.remove(&key).unwrap_or_default());
            let columns = projected
                .columns()
                .iter()
                .map(|c| take(c.as_ref(), &indices, None))
                .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
            let group = RecordBatch::try_new_with_options(
                projected.schema(),
                columns,
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(indices.len())),
            )?;
            Ok((key, group))
        })
        .collect()
}

/// `value` safe as one path segment: `/`, `=`, `%`, `\`, control
/// characters and a leading `.` or `_` (hidden files) are percent-encoded.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let hidden = i == 0 && matches!(c, '.' | '_');
        if hidden || matches!(c, '/' | '=' | '%' | '\\' | '#') || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The file `file_name` in the Hive directory of `values` under `dir`.
pub(crate) fn hive_path(dir: &str, names: &[String], values: &[String], file_name: &str) -> String {
    let mut path = dir.trim_end_matches('/').to_string();
    for (name, value) in names.iter().zip(values) {
        path.push('/');
        path.push_str(name);
        path.push('=');
        path.push_str(value);
    }
    path.push('/');
    path.push_str(file_name);
    path
}
