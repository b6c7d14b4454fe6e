//! [`ProcessCluster`]: a coordinator and workers as separate processes on
//! loopback, for tests, benchmarks and examples.
//!
//! Unlike a [`LocalCluster`](crate::LocalCluster), every node is a process
//! of its own: it can be killed or paused by a signal, and the command line
//! that starts it is exercised. The nodes are started from any binary that
//! serves the command lines of [`NodeSpec::args`]: the `ffq` binary
//! (`ffq coordinator ...`, `ffq worker ...`), or a program re-executing
//! itself that hands its arguments to [`NodeSpec::parse`] and runs the node
//! with [`NodeSpec::run`] (the examples do, as they cannot rely on the
//! `ffq` binary being built).
//!
//! Every node gets a pipe as its standard input, held by the cluster: a
//! node that wants to end with the process that started it (even one
//! killed with SIGKILL) can exit when its standard input closes.
//!
//! ```text
//!   ProcessCluster ──spawn──▶ PROGRAM coordinator --listen tcp/127.0.0.1:P
//!        │        ──spawn──▶ PROGRAM worker --connect tcp/127.0.0.1:P  (× N)
//!        └── ClusterClient: status until N workers are alive; drop: kill all
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ffq_transport::zenoh_exchange::loopback_endpoint;

use crate::client::ClusterClient;
use crate::config::ClusterConfig;
use crate::coordinator::{Coordinator, CoordinatorConfig};
use crate::error::{ClusterError, Result};
use crate::scheduler::SchedulerConfig;
use crate::worker::{Worker, WorkerConfig};

pub use ffq_transport::zenoh_exchange::free_port;

/// What a node of a cluster does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    Coordinator,
    Worker,
}

impl NodeRole {
    /// The subcommand of the `ffq` binary that runs this role.
    pub fn command(self) -> &'static str {
        match self {
            NodeRole::Coordinator => "coordinator",
            NodeRole::Worker => "worker",
        }
    }
}

/// One node of a [`ProcessCluster`], as its command line describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    pub role: NodeRole,
    /// The coordinator's endpoint: it listens there, workers connect there.
    pub endpoint: String,
    /// The cluster's name.
    pub cluster: String,
    /// Task attempts a worker runs at once (the binary's default if unset).
    pub slots: Option<u32>,
    /// The zenoh lease of the node's session (zenoh's default if unset).
    pub lease: Option<Duration>,
    /// A worker's memory limit in bytes, `Some(None)` for no limit (the
    /// binary's default if unset).
    pub memory_limit: Option<Option<usize>>,
    /// Directories whose files a worker may read (`--allow-path`, one
    /// each; none by default).
    pub allowed_paths: Vec<PathBuf>,
    /// The coordinator's progress deadline (`--progress-deadline-ms`;
    /// the binary's default if unset).
    pub progress_deadline: Option<Duration>,
    /// How long the coordinator lets a task wait with no live worker
    /// (`--no-worker-wait-ms`; the binary's default if unset).
    pub no_worker_wait: Option<Duration>,
}

/// Where a worker listens: any free loopback port.
const WORKER_LISTEN: &str = "tcp/127.0.0.1:0";

