//! The producer side: task attempts' output partitions, kept in memory as
//! encoded frames until the coordinator releases them.
//!
//! Nothing is pushed: consumers pull a partition with a zenoh `get` (see
//! [`super::serve`]), so no frame is ever sent before its consumer asked.
//! A stream can be fetched while it is being written: the server sends what
//! exists and then waits for more.
//!
//! Memory is bounded by [`StoreConfig::max_buffered_bytes`]: a write that
//! would exceed it fails the producing task with an explicit error.
//! Spilling to disk is future work.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use zenoh::bytes::ZBytes;

use super::error::{Result, TransportError};
use super::frame::{FrameEncoder, DEFAULT_MAX_FRAME_BYTES};
use super::keys::{AttemptRef, QueryId, StreamId};

/// Limits of an [`OutputStore`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Encoded bytes kept at most (all streams together).
    pub max_buffered_bytes: usize,
    /// Bound of one frame's IPC body; larger batches are sliced.
    pub max_frame_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_buffered_bytes: 2 << 30,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

/// What a store holds; for tests and GC checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Streams (output partitions of task attempts) held.
    pub streams: usize,
    /// Streams whose end (or error) frame was written.
    pub complete_streams: usize,
    /// Frames held.
    pub frames: usize,
    /// Encoded bytes held.
    pub bytes: usize,
    /// Fetches being answered right now.
    pub active_fetches: usize,
}

#[derive(Default)]
struct StreamBuf {
    frames: Vec<ZBytes>,
    bytes: usize,
    complete: bool,
}

#[derive(Default)]
struct State {
    streams: HashMap<StreamId, StreamBuf>,
    bytes: usize,
    active_fetches: usize,
}

struct Inner {
    state: Mutex<State>,
    changed: Condvar,
    config: StoreConfig,
}

/// Frames of one stream from a position on (see [`OutputStore::read_from`]).
pub(crate) struct ReadFrames {
    pub frames: Vec<ZBytes>,
    /// The stream's end frame was written.
    pub complete: bool,
    /// Frames the stream has in all.
    pub total: u64,
}

/// The output buffers of one worker. Cheap to clone (shared).
#[derive(Clone)]
pub struct OutputStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OutputStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputStore")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for OutputStore {
    fn default() -> Self {
        OutputStore::new(StoreConfig::default())
    }
}

impl OutputStore {
    pub fn new(config: StoreConfig) -> Self {
        OutputStore {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
                config,
            }),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every
        // update is a few field writes), so poisoning is ignored.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a stream: registers it and writes its schema frame. Fails if
    /// the stream exists already (one attempt produces each stream once).
    pub fn open_stream(&self, stream: StreamId, schema: SchemaRef) -> Result<OutputStreamWriter> {
        let mut encoder =
            FrameEncoder::new(stream.clone(), schema, self.inner.config.max_frame_bytes);
        let first = encoder.schema_frame()?;
        {
            let mut st = self.lock();
            if st.streams.contains_key(&stream) {
                return Err(TransportError::Store(format!(
                    "stream {stream} exists already"
                )));
            }
            st.bytes += first.len();
            st.streams.insert(
                stream,
                StreamBuf {
                    bytes: first.len(),
                    frames: vec![first.into()],
                    complete: false,
                },
            );
        }
        self.inner.changed.notify_all();
        Ok(OutputStreamWriter {
            store: self.clone(),
            encoder,
        })
    }

    /// Appends frames to a stream; `last` marks it complete. Data frames
    /// must fit in the byte budget; the last frame (tiny) always fits.
    fn append(&self, stream: &StreamId, frames: Vec<Vec<u8>>, last: bool) -> Result<()> {
        let add: usize = frames.iter().map(Vec::len).sum();
        {
            let mut st = self.lock();
            let budget = self.inner.config.max_buffered_bytes;
            if !last && st.bytes + add > budget {
                return Err(TransportError::Store(format!(
                    "output buffers full: {} bytes held, {add} more would exceed the \
                     limit of {budget} bytes (spilling to disk is not implemented)",
                    st.bytes
                )));
            }
            let buf = st
                .streams
                .get_mut(stream)
                .ok_or_else(|| TransportError::Store(format!("stream {stream} was released")))?;
            if buf.complete {
                return Err(TransportError::Store(format!(
                    "stream {stream} is complete already"
                )));
            }
            buf.frames.extend(frames.into_iter().map(ZBytes::from));
            buf.bytes += add;
            buf.complete = last;
            st.bytes += add;
        }
        self.inner.changed.notify_all();
        Ok(())
    }

    /// Frames of `stream` from `from` on, at most about `max_bytes` of them
    /// (at least one if any); `None` if the store does not hold the stream.
    pub(crate) fn read_from(
        &self,
        stream: &StreamId,
        from: u64,
        max_bytes: usize,
    ) -> Option<ReadFrames> {
        let st = self.lock();
        let buf = st.streams.get(stream)?;
        let mut frames = Vec::new();
        let mut bytes = 0;
        for f in buf.frames.iter().skip(from as usize) {
            if !frames.is_empty() && bytes + f.len() > max_bytes {
                break;
            }
            bytes += f.len();
            frames.push(f.clone());
        }
        Some(ReadFrames {
            frames,
            complete: buf.complete,
            total: buf.frames.len() as u64,
        })
    }

