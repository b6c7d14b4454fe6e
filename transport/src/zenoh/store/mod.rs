//! The producer side: task attempts' output partitions, kept as encoded
//! frames until the coordinator releases them.
//!
//! Nothing is pushed: consumers pull a partition with a zenoh `get` (see
//! [`super::serve`]), so no frame is ever sent before its consumer asked.
//! A stream can be fetched while it is being written: the server sends what
//! exists and then waits for more.
//!
//! Memory is bounded by [`StoreConfig::max_buffered_bytes`] and, on a
//! worker, by its memory pool ([`OutputStore::with_memory_pool`]: the
//! frames held in memory are a spillable reservation there, so task
//! outputs and operator state share one limit). Frames beyond either go to
//! spill files in [`StoreConfig::spill_dir`] (see [`spill`]) and
//! are read back from there when fetched; without a spill directory, or
//! past [`StoreConfig::max_spill_bytes`], a write fails the producing task
//! with an explicit error.
//!
//! A released query is remembered for a while (the last
//! [`RELEASED_QUERIES_KEPT`] ids): a task of it that was still starting or
//! running when the release came cannot open new streams, so nothing of an
//! ended query is held again after its release.

mod spill;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use ffq_dataflow::execution::{MemoryConsumer, MemoryPool, MemoryReservation};
use zenoh::bytes::ZBytes;

use self::spill::SpillFile;
use super::error::{Result, TransportError};
use super::frame::{FrameEncoder, DEFAULT_MAX_FRAME_BYTES};
use super::keys::{AttemptRef, QueryId, StageId, StreamId};

/// How many released query ids a store remembers.
pub const RELEASED_QUERIES_KEPT: usize = 4096;

/// Limits of an [`OutputStore`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Encoded bytes kept in memory at most (all streams together).
    pub max_buffered_bytes: usize,
    /// Bound of one frame's IPC body; larger batches are sliced.
    pub max_frame_bytes: usize,
    /// Where frames beyond the memory budget go; `None`: nowhere (a write
    /// beyond the budget fails).
    pub spill_dir: Option<PathBuf>,
    /// Bytes kept in spill files at most; `None`: no limit but the disk.
    pub max_spill_bytes: Option<u64>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_buffered_bytes: 2 << 30,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            spill_dir: Some(std::env::temp_dir()),
            max_spill_bytes: None,
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
    /// Frames held (in memory or spilled).
    pub frames: usize,
    /// Encoded bytes held in memory.
    pub bytes: usize,
    /// Encoded bytes held in spill files.
    pub spilled_bytes: u64,
    /// Spill files open.
    pub spill_files: usize,
    /// Fetches being answered right now.
    pub active_fetches: usize,
}

/// Where one frame is kept.
#[derive(Clone)]
enum StoredFrame {
    Memory(ZBytes),
    Spilled {
        file: Arc<SpillFile>,
        offset: u64,
        len: usize,
    },
}

impl StoredFrame {
    fn len(&self) -> usize {
        match self {
            StoredFrame::Memory(b) => b.len(),
            StoredFrame::Spilled { len, .. } => *len,
        }
    }

    fn load(self) -> Result<ZBytes> {
        match self {
            StoredFrame::Memory(b) => Ok(b),
            StoredFrame::Spilled { file, offset, len } => Ok(file.read(offset, len)?.into()),
        }
    }
}

#[derive(Default)]
struct StreamBuf {
    frames: Vec<StoredFrame>,
    /// Bytes of `frames` in memory.
    bytes: usize,
    /// Bytes of `frames` in spill files.
    spilled: u64,
    complete: bool,
}

#[derive(Default)]
struct State {
    streams: HashMap<StreamId, StreamBuf>,
    /// Memory bytes of all streams.
    bytes: usize,
    /// Spilled bytes of all streams.
    spilled: u64,
    /// The spill file each stage of a query appends to.
    spill_files: HashMap<(QueryId, StageId), Arc<SpillFile>>,
    active_fetches: usize,
    /// Recently released queries, oldest first, and the same as a set.
    released_order: VecDeque<QueryId>,
    released: HashSet<QueryId>,
    /// The memory bytes, reserved from the worker's pool (if any).
    memory: Option<MemoryReservation>,
}

impl State {
    /// Holds `add` more bytes in memory if that stays within the budget
    /// and the pool grants them; false (nothing held) otherwise.
    fn admit(&mut self, add: usize, budget: usize) -> bool {
        if self.bytes + add > budget {
            return false;
        }
        if let Some(r) = &mut self.memory {
            if r.try_grow(add).is_err() {
                return false;
            }
        }
        self.bytes += add;
        true
    }

