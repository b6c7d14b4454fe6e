//! Runs the sqllogictest files of tests/sql (or of `FFQ_SLT_DIR`) against
//! FFQ through `ffq::slt`, and (ignored) against DataFusion as an oracle.
//!
//! - `cargo test --test integration sqllogictest::`: every tests/sql/*.slt
//!   on FFQ; fails listing the failing files. Skipped files (records FFQ does not support)
//!   are printed with their reason. `FFQ_SLT_DIR=DIR` runs another directory
//!   (or file) instead; `FFQ_SLT_STRICT=1` counts skips as failures.
//! - `sqllogictest_on_a_cluster`: the files of [`CLUSTER_FILES`] again on
//!   an in-process cluster of 2 workers (memory tables are sent to the
//!   workers; aggregates, joins and exchanges run distributed).
//! - `cargo test --test integration sqllogictest::datafusion_oracle -- --ignored
//!   --nocapture`: runs the same files on DataFusion (the expected outputs
//!   were produced with it); records marked `skipif datafusion` are those
//!   where DataFusion's answer is not the SQL standard's. With
//!   `FFQ_SLT_COMPLETE=1` it rewrites the expected outputs of the files
//!   from DataFusion's results instead (review the diff!).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::prelude::{SessionConfig, SessionContext};
use ffq::slt::{
    batches_to_output, column_validator, run_file_logged, run_file_on, run_slt_path, slt_files,
    ColType, FfqDb, FileReport, FileStatus, PanicLog, SltError, SltOptions,
};
use ffq::{EngineConfig, LocalCluster};

use crate::common::connect_engine;
use sqllogictest::{AsyncDB, DBOutput, Runner};

/// Files of tests/sql that are known to fail now, with the reason. The test
/// fails when a file not listed fails, and when a listed file passes (so
/// that the list shrinks as features land).
const KNOWN_FAILURES: &[(&str, &str)] = &[
    (
        "integer_overflow.slt",
        "integer + - * wrap around instead of failing (DataFusion semantics)",
    ),
    (
        "join_using.slt",
        "the USING column of RIGHT/FULL joins is the left column, not \
         COALESCE(left, right) (DataFusion's planner)",
    ),
];

/// Files of tests/sql that also run on a 2-worker cluster: the promise is
/// the same rows embedded and distributed, and these cover hash keys,
/// partial/final aggregates and exchanges.
const CLUSTER_FILES: &[&str] = &[
    "correlated_scalar_subqueries.slt",
    "distinct_aggregates_mixed.slt",
    "field_access.slt",
    "ignore_nulls.slt",
    "float_zero_nan_keys.slt",
    "mark_joins.slt",
    "min_max_nan.slt",
    "ordered_aggregates.slt",
    "recursive_cte.slt",
    "repeated_names.slt",
    "schemas.slt",
    "similar_to.slt",
    "subqueries_select_list.slt",
    "unnest.slt",
];

fn slt_dir() -> (PathBuf, bool) {
    match std::env::var_os("FFQ_SLT_DIR") {
        Some(dir) => (PathBuf::from(dir), false),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql"),
            true,
        ),
    }
}

