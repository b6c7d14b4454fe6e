//! The consumer side: fetching one output partition of one task attempt.
//!
//! [`fetch_partition`] pulls the stream with `get`s (see [`super::serve`]
//! for the protocol), verifies every frame with a [`StreamVerifier`] and
//! yields the batches. Replies are buffered without bound on the consumer
//! side, so zenoh's receive path never waits on a slow consumer (which
//! would stall every other stream on the same link); what one get can
//! return is bounded by the per-get byte budget (the server's, or
//! [`FetchOptions::max_reply_bytes`]), and the next get is only issued once
//! the batches of the previous one were taken. A consumer reading many
//! partitions at once buffers up to one budget per partition.
//!
//! With a memory pool ([`FetchOptions::memory_pool`]), each fetch reserves
//! the budget of its get in flight, unspillable (the replies arrive whether
//! or not the pool has room): under a limit the budget shrinks to what the
//! pool grants, down to [`MIN_REPLY_BYTES`], and to a 64th of the limit at
//! most, so that the operators reading the fetches see what is buffered
//! for them and spill earlier instead of the process exceeding its limit.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::datatypes::SchemaRef;
use ffq_dataflow::error::{DataflowError, Result as DfResult};
use ffq_dataflow::execution::{memory_limit, MemoryConsumer, MemoryPool, MemoryReservation};
use ffq_dataflow::stream::{boxed, SendableRecordBatchStream};
use futures::Stream;
use zenoh::bytes::ZBytes;
use zenoh::qos::CongestionControl;
use zenoh::query::{ConsolidationMode, QueryTarget, Reply};
use zenoh::Session;

use super::error::TransportError;
use super::frame::{Frame, StreamVerifier, Verified};
use super::keys::DataKey;
use super::serve::{DEFAULT_MAX_REPLY_BYTES, FROM_PARAM, MAX_BYTES_PARAM};

/// The smallest per-get budget a fetch asks for under memory pressure:
/// smaller gets would cost more round trips than the memory they save.
pub const MIN_REPLY_BYTES: usize = 1 << 20;

/// How a partition is fetched.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Timeout of one get (the server bounds a get to a few seconds).
    pub get_timeout: Duration,
    /// Ask every attempt of the task (`.../<stage>/*/<task>/<partition>`)
    /// instead of the expected one only. Frames of the other attempts are
    /// then dropped and counted ([`FetchStats::stale_frames`]): a defence
    /// against stale outputs, at the cost of their traffic.
    pub any_attempt: bool,
    /// Bytes one get may return at most (the server's bound applies too):
    /// bounds what this fetch buffers. `None`: the server's bound.
    pub max_reply_bytes: Option<usize>,
    /// The pool in which the budget of the get in flight is reserved
    /// (see the module doc). `None`: nothing is reserved.
    pub memory_pool: Option<Arc<dyn MemoryPool>>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            get_timeout: Duration::from_secs(30),
            any_attempt: false,
            max_reply_bytes: None,
            memory_pool: None,
        }
    }
}

/// Counters of one fetch.
#[derive(Debug, Default)]
pub struct FetchStats {
    /// Frames of other attempts, dropped.
    pub stale_frames: AtomicU64,
    /// Frames of the expected stream accepted (schema, batches, end).
    pub frames: AtomicU64,
    /// Bytes received, all frames.
    pub bytes: AtomicU64,
    /// Gets issued.
    pub gets: AtomicU64,
    /// Batches and rows yielded.
    pub batches: AtomicU64,
    pub rows: AtomicU64,
}

impl FetchStats {
    pub fn stale_frames(&self) -> u64 {
        self.stale_frames.load(Ordering::Relaxed)
    }
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::Relaxed)
    }
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }
}

type BatchStream = Pin<Box<dyn Stream<Item = DfResult<RecordBatch>> + Send>>;

/// The batches of one fetched partition, with its counters.
pub struct PartitionFetch {
    key: DataKey,
    stats: Arc<FetchStats>,
    inner: BatchStream,
}

impl PartitionFetch {
    pub fn key(&self) -> &DataKey {
        &self.key
    }

    pub fn stats(&self) -> Arc<FetchStats> {
        Arc::clone(&self.stats)
    }

