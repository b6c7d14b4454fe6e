//! The task set of one query.
//!
//! Every task a query spawns (exchange producers, merge feeders) lives in
//! one [`QueryTasks`] owned by the query's output stream; tasks hold only a
//! weak reference to it. Dropping the set aborts every task: nothing is
//! detached.

use std::sync::Mutex;

use futures::FutureExt;
use tokio::task::JoinSet;

use crate::error::{DataflowError, Result};

/// The tasks of one query; dropping it aborts them all.
pub struct QueryTasks {
    set: Mutex<JoinSet<()>>,
}

impl QueryTasks {
    pub(crate) fn new() -> Self {
        QueryTasks {
            set: Mutex::new(JoinSet::new()),
        }
    }

    /// Spawns `fut` into the set.
    pub(crate) fn spawn<F>(&self, fut: F) -> Result<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut set = self
            .set
            .lock()
            .map_err(|_| DataflowError::Internal("task set poisoned".into()))?;
        set.spawn(fut);
        Ok(())
    }

    /// Number of tasks not yet finished.
    pub fn running(&self) -> usize {
        let mut set = match self.set.lock() {
            Ok(s) => s,
            Err(_) => return 0,
        };
        while set.try_join_next().is_some() {}
        set.len()
    }
}

/// Runs `fut` and turns a panic into an error message.
pub async fn catch_panic<F, T>(fut: F) -> Result<T>
where
    F: std::future::Future<Output = Result<T>>,
{
    match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(DataflowError::Internal(format!("operator panicked: {msg}")))
        }
    }
}
