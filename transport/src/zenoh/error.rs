//! Errors of the zenoh exchange.

use arrow::error::ArrowError;
use ffq_dataflow::error::DataflowError;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// An id that cannot be a key chunk.
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidId {
        kind: &'static str,
        value: String,
        reason: String,
    },
    /// A key that does not have the shape of the contract.
    #[error("invalid key {key}: {reason}")]
    InvalidKey { key: String, reason: String },
    /// A frame that does not decode, or a stream that breaks the protocol
    /// (sequence gap or duplicate, wrong counts, frame after the end).
    #[error("bad frame: {0}")]
    Frame(String),
    /// The producer ended its stream with an error.
    #[error("producer failed: {0}")]
    Producer(String),
    /// The output store refused a write or lookup.
    #[error("output store: {0}")]
    Store(String),
    /// Fetching a partition failed; the message says why.
    #[error("fetching {key}: {message}")]
    Fetch { key: String, message: String },
    #[error("zenoh: {0}")]
    Zenoh(String),
    #[error("zenoh config: {0}")]
    Config(String),
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

pub type Result<T, E = TransportError> = std::result::Result<T, E>;

impl TransportError {
    pub(crate) fn zenoh(e: impl std::fmt::Display) -> Self {
        TransportError::Zenoh(e.to_string())
    }
}

impl From<TransportError> for DataflowError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Arrow(a) => DataflowError::Arrow(a),
            other => DataflowError::Execution(other.to_string()),
        }
    }
}
