//! How a control message travels: a zenoh `get` carrying the CBOR-encoded
//! request, answered by one reply (the CBOR-encoded response, or a reply
//! error carrying a message). Typed requests go through
//! [`super::requests`]; this module only moves bytes.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use zenoh::handlers::FifoChannelHandler;
use zenoh::qos::CongestionControl;
use zenoh::query::{ConsolidationMode, Query, QueryTarget, Reply};
use zenoh::Session;

use ffq_dataflow::limits::{on_deep_stack, CBOR_NESTING_LIMIT};

use crate::error::{ClusterError, Result};

/// Encodes a control message. Messages carry plans up to the nesting
/// bounds of `ffq_dataflow::limits`, so the walk runs on the deep stack.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    on_deep_stack(|| {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out)
            .map_err(|e| ClusterError::Protocol(format!("encoding: {e}")))?;
        Ok(out)
    })
}

/// Decodes a control message, accepting the nesting of any plan the planner
/// accepts ([`CBOR_NESTING_LIMIT`]) and no deeper.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    on_deep_stack(|| {
        ciborium::de::from_reader_with_recursion_limit(bytes, CBOR_NESTING_LIMIT)
            .map_err(|e| ClusterError::Protocol(format!("decoding: {e}")))
    })
}

/// Sends `request` to the queryable on `key` and decodes its answer.
pub(crate) async fn call<Req: Serialize, Resp: DeserializeOwned>(
    session: &Session,
    key: &str,
    request: &Req,
    timeout: Duration,
) -> Result<Resp> {
    let sent = std::time::Instant::now();
    let replies = get(session, key, request, QueryTarget::BestMatching, timeout).await?;
    match replies.recv_async().await {
        Ok(reply) => match reply.result() {
            Ok(sample) => decode(&sample.payload().to_bytes()),
            Err(e) => Err(ClusterError::Remote(
                e.payload()
                    .try_to_string()
                    .map(|s| s.into_owned())
                    .unwrap_or_else(|_| "an undecodable error".into()),
            )),
        },
        Err(_) => Err(ClusterError::Unreachable {
            key: key.to_string(),
            reason: no_reply(sent.elapsed(), timeout),
        }),
    }
}

/// Why a get ended without a reply: zenoh closes the reply channel at
/// once when nothing serves the key, and only at the timeout otherwise.
fn no_reply(elapsed: Duration, timeout: Duration) -> String {
    if elapsed < timeout.saturating_sub(Duration::from_millis(100)) {
        format!(
            "nothing answers on this key (the get ended after {:.2} s, before its \
             {timeout:?} timeout): is the process running and in this cluster?",
            elapsed.as_secs_f64()
        )
    } else {
        format!("no reply within {timeout:?}")
    }
}

/// Sends `request` to every queryable matching `key_expr` and decodes all
/// answers (errors are skipped).
pub(crate) async fn gather<Req: Serialize, Resp: DeserializeOwned>(
    session: &Session,
    key_expr: &str,
    request: &Req,
    timeout: Duration,
) -> Result<Vec<Resp>> {
    let replies = get(session, key_expr, request, QueryTarget::All, timeout).await?;
    let mut out = Vec::new();
    while let Ok(reply) = replies.recv_async().await {
        if let Ok(sample) = reply.result() {
            out.push(decode(&sample.payload().to_bytes())?);
        }
    }
    Ok(out)
}

/// Sends `request` as a get on `key_expr`; every reply is kept (no
/// consolidation) and a full network blocks rather than drops it.
async fn get<Req: Serialize>(
    session: &Session,
    key_expr: &str,
    request: &Req,
    target: QueryTarget,
    timeout: Duration,
) -> Result<FifoChannelHandler<Reply>> {
    session
        .get(key_expr)
        .payload(encode(request)?)
        .target(target)
        .consolidation(ConsolidationMode::None)
        .congestion_control(CongestionControl::Block)
        .timeout(timeout)
        .await
        .map_err(ClusterError::zenoh)
}

/// Decodes the request of a control query (no payload reads as `()`).
pub(crate) fn request_of<T: DeserializeOwned>(query: &Query) -> Result<T> {
    match query.payload() {
        Some(p) => decode(&p.to_bytes()),
        None => decode(&encode(&())?),
    }
}

/// The request a control query names: the last chunk of its key.
pub(crate) fn request_name(query: &Query) -> String {
    query
        .key_expr()
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Answers a control query with `result`.
pub(crate) async fn answer<T: Serialize>(query: &Query, result: Result<T>) {
    let sent = match result.and_then(|v| encode(&v)) {
        Ok(bytes) => query.reply(query.key_expr().clone(), bytes).await,
        Err(e) => query.reply_err(e.to_string()).await,
    };
    if let Err(e) = sent {
        tracing::debug!(key = %query.key_expr(), "reply not sent: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_key_nobody_serves_is_reported_as_such_not_as_a_timeout() {
        let config = ffq_transport::zenoh_exchange::peer_config(None, &[]).unwrap();
        let session = zenoh::open(config).await.unwrap();
        let timeout = Duration::from_secs(30);
        let start = std::time::Instant::now();
        let err = call::<(), ()>(&session, "ffq/nobody/ctl/x", &(), timeout)
            .await
            .unwrap_err()
            .to_string();
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(err.contains("nothing answers on this key"), "{err}");
        assert!(!err.contains("no reply within"), "{err}");
        session.close().await.unwrap();
    }

    #[test]
    fn a_real_timeout_says_so() {
        let t = Duration::from_secs(2);
        assert_eq!(no_reply(t, t), "no reply within 2s");
    }
}
