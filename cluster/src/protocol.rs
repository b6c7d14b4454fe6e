//! The control protocol: messages between clients, the coordinator and
//! workers, and the keys they travel on.
//!
//! Every control message is a zenoh `get` whose payload is a CBOR-encoded
//! request, answered by one reply (a CBOR-encoded response, or a reply
//! error carrying a message). Request/reply gives each message an
//! acknowledgement, so nothing depends on a subscriber being declared in
//! time. Keys (`ffq/<cluster>/ctl/...`):
//!
//! ```text
//! coordinator/submit            client -> coordinator   SubmitQuery -> ()
//! coordinator/events            client -> coordinator   EventsRequest -> Vec<QueryEvent> (long poll)
//! coordinator/finish            client -> coordinator   QueryId -> ()
//! coordinator/report            worker -> coordinator   TaskReport -> ReportAck
//! coordinator/status            anyone -> coordinator   () -> ClusterStatus
//! worker/<id>/info              coordinator -> worker   () -> WorkerInfo
//! worker/<id>/assign            coordinator -> worker   TaskAssignment -> ()
//! worker/<id>/release           coordinator -> worker   Release -> Released
//! worker/<id>/state             anyone -> worker        () -> WorkerState
//! client/<id>/table             worker -> client        TableRequest -> Arrow IPC stream
//! ```
//!
//! Workers' liveliness tokens are `ffq/<cluster>/worker/<id>`.

use std::collections::BTreeMap;
use std::time::Duration;

use ffq_dataflow::metrics::MetricsSnapshot;
use ffq_dataflow::stage::StagePlan;
use ffq_transport::zenoh_exchange::keys::ctl_key;
use ffq_transport::zenoh_exchange::{
    AttemptId, AttemptRef, ClusterId, QueryId, StageId, TaskId, WorkerId,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zenoh::qos::CongestionControl;
use zenoh::query::{ConsolidationMode, QueryTarget};
use zenoh::Session;

use crate::error::{ClusterError, Result};

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
    /// The client's id: workers fetch the client's memory tables from it.
    pub client: String,
    pub stages: Vec<StagePlan>,
    pub batch_size: usize,
}

/// Registered (successful) attempts of the tasks of some stages: for each
/// stage, the attempt number of each task.
pub type InputAttempts = BTreeMap<u32, Vec<u32>>;

/// Something that happened to a query, for its client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QueryEvent {
    /// All tasks of a stage succeeded.
    StageDone {
        stage: u32,
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
    pub task: u32,
    pub attempt: u32,
    pub inputs: InputAttempts,
    pub client: String,
    pub batch_size: usize,
}

impl TaskAssignment {
    pub fn attempt_ref(&self) -> AttemptRef {
        attempt_ref(&self.query, self.stage.id, self.task, self.attempt)
    }
}

pub fn attempt_ref(query: &QueryId, stage: u32, task: u32, attempt: u32) -> AttemptRef {
    AttemptRef::new(
        query.clone(),
        StageId(stage),
        TaskId(task),
        AttemptId(attempt),
    )
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerState {
    pub id: String,
    pub slots: u32,
    /// Running task attempts (`query/stage/attempt/task`).
    pub running: Vec<String>,
    /// Output streams held (`query/stage/attempt/task/partition`).
    pub streams: Vec<String>,
    pub buffered_bytes: u64,
    /// Queries it holds anything of (tasks, outputs, cached tables).
    pub queries: Vec<String>,
    /// Memory tables cached for running queries.
    pub cached_tables: u64,
    pub tasks_run: u64,
}

impl WorkerState {
    /// Whether the worker holds nothing of `query`.
    pub fn is_clear_of(&self, query: &QueryId) -> bool {
        !self.queries.iter().any(|q| q == query.as_str())
    }
}

/// A memory table of a query, asked from the client that registered it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableRequest {
    pub query: QueryId,
    pub name: String,
}

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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryStatus {
    pub id: String,
    pub stages_done: u32,
    pub stages_total: u32,
    pub running_tasks: u32,
    pub attempts: u32,
    pub state: String,
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
}

/// What the tasks of one stage did (`EXPLAIN ANALYZE` on a cluster).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StageProfile {
    pub stage: u32,
    pub tasks: u32,
    pub attempts: u32,
    pub failed_attempts: u32,
    /// Attempts requeued because their worker was lost or unreachable.
    pub lost_attempts: u32,
    /// The registered attempt of each task: (task, attempt, worker, bytes
    /// of its output).
    pub outputs: Vec<(u32, u32, String, u64)>,
    /// Counters of the stage plan's nodes, summed over successful attempts.
    pub metrics: Vec<MetricsSnapshot>,
}

// ---- keys ----

/// `ffq/<cluster>/ctl/coordinator/<what>`; `what` may be `*`.
pub fn coordinator_key(cluster: &ClusterId, what: &str) -> String {
    with_last(
        ctl_key(cluster, &["coordinator", "x"]).expect("static key chunks are valid"),
        what,
    )
}

