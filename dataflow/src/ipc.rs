//! Decoding Arrow IPC streams that come from the network (data frames,
//! literals in plans, memory tables), as hostile input.
//!
//! Arrow's `StreamReader` allocates each message body at the length its
//! metadata claims before reading it, so a few bytes claiming 2^47 abort
//! the process. `StreamDecoder` over bytes already in memory slices bodies
//! out of them instead, and only copies what actually arrived. Arrow's
//! reader also panics on some malformed metadata (buffer offsets beyond
//! the body); that panic becomes an error here.

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamDecoder;

/// Decodes a complete IPC stream held in `bytes`: its schema and batches.
pub fn decode_stream(bytes: Buffer) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_unguarded(bytes)))
        .unwrap_or_else(|_| {
            Err(ArrowError::IpcError(
                "malformed IPC stream (inconsistent buffer metadata)".into(),
            ))
        })
}

fn decode_unguarded(mut bytes: Buffer) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    let mut decoder = StreamDecoder::new();
    let mut batches = Vec::new();
    while !bytes.is_empty() {
        if let Some(b) = decoder.decode(&mut bytes)? {
            batches.push(b);
        }
    }
    decoder.finish()?;
    let schema = decoder
        .schema()
        .ok_or_else(|| ArrowError::IpcError("IPC stream without schema".into()))?;
    Ok((schema, batches))
}