impl NodeSpec {
    /// The node's command line after the program name, as `ffq` accepts it.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![self.role.command().to_string()];
        match self.role {
            NodeRole::Coordinator => {
                args.extend(["--listen".into(), self.endpoint.clone()]);
                if let Some(deadline) = self.progress_deadline {
                    args.extend([
                        "--progress-deadline-ms".into(),
                        deadline.as_millis().to_string(),
                    ]);
                }
                if let Some(wait) = self.no_worker_wait {
                    args.extend(["--no-worker-wait-ms".into(), wait.as_millis().to_string()]);
                }
            }
            NodeRole::Worker => {
                args.extend(["--connect".into(), self.endpoint.clone()]);
                args.extend(["--listen".into(), WORKER_LISTEN.into()]);
                if let Some(slots) = self.slots {
                    args.extend(["--slots".into(), slots.to_string()]);
                }
                if let Some(limit) = self.memory_limit {
                    let limit = limit.map_or_else(|| "none".into(), |bytes| bytes.to_string());
                    args.extend(["--memory-limit".into(), limit]);
                }
                for root in &self.allowed_paths {
                    args.extend(["--allow-path".into(), root.display().to_string()]);
                }
            }
        }
        args.extend(["--cluster".into(), self.cluster.clone()]);
        if let Some(lease) = self.lease {
            args.extend(["--lease-ms".into(), lease.as_millis().to_string()]);
        }
        args
    }

    /// The node that a command line made by [`NodeSpec::args`] describes
    /// (`args` without the program name); `None` if `args` does not start
    /// with a node's subcommand.
    pub fn parse(args: &[String]) -> Option<Result<NodeSpec>> {
        let role = match args.first().map(String::as_str) {
            Some("coordinator") => NodeRole::Coordinator,
            Some("worker") => NodeRole::Worker,
            _ => return None,
        };
        Some(Self::parse_flags(role, &args[1..]))
    }

    fn parse_flags(role: NodeRole, flags: &[String]) -> Result<NodeSpec> {
        let bad = |what: String| ClusterError::Config(format!("node command line: {what}"));
        let mut spec = NodeSpec {
            role,
            endpoint: String::new(),
            cluster: crate::config::DEFAULT_CLUSTER.to_string(),
            slots: None,
            lease: None,
            memory_limit: None,
            allowed_paths: vec![],
            progress_deadline: None,
            no_worker_wait: None,
        };
        let mut flags = flags.iter();
        while let Some(flag) = flags.next() {
            let value = flags
                .next()
                .ok_or_else(|| bad(format!("{flag} needs a value")))?;
            let number = |value: &str| {
                value
                    .parse::<u64>()
                    .map_err(|e| bad(format!("{flag} {value}: {e}")))
            };
            match (role, flag.as_str()) {
                (NodeRole::Coordinator, "--listen") | (NodeRole::Worker, "--connect") => {
                    spec.endpoint = value.clone();
                }
                (NodeRole::Worker, "--listen") if value == WORKER_LISTEN => {}
                (NodeRole::Worker, "--slots") => {
                    let slots = u32::try_from(number(value)?)
                        .map_err(|e| bad(format!("{flag} {value}: {e}")))?;
                    spec.slots = Some(slots);
                }
                (NodeRole::Worker, "--memory-limit") if value == "none" => {
                    spec.memory_limit = Some(None);
                }
                (NodeRole::Worker, "--memory-limit") => {
                    let bytes = usize::try_from(number(value)?)
                        .map_err(|e| bad(format!("{flag} {value}: {e}")))?;
                    spec.memory_limit = Some(Some(bytes));
                }
                (NodeRole::Worker, "--allow-path") => spec.allowed_paths.push(value.into()),
                (NodeRole::Coordinator, "--progress-deadline-ms") => {
                    spec.progress_deadline = Some(Duration::from_millis(number(value)?));
                }
                (NodeRole::Coordinator, "--no-worker-wait-ms") => {
                    spec.no_worker_wait = Some(Duration::from_millis(number(value)?));
                }
                (_, "--cluster") => spec.cluster = value.clone(),
                (_, "--lease-ms") => spec.lease = Some(Duration::from_millis(number(value)?)),
                _ => return Err(bad(format!("unexpected {flag} {value}"))),
            }
        }
        if spec.endpoint.is_empty() {
            return Err(bad("no endpoint".into()));
        }
        Ok(spec)
    }

    /// The session settings of this node.
    fn config(&self) -> Result<ClusterConfig> {
        let mut config = ClusterConfig::new(self.endpoint.clone()).with_cluster(&self.cluster)?;
        config.lease = self.lease;
        match self.role {
            NodeRole::Coordinator => {
                config.connect = vec![];
                config.listen = Some(self.endpoint.clone());
            }
            NodeRole::Worker => config.listen = Some(WORKER_LISTEN.into()),
        }
        Ok(config)
    }

    /// Runs the node in this process until the returned future is dropped
    /// (it never completes otherwise); fails if the node cannot start.
    pub async fn run(&self) -> Result<()> {
        let config = self.config()?;
        match self.role {
            NodeRole::Coordinator => {
                let mut scheduler = SchedulerConfig::default();
                if let Some(deadline) = self.progress_deadline {
                    scheduler.progress_deadline = deadline;
                }
                if let Some(wait) = self.no_worker_wait {
                    scheduler.no_worker_wait = wait;
                }
                let _coordinator = Coordinator::start(CoordinatorConfig {
                    cluster: config.cluster.clone(),
                    zenoh: config.zenoh()?,
                    scheduler,
                })
                .await?;
                std::future::pending::<()>().await;
            }
            NodeRole::Worker => {
                let mut worker = WorkerConfig::new(config.cluster.clone(), config.zenoh()?);
                if let Some(slots) = self.slots {
                    worker.slots = slots;
                }
                if let Some(limit) = self.memory_limit {
                    worker.memory_limit = limit;
                }
                worker.allowed_paths = self.allowed_paths.clone();
                let _worker = Worker::start(worker).await?;
                std::future::pending::<()>().await;
            }
        }
        Ok(())
    }
}

