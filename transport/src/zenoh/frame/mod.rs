//! Data frames: what one output stream is cut into on the wire.
//!
//! A stream (one output partition of one task attempt) is a sequence of
//! frames numbered from 0: one `Schema` frame, any number of `Batch`
//! frames, then `End { batches, rows }` (or `Error { message }`).
//!
//! Layout of one frame (all integers little endian):
//!
//! ```text
//! "FFQ" 0x01 | header_len: u32 | body_len: u64 | header (CBOR) | zero pad | body
//! ```
//!
//! The pad makes the body start at a multiple of 64 bytes, so that Arrow
//! buffers decode in place without realignment. The body of a `Schema` or
//! `Batch` frame is a complete Arrow IPC stream (schema message, the
//! dictionaries and at most one record batch, end marker), so every frame
//! decodes alone: a consumer needs no state from earlier frames besides the
//! verification counters. The schema repeated in every frame costs a few
//! hundred bytes to a few KiB per frame (see the exchange bench; frames are
//! up to [`DEFAULT_MAX_FRAME_BYTES`]).
//!
//! Batches whose IPC encoding would exceed the frame bound are sliced by
//! rows, so every frame stays under the bound unless a single row exceeds it.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, GenericByteViewArray, RecordBatch, RecordBatchOptions,
};
use arrow::buffer::Buffer;
use arrow::datatypes::ByteViewType;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::ipc::writer::StreamWriter;
use serde::{Deserialize, Serialize};

use super::error::{Result, TransportError};
use super::keys::StreamId;

/// Magic and format version at the start of every frame.
pub const MAGIC: [u8; 4] = *b"FFQ\x01";
/// Fixed part of the prefix: magic, header length, body length.
const FIXED: usize = 16;
/// Bodies start at a multiple of this.
const BODY_ALIGN: usize = 64;
/// The largest frame header accepted (a header holds ids, counters and at
/// most an error message); longer ones are refused before decoding.
pub const MAX_HEADER_BYTES: usize = 64 << 10;
/// Default bound of one frame's IPC body.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 << 20;

/// What a frame carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrameKind {
    /// The stream's schema (an IPC stream without batches). Always seq 0.
    Schema,
    /// One record batch (or a row slice of one) of `rows` rows.
    Batch { rows: u64 },
    /// The end of the stream: how many batch frames and rows it had.
    End { batches: u64, rows: u64 },
    /// The producer failed; the stream ends here.
    Error { message: String },
    /// Not part of the stream: the producer's answer to a fetch when no new
    /// frame was produced within its wait window ("still running, ask
    /// again"). It has no sequence number of its own (its `seq` is the next
    /// one the producer will send).
    Pending,
}

/// The header of a frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameHeader {
    pub stream: StreamId,
    /// Position in the stream, from 0, without gaps.
    pub seq: u64,
    pub kind: FrameKind,
}

/// A decoded frame: its header and its (IPC) body.
#[derive(Debug, Clone)]
pub struct Frame {
    pub header: FrameHeader,
    pub body: Buffer,
}

/// Encodes a frame whose body is written by `body` into the same buffer
/// (no copy of the body).
fn encode_with(
    header: &FrameHeader,
    capacity: usize,
    body: impl FnOnce(Vec<u8>) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let mut head = Vec::with_capacity(128);
    ciborium::into_writer(header, &mut head)
        .map_err(|e| TransportError::Frame(format!("encoding a frame header: {e}")))?;
    let header_len = u32::try_from(head.len())
        .map_err(|_| TransportError::Frame("frame header too long".into()))?;
    let prefix = (FIXED + head.len()).div_ceil(BODY_ALIGN) * BODY_ALIGN;
    let mut buf = Vec::with_capacity(prefix + capacity);
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&header_len.to_le_bytes());
    buf.extend_from_slice(&0u64.to_le_bytes());
    buf.extend_from_slice(&head);
    buf.resize(prefix, 0);
    let mut buf = body(buf)?;
    let body_len = (buf.len() - prefix) as u64;
    buf[8..16].copy_from_slice(&body_len.to_le_bytes());
    Ok(buf)
}

/// Encodes a frame without body.
pub fn encode_frame(header: &FrameHeader) -> Result<Vec<u8>> {
    encode_with(header, 0, Ok)
}

/// Encodes a frame whose body is an IPC stream of `schema` and `batch`.
fn encode_ipc_frame(
    header: &FrameHeader,
    schema: &SchemaRef,
    batch: Option<&RecordBatch>,
    estimate: usize,
) -> Result<Vec<u8>> {
    encode_with(header, estimate + 4096, |buf| {
        let mut writer = StreamWriter::try_new(buf, schema)?;
        if let Some(batch) = batch {
            writer.write(batch)?;
        }
        writer.finish()?;
        Ok(writer.into_inner()?)
    })
}

