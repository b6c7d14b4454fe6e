//! The client side of a cluster: plans go to the coordinator as stages,
//! the client runs the root stage over the workers' outputs and streams
//! its batches to the caller, and serves its memory tables to workers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::ipc::writer::StreamWriter;
use ffq_dataflow::error::DataflowError;
use ffq_dataflow::metrics::MetricsSnapshot;
use ffq_dataflow::plan::PhysicalPlan;
use ffq_dataflow::runner::{CompiledPlan, QueryServices};
use ffq_dataflow::stage::{distributed_stages, StagePlan};
use ffq_dataflow::stream::{boxed, SendableRecordBatchStream};
use ffq_dataflow::tables::MemoryTableMap;
use ffq_transport::zenoh_exchange::keys::client_key;
use ffq_transport::zenoh_exchange::{ClientId, ClusterId, QueryId};
use ffq_transport::ChannelExchange;
use futures::StreamExt;
use tokio::task::JoinHandle;
use zenoh::liveliness::LivelinessToken;
use zenoh::query::Query;
use zenoh::Session;

use crate::config::ClusterConfig;
use crate::error::{ClusterError, Result};
use crate::inputs::ZenohStageInputs;
use crate::protocol::call::request_of;
use crate::protocol::{
    ask_coordinator, ask_workers, client_table_key, coordinator_key, ClusterStatus, EventsRequest,
    FinishQuery, InputAttempts, ProfileQuery, QueryEvent, Request, StageProfile, StateRequest,
    StatusRequest, SubmitQuery, TableRequest, WorkerState,
};

/// How long [`ClusterClient::connect`] waits to reach the live workers.
const REACH_WORKERS: Duration = Duration::from_secs(3);

/// Memory tables of running queries, served to workers.
type SharedTables = Arc<Mutex<HashMap<QueryId, HashMap<String, Arc<Vec<RecordBatch>>>>>>;

/// A connection to a cluster.
pub struct ClusterClient {
    session: Session,
    cluster: ClusterId,
    id: ClientId,
    tables: SharedTables,
    server: JoinHandle<()>,
    /// `ffq/<cluster>/client/<id>`: while it lives, the coordinator keeps
    /// this client's queries; when the client goes (even killed, sending
    /// nothing), the coordinator ends them.
    _token: LivelinessToken,
}

