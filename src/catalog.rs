//! The tables an engine knows: their schemas, where their rows come from,
//! and the statistics the planner uses.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use arrow::datatypes::SchemaRef;
use ffq_dataflow::plan::TpchTable;

use crate::error::{Error, Result};

/// Options of a CSV table.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Whether the first line holds column names (default true).
    pub has_header: bool,
    /// Field delimiter (default `,`).
    pub delimiter: u8,
    /// The schema; inferred from the first records of the first file when
    /// `None`.
    pub schema: Option<SchemaRef>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            has_header: true,
            delimiter: b',',
            schema: None,
        }
    }
}

/// Where a table's rows come from.
#[derive(Debug, Clone)]
pub enum TableKind {
    Memory,
    Parquet {
        files: Vec<String>,
    },
    Csv {
        files: Vec<String>,
        options: CsvOptions,
    },
    Tpch {
        table: TpchTable,
        scale_factor: f64,
    },
}

/// A registered table.
#[derive(Debug, Clone)]
pub struct TableEntry {
    pub name: String,
    pub schema: SchemaRef,
    pub kind: TableKind,
    /// Row count when known (memory, TPC-H, Parquet metadata).
    pub row_count: Option<u64>,
}

/// Tables by name. Names are case-sensitive as registered; unquoted SQL
/// identifiers are lower-cased before lookup, so register lower-case names
/// to use them unquoted.
#[derive(Debug, Default)]
pub struct Catalog {
    tables: RwLock<BTreeMap<String, Arc<TableEntry>>>,
}

impl Catalog {
    pub fn register(&self, entry: TableEntry) -> Result<()> {
        validate_table_name(&entry.name)?;
        let mut tables = self
            .tables
            .write()
            .map_err(|_| Error::InvalidArgument("catalog lock poisoned".into()))?;
        tables.insert(entry.name.clone(), Arc::new(entry));
        Ok(())
    }

    pub fn deregister(&self, name: &str) -> Option<Arc<TableEntry>> {
        self.tables.write().ok()?.remove(name)
    }

    pub fn get(&self, name: &str) -> Option<Arc<TableEntry>> {
        let tables = self.tables.read().ok()?;
        tables
            .get(name)
            .or_else(|| tables.get(&name.to_lowercase()))
            .cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.tables
            .read()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }
}

fn validate_table_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('.') || name.chars().any(char::is_whitespace) {
        return Err(Error::InvalidArgument(format!(
            "table name {name:?} must be non-empty without dots or spaces"
        )));
    }
    Ok(())
}

/// The files of a table path: the file itself, or the files with
/// extension `ext` in a directory (sorted, hidden files skipped).
pub fn list_files(path: &str, ext: &str) -> Result<Vec<String>> {
    let p = Path::new(path);
    let meta = std::fs::metadata(p).map_err(|e| Error::file(path, describe_io(&e)))?;
    if meta.is_file() {
        return Ok(vec![path.to_string()]);
    }
    let mut files = Vec::new();
    let entries = std::fs::read_dir(p).map_err(|e| Error::file(path, describe_io(&e)))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::file(path, describe_io(&e)))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let fp = entry.path();
        if fp.is_file() && fp.extension().map(|e| e == ext).unwrap_or(false) {
            files.push(fp.to_string_lossy().to_string());
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::file(path, format!("directory has no .{ext} files")));
    }
    Ok(files)
}

fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}
