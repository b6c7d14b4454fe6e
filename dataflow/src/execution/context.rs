//! What a running operator partition may use: settings, functions, tables,
//! the exchange transport, the query's metrics and its task set.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use super::QueryTasks;
use crate::custom::OperatorRegistry;
use crate::error::{DataflowError, Result};
use crate::exchange::{ExchangeTransport, StageInputs};
use crate::functions::FunctionRegistry;
use crate::metrics::MetricsSet;
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

/// The query-wide parts of a [`TaskContext`].
pub(crate) struct QueryServices {
    pub config: ExecConfig,
    pub registry: Arc<FunctionRegistry>,
    pub tables: Arc<dyn MemoryTables>,
    pub exchange: Arc<dyn ExchangeTransport>,
    pub inputs: Option<Arc<dyn StageInputs>>,
    pub operators: Arc<OperatorRegistry>,
}

impl TaskContext {
    /// The root context of a query whose tasks go to `tasks`.
    pub(crate) fn new(services: QueryServices, tasks: &Arc<QueryTasks>) -> Self {
        TaskContext {
            config: services.config,
            registry: services.registry,
            tables: services.tables,
            exchange: services.exchange,
            inputs: services.inputs,
            operators: services.operators,
            metrics: Arc::new(MetricsSet::default()),
            memory: Arc::new(AtomicU64::new(0)),
            tasks: Arc::downgrade(tasks),
        }
    }

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

    /// Spawns a task of the query. Wrap `fut` in [`super::catch_panic`]
    /// where a panic must reach consumers as an error instead of a
    /// silently short stream.
    pub fn spawn<F>(&self, fut: F) -> Result<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let tasks = self.tasks.upgrade().ok_or(DataflowError::Cancelled)?;
        tasks.spawn(fut)
    }
}
