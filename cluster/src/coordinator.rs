//! The coordinator process: the [`Scheduler`] behind zenoh.
//!
//! It answers `ffq/<cluster>/ctl/coordinator/*` (the requests of
//! [`CoordinatorRequest`]), watches the workers' liveliness tokens
//! (`ffq/<cluster>/worker/*`), and carries out the scheduler's actions:
//! assignments and releases are control requests to the workers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ffq_transport::zenoh_exchange::keys::{
    client_space, coordinator_token_key, parse_client_key, parse_worker_key, worker_space,
};
use ffq_transport::zenoh_exchange::{ClusterId, QueryId, WorkerId};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zenoh::liveliness::LivelinessToken;
use zenoh::query::Query;
use zenoh::sample::SampleKind;
use zenoh::Session;

use crate::error::{ClusterError, Result};
use crate::protocol::{
    ask_worker, coordinator_key, ClusterStatus, CoordinatorRequest, EventsRequest, FinishQuery,
    InfoRequest, ProfileQuery, QueryEvent, StageProfile, SubmitQuery,
};
use crate::scheduler::{Action, Scheduler, SchedulerConfig};

/// How long an events request waits for news before answering empty.
const EVENTS_WAIT: Duration = Duration::from_secs(10);
/// Timeout of control requests to workers.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct CoordinatorConfig {
    pub cluster: ClusterId,
    pub zenoh: zenoh::Config,
    pub scheduler: SchedulerConfig,
}

struct Inner {
    cluster: ClusterId,
    session: Session,
    scheduler: Mutex<Scheduler>,
    /// Bumped whenever a query has new events.
    events: watch::Sender<u64>,
    /// Control requests to workers still being sent.
    in_flight: std::sync::atomic::AtomicUsize,
}

/// A running coordinator; dropping it stops it.
pub struct Coordinator {
    inner: Arc<Inner>,
    loops: Vec<JoinHandle<()>>,
    /// `ffq/<cluster>/coordinator`.
    _token: LivelinessToken,
}

impl Coordinator {
    pub async fn start(config: CoordinatorConfig) -> Result<Coordinator> {
        let session = zenoh::open(config.zenoh.clone())
            .await
            .map_err(ClusterError::zenoh)?;
        let inner = Arc::new(Inner {
            cluster: config.cluster.clone(),
            session: session.clone(),
            scheduler: Mutex::new(Scheduler::new(config.scheduler.clone())),
            events: watch::channel(0).0,
            in_flight: Default::default(),
        });
        let ctl = session
            .declare_queryable(coordinator_key(&config.cluster, "*"))
            .await
            .map_err(ClusterError::zenoh)?;
        let liveliness = session
            .liveliness()
            .declare_subscriber(worker_space(&config.cluster))
            .history(true)
            .await
            .map_err(ClusterError::zenoh)?;
        let clients = session
            .liveliness()
            .declare_subscriber(client_space(&config.cluster))
            .await
            .map_err(ClusterError::zenoh)?;
        let mut loops = Vec::new();
        {
            let inner = Arc::clone(&inner);
            loops.push(tokio::spawn(async move {
                while let Ok(sample) = clients.recv_async().await {
                    if sample.kind() != SampleKind::Delete {
                        continue;
                    }
                    let Ok((_, client)) = parse_client_key(sample.key_expr().as_str()) else {
                        continue;
                    };
                    let actions = inner.with(|s| s.client_lost(&client));
                    inner.dispatch(actions);
                }
            }));
        }
        {
            let inner = Arc::clone(&inner);
            loops.push(tokio::spawn(async move {
                while let Ok(query) = ctl.recv_async().await {
                    let inner = Arc::clone(&inner);
                    tokio::spawn(async move { inner.handle(query).await });
                }
            }));
        }
        {
            let inner = Arc::clone(&inner);
            loops.push(tokio::spawn(async move {
                while let Ok(sample) = liveliness.recv_async().await {
                    let Ok((_, worker)) = parse_worker_key(sample.key_expr().as_str()) else {
                        continue;
                    };
                    match sample.kind() {
                        SampleKind::Put => {
                            let inner = Arc::clone(&inner);
                            tokio::spawn(async move { inner.worker_up(worker).await });
                        }
                        SampleKind::Delete => {
                            let actions = inner.with(|s| s.worker_lost(&worker, Instant::now()));
                            inner.dispatch(actions);
                        }
                    }
                }
            }));
        }
        {
            let inner = Arc::clone(&inner);
            loops.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                loop {
                    tick.tick().await;
                    let actions = inner.with(|s| s.tick(Instant::now()));
                    inner.dispatch(actions);
                }
            }));
        }
        // Last, once everything answers: workers drop all they hold when
        // this token goes away.
        let token = session
            .liveliness()
            .declare_token(coordinator_token_key(&config.cluster))
            .await
            .map_err(ClusterError::zenoh)?;
        tracing::info!(cluster = %config.cluster, "coordinator started");
        Ok(Coordinator {
            inner,
            loops,
            _token: token,
        })
    }

    /// The coordinator's view of workers, queries and counters.
    pub fn status(&self) -> ClusterStatus {
        self.inner.with(|s| s.status(Instant::now()))
    }

    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    /// Stops answering, lets the releases and assignments being sent
    /// finish (up to 2 s), and closes the session.
    pub async fn shutdown(self) {
        for l in &self.loops {
            l.abort();
        }
        let start = Instant::now();
        while self
            .inner
            .in_flight
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
            && start.elapsed() < Duration::from_secs(2)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = self.inner.session.close().await;
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        for l in &self.loops {
            l.abort();
        }
    }
}

