//! Runs a physical plan: compiles every node into an [`Operator`], and
//! spawns the producer tasks of exchanges as the query's tasks.
//!
//! All tasks of a query live in one [`QueryTasks`] set owned by the query's
//! output stream. Dropping that stream drops the set, which aborts every
//! task of the query: nothing is detached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::{FutureExt, Stream};
use tokio::task::JoinSet;

use crate::custom::OperatorRegistry;
use crate::error::{DataflowError, Result};
use crate::exchange::{ExchangeTransport, StageInputs};
use crate::functions::FunctionRegistry;
use crate::metrics::MetricsSet;
use crate::operators::{self, Operator};
use crate::plan::PhysicalPlan;
use crate::stream::{RecordBatchStream, SendableRecordBatchStream};
use crate::tables::MemoryTables;

/// Execution settings.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// Target rows per batch.
    pub batch_size: usize,
    /// Batches buffered per exchange channel before producers wait.
    pub channel_capacity: usize,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            batch_size: 8192,
            channel_capacity: 4,
        }
    }
}

/// What operators need at run time.
pub struct TaskContext {
    pub config: ExecConfig,
    pub registry: Arc<FunctionRegistry>,
    pub tables: Arc<dyn MemoryTables>,
    pub exchange: Arc<dyn ExchangeTransport>,
    /// Outputs of upstream stages, when running a stage of a distributed
    /// plan; `None` in embedded mode (plans there have no stage inputs).
    pub inputs: Option<Arc<dyn StageInputs>>,
    /// Factories of custom operators.
    pub operators: Arc<OperatorRegistry>,
    /// Counters of every plan node.
    pub metrics: Arc<MetricsSet>,
    /// The peak state memory of the operator partition this context was
    /// handed to (see [`TaskContext::report_memory`]).
    memory: Arc<AtomicU64>,
    tasks: Weak<QueryTasks>,
}

impl TaskContext {
    /// The context handed to one operator's `execute`: same query, with its
    /// own memory peak slot.
    pub(crate) fn for_operator(&self) -> Arc<TaskContext> {
        Arc::new(TaskContext {
            config: self.config.clone(),
            registry: Arc::clone(&self.registry),
            tables: Arc::clone(&self.tables),
            exchange: Arc::clone(&self.exchange),
            inputs: self.inputs.clone(),
            operators: Arc::clone(&self.operators),
            metrics: Arc::clone(&self.metrics),
            memory: Arc::new(AtomicU64::new(0)),
            tasks: self.tasks.clone(),
        })
    }

    pub(crate) fn memory_slot(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.memory)
    }

    /// Reports the bytes the calling operator partition's state holds now
    /// (buffered batches, hash tables); the peak is what `EXPLAIN ANALYZE`
    /// shows. Call it when the state grows.
    pub fn report_memory(&self, bytes: usize) {
        self.memory.fetch_max(bytes as u64, Ordering::Relaxed);
    }

    /// Spawns a task of the query. A panic inside `fut` is turned into an
    /// error passed to `on_panic`, so that consumers see a failure instead
    /// of a silently short stream.
    pub fn spawn<F>(&self, fut: F) -> Result<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let tasks = self.tasks.upgrade().ok_or(DataflowError::Cancelled)?;
        let mut set = tasks
            .set
            .lock()
            .map_err(|_| DataflowError::Internal("task set poisoned".into()))?;
        set.spawn(fut);
        Ok(())
    }
}

/// The tasks of one query; dropping it aborts them all.
pub struct QueryTasks {
    set: Mutex<JoinSet<()>>,
}

impl QueryTasks {
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

/// A compiled plan with the context its partitions run in. It owns the
/// tasks its exchanges spawn: dropping it aborts them.
pub struct CompiledPlan {
    pub root: Arc<dyn Operator>,
    pub ctx: Arc<TaskContext>,
    tasks: Arc<QueryTasks>,
}

impl CompiledPlan {
    /// Compiles `plan` without running anything.
    pub fn try_new(
        plan: &PhysicalPlan,
        config: ExecConfig,
        registry: Arc<FunctionRegistry>,
        tables: Arc<dyn MemoryTables>,
        exchange: Arc<dyn ExchangeTransport>,
        inputs: Option<Arc<dyn StageInputs>>,
        operators: Arc<OperatorRegistry>,
    ) -> Result<Self> {
        let tasks = Arc::new(QueryTasks {
            set: Mutex::new(JoinSet::new()),
        });
        let ctx = Arc::new(TaskContext {
            config,
            registry,
            tables,
            exchange,
            inputs,
            operators,
            metrics: Arc::new(MetricsSet::default()),
            memory: Arc::new(AtomicU64::new(0)),
            tasks: Arc::downgrade(&tasks),
        });
        let root = operators::compile(plan, &ctx)?;
        Ok(CompiledPlan { root, ctx, tasks })
    }

    /// The stream of the single output partition of the plan; it owns the
    /// plan's tasks.
    pub fn into_stream(self) -> Result<QueryStream> {
        if self.root.output_partitions() != 1 {
            return Err(DataflowError::Internal(format!(
                "plan root has {} partitions, expected 1",
                self.root.output_partitions()
            )));
        }
        let inner = self.root.execute(0, &self.ctx)?;
        Ok(QueryStream {
            schema: self.root.schema(),
            inner,
            metrics: Arc::clone(&self.ctx.metrics),
            tasks: self.tasks,
            _root: self.root,
        })
    }
}

/// Compiles `plan` and returns the stream of its single output partition.
///
/// The plan must have one output partition (the planner ends plans with a
/// gather or merge). The returned stream owns all tasks of the query.
pub fn execute(
    plan: &PhysicalPlan,
    config: ExecConfig,
    registry: Arc<FunctionRegistry>,
    tables: Arc<dyn MemoryTables>,
    exchange: Arc<dyn ExchangeTransport>,
) -> Result<QueryStream> {
    CompiledPlan::try_new(
        plan,
        config,
        registry,
        tables,
        exchange,
        None,
        Arc::new(OperatorRegistry::default()),
    )?
    .into_stream()
}

/// The output of a query: a batch stream that owns the query's tasks.
pub struct QueryStream {
    schema: SchemaRef,
    inner: SendableRecordBatchStream,
    metrics: Arc<MetricsSet>,
    tasks: Arc<QueryTasks>,
    _root: Arc<dyn Operator>,
}

impl QueryStream {
    /// A handle to observe the query's tasks (for tests of cancellation).
    pub fn tasks(&self) -> Weak<QueryTasks> {
        Arc::downgrade(&self.tasks)
    }

    /// The counters of every plan node, by pre-order node id.
    pub fn metrics(&self) -> Arc<MetricsSet> {
        Arc::clone(&self.metrics)
    }
}

impl Stream for QueryStream {
    type Item = Result<RecordBatch>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl RecordBatchStream for QueryStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
