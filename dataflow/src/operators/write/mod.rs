//! Write: the sink of `COPY ... TO` and `INSERT INTO` a file-backed table.
//! Partition `p` writes its input rows to the file
//! [`WriteTarget::file_path`] names for `p` and emits one row, the number
//! of rows written; whoever runs the plan sums those rows.
//!
//! ```text
//!   input partition p ──► conform to the file schema ──► encoder ──► file p
//!                                                                 └─► count
//! ```
//!
//! On a cluster the Write runs in the last stage on the workers, each
//! task writing its own file in parallel; only the counts travel to the
//! client. A directory target skips partitions without rows (no empty
//! files); a single-file target always writes its file. With partition
//! columns ([`FileSink::partition_by`]), each partition writes one file in
//! every `col=value/` directory its rows belong to ([`hive`]). The destination
//! is opened on the first batch, written through `object_store`
//! ([`crate::storage`]), and completed only after the input ended without
//! error: a failed or cancelled write is aborted and leaves no file.

mod format;
mod hive;

#[cfg(test)]
mod tests;

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, UInt64Array};
use arrow::datatypes::SchemaRef;
use futures::StreamExt;

pub use format::parquet_compression;
use format::FormatWriter;
pub use hive::NULL_PARTITION;
use hive::{hive_path, split_by_partition};

use super::scan::files::{conform_columns, file_error};
use crate::error::{DataflowError, Result};
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::plan::{write_count_schema, FileSink, WriteTarget};
use crate::storage;
use crate::stream::{boxed, SendableRecordBatchStream};

pub struct FileWrite {
    properties: OperatorProperties,
    input: Arc<dyn Operator>,
    sink: Arc<FileSink>,
}

impl FileWrite {
    /// A write of `input` to `sink`; a single-file target needs a single
    /// input partition, and the input columns must match the file schema
    /// in number.
    pub fn try_new(input: Arc<dyn Operator>, sink: FileSink) -> Result<Self> {
        let partitions = input.output_partitions();
        if matches!(sink.target, WriteTarget::File { .. }) && partitions != 1 {
            return Err(DataflowError::Plan(format!(
                "Write to one file needs one input partition, got {partitions}"
            )));
        }
        if let Some(&bad) = sink
            .partition_by
            .iter()
            .find(|&&c| c >= sink.file_schema.fields().len())
        {
            return Err(DataflowError::Plan(format!(
                "Write: partition column {bad} out of range"
            )));
        }
        if matches!(sink.target, WriteTarget::File { .. }) && !sink.partition_by.is_empty() {
            return Err(DataflowError::Plan(
                "Write: partition columns need a directory target".into(),
            ));
        }
        let (have, want) = (
            input.schema().fields().len(),
            sink.file_schema.fields().len(),
        );
        if have != want {
            return Err(DataflowError::Plan(format!(
                "Write: the input has {have} columns but the files have {want}"
            )));
        }
        Ok(FileWrite {
            properties: OperatorProperties::new("Write", write_count_schema(), partitions),
            input,
            sink: Arc::new(sink),
        })
    }
}

impl Operator for FileWrite {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, ctx)?;
        let sink = Arc::clone(&self.sink);
        let schema = self.schema();
        let stream = async_stream::try_stream! {
            let rows = write_partition(input, &sink, partition).await?;
            let counts = Arc::new(UInt64Array::from(vec![rows]));
            yield RecordBatch::try_new(Arc::clone(&schema), vec![counts])?;
        };
        Ok(boxed(self.schema(), stream))
    }
}

/// Writes the rows of `input` to the file(s) of `partition`; returns how
/// many.
async fn write_partition(
    mut input: SendableRecordBatchStream,
    sink: &FileSink,
    partition: usize,
) -> Result<u64> {
    let mut files = OpenFiles::new(sink, partition);
    if matches!(sink.target, WriteTarget::File { .. }) {
        files.get(vec![])?;
    }
    let mut rows = 0u64;
    while let Some(batch) = input.next().await {
        let written = match batch {
            Ok(batch) if batch.num_rows() == 0 => Ok(()),
            Ok(batch) => {
                rows += batch.num_rows() as u64;
                files.write(&batch).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            files.abort().await;
            return Err(e);
        }
    }
    files.finish().await?;
    Ok(rows)
}

/// The files a partition's write has open, by partition values (one
/// file, values `[]`, without partition columns).
struct OpenFiles<'a> {
    sink: &'a FileSink,
    partition: usize,
    partition_names: Vec<String>,
    written_schema: SchemaRef,
    open: HashMap<Vec<String>, (String, FormatWriter)>,
}

impl<'a> OpenFiles<'a> {
    fn new(sink: &'a FileSink, partition: usize) -> Self {
        OpenFiles {
            sink,
            partition,
            partition_names: sink.partition_names(),
            written_schema: sink.written_schema(),
            open: HashMap::new(),
        }
    }

    /// The file of partition values `values`, opened on first use.
    fn get(&mut self, values: Vec<String>) -> Result<&mut (String, FormatWriter)> {
        let (sink, partition) = (self.sink, self.partition);
        let path = match (&sink.target, values.is_empty()) {
            (WriteTarget::Directory { dir, prefix }, false) => {
                let name = WriteTarget::file_name(prefix, partition, &sink.format);
                hive_path(dir, &self.partition_names, &values, &name)
            }
            (target, _) => target.file_path(partition, &sink.format),
        };
        let entry = match self.open.entry(values) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let out = storage::writer(&path)?;
                let writer =
                    FormatWriter::try_new(out, &sink.format, Arc::clone(&self.written_schema))?;
                e.insert((path, writer))
            }
        };
        Ok(entry)
    }

    /// Casts `batch` to the file schema and writes its rows to their files.
    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let batch = conform_columns(
            batch.columns().to_vec(),
            batch.num_rows(),
            &self.sink.file_schema,
        )
        .map_err(|e| {
            let target = self.sink.target.location().to_string();
            in_file(&target, e.into())
        })?;
        for (values, group) in split_by_partition(&batch, &self.sink.partition_by)? {
            let (path, writer) = self.get(values)?;
            writer.write(&group).await.map_err(|e| in_file(path, e))?;
        }
        Ok(())
    }

    /// Completes every file.
    async fn finish(self) -> Result<()> {
        let mut open = self.open.into_iter();
        while let Some((_, (path, writer))) = open.next() {
            if let Err(e) = writer.finish().await {
                for (_, (_, rest)) in open {
                    rest.abort().await;
                }
                return Err(in_file(&path, e));
            }
        }
        Ok(())
    }

    /// Abandons every file.
    async fn abort(self) {
        for (_, (_, writer)) in self.open {
            writer.abort().await;
        }
    }
}

/// `e` as an error of file `path` (errors that already name a file, or
/// are not about the file, stay as they are).
fn in_file(path: &str, e: DataflowError) -> DataflowError {
    match e {
        DataflowError::File { .. } | DataflowError::Plan(_) | DataflowError::Cancelled => e,
        other => file_error(path, other),
    }
}
