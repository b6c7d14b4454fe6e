//! Runs plans on a cluster through its [`ClusterClient`]: the coordinator
//! schedules the stages on workers, the client runs stage 0 and yields its
//! output.

use std::sync::Arc;

use ffq_cluster::{ClusterClient, ClusterConfig};
use ffq_dataflow::runner::QueryStream;
use ffq_dataflow::stage::{distributed_stages, StagePlan};
use ffq_dataflow::stream::SendableRecordBatchStream;
use ffq_dataflow::PhysicalPlan;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Analysis, ExecutionBackend, QueryResources};
use crate::analyze::render_cluster_analysis;
use crate::error::{Error, Result};
use crate::progress::Progress;

/// The cluster backend.
pub(crate) struct ClusterBackend {
    client: Arc<ClusterClient>,
}

impl ClusterBackend {
    /// Connects to the coordinator `cluster` names.
    pub async fn connect(cluster: &ClusterConfig) -> Result<Self> {
        Ok(ClusterBackend {
            client: ClusterClient::connect(cluster).await?,
        })
    }
}

impl ExecutionBackend for ClusterBackend {
    fn execute_with_progress(
        &self,
        plan: &PhysicalPlan,
        resources: &QueryResources,
    ) -> Result<(SendableRecordBatchStream, Progress)> {
        let (stream, progress) = self
            .client
            .execute_with_progress(plan, resources.services())?;
        Ok((stream, Progress::cluster(progress)))
    }

    fn execute_query(&self, _: &PhysicalPlan, _: &QueryResources) -> Result<QueryStream> {
        Err(Error::NotSupported(
            "execute_query on a cluster engine (use execute_stream)".into(),
        ))
    }

    fn analyze<'a>(
        &'a self,
        plan: &'a PhysicalPlan,
        resources: &'a QueryResources,
    ) -> BoxFuture<'a, Result<Analysis>> {
        async move {
            let analysis = self.client.analyze(plan, resources.services()).await?;
            Ok(Analysis {
                plan: render_cluster_analysis(&analysis)?,
                rows: analysis.rows,
                elapsed: analysis.elapsed,
            })
        }
        .boxed()
    }

    fn stage_plan(&self, plan: &PhysicalPlan) -> Vec<StagePlan> {
        distributed_stages(plan)
    }

    fn cluster(&self) -> Option<&Arc<ClusterClient>> {
        Some(&self.client)
    }
}
