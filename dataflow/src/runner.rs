//! Runs a physical plan: compiles it ([`crate::compile`]) in a fresh
//! [`TaskContext`] and hands out the stream of its root partition.
//!
//! All tasks of a query live in one [`QueryTasks`] set owned by the query's
//! output stream. Dropping that stream drops the set, which aborts every
//! task of the query: nothing is detached.

use std::sync::{Arc, Weak};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::Stream;

use crate::compile::compile;
use crate::error::{DataflowError, Result};
use crate::exchange::ExchangeTransport;
use crate::execution::Operator;
use crate::functions::FunctionRegistry;
use crate::metrics::MetricsSet;
use crate::plan::PhysicalPlan;
use crate::stream::{RecordBatchStream, SendableRecordBatchStream};
use crate::tables::MemoryTables;

/// Kept at their old paths for callers outside the crate.
pub use crate::execution::{catch_panic, ExecConfig, QueryServices, QueryTasks, TaskContext};

/// A compiled plan with the context its partitions run in. It owns the
/// tasks its exchanges spawn: dropping it aborts them.
pub struct CompiledPlan {
    pub root: Arc<dyn Operator>,
    pub ctx: Arc<TaskContext>,
    tasks: Arc<QueryTasks>,
}

impl CompiledPlan {
    /// Compiles `plan` without running anything.
    pub fn try_new(plan: &PhysicalPlan, services: QueryServices) -> Result<Self> {
        let tasks = Arc::new(QueryTasks::new());
        let ctx = Arc::new(TaskContext::new(services, &tasks));
        let root = compile(plan, &ctx)?;
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
        QueryServices::new(config, registry, tables).with_exchange(exchange),
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

    /// The counters of every plan node, by [`crate::plan::NodeId`].
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
