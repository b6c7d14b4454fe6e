//! `ffq coordinator`, `ffq worker` and `ffq status`: the processes of a
//! cluster, and a look at one.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ffq::cluster::{
    ClusterClient, ClusterConfig, Coordinator, CoordinatorConfig, Credentials, SchedulerConfig,
    Security, TlsFiles, Worker, WorkerConfig,
};

use super::CliError;

/// How a process joins a cluster (shared by every cluster command).
#[derive(Debug, Clone, Args)]
pub struct ZenohArgs {
    /// Name of the cluster: processes of different clusters ignore each
    /// other on the same zenoh network.
    #[arg(long, value_name = "NAME", default_value = ffq::cluster::DEFAULT_CLUSTER)]
    pub cluster: String,

    /// A zenoh json5 configuration file (endpoints given as flags are added
    /// to it).
    #[arg(long, value_name = "FILE")]
    pub zenoh_config: Option<PathBuf>,

    /// Milliseconds without news from this process after which its peers
    /// consider it gone (zenoh's lease) [default: zenoh's, 10000].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub lease_ms: Option<u64>,

    #[command(flatten)]
    pub security: SecurityArgs,
}

/// How a process proves who it is, and checks its peers (see
/// `ffq::cluster::security`). Every process of a secured cluster needs the
/// same CA and `--member` list.
#[derive(Debug, Clone, Args)]
pub struct SecurityArgs {
    /// PEM certificate of the CA that signed every member's certificate.
    /// With --tls-cert and --tls-key it turns on mutual TLS (every endpoint
    /// must then be quic/HOST:PORT, preferred, or tls/HOST:PORT) and access
    /// control by role: only members may touch the cluster, each role only
    /// its part of the protocol.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"], help_heading = "Security")]
    pub tls_ca: Option<PathBuf>,

    /// PEM certificate of this process (to listen and to connect), signed
    /// by --tls-ca; its common name is the process's identity.
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_key"], help_heading = "Security")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_cert"], help_heading = "Security")]
    pub tls_key: Option<PathBuf>,

    /// A certificate common name and its role, as ROLE=NAME (role:
    /// coordinator, worker or client); repeatable. A role no --member names
    /// is held by the name ffq-ROLE (ffq-coordinator, ffq-worker,
    /// ffq-client).
    #[arg(long = "member", value_name = "ROLE=NAME", help_heading = "Security")]
    pub members: Vec<String>,

    /// A file whose first line is USER:PASSWORD: the login this process
    /// presents to the listeners it connects to (zenoh user-password
    /// authentication; the password is never taken on the command line).
    #[arg(long, value_name = "FILE", help_heading = "Security")]
    pub credentials: Option<PathBuf>,

    /// A file of USER:PASSWORD lines: the logins this process's listener
    /// accepts (coordinators and workers need it with --credentials).
    #[arg(long, value_name = "FILE", help_heading = "Security")]
    pub users: Option<PathBuf>,
}

