//! Scan of newline-delimited JSON files (one object per line), through
//! arrow-json: partition `p` reads its files in order with the table
//! schema, projecting the planned columns. Fields the schema does not name
//! are ignored; missing ones are NULL.
//!
//! Lines are cut from the file's bytes as they arrive (local files in
//! chunks, objects as they stream in, see [`crate::storage`]) and decoded
//! a batch of lines at a time, so that a malformed line can be named: a
//! block that fails is decoded again line by line, and the error says
//! `line N` of the file. Blank lines are skipped (and counted).

#[cfg(test)]
mod tests;

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::json::reader::infer_json_schema;
use arrow::json::ReaderBuilder;
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::io::AsyncReadExt;

use super::files::{conform_columns, file_error, open_error, FileListScan, ScanColumns};
use crate::error::{DataflowError, Result};
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::storage;
use crate::stream::{boxed, SendableRecordBatchStream};

/// Records read to infer a JSON schema.
const INFER_RECORDS: usize = 1000;

/// Bytes read from a local file at a time.
const CHUNK_BYTES: usize = 1 << 20;

/// The longest line (one record) a scan holds; a longer one is an error,
/// not an unbounded buffer (a huge file without newlines).
const MAX_LINE_BYTES: usize = 64 << 20;

pub struct JsonScan {
    scan: FileListScan,
}

impl JsonScan {
    /// Partition `p` reads the files `partitions[p]`.
    pub fn try_new(partitions: Vec<Vec<String>>, columns: ScanColumns) -> Result<Self> {
        Ok(JsonScan {
            scan: FileListScan::try_new("JsonScan", partitions, columns)?,
        })
    }
}

/// Infers the schema of a newline-delimited JSON file from its first
/// records (integers as Int64, other numbers as Float64, objects as
/// structs, arrays as lists; columns ordered by name).
pub fn json_infer_schema(path: &str) -> Result<SchemaRef> {
    json_infer_files(&[path.to_string()])
}

/// The schema of a table over `files`, inferred from the first records of
/// every file together (so that a column holding integers in one file and
/// decimals in another is Float64).
pub fn json_infer_files(files: &[String]) -> Result<SchemaRef> {
    let mut head = Vec::new();
    for path in files {
        let start = head.len();
        head.extend(file_head(path)?);
        if head.len() > start && head.last() != Some(&b'\n') {
            head.push(b'\n');
        }
        // Parsed file by file: a malformed record is named by its file
        // and line.
        if let Err(e) = infer_json_schema(std::io::Cursor::new(&head[start..]), None) {
            let line = head[start..]
                .split(|&b| b == b'\n')
                .position(|line| infer_json_schema(std::io::Cursor::new(line), None).is_err());
            return Err(match line {
                Some(i) => file_error(path, format!("line {}: {e}", i + 1)),
                None => file_error(path, e),
            });
        }
    }
    let (schema, _) = infer_json_schema(std::io::Cursor::new(head), None).map_err(|e| {
        DataflowError::Plan(format!(
            "the JSON files {} have conflicting types: {e}",
            files.join(", ")
        ))
    })?;
    Ok(Arc::new(schema))
}

/// The first [`INFER_RECORDS`] lines of file `path` (or about the first
/// MiB of an object).
fn file_head(path: &str) -> Result<Vec<u8>> {
    if storage::is_url(path) {
        return storage::read_head(path);
    }
    let file = std::fs::File::open(path).map_err(|e| open_error(path, e))?;
    // As for object stores: at most the first MiB, whole lines only.
    let limit = storage::CSV_HEAD_BYTES;
    let mut reader = BufReader::new(file).take(limit);
    let mut head = Vec::new();
    for _ in 0..INFER_RECORDS {
        let n = reader
            .read_until(b'\n', &mut head)
            .map_err(|e| file_error(path, e))?;
        if n == 0 {
            break;
        }
    }
    if head.len() as u64 >= limit && head.last() != Some(&b'\n') {
        match head.iter().rposition(|&b| b == b'\n') {
            Some(i) => head.truncate(i + 1),
            None => {
                return Err(file_error(
                    path,
                    format!("line 1: a record longer than {limit} bytes; declare the columns"),
                ))
            }
        }
    }
    Ok(head)
}

/// Everything a partition needs to read its files.
#[derive(Clone)]
pub(crate) struct JsonSpec {
    pub table_schema: SchemaRef,
    pub projection: Vec<usize>,
    pub schema: SchemaRef,
    pub batch_size: usize,
}