    /// Waits until `stream` has more than `have` frames, is complete, is
    /// released, or `deadline` passes. Returns whether something changed.
    pub(crate) fn wait_for_more(&self, stream: &StreamId, have: u64, deadline: Instant) -> bool {
        let mut st = self.lock();
        loop {
            match st.streams.get(stream) {
                None => return true,
                Some(b) if b.complete || b.frames.len() as u64 > have => return true,
                Some(_) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .inner
                .changed
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// Whether the store holds `stream`.
    pub fn contains(&self, stream: &StreamId) -> bool {
        self.lock().streams.contains_key(stream)
    }

    /// The streams held, sorted.
    pub fn stream_ids(&self) -> Vec<StreamId> {
        let mut ids: Vec<_> = self.lock().streams.keys().cloned().collect();
        ids.sort();
        ids
    }

    fn release_where(&self, pred: impl Fn(&StreamId) -> bool) -> usize {
        let n = {
            let mut st = self.lock();
            let before = st.streams.len();
            let mut freed = 0;
            st.streams.retain(|id, buf| {
                let drop = pred(id);
                if drop {
                    freed += buf.bytes;
                }
                !drop
            });
            st.bytes -= freed;
            before - st.streams.len()
        };
        self.inner.changed.notify_all();
        n
    }

    /// Drops every stream of `query`; returns how many.
    pub fn release(&self, query: &QueryId) -> usize {
        self.release_where(|id| &id.query == query)
    }

    /// Drops every stream of one task attempt; returns how many.
    pub fn release_attempt(&self, attempt: &AttemptRef) -> usize {
        self.release_where(|id| {
            id.query == attempt.query
                && id.stage == attempt.stage
                && id.task == attempt.task
                && id.attempt == attempt.attempt
        })
    }

    /// Drops everything.
    pub fn release_all(&self) -> usize {
        self.release_where(|_| true)
    }

    pub fn stats(&self) -> StoreStats {
        let st = self.lock();
        StoreStats {
            streams: st.streams.len(),
            complete_streams: st.streams.values().filter(|b| b.complete).count(),
            frames: st.streams.values().map(|b| b.frames.len()).sum(),
            bytes: st.bytes,
            active_fetches: st.active_fetches,
        }
    }

    /// What the store holds of one task attempt (`active_fetches` counts
    /// the whole store).
    pub fn attempt_stats(&self, attempt: &AttemptRef) -> StoreStats {
        let st = self.lock();
        let mut out = StoreStats {
            active_fetches: st.active_fetches,
            ..StoreStats::default()
        };
        for (id, buf) in &st.streams {
            if id.attempt_ref() == *attempt {
                out.streams += 1;
                out.complete_streams += buf.complete as usize;
                out.frames += buf.frames.len();
                out.bytes += buf.bytes;
            }
        }
        out
    }

    /// Counts a fetch being answered until the guard drops.
    pub(crate) fn fetch_guard(&self) -> FetchGuard {
        self.lock().active_fetches += 1;
        FetchGuard {
            store: self.clone(),
        }
    }
}

pub(crate) struct FetchGuard {
    store: OutputStore,
}

impl Drop for FetchGuard {
    fn drop(&mut self) {
        self.store.lock().active_fetches -= 1;
    }
}

/// Writes one stream into an [`OutputStore`]. `finish` ends it with the end
/// frame; dropping it unfinished ends it with an error frame, so a consumer
/// never mistakes a partial stream for a complete one.
pub struct OutputStreamWriter {
    store: OutputStore,
    encoder: FrameEncoder,
}

impl std::fmt::Debug for OutputStreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputStreamWriter")
            .field("stream", self.encoder.stream())
            .field("next_seq", &self.encoder.next_seq())
            .finish()
    }
}

impl OutputStreamWriter {
    pub fn stream(&self) -> &StreamId {
        self.encoder.stream()
    }

    pub fn schema(&self) -> &SchemaRef {
        self.encoder.schema()
    }

    /// Encodes `batch` (sliced into bounded frames) and stores it.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let frames = self.encoder.batch_frames(batch)?;
        if frames.is_empty() {
            return Ok(());
        }
        let stream = self.encoder.stream().clone();
        self.store.append(&stream, frames, false)
    }

    /// Ends the stream with the end frame (batch and row counts).
    pub fn finish(mut self) -> Result<()> {
        self.finish_mut()
    }

    pub(crate) fn finish_mut(&mut self) -> Result<()> {
        let end = self.encoder.end_frame()?;
        let stream = self.encoder.stream().clone();
        self.store.append(&stream, vec![end], true)
    }

