//! Shared by the `join`, `aggregate` and `topk` examples: flags, running a
//! query embedded and on a cluster, and a cluster of worker processes
//! started by the example itself.
//!
//! `--distributed N` starts a [`ProcessCluster`] of the example's own
//! binary: a coordinator and N worker processes, which are the example
//! re-executed with the command line of `ffq coordinator` / `ffq worker`
//! (the `ffq` binary itself may not be built). The processes are killed
//! when the example exits (also on errors), and exit by themselves when
//! their standard input closes, so that none outlives a killed example.

use std::io::Read;
use std::process::ExitCode;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use clap::{CommandFactory, FromArgMatches, Parser};
use ffq::cluster::process::{NodeSpec, ProcessCluster};
use ffq::{ClusterConfig, Engine, EngineConfig, Error, Result};

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
}

/// Parses the flags and runs `sql`; `about` is the example's `--help` text.
pub fn main(about: &'static str, sql: &str) -> ExitCode {
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Some(node) = NodeSpec::parse(&argv) {
        init_logging();
        return exit_code(node.map_err(Error::from).and_then(|node| {
            block_on(async {
                exit_when_stdin_closes();
                Ok(node.run().await?)
            })
        }));
    }
    let matches = Args::command().about(about).get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    init_logging();
    exit_code(block_on(run(&args, sql)))
}

fn block_on(f: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::runtime::Runtime::new()
        .map_err(|e| Error::InvalidArgument(format!("cannot start the tokio runtime: {e}")))?
        .block_on(f)
}

fn exit_code(result: Result<()>) -> ExitCode {
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
    let mut engine_config = EngineConfig::default();
    if let Some(p) = args.partitions {
        engine_config.target_partitions = p as usize;
    }
    println!(
        "TPC-H SF {}, {} partitions\n",
        args.sf, engine_config.target_partitions
    );

    let embedded = Engine::with_config(engine_config.clone());
    embedded.register_tpch(args.sf)?;
    let expected = run_query(&embedded, sql, "embedded").await?;

    // Declared before the client, so dropped (its processes killed) after
    // it, on every path out of here.
    let mut processes = None;
    let (config, label) = if let Some(n) = args.distributed {
        let n = n as usize;
        let exe = std::env::current_exe()
            .map_err(|e| Error::Cluster(format!("cannot find this example's binary: {e}")))?;
        let start = Instant::now();
        let cluster = ProcessCluster::builder(exe)
            .workers(n)
            .cluster(&args.cluster)
            .start()
            .await?;
        println!(
            "started a coordinator on {} and {n} worker processes in {:.1} ms\n",
            cluster.endpoint(),
            start.elapsed().as_secs_f64() * 1000.0
        );
        let config = cluster.client_config()?;
        processes = Some(cluster);
        (config, format!("distributed, {n} worker processes"))
    } else if let Some(endpoint) = &args.connect {
        let config = ClusterConfig::new(endpoint.clone()).with_cluster(&args.cluster)?;
        (config, format!("cluster at {endpoint}"))
    } else {
        return Ok(());
    };
    let client = Engine::connect_with_config(config, engine_config).await?;
    client.register_tpch(args.sf)?;
    let actual = run_query(&client, sql, &label).await?;
    drop(client);
    drop(processes);
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

/// Ends this process (a node started by `--distributed`) when its
/// standard input, a pipe from the example that started it, closes.
fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
}
