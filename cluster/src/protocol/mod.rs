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
//! coordinator/finish            client -> coordinator   FinishQuery -> ()
//! coordinator/report            worker -> coordinator   TaskReport -> ReportAck
//! coordinator/progress          worker -> coordinator   AttemptProgress -> ProgressAck
//! coordinator/status            anyone -> coordinator   StatusRequest -> ClusterStatus
//! coordinator/profile           client -> coordinator   ProfileQuery -> Vec<StageProfile>
//! worker/<id>/info              coordinator -> worker   InfoRequest -> WorkerInfo
//! worker/<id>/assign            coordinator -> worker   TaskAssignment -> ()
//! worker/<id>/release           coordinator -> worker   Release -> Released
//! worker/<id>/state             anyone -> worker        StateRequest -> WorkerState
//! client/<id>/table             worker -> client        TableRequest -> Arrow IPC stream
//! ```
//!
//! The coordinator and worker requests are typed ([`requests`]); the
//! client's table request is answered with raw Arrow IPC bytes, not CBOR,
//! and stays outside that table. Workers' liveliness tokens are
//! `ffq/<cluster>/worker/<id>`.
//!
//! - [`messages`]: what drives queries (submit, assign, report, release);
//! - [`status`]: what the coordinator tells about the cluster and a query;
//! - [`requests`]: which request gets which reply, sending and receiving;
//! - [`call`]: the bytes on the wire (CBOR over zenoh get/reply).

pub mod call;
#[cfg(test)]
mod decode_fuzz;
pub mod messages;
pub mod requests;
pub mod status;

use ffq_transport::zenoh_exchange::keys::ctl_key;
use ffq_transport::zenoh_exchange::{ClientId, ClusterId, WorkerId};

pub use call::{decode, encode};
pub use messages::{
    AttemptProgress, EventsRequest, InputAttempts, ProgressAck, QueryEvent, Release, Released,
    ReportAck, SubmitQuery, TableRequest, TaskAssignment, TaskOutcome, TaskReport, WorkerInfo,
    WorkerState,
};
pub use requests::{
    ask_coordinator, ask_worker, ask_workers, CoordinatorRequest, FinishQuery, InfoRequest,
    ProfileQuery, Request, Responder, StateRequest, StatusRequest, ToCoordinator, ToWorker,
    WorkerRequest,
};
pub use status::{
    ClusterStatus, Counters, QueryState, QueryStatus, StageProfile, TaskOutput, WorkerStatus,
};

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

/// `ffq/<cluster>/ctl/client/<id>/table`: where a client serves the
/// memory tables of its queries.
pub fn client_table_key(cluster: &ClusterId, client: &ClientId) -> String {
    with_last(
        ctl_key(cluster, &["client", client.as_str(), "x"]).expect("ids are valid key chunks"),
        "table",
    )
}

#[cfg(test)]
mod tests {
    use ffq_transport::zenoh_exchange::{AttemptId, AttemptRef, QueryId, StageId, TaskId};

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
            client_table_key(&c, &ClientId::new("c-9").unwrap()),
            "ffq/c1/ctl/client/c-9/table"
        );
    }

    #[test]
    fn messages_round_trip() {
        let r = Release::Attempt(AttemptRef::new(
            QueryId::new("q1").unwrap(),
            StageId(2),
            TaskId(3),
            AttemptId(1),
        ));
        let back: Release = decode(&encode(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let e = decode::<Release>(b"\xff").unwrap_err().to_string();
        assert!(e.contains("decoding"), "{e}");
    }
}
