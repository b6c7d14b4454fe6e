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
use ffq_dataflow::execution::{memory_pool, MemoryPool};
use ffq_dataflow::functions::FunctionRegistry;
use ffq_dataflow::tables::MemoryTableMap;
use ffq_transport::zenoh_exchange::keys::{coordinator_token_key, worker_key};
use ffq_transport::zenoh_exchange::{
    AttemptRef, ClusterId, OutputServer, OutputStore, QueryId, ServeOptions, StoreConfig, WorkerId,
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

mod identity;
mod paths;
mod release;
mod tables;
mod task;

pub use paths::PathPolicy;

use crate::error::{ClusterError, Result};
use crate::protocol::{worker_ctl_key, Release, WorkerInfo, WorkerRequest, WorkerState};

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
    /// Directories whose files (Parquet, CSV) tasks may read, whatever the
    /// client's plan names (`ffq worker --allow-path`); default: none, so a
    /// plan scanning any file fails with a "not allowed" error. Generated
    /// and memory tables need none. See [`PathPolicy`].
    pub allowed_paths: Vec<std::path::PathBuf>,
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
            allowed_paths: vec![],
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
    /// The files tasks may read.
    paths: PathPolicy,
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
        let paths = PathPolicy::new(&config.allowed_paths)?;
        identity::ensure_id_is_free(&config.zenoh, &config.cluster, &config.id).await?;
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
            paths,
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
}