impl Drop for ClusterClient {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl ClusterClient {
    /// Connects and waits until the coordinator answers.
    pub async fn connect(config: &ClusterConfig) -> Result<Arc<ClusterClient>> {
        let session = zenoh::open(config.zenoh()?)
            .await
            .map_err(ClusterError::zenoh)?;
        let id = ClientId::new(format!("c-{}", QueryId::generate()))?;
        let tables: SharedTables = Arc::default();
        let queryable = session
            .declare_queryable(client_table_key(&config.cluster, &id))
            .await
            .map_err(ClusterError::zenoh)?;
        let server = {
            let tables = Arc::clone(&tables);
            tokio::spawn(async move {
                while let Ok(query) = queryable.recv_async().await {
                    serve_table(&tables, query).await;
                }
            })
        };
        let token = session
            .liveliness()
            .declare_token(client_key(&config.cluster, &id))
            .await
            .map_err(ClusterError::zenoh)?;
        let client = Arc::new(ClusterClient {
            session,
            cluster: config.cluster.clone(),
            id,
            tables,
            server,
            _token: token,
        });
        let started = Instant::now();
        let status = loop {
            match client.status().await {
                Ok(status) => break status,
                Err(e) if started.elapsed() >= config.connect_timeout => {
                    return Err(ClusterError::Unreachable {
                        key: coordinator_key(&config.cluster, StatusRequest::NAME),
                        reason: format!(
                            "no coordinator of cluster {} answered through {} within {:?} ({e})",
                            config.cluster,
                            config.connect.join(", "),
                            config.connect_timeout
                        ),
                    })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        client.reach_workers(&status).await;
        Ok(client)
    }

    /// Waits (up to [`REACH_WORKERS`]) until this session reaches every
    /// worker the coordinator counts alive. A fresh session learns the
    /// workers' endpoints from its peers and connects to them in the
    /// background (slower with TLS handshakes), while the root stage reads
    /// its inputs from the workers directly: a query submitted before would
    /// find nobody holding them. A worker still out of reach after the wait
    /// is left to the query's own error handling.
    async fn reach_workers(&self, status: &ClusterStatus) {
        let alive = status.workers.iter().filter(|w| w.alive).count();
        let started = Instant::now();
        while started.elapsed() < REACH_WORKERS {
            let wait = Duration::from_millis(500);
            match ask_workers(&self.session, &self.cluster, &StateRequest, wait).await {
                Ok(states) if states.len() >= alive => return,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The coordinator's view of the cluster.
    pub async fn status(&self) -> Result<ClusterStatus> {
        ask_coordinator(
            &self.session,
            &self.cluster,
            &StatusRequest,
            Duration::from_secs(5),
        )
        .await
    }

    /// The state every reachable worker reports.
    pub async fn worker_states(&self) -> Result<Vec<WorkerState>> {
        let mut states = ask_workers(
            &self.session,
            &self.cluster,
            &StateRequest,
            Duration::from_secs(5),
        )
        .await?;
        states.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(states)
    }

    /// Runs `plan` on the cluster. Nothing happens until the stream is
    /// polled; dropping the stream ends the query everywhere.
    pub fn execute(
        self: &Arc<Self>,
        plan: &PhysicalPlan,
        services: QueryServices,
    ) -> Result<SendableRecordBatchStream> {
        self.execute_with_progress(plan, services)
            .map(|(stream, _)| stream)
    }

    /// [`ClusterClient::execute`], with a view of the query's progress.
    pub fn execute_with_progress(
        self: &Arc<Self>,
        plan: &PhysicalPlan,
        services: QueryServices,
    ) -> Result<(SendableRecordBatchStream, Arc<ClusterProgress>)> {
        let progress = Arc::new(ClusterProgress::default());
        let schema = plan.schema();
        let (submit, guard) = self.prepare(plan, &services)?;
        let query = submit.query.clone();
        let client = Arc::clone(self);
        progress
            .stages_total
            .store(submit.stages.len() as u64, Ordering::Relaxed);
        let sink = Arc::clone(&progress);
        let stream = async_stream::stream! {
            let _guard = guard;
            let root = submit.stages[0].plan.clone();
            let inputs = match client.run_until_ready(submit, Some(&sink)).await {
                Ok(inputs) => inputs,
                Err(e) => {
                    yield Err(DataflowError::from(e));
                    return;
                }
            };
            let inputs = Arc::new(ZenohStageInputs::new(
                client.session.clone(),
                client.cluster.clone(),
                query,
                inputs,
            ));
            let compiled = CompiledPlan::try_new(&root, root_services(services, inputs));
            let mut batches = match compiled.and_then(|c| c.into_stream()) {
                Ok(s) => s,
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            while let Some(batch) = batches.next().await {
                let failed = batch.is_err();
                yield batch;
                if failed {
                    break;
                }
            }
        };
        Ok((boxed(schema, stream), progress))
    }

    /// Cuts `plan` into stages, registers the memory tables its stages
    /// scan, and returns the submission and the guard that ends the query.
    fn prepare(
        self: &Arc<Self>,
        plan: &PhysicalPlan,
        services: &QueryServices,
    ) -> Result<(SubmitQuery, QueryGuard)> {
        let stages = distributed_stages(plan);
        let query = QueryId::generate();
        // Memory tables are snapshotted now: workers read what the table
        // held when the query started.
        let mut shipped = HashMap::new();
        for name in stages.iter().flat_map(|s| s.memory_tables()) {
            let batches = services.tables.batches(&name).ok_or_else(|| {
                ClusterError::Dataflow(DataflowError::Plan(format!(
                    "memory table {name} is not registered"
                )))
            })?;
            shipped.insert(name, batches);
        }
        if !shipped.is_empty() {
            self.tables
                .lock()
                .map_err(|_| ClusterError::Protocol("table registry poisoned".into()))?
                .insert(query.clone(), shipped);
        }
        let guard = QueryGuard {
            client: Arc::clone(self),
            query: query.clone(),
        };
        let submit = SubmitQuery {
            query,
            client: self.id.clone(),
            stages,
            batch_size: services.config.batch_size,
        };
        Ok((submit, guard))
    }

    /// Runs `plan` to completion on the cluster and returns what every
    /// stage did (`EXPLAIN ANALYZE`).
    pub async fn analyze(
        self: &Arc<Self>,
        plan: &PhysicalPlan,
        services: QueryServices,
    ) -> Result<QueryAnalysis> {
        let start = Instant::now();
        let (submit, guard) = self.prepare(plan, &services)?;
        let stages = submit.stages.clone();
        let query = submit.query.clone();
        let inputs = self.run_until_ready(submit, None).await?;
        let inputs = Arc::new(ZenohStageInputs::new(
            self.session.clone(),
            self.cluster.clone(),
            query.clone(),
            inputs,
        ));
        let compiled = CompiledPlan::try_new(
            &stages[0].plan,
            root_services(services, Arc::clone(&inputs)),
        )?;
        let metrics = Arc::clone(&compiled.ctx.metrics);
        let mut batches = compiled.into_stream()?;
        let mut rows = 0;
        while let Some(batch) = batches.next().await {
            rows += batch?.num_rows();
        }
        let profile = ask_coordinator(
            &self.session,
            &self.cluster,
            &ProfileQuery(query),
            Duration::from_secs(10),
        )
        .await?;
        drop(guard);
        Ok(QueryAnalysis {
            stages,
            profile,
            root_metrics: metrics.snapshot(),
            fetched_bytes: inputs.bytes(),
            rows,
            elapsed: start.elapsed(),
        })
    }

    /// Submits the query and waits until the root stage's inputs are
    /// registered.
    async fn run_until_ready(
        &self,
        submit: SubmitQuery,
        progress: Option<&ClusterProgress>,
    ) -> Result<InputAttempts> {
        let query = submit.query.clone();
        ask_coordinator(
            &self.session,
            &self.cluster,
            &submit,
            Duration::from_secs(30),
        )
        .await?;
        let mut from = 0;
        loop {
            let events = ask_coordinator(
                &self.session,
                &self.cluster,
                &EventsRequest {
                    query: query.clone(),
                    from,
                },
                Duration::from_secs(30),
            )
            .await?;
            from += events.len();
            for event in events {
                match event {
                    QueryEvent::Ready { inputs } => {
                        if let Some(p) = progress {
                            let total = p.stages_total.load(Ordering::Relaxed);
                            p.stages_done
                                .store(total.saturating_sub(1), Ordering::Relaxed);
                        }
                        return Ok(inputs);
                    }
                    QueryEvent::Progress {
                        rows_scanned,
                        stages_done,
                        ..
                    } => {
                        if let Some(p) = progress {
                            p.rows_scanned.store(rows_scanned, Ordering::Relaxed);
                            p.stages_done.store(stages_done as u64, Ordering::Relaxed);
                        }
                    }
                    QueryEvent::Failed { message } => return Err(ClusterError::Query(message)),
                    QueryEvent::StageDone { .. } => {}
                }
            }
        }
    }

    fn finish(&self, query: &QueryId) {
        if let Ok(mut t) = self.tables.lock() {
            t.remove(query);
        }
        let session = self.session.clone();
        let cluster = self.cluster.clone();
        let query = query.clone();
        let send = async move {
            let finish = FinishQuery(query.clone());
            let sent = ask_coordinator(&session, &cluster, &finish, Duration::from_secs(5)).await;
            if let Err(e) = sent {
                tracing::debug!(%query, "finish not delivered: {e}");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(send);
            }
            Err(_) => {
                std::thread::spawn(move || {
                    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        rt.block_on(send);
                    }
                });
            }
        }
    }
}

/// What the client runs the root stage with: the query's services, but
/// reading its inputs from the workers (memory tables were shipped to the
/// workers that scan them; the root stage scans none).
fn root_services(services: QueryServices, inputs: Arc<ZenohStageInputs>) -> QueryServices {
    QueryServices {
        tables: Arc::new(MemoryTableMap::default()),
        exchange: Arc::new(ChannelExchange::default()),
        inputs: None,
        ..services
    }
    .with_inputs(inputs)
}

/// How far a query running on the cluster got (updated as the
/// coordinator reports finished tasks; stage 0 is the client's own).
#[derive(Debug, Default)]
pub struct ClusterProgress {
    pub rows_scanned: AtomicU64,
    pub stages_done: AtomicU64,
    pub stages_total: AtomicU64,
}

/// What a query did on the cluster (see [`ClusterClient::analyze`]).
#[derive(Debug, Clone)]
pub struct QueryAnalysis {
    pub stages: Vec<StagePlan>,
    /// Per stage, from the coordinator (stage 0's is empty: it ran here).
    pub profile: Vec<StageProfile>,
    /// Counters of the root stage's nodes, run by this client.
    pub root_metrics: Vec<MetricsSnapshot>,
    /// Bytes the root stage fetched from the workers.
    pub fetched_bytes: u64,
    pub rows: usize,
    pub elapsed: Duration,
}

/// Ends the query on the cluster when the client's stream goes away.
struct QueryGuard {
    client: Arc<ClusterClient>,
    query: QueryId,
}

impl Drop for QueryGuard {
    fn drop(&mut self) {
        self.client.finish(&self.query);
    }
}

async fn serve_table(tables: &SharedTables, query: Query) {
    let result = request_of::<TableRequest>(&query).and_then(|req| {
        let batches = tables
            .lock()
            .ok()
            .and_then(|t| t.get(&req.query)?.get(&req.name).cloned())
            .ok_or_else(|| {
                ClusterError::Query(format!(
                    "memory table {} of query {} is not served by this client",
                    req.name, req.query
                ))
            })?;
        encode_ipc(&batches).map_err(|e| ClusterError::Protocol(e.to_string()))
    });
    let sent = match result {
        Ok(bytes) => query.reply(query.key_expr().clone(), bytes).await,
        Err(e) => query.reply_err(e.to_string()).await,
    };
    if let Err(e) = sent {
        tracing::debug!("memory table not sent: {e}");
    }
}

fn encode_ipc(batches: &[RecordBatch]) -> std::result::Result<Vec<u8>, arrow::error::ArrowError> {
    // No batches: an empty payload (the scan then reads nothing).
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, &first.schema())?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    drop(w);
    Ok(out)
}