    /// As an operator stream of a known schema.
    pub fn into_record_batch_stream(self, schema: SchemaRef) -> SendableRecordBatchStream {
        boxed(schema, self)
    }
}

impl Stream for PartitionFetch {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Fetches the stream `key` (one output partition of one task attempt).
pub fn fetch_partition(session: &Session, key: &DataKey) -> PartitionFetch {
    fetch_partition_with(session, key, FetchOptions::default())
}

fn to_buffer(payload: &ZBytes) -> Buffer {
    match payload.to_bytes() {
        Cow::Owned(v) => Buffer::from_vec(v),
        Cow::Borrowed(s) => Buffer::from_slice_ref(s),
    }
}

/// One get sent (or about to be): its replies as they arrive, and whether
/// zenoh accepted it.
struct SentGet {
    replies: tokio::sync::mpsc::UnboundedReceiver<Reply>,
    issued: futures::future::BoxFuture<'static, Result<(), String>>,
}

/// Sends a get for `selector` whose replies are buffered as they arrive
/// (see the module doc). With `spawn`, and inside a tokio runtime, it is
/// sent right away rather than when first awaited.
fn send_get(session: &Session, selector: String, timeout: Duration, spawn: bool) -> SentGet {
    use futures::FutureExt;
    let (tx, replies) = tokio::sync::mpsc::unbounded_channel::<Reply>();
    let session = session.clone();
    let issued = async move {
        session
            .get(selector)
            .callback(move |reply| {
                let _ = tx.send(reply);
            })
            .consolidation(ConsolidationMode::None)
            .target(QueryTarget::All)
            .congestion_control(CongestionControl::Block)
            .timeout(timeout)
            .await
            .map_err(|e| e.to_string())
    };
    let issued = match tokio::runtime::Handle::try_current() {
        Ok(rt) if spawn => {
            let task = rt.spawn(issued);
            async move { task.await.map_err(|e| e.to_string())? }.boxed()
        }
        _ => issued.boxed(),
    };
    SentGet { replies, issued }
}

/// [`fetch_partition`] with options. The first get is sent at once (not
/// when the stream is first polled), so that the partition travels while
/// its reader still works on something else, e.g. the probe side of a
/// hash join while the build side is read; later gets are sent when the
/// replies of the previous one were taken, as the module doc says.
pub fn fetch_partition_with(
    session: &Session,
    key: &DataKey,
    options: FetchOptions,
) -> PartitionFetch {
    let stats = Arc::new(FetchStats::default());
    let session = session.clone();
    let key_text = key.to_string();
    let ask = if options.any_attempt {
        key.any_attempt()
    } else {
        key_text.clone()
    };
    let expected = key.stream.clone();
    let counters = Arc::clone(&stats);
    let fail = {
        let key_text = key_text.clone();
        move |message: String| -> DataflowError {
            TransportError::Fetch {
                key: key_text.clone(),
                message,
            }
            .into()
        }
    };
    let reservation = options.memory_pool.as_ref().map(|pool| {
        let reservation = MemoryConsumer::new(format!("fetch of {}", key.stream)).register(pool);
        (reservation, memory_limit(pool.as_ref()))
    });
    stats.gets.fetch_add(1, Ordering::Relaxed);
    let first = send_get(
        &session,
        selector(&ask, 0, &reservation, options.max_reply_bytes),
        options.get_timeout,
        true,
    );
    let inner = async_stream::stream! {
        let reservation = reservation;
        let mut verifier = StreamVerifier::new(expected);
        let mut next_get = Some(first);
        'gets: loop {
            let get = match next_get.take() {
                Some(get) => get,
                None => {
                    let from = verifier.next_seq();
                    let selector = selector(&ask, from, &reservation, options.max_reply_bytes);
                    counters.gets.fetch_add(1, Ordering::Relaxed);
                    send_get(&session, selector, options.get_timeout, false)
                }
            };
            let SentGet { replies: mut rx, issued } = get;
            if let Err(e) = issued.await {
                yield Err(fail(format!("get failed: {e}")));
                break;
            }
            // Whether this get showed that the stream exists.
            let mut seen = false;
            while let Some(reply) = rx.recv().await {
                let sample = match reply.result() {
                    Ok(sample) => sample,
                    Err(e) => {
                        let msg = e.payload().try_to_string().map(|s| s.into_owned())
                            .unwrap_or_else(|_| format!("{} bytes", e.payload().len()));
                        yield Err(fail(format!("the producer answered with an error: {msg}")));
                        break 'gets;
                    }
                };
                counters.bytes.fetch_add(sample.payload().len() as u64, Ordering::Relaxed);
                let frame = match Frame::decode(to_buffer(sample.payload())) {
                    Ok(f) => f,
                    Err(e) => {
                        yield Err(fail(e.to_string()));
                        break 'gets;
                    }
                };
                match verifier.accept(&frame) {
                    Ok(Verified::Stale) => {
                        counters.stale_frames.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Verified::Pending) => seen = true,
                    Ok(Verified::Schema(_)) => {
                        seen = true;
                        counters.frames.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Verified::Batch(batch)) => {
                        seen = true;
                        counters.frames.fetch_add(1, Ordering::Relaxed);
                        counters.batches.fetch_add(1, Ordering::Relaxed);
                        counters.rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                        yield Ok(batch);
                    }
                    Ok(Verified::End { .. }) => {
                        counters.frames.fetch_add(1, Ordering::Relaxed);
                        // Other repliers (stale attempts) may still be
                        // answering; their frames do not matter.
                        break 'gets;
                    }
                    Err(e) => {
                        yield Err(fail(e.to_string()));
                        break 'gets;
                    }
                }
            }
            if !seen {
                let message = if verifier.next_seq() == 0 {
                    "no worker holds this partition (it was never produced, was released, \
                     or its worker is gone)"
                        .to_string()
                } else {
                    format!(
                        "the partition disappeared after {} frame(s) (released, or its \
                         worker is gone)",
                        verifier.next_seq()
                    )
                };
                yield Err(fail(message));
                break;
            }
        }
    };
    PartitionFetch {
        key: key.clone(),
        stats,
        inner: Box::pin(inner),
    }
}

