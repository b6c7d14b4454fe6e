//! The producer side's queryable: answers fetches of output partitions.
//!
//! One queryable per worker session on `ffq/<cluster>/data/**`. A fetch is
//! a `get` on a stream's key with the selector parameter `from=<seq>` (the
//! first frame wanted). The answer is a sequence of replies, one frame
//! each, in sequence order, on the stream's key:
//!
//! - frames that exist are sent at once, up to about
//!   [`ServeOptions::max_reply_bytes`] per get (or less, if the get asks
//!   with `max_bytes=<n>`);
//! - a stream still being written is streamed as it grows: the server waits
//!   for new frames up to [`ServeOptions::idle_wait`] at a time and
//!   [`ServeOptions::max_get_time`] in all;
//! - the get ends when the end (or error) frame was sent, the byte budget
//!   is used, or the waits ran out. The consumer then asks again from the
//!   next sequence number, until it has the end frame. If a get ends
//!   before any frame of the stream was sent, a `Pending` marker tells the
//!   consumer that the stream exists but has nothing new yet.
//! - a worker that does not hold the stream does not answer at all; a get
//!   that no worker answers means the stream does not exist (anymore).
//!
//! Replies travel with the get's congestion control: the consumer asks
//! with `CongestionControl::Block` (zenoh 1.10 ignores the setting on the
//! reply builder), so no reply is dropped. Each get is answered on a
//! blocking thread, since `Block` may block while the link is congested.
//! The byte budget per get bounds what a consumer buffers.

use std::time::{Duration, Instant};

use zenoh::query::{Query, Queryable};
use zenoh::{Session, Wait};

use super::error::{Result, TransportError};
use super::frame::{encode_frame, FrameHeader, FrameKind};
use super::keys::{data_space, ClusterId, DataKey, StreamId};
use super::store::OutputStore;

/// How the server answers fetches.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Frames sent per get, in bytes (at least one frame).
    pub max_reply_bytes: usize,
    /// How long a get waits for a new frame of an unfinished stream.
    pub idle_wait: Duration,
    /// How long one get streams at most.
    pub max_get_time: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
            idle_wait: Duration::from_millis(1000),
            max_get_time: Duration::from_secs(5),
        }
    }
}

/// What one get returns at most by default, in bytes.
pub const DEFAULT_MAX_REPLY_BYTES: usize = 32 << 20;

/// The selector parameter naming the first frame wanted.
pub const FROM_PARAM: &str = "from";
/// The selector parameter bounding the bytes of one answer (the server's
/// own bound applies too).
pub const MAX_BYTES_PARAM: &str = "max_bytes";

/// A store's queryable; dropping it undeclares the queryable (fetches
/// being answered finish on their own).
pub struct OutputServer {
    queryable: Queryable<()>,
    key_expr: String,
}

impl std::fmt::Debug for OutputServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputServer")
            .field("key_expr", &self.key_expr)
            .finish()
    }
}

impl OutputServer {
    /// The key expression it answers (`ffq/<cluster>/data/**`).
    pub fn key_expr(&self) -> &str {
        &self.key_expr
    }

    /// Undeclares the queryable.
    pub async fn close(self) -> Result<()> {
        self.queryable
            .undeclare()
            .await
            .map_err(TransportError::zenoh)
    }
}

impl OutputStore {
    /// Declares the queryable that answers fetches of this store's streams
    /// on `session`. Call it from inside a tokio runtime: gets are answered
    /// on its blocking pool (or on plain threads outside of one).
    pub async fn serve(
        &self,
        session: &Session,
        cluster: &ClusterId,
        options: ServeOptions,
    ) -> Result<OutputServer> {
        let key_expr = data_space(cluster);
        let store = self.clone();
        let cluster = cluster.clone();
        let runtime = tokio::runtime::Handle::try_current().ok();
        let queryable = session
            .declare_queryable(key_expr.clone())
            .callback(move |query| {
                let store = store.clone();
                let cluster = cluster.clone();
                let options = options.clone();
                let work = move || answer(&store, &cluster, &options, query);
                match &runtime {
                    Some(rt) => {
                        rt.spawn_blocking(work);
                    }
                    None => {
                        std::thread::spawn(work);
                    }
                }
            })
            .await
            .map_err(TransportError::zenoh)?;
        Ok(OutputServer {
            queryable,
            key_expr,
        })
    }
}

