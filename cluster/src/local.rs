//! [`LocalCluster`]: a coordinator and workers in this process, each with
//! its own zenoh session, talking over loopback TCP (real zenoh, not
//! channels). For tests and examples.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffq_transport::zenoh_exchange::{free_port, WorkerId};

use crate::config::ClusterConfig;
use crate::coordinator::{Coordinator, CoordinatorConfig};
use crate::error::{ClusterError, Result};
use crate::protocol::{ClusterStatus, WorkerState};
use crate::scheduler::SchedulerConfig;
use crate::security::{Role, Security};
use crate::worker::{FaultHook, Worker, WorkerConfig};

/// The security settings of each role's sessions.
pub type SecurityOfRole = Arc<dyn Fn(Role) -> Security + Send + Sync>;

/// Settings of a [`LocalCluster`].
#[derive(Clone)]
pub struct LocalClusterBuilder {
    workers: usize,
    slots: u32,
    cluster: String,
    scheduler: SchedulerConfig,
    fault: Option<FaultHook>,
    lease: Option<Duration>,
    allowed_paths: Vec<PathBuf>,
    security: Option<SecurityOfRole>,
}

impl LocalClusterBuilder {
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    pub fn slots(mut self, n: u32) -> Self {
        self.slots = n;
        self
    }

    pub fn scheduler(mut self, config: SchedulerConfig) -> Self {
        self.scheduler = config;
        self
    }

    /// A hook every worker calls before running an attempt.
    pub fn fault(mut self, hook: FaultHook) -> Self {
        self.fault = Some(hook);
        self
    }

    /// The cluster's name (its keys are `ffq/<name>/**`).
    pub fn cluster(mut self, name: impl Into<String>) -> Self {
        self.cluster = name.into();
        self
    }

    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// The directories whose files every worker may read
    /// (`WorkerConfig::allowed_paths`), instead of the default `/`: the
    /// workers of a local cluster run in the caller's process, which can
    /// read those files anyway.
    pub fn allowed_paths(mut self, roots: Vec<PathBuf>) -> Self {
        self.allowed_paths = roots;
        self
    }

    /// Secures the cluster: the coordinator's, workers' and client's
    /// sessions get `security(role)`. With TLS, every endpoint is
    /// `quic/127.0.0.1:PORT` (see `security` on `tls/` links).
    pub fn security(mut self, security: impl Fn(Role) -> Security + Send + Sync + 'static) -> Self {
        self.security = Some(Arc::new(security));
        self
    }

    pub async fn start(self) -> Result<LocalCluster> {
        let security = self.security.clone();
        let of_role = move |role| security.as_ref().map(|s| s(role)).unwrap_or_default();
        let scheme = match of_role(Role::Coordinator).tls {
            Some(_) => "quic",
            None => "tcp",
        };
        let endpoint = format!("{scheme}/127.0.0.1:{}", free_port()?);
        let mut base = ClusterConfig::new(endpoint.clone()).with_cluster(&self.cluster)?;
        base.lease = self.lease;
        let coordinator = Coordinator::start(CoordinatorConfig {
            cluster: base.cluster.clone(),
            zenoh: ClusterConfig {
                connect: vec![],
                listen: Some(endpoint.clone()),
                security: of_role(Role::Coordinator),
                ..base.clone()
            }
            .zenoh()?,
            scheduler: self.scheduler.clone(),
        })
        .await?;
        let mut cluster = LocalCluster {
            worker_listen: format!("{scheme}/127.0.0.1:0"),
            worker_security: of_role(Role::Worker),
            base: ClusterConfig {
                security: of_role(Role::Client),
                ..base
            },
            endpoint,
            coordinator: Some(coordinator),
            workers: Vec::new(),
            slots: self.slots,
            fault: self.fault.clone(),
            allowed_paths: self.allowed_paths.clone(),
        };
        for _ in 0..self.workers {
            cluster.add_worker().await?;
        }
        Ok(cluster)
    }
}

