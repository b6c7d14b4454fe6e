//! What a running operator partition may use: settings, functions, tables,
//! the exchange transport, the query's metrics and its task set.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};

use datafusion_execution::memory_pool::MemoryPool;

use arrow::datatypes::SchemaRef;

use super::memory::{memory_pool, OperatorMemory};
use super::spill::{SpillArea, SpillWriter};
use super::QueryTasks;
use crate::custom::OperatorRegistry;
use crate::error::{DataflowError, Result};
use crate::exchange::{ExchangeTransport, StageInputs};
use crate::functions::FunctionRegistry;
use crate::metrics::{MetricsSet, OperatorMetrics};
use crate::plan::NodeId;
use crate::tables::MemoryTables;

/// Execution settings.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// Target rows per batch.
    pub batch_size: usize,
    /// Batches buffered per exchange channel before producers wait.
    pub channel_capacity: usize,
    /// Where operators reserve the memory their state holds. One pool per
    /// engine or worker ([`super::memory_pool`]), shared by its queries.
    pub memory_pool: Arc<dyn MemoryPool>,
    /// Where queries make their spill directories (see [`SpillArea`]).
    pub spill_dir: PathBuf,
}

impl Default for ExecConfig {
    /// Unbounded memory: a fresh pool without a limit; spills (when a
    /// limited pool is set) go to the system temp dir.
    fn default() -> Self {
        ExecConfig {
            batch_size: 8192,
            channel_capacity: 4,
            memory_pool: memory_pool(None),
            spill_dir: std::env::temp_dir(),
        }
    }
}

/// Which operator partition a [`TaskContext`] was handed to: names its
/// memory reservations.
#[derive(Debug, Clone, Default)]
struct OperatorSlot {
    /// `"<operator> (node <id>, partition <p>)"`; empty for the root context.
    name: String,
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
    /// handed to (see [`TaskContext::reserve`]).
    memory: Arc<AtomicU64>,
    operator: OperatorSlot,
    /// The counters of the plan node this context was handed to (spill
    /// counters go there); `None` for the root context.
    node_metrics: Option<Arc<OperatorMetrics>>,
    /// The query's spill directory, shared by all its operators; removed
    /// when the last context of the query is dropped.
    spill: Arc<SpillArea>,
    tasks: Weak<QueryTasks>,
}

/// The query-wide parts of a [`TaskContext`]: what a plan is compiled and
/// run with (see [`crate::runner::CompiledPlan::try_new`]).
#[derive(Clone)]
pub struct QueryServices {
    pub config: ExecConfig,
    pub registry: Arc<FunctionRegistry>,
    pub tables: Arc<dyn MemoryTables>,
    /// How partitions inside the plan meet (in-process channels by default).
    pub exchange: Arc<dyn ExchangeTransport>,
    /// Outputs of upstream stages, for a stage cut out of a larger plan.
    pub inputs: Option<Arc<dyn StageInputs>>,
    pub operators: Arc<OperatorRegistry>,
}

impl QueryServices {
    /// Services with in-process exchanges, no stage inputs and no custom
    /// operators.
    pub fn new(
        config: ExecConfig,
        registry: Arc<FunctionRegistry>,
        tables: Arc<dyn MemoryTables>,
    ) -> Self {
        let exchange = crate::exchange::ChannelExchange::default()
            .with_memory_pool(Arc::clone(&config.memory_pool));
        QueryServices {
            config,
            registry,
            tables,
            exchange: Arc::new(exchange),
            inputs: None,
            operators: Arc::new(OperatorRegistry::default()),
        }
    }

    pub fn with_exchange(mut self, exchange: Arc<dyn ExchangeTransport>) -> Self {
        self.exchange = exchange;
        self
    }

    pub fn with_inputs(mut self, inputs: Arc<dyn StageInputs>) -> Self {
        self.inputs = Some(inputs);
        self
    }

    pub fn with_operators(mut self, operators: Arc<OperatorRegistry>) -> Self {
        self.operators = operators;
        self
    }
}

