//! All 22 TPC-H queries against the DataFusion oracle, at SF 0.01 and SF
//! 0.1, each with target_partitions 1 and 4. One test per scale factor;
//! every failure is collected and reported at the end.
//!
//! q15 is a script (CREATE VIEW; SELECT; DROP VIEW): every statement runs
//! in order on both engines and the SELECT is compared. While FFQ does not
//! support CREATE VIEW, q15 is reported as a known gap (on stderr) instead
//! of a failure; any other q15 error fails the test.

use std::time::Instant;

use datafusion::prelude::SessionContext;
use ffq::Engine;

use crate::common::{check_against, oracle_ctx, run_oracle, tpch_engine, tpch_query, OracleResult};

const PARTITIONS: [usize; 2] = [1, 4];

/// The error FFQ gives for CREATE VIEW until it is supported.
const CREATE_VIEW_UNSUPPORTED: &str = "not supported: CreateView";

/// The statements of query `n` (q15: create view, select, drop view).
fn statements(n: usize) -> Vec<String> {
    Engine::split_sql(&tpch_query(n)).unwrap_or_else(|e| panic!("splitting q{n}: {e}"))
}

/// Whether `sql` returns the rows to compare (not a CREATE / DROP).
fn is_query(sql: &str) -> bool {
    let head = sql.trim_start().to_ascii_lowercase();
    !(head.starts_with("create") || head.starts_with("drop"))
}

/// Runs a DDL statement in DataFusion.
async fn oracle_ddl(ctx: &SessionContext, sql: &str) -> Result<(), String> {
    let df = ctx
        .sql(sql)
        .await
        .map_err(|e| format!("DataFusion failed on `{sql}`: {e}"))?;
    df.collect()
        .await
        .map_err(|e| format!("DataFusion failed on `{sql}`: {e}"))?;
    Ok(())
}

/// Runs a DDL statement in FFQ.
async fn ffq_ddl(engine: &Engine, sql: &str) -> Result<(), String> {
    let df = engine
        .sql(sql)
        .await
        .map_err(|e| format!("FFQ failed on `{sql}`: {e}"))?;
    df.collect()
        .await
        .map_err(|e| format!("FFQ failed on `{sql}`: {e}"))?;
    Ok(())
}

/// The oracle result of query `n` (its DDL run before and after).
async fn oracle_result(n: usize, ctx: &SessionContext) -> Result<OracleResult, String> {
    let mut result = None;
    for s in statements(n) {
        if is_query(&s) {
            result = Some(run_oracle(&s, ctx).await?);
        } else {
            oracle_ddl(ctx, &s).await?;
        }
    }
    result.ok_or_else(|| format!("q{n} has no query statement"))
}

/// Runs query `n` in FFQ and compares it with the oracle. `Ok(Some(note))`
/// for a known gap.
async fn check_ffq(
    n: usize,
    p: usize,
    engine: &Engine,
    oracle: &OracleResult,
) -> Result<Option<String>, String> {
    let label = format!("TPC-H q{n} (target_partitions {p})");
    let mut first_error = None;
    for s in statements(n) {
        let r = if is_query(&s) {
            check_against(&label, &s, engine, oracle).await.map(|_| ())
        } else {
            ffq_ddl(engine, &s).await
        };
        // Keep going after an error so that a DROP still runs.
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        None => Ok(None),
        Some(e) if n == 15 && e.contains(CREATE_VIEW_UNSUPPORTED) => Ok(Some(format!(
            "{label}: KNOWN GAP, not compared: CREATE VIEW is not supported yet ({e})"
        ))),
        Some(e) => Err(format!("{label}: {e}")),
    }
}

async fn all_queries(sf: f64) {
    let start = Instant::now();
    let ctx = oracle_ctx(sf);
    let engines: Vec<(usize, Engine)> = PARTITIONS
        .iter()
        .map(|&p| (p, tpch_engine(sf, p)))
        .collect();
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for n in 1..=22 {
        let t = Instant::now();
        let oracle = match oracle_result(n, &ctx).await {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("q{n}: oracle: {e}"));
                continue;
            }
        };
        for (p, engine) in &engines {
            match check_ffq(n, *p, engine, &oracle).await {
                Ok(None) => {}
                Ok(Some(note)) => notes.push(note),
                Err(e) => failures.push(e),
            }
        }
        eprintln!("sf {sf} q{n}: {:?}", t.elapsed());
    }
    eprintln!("sf {sf}: all queries in {:?}", start.elapsed());
    for note in &notes {
        eprintln!("note: {note}");
    }
    if !failures.is_empty() {
        panic!(
            "{} failures at SF {sf} (22 queries x partitions {PARTITIONS:?}):\n\n{}",
            failures.len(),
            failures.join("\n----------------------------------------\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_all_sf_0_01() {
    all_queries(0.01).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_all_sf_0_1() {
    all_queries(0.1).await;
}
