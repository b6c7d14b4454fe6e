//! The control requests, typed. Each request type names the last chunk of
//! its key and the type of its reply ([`Request`]); a client, the
//! coordinator or a worker sends one with [`ask_coordinator`],
//! [`ask_worker`] or [`ask_workers`]. The receiver decodes a control query
//! into a [`CoordinatorRequest`] or a [`WorkerRequest`], whose variants
//! carry a [`Responder`] that accepts only that request's reply: the
//! compiler checks that every request is handled, and answered with the
//! type its sender decodes.
//!
//! A new request: a type (a wrapper when the payload type already serves
//! another request), one line in the table of its receiver below, a
//! handler arm there, and a line in the key table of [`super`].

use std::marker::PhantomData;
use std::time::Duration;

use ffq_transport::zenoh_exchange::{ClusterId, QueryId, WorkerId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zenoh::query::Query;
use zenoh::Session;

use super::call::{answer, call, gather, request_name, request_of};
use super::messages::{
    AttemptProgress, EventsRequest, ProgressAck, QueryEvent, Release, Released, ReportAck,
    SubmitQuery, TaskAssignment, TaskReport, WorkerInfo, WorkerState,
};
use super::status::{ClusterStatus, StageProfile};
use super::{all_workers_key, coordinator_key, worker_ctl_key};
use crate::error::{ClusterError, Result};

/// A control request: `NAME` is the last chunk of its key, `Reply` what
/// it is answered with.
pub trait Request: Serialize + DeserializeOwned {
    const NAME: &'static str;
    type Reply: Serialize + DeserializeOwned;
}

/// A request the coordinator answers, on `ffq/<cluster>/ctl/coordinator/<NAME>`.
pub trait ToCoordinator: Request {}

/// A request a worker answers, on `ffq/<cluster>/ctl/worker/<id>/<NAME>`.
pub trait ToWorker: Request {}

/// `finish`: the client is done with a query (finished, failed or dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FinishQuery(pub QueryId);

/// `profile`: what the stages of a query did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProfileQuery(pub QueryId);

/// `status`: the coordinator's view of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRequest;

/// `info`: what a worker is (the coordinator asks when it appears).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoRequest;

/// `state`: what a worker holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRequest;

/// Answers one received request; it takes only that request's reply.
#[must_use = "a control request must be answered"]
pub struct Responder<R> {
    query: Query,
    request: PhantomData<fn(R)>,
}

impl<R: Request> Responder<R> {
    fn new(query: Query) -> Self {
        Responder {
            query,
            request: PhantomData,
        }
    }

    /// Sends the reply (or the error, as a reply error).
    pub async fn send(self, reply: Result<R::Reply>) {
        answer(&self.query, reply).await
    }
}

/// Declares the requests a receiver answers: their names, reply types and
/// the enum it decodes control queries into.
macro_rules! control_requests {
    (
        $(#[$doc:meta])*
        $receiver:ident: $marker:ident, $who:literal {
            $( $(#[$vdoc:meta])* $variant:ident($request:ty) = $name:literal -> $reply:ty; )*
        }
    ) => {
        $(
            impl Request for $request {
                const NAME: &'static str = $name;
                type Reply = $reply;
            }

            impl $marker for $request {}
        )*

        $(#[$doc])*
        // One value per received request, moved once into its handler:
        // boxing the large requests (an assignment carries its stage plan)
        // would only add an allocation.
        #[allow(clippy::large_enum_variant)]
        pub enum $receiver {
            $( $(#[$vdoc])* $variant($request, Responder<$request>), )*
        }

        impl $receiver {
            /// Decodes a control query by the request its key names. A
            /// query naming no request of this receiver, or whose payload
            /// does not decode, is answered with the error here (`None`).
            pub async fn receive(query: Query) -> Option<Self> {
                let name = request_name(&query);
                let error = match name.as_str() {
                    $(
                        $name => match request_of::<$request>(&query) {
                            Ok(request) => {
                                return Some($receiver::$variant(request, Responder::new(query)))
                            }
                            Err(e) => e,
                        },
                    )*
                    other => {
                        ClusterError::Protocol(format!("unknown {} request {other:?}", $who))
                    }
                };
                answer::<()>(&query, Err(error)).await;
                None
            }
        }
    };
}

control_requests! {
    /// A request received by the coordinator.
    CoordinatorRequest: ToCoordinator, "coordinator" {
        Submit(SubmitQuery) = "submit" -> ();
        /// A long poll: answered at the first new event, or empty.
        Events(EventsRequest) = "events" -> Vec<QueryEvent>;
        Finish(FinishQuery) = "finish" -> ();
        Report(TaskReport) = "report" -> ReportAck;
        Progress(AttemptProgress) = "progress" -> ProgressAck;
        Status(StatusRequest) = "status" -> ClusterStatus;
        Profile(ProfileQuery) = "profile" -> Vec<StageProfile>;
    }
}

control_requests! {
    /// A request received by a worker.
    WorkerRequest: ToWorker, "worker" {
        Info(InfoRequest) = "info" -> WorkerInfo;
        Assign(TaskAssignment) = "assign" -> ();
        Release(Release) = "release" -> Released;
        State(StateRequest) = "state" -> WorkerState;
    }
}

/// Sends `request` to the coordinator of `cluster`.
pub async fn ask_coordinator<R: ToCoordinator>(
    session: &Session,
    cluster: &ClusterId,
    request: &R,
    timeout: Duration,
) -> Result<R::Reply> {
    call(
        session,
        &coordinator_key(cluster, R::NAME),
        request,
        timeout,
    )
    .await
}

/// Sends `request` to worker `worker`.
pub async fn ask_worker<R: ToWorker>(
    session: &Session,
    cluster: &ClusterId,
    worker: &WorkerId,
    request: &R,
    timeout: Duration,
) -> Result<R::Reply> {
    let key = worker_ctl_key(cluster, worker, R::NAME);
    call(session, &key, request, timeout).await
}

/// Sends `request` to every worker and collects the replies (workers that
/// answer with an error are left out).
pub async fn ask_workers<R: ToWorker>(
    session: &Session,
    cluster: &ClusterId,
    request: &R,
    timeout: Duration,
) -> Result<Vec<R::Reply>> {
    gather(
        session,
        &all_workers_key(cluster, R::NAME),
        request,
        timeout,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::super::call::{decode, encode};
    use super::*;

    #[test]
    fn payloadless_requests_decode_from_unit() {
        // A query without payload reads as `()`: the unit requests accept it.
        let unit = encode(&()).unwrap();
        assert_eq!(decode::<StatusRequest>(&unit).unwrap(), StatusRequest);
        assert_eq!(encode(&InfoRequest).unwrap(), unit);
    }

    #[test]
    fn query_wrappers_encode_as_the_query_id() {
        let q = QueryId::new("q1").unwrap();
        let bytes = encode(&FinishQuery(q.clone())).unwrap();
        assert_eq!(bytes, encode(&q).unwrap());
        assert_eq!(decode::<ProfileQuery>(&bytes).unwrap(), ProfileQuery(q));
        assert!(decode::<FinishQuery>(&encode(&"bad/id").unwrap()).is_err());
    }

    #[test]
    fn names_match_the_key_table() {
        let names = [
            SubmitQuery::NAME,
            EventsRequest::NAME,
            FinishQuery::NAME,
            TaskReport::NAME,
            AttemptProgress::NAME,
            StatusRequest::NAME,
            ProfileQuery::NAME,
            InfoRequest::NAME,
            TaskAssignment::NAME,
            Release::NAME,
            StateRequest::NAME,
        ];
        assert_eq!(
            names,
            [
                "submit", "events", "finish", "report", "progress", "status", "profile", "info",
                "assign", "release", "state"
            ]
        );
    }
}
