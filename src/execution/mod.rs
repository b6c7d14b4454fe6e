//! The execution seam: where a planned query runs.
//!
//! An [`ExecutionBackend`] runs physical plans with what the session
//! provides ([`QueryResources`]). There are two:
//!
//! ```text
//!                       ┌─ EmbeddedBackend: every stage at once, tokio tasks
//! Engine ─ SessionState ┤                   joined by in-process channels
//!   (picks one)         └─ ClusterBackend:  stage by stage on workers, over
//!                                           zenoh; the client runs stage 0
//! ```
//!
//! The engine picks the backend once, when it is built
//! ([`Engine::new`](crate::Engine::new) or
//! [`Engine::connect`](crate::Engine::connect)); `DataFrame`, EXPLAIN and
//! the statements only talk to this interface, so they read the same in
//! both modes.

mod cluster;
mod embedded;

use std::sync::Arc;
use std::time::Duration;

use ffq_cluster::ClusterClient;
use ffq_dataflow::custom::OperatorRegistry;
use ffq_dataflow::functions::FunctionRegistry;
use ffq_dataflow::runner::{ExecConfig, QueryServices, QueryStream};
use ffq_dataflow::stage::StagePlan;
use ffq_dataflow::stream::SendableRecordBatchStream;
use ffq_dataflow::tables::MemoryTableMap;
use ffq_dataflow::PhysicalPlan;
use futures::future::BoxFuture;

use crate::error::Result;
use crate::progress::Progress;

pub(crate) use cluster::ClusterBackend;
pub(crate) use embedded::EmbeddedBackend;

/// What a running query looks up by name: memory tables, functions and
/// custom operators, with the execution settings. A snapshot of the
/// session's state when the query starts.
pub(crate) struct QueryResources {
    pub memory: Arc<MemoryTableMap>,
    pub functions: Arc<FunctionRegistry>,
    pub operators: Arc<OperatorRegistry>,
    pub config: ExecConfig,
}

impl QueryResources {
    /// What the dataflow runner (here or on a cluster) runs a plan with.
    pub fn services(&self) -> QueryServices {
        QueryServices::new(
            self.config.clone(),
            Arc::clone(&self.functions),
            self.memory.clone(),
        )
        .with_operators(Arc::clone(&self.operators))
    }
}

/// What `EXPLAIN ANALYZE` reports of one run.
pub(crate) struct Analysis {
    /// The plan with each operator's metrics (on a cluster: per stage).
    pub plan: String,
    /// Rows of the query's output.
    pub rows: usize,
    pub elapsed: Duration,
}

/// Runs physical plans (see the module docs). The plans given have a
/// single output partition, as the physical planner makes them.
pub(crate) trait ExecutionBackend: Send + Sync {
    /// Starts `plan`; dropping the stream cancels every task of the query.
    fn execute(
        &self,
        plan: &PhysicalPlan,
        resources: &QueryResources,
    ) -> Result<SendableRecordBatchStream> {
        self.execute_with_progress(plan, resources)
            .map(|(stream, _)| stream)
    }

    /// [`ExecutionBackend::execute`] with a handle on the query's progress.
    fn execute_with_progress(
        &self,
        plan: &PhysicalPlan,
        resources: &QueryResources,
    ) -> Result<(SendableRecordBatchStream, Progress)>;

    /// Starts `plan` in this process, with access to the query's task set.
    /// Only the embedded backend has one.
    fn execute_query(&self, plan: &PhysicalPlan, resources: &QueryResources)
        -> Result<QueryStream>;

    /// Runs `plan` to completion and reports what each operator did.
    fn analyze<'a>(
        &'a self,
        plan: &'a PhysicalPlan,
        resources: &'a QueryResources,
    ) -> BoxFuture<'a, Result<Analysis>>;

    /// The stages this backend runs `plan` as (what EXPLAIN shows).
    fn stage_plan(&self, plan: &PhysicalPlan) -> Vec<StagePlan>;

    /// The cluster client, when the queries run on a cluster.
    fn cluster(&self) -> Option<&Arc<ClusterClient>> {
        None
    }
}
