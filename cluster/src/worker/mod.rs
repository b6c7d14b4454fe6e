//! A worker: runs the task attempts the coordinator assigns, keeps their
//! outputs in its [`OutputStore`] (served to readers on the data keys), and
//! drops what the coordinator releases.
//!
//! It announces itself with a liveliness token on `ffq/<cluster>/worker/<id>`
//! and answers control requests on `ffq/<cluster>/ctl/worker/<id>/*`
//! (the requests of [`WorkerRequest`]: `info`, `assign`, `release`,
//! `state`).
//!
//! It watches the coordinator's liveliness token: when the coordinator is
//! gone for [`COORDINATOR_GRACE`], nothing can release what its queries
//! left here, so the worker drops everything. A query once released cannot come back: its
//! late assignments are ignored and its late writes refused.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ffq_dataflow::custom::OperatorRegistry;
use ffq_dataflow::error::DataflowError;
use ffq_dataflow::execution::{memory_pool, MemoryPool};
use ffq_dataflow::functions::FunctionRegistry;
use ffq_dataflow::operators::exchange::Partitioner;
use ffq_dataflow::runner::{catch_panic, CompiledPlan, ExecConfig, QueryServices};
use ffq_dataflow::tables::{MemoryTableMap, MemoryTables};
use ffq_transport::zenoh_exchange::keys::{coordinator_token_key, worker_key};
use ffq_transport::zenoh_exchange::{
    AttemptRef, ClusterId, OutputServer, OutputStore, QueryId, ServeOptions, StoreConfig, WorkerId,
    ZenohPartitionWriter,
};
use tokio::task::{AbortHandle, JoinHandle};
use zenoh::liveliness::LivelinessToken;
use zenoh::query::Query;
use zenoh::sample::SampleKind;
use zenoh::Session;

/// How long the coordinator's liveliness token may be gone before the
/// worker drops everything: a coordinator (or this worker) paused or cut
/// off briefly comes back and reconciles by itself.
const COORDINATOR_GRACE: Duration = Duration::from_secs(3);

mod tables;

use crate::error::{ClusterError, Result};
use crate::inputs::ZenohStageInputs;
use crate::protocol::{
    ask_coordinator, worker_ctl_key, Release, Released, TaskAssignment, TaskOutcome, TaskReport,
    WorkerInfo, WorkerRequest, WorkerState,
};

/// A test hook: called before an attempt runs; `Some(message)` makes the
/// attempt fail with that message.
pub type FaultHook = Arc<dyn Fn(&AttemptRef) -> Option<String> + Send + Sync>;

/// How a worker runs.
#[derive(Clone)]
pub struct WorkerConfig {
    pub cluster: ClusterId,
    pub id: WorkerId,
    /// Task attempts run at once.
    pub slots: u32,
    pub zenoh: zenoh::Config,
    pub store: StoreConfig,
    pub serve: ServeOptions,
    pub fault: Option<FaultHook>,
    /// Custom operators this worker can build.
    pub operators: OperatorRegistry,
    /// Operator names to advertise instead of the registry's (tests of a
    /// worker advertising what it cannot build, as in a registration race).
    pub advertise: Option<Vec<String>>,
    /// Bytes that operator state of all tasks running on this worker and
    /// the output store's memory bytes may hold at once (one pool per
    /// worker). Operators reaching it spill to `spill_dir`; state that
    /// cannot spill fails its task with a `resources exhausted` error.
    /// Default: three quarters of the machine's (or cgroup's) memory;
    /// `None`: no limit. The output store also keeps its own budget
    /// (`store`).
    pub memory_limit: Option<usize>,
    /// Where tasks spill operator state when the memory limit is reached
    /// (a directory per task, removed when it ends).
    pub spill_dir: std::path::PathBuf,
}

impl WorkerConfig {
    /// A worker with a generated id and one slot per core.
    pub fn new(cluster: ClusterId, zenoh: zenoh::Config) -> Self {
        WorkerConfig {
            cluster,
            id: generated_worker_id(),
            slots: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(2),
            zenoh,
            store: StoreConfig::default(),
            serve: ServeOptions::default(),
            fault: None,
            operators: OperatorRegistry::default(),
            advertise: None,
            memory_limit: ffq_dataflow::execution::default_memory_limit(),
            spill_dir: std::env::temp_dir(),
        }
    }
}

/// `w-<pid>-<n>`: unique among the workers of one machine's processes.
pub fn generated_worker_id() -> WorkerId {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    WorkerId::new(format!("w-{}-{n}", std::process::id())).expect("a valid id")
}