impl Frame {
    /// Decodes the prefix of a frame; the body is checked for length only.
    pub fn decode(bytes: Buffer) -> Result<Frame> {
        let bad = |m: String| TransportError::Frame(m);
        if bytes.len() < FIXED {
            return Err(bad(format!(
                "frame truncated: {} bytes, less than its fixed prefix",
                bytes.len()
            )));
        }
        if bytes[0..4] != MAGIC {
            return Err(bad(format!(
                "not an FFQ frame (magic {:02x?}, expected {:02x?})",
                &bytes[0..4],
                MAGIC
            )));
        }
        let header_len = u32::from_le_bytes(bytes[4..8].try_into().unwrap_or_default()) as usize;
        let body_len = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default());
        if header_len > MAX_HEADER_BYTES {
            return Err(bad(format!(
                "frame header of {header_len} bytes, more than the limit {MAX_HEADER_BYTES}"
            )));
        }
        let prefix = (FIXED + header_len).div_ceil(BODY_ALIGN) * BODY_ALIGN;
        if bytes.len() < FIXED + header_len {
            return Err(bad(format!(
                "frame truncated in its header ({} bytes, header needs {})",
                bytes.len(),
                FIXED + header_len
            )));
        }
        let header: FrameHeader = ciborium::from_reader(&bytes[FIXED..FIXED + header_len])
            .map_err(|e| bad(format!("undecodable frame header: {e}")))?;
        // Lengths are only compared with what arrived, never allocated.
        let expected = (prefix as u64).saturating_add(body_len);
        if bytes.len() as u64 != expected {
            return Err(bad(format!(
                "frame {} of {}: {} bytes, its header says {expected} (body {body_len} bytes)",
                header.seq,
                header.stream,
                bytes.len()
            )));
        }
        let body = bytes.slice(prefix);
        Ok(Frame { header, body })
    }

    /// Decodes a frame from a byte slice (copies it into an aligned buffer).
    pub fn decode_slice(bytes: &[u8]) -> Result<Frame> {
        Frame::decode(Buffer::from_slice_ref(bytes))
    }

    /// Decodes the IPC body: the schema and the batch, if any (see
    /// `ffq_dataflow::ipc` for why this is safe on hostile bodies).
    pub fn decode_body(&self) -> Result<(SchemaRef, Option<RecordBatch>)> {
        let (schema, mut batches) =
            ffq_dataflow::ipc::decode_stream(self.body.clone()).map_err(|e| {
                TransportError::Frame(format!(
                    "frame {} of {}: bad IPC body: {e}",
                    self.header.seq, self.header.stream
                ))
            })?;
        if batches.len() > 1 {
            return Err(TransportError::Frame(format!(
                "frame {} of {}: more than one batch in a frame",
                self.header.seq, self.header.stream
            )));
        }
        Ok((schema, batches.pop()))
    }
}

/// The IPC size of a batch's data, estimated from its buffers (slices
/// count only their own rows; view arrays their views and the bytes their
/// views use).
pub fn estimate_ipc_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            let size = match c.data_type() {
                DataType::Utf8View => {
                    let a = c.as_string_view();
                    a.len() * 16 + a.total_buffer_bytes_used()
                }
                DataType::BinaryView => {
                    let a = c.as_binary_view();
                    a.len() * 16 + a.total_buffer_bytes_used()
                }
                _ => c
                    .to_data()
                    .get_slice_memory_size()
                    .unwrap_or_else(|_| c.get_array_memory_size()),
            };
            size + 64
        })
        .sum()
}

/// Compacts view columns whose data buffers hold much more than their
/// views use (slices, filtered batches): IPC writes whole data buffers.
fn compact_views(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut changed = false;
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8View => gc_if_sparse(c.as_string_view(), &mut changed),
            DataType::BinaryView => gc_if_sparse(c.as_binary_view(), &mut changed),
            _ => Arc::clone(c),
        })
        .collect();
    if !changed {
        return Ok(batch.clone());
    }
    Ok(RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// A copy of view array `a` holding only the bytes its views use, when it
/// holds more than twice that (plus 1 KiB); else `a` itself.
fn gc_if_sparse<T: ByteViewType + ?Sized>(
    a: &GenericByteViewArray<T>,
    changed: &mut bool,
) -> ArrayRef {
    let held: usize = a.data_buffers().iter().map(|b| b.len()).sum();
    if held > 2 * a.total_buffer_bytes_used() + 1024 {
        *changed = true;
        Arc::new(a.gc())
    } else {
        Arc::new(a.clone())
    }
}

/// Whether two schemas have the same column types (names, nullability and
/// metadata may differ).
pub fn same_types(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields().iter())
            .all(|(x, y)| x.data_type() == y.data_type())
}