impl SecurityArgs {
    pub fn security(&self) -> Result<Security, CliError> {
        let mut security = Security::default();
        if let (Some(ca), Some(cert), Some(key)) = (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            security.tls = Some(TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        for spec in &self.members {
            security
                .members
                .add_spec(spec)
                .map_err(|e| CliError::msg(format!("--member: {e}")))?;
        }
        if let Some(path) = &self.credentials {
            security.credentials = Some(
                Credentials::from_file(path)
                    .map_err(|e| CliError::msg(format!("--credentials: {e}")))?,
            );
        }
        security.accepted_users = self.users.clone();
        Ok(security)
    }
}

impl ZenohArgs {
    pub fn config(
        &self,
        connect: Vec<String>,
        listen: Option<String>,
    ) -> Result<ClusterConfig, CliError> {
        let mut config = ClusterConfig::new("tcp/127.0.0.1:7447")
            .with_cluster(&self.cluster)
            .map_err(|e| CliError::msg(format!("--cluster: {e}")))?;
        config.connect = connect;
        config.listen = listen;
        config.zenoh_config = self.zenoh_config.clone();
        config.lease = self.lease_ms.map(Duration::from_millis);
        config.security = self.security.security()?;
        Ok(config)
    }
}

#[derive(Debug, Args)]
pub struct CoordinatorArgs {
    /// Zenoh endpoint to listen on; workers and clients connect to it.
    #[arg(long, value_name = "ENDPOINT", default_value = "tcp/0.0.0.0:7447")]
    listen: String,

    /// Failed attempts of a task before its query fails.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
    max_attempts: u32,

    /// Milliseconds a running task attempt may go without progress before
    /// it is requeued on another worker and its worker is suspected
    /// (given no task while another can take it, for a minute or until it
    /// shows life). Workers report progress four times per deadline.
    #[arg(long, value_name = "MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    progress_deadline_ms: u64,

    /// Milliseconds a task waits while no worker is alive before its query
    /// fails ("no live worker for stage S task T").
    #[arg(long, value_name = "MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    no_worker_wait_ms: u64,

    #[command(flatten)]
    zenoh: ZenohArgs,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The coordinator's zenoh endpoint. Repeatable.
    #[arg(long, value_name = "ENDPOINT", default_value = "tcp/127.0.0.1:7447")]
    connect: Vec<String>,

    /// Zenoh endpoint this worker listens on: other workers and clients
    /// read its outputs through it (port 0: any free port).
    #[arg(long, value_name = "ENDPOINT", default_value = "tcp/0.0.0.0:0")]
    listen: String,

    /// Task attempts run at once [default: the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    slots: Option<u32>,

    /// Memory that operator state of this worker's running tasks and its
    /// held task outputs may use (e.g. 512MiB, 2GiB, 1G, or bytes; `none`
    /// for no limit). Operators reaching it spill to --spill-dir; state
    /// that cannot spill fails the task with a `resources exhausted` error
    /// [default: three quarters of the machine's memory].
    #[arg(long, value_name = "SIZE", value_parser = super::size::parse_memory_limit)]
    memory_limit: Option<super::size::MemoryLimit>,

    /// Where tasks spill operator state, and the output store spills task
    /// outputs beyond its budget [default: the system temp dir].
    #[arg(long, value_name = "DIR")]
    spill_dir: Option<std::path::PathBuf>,

    /// A directory whose files (Parquet, CSV) tasks may read, whatever a
    /// client's plan names, or an object-store URL prefix whose objects
    /// they may read (s3://bucket/prefix); repeatable. Without any, the
    /// worker reads no file (only TPC-H and memory tables): a plan scanning
    /// a file outside these fails with a "not allowed" error.
    #[arg(long = "allow-path", value_name = "DIR|URL")]
    allow_path: Vec<std::path::PathBuf>,

    /// Object-store options of this worker (`key=value` lines), over the
    /// standard environment variables: the worker reads object-store
    /// tables with its own credentials.
    #[arg(long, value_name = "FILE")]
    object_store_config: Option<std::path::PathBuf>,

    /// The worker's id [default: generated].
    #[arg(long, value_name = "ID")]
    id: Option<String>,

    #[command(flatten)]
    zenoh: ZenohArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The coordinator's zenoh endpoint.
    #[arg(long, value_name = "ENDPOINT", default_value = "tcp/127.0.0.1:7447")]
    connect: Vec<String>,

    #[command(flatten)]
    zenoh: ZenohArgs,
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::msg(format!("cannot start the runtime: {e}")))
}

fn cluster_error(e: ffq::cluster::ClusterError) -> CliError {
    CliError::Engine(ffq::Error::from(e))
}

pub fn run_coordinator(args: CoordinatorArgs) -> Result<(), CliError> {
    let config = args.zenoh.config(vec![], Some(args.listen.clone()))?;
    runtime()?.block_on(async {
        let coordinator = Coordinator::start(CoordinatorConfig {
            cluster: config.cluster.clone(),
            zenoh: config.zenoh().map_err(cluster_error)?,
            scheduler: SchedulerConfig {
                max_attempts: args.max_attempts,
                progress_deadline: Duration::from_millis(args.progress_deadline_ms),
                no_worker_wait: Duration::from_millis(args.no_worker_wait_ms),
                ..SchedulerConfig::default()
            },
        })
        .await
        .map_err(cluster_error)?;
        eprintln!(
            "ffq coordinator of cluster {} listening on {}",
            config.cluster, args.listen
        );
        // Runs until the process is stopped.
        std::future::pending::<()>().await;
        drop(coordinator);
        Ok(())
    })
}

pub fn run_worker(args: WorkerArgs) -> Result<(), CliError> {
    if let Some(file) = &args.object_store_config {
        super::storage::apply_config_file(file)?;
    }
    let config = args
        .zenoh
        .config(args.connect.clone(), Some(args.listen.clone()))?;
    runtime()?.block_on(async {
        let mut worker = WorkerConfig::new(
            config.cluster.clone(),
            config.zenoh().map_err(cluster_error)?,
        );
        if let Some(id) = &args.id {
            worker.id = id
                .parse()
                .map_err(|e| CliError::msg(format!("--id: {e}")))?;
        }
        if let Some(slots) = args.slots {
            worker.slots = slots;
        }
        if let Some(limit) = args.memory_limit {
            worker.memory_limit = limit.0;
        }
        if let Some(dir) = &args.spill_dir {
            worker.spill_dir = dir.clone();
            worker.store.spill_dir = Some(dir.clone());
        }
        worker.allowed_paths = args.allow_path.clone();
        let (id, slots) = (worker.id.clone(), worker.slots);
        let worker = Worker::start(worker).await.map_err(cluster_error)?;
        eprintln!(
            "ffq worker {id} ({slots} slots) of cluster {} connecting to {}",
            config.cluster,
            args.connect.join(", ")
        );
        std::future::pending::<()>().await;
        drop(worker);
        Ok(())
    })
}

pub fn run_status(args: StatusArgs) -> Result<(), CliError> {
    let mut config = args.zenoh.config(args.connect.clone(), None)?;
    config.connect_timeout = Duration::from_secs(5);
    runtime()?.block_on(async {
        let client = ClusterClient::connect(&config)
            .await
            .map_err(cluster_error)?;
        let status = client.status().await.map_err(cluster_error)?;
        let states = client.worker_states().await.map_err(cluster_error)?;
        print!("{}", ffq::cluster::format_status(&status, &states));
        Ok(())
    })
}