struct Shared {
    id: WorkerId,
    cluster: ClusterId,
    slots: u32,
    session: Session,
    store: OutputStore,
    registry: Arc<FunctionRegistry>,
    fault: Option<FaultHook>,
    operators: Arc<OperatorRegistry>,
    /// The worker's memory pool, shared by its tasks.
    memory_pool: Arc<dyn MemoryPool>,
    /// Where tasks make their spill directories.
    spill_dir: std::path::PathBuf,
    /// Bytes the operators of this worker's tasks spilled, in all.
    task_spilled_bytes: std::sync::atomic::AtomicU64,
    advertised: Vec<String>,
    running: Mutex<HashMap<AttemptRef, AbortHandle>>,
    tables: Mutex<HashMap<QueryId, Arc<MemoryTableMap>>>,
    tasks_run: std::sync::atomic::AtomicU64,
}

/// A running worker; dropping it (or [`Worker::shutdown`]) stops it.
pub struct Worker {
    shared: Arc<Shared>,
    control: JoinHandle<()>,
    /// Watches the coordinator's liveliness token.
    coordinator_watch: JoinHandle<()>,
    token: Option<LivelinessToken>,
    server: Option<OutputServer>,
}

impl Worker {
    /// Opens the worker's zenoh session and starts serving.
    pub async fn start(config: WorkerConfig) -> Result<Worker> {
        let session = zenoh::open(config.zenoh.clone())
            .await
            .map_err(ClusterError::zenoh)?;
        // Spill directories of workers that died before removing theirs.
        ffq_dataflow::execution::remove_stale_spill_dirs(&config.spill_dir);
        let memory_pool = memory_pool(config.memory_limit);
        let store = OutputStore::new(config.store.clone()).with_memory_pool(&memory_pool);
        let server = store
            .serve(&session, &config.cluster, config.serve.clone())
            .await?;
        let shared = Arc::new(Shared {
            id: config.id.clone(),
            cluster: config.cluster.clone(),
            slots: config.slots.max(1),
            session: session.clone(),
            store,
            registry: Arc::new(FunctionRegistry::with_defaults()),
            fault: config.fault.clone(),
            operators: Arc::new(config.operators.clone()),
            memory_pool,
            spill_dir: config.spill_dir.clone(),
            advertised: config
                .advertise
                .clone()
                .unwrap_or_else(|| config.operators.names()),
            running: Mutex::new(HashMap::new()),
            tables: Mutex::new(HashMap::new()),
            tasks_run: Default::default(),
            task_spilled_bytes: Default::default(),
        });
        let ctl = session
            .declare_queryable(worker_ctl_key(&config.cluster, &config.id, "*"))
            .await
            .map_err(ClusterError::zenoh)?;
        let control = {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                while let Ok(query) = ctl.recv_async().await {
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move { handle_control(&shared, query).await });
                }
            })
        };
        let coordinator_watch = {
            let tokens = session
                .liveliness()
                .declare_subscriber(coordinator_token_key(&config.cluster))
                .await
                .map_err(ClusterError::zenoh)?;
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                // Bumped at every change of the token: a drop scheduled at
                // a Delete happens only if nothing changed since.
                let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
                while let Ok(sample) = tokens.recv_async().await {
                    let seen = generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    if sample.kind() != SampleKind::Delete {
                        continue;
                    }
                    let (shared, generation) = (Arc::clone(&shared), Arc::clone(&generation));
                    tokio::spawn(async move {
                        tokio::time::sleep(COORDINATOR_GRACE).await;
                        // Still gone by the subscriber's account: ask the
                        // network too, since a Delete can arrive late (a
                        // path to the coordinator closing while another one
                        // still reaches it).
                        if generation.load(std::sync::atomic::Ordering::SeqCst) == seen
                            && !shared.coordinator_alive().await
                        {
                            shared.drop_everything();
                        }
                    });
                }
            })
        };
        // The token last: once the coordinator sees it, everything answers.
        let token = session
            .liveliness()
            .declare_token(worker_key(&config.cluster, &config.id))
            .await
            .map_err(ClusterError::zenoh)?;
        tracing::info!(worker = %config.id, slots = config.slots, "worker started");
        Ok(Worker {
            shared,
            control,
            coordinator_watch,
            token: Some(token),
            server: Some(server),
        })
    }

    pub fn id(&self) -> &WorkerId {
        &self.shared.id
    }

    /// What the worker holds right now.
    pub fn state(&self) -> WorkerState {
        self.shared.state()
    }

    /// Withdraws the liveliness token, stops running tasks and closes the
    /// session (as a worker process exiting does).
    pub async fn shutdown(mut self) {
        if let Some(t) = self.token.take() {
            let _ = t.undeclare().await;
        }
        if let Some(s) = self.server.take() {
            let _ = s.close().await;
        }
        self.shared.release(&Release::AllExcept(vec![]));
        self.control.abort();
        self.coordinator_watch.abort();
        let _ = self.shared.session.close().await;
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.control.abort();
        self.coordinator_watch.abort();
        if let Ok(mut running) = self.shared.running.lock() {
            for (_, h) in running.drain() {
                h.abort();
            }
        }
    }
}

