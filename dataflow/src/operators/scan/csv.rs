//! Scan of CSV files: partition `p` reads its files in order with the
//! table schema, projecting the planned columns. A file on object storage
//! ([`crate::storage`]) is decoded as its bytes stream in.
//!
//! The reader is synchronous; each batch is read in `spawn_blocking`, so
//! file I/O and parsing never hold a tokio worker thread.

use std::fs::File;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::csv::reader::Format;
use arrow::csv::{Reader, ReaderBuilder};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use bytes::Buf;
use futures::StreamExt;

use super::files::{conform_columns, file_error, open_error, FileListScan, ScanColumns};
use crate::error::{DataflowError, Result};
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::storage;
use crate::stream::{boxed, SendableRecordBatchStream};

#[cfg(test)]
mod tests;

/// Records read to infer a CSV schema.
const INFER_RECORDS: usize = 1000;

/// How the CSV files of a scan are written.
#[derive(Debug, Clone, Copy)]
pub struct CsvFormat {
    pub has_header: bool,
    pub delimiter: u8,
}

pub struct CsvScan {
    scan: FileListScan,
    has_header: bool,
    delimiter: u8,
}

impl CsvScan {
    /// Partition `p` reads the files `partitions[p]`.
    pub fn try_new(
        partitions: Vec<Vec<String>>,
        format: CsvFormat,
        columns: ScanColumns,
    ) -> Result<Self> {
        Ok(CsvScan {
            scan: FileListScan::try_new("CsvScan", partitions, columns)?,
            has_header: format.has_header,
            delimiter: format.delimiter,
        })
    }
}

/// Infers the schema of a CSV file from its first records. Columns are
/// named by the header, or `column_1`, `column_2`, ... without one.
pub fn csv_infer_schema(path: &str, has_header: bool, delimiter: u8) -> Result<SchemaRef> {
    let format = Format::default()
        .with_header(has_header)
        .with_delimiter(delimiter);
    let inferred = if storage::is_url(path) {
        let head = storage::read_head(path)?;
        format.infer_schema(std::io::Cursor::new(head), Some(INFER_RECORDS))
    } else {
        let file = File::open(path).map_err(|e| open_error(path, e))?;
        format.infer_schema(file, Some(INFER_RECORDS))
    };
    let (schema, _) = inferred.map_err(|e| file_error(path, e))?;
    Ok(Arc::new(schema))
}

/// arrow-csv numbers lines in value errors from 0 (and in field-count
/// errors from 1): make value errors name the 1-based line of the file.
fn csv_error(path: &str, e: ArrowError) -> DataflowError {
    let msg = match &e {
        ArrowError::ParseError(m) => {
            let fixed = renumber_line(m).unwrap_or_else(|| m.clone());
            format!("Parser error: {fixed}")
        }
        _ => e.to_string(),
    };
    file_error(path, msg)
}

/// Replaces the number after " at line " by its successor.
fn renumber_line(msg: &str) -> Option<String> {
    const KEY: &str = " at line ";
    let start = msg.find(KEY)? + KEY.len();
    let digits = msg[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let n: usize = msg[start..start + digits].parse().ok()?;
    Some(format!(
        "{}{}{}",
        &msg[..start],
        n + 1,
        &msg[start + digits..]
    ))
}

/// Everything a partition needs to read its files.
#[derive(Clone)]
struct CsvSpec {
    has_header: bool,
    delimiter: u8,
    table_schema: SchemaRef,
    projection: Vec<usize>,
    schema: SchemaRef,
    batch_size: usize,
}

fn open_reader(path: &str, spec: &CsvSpec) -> Result<Reader<File>> {
    let file = File::open(path).map_err(|e| open_error(path, e))?;
    ReaderBuilder::new(Arc::clone(&spec.table_schema))
        .with_header(spec.has_header)
        .with_delimiter(spec.delimiter)
        .with_batch_size(spec.batch_size.max(1))
        .with_projection(spec.projection.clone())
        .build(file)
        .map_err(|e| file_error(path, e))
}

/// Reads the next batch of `reader` on the blocking pool.
async fn next_batch(
    mut reader: Reader<File>,
) -> Result<(Reader<File>, Option<Result<RecordBatch, ArrowError>>)> {
    tokio::task::spawn_blocking(move || {
        let next = reader.next();
        (reader, next)
    })
    .await
    .map_err(|e| DataflowError::Internal(format!("CSV reader task failed: {e}")))
}

/// Reads object `url` as it streams in, decoding whole records as they
/// arrive (a record cut between two chunks waits for the next one).
fn scan_object(
    url: String,
    spec: CsvSpec,
) -> impl futures::Stream<Item = Result<RecordBatch>> + Send + 'static {
    async_stream::try_stream! {
        let mut decoder = ReaderBuilder::new(Arc::clone(&spec.table_schema))
            .with_header(spec.has_header)
            .with_delimiter(spec.delimiter)
            .with_batch_size(spec.batch_size.max(1))
            .with_projection(spec.projection.clone())
            .build_decoder();
        let mut chunks = Box::pin(storage::read_stream(&url).await?);
        let mut buffer = bytes::Bytes::new();
        let mut ended = false;
        loop {
            // An empty buffer at the end of the object tells the decoder
            // the last record is complete.
            while buffer.is_empty() && !ended {
                match chunks.next().await {
                    Some(chunk) => buffer = chunk?,
                    None => ended = true,
                }
            }
            let decoded = decoder.decode(&buffer).map_err(|e| csv_error(&url, e))?;
            buffer.advance(decoded);
            if decoded == 0 || decoder.capacity() == 0 {
                let Some(batch) = decoder.flush().map_err(|e| csv_error(&url, e))? else {
                    break;
                };
                if batch.num_rows() > 0 {
                    yield conform_columns(batch.columns().to_vec(), batch.num_rows(), &spec.schema)
                        .map_err(|e| file_error(&url, e))?;
                }
            }
        }
    }
}

fn scan_files(
    files: Vec<String>,
    spec: CsvSpec,
) -> impl futures::Stream<Item = Result<RecordBatch>> + Send + 'static {
    async_stream::try_stream! {
        for path in files {
            if storage::is_url(&path) {
                let mut batches = Box::pin(scan_object(path, spec.clone()));
                while let Some(batch) = batches.next().await {
                    yield batch?;
                }
                continue;
            }
            let spec2 = spec.clone();
            let path2 = path.clone();
            let mut reader = tokio::task::spawn_blocking(move || open_reader(&path2, &spec2))
                .await
                .map_err(|e| DataflowError::Internal(format!("CSV reader task failed: {e}")))??;
            loop {
                let (r, next) = next_batch(reader).await?;
                reader = r;
                let Some(batch) = next else { break };
                let batch = batch.map_err(|e| csv_error(&path, e))?;
                if batch.num_rows() == 0 {
                    continue;
                }
                yield conform_columns(batch.columns().to_vec(), batch.num_rows(), &spec.schema)
                    .map_err(|e| file_error(&path, e))?;
            }
        }
    }
}

impl Operator for CsvScan {
    fn properties(&self) -> &OperatorProperties {
        &self.scan.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let files = self.scan.files(partition);
        let spec = CsvSpec {
            has_header: self.has_header,
            delimiter: self.delimiter,
            table_schema: Arc::clone(&self.scan.table_schema),
            projection: self.scan.projection.clone(),
            schema: Arc::clone(&self.scan.schema),
            batch_size: ctx.config.batch_size,
        };
        Ok(boxed(self.schema(), scan_files(files, spec)))
    }
}
