//! Running a query in FFQ and in an oracle (DataFusion, or FFQ embedded
//! for a cluster) and checking that both give the same result.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;
use ffq::Engine;

use super::compare::{check_batch_types, compare_rows, compare_schemas};
use super::order::{output_order, OutputOrder};
use super::rows::{normalize, Row};

/// The result of a query in DataFusion: schema, batches, output order.
pub struct OracleResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub order: OutputOrder,
}

pub async fn run_oracle(sql: &str, ctx: &SessionContext) -> Result<OracleResult, String> {
    let df = ctx
        .sql(sql)
        .await
        .map_err(|e| format!("DataFusion failed to plan the query: {e}\n{sql}"))?;
    let plan = df
        .clone()
        .into_optimized_plan()
        .map_err(|e| format!("DataFusion failed to optimize: {e}\n{sql}"))?;
    let order = output_order(&plan);
    let schema = Arc::clone(df.schema().inner());
    let batches = df
        .collect()
        .await
        .map_err(|e| format!("DataFusion failed to run the query: {e}\n{sql}"))?;
    Ok(OracleResult {
        schema,
        batches,
        order,
    })
}

/// Runs `sql` in FFQ: the declared schema and the batches.
pub async fn run_ffq(sql: &str, engine: &Engine) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    let df = engine
        .sql(sql)
        .await
        .map_err(|e| format!("FFQ failed to plan the query: {e}"))?;
    let schema = df.schema();
    let batches = df
        .collect()
        .await
        .map_err(|e| format!("FFQ failed to run the query: {e}"))?;
    Ok((schema, batches))
}

/// Runs `sql` in FFQ and checks its result against an oracle result;
/// returns FFQ's normalized rows.
pub async fn check_against(
    label: &str,
    sql: &str,
    engine: &Engine,
    oracle: &OracleResult,
) -> Result<Vec<Row>, String> {
    let (schema, batches) = run_ffq(sql, engine)
        .await
        .map_err(|e| format!("{label}: {e}"))?;
    if let Some(note) = compare_schemas(label, &oracle.schema, &schema)? {
        eprintln!("note: {note}");
    }
    check_batch_types(label, &schema, &batches)?;
    let expected = normalize(&oracle.batches)?;
    let actual = normalize(&batches)?;
    compare_rows(label, &expected, &actual, &oracle.order)?;
    Ok(actual)
}

/// Runs `sql` in FFQ and in DataFusion and compares schemas (names and
/// types) and rows.
pub async fn check_same(sql: &str, engine: &Engine, ctx: &SessionContext) -> Result<(), String> {
    check_same_as(sql, sql, engine, ctx).await
}

/// Runs `sql` in FFQ and `oracle_sql` (the same, or an equivalent query
/// where DataFusion's answer to `sql` is not the standard's) in DataFusion,
/// and compares schemas (names and types) and rows.
pub async fn check_same_as(
    sql: &str,
    oracle_sql: &str,
    engine: &Engine,
    ctx: &SessionContext,
) -> Result<(), String> {
    let mut label = format!(
        "query (target_partitions {}, batch_size {}):\n{}\n",
        engine.config().target_partitions,
        engine.config().batch_size,
        sql.trim()
    );
    if oracle_sql != sql {
        label.push_str(&format!("oracle:\n{}\n", oracle_sql.trim()));
    }
    let oracle = run_oracle(oracle_sql, ctx)
        .await
        .map_err(|e| format!("{label}{e}"))?;
    check_against(&label, sql, engine, &oracle)
        .await
        .map(|_| ())
}

/// Like [`check_same`], panicking with the difference.
pub async fn assert_same(sql: &str, engine: &Engine, ctx: &SessionContext) {
    if let Err(e) = check_same(sql, engine, ctx).await {
        panic!("{e}");
    }
}

/// Runs every query; returns the failures.
pub async fn check_all(queries: &[&str], engine: &Engine, ctx: &SessionContext) -> Vec<String> {
    let mut failures = Vec::new();
    for sql in queries {
        if let Err(e) = check_same(sql, engine, ctx).await {
            failures.push(e);
        }
    }
    failures
}

/// Panics listing all failures, if any.
pub fn assert_no_failures(failures: &[String], total: usize) {
    if !failures.is_empty() {
        panic!(
            "{} of {} queries failed:\n\n{}",
            failures.len(),
            total,
            failures.join("\n----------------------------------------\n")
        );
    }
}

/// Runs every query and panics at the end listing all that failed.
pub async fn assert_all_same(queries: &[&str], engine: &Engine, ctx: &SessionContext) {
    let failures = check_all(queries, engine, ctx).await;
    assert_no_failures(&failures, queries.len());
}

/// Runs every statement of `sql` on both engines and compares the result
/// of the last one: schema (names, types, nullability) and rows.
pub async fn check_parity(
    label: &str,
    sql: &str,
    embedded: &Engine,
    cluster: &Engine,
) -> Result<(), String> {
    let statements = Engine::split_sql(sql).map_err(|e| format!("{label}: {e}"))?;
    let mut out = None;
    for (i, s) in statements.iter().enumerate() {
        let last = i + 1 == statements.len();
        let e = embedded
            .sql(s)
            .await
            .map_err(|e| format!("{label}: embedded: {e}"))?;
        let c = cluster
            .sql(s)
            .await
            .map_err(|e| format!("{label}: cluster: {e}"))?;
        let order = e.logical_plan().map(output_order);
        let (es, cs) = (e.schema(), c.schema());
        let eb = e
            .collect()
            .await
            .map_err(|e| format!("{label}: embedded: {e}"))?;
        let cb = c
            .collect()
            .await
            .map_err(|e| format!("{label}: cluster: {e}"))?;
        if last {
            out = Some((es, cs, eb, cb, order));
        }
    }
    let (es, cs, eb, cb, order) = out.ok_or_else(|| format!("{label}: no statement"))?;
    if es != cs {
        return Err(format!(
            "{label}: schemas differ:\nembedded {es:?}\ncluster  {cs:?}"
        ));
    }
    for b in &cb {
        if b.schema().fields() != cs.fields() {
            return Err(format!(
                "{label}: a cluster batch has schema {:?}",
                b.schema()
            ));
        }
    }
    let order = order.unwrap_or(OutputOrder::Unordered);
    compare_rows(label, &normalize(&eb)?, &normalize(&cb)?, &order)
}
