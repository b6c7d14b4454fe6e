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
//! files); a single-file target always writes its file. The destination
//! is opened on the first batch, written through `object_store`
//! ([`crate::storage`]), and completed only after the input ended without
//! error: a failed or cancelled write is aborted and leaves no file.

mod format;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use arrow::array::{RecordBatch, UInt64Array};
use futures::StreamExt;

pub use format::parquet_compression;
use format::FormatWriter;

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

/// Writes the rows of `input` to the file of `partition`; returns how many.
async fn write_partition(
    mut input: SendableRecordBatchStream,
    sink: &FileSink,
    partition: usize,
) -> Result<u64> {
    let path = sink.target.file_path(partition, &sink.format);
    let mut writer: Option<FormatWriter> = None;
    if matches!(sink.target, WriteTarget::File { .. }) {
        writer = Some(open(&path, sink)?);
    }
    let mut rows = 0u64;
    while let Some(batch) = input.next().await {
        let written = match batch {
            Ok(batch) if batch.num_rows() == 0 => Ok(()),
            Ok(batch) => {
                rows += batch.num_rows() as u64;
                write_batch(&mut writer, &path, sink, &batch).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            if let Some(writer) = writer {
                writer.abort().await;
            }
            return Err(e);
        }
    }
    if let Some(writer) = writer {
        writer.finish().await.map_err(|e| in_file(&path, e))?;
    }
    Ok(rows)
}

async fn write_batch(
    writer: &mut Option<FormatWriter>,
    path: &str,
    sink: &FileSink,
    batch: &RecordBatch,
) -> Result<()> {
    let batch = conform_columns(
        batch.columns().to_vec(),
        batch.num_rows(),
        &sink.file_schema,
    )
    .map_err(|e| in_file(path, e.into()))?;
    if writer.is_none() {
        *writer = Some(open(path, sink)?);
    }
    if let Some(w) = writer.as_mut() {
        w.write(&batch).await.map_err(|e| in_file(path, e))?;
    }
    Ok(())
}

fn open(path: &str, sink: &FileSink) -> Result<FormatWriter> {
    let out = storage::writer(path)?;
    FormatWriter::try_new(out, &sink.format, Arc::clone(&sink.file_schema))
}

/// `e` as an error of file `path` (errors that already name a file, or
/// are not about the file, stay as they are).
fn in_file(path: &str, e: DataflowError) -> DataflowError {
    match e {
        DataflowError::File { .. } | DataflowError::Plan(_) | DataflowError::Cancelled => e,
        other => file_error(path, other),
    }
}