/// Counts a control request to a worker while it is being sent.
struct InFlight(Arc<Inner>);

impl InFlight {
    fn new(inner: &Arc<Inner>) -> Self {
        inner
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight(Arc::clone(inner))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Inner {
    fn with<T>(&self, f: impl FnOnce(&mut Scheduler) -> T) -> T {
        let mut s = self
            .scheduler
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut s)
    }

    async fn worker_up(self: &Arc<Self>, worker: WorkerId) {
        let mut wait = Duration::from_millis(50);
        for _ in 0..10 {
            match ask_worker(
                &self.session,
                &self.cluster,
                &worker,
                &InfoRequest,
                CONTROL_TIMEOUT,
            )
            .await
            {
                Ok(info) => {
                    let actions = self.with(|s| s.worker_up(info, Instant::now()));
                    self.dispatch(actions);
                    return;
                }
                Err(e) => {
                    tracing::debug!(worker = %worker, "worker info not available yet: {e}");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
        tracing::warn!(worker = %worker, "worker announced itself but never answered");
    }

    /// Carries out scheduler actions (in the background).
    fn dispatch(self: &Arc<Self>, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Events { .. } => self.events.send_modify(|v| *v += 1),
                Action::Assign { worker, assignment } => {
                    let inner = Arc::clone(self);
                    let guard = InFlight::new(self);
                    tokio::spawn(async move {
                        let _guard = guard;
                        let sent = ask_worker(
                            &inner.session,
                            &inner.cluster,
                            &worker,
                            &*assignment,
                            CONTROL_TIMEOUT,
                        )
                        .await;
                        if let Err(e) = sent {
                            let attempt = assignment.attempt_ref();
                            let unreachable = matches!(e, ClusterError::Unreachable { .. });
                            let actions = inner.with(|s| {
                                s.assign_failed(
                                    &worker,
                                    &attempt,
                                    e.to_string(),
                                    unreachable,
                                    Instant::now(),
                                )
                            });
                            inner.dispatch(actions);
                        }
                    });
                }
                Action::Release {
                    worker,
                    release,
                    stale,
                } => {
                    let inner = Arc::clone(self);
                    let guard = InFlight::new(self);
                    tokio::spawn(async move {
                        let _guard = guard;
                        let released = ask_worker(
                            &inner.session,
                            &inner.cluster,
                            &worker,
                            &release,
                            CONTROL_TIMEOUT,
                        )
                        .await;
                        match released {
                            Ok(r) if stale => inner.with(|s| s.count_stale_frames(r.frames)),
                            Ok(_) => {}
                            Err(e) => {
                                tracing::debug!(worker = %worker, ?release, "release not delivered: {e}")
                            }
                        }
                    });
                }
            }
        }
    }

    async fn handle(self: &Arc<Self>, query: Query) {
        let Some(request) = CoordinatorRequest::receive(query).await else {
            return;
        };
        match request {
            CoordinatorRequest::Submit(submit, reply) => reply.send(self.submit(submit)).await,
            CoordinatorRequest::Events(req, reply) => reply.send(self.events(req).await).await,
            CoordinatorRequest::Finish(FinishQuery(q), reply) => {
                let actions = self.with(|s| s.finish(&q));
                self.dispatch(actions);
                reply.send(Ok(())).await
            }
            CoordinatorRequest::Report(report, reply) => {
                let (ack, actions) = self.with(|s| s.report(report, Instant::now()));
                self.dispatch(actions);
                reply.send(Ok(ack)).await
            }
            CoordinatorRequest::Progress(progress, reply) => {
                let ack = self.with(|s| s.progress(&progress, Instant::now()));
                reply.send(Ok(ack)).await
            }
            CoordinatorRequest::Status(_, reply) => {
                reply
                    .send(Ok(self.with(|s| s.status(Instant::now()))))
                    .await
            }
            CoordinatorRequest::Profile(ProfileQuery(q), reply) => {
                reply.send(self.profile(&q)).await
            }
        }
    }

    fn submit(self: &Arc<Self>, submit: SubmitQuery) -> Result<()> {
        let actions = self
            .with(|s| s.submit(submit, Instant::now()))
            .map_err(ClusterError::Query)?;
        self.dispatch(actions);
        Ok(())
    }

    fn profile(&self, query: &QueryId) -> Result<Vec<StageProfile>> {
        self.with(|s| s.profile(query))
            .ok_or_else(|| unknown_query(query))
    }

    /// Long poll: the query's events from `from` on, as soon as there is
    /// one, or an empty list after [`EVENTS_WAIT`].
    async fn events(&self, req: EventsRequest) -> Result<Vec<QueryEvent>> {
        let mut changed = self.events.subscribe();
        let deadline = tokio::time::Instant::now() + EVENTS_WAIT;
        loop {
            match self.with(|s| s.events(&req.query, req.from)) {
                None => return Err(unknown_query(&req.query)),
                Some(events) if !events.is_empty() => return Ok(events),
                Some(_) => {}
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return Ok(vec![]);
            }
        }
    }
}

fn unknown_query(query: &QueryId) -> ClusterError {
    ClusterError::Query(format!("the coordinator does not know query {query}"))
}
