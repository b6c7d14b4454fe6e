//! What the coordinator tells about the cluster (`status`) and about the
//! stages of one query (`profile`, for `EXPLAIN ANALYZE`).

use std::fmt;

use ffq_dataflow::metrics::MetricsSnapshot;
use ffq_transport::zenoh_exchange::{AttemptId, QueryId, StageId, TaskId, WorkerId};
use serde::{Deserialize, Serialize};

use super::messages::WorkerInfo;

/// The coordinator's view of the cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub workers: Vec<WorkerStatus>,
    pub queries: Vec<QueryStatus>,
    pub counters: Counters,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub info: WorkerInfo,
    pub alive: bool,
    pub running: u32,
    /// Milliseconds of exclusion left.
    pub excluded_ms: Option<u64>,
    pub consecutive_failures: u32,
    /// Milliseconds of suspicion left: an attempt of it made no progress
    /// within the progress deadline, and it has not shown life since.
    #[serde(default)]
    pub suspected_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryStatus {
    pub id: QueryId,
    pub stages_done: u32,
    pub stages_total: u32,
    pub running_tasks: u32,
    pub attempts: u32,
    pub state: QueryState,
}

/// Where a query on the cluster is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryState {
    /// Stages run on the workers.
    Running,
    /// The client was told to run the root stage.
    FinalStage,
    Failed,
}

impl fmt::Display for QueryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueryState::Running => "running",
            QueryState::FinalStage => "final stage",
            QueryState::Failed => "failed",
        })
    }
}

/// What the coordinator did, cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub queries_submitted: u64,
    pub queries_failed: u64,
    pub attempts_started: u64,
    pub attempts_failed: u64,
    /// Running attempts requeued because their worker was lost.
    pub requeued: u64,
    /// Finished outputs re-run because their worker was lost.
    pub recomputed: u64,
    pub workers_lost: u64,
    pub workers_excluded: u64,
    /// Reports of superseded attempts, ignored.
    pub stale_reports: u64,
    /// Frames of superseded attempts dropped: frames of other attempts
    /// that readers received and discarded, plus frames that superseded
    /// attempts held when their worker was told to drop them.
    pub stale_frames: u64,
    /// Releases sent to workers.
    pub releases: u64,
    /// Running attempts requeued because they made no progress within the
    /// progress deadline.
    #[serde(default)]
    pub stalled: u64,
    /// Times a worker was suspected (an attempt of it stalled).
    #[serde(default)]
    pub workers_suspected: u64,
}

/// What the tasks of one stage did (`EXPLAIN ANALYZE` on a cluster).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StageProfile {
    pub stage: StageId,
    pub tasks: u32,
    pub attempts: u32,
    pub failed_attempts: u32,
    /// Attempts requeued because their worker was lost or unreachable.
    pub lost_attempts: u32,
    /// The registered attempt of each task.
    pub outputs: Vec<TaskOutput>,
    /// Counters of the stage plan's nodes, summed over successful attempts.
    pub metrics: Vec<MetricsSnapshot>,
}

/// The registered attempt of a task and where its output is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskOutput {
    pub task: TaskId,
    pub attempt: AttemptId,
    pub worker: WorkerId,
    /// Bytes of its output.
    pub bytes: u64,
}