async fn handle_control(shared: &Arc<Shared>, query: Query) {
    let Some(request) = WorkerRequest::receive(query).await else {
        return;
    };
    match request {
        WorkerRequest::Info(_, reply) => reply.send(Ok(shared.info())).await,
        WorkerRequest::State(_, reply) => reply.send(Ok(shared.state())).await,
        WorkerRequest::Assign(assignment, reply) => reply.send(shared.start_task(assignment)).await,
        WorkerRequest::Release(release, reply) => reply.send(Ok(shared.release(&release))).await,
    }
}

impl Shared {
    fn info(&self) -> WorkerInfo {
        WorkerInfo {
            id: self.id.clone(),
            slots: self.slots,
            operators: self.advertised.clone(),
            pid: std::process::id(),
        }
    }

    fn state(&self) -> WorkerState {
        let running: Vec<AttemptRef> = self
            .running
            .lock()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        let streams = self.store.stream_ids();
        let cached: Vec<QueryId> = self
            .tables
            .lock()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        let mut queries = BTreeSet::new();
        queries.extend(running.iter().map(|a| a.query.clone()));
        queries.extend(streams.iter().map(|s| s.query.clone()));
        queries.extend(cached.iter().cloned());
        let stats = self.store.stats();
        WorkerState {
            id: self.id.clone(),
            slots: self.slots,
            running,
            streams,
            buffered_bytes: stats.bytes as u64,
            spilled_bytes: stats.spilled_bytes,
            memory_reserved: self.memory_pool.reserved() as u64,
            memory_limit: ffq_dataflow::execution::memory_limit(self.memory_pool.as_ref())
                .map(|l| l as u64),
            task_spilled_bytes: self
                .task_spilled_bytes
                .load(std::sync::atomic::Ordering::Relaxed),
            queries: queries.into_iter().collect(),
            cached_tables: cached.len() as u64,
            tasks_run: self.tasks_run.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Starts an assigned attempt; it reports its outcome by itself. An
    /// attempt of a query released here is refused: the query ended while
    /// its assignment was on the way (a coordinator that still runs it
    /// then retries the task elsewhere).
    fn start_task(self: &Arc<Self>, assignment: TaskAssignment) -> Result<()> {
        let attempt = assignment.attempt_ref();
        if self.store.is_released(&attempt.query) {
            tracing::debug!(worker = %self.id, ?attempt, "assignment of a released query refused");
            return Err(ClusterError::Query(format!(
                "query {} was released on worker {}",
                attempt.query, self.id
            )));
        }
        let mut running = self
            .running
            .lock()
            .map_err(|_| ClusterError::Protocol("running task table poisoned".into()))?;
        if running.contains_key(&attempt) {
            return Ok(());
        }
        tracing::debug!(worker = %self.id, ?attempt, "task started");
        let shared = Arc::clone(self);
        let key = attempt.clone();
        let handle = tokio::spawn(async move {
            let outcome = match catch_panic(shared.run_task(&assignment)).await {
                Ok(o) => o,
                Err(e) => TaskOutcome::Failed {
                    message: e.to_string(),
                    deterministic: e.is_deterministic(),
                },
            };
            shared
                .tasks_run
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Ok(mut r) = shared.running.lock() {
                r.remove(&key);
            }
            shared.report(key, outcome).await;
        });
        running.insert(attempt, handle.abort_handle());
        Ok(())
    }

    async fn run_task(&self, a: &TaskAssignment) -> ffq_dataflow::Result<TaskOutcome> {
        let attempt = a.attempt_ref();
        if let Some(fault) = &self.fault {
            if let Some(message) = fault(&attempt) {
                return Ok(TaskOutcome::Failed {
                    message,
                    deterministic: false,
                });
            }
        }
        if let Some(missing) = a
            .stage
            .required_operators()
            .into_iter()
            .find(|op| self.operators.get(op).is_none())
        {
            return Ok(TaskOutcome::Failed {
                message: format!(
                    "worker {} cannot run operator {missing}: no factory is registered for it here",
                    self.id
                ),
                deterministic: false,
            });
        }
        let output = a.stage.output.as_ref().ok_or_else(|| {
            DataflowError::Internal("the root stage runs in the client, not on a worker".into())
        })?;
        let tables = self.tables_for(a).await?;
        let inputs = Arc::new(ZenohStageInputs::new(
            self.session.clone(),
            self.cluster.clone(),
            a.query.clone(),
            a.inputs.clone(),
        ));
        let config = ExecConfig {
            batch_size: a.batch_size,
            memory_pool: Arc::clone(&self.memory_pool),
            spill_dir: self.spill_dir.clone(),
            ..ExecConfig::default()
        };
        let services = QueryServices::new(config, Arc::clone(&self.registry), tables)
            .with_inputs(Arc::clone(&inputs) as _)
            .with_operators(Arc::clone(&self.operators));
        let compiled = CompiledPlan::try_new(&a.stage.plan, services)?;
        let schema = compiled.root.schema();
        let partitioner = Partitioner::try_new(output, &schema, &self.registry)?;
        let writer = ZenohPartitionWriter::new(
            &self.store,
            attempt.clone(),
            partitioner.partitions(),
            schema,
        )?;
        let mut output = AttemptOutput(Some(writer));
        let produced = partitioner
            .produce(
                Arc::clone(&compiled.root),
                a.task.0 as usize,
                &compiled.ctx,
                output.0.as_mut().expect("set above"),
            )
            .await;
        let writer = output.0.take().expect("set above");
        let spilled: u64 = compiled
            .ctx
            .metrics
            .snapshot()
            .iter()
            .map(|m| m.spilled_bytes)
            .sum();
        self.task_spilled_bytes
            .fetch_add(spilled, std::sync::atomic::Ordering::Relaxed);
        match produced {
            // Cancelled: every reader is gone (cannot happen with stored
            // outputs, which have no readers to lose); keep what exists.
            Ok(()) | Err(DataflowError::Cancelled) => {
                writer.finish()?;
                let stats = self.store.attempt_stats(&attempt);
                Ok(TaskOutcome::Succeeded {
                    bytes: stats.bytes as u64,
                    metrics: compiled.ctx.metrics.snapshot(),
                    stale_frames: inputs.stale_frames(),
                })
            }
            Err(e) => {
                let message = e.to_string();
                writer.abort(&message);
                Ok(TaskOutcome::Failed {
                    message,
                    deterministic: e.is_deterministic(),
                })
            }
        }
    }

    /// The memory tables `a` scans, fetched once per query from the client
    /// that registered them.
    async fn tables_for(&self, a: &TaskAssignment) -> ffq_dataflow::Result<Arc<dyn MemoryTables>> {
        let names = a.stage.memory_tables();
        let map = {
            let mut tables = self
                .tables
                .lock()
                .map_err(|_| DataflowError::Internal("table cache poisoned".into()))?;
            // Checked under the cache's lock: a release of the query
            // cannot slip between the check and the insert.
            if self.store.is_released(&a.query) {
                return Err(DataflowError::Execution(format!(
                    "query {} was released",
                    a.query
                )));
            }
            Arc::clone(tables.entry(a.query.clone()).or_insert_with(|| {
                Arc::new(MemoryTableMap::with_memory_pool(Arc::clone(
                    &self.memory_pool,
                )))
            }))
        };
        for name in names {
            if map.batches(&name).is_some() {
                continue;
            }
            let batches =
                tables::fetch_table(&self.session, &self.cluster, &a.client, &a.query, &name)
                    .await
                    .map_err(DataflowError::from)?;
            map.insert(name, batches)?;
        }
        Ok(map)
    }

    /// Reports an outcome to the coordinator, retrying while it cannot be
    /// reached; drops the attempt's output if the coordinator does not
    /// keep it.
    async fn report(&self, attempt: AttemptRef, outcome: TaskOutcome) {
        let report = TaskReport {
            worker: self.id.clone(),
            attempt: attempt.clone(),
            outcome,
            frames: self.store.attempt_stats(&attempt).frames as u64,
        };
        let mut wait = Duration::from_millis(100);
        for _ in 0..30 {
            match ask_coordinator(
                &self.session,
                &self.cluster,
                &report,
                Duration::from_secs(10),
            )
            .await
            {
                Ok(ack) => {
                    if !ack.keep {
                        self.store.release_attempt(&attempt);
                    }
                    return;
                }
                Err(e) => {
                    tracing::debug!(worker = %self.id, ?attempt, "report not delivered: {e}");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
            }
        }
        tracing::warn!(worker = %self.id, ?attempt, "coordinator unreachable; dropping the attempt's output");
        self.store.release_attempt(&attempt);
    }

    fn release(&self, release: &Release) -> Released {
        // Ended queries first: no attempt of theirs may start or write
        // once the release is under way.
        for q in self.ended_queries(release) {
            self.store.mark_released(&q);
        }
        let matches = |a: &AttemptRef| match release {
            Release::Query(q) => &a.query == q,
            Release::Attempt(x) => a == x,
            Release::Stage(q, stage) => &a.query == q && a.stage == *stage,
            Release::AllExcept(keep) => !keep.contains(&a.query),
        };
        let mut tasks = 0;
        if let Ok(mut running) = self.running.lock() {
            running.retain(|a, h| {
                if matches(a) {
                    h.abort();
                    tasks += 1;
                    false
                } else {
                    true
                }
            });
        }
        let before = self.store.stats();
        let streams = match release {
            Release::Query(q) => self.store.release(q),
            Release::Attempt(a) => self.store.release_attempt(a),
            Release::Stage(q, stage) => self.store.release_stage(q, *stage),
            Release::AllExcept(keep) => {
                let mut n = 0;
                for q in self
                    .store
                    .stream_ids()
                    .into_iter()
                    .map(|s| s.query)
                    .collect::<BTreeSet<_>>()
                {
                    if !keep.contains(&q) {
                        n += self.store.release(&q);
                    }
                }
                n
            }
        };
        let after = self.store.stats();
        if let Ok(mut tables) = self.tables.lock() {
            match release {
                Release::Query(q) => {
                    tables.remove(q);
                }
                Release::AllExcept(keep) => tables.retain(|q, _| keep.contains(q)),
                Release::Attempt(_) | Release::Stage(..) => {}
            }
        }
        let released = Released {
            tasks,
            streams: streams as u64,
            frames: before.frames.saturating_sub(after.frames) as u64,
        };
        tracing::debug!(worker = %self.id, ?release, ?released, "released");
        released
    }
}

impl Shared {
    /// Whether the coordinator's liveliness token answers right now.
    async fn coordinator_alive(&self) -> bool {
        let key = coordinator_token_key(&self.cluster);
        match self
            .session
            .liveliness()
            .get(&key)
            .timeout(Duration::from_secs(1))
            .await
        {
            Ok(replies) => replies.recv_async().await.is_ok_and(|r| r.result().is_ok()),
            Err(_) => false,
        }
    }

    /// Nobody can release what the coordinator's queries left here any
    /// more: every task stops and every output and table goes. Nothing is
    /// marked released (a coordinator that comes back after all may
    /// assign the same queries again; it tells the worker what to drop).
    fn drop_everything(&self) {
        let mut tasks = 0;
        if let Ok(mut running) = self.running.lock() {
            for (_, h) in running.drain() {
                h.abort();
                tasks += 1;
            }
        }
        let streams = self.store.release_all();
        if let Ok(mut tables) = self.tables.lock() {
            tables.clear();
        }
        tracing::warn!(worker = %self.id, tasks, streams,
            "coordinator gone; dropped every task, output and table");
    }

    /// The queries `release` ends on this worker: everything of them goes.
    fn ended_queries(&self, release: &Release) -> Vec<QueryId> {
        match release {
            Release::Query(q) => vec![q.clone()],
            Release::Attempt(_) | Release::Stage(..) => vec![],
            Release::AllExcept(keep) => {
                let state = self.state();
                let mut held: BTreeSet<QueryId> = state.queries.into_iter().collect();
                held.retain(|q| !keep.contains(q));
                held.into_iter().collect()
            }
        }
    }
}

/// The writer of an attempt's output: an attempt dropped before it
/// finished (aborted) ends its streams with an error, never with a
/// complete-looking end.
struct AttemptOutput(Option<ZenohPartitionWriter>);

impl Drop for AttemptOutput {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.abort("the task attempt was cancelled");
        }
    }
}