/// Cuts one output stream into frames: numbers them and counts batches and
/// rows for the end frame.
#[derive(Debug)]
pub struct FrameEncoder {
    stream: StreamId,
    schema: SchemaRef,
    max_frame_bytes: usize,
    seq: u64,
    batches: u64,
    rows: u64,
    ended: bool,
}

impl FrameEncoder {
    pub fn new(stream: StreamId, schema: SchemaRef, max_frame_bytes: usize) -> Self {
        FrameEncoder {
            stream,
            schema,
            max_frame_bytes: max_frame_bytes.max(1024),
            seq: 0,
            batches: 0,
            rows: 0,
            ended: false,
        }
    }

    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The sequence number of the next frame.
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    /// Batch frames and rows encoded so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.batches, self.rows)
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    fn header(&mut self, kind: FrameKind) -> Result<FrameHeader> {
        if self.ended {
            return Err(TransportError::Frame(format!(
                "stream {} already ended",
                self.stream
            )));
        }
        let h = FrameHeader {
            stream: self.stream.clone(),
            seq: self.seq,
            kind,
        };
        self.seq += 1;
        Ok(h)
    }

    /// The schema frame; must be the first.
    pub fn schema_frame(&mut self) -> Result<Vec<u8>> {
        if self.seq != 0 {
            return Err(TransportError::Frame(format!(
                "stream {}: the schema frame must be the first",
                self.stream
            )));
        }
        let h = self.header(FrameKind::Schema)?;
        encode_ipc_frame(&h, &self.schema, None, 0)
    }

    /// The frames of one batch: none for an empty batch, several if its
    /// IPC encoding exceeds the frame bound.
    pub fn batch_frames(&mut self, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
        if self.seq == 0 {
            return Err(TransportError::Frame(format!(
                "stream {}: batch before the schema frame",
                self.stream
            )));
        }
        if !same_types(&batch.schema(), &self.schema) {
            return Err(TransportError::Frame(format!(
                "stream {}: batch schema {:?} does not match the stream schema {:?}",
                self.stream,
                batch.schema().fields(),
                self.schema.fields()
            )));
        }
        let mut out = Vec::new();
        if batch.num_rows() > 0 {
            self.encode_sliced(batch, &mut out)?;
        }
        Ok(out)
    }

    fn encode_sliced(&mut self, batch: &RecordBatch, out: &mut Vec<Vec<u8>>) -> Result<()> {
        let rows = batch.num_rows();
        let estimate = estimate_ipc_bytes(batch);
        // Aim a bit under the bound: the estimate ignores IPC padding.
        let target = self.max_frame_bytes / 10 * 9;
        if estimate > target && rows > 1 {
            let pieces = estimate.div_ceil(target.max(1));
            let per = rows.div_ceil(pieces).max(1);
            let mut offset = 0;
            while offset < rows {
                let len = per.min(rows - offset);
                self.encode_sliced(&batch.slice(offset, len), out)?;
                offset += len;
            }
            return Ok(());
        }
        let batch = &compact_views(batch)?;
        let kind = FrameKind::Batch { rows: rows as u64 };
        let header = FrameHeader {
            stream: self.stream.clone(),
            seq: self.seq,
            kind,
        };
        let frame = encode_ipc_frame(&header, &self.schema, Some(batch), estimate)?;
        if frame.len() > self.max_frame_bytes && rows > 1 {
            // The estimate was low: halve.
            let half = rows / 2;
            self.encode_sliced(&batch.slice(0, half), out)?;
            return self.encode_sliced(&batch.slice(half, rows - half), out);
        }
        self.header(header.kind)?;
        self.batches += 1;
        self.rows += rows as u64;
        out.push(frame);
        Ok(())
    }

    /// The end frame with the counts.
    pub fn end_frame(&mut self) -> Result<Vec<u8>> {
        let h = self.header(FrameKind::End {
            batches: self.batches,
            rows: self.rows,
        })?;
        self.ended = true;
        encode_frame(&h)
    }

    /// An error frame; ends the stream.
    pub fn error_frame(&mut self, message: impl Into<String>) -> Result<Vec<u8>> {
        let h = self.header(FrameKind::Error {
            message: message.into(),
        })?;
        self.ended = true;
        encode_frame(&h)
    }
}

/// What [`StreamVerifier::accept`] made of a frame.
#[derive(Debug)]
pub enum Verified {
    /// The schema frame.
    Schema(SchemaRef),
    /// A batch, in order.
    Batch(RecordBatch),
    /// The end frame: the stream is complete and its counts matched.
    End { batches: u64, rows: u64 },
    /// A pending marker of the expected stream: nothing new yet.
    Pending,
    /// A frame of another attempt: dropped (and counted).
    Stale,
}

