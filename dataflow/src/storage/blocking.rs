//! Running object-store requests from synchronous code (registration and
//! planning list objects and read footers): on a small runtime of the
//! storage layer's own, so the caller may itself be a tokio task (of any
//! runtime flavor) without nesting runtimes. The caller's thread waits.

use std::future::Future;
use std::sync::OnceLock;

use crate::error::{DataflowError, Result};

/// Threads of the storage runtime: requests wait on the network, not the CPU.
const THREADS: usize = 2;

static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();

fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(THREADS)
                .thread_name("ffq-object-store")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| DataflowError::Internal(format!("cannot start the object store runtime: {e}")))
}

/// Runs `future` on the storage runtime and waits for its output.
pub(super) fn run<F>(future: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let task = runtime()?.spawn(future);
    futures::executor::block_on(task)
        .map_err(|e| DataflowError::Internal(format!("object store request failed: {e}")))
}