impl TaskContext {
    /// The root context of a query whose tasks go to `tasks`.
    pub(crate) fn new(services: QueryServices, tasks: &Arc<QueryTasks>) -> Self {
        let spill = Arc::new(SpillArea::new(services.config.spill_dir.clone()));
        TaskContext {
            config: services.config,
            registry: services.registry,
            tables: services.tables,
            exchange: services.exchange,
            inputs: services.inputs,
            operators: services.operators,
            metrics: Arc::new(MetricsSet::default()),
            memory: Arc::new(AtomicU64::new(0)),
            operator: OperatorSlot::default(),
            node_metrics: None,
            spill,
            tasks: Arc::downgrade(tasks),
        }
    }

    /// The context handed to partition `partition` of operator `name`
    /// (plan node `node`, counted in `node_metrics`): same query, with its
    /// own memory peak slot.
    pub(crate) fn for_operator(
        &self,
        name: &str,
        node: NodeId,
        node_metrics: &Arc<OperatorMetrics>,
        partition: usize,
    ) -> Arc<TaskContext> {
        Arc::new(TaskContext {
            config: self.config.clone(),
            registry: Arc::clone(&self.registry),
            tables: Arc::clone(&self.tables),
            exchange: Arc::clone(&self.exchange),
            inputs: self.inputs.clone(),
            operators: Arc::clone(&self.operators),
            metrics: Arc::clone(&self.metrics),
            memory: Arc::new(AtomicU64::new(0)),
            operator: OperatorSlot {
                name: format!("{name} (node {}, partition {partition})", node.0),
            },
            node_metrics: Some(Arc::clone(node_metrics)),
            spill: Arc::clone(&self.spill),
            tasks: self.tasks.clone(),
        })
    }

    /// Counts `rows` passed through by a partial aggregate (see
    /// `operators::aggregate`) for `EXPLAIN ANALYZE`.
    pub(crate) fn count_skipped_partial_rows(&self, rows: usize) {
        if let Some(m) = &self.node_metrics {
            m.skipped_partial_rows
                .fetch_add(rows as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub(crate) fn memory_slot(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.memory)
    }

    /// A reservation for state the calling operator partition holds
    /// (buffered batches, hash tables); `what` names the state when an
    /// operator holds several. Resize it as the state grows
    /// ([`OperatorMemory::try_resize`]): that reserves from the pool and
    /// records the peak `EXPLAIN ANALYZE` shows.
    pub fn reserve(&self, what: Option<&str>) -> OperatorMemory {
        OperatorMemory::new(
            &self.config.memory_pool,
            self.reservation_name(what),
            Arc::clone(&self.memory),
            false,
        )
    }

    /// Like [`TaskContext::reserve`], for state the operator can spill
    /// ([`TaskContext::spill_writer`]) when a resize is refused. Under a
    /// limit, spillable reservations share what unspillable ones leave
    /// (each at most an equal share), so one operator cannot starve the
    /// others; a refusal means "spill now".
    pub fn reserve_spillable(&self, what: Option<&str>) -> OperatorMemory {
        OperatorMemory::new(
            &self.config.memory_pool,
            self.reservation_name(what),
            Arc::clone(&self.memory),
            true,
        )
    }

    fn reservation_name(&self, what: Option<&str>) -> String {
        match (what, self.operator.name.is_empty()) {
            (Some(w), false) => format!("{} {w}", self.operator.name),
            (Some(w), true) => w.to_string(),
            (None, false) => self.operator.name.clone(),
            (None, true) => "operator".to_string(),
        }
    }

    /// A writer of a new spill run of batches of `schema`, in the query's
    /// spill directory, counted in this operator's metrics.
    pub fn spill_writer(&self, schema: &SchemaRef) -> Result<SpillWriter> {
        self.spill.writer(schema, self.node_metrics.clone())
    }

    /// The query's spill directory, if anything spilled yet.
    pub fn spill_path(&self) -> Option<PathBuf> {
        self.spill.path()
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
