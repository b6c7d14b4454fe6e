//! The messages of the control protocol that drive queries: submitting,
//! assigning, reporting and releasing task attempts.

use std::collections::BTreeMap;

use ffq_dataflow::metrics::MetricsSnapshot;
use ffq_dataflow::stage::StagePlan;
use ffq_transport::zenoh_exchange::{
    AttemptId, AttemptRef, ClientId, QueryId, StageId, StreamId, TaskId, WorkerId,
};
use serde::{Deserialize, Serialize};

/// What a worker tells the coordinator about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: WorkerId,
    /// Tasks it runs at once.
    pub slots: u32,
    /// Custom operators it can build.
    pub operators: Vec<String>,
    pub pid: u32,
}

/// A query for the coordinator to schedule: stages 1.. run on workers;
/// the client runs stage 0 once its inputs are ready.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitQuery {
    pub query: QueryId,
    /// Workers fetch the client's memory tables from it.
    pub client: ClientId,
    pub stages: Vec<StagePlan>,
    pub batch_size: usize,
}

/// Registered (successful) attempts of the tasks of some stages: for each
/// stage, the attempt of each task (indexed by task number).
pub type InputAttempts = BTreeMap<StageId, Vec<AttemptId>>;

/// Something that happened to a query, for its client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QueryEvent {
    /// All tasks of a stage succeeded.
    StageDone {
        stage: StageId,
        stages_done: u32,
        stages_total: u32,
    },
    /// A task succeeded: rows its query's scans produced so far.
    Progress {
        rows_scanned: u64,
        stages_done: u32,
        stages_total: u32,
    },
    /// The inputs of stage 0 are ready: the client may run it.
    Ready { inputs: InputAttempts },
    /// The query failed.
    Failed { message: String },
}

/// A long poll for the events of a query from number `from` on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventsRequest {
    pub query: QueryId,
    pub from: usize,
}

/// A task attempt for a worker to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskAssignment {
    pub query: QueryId,
    pub stage: StagePlan,
    pub task: TaskId,
    pub attempt: AttemptId,
    pub inputs: InputAttempts,
    pub client: ClientId,
    pub batch_size: usize,
    /// How often the worker tells the coordinator how far the attempt got
    /// ([`AttemptProgress`]), in milliseconds; 0: never. An attempt that
    /// shows no progress within the coordinator's progress deadline is
    /// requeued elsewhere.
    #[serde(default)]
    pub progress_every_ms: u64,
}

impl TaskAssignment {
    pub fn attempt_ref(&self) -> AttemptRef {
        AttemptRef::new(
            self.query.clone(),
            StageId(self.stage.id),
            self.task,
            self.attempt,
        )
    }
}

/// How a task attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskOutcome {
    Succeeded {
        /// Bytes of its output.
        bytes: u64,
        /// Counters of the stage plan's nodes (pre-order ids).
        metrics: Vec<MetricsSnapshot>,
        /// Frames of other attempts its input fetches dropped.
        stale_frames: u64,
    },
    Failed {
        message: String,
        /// The same task would fail the same way again (see
        /// `DataflowError::is_deterministic`): the query fails at once
        /// instead of retrying.
        #[serde(default)]
        deterministic: bool,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskReport {
    pub worker: WorkerId,
    pub attempt: AttemptRef,
    pub outcome: TaskOutcome,
    /// Frames the attempt's output holds (dropped unless it registers).
    pub frames: u64,
}

/// A running attempt is alive: `work` counts what it did so far (rows
/// and busy time of its operators, frames of its output), so that an
/// attempt stuck in place reports the same number again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptProgress {
    pub worker: WorkerId,
    pub attempt: AttemptRef,
    pub work: u64,
}

/// The coordinator's answer to a progress message: whether the attempt is
/// still the running attempt of its task. One that is not (it was
/// requeued after stalling, or its query ended) is stopped by the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressAck {
    pub running: bool,
}

/// The coordinator's answer to a report: whether the worker keeps the
/// attempt's output (only the registered attempt's output is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportAck {
    pub keep: bool,
}

/// What a worker must drop (running tasks are aborted too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Release {
    /// Everything of a query.
    Query(QueryId),
    /// One task attempt.
    Attempt(AttemptRef),
    /// Every output of one stage of a query: all its readers are done.
    Stage(QueryId, StageId),
    /// Everything except these queries (a worker rejoining the cluster).
    AllExcept(Vec<QueryId>),
}

/// What a release dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    pub tasks: u64,
    pub streams: u64,
    pub frames: u64,
}

/// A worker's state, for tests and operators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerState {
    pub id: WorkerId,
    pub slots: u32,
    /// Running task attempts.
    pub running: Vec<AttemptRef>,
    /// Output streams held.
    pub streams: Vec<StreamId>,
    /// Output bytes held in memory.
    pub buffered_bytes: u64,
    /// Output bytes held in spill files.
    #[serde(default)]
    pub spilled_bytes: u64,
    /// Bytes reserved now in the worker's memory pool (operator state of
    /// running tasks and the output store's memory bytes).
    #[serde(default)]
    pub memory_reserved: u64,
    /// The worker's memory limit, if it has one.
    #[serde(default)]
    pub memory_limit: Option<u64>,
    /// Bytes its tasks' operators spilled to disk since it started.
    #[serde(default)]
    pub task_spilled_bytes: u64,
    /// Queries it holds anything of (tasks, outputs, cached tables).
    pub queries: Vec<QueryId>,
    /// Memory tables cached for running queries.
    pub cached_tables: u64,
    pub tasks_run: u64,
}

impl WorkerState {
    /// Whether the worker holds nothing of `query`.
    pub fn is_clear_of(&self, query: &QueryId) -> bool {
        !self.queries.contains(query)
    }
}

/// A memory table of a query, asked from the client that registered it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableRequest {
    pub query: QueryId,
    pub name: String,
}
