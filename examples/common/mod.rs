//! Shared by the `join`, `aggregate` and `topk` examples: flags, running a
//! query embedded and on a cluster, and a cluster of worker processes
//! started by the example itself.
//!
//! `--distributed N` runs the coordinator in the example's process and
//! starts N worker processes by re-executing the example's binary with the
//! hidden flag `--worker-of ENDPOINT`. The workers are killed when the
//! example exits (also on errors), and exit by themselves when their
//! standard input closes, so that none outlives a killed example.

use std::io::Read;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use clap::{CommandFactory, FromArgMatches, Parser};
use ffq::cluster::{Coordinator, CoordinatorConfig, Worker, WorkerConfig};
use ffq::{ClusterConfig, Engine, EngineConfig, Error, Result};

/// How long to wait for the worker processes to join the coordinator.
const WORKERS_TIMEOUT: Duration = Duration::from_secs(30);

/// The flags of every example.
#[derive(Parser, Debug)]
pub struct Args {
    /// TPC-H scale factor of the tables, generated in-process.
    #[arg(
        long,
        value_name = "SF",
        default_value_t = 0.1,
        allow_negative_numbers = true
    )]
    sf: f64,
    /// Partitions per operator [default: number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    partitions: Option<u32>,
    /// Also run the query on a local cluster: a coordinator in this process
    /// and N worker processes.
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..),
        conflicts_with = "connect"
    )]
    distributed: Option<u32>,
    /// Also run the query on the running cluster whose coordinator listens
    /// on ENDPOINT (e.g. tcp/HOST:7447).
    #[arg(long, value_name = "ENDPOINT")]
    connect: Option<String>,
    /// Name of the cluster (with --connect or --distributed).
    #[arg(long, value_name = "NAME", default_value = ffq::cluster::DEFAULT_CLUSTER)]
    cluster: String,
    /// Internal: run as a worker of the coordinator at ENDPOINT.
    #[arg(long, value_name = "ENDPOINT", hide = true)]
    worker_of: Option<String>,
}