/// `ffq/<cluster>/ctl/worker/<id>/<what>`; `what` may be `*`.
pub fn worker_ctl_key(cluster: &ClusterId, worker: &WorkerId, what: &str) -> String {
    with_last(
        ctl_key(cluster, &["worker", worker.as_str(), "x"]).expect("ids are valid key chunks"),
        what,
    )
}

/// `ffq/<cluster>/ctl/worker/*/<what>`: every worker's queryable.
pub fn all_workers_key(cluster: &ClusterId, what: &str) -> String {
    let one = ctl_key(cluster, &["worker", "x", "x"]).expect("static key chunks are valid");
    let base = one.trim_end_matches("/x/x");
    format!("{base}/*/{what}")
}

fn with_last(key: String, last: &str) -> String {
    let base = key.trim_end_matches("/x");
    format!("{base}/{last}")
}

pub fn client_table_key(cluster: &ClusterId, client: &str) -> Result<String> {
    Ok(ctl_key(cluster, &["client", client, "table"])?)
}

// ---- encoding and calls ----

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out)
        .map_err(|e| ClusterError::Protocol(format!("encoding: {e}")))?;
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    ciborium::from_reader(bytes).map_err(|e| ClusterError::Protocol(format!("decoding: {e}")))
}

/// Sends `request` to the queryable on `key` and decodes its answer.
pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
    session: &Session,
    key: &str,
    request: &Req,
    timeout: Duration,
) -> Result<Resp> {
    let replies = session
        .get(key)
        .payload(encode(request)?)
        .target(QueryTarget::BestMatching)
        .consolidation(ConsolidationMode::None)
        .congestion_control(CongestionControl::Block)
        .timeout(timeout)
        .await
        .map_err(ClusterError::zenoh)?;
    match replies.recv_async().await {
        Ok(reply) => match reply.result() {
            Ok(sample) => decode(&sample.payload().to_bytes()),
            Err(e) => Err(ClusterError::Remote(
                e.payload()
                    .try_to_string()
                    .map(|s| s.into_owned())
                    .unwrap_or_else(|_| "an undecodable error".into()),
            )),
        },
        Err(_) => Err(ClusterError::Unreachable {
            key: key.to_string(),
            reason: format!("no reply within {timeout:?}"),
        }),
    }
}

/// Sends `request` to every queryable matching `key_expr` and decodes all
/// answers (errors are skipped).
pub async fn gather<Req: Serialize, Resp: DeserializeOwned>(
    session: &Session,
    key_expr: &str,
    request: &Req,
    timeout: Duration,
) -> Result<Vec<Resp>> {
    let replies = session
        .get(key_expr)
        .payload(encode(request)?)
        .target(QueryTarget::All)
        .consolidation(ConsolidationMode::None)
        .congestion_control(CongestionControl::Block)
        .timeout(timeout)
        .await
        .map_err(ClusterError::zenoh)?;
    let mut out = Vec::new();
    while let Ok(reply) = replies.recv_async().await {
        if let Ok(sample) = reply.result() {
            out.push(decode(&sample.payload().to_bytes())?);
        }
    }
    Ok(out)
}

/// Decodes the request of a control query.
pub fn request_of<T: DeserializeOwned>(query: &zenoh::query::Query) -> Result<T> {
    match query.payload() {
        Some(p) => decode(&p.to_bytes()),
        None => decode(&encode(&())?),
    }
}

/// The request a control query names: the last chunk of its key.
pub fn request_name(query: &zenoh::query::Query) -> String {
    query
        .key_expr()
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Answers a control query whose request `who` does not know.
pub async fn answer_unknown(query: &zenoh::query::Query, who: &str, name: &str) {
    answer::<()>(
        query,
        Err(ClusterError::Protocol(format!(
            "unknown {who} request {name:?}"
        ))),
    )
    .await
}

/// Answers a control query with `result`.
pub async fn answer<T: Serialize>(query: &zenoh::query::Query, result: Result<T>) {
    let sent = match result.and_then(|v| encode(&v)) {
        Ok(bytes) => query.reply(query.key_expr().clone(), bytes).await,
        Err(e) => query.reply_err(e.to_string()).await,
    };
    if let Err(e) = sent {
        tracing::debug!(key = %query.key_expr(), "reply not sent: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_keys() {
        let c = ClusterId::new("c1").unwrap();
        let w = WorkerId::new("w-1").unwrap();
        assert_eq!(
            coordinator_key(&c, "submit"),
            "ffq/c1/ctl/coordinator/submit"
        );
        assert_eq!(coordinator_key(&c, "*"), "ffq/c1/ctl/coordinator/*");
        assert_eq!(
            worker_ctl_key(&c, &w, "state"),
            "ffq/c1/ctl/worker/w-1/state"
        );
        assert_eq!(all_workers_key(&c, "state"), "ffq/c1/ctl/worker/*/state");
        assert_eq!(
            client_table_key(&c, "c-9").unwrap(),
            "ffq/c1/ctl/client/c-9/table"
        );
    }

    #[test]
    fn messages_round_trip() {
        let r = Release::Attempt(attempt_ref(&QueryId::new("q1").unwrap(), 2, 3, 1));
        let back: Release = decode(&encode(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let e = decode::<Release>(b"\xff").unwrap_err().to_string();
        assert!(e.contains("decoding"), "{e}");
    }
}