/// A coordinator and workers in this process.
pub struct LocalCluster {
    endpoint: String,
    /// What a client connects with (the client's security).
    base: ClusterConfig,
    worker_listen: String,
    worker_security: Security,
    /// `None` once stopped by [`LocalCluster::stop_coordinator`].
    coordinator: Option<Coordinator>,
    workers: Vec<Option<Worker>>,
    slots: u32,
    fault: Option<FaultHook>,
    allowed_paths: Vec<PathBuf>,
}

impl LocalCluster {
    /// A coordinator and `workers` workers with two slots each.
    pub async fn start(workers: usize) -> Result<LocalCluster> {
        Self::builder().workers(workers).start().await
    }

    pub fn builder() -> LocalClusterBuilder {
        LocalClusterBuilder {
            workers: 2,
            slots: 2,
            cluster: crate::config::DEFAULT_CLUSTER.to_string(),
            scheduler: SchedulerConfig::default(),
            fault: None,
            lease: None,
            allowed_paths: vec![PathBuf::from("/")],
            security: None,
        }
    }

    /// The coordinator's endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The config a client connects with.
    pub fn client_config(&self) -> ClusterConfig {
        self.base.clone()
    }

    /// Starts one more worker and waits until the coordinator knows it.
    pub async fn add_worker(&mut self) -> Result<WorkerId> {
        self.add_worker_with(|_| {}).await
    }

    /// Like [`LocalCluster::add_worker`], with `configure` adjusting the
    /// worker's config (custom operators, slots, fault hook) first.
    pub async fn add_worker_with(
        &mut self,
        configure: impl FnOnce(&mut WorkerConfig),
    ) -> Result<WorkerId> {
        let mut config = WorkerConfig::new(
            self.base.cluster.clone(),
            ClusterConfig {
                listen: Some(self.worker_listen.clone()),
                security: self.worker_security.clone(),
                ..self.base.clone()
            }
            .zenoh()?,
        );
        config.slots = self.slots;
        config.fault = self.fault.clone();
        config.allowed_paths = self.allowed_paths.clone();
        configure(&mut config);
        let worker = Worker::start(config).await?;
        let id = worker.id().clone();
        self.workers.push(Some(worker));
        self.wait_for(|s| s.workers.iter().any(|w| w.info.id == id && w.alive))
            .await?;
        Ok(id)
    }

    /// Stops worker `i` abruptly (its session closes, its liveliness token
    /// goes), as a crashing worker process would.
    pub async fn stop_worker(&mut self, i: usize) -> Result<()> {
        let worker = self
            .workers
            .get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| ClusterError::Config(format!("no running worker {i}")))?;
        worker.shutdown().await;
        Ok(())
    }

    /// The states of the running workers, read directly.
    pub fn worker_states(&self) -> Vec<WorkerState> {
        self.workers.iter().flatten().map(|w| w.state()).collect()
    }

    /// The coordinator's status (empty once it was stopped).
    pub fn status(&self) -> ClusterStatus {
        self.coordinator
            .as_ref()
            .map(Coordinator::status)
            .unwrap_or_default()
    }

    /// Stops the coordinator (its session closes and its liveliness token
    /// goes, as when its process dies); the workers keep running.
    pub async fn stop_coordinator(&mut self) {
        if let Some(c) = self.coordinator.take() {
            c.shutdown().await;
        }
    }

    /// Waits (up to 10 s) until the coordinator's status satisfies `f`.
    pub async fn wait_for(&self, f: impl Fn(&ClusterStatus) -> bool) -> Result<()> {
        let start = Instant::now();
        loop {
            let status = self.status();
            if f(&status) {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(ClusterError::Config(format!(
                    "the local cluster did not reach the expected state: {status:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn shutdown(mut self) {
        for w in self.workers.drain(..).flatten() {
            w.shutdown().await;
        }
        self.stop_coordinator().await;
    }
}
