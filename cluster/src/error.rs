//! Errors of the distributed runtime.

use ffq_dataflow::error::DataflowError;
use ffq_transport::zenoh_exchange::{TransportError, WorkerId};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A zenoh operation failed (opening a session, declaring, sending).
    #[error("zenoh: {0}")]
    Zenoh(String),
    /// A control message that does not decode, or an unexpected answer.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Nobody answered a control request on `key`.
    #[error("no answer on {key}: {reason}")]
    Unreachable { key: String, reason: String },
    /// The peer answered with an error.
    #[error("{0}")]
    Remote(String),
    /// The query failed on the cluster.
    #[error("{0}")]
    Query(String),
    #[error("configuration: {0}")]
    Config(String),
    /// A worker was started with the id of a live worker.
    #[error("worker id {0} is already held by a live worker")]
    DuplicateWorker(WorkerId),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Dataflow(#[from] DataflowError),
}

pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

impl ClusterError {
    pub(crate) fn zenoh(e: impl std::fmt::Display) -> Self {
        ClusterError::Zenoh(e.to_string())
    }
}

impl From<ClusterError> for DataflowError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Dataflow(d) => d,
            other => DataflowError::Execution(other.to_string()),
        }
    }
}