    /// Holds `add` more bytes in memory whatever the budget (schema and
    /// end frames: tiny, and needed to read a stream at all).
    fn hold(&mut self, add: usize) {
        self.bytes += add;
        if let Some(r) = &mut self.memory {
            r.grow(add);
        }
    }

    /// Gives `freed` memory bytes back.
    fn unhold(&mut self, freed: usize) {
        self.bytes -= freed;
        if let Some(r) = &mut self.memory {
            r.shrink(freed.min(r.size()));
        }
    }
}

impl State {
    fn remember_released(&mut self, query: QueryId) {
        if self.released.insert(query.clone()) {
            self.released_order.push_back(query);
            while self.released_order.len() > RELEASED_QUERIES_KEPT {
                if let Some(old) = self.released_order.pop_front() {
                    self.released.remove(&old);
                }
            }
        }
    }

    /// The spill file of `stream`'s stage, created on first use.
    fn spill_file(&mut self, stream: &StreamId, config: &StoreConfig) -> Result<Arc<SpillFile>> {
        let key = (stream.query.clone(), stream.stage);
        if let Some(f) = self.spill_files.get(&key) {
            return Ok(Arc::clone(f));
        }
        let dir = config
            .spill_dir
            .as_ref()
            .ok_or_else(|| TransportError::Store("no spill directory is configured".to_string()))?;
        let file = Arc::new(SpillFile::create(dir)?);
        self.spill_files.insert(key, Arc::clone(&file));
        Ok(file)
    }
}

struct Inner {
    state: Mutex<State>,
    changed: Condvar,
    config: StoreConfig,
}

/// Frames of one stream from a position on (see [`OutputStore::read_from`]).
pub(crate) struct ReadFrames {
    /// The frames, or why reading them back from a spill file failed.
    pub frames: Result<Vec<ZBytes>>,
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