fn file_name(report: &FileReport) -> String {
    report
        .path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest() {
    let (dir, own_files) = slt_dir();
    let options = SltOptions {
        strict: std::env::var("FFQ_SLT_STRICT").is_ok_and(|v| v == "1"),
        timeout: Duration::from_secs(120),
        engine: EngineConfig {
            target_partitions: 3,
            batch_size: 8192,
            memory_limit: None,
            spill_dir: None,
        },
    };
    let report = run_slt_path(&dir, &options)
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", dir.display()));

    let known = |name: &str| {
        own_files
            .then(|| KNOWN_FAILURES.iter().find(|(f, _)| *f == name))
            .flatten()
    };
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    for file in &report.files {
        println!("{}", file.summary_line());
        let name = file_name(file);
        match (file.status, known(&name)) {
            (FileStatus::Failed, Some((_, why))) => {
                println!("    (known failure: {why})");
            }
            (FileStatus::Failed, None) => {
                for failure in &file.failures {
                    println!("{}", indent(failure));
                }
                unexpected.push(name);
            }
            (_, Some(_)) => fixed.push(name),
            (FileStatus::Skipped, None) => {
                for skip in &file.skips {
                    println!("    skipped: {skip}");
                }
            }
            (FileStatus::Passed, None) => {}
        }
    }
    println!("{}", report.closing_line());
    assert!(
        unexpected.is_empty(),
        "sqllogictest files failed: {}",
        unexpected.join(", ")
    );
    assert!(
        fixed.is_empty(),
        "listed in KNOWN_FAILURES but did not fail (remove them from the list): {}",
        fixed.join(", ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqllogictest_on_a_cluster() {
    let cluster = LocalCluster::start(2)
        .await
        .unwrap_or_else(|e| panic!("cluster: {e}"));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut failed = Vec::new();
    for name in CLUSTER_FILES {
        // A fresh engine per file, as embedded: the files' tables differ.
        let engine = connect_engine(cluster.client_config(), 3, 8192).await;
        let panics = PanicLog::default();
        let log = Arc::clone(&panics);
        let make = move || {
            let db =
                FfqDb::with_panic_log(engine.clone(), Duration::from_secs(120), Arc::clone(&log));
            async move { Ok::<_, SltError>(db) }
        };
        let report = run_file_logged(&dir.join(name), make, true, panics).await;
        println!("cluster: {}", report.summary_line());
        if report.status != FileStatus::Passed {
            for failure in &report.failures {
                println!("{}", indent(failure));
            }
            failed.push(*name);
        }
    }
    cluster.shutdown().await;
    assert!(
        failed.is_empty(),
        "sqllogictest files failed on a cluster: {}",
        failed.join(", ")
    );
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------
// DataFusion as the oracle
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct DfError(String);

impl std::fmt::Display for DfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DfError {}

struct DataFusionDb {
    ctx: SessionContext,
}

#[async_trait::async_trait]
impl AsyncDB for DataFusionDb {
    type Error = DfError;
    type ColumnType = ColType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<ColType>, DfError> {
        let err = |e: &dyn std::fmt::Display| DfError(e.to_string());
        let df = self.ctx.sql(sql).await.map_err(|e| err(&e))?;
        let logical = df.schema().as_arrow().clone();
        let batches = df.collect().await.map_err(|e| err(&e))?;
        // The types of the data: DataFusion's unoptimized logical schema can
        // differ (a UNION of INT and DOUBLE says Int64 there).
        let schema = match batches.first() {
            Some(b) if !logical.fields().is_empty() => b.schema().as_ref().clone(),
            _ => logical,
        };
        batches_to_output(&schema, &batches).map_err(|e| err(&e))
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "datafusion"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

fn datafusion_session() -> SessionContext {
    SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "oracle check of the expected outputs; run by hand"]
async fn datafusion_oracle() {
    let (dir, _) = slt_dir();
    let files = slt_files(&dir).unwrap_or_else(|e| panic!("{e}"));
    let complete = std::env::var("FFQ_SLT_COMPLETE").is_ok_and(|v| v == "1");
    let mut failed = Vec::new();
    for file in files {
        let ctx = datafusion_session();
        let make = move || {
            let db = DataFusionDb { ctx: ctx.clone() };
            async move { Ok::<_, DfError>(db) }
        };
        if complete {
            let mut runner = Runner::new(make);
            runner
                .update_test_file(
                    &file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    column_validator,
                )
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            println!("completed {}", file.display());
            continue;
        }
        let report = run_file_on(&file, make, true).await;
        println!("{}", report.summary_line());
        if report.status != FileStatus::Passed {
            for failure in &report.failures {
                println!("{}", indent(failure));
            }
            failed.push(file_name(&report));
        }
    }
    assert!(
        failed.is_empty(),
        "DataFusion disagrees with: {}",
        failed.join(", ")
    );
}