    /// Ends the stream with an error frame carrying `message`.
    pub fn fail(mut self, message: &str) -> Result<()> {
        self.fail_mut(message)
    }

    pub(crate) fn fail_mut(&mut self, message: &str) -> Result<()> {
        let frame = self.encoder.error_frame(message)?;
        let stream = self.encoder.stream().clone();
        self.store.append(&stream, vec![frame], true)
    }

    pub fn is_ended(&self) -> bool {
        self.encoder.is_ended()
    }
}

impl Drop for OutputStreamWriter {
    fn drop(&mut self) {
        if !self.encoder.is_ended() {
            let _ = self.fail_mut("the producer stopped before finishing the stream");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zenoh_exchange::frame::tests::{mixed_batch, sid};
    use crate::zenoh_exchange::frame::{Frame, StreamVerifier, Verified};

    fn read_all(store: &OutputStore, id: &StreamId) -> StreamVerifier {
        let r = store.read_from(id, 0, usize::MAX).unwrap();
        let mut v = StreamVerifier::new(id.clone());
        for f in r.frames {
            let frame = Frame::decode_slice(&f.to_bytes()).unwrap();
            match v.accept(&frame) {
                Ok(Verified::Batch(_) | Verified::Schema(_) | Verified::End { .. }) => {}
                other => panic!("{other:?}"),
            }
        }
        v
    }

    #[test]
    fn write_finish_release() {
        let store = OutputStore::default();
        let mut w = store
            .open_stream(sid(1), mixed_batch(1, 1).schema())
            .unwrap();
        w.write(&mixed_batch(100, 1)).unwrap();
        w.write(&mixed_batch(50, 2)).unwrap();
        w.finish().unwrap();
        let s = store.stats();
        assert_eq!((s.streams, s.complete_streams, s.frames), (1, 1, 4));
        assert!(s.bytes > 0);
        let v = read_all(&store, &sid(1));
        assert!(v.is_finished());
        assert_eq!(v.counts(), (2, 150));
        assert!(store
            .open_stream(sid(1), mixed_batch(1, 1).schema())
            .is_err());
        assert_eq!(store.release(&sid(1).query), 1);
        assert_eq!(store.stats(), StoreStats::default());
    }

    #[test]
    fn dropped_writer_ends_with_error() {
        let store = OutputStore::default();
        let mut w = store
            .open_stream(sid(1), mixed_batch(1, 1).schema())
            .unwrap();
        w.write(&mixed_batch(10, 1)).unwrap();
        drop(w);
        let r = store.read_from(&sid(1), 0, usize::MAX).unwrap();
        assert!(r.complete);
        let mut v = StreamVerifier::new(sid(1));
        let mut err = None;
        for f in r.frames {
            if let Err(e) = v.accept(&Frame::decode_slice(&f.to_bytes()).unwrap()) {
                err = Some(e.to_string());
            }
        }
        assert!(err.unwrap().contains("stopped before finishing"));
    }

    #[test]
    fn budget_is_enforced() {
        let store = OutputStore::new(StoreConfig {
            max_buffered_bytes: 64 * 1024,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        });
        let mut w = store
            .open_stream(sid(1), mixed_batch(1, 1).schema())
            .unwrap();
        let e = w.write(&mixed_batch(5000, 1)).unwrap_err().to_string();
        assert!(e.contains("spilling to disk is not implemented"), "{e}");
        // The stream can still be ended.
        w.fail("out of memory").unwrap();
        assert_eq!(store.stats().complete_streams, 1);
    }

    #[test]
    fn release_attempt_keeps_others() {
        let store = OutputStore::default();
        let schema = mixed_batch(1, 1).schema();
        for attempt in [0, 1] {
            store
                .open_stream(sid(attempt), schema.clone())
                .unwrap()
                .finish()
                .unwrap();
        }
        assert_eq!(store.release_attempt(&sid(0).attempt_ref()), 1);
        assert_eq!(store.stream_ids(), vec![sid(1)]);
        let mut w = store.open_stream(sid(2), schema).unwrap();
        store.release_all();
        let e = w.write(&mixed_batch(3, 1)).unwrap_err().to_string();
        assert!(e.contains("released"), "{e}");
        drop(w);
        assert_eq!(store.stats(), StoreStats::default());
    }

    #[test]
    fn wait_for_more_wakes_on_write() {
        let store = OutputStore::default();
        let mut w = store
            .open_stream(sid(1), mixed_batch(1, 1).schema())
            .unwrap();
        let s2 = store.clone();
        let t = std::thread::spawn(move || {
            s2.wait_for_more(
                &sid(1),
                1,
                Instant::now() + std::time::Duration::from_secs(10),
            )
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        w.write(&mixed_batch(3, 1)).unwrap();
        assert!(t.join().unwrap());
        assert!(!store.wait_for_more(
            &sid(1),
            2,
            Instant::now() + std::time::Duration::from_millis(20)
        ));
        w.finish().unwrap();
    }
}
