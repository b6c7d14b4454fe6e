//! `ffq sql`: run SQL statements and print their results.

use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::Instant;

use clap::{Args, ValueEnum};
use ffq::format::{io_error, OutputFormat, ResultWriter};
use ffq::{CsvOptions, Engine, EngineConfig};
use futures::StreamExt;

use super::CliError;

#[derive(Debug, Args)]
pub struct SqlArgs {
    #[command(flatten)]
    engine: EngineArgs,

    /// Print the plans of the statements instead of running them.
    #[arg(long)]
    explain: bool,

    /// How `--explain` prints: the plans as text, or the stage DAG as a
    /// Graphviz `dot` graph or a Mermaid flowchart (implies `--explain`).
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "dot", "mermaid"])]
    explain_format: Option<String>,

    /// SQL text (one or more `;`-separated statements), `-` to read
    /// standard input, or `@FILE` to read a file.
    #[arg(value_name = "QUERY", allow_hyphen_values = true)]
    query: String,
}

/// The engine, its tables and the output format: the options shared by
/// `ffq sql` and the REPL.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Register the eight TPC-H tables, generated in-process at scale
    /// factor SF.
    #[arg(long, value_name = "SF")]
    tpch: Option<f64>,

    /// Register table NAME: a .csv file, a .json file (one JSON object per
    /// line), a Parquet file, or a directory of .parquet files (or of .csv
    /// or .json files); or the same on object storage
    /// (s3://bucket/prefix/, gs://, az://, http(s)://). Repeatable.
    #[arg(long = "table", value_name = "NAME=PATH|URL", value_parser = parse_table)]
    tables: Vec<(String, String)>,

    /// Object-store options (`key=value` lines: credentials, endpoint,
    /// region, allow_http, timeouts), over the standard environment
    /// variables (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...).
    #[arg(long, value_name = "FILE")]
    object_store_config: Option<std::path::PathBuf>,

    /// Output format: an aligned table, CSV with a header, or JSON lines.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,

    /// Partitions per operator [default: the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=65536))]
    partitions: Option<u64>,

    /// Target rows per batch [default: 8192].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    batch_size: Option<u64>,

    /// Memory that operator state of the queries run in this process may
    /// hold (e.g. 512MiB, 2GiB, 1G, or bytes; `none` for no limit).
    /// Operators reaching it spill to --spill-dir; state that cannot spill
    /// fails the query with a `resources exhausted` error [default: three
    /// quarters of the machine's memory].
    #[arg(long, value_name = "SIZE", value_parser = super::size::parse_memory_limit)]
    memory_limit: Option<super::size::MemoryLimit>,

    /// Where queries spill operator state to disk when the memory limit is
    /// reached (a directory per query, removed when it ends) [default: the
    /// system temp dir].
    #[arg(long, value_name = "DIR")]
    spill_dir: Option<std::path::PathBuf>,

    /// Run on the cluster whose coordinator listens on ENDPOINT (e.g.
    /// `tcp/127.0.0.1:7447`) instead of in this process.
    #[arg(long, value_name = "ENDPOINT")]
    connect: Option<String>,

    #[command(flatten)]
    zenoh: super::cluster::ZenohArgs,
}

impl EngineArgs {
    /// The format results are printed in.
    pub fn output_format(&self) -> OutputFormat {
        OutputFormat::from(self.format)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

impl From<Format> for OutputFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Table => OutputFormat::Table,
            Format::Csv => OutputFormat::Csv,
            Format::Json => OutputFormat::Json,
        }
    }
}

fn parse_table(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, path)) if !name.trim().is_empty() && !path.is_empty() => {
            Ok((name.trim().to_string(), path.to_string()))
        }
        _ => Err(format!("expected NAME=PATH, got {s:?}")),
    }
}