/// Parses the flags and runs `sql`; `about` is the example's `--help` text.
pub fn main(about: &'static str, sql: &str) -> ExitCode {
    let matches = Args::command().about(about).get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    init_logging();
    let result = tokio::runtime::Runtime::new()
        .map_err(|e| Error::InvalidArgument(format!("cannot start the tokio runtime: {e}")))
        .and_then(|rt| {
            rt.block_on(async {
                match &args.worker_of {
                    Some(endpoint) => run_worker(endpoint, &args.cluster).await,
                    None => run(&args, sql).await,
                }
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Warnings only, unless `RUST_LOG` says otherwise.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,zenoh=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs `sql` embedded, then on the cluster if asked, and compares.
async fn run(args: &Args, sql: &str) -> Result<()> {
    let mut config = EngineConfig::default();
    if let Some(p) = args.partitions {
        config.target_partitions = p as usize;
    }
    println!(
        "TPC-H SF {}, {} partitions\n",
        args.sf, config.target_partitions
    );

    let embedded = Engine::with_config(config.clone());
    embedded.register_tpch(args.sf)?;
    let expected = run_query(&embedded, sql, "embedded").await?;

    // Declared before the cluster handles, so dropped after them: the
    // worker processes are killed last, on every path out of here.
    let mut workers = WorkerProcesses::default();
    let (endpoint, label, coordinator) = if let Some(n) = args.distributed {
        let n = n as usize;
        let (endpoint, coordinator) = start_local_cluster(n, &args.cluster, &mut workers).await?;
        let label = format!("distributed, {n} worker processes");
        (endpoint, label, Some(coordinator))
    } else if let Some(endpoint) = &args.connect {
        let label = format!("cluster at {endpoint}");
        (endpoint.clone(), label, None)
    } else {
        return Ok(());
    };
    let client = Engine::connect_with_config(
        ClusterConfig::new(endpoint).with_cluster(&args.cluster)?,
        config,
    )
    .await?;
    client.register_tpch(args.sf)?;
    let actual = run_query(&client, sql, &label).await?;
    drop(client);
    if let Some(coordinator) = coordinator {
        shut_down(coordinator).await;
    }
    if actual != expected {
        println!("same rows as embedded: no");
        return Err(Error::Cluster(
            "the cluster's rows differ from the embedded engine's".into(),
        ));
    }
    println!("same rows as embedded: yes");
    Ok(())
}

/// Runs `sql` on `engine`, prints its rows and the time it took; returns
/// the rows as printed.
async fn run_query(engine: &Engine, sql: &str, label: &str) -> Result<String> {
    let start = Instant::now();
    let batches: Vec<RecordBatch> = engine.sql(sql).await?.collect().await?;
    let elapsed = start.elapsed();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let text = pretty_format_batches(&batches)?.to_string();
    println!(
        "{label}: {rows} rows in {:.1} ms\n{text}\n",
        elapsed.as_secs_f64() * 1000.0
    );
    Ok(text)
}

/// Starts a coordinator on a free loopback port and `n` worker processes
/// (recorded in `workers`), and waits until the coordinator sees them all;
/// returns the coordinator's endpoint.
async fn start_local_cluster(
    n: usize,
    name: &str,
    workers: &mut WorkerProcesses,
) -> Result<(String, Coordinator)> {
    let endpoint = format!("tcp/127.0.0.1:{}", free_port()?);
    let base = ClusterConfig::new(endpoint.clone()).with_cluster(name)?;
    let coordinator = Coordinator::start(CoordinatorConfig {
        cluster: base.cluster.clone(),
        zenoh: ClusterConfig {
            connect: vec![],
            listen: Some(endpoint.clone()),
            ..base
        }
        .zenoh()?,
        scheduler: Default::default(),
    })
    .await?;

    let exe = std::env::current_exe()
        .map_err(|e| Error::Cluster(format!("cannot find this example's binary: {e}")))?;
    for _ in 0..n {
        let child = Command::new(&exe)
            .args(["--worker-of", &endpoint, "--cluster", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::Cluster(format!(
                    "cannot start a worker process ({}): {e}",
                    exe.display()
                ))
            })?;
        workers.children.push(child);
    }

    let start = Instant::now();
    loop {
        let alive = coordinator
            .status()
            .workers
            .iter()
            .filter(|w| w.alive)
            .count();
        if alive >= n {
            break;
        }
        workers.check_running()?;
        if start.elapsed() > WORKERS_TIMEOUT {
            return Err(Error::Cluster(format!(
                "only {alive} of {n} workers joined the coordinator at {endpoint} \
                 within {WORKERS_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "started a coordinator on {endpoint} and {n} worker processes in {:.1} ms\n",
        start.elapsed().as_secs_f64() * 1000.0
    );
    Ok((endpoint, coordinator))
}

/// Stops the coordinator once it has told the workers to drop the query
/// (closing its session while those messages are in flight makes the
/// workers' zenoh log errors).
async fn shut_down(coordinator: Coordinator) {
    let start = Instant::now();
    while !coordinator.status().queries.is_empty() && start.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    coordinator.shutdown().await;
}

/// The worker processes of `--distributed`; dropping kills and reaps them.
#[derive(Default)]
struct WorkerProcesses {
    children: Vec<Child>,
}

impl WorkerProcesses {
    /// Fails if a worker process has exited.
    fn check_running(&mut self) -> Result<()> {
        for child in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::Cluster(format!(
                    "worker process {} exited early ({status})",
                    child.id()
                )));
            }
        }
        Ok(())
    }
}

impl Drop for WorkerProcesses {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
    }
}

/// Worker mode (`--worker-of ENDPOINT`): runs until killed, or until its
/// standard input (a pipe from the example that started it) closes.
async fn run_worker(endpoint: &str, name: &str) -> Result<()> {
    let base = ClusterConfig::new(endpoint).with_cluster(name)?;
    let config = WorkerConfig::new(
        base.cluster.clone(),
        ClusterConfig {
            listen: Some("tcp/127.0.0.1:0".into()),
            ..base
        }
        .zenoh()?,
    );
    let _worker = Worker::start(config).await?;
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    std::future::pending::<()>().await;
    Ok(())
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Cluster(format!("no free loopback port: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Cluster(format!("no free loopback port: {e}")))?;
    Ok(addr.port())
}
