//! Memory tables a worker's tasks scan: fetched from the client that
//! registered them (one Arrow IPC stream per table), once per query.

use std::time::Duration;

use ffq_transport::zenoh_exchange::{ClientId, ClusterId, QueryId};
use zenoh::Session;

use crate::error::{ClusterError, Result};
use crate::protocol::{client_table_key, encode, TableRequest};

/// Fetches memory table `name` of `query` from its client.
pub(super) async fn fetch_table(
    session: &Session,
    cluster: &ClusterId,
    client: &ClientId,
    query: &QueryId,
    name: &str,
) -> Result<Vec<arrow::array::RecordBatch>> {
    let key = client_table_key(cluster, client);
    let request = TableRequest {
        query: query.clone(),
        name: name.to_string(),
    };
    let replies = session
        .get(&key)
        .payload(encode(&request)?)
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .timeout(Duration::from_secs(60))
        .await
        .map_err(ClusterError::zenoh)?;
    let reply = replies
        .recv_async()
        .await
        .map_err(|_| ClusterError::Unreachable {
            key: key.clone(),
            reason: format!("the client did not answer for memory table {name}"),
        })?;
    let sample = reply.result().map_err(|e| {
        ClusterError::Remote(format!(
            "memory table {name}: {}",
            e.payload()
                .try_to_string()
                .map(|s| s.into_owned())
                .unwrap_or_default()
        ))
    })?;
    let bytes = sample.payload().to_bytes();
    if bytes.is_empty() {
        return Ok(vec![]);
    }
    ffq_dataflow::ipc::decode_stream(arrow::buffer::Buffer::from_slice_ref(bytes.as_ref()))
        .map(|(_, batches)| batches)
        .map_err(|e| ClusterError::Protocol(format!("memory table {name}: {e}")))
}