    /// The same store, its memory bytes reserved in `pool` as a spillable
    /// consumer named "output store": frames the pool does not grant are
    /// spilled like frames beyond the budget.
    pub fn with_memory_pool(self, pool: &Arc<dyn MemoryPool>) -> Self {
        let reservation = MemoryConsumer::new("output store")
            .with_can_spill(true)
            .register(pool);
        let mut st = self.lock();
        reservation.grow(st.bytes);
        st.memory = Some(reservation);
        drop(st);
        self
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
            if st.released.contains(&stream.query) {
                return Err(TransportError::Store(format!(
                    "query {} was released: its task attempts may not write any more",
                    stream.query
                )));
            }
            st.hold(first.len());
            st.streams.insert(
                stream,
                StreamBuf {
                    bytes: first.len(),
                    frames: vec![StoredFrame::Memory(first.into())],
                    spilled: 0,
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
    /// that do not fit in the memory budget go to the stage's spill file;
    /// the last frame (tiny) always stays in memory.
    fn append(&self, stream: &StreamId, frames: Vec<Vec<u8>>, last: bool) -> Result<()> {
        let add: usize = frames.iter().map(Vec::len).sum();
        {
            let mut st = self.lock();
            let config = &self.inner.config;
            match st.streams.get(stream) {
                None => {
                    return Err(TransportError::Store(format!(
                        "stream {stream} was released"
                    )))
                }
                Some(buf) if buf.complete => {
                    return Err(TransportError::Store(format!(
                        "stream {stream} is complete already"
                    )))
                }
                Some(_) => {}
            }
            let budget = config.max_buffered_bytes;
            let in_memory = if last {
                st.hold(add);
                true
            } else {
                st.admit(add, budget)
            };
            let stored = if in_memory {
                let buf = st.streams.get_mut(stream).expect("checked above");
                buf.bytes += add;
                frames
                    .into_iter()
                    .map(|f| StoredFrame::Memory(f.into()))
                    .collect::<Vec<_>>()
            } else {
                if let Some(limit) = config.max_spill_bytes {
                    if st.spilled + add as u64 > limit {
                        return Err(TransportError::Store(format!(
                            "output buffers full: {} bytes in memory (limit {budget}) and {} \
                             bytes spilled (limit {limit}); {add} more bytes do not fit",
                            st.bytes, st.spilled
                        )));
                    }
                }
                let file = st.spill_file(stream, config).map_err(|e| {
                    TransportError::Store(format!(
                        "output buffers full: {} bytes held, {add} more would exceed the \
                         limit of {budget} bytes, and spilling failed: {e}",
                        st.bytes
                    ))
                })?;
                let mut stored = Vec::with_capacity(frames.len());
                for f in frames {
                    let offset = file.append(&f)?;
                    stored.push(StoredFrame::Spilled {
                        file: Arc::clone(&file),
                        offset,
                        len: f.len(),
                    });
                }
                st.spilled += add as u64;
                let buf = st.streams.get_mut(stream).expect("checked above");
                buf.spilled += add as u64;
                stored
            };
            let buf = st.streams.get_mut(stream).expect("checked above");
            buf.frames.extend(stored);
            buf.complete = last;
        }
        self.inner.changed.notify_all();
        Ok(())
    }

    /// Frames of `stream` from `from` on, at most about `max_bytes` of them
    /// (at least one if any); `None` if the store does not hold the stream.
    /// Spilled frames are read back after the store's lock is released.
    pub(crate) fn read_from(
        &self,
        stream: &StreamId,
        from: u64,
        max_bytes: usize,
    ) -> Option<ReadFrames> {
        let (stored, complete, total) = {
            let st = self.lock();
            let buf = st.streams.get(stream)?;
            let mut stored = Vec::new();
            let mut bytes = 0;
            for f in buf.frames.iter().skip(from as usize) {
                if !stored.is_empty() && bytes + f.len() > max_bytes {
                    break;
                }
                bytes += f.len();
                stored.push(f.clone());
            }
            (stored, buf.complete, buf.frames.len() as u64)
        };
        Some(ReadFrames {
            frames: stored.into_iter().map(StoredFrame::load).collect(),
            complete,
            total,
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

    /// Drops the streams `pred` selects. A spill file is closed (and so
    /// removed) once no stream points into it and its stage is released.
    fn release_where(
        &self,
        pred: impl Fn(&StreamId) -> bool,
        stage_released: impl Fn(&QueryId, StageId) -> bool,
    ) -> usize {
        let n = {
            let mut st = self.lock();
            let before = st.streams.len();
            let (mut freed, mut unspilled) = (0, 0);
            st.streams.retain(|id, buf| {
                let drop = pred(id);
                if drop {
                    freed += buf.bytes;
                    unspilled += buf.spilled;
                }
                !drop
            });
            st.unhold(freed);
            st.spilled -= unspilled;
            st.spill_files
                .retain(|(q, s), f| !(stage_released(q, *s) && Arc::strong_count(f) == 1));
            before - st.streams.len()
        };
        self.inner.changed.notify_all();
        n
    }

    /// Refuses new streams of `query` from now on (its task attempts may
    /// still be starting); [`OutputStore::release`] also drops what it has.
    pub fn mark_released(&self, query: &QueryId) {
        self.lock().remember_released(query.clone());
    }

    /// Whether `query` was released (among the last
    /// [`RELEASED_QUERIES_KEPT`] released).
    pub fn is_released(&self, query: &QueryId) -> bool {
        self.lock().released.contains(query)
    }

    /// Drops every stream of `query` and refuses new ones; returns how
    /// many were dropped.
    pub fn release(&self, query: &QueryId) -> usize {
        self.mark_released(query);
        self.release_where(|id| &id.query == query, |q, _| q == query)
    }

    /// Drops every stream of one task attempt; returns how many.
    pub fn release_attempt(&self, attempt: &AttemptRef) -> usize {
        self.release_where(
            |id| {
                id.query == attempt.query
                    && id.stage == attempt.stage
                    && id.task == attempt.task
                    && id.attempt == attempt.attempt
            },
            // The stage's other attempts may still append to its file.
            |_, _| false,
        )
    }

    /// Drops every stream of one stage of `query` (its readers are done);
    /// returns how many.
    pub fn release_stage(&self, query: &QueryId, stage: StageId) -> usize {
        self.release_where(
            |id| &id.query == query && id.stage == stage,
            |q, s| q == query && s == stage,
        )
    }

    /// Drops everything (queries still running may open new streams).
    pub fn release_all(&self) -> usize {
        self.release_where(|_| true, |_, _| true)
    }

    pub fn stats(&self) -> StoreStats {
        let st = self.lock();
        StoreStats {
            streams: st.streams.len(),
            complete_streams: st.streams.values().filter(|b| b.complete).count(),
            frames: st.streams.values().map(|b| b.frames.len()).sum(),
            bytes: st.bytes,
            spilled_bytes: st.spilled,
            spill_files: st.spill_files.len(),
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
                out.spilled_bytes += buf.spilled;
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
mod tests;