pub fn run(args: SqlArgs) -> Result<(), CliError> {
    let text = read_query(&args.query)?;
    if text.trim().is_empty() {
        return Err(CliError::msg("empty query"));
    }

    let (runtime, engine) = build_engine(&args.engine)?;

    let statements = Engine::split_sql(&text)?;
    if statements.is_empty() {
        return Err(CliError::msg("empty query: no SQL statement found"));
    }

    let format = args.engine.output_format();
    let explain = match args.explain_format.as_deref() {
        Some("dot") => Explain::Dag(ffq::stages::DagFormat::Dot),
        Some("mermaid") => Explain::Dag(ffq::stages::DagFormat::Mermaid),
        Some(_) => Explain::Text,
        None if args.explain => Explain::Text,
        None => Explain::No,
    };
    runtime.block_on(run_statements(&engine, &statements, format, explain))
}

/// A runtime and an engine set up as `args` say (in this process, or a
/// client of the cluster of `--connect`), with the tables registered.
pub fn build_engine(args: &EngineArgs) -> Result<(tokio::runtime::Runtime, Engine), CliError> {
    let mut config = EngineConfig::default();
    if let Some(n) = args.partitions {
        config.target_partitions = n as usize;
    }
    if let Some(n) = args.batch_size {
        config.batch_size = n as usize;
    }
    if let Some(limit) = args.memory_limit {
        config.memory_limit = limit.0;
    }
    config.spill_dir = args.spill_dir.clone();
    if let Some(file) = &args.object_store_config {
        super::storage::apply_config_file(file)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::msg(format!("cannot start the runtime: {e}")))?;
    let engine = match &args.connect {
        Some(endpoint) => {
            let cluster = args.zenoh.config(vec![endpoint.clone()], None)?;
            runtime.block_on(Engine::connect_with_config(cluster, config))?
        }
        None => Engine::with_config(config),
    };
    if let Some(sf) = args.tpch {
        engine.register_tpch(sf)?;
    }
    for (name, path) in &args.tables {
        register_table(&engine, name, path)?;
    }
    Ok((runtime, engine))
}

/// The SQL text of QUERY: itself, standard input (`-`) or a file (`@FILE`).
fn read_query(query: &str) -> Result<String, CliError> {
    if query == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| {
            CliError::msg(format!("cannot read the query from standard input: {e}"))
        })?;
        return Ok(text);
    }
    if let Some(path) = query.strip_prefix('@') {
        if path.is_empty() {
            return Err(CliError::msg("expected a file name after '@'"));
        }
        return std::fs::read_to_string(path).map_err(|e| {
            let reason = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            };
            CliError::msg(format!("cannot read query file {path}: {reason}"))
        });
    }
    Ok(query.to_string())
}

/// Registers `path` as table `name`: CSV for a `.csv` file or a directory
/// (or object-store prefix) holding `.csv` but no `.parquet` files, JSON
/// (newline-delimited) for a `.json` file or a directory holding `.json`
/// but neither `.parquet` nor `.csv` files, Parquet otherwise.
fn register_table(engine: &Engine, name: &str, path: &str) -> Result<(), CliError> {
    let p = Path::new(path.strip_prefix("file://").unwrap_or(path));
    let csv = if ffq::storage::is_url(path) {
        if has_extension(p, "csv") || has_extension(p, "parquet") {
            has_extension(p, "csv")
        } else {
            !ffq::storage::prefix_has(path, "parquet") && ffq::storage::prefix_has(path, "csv")
        }
    } else if p.is_dir() {
        !dir_has(p, "parquet") && dir_has(p, "csv")
    } else {
        has_extension(p, "csv")
    };
    let json = if ffq::storage::is_url(path) {
        has_extension(p, "json")
            || (!has_extension(p, "parquet")
                && !csv
                && !ffq::storage::prefix_has(path, "parquet")
                && ffq::storage::prefix_has(path, "json"))
    } else if p.is_dir() {
        !dir_has(p, "parquet") && !csv && dir_has(p, "json")
    } else {
        has_extension(p, "json")
    };
    let r = if json {
        engine.register_json(name, path)
    } else if csv {
        engine.register_csv(name, path, CsvOptions::default())
    } else {
        engine.register_parquet(name, path)
    };
    r.map_err(|e| CliError::msg(format!("table {name}: {e}")))
}