/// The streams of `store` a query asks for.
fn matching_streams(store: &OutputStore, cluster: &ClusterId, query: &Query) -> Vec<StreamId> {
    let ke = query.key_expr();
    if let Ok(key) = DataKey::parse(ke.as_str()) {
        if &key.cluster == cluster && store.contains(&key.stream) {
            return vec![key.stream];
        }
        return vec![];
    }
    store
        .stream_ids()
        .into_iter()
        .filter(|id| {
            let key = DataKey::new(cluster.clone(), id.clone()).to_string();
            zenoh::key_expr::KeyExpr::try_from(key)
                .map(|k| ke.intersects(&k))
                .unwrap_or(false)
        })
        .collect()
}

/// Answers one get (on a blocking thread); dropping `query` at the end
/// tells the consumer that this worker's answer is complete.
fn answer(store: &OutputStore, cluster: &ClusterId, options: &ServeOptions, query: Query) {
    let param = |name: &str| -> std::result::Result<Option<u64>, String> {
        match query.parameters().get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("bad parameter {name}={v:?}: not a number")),
        }
    };
    let (from, max_bytes) = match (param(FROM_PARAM), param(MAX_BYTES_PARAM)) {
        (Ok(from), Ok(max)) => (
            from.unwrap_or(0),
            max.map_or(options.max_reply_bytes, |m| {
                options
                    .max_reply_bytes
                    .min(m.min(usize::MAX as u64) as usize)
            }),
        ),
        (Err(e), _) | (_, Err(e)) => {
            let _ = query.reply_err(e).wait();
            return;
        }
    };
    let streams = matching_streams(store, cluster, &query);
    if streams.is_empty() {
        return;
    }
    let _guard = store.fetch_guard();
    let start = Instant::now();
    let get_deadline = start + options.max_get_time;
    let mut sent_bytes = 0usize;
    for stream in streams {
        let key = DataKey::new(cluster.clone(), stream.clone()).to_string();
        let mut next = from;
        let mut sent_any = false;
        loop {
            let budget = max_bytes.saturating_sub(sent_bytes).max(1);
            let Some(read) = store.read_from(&stream, next, budget) else {
                break; // released meanwhile
            };
            let frames = match read.frames {
                Ok(frames) => frames,
                Err(e) => {
                    let _ = query.reply_err(e.to_string()).wait();
                    return;
                }
            };
            let got = !frames.is_empty();
            for frame in frames {
                let len = frame.len();
                if query.reply(key.as_str(), frame).wait().is_err() {
                    return; // the consumer or the session is gone
                }
                next += 1;
                sent_bytes += len;
                sent_any = true;
            }
            if read.complete && next >= read.total {
                break;
            }
            let now = Instant::now();
            let out_of_time = now >= get_deadline;
            if sent_bytes >= max_bytes || out_of_time {
                if !sent_any {
                    pending(&query, &key, &stream, next);
                }
                return;
            }
            if !got {
                let until = (now + options.idle_wait).min(get_deadline);
                if !store.wait_for_more(&stream, next, until) {
                    if !sent_any {
                        pending(&query, &key, &stream, next);
                    }
                    break;
                }
            }
        }
    }
}

fn pending(query: &Query, key: &str, stream: &StreamId, next: u64) {
    let header = FrameHeader {
        stream: stream.clone(),
        seq: next,
        kind: FrameKind::Pending,
    };
    if let Ok(frame) = encode_frame(&header) {
        let _ = query.reply(key, frame).wait();
    }
}
