//! The crate's error type. User errors (bad input, missing files, features
//! not supported yet) are kept apart from internal errors (bugs).

use arrow::error::ArrowError;
use datafusion_common::DataFusionError;

use crate::execution::format_bytes;

/// Result alias of the dataflow crate.
pub type Result<T, E = DataflowError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum DataflowError {
    /// A feature FFQ does not run yet; the message names it.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// A plan that cannot be built (wrong types, unknown names).
    #[error("plan error: {0}")]
    Plan(String),
    /// Reading or writing a file failed; the path is part of the message.
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// A worker refused to open a path outside the roots it was started
    /// with; the message names the path.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// An error raised while running an operator.
    #[error("execution error: {0}")]
    Execution(String),
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    #[error("{}", strip_df_prefix(.0))]
    DataFusion(#[from] DataFusionError),
    #[error("parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    /// A memory reservation was refused: `operator` (its memory consumer
    /// name) needs `needs` bytes in all, more than the pool's `limit`
    /// leaves; `holders` says who holds what.
    #[error(
        "resources exhausted: {operator} needs {}, memory limit {} ({holders})",
        format_bytes(*.needs),
        .limit.map_or_else(|| "none".to_string(), format_bytes)
    )]
    ResourcesExhausted {
        operator: String,
        needs: usize,
        limit: Option<usize>,
        holders: String,
    },
    /// The query was cancelled (its output stream was dropped).
    #[error("query cancelled")]
    Cancelled,
    /// A bug: an invariant of the engine does not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Arrow errors of the data itself (not of I/O or external sources).
fn arrow_is_deterministic(e: &ArrowError) -> bool {
    !matches!(e, ArrowError::IoError(..) | ArrowError::ExternalError(_))
}

/// DataFusion wraps errors in context layers; show the innermost message
/// with its category so that users see what is wrong, not how it was found.
fn strip_df_prefix(e: &DataFusionError) -> String {
    match e {
        DataFusionError::NotImplemented(m) => format!("not supported: {m}"),
        DataFusionError::Context(ctx, inner) => format!("{ctx}: {}", strip_df_prefix(inner)),
        DataFusionError::Diagnostic(_, inner) => strip_df_prefix(inner),
        DataFusionError::ArrowError(a, _) => a.to_string(),
        other => other.to_string(),
    }
}

impl DataflowError {
    /// Whether running the same task again would fail the same way, on any
    /// worker: errors of the query's meaning or its data (division by zero,
    /// a failed cast, a corrupt file, an unsupported feature, a bug) and
    /// state that alone needs more than the whole memory limit. A cluster
    /// fails the query at once instead of retrying these. Transport and I/O
    /// errors, and refusals that depend on what else runs, are not.
    pub fn is_deterministic(&self) -> bool {
        match self {
            DataflowError::NotSupported(_)
            | DataflowError::NotAllowed(_)
            | DataflowError::Plan(_)
            | DataflowError::Internal(_) => true,
            DataflowError::Arrow(e) => arrow_is_deterministic(e),
            DataflowError::DataFusion(e) => match e.find_root() {
                DataFusionError::ArrowError(a, _) => arrow_is_deterministic(a),
                DataFusionError::IoError(_)
                | DataFusionError::ObjectStore(_)
                | DataFusionError::External(_)
                | DataFusionError::ResourcesExhausted(_) => false,
                _ => true,
            },
            DataflowError::Parquet(e) => !matches!(e, parquet::errors::ParquetError::External(_)),
            DataflowError::ResourcesExhausted { needs, limit, .. } => {
                limit.is_some_and(|limit| *needs > limit)
            }
            DataflowError::File { .. }
            | DataflowError::Execution(_)
            | DataflowError::Io(_)
            | DataflowError::Cancelled => false,
        }
    }

    /// A copy for another consumer of the same failure (a shared build, an
    /// exchange's other outputs): the category and fields are kept where
    /// they can be; wrapped library errors become their message.
    pub fn duplicate(&self) -> DataflowError {
        match self {
            DataflowError::NotSupported(m) => DataflowError::NotSupported(m.clone()),
            DataflowError::Plan(m) => DataflowError::Plan(m.clone()),
            DataflowError::NotAllowed(m) => DataflowError::NotAllowed(m.clone()),
            DataflowError::File { path, message } => DataflowError::File {
                path: path.clone(),
                message: message.clone(),
            },
            DataflowError::Execution(m) => DataflowError::Execution(m.clone()),
            DataflowError::ResourcesExhausted {
                operator,
                needs,
                limit,
                holders,
            } => DataflowError::ResourcesExhausted {
                operator: operator.clone(),
                needs: *needs,
                limit: *limit,
                holders: holders.clone(),
            },
            DataflowError::Cancelled => DataflowError::Cancelled,
            DataflowError::Internal(m) => DataflowError::Internal(m.clone()),
            other => DataflowError::Execution(other.to_string()),
        }
    }

    pub fn file(path: impl Into<String>, message: impl std::fmt::Display) -> Self {
        DataflowError::File {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

#[macro_export]
macro_rules! not_supported {
    ($($arg:tt)*) => { $crate::error::DataflowError::NotSupported(format!($($arg)*)) };
}

#[macro_export]
macro_rules! internal_err {
    ($($arg:tt)*) => { $crate::error::DataflowError::Internal(format!($($arg)*)) };
}