fn has_extension(p: &Path, ext: &str) -> bool {
    p.extension()
        .is_some_and(|e| e.to_string_lossy().eq_ignore_ascii_case(ext))
}

/// Whether directory `dir` has a visible file with extension `ext`.
fn dir_has(dir: &Path, ext: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().to_string();
        !name.starts_with('.') && !name.starts_with('_') && has_extension(&e.path(), ext)
    })
}

async fn run_statements(
    engine: &Engine,
    statements: &[String],
    format: OutputFormat,
    explain: Explain,
) -> Result<(), CliError> {
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout());
    let mut printed = false;
    for statement in statements {
        let start = Instant::now();
        match run_statement(engine, statement, format, explain, &mut out, printed).await? {
            Printed::Nothing => {}
            Printed::Plans => printed = true,
            Printed::Rows(rows) => {
                printed = true;
                if format == OutputFormat::Table {
                    eprintln!("{}", elapsed_line(Some(rows), start));
                }
            }
        }
    }
    out.flush().map_err(io_error)?;
    Ok(())
}

/// What [`run_statement`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printed {
    /// Nothing: the statement has no result columns (e.g. DDL).
    Nothing,
    /// The plans (`explain`).
    Plans,
    /// A result of this many rows.
    Rows(usize),
}

/// Runs one SQL statement and writes its result in `format` to `out` (or,
/// with `explain`, its plans instead of running it), then flushes `out`.
/// `separate`: a result was printed before, so a blank line goes first
/// (except between JSON lines).
pub async fn run_statement<W: Write>(
    engine: &Engine,
    statement: &str,
    format: OutputFormat,
    explain: Explain,
    out: &mut W,
    separate: bool,
) -> Result<Printed, CliError> {
    let df = engine.sql(statement).await?;
    if explain != Explain::No {
        if separate {
            writeln!(out).map_err(io_error)?;
        }
        let text = match (explain, df.physical_plan()) {
            (Explain::Dag(f), Some(plan)) => engine.draw_stages(plan, f),
            _ => df.explain(),
        };
        write!(out, "{text}").map_err(io_error)?;
        if !text.ends_with('\n') {
            writeln!(out).map_err(io_error)?;
        }
        out.flush().map_err(io_error)?;
        return Ok(Printed::Plans);
    }
    let schema = df.schema();
    let (mut stream, progress) = df.execute_with_progress()?;
    let mut bar = super::progress_bar::ProgressBar::start(progress);
    if schema.fields().is_empty() {
        while let Some(batch) = stream.next().await {
            batch.map_err(ffq::Error::from)?;
        }
        return Ok(Printed::Nothing);
    }
    if separate && format != OutputFormat::Json {
        writeln!(out).map_err(io_error)?;
    }
    let mut writer = ResultWriter::new(format, schema, &mut *out);
    while let Some(batch) = stream.next().await {
        // The progress line goes before any row prints.
        bar.take();
        let batch = batch.map_err(ffq::Error::from)?;
        writer.write(&batch)?;
        writer.flush()?;
    }
    let rows = writer.rows();
    writer.finish()?;
    out.flush().map_err(io_error)?;
    Ok(Printed::Rows(rows))
}

/// Whether and how statements are explained instead of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Explain {
    No,
    /// Logical plan, physical plan, stages.
    Text,
    /// The stage DAG drawn in a format.
    Dag(ffq::stages::DagFormat),
}

/// `N rows in 0.123s` (with `rows`) or `OK in 0.123s`: the time since
/// `start`.
pub fn elapsed_line(rows: Option<usize>, start: Instant) -> String {
    let secs = start.elapsed().as_secs_f64();
    match rows {
        Some(rows) => {
            let s = if rows == 1 { "" } else { "s" };
            format!("{rows} row{s} in {secs:.3}s")
        }
        None => format!("OK in {secs:.3}s"),
    }
}