/// Decodes `block` (whole lines; the first is line `first_line` of file
/// `path`) into one batch of the projected columns (`None` without rows).
pub(crate) fn decode_block(
    path: &str,
    block: &[u8],
    first_line: usize,
    spec: &JsonSpec,
) -> Result<Option<RecordBatch>> {
    match decode(block, &spec.table_schema) {
        Ok(None) => Ok(None),
        Ok(Some(batch)) => {
            let batch = batch.project(&spec.projection)?;
            let batch = conform_columns(batch.columns().to_vec(), batch.num_rows(), &spec.schema)
                .map_err(|e| file_error(path, e))?;
            Ok(Some(batch))
        }
        Err(e) => Err(locate_error(path, block, first_line, &spec.table_schema)
            .unwrap_or_else(|| file_error(path, format!("lines {first_line} and after: {e}")))),
    }
}

fn decode(
    bytes: &[u8],
    schema: &SchemaRef,
) -> std::result::Result<Option<RecordBatch>, arrow::error::ArrowError> {
    // Room for every line of `bytes` in one batch.
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
    let mut decoder = ReaderBuilder::new(Arc::clone(schema))
        .with_batch_size(lines)
        .build_decoder()?;
    let mut rest = bytes;
    while !rest.is_empty() {
        let used = decoder.decode(rest)?;
        if used == 0 {
            break;
        }
        rest = &rest[used..];
    }
    if decoder.has_partial_record() {
        return Err(arrow::error::ArrowError::JsonError(
            "the record does not end (an unclosed object or string)".into(),
        ));
    }
    decoder.flush()
}

/// The error of the first line of `block` that does not decode alone.
fn locate_error(
    path: &str,
    block: &[u8],
    first_line: usize,
    schema: &SchemaRef,
) -> Option<DataflowError> {
    block
        .split(|&b| b == b'\n')
        .enumerate()
        .find_map(|(i, line)| {
            decode(line, schema)
                .err()
                .map(|e| file_error(path, format!("line {}: {e}", first_line + i)))
        })
}

/// The bytes of file or object `path`, in chunks.
async fn chunks(path: &str) -> Result<BoxStream<'static, Result<Bytes>>> {
    if storage::is_url(path) {
        return Ok(storage::read_stream(path).await?.boxed());
    }
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| open_error(path, e))?;
    let path = path.to_string();
    Ok(async_stream::try_stream! {
        loop {
            let mut buffer = BytesMut::with_capacity(CHUNK_BYTES);
            let n = file.read_buf(&mut buffer).await.map_err(|e| file_error(&path, e))?;
            if n == 0 {
                break;
            }
            yield buffer.freeze();
        }
    }
    .boxed())
}

/// Reads file `path`, one batch per `batch_size` lines.
fn scan_file(
    path: String,
    spec: JsonSpec,
) -> impl futures::Stream<Item = Result<RecordBatch>> + Send + 'static {
    async_stream::try_stream! {
        let mut input = chunks(&path).await?;
        // Whole lines not decoded yet, the line number of the first, and
        // how many there are; then the bytes after the last newline.
        let mut block: Vec<u8> = Vec::new();
        let mut first_line = 1;
        let mut lines = 0;
        let mut partial: Vec<u8> = Vec::new();
        let batch_lines = spec.batch_size.max(1);
        while let Some(chunk) = input.next().await {
            let chunk = chunk?;
            let mut rest: &[u8] = &chunk;
            while let Some(end) = rest.iter().position(|&b| b == b'\n') {
                block.extend_from_slice(&partial);
                partial.clear();
                block.extend_from_slice(&rest[..=end]);
                rest = &rest[end + 1..];
                lines += 1;
                if lines == batch_lines {
                    if let Some(batch) = decode_block(&path, &block, first_line, &spec)? {
                        yield batch;
                    }
                    block.clear();
                    first_line += lines;
                    lines = 0;
                }
            }
            partial.extend_from_slice(rest);
            if partial.len() > MAX_LINE_BYTES {
                Err(file_error(
                    &path,
                    format!(
                        "line {}: a record longer than {MAX_LINE_BYTES} bytes",
                        first_line + lines
                    ),
                ))?;
            }
        }
        block.extend_from_slice(&partial);
        if let Some(batch) = decode_block(&path, &block, first_line, &spec)? {
            yield batch;
        }
    }
}

impl Operator for JsonScan {
    fn properties(&self) -> &OperatorProperties {
        &self.scan.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let files = self.scan.files(partition);
        let spec = JsonSpec {
            table_schema: Arc::clone(&self.scan.table_schema),
            projection: self.scan.projection.clone(),
            schema: Arc::clone(&self.scan.schema),
            batch_size: ctx.config.batch_size,
        };
        let stream = async_stream::try_stream! {
            for path in files {
                let mut batches = Box::pin(scan_file(path, spec.clone()));
                while let Some(batch) = batches.next().await {
                    yield batch?;
                }
            }
        };
        Ok(boxed(self.schema(), stream))
    }
}
