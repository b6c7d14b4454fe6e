//! The `ffq` crate's error type: what a user sees when something is wrong.

use datafusion_common::DataFusionError;
use ffq_dataflow::DataflowError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQL text does not parse; the message has line and column.
    #[error("SQL error: {0}")]
    Sql(String),
    /// The query is well-formed but wrong: unknown table or column, type
    /// mismatch, ambiguous name.
    #[error("planning error: {0}")]
    Plan(String),
    /// A feature FFQ does not run yet.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// A file could not be used; the path is part of the message.
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// An invalid argument to the API (bad table name, bad option).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A failure while running a query.
    #[error("{0}")]
    Execution(DataflowError),
    /// The cluster could not be reached or refused a request.
    #[error("cluster: {0}")]
    Cluster(String),
}

impl From<ffq_cluster::ClusterError> for Error {
    fn from(e: ffq_cluster::ClusterError) -> Self {
        match e {
            ffq_cluster::ClusterError::Dataflow(d) => Error::from(d),
            other => Error::Cluster(other.to_string()),
        }
    }
}

impl From<ffq_transport::zenoh_exchange::TransportError> for Error {
    fn from(e: ffq_transport::zenoh_exchange::TransportError) -> Self {
        Error::Cluster(e.to_string())
    }
}

impl From<DataflowError> for Error {
    fn from(e: DataflowError) -> Self {
        match e {
            DataflowError::NotSupported(m) => Error::NotSupported(m),
            DataflowError::File { path, message } => Error::File { path, message },
            DataflowError::DataFusion(e) => Error::from(e),
            other => Error::Execution(other),
        }
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        match e {
            DataFusionError::SQL(e, _) => Error::Sql(e.to_string()),
            DataFusionError::NotImplemented(m) => Error::NotSupported(m),
            DataFusionError::Plan(m) => Error::Plan(m),
            DataFusionError::SchemaError(e, _) => Error::Plan(e.to_string()),
            DataFusionError::Context(ctx, inner) => match Error::from(*inner) {
                Error::Plan(m) => Error::Plan(format!("{ctx}: {m}")),
                other => other,
            },
            DataFusionError::Diagnostic(_, inner) => Error::from(*inner),
            DataFusionError::Collection(mut errs) if !errs.is_empty() => {
                Error::from(errs.swap_remove(0))
            }
            other => Error::Execution(DataflowError::DataFusion(other)),
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::Execution(DataflowError::Arrow(e))
    }
}

impl Error {
    pub fn file(path: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
