//! Runs a whole plan in this process: every stage at once, as tokio tasks
//! joined by the channels of one [`ChannelExchange`].

use std::sync::Arc;
use std::time::Instant;

use ffq_dataflow::runner::{CompiledPlan, QueryStream};
use ffq_dataflow::stage::{split_stages, StagePlan};
use ffq_dataflow::stream::SendableRecordBatchStream;
use ffq_dataflow::PhysicalPlan;
use ffq_transport::ChannelExchange;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::{Analysis, ExecutionBackend, QueryResources};
use crate::analyze::render_plan;
use crate::error::Result;
use crate::progress::Progress;

/// The in-process backend.
#[derive(Default)]
pub(crate) struct EmbeddedBackend {
    exchange: Arc<ChannelExchange>,
}

impl EmbeddedBackend {
    /// Compiles `plan` to run here: the one place this crate hands a plan
    /// to the dataflow runner.
    fn compile(&self, plan: &PhysicalPlan, resources: &QueryResources) -> Result<CompiledPlan> {
        Ok(CompiledPlan::try_new(
            plan,
            resources.services().with_exchange(self.exchange.clone()),
        )?)
    }
}

impl ExecutionBackend for EmbeddedBackend {
    fn execute(
        &self,
        plan: &PhysicalPlan,
        resources: &QueryResources,
    ) -> Result<SendableRecordBatchStream> {
        Ok(Box::pin(self.execute_query(plan, resources)?))
    }

    fn execute_with_progress(
        &self,
        plan: &PhysicalPlan,
        resources: &QueryResources,
    ) -> Result<(SendableRecordBatchStream, Progress)> {
        let stream = self.execute_query(plan, resources)?;
        let progress = Progress::embedded(stream.metrics(), plan);
        Ok((Box::pin(stream), progress))
    }

    fn execute_query(
        &self,
        plan: &PhysicalPlan,
        resources: &QueryResources,
    ) -> Result<QueryStream> {
        Ok(self.compile(plan, resources)?.into_stream()?)
    }

    fn analyze<'a>(
        &'a self,
        plan: &'a PhysicalPlan,
        resources: &'a QueryResources,
    ) -> BoxFuture<'a, Result<Analysis>> {
        async move {
            let start = Instant::now();
            let compiled = self.compile(plan, resources)?;
            let metrics = Arc::clone(&compiled.ctx.metrics);
            let mut stream = compiled.into_stream()?;
            let mut rows = 0;
            while let Some(batch) = stream.next().await {
                rows += batch?.num_rows();
            }
            let elapsed = start.elapsed();
            Ok(Analysis {
                plan: render_plan(plan, &metrics.snapshot()),
                rows,
                elapsed,
            })
        }
        .boxed()
    }

    fn stage_plan(&self, plan: &PhysicalPlan) -> Vec<StagePlan> {
        split_stages(plan)
    }
}
