//! Where a [`PhysicalPlan::Write`](super::PhysicalPlan::Write) puts its
//! rows: `COPY ... TO` and `INSERT INTO` a file-backed table.

use std::fmt;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The file format written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FileFormat {
    /// Parquet with `compression` as parquet names it (`snappy`,
    /// `zstd(3)`, `uncompressed`, ...).
    Parquet {
        compression: String,
    },
    Csv {
        has_header: bool,
        delimiter: u8,
    },
    /// Newline-delimited JSON: one object per row.
    Json,
}

impl FileFormat {
    /// The file name extension (without the dot).
    pub fn extension(&self) -> &'static str {
        match self {
            FileFormat::Parquet { .. } => "parquet",
            FileFormat::Csv { .. } => "csv",
            FileFormat::Json => "json",
        }
    }
}

/// The files a write produces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WriteTarget {
    /// One file (a local path or an object URL): the write's input is one
    /// partition.
    File { path: String },
    /// A directory (or object prefix) receiving one file per non-empty
    /// partition, named `<prefix>-<partition>.<ext>` (with partition
    /// columns, one such file per partition in each `col=value/`
    /// directory). The prefix is unique per statement, so files already
    /// there are never overwritten, and a retried task rewrites its own
    /// files only.
    Directory { dir: String, prefix: String },
}

impl WriteTarget {
    /// The file partition `partition` writes.
    pub fn file_path(&self, partition: usize, format: &FileFormat) -> String {
        match self {
            WriteTarget::File { path } => path.clone(),
            WriteTarget::Directory { dir, prefix } => format!(
                "{}/{}",
                dir.trim_end_matches('/'),
                Self::file_name(prefix, partition, format)
            ),
        }
    }

    /// The name of partition `partition`'s file in a directory.
    pub fn file_name(prefix: &str, partition: usize, format: &FileFormat) -> String {
        format!("{prefix}-{partition}.{}", format.extension())
    }

    /// The file or directory written (what a path policy must allow).
    pub fn location(&self) -> &str {
        match self {
            WriteTarget::File { path } => path,
            WriteTarget::Directory { dir, .. } => dir,
        }
    }
}

/// A write's destination and format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSink {
    pub target: WriteTarget,
    pub format: FileFormat,
    /// The schema input batches are cast to (names and types of the
    /// target table; the input schema for `COPY`).
    pub file_schema: SchemaRef,
    /// Hive-style partition columns (indices into `file_schema`, only for
    /// a directory target): their values name directories and are not
    /// written in the files.
    #[serde(default)]
    pub partition_by: Vec<usize>,
}

impl FileSink {
    /// The columns the files hold: `file_schema` without `partition_by`.
    pub fn written_schema(&self) -> SchemaRef {
        let keep: Vec<usize> = (0..self.file_schema.fields().len())
            .filter(|c| !self.partition_by.contains(c))
            .collect();
        // Indices come from `file_schema` itself: projecting cannot fail.
        Arc::new(
            self.file_schema
                .project(&keep)
                .unwrap_or_else(|_| self.file_schema.as_ref().clone()),
        )
    }

    /// The names of the partition columns.
    pub fn partition_names(&self) -> Vec<String> {
        self.partition_by
            .iter()
            .filter_map(|&c| self.file_schema.fields().get(c).map(|f| f.name().clone()))
            .collect()
    }
}

impl fmt::Display for FileSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = match &self.format {
            FileFormat::Parquet { compression } => format!("parquet ({compression})"),
            FileFormat::Csv { .. } => "csv".to_string(),
            FileFormat::Json => "json".to_string(),
        };
        match &self.target {
            WriteTarget::File { path } => write!(f, "{format} file {path}"),
            WriteTarget::Directory { dir, .. } => write!(f, "{format} files in {dir}"),
        }
    }
}

/// The output of a write: one row per partition, its number of rows
/// written, in a column named `count` (as DataFusion's `COPY` and
/// `INSERT` answer).
pub fn write_count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}