/// Checks a received stream: every frame belongs to the expected attempt
/// (frames of other attempts are dropped and counted), sequence numbers run
/// from 0 without gap or duplicate, and the end frame's counts equal what
/// was received. Any violation is an error.
#[derive(Debug)]
pub struct StreamVerifier {
    expected: StreamId,
    next_seq: u64,
    schema: Option<SchemaRef>,
    batches: u64,
    rows: u64,
    stale_frames: u64,
    finished: bool,
}

impl StreamVerifier {
    pub fn new(expected: StreamId) -> Self {
        StreamVerifier {
            expected,
            next_seq: 0,
            schema: None,
            batches: 0,
            rows: 0,
            stale_frames: 0,
            finished: false,
        }
    }

    pub fn expected(&self) -> &StreamId {
        &self.expected
    }

    /// The sequence number expected next (= frames accepted so far).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Frames of other attempts dropped so far.
    pub fn stale_frames(&self) -> u64 {
        self.stale_frames
    }

    /// Batches and rows accepted so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.batches, self.rows)
    }

    pub fn schema(&self) -> Option<&SchemaRef> {
        self.schema.as_ref()
    }

    /// Whether the end frame was accepted.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn err(&self, seq: u64, m: impl std::fmt::Display) -> TransportError {
        TransportError::Frame(format!("stream {} frame {seq}: {m}", self.expected))
    }

    /// Verifies one frame and decodes its batch.
    pub fn accept(&mut self, frame: &Frame) -> Result<Verified> {
        let h = &frame.header;
        if h.stream != self.expected {
            if h.stream.same_but_attempt(&self.expected) {
                self.stale_frames += 1;
                return Ok(Verified::Stale);
            }
            return Err(self.err(h.seq, format!("belongs to another stream ({})", h.stream)));
        }
        if self.finished {
            return Err(self.err(h.seq, "frame after the end of the stream"));
        }
        if h.kind == FrameKind::Pending {
            return Ok(Verified::Pending);
        }
        if h.seq != self.next_seq {
            let what = if h.seq > self.next_seq {
                format!(
                    "gap: expected frame {}, {} frame(s) missing",
                    self.next_seq,
                    h.seq - self.next_seq
                )
            } else {
                format!(
                    "duplicate or out of order: expected frame {}",
                    self.next_seq
                )
            };
            return Err(self.err(h.seq, what));
        }
        let verified = match &h.kind {
            FrameKind::Schema => {
                if h.seq != 0 {
                    return Err(self.err(h.seq, "schema frame after the start"));
                }
                let (schema, batch) = frame.decode_body()?;
                if batch.is_some() {
                    return Err(self.err(h.seq, "schema frame with a batch"));
                }
                self.schema = Some(Arc::clone(&schema));
                Verified::Schema(schema)
            }
            FrameKind::Batch { rows } => {
                let Some(expected_schema) = &self.schema else {
                    return Err(self.err(h.seq, "batch before the schema frame"));
                };
                let (schema, batch) = frame.decode_body()?;
                let batch = batch.ok_or_else(|| self.err(h.seq, "batch frame without a batch"))?;
                if !same_types(&schema, expected_schema) {
                    return Err(self.err(h.seq, "batch schema differs from the stream schema"));
                }
                if batch.num_rows() as u64 != *rows {
                    return Err(self.err(
                        h.seq,
                        format!("header says {rows} rows, batch has {}", batch.num_rows()),
                    ));
                }
                // Present the batch with the stream's schema (names as sent).
                let batch = if Arc::ptr_eq(&batch.schema(), expected_schema)
                    || batch.schema() == *expected_schema
                {
                    batch
                } else {
                    RecordBatch::try_new(Arc::clone(expected_schema), batch.columns().to_vec())?
                };
                self.batches += 1;
                self.rows += *rows;
                Verified::Batch(batch)
            }
            FrameKind::End { batches, rows } => {
                if self.schema.is_none() {
                    return Err(self.err(h.seq, "end before the schema frame"));
                }
                if (*batches, *rows) != (self.batches, self.rows) {
                    return Err(self.err(
                        h.seq,
                        format!(
                            "count mismatch: end frame says {batches} batches / {rows} rows, \
                             received {} batches / {} rows",
                            self.batches, self.rows
                        ),
                    ));
                }
                self.finished = true;
                Verified::End {
                    batches: *batches,
                    rows: *rows,
                }
            }
            FrameKind::Error { message } => {
                self.finished = true;
                return Err(TransportError::Producer(format!(
                    "stream {}: {message}",
                    self.expected
                )));
            }
            FrameKind::Pending => Verified::Pending,
        };
        self.next_seq += 1;
        Ok(verified)
    }
}

#[cfg(test)]
pub(crate) mod tests;
