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
    /// A copy for another consumer of the same failure (a shared build, an
    /// exchange's other outputs): the category and fields are kept where
    /// they can be; wrapped library errors become their message.
    pub fn duplicate(&self) -> DataflowError {
        match self {
            DataflowError::NotSupported(m) => DataflowError::NotSupported(m.clone()),
            DataflowError::Plan(m) => DataflowError::Plan(m.clone()),
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