/// Settings of a [`ProcessCluster`].
#[derive(Debug, Clone)]
pub struct ProcessClusterBuilder {
    program: PathBuf,
    workers: usize,
    slots: Option<u32>,
    lease: Option<Duration>,
    memory_limit: Option<Option<usize>>,
    allowed_paths: Vec<PathBuf>,
    progress_deadline: Option<Duration>,
    no_worker_wait: Option<Duration>,
    cluster: Option<String>,
    log_dir: Option<PathBuf>,
    env: Vec<(String, String)>,
    join_timeout: Duration,
}

impl ProcessClusterBuilder {
    /// Number of worker processes (default 2).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Slots of every worker (default: the program's).
    pub fn slots(mut self, n: u32) -> Self {
        self.slots = Some(n);
        self
    }

    /// The memory limit of every worker in bytes, `None` for no limit
    /// (default: the program's).
    pub fn worker_memory_limit(mut self, limit: Option<usize>) -> Self {
        self.memory_limit = Some(limit);
        self
    }

    /// Lets every worker read the files under `root` (`--allow-path`;
    /// repeatable). Without any, workers read no file: only generated and
    /// memory tables.
    pub fn allow_path(mut self, root: impl Into<PathBuf>) -> Self {
        self.allowed_paths.push(root.into());
        self
    }

    /// The coordinator's progress deadline (default: the program's).
    pub fn progress_deadline(mut self, deadline: Duration) -> Self {
        self.progress_deadline = Some(deadline);
        self
    }

    /// How long the coordinator lets a task wait while no worker is alive
    /// before its query fails (default: the program's).
    pub fn no_worker_wait(mut self, wait: Duration) -> Self {
        self.no_worker_wait = Some(wait);
        self
    }

    /// The zenoh lease of every node (default: zenoh's, 10 s).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// The cluster's name (default: one unique to this cluster).
    pub fn cluster(mut self, name: impl Into<String>) -> Self {
        self.cluster = Some(name.into());
        self
    }

    /// Keeps each node's standard error in a file of `dir` (default: it is
    /// discarded).
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// Sets an environment variable of every node.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// How long to wait for every worker to join (default 30 s).
    pub fn join_timeout(mut self, timeout: Duration) -> Self {
        self.join_timeout = timeout;
        self
    }

    /// Starts the coordinator and the workers, and waits until the
    /// coordinator counts every worker alive.
    pub async fn start(self) -> Result<ProcessCluster> {
        static CLUSTERS: AtomicU32 = AtomicU32::new(0);
        let name = self.cluster.clone().unwrap_or_else(|| {
            let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
            format!("pc{}-{n}", std::process::id())
        });
        let endpoint = loopback_endpoint()?;
        let spec = |role| NodeSpec {
            role,
            endpoint: endpoint.clone(),
            cluster: name.clone(),
            slots: self.slots,
            lease: self.lease,
            memory_limit: self.memory_limit.filter(|_| role == NodeRole::Worker),
            allowed_paths: match role {
                NodeRole::Worker => self.allowed_paths.clone(),
                NodeRole::Coordinator => vec![],
            },
            progress_deadline: self
                .progress_deadline
                .filter(|_| role == NodeRole::Coordinator),
            no_worker_wait: self
                .no_worker_wait
                .filter(|_| role == NodeRole::Coordinator),
        };
        let mut cluster = ProcessCluster {
            name: name.clone(),
            endpoint: endpoint.clone(),
            nodes: Vec::new(),
        };
        cluster
            .nodes
            .push(self.spawn(&spec(NodeRole::Coordinator), 0)?);
        for i in 0..self.workers {
            cluster
                .nodes
                .push(self.spawn(&spec(NodeRole::Worker), i + 1)?);
        }
        cluster
            .wait_for_workers(self.workers, self.join_timeout)
            .await?;
        Ok(cluster)
    }

