//! [`FfqDb`]: an FFQ engine as a sqllogictest database.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use sqllogictest::{AsyncDB, DBOutput};

use super::output::{batches_to_output, ColType};
use crate::engine::Engine;
use crate::error::Error;

/// The engine name that `skipif ffq` / `onlyif ffq` conditions refer to.
pub const ENGINE_NAME: &str = "ffq";

/// An error of one statement run by [`FfqDb`].
#[derive(Debug)]
pub enum SltError {
    /// The engine's error.
    Engine(Error),
    /// The statement did not finish in time.
    Timeout(Duration),
    /// Running the statement panicked.
    Panic(String),
}

impl fmt::Display for SltError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SltError::Engine(e) => write!(f, "{e}"),
            SltError::Timeout(d) => write!(f, "statement timed out after {d:?}"),
            SltError::Panic(m) => write!(f, "panicked: {m}"),
        }
    }
}

impl std::error::Error for SltError {}

impl SltError {
    pub fn is_not_supported(&self) -> bool {
        matches!(self, SltError::Engine(Error::NotSupported(_)))
    }
}

impl From<Error> for SltError {
    fn from(e: Error) -> Self {
        SltError::Engine(e)
    }
}

/// Messages of the panics caught while running statements. A panic fails
/// its record even when the record expects an error.
pub type PanicLog = Arc<Mutex<Vec<String>>>;

/// An FFQ engine as a sqllogictest database.
pub struct FfqDb {
    engine: Engine,
    timeout: Duration,
    panics: PanicLog,
}

impl FfqDb {
    pub fn new(engine: Engine, timeout: Duration) -> Self {
        FfqDb::with_panic_log(engine, timeout, PanicLog::default())
    }

    /// Records the panics of its statements in `panics`.
    pub fn with_panic_log(engine: Engine, timeout: Duration, panics: PanicLog) -> Self {
        FfqDb {
            engine,
            timeout,
            panics,
        }
    }

    async fn run_one(&self, sql: &str) -> Result<DBOutput<ColType>, SltError> {
        let df = self.engine.sql(sql).await?;
        let batches = df.collect().await?;
        let schema = df.schema();
        batches_to_output(&schema, &batches).map_err(|e| SltError::Engine(Error::from(e)))
    }
}

#[async_trait::async_trait]
impl AsyncDB for FfqDb {
    type Error = SltError;
    type ColumnType = ColType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<ColType>, SltError> {
        let work = async {
            // A record normally holds one statement; a script runs in order
            // and its last statement gives the output.
            let statements = Engine::split_sql(sql)?;
            match statements.as_slice() {
                [] | [_] => self.run_one(sql).await,
                many => {
                    let mut output = DBOutput::StatementComplete(0);
                    for statement in many {
                        output = self.run_one(statement).await?;
                    }
                    Ok(output)
                }
            }
        };
        let timeout = self.timeout;
        let guarded = std::panic::AssertUnwindSafe(tokio::time::timeout(timeout, work));
        match guarded.catch_unwind().await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SltError::Timeout(timeout)),
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                if let Ok(mut log) = self.panics.lock() {
                    log.push(message.clone());
                }
                Err(SltError::Panic(message))
            }
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        ENGINE_NAME
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".to_string())
}