/// The selector of a get of `ask` from frame `from` on, with the byte
/// budget reserved for it (see [`reserve_budget`]).
fn selector(
    ask: &str,
    from: u64,
    reservation: &Option<(MemoryReservation, Option<usize>)>,
    max_reply_bytes: Option<usize>,
) -> String {
    let mut selector = format!("{ask}?{FROM_PARAM}={from}");
    let budget = match reservation {
        Some((r, limit)) => Some(reserve_budget(r, *limit, max_reply_bytes)),
        None => max_reply_bytes,
    };
    if let Some(max) = budget {
        selector.push_str(&format!(";{MAX_BYTES_PARAM}={max}"));
    }
    selector
}

/// Reserves the budget of the next get in `reservation` and returns it:
/// `wanted` (the server's default if `None`), at most a 64th of the pool's
/// `limit`, halved while the pool refuses it, and [`MIN_REPLY_BYTES`] granted
/// in any case (a fetch must make progress; the operators that read it
/// spill to make room).
fn reserve_budget(
    reservation: &MemoryReservation,
    limit: Option<usize>,
    wanted: Option<usize>,
) -> usize {
    let mut budget = wanted.unwrap_or(DEFAULT_MAX_REPLY_BYTES);
    if let Some(limit) = limit {
        budget = budget.min(limit / 64);
    }
    let mut budget = budget.max(MIN_REPLY_BYTES);
    loop {
        if reservation.try_resize(budget).is_ok() {
            return budget;
        }
        if budget <= MIN_REPLY_BYTES {
            reservation.resize(MIN_REPLY_BYTES);
            return MIN_REPLY_BYTES;
        }
        budget = (budget / 2).max(MIN_REPLY_BYTES);
    }
}

/// The batches of several fetches, as they arrive, ending at the first
/// error: the reader of one consumer partition fed by several producers.
pub fn merge_fetches(fetches: Vec<PartitionFetch>, schema: SchemaRef) -> SendableRecordBatchStream {
    use futures::StreamExt;
    let mut merged = futures::stream::select_all(fetches);
    let stream = async_stream::stream! {
        while let Some(item) = merged.next().await {
            let failed = item.is_err();
            yield item;
            if failed {
                break;
            }
        }
    };
    boxed(schema, stream)
}