    /// Starts the process of node `spec` (the `i`th of the cluster).
    fn spawn(&self, spec: &NodeSpec, i: usize) -> Result<NodeProcess> {
        let stderr = match &self.log_dir {
            Some(dir) => {
                let path = dir.join(format!("{}-{i}-{}.log", spec.cluster, spec.role.command()));
                let file = std::fs::File::create(&path).map_err(|e| {
                    ClusterError::Config(format!("cannot create {}: {e}", path.display()))
                })?;
                Stdio::from(file)
            }
            None => Stdio::null(),
        };
        let child = Command::new(&self.program)
            .args(spec.args())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| {
                ClusterError::Config(format!(
                    "cannot start a {} process ({}): {e}",
                    spec.role.command(),
                    self.program.display()
                ))
            })?;
        Ok(NodeProcess {
            role: spec.role,
            child,
        })
    }
}

/// A node's process, killed when dropped.
struct NodeProcess {
    role: NodeRole,
    child: Child,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // SIGKILL ends a stopped (SIGSTOP) process as well.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A coordinator and worker processes on loopback; dropping it kills them.
pub struct ProcessCluster {
    name: String,
    endpoint: String,
    /// The coordinator, then the workers.
    nodes: Vec<NodeProcess>,
}

impl ProcessCluster {
    /// A cluster whose nodes run `program` (see the module doc).
    pub fn builder(program: impl AsRef<Path>) -> ProcessClusterBuilder {
        ProcessClusterBuilder {
            program: program.as_ref().to_path_buf(),
            workers: 2,
            slots: None,
            lease: None,
            memory_limit: None,
            allowed_paths: vec![],
            progress_deadline: None,
            no_worker_wait: None,
            cluster: None,
            log_dir: None,
            env: Vec::new(),
            join_timeout: Duration::from_secs(30),
        }
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The coordinator's endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The config a client connects with.
    pub fn client_config(&self) -> Result<ClusterConfig> {
        ClusterConfig::new(self.endpoint.clone()).with_cluster(&self.name)
    }

    /// The process ids of the workers.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter(|node| node.role == NodeRole::Worker)
            .map(|node| node.child.id())
            .collect()
    }

    /// Fails if a node's process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            if let Ok(Some(status)) = node.child.try_wait() {
                return Err(ClusterError::Config(format!(
                    "the {} process {} exited ({status})",
                    node.role.command(),
                    node.child.id()
                )));
            }
        }
        Ok(())
    }

    /// Waits until the coordinator counts `n` workers alive.
    async fn wait_for_workers(&mut self, n: usize, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let mut config = self.client_config()?;
        config.connect_timeout = timeout;
        let client = ClusterClient::connect(&config).await?;
        loop {
            self.check_running()?;
            let alive = match client.status().await {
                Ok(status) => status.workers.iter().filter(|w| w.alive).count(),
                Err(_) => 0,
            };
            if alive >= n {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(ClusterError::Config(format!(
                    "only {alive} of {n} workers joined the coordinator at {} within {timeout:?}",
                    self.endpoint
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_command_lines_parse_back() {
        let worker = NodeSpec {
            role: NodeRole::Worker,
            endpoint: "tcp/127.0.0.1:7000".into(),
            cluster: "c1".into(),
            slots: Some(3),
            lease: Some(Duration::from_millis(1500)),
            memory_limit: Some(Some(1 << 30)),
            allowed_paths: vec!["/data/a".into(), "/data/b c".into()],
            progress_deadline: None,
            no_worker_wait: None,
        };
        let unlimited = NodeSpec {
            memory_limit: Some(None),
            ..worker.clone()
        };
        let coordinator = NodeSpec {
            role: NodeRole::Coordinator,
            slots: None,
            lease: None,
            memory_limit: None,
            allowed_paths: vec![],
            progress_deadline: Some(Duration::from_millis(2500)),
            no_worker_wait: Some(Duration::ZERO),
            ..worker.clone()
        };
        for spec in [worker, unlimited, coordinator] {
            let parsed = NodeSpec::parse(&spec.args()).unwrap().unwrap();
            assert_eq!(parsed, spec);
        }
        assert!(NodeSpec::parse(&["sql".to_string()]).is_none());
        let bad = ["worker", "--slots", "x", "--connect", "tcp/h:1"].map(String::from);
        assert!(NodeSpec::parse(&bad).unwrap().is_err());
        let missing = ["coordinator", "--cluster", "c"].map(String::from);
        assert!(NodeSpec::parse(&missing).unwrap().is_err());
    }
}
