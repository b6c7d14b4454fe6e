//! Shared helpers of the integration tests: TPC-H data for a DataFusion
//! oracle, FFQ engines over the same data, and comparison of query results
//! (normalized rows, float tolerance, ORDER BY aware).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use arrow::array::{Array, ArrayRef, Float64Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::{SessionConfig, SessionContext};
use ffq::{Engine, EngineConfig};
use ffq_dataflow::operators::tpch_scan::{tpch_generator, tpch_schema};
use ffq_dataflow::plan::TpchTable;

/// Relative tolerance of float comparisons.
pub const FLOAT_REL_TOLERANCE: f64 = 1e-6;
/// Absolute tolerance of float comparisons (for values near zero).
pub const FLOAT_ABS_TOLERANCE: f64 = 1e-9;

// ---------------------------------------------------------------------------
// Data and engines
// ---------------------------------------------------------------------------

/// The eight TPC-H tables at `sf`, generated once per test binary (as one
/// part, batches of 8192 rows) and shared by all tests.
pub type TpchData = Arc<Vec<(TpchTable, Vec<RecordBatch>)>>;

pub fn tpch_batches(sf: f64) -> TpchData {
    static CACHE: OnceLock<Mutex<HashMap<u64, TpchData>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    // Holding the lock while generating makes concurrent tests wait for
    // one generation instead of generating the data several times.
    let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(data) = guard.get(&sf.to_bits()) {
        return Arc::clone(data);
    }
    let data: Vec<(TpchTable, Vec<RecordBatch>)> = TpchTable::ALL
        .iter()
        .map(|&table| {
            let batches = tpch_generator(table, sf, 1, 1, 8192)
                .collect::<Result<Vec<_>, _>>()
                .unwrap_or_else(|e| panic!("generating TPC-H {} failed: {e}", table.name()));
            (table, batches)
        })
        .collect();
    let data = Arc::new(data);
    guard.insert(sf.to_bits(), Arc::clone(&data));
    data
}

/// Initializes tpchgen's process-wide text pool and distributions (about
/// 10 s in a debug build, once per process), so that time measurements of
/// TPC-H scans do not include it.
pub fn warm_up_tpchgen() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let _ = tpch_generator(TpchTable::LineItem, 0.001, 1, 1, 1).next();
    });
}

/// The average time tpchgen takes to generate one batch of `batch_size`
/// lineitem rows at `sf` (measured over a few batches, after warm-up).
pub fn lineitem_batch_time(sf: f64, batch_size: usize) -> std::time::Duration {
    warm_up_tpchgen();
    let n = 4;
    let start = std::time::Instant::now();
    let mut generator = tpch_generator(TpchTable::LineItem, sf, 1, 1, batch_size);
    for _ in 0..n {
        let _ = generator.next();
    }
    start.elapsed() / n
}

/// A DataFusion session with target_partitions 2 (the oracle).
pub fn oracle_session() -> SessionContext {
    SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2))
}

/// A DataFusion session with the eight TPC-H tables at `sf` as memory
/// tables, holding the same rows FFQ generates with `register_tpch(sf)`.
pub fn oracle_ctx(sf: f64) -> SessionContext {
    let ctx = oracle_session();
    for (table, batches) in tpch_batches(sf).iter() {
        register_oracle_table(&ctx, table.name(), tpch_schema(*table), batches.clone());
    }
    ctx
}

/// Registers `batches` as memory table `name` in a DataFusion session.
pub fn register_oracle_table(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) {
    let table =
        MemTable::try_new(schema, vec![batches]).unwrap_or_else(|e| panic!("MemTable {name}: {e}"));
    ctx.register_table(name, Arc::new(table))
        .unwrap_or_else(|e| panic!("registering {name} in DataFusion: {e}"));
}

/// An FFQ engine with the given parallelism and batch size.
pub fn ffq_engine(target_partitions: usize, batch_size: usize) -> Engine {
    Engine::with_config(EngineConfig {
        target_partitions,
        batch_size,
    })
}

/// An FFQ engine with the TPC-H tables at `sf`.
pub fn tpch_engine(sf: f64, target_partitions: usize) -> Engine {
    let engine = ffq_engine(target_partitions, 8192);
    engine
        .register_tpch(sf)
        .unwrap_or_else(|e| panic!("register_tpch({sf}): {e}"));
    engine
}

/// Registers the same batches as table `name` in FFQ and in DataFusion.
pub fn register_both(
    engine: &Engine,
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) {
    engine
        .register_memory(name, Arc::clone(&schema), batches.clone())
        .unwrap_or_else(|e| panic!("registering {name} in FFQ: {e}"));
    register_oracle_table(ctx, name, schema, batches);
}

/// The text of TPC-H query `n` (from queries/tpch).
pub fn tpch_query(n: usize) -> String {
    let path = format!("{}/queries/tpch/q{n}.sql", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

// ---------------------------------------------------------------------------
// Normalized rows
// ---------------------------------------------------------------------------

/// One value of a result, in canonical form.
#[derive(Debug, Clone)]
pub enum Cell {
    Null,
    /// Float columns (compared with a tolerance).
    Float(f64),
    /// Every other type, rendered by arrow's display (decimals exact).
    Text(String),
}

impl Cell {
    pub fn approx_eq(&self, other: &Cell) -> bool {
        match (self, other) {
            (Cell::Null, Cell::Null) => true,
            (Cell::Float(a), Cell::Float(b)) => float_eq(*a, *b),
            (Cell::Text(a), Cell::Text(b)) => a == b,
            _ => false,
        }
    }

    /// Rendering for diffs.
    pub fn render(&self) -> String {
        match self {
            Cell::Null => "NULL".to_string(),
            Cell::Float(f) => format!("{f:?}"),
            Cell::Text(s) if s.is_empty() => "''".to_string(),
            Cell::Text(s) => s.clone(),
        }
    }

    /// A key for sorting rows canonically: floats rounded so that values
    /// equal within the tolerance usually get the same key.
    fn sort_key(&self) -> String {
        match self {
            Cell::Null => "\u{0}NULL".to_string(),
            Cell::Float(f) if f.is_nan() => "\u{1}NaN".to_string(),
            Cell::Float(f) => format!("{f:.5e}"),
            Cell::Text(s) => format!("\u{2}{s}"),
        }
    }
}

pub fn float_eq(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= FLOAT_REL_TOLERANCE * a.abs().max(b.abs()) || diff <= FLOAT_ABS_TOLERANCE
}

pub type Row = Vec<Cell>;

fn rows_eq(a: &Row, b: &Row) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.approx_eq(y))
}

fn row_sort_key(row: &Row) -> Vec<String> {
    row.iter().map(Cell::sort_key).collect()
}

pub fn render_row(row: &Row) -> String {
    row.iter().map(Cell::render).collect::<Vec<_>>().join(" | ")
}

pub fn render_rows(rows: &[Row]) -> String {
    let mut s = String::new();
    for r in rows {
        s.push_str(&render_row(r));
        s.push('\n');
    }
    s
}

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64)
}

fn column_cells(array: &ArrayRef) -> Result<Vec<Cell>, String> {
    let n = array.len();
    let nulls = array.logical_nulls();
    let is_null = |i: usize| nulls.as_ref().map(|b| b.is_null(i)).unwrap_or(false);
    if is_float(array.data_type()) {
        let f = cast(array, &DataType::Float64).map_err(|e| e.to_string())?;
        let f = f
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or("cast to Float64 failed")?;
        return Ok((0..n)
            .map(|i| {
                if is_null(i) {
                    Cell::Null
                } else {
                    Cell::Float(f.value(i))
                }
            })
            .collect());
    }
    let options = FormatOptions::new().with_null("NULL");
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options).map_err(|e| e.to_string())?;
    Ok((0..n)
        .map(|i| {
            if is_null(i) {
                Cell::Null
            } else {
                Cell::Text(formatter.value(i).to_string())
            }
        })
        .collect())
}

/// Flattens batches into rows of canonical cells.
pub fn normalize(batches: &[RecordBatch]) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for batch in batches {
        let columns = batch
            .columns()
            .iter()
            .map(column_cells)
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[i].clone()).collect());
        }
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------
// Order of a query's output
// ---------------------------------------------------------------------------

/// What order a result must have, found from the (optimized) logical plan.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputOrder {
    /// No top-level ORDER BY: compare as multisets.
    Unordered,
    /// A top-level ORDER BY whose keys are output columns `keys` (a prefix
    /// of the sort keys): the key values must appear in the same order;
    /// rows with equal keys compare as multisets. With `limited` (LIMIT or
    /// sort fetch) the last tie group may be cut differently: only its keys
    /// are compared.
    Keys { keys: Vec<usize>, limited: bool },
    /// A top-level ORDER BY whose keys are not output columns: compare in
    /// order exactly.
    Exact,
}

fn find_sort(
    plan: &LogicalPlan,
    limited: bool,
    through_projection: bool,
) -> Option<(&datafusion::logical_expr::Sort, bool, bool)> {
    match plan {
        LogicalPlan::Sort(s) => Some((s, limited || s.fetch.is_some(), through_projection)),
        LogicalPlan::Limit(l) => find_sort(&l.input, true, through_projection),
        LogicalPlan::Projection(p) => find_sort(&p.input, limited, true),
        LogicalPlan::SubqueryAlias(a) => find_sort(&a.input, limited, through_projection),
        _ => None,
    }
}

/// The order of the output of `plan`.
pub fn output_order(plan: &LogicalPlan) -> OutputOrder {
    let Some((sort, limited, through_projection)) = find_sort(plan, false, false) else {
        return OutputOrder::Unordered;
    };
    let out = plan.schema();
    let mut keys = Vec::new();
    for e in &sort.expr {
        let Expr::Column(col) = &e.expr else { break };
        let index = if !through_projection {
            out.index_of_column(col).ok()
        } else if col.relation.is_some() {
            out.maybe_index_of_column(col)
        } else {
            None
        };
        match index {
            Some(i) => keys.push(i),
            None => break,
        }
    }
    if keys.is_empty() {
        OutputOrder::Exact
    } else {
        OutputOrder::Keys { keys, limited }
    }
}

// ---------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------

fn diff(label: &str, expected: &[Row], actual: &[Row]) -> String {
    format!(
        "{label}: results differ (left: expected/DataFusion {} rows, right: actual/FFQ {} rows)\n{}",
        expected.len(),
        actual.len(),
        pretty_assertions::StrComparison::new(&render_rows(expected), &render_rows(actual))
    )
}

fn sorted(rows: &[Row]) -> Vec<Row> {
    let mut keyed: Vec<(Vec<String>, Row)> =
        rows.iter().map(|r| (row_sort_key(r), r.clone())).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// Whether two row sets are equal as multisets (floats with tolerance).
fn multiset_eq(expected: &[Row], actual: &[Row]) -> bool {
    if expected.len() != actual.len() {
        return false;
    }
    let (e, a) = (sorted(expected), sorted(actual));
    if e.iter().zip(&a).all(|(x, y)| rows_eq(x, y)) {
        return true;
    }
    // Rounded float keys may sort values within the tolerance differently:
    // match greedily when the result is small.
    if e.len() > 2000 {
        return false;
    }
    let mut used = vec![false; a.len()];
    'outer: for x in &e {
        for (j, y) in a.iter().enumerate() {
            if !used[j] && rows_eq(x, y) {
                used[j] = true;
                continue 'outer;
            }
        }
        return false;
    }
    true
}

fn key_of(row: &Row, keys: &[usize]) -> Row {
    keys.iter().map(|&k| row[k].clone()).collect()
}

/// Compares normalized results; `Err` holds a readable diff.
pub fn compare_rows(
    label: &str,
    expected: &[Row],
    actual: &[Row],
    order: &OutputOrder,
) -> Result<(), String> {
    match order {
        OutputOrder::Unordered => {
            if multiset_eq(expected, actual) {
                Ok(())
            } else {
                Err(diff(label, &sorted(expected), &sorted(actual)))
            }
        }
        OutputOrder::Exact => {
            if expected.len() == actual.len()
                && expected.iter().zip(actual).all(|(x, y)| rows_eq(x, y))
            {
                Ok(())
            } else {
                Err(diff(label, expected, actual))
            }
        }
        OutputOrder::Keys { keys, limited } => {
            let fail = || {
                Err(format!(
                    "{} (ordered by output columns {keys:?}{})",
                    diff(label, expected, actual),
                    if *limited { ", with LIMIT" } else { "" }
                ))
            };
            if expected.len() != actual.len() {
                return fail();
            }
            // The sequence of key values must be the same.
            for (x, y) in expected.iter().zip(actual) {
                if !rows_eq(&key_of(x, keys), &key_of(y, keys)) {
                    return fail();
                }
            }
            // Within each group of equal keys the rows must be the same
            // multiset; the last group of a LIMIT may be cut differently.
            let mut start = 0;
            while start < expected.len() {
                let k = key_of(&expected[start], keys);
                let mut end = start + 1;
                while end < expected.len() && rows_eq(&key_of(&expected[end], keys), &k) {
                    end += 1;
                }
                // Under LIMIT the last tie group may be cut anywhere: only
                // its keys (checked above) must agree.
                let cut_by_limit = *limited && end == expected.len();
                if !cut_by_limit && !multiset_eq(&expected[start..end], &actual[start..end]) {
                    return fail();
                }
                start = end;
            }
            Ok(())
        }
    }
}

/// Compares names and types of two schemas; differences in nullability
/// only produce a note (returned as `Ok(Some(note))`).
pub fn compare_schemas(
    label: &str,
    expected: &Schema,
    actual: &Schema,
) -> Result<Option<String>, String> {
    let render = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    let (e, a) = (render(expected), render(actual));
    if e != a {
        return Err(format!(
            "{label}: schemas differ (left: DataFusion, right: FFQ)\n{}",
            pretty_assertions::StrComparison::new(&e, &a)
        ));
    }
    let notes: Vec<String> = expected
        .fields()
        .iter()
        .zip(actual.fields())
        .filter(|(x, y)| x.is_nullable() != y.is_nullable())
        .map(|(x, y)| {
            format!(
                "{}: DataFusion nullable={}, FFQ nullable={}",
                x.name(),
                x.is_nullable(),
                y.is_nullable()
            )
        })
        .collect();
    if notes.is_empty() {
        Ok(None)
    } else {
        Ok(Some(format!(
            "{label}: nullability differs: {}",
            notes.join("; ")
        )))
    }
}

/// Checks that every batch of a result has the declared column types.
fn check_batch_types(
    label: &str,
    declared: &Schema,
    batches: &[RecordBatch],
) -> Result<(), String> {
    for (i, b) in batches.iter().enumerate() {
        let types: Vec<&DataType> = b
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.data_type())
            .collect();
        let want: Vec<&DataType> = declared.fields().iter().map(|f| f.data_type()).collect();
        if types != want {
            return Err(format!(
                "{label}: batch {i} has column types {types:?}, but the declared schema has {want:?}"
            ));
        }
    }
    Ok(())
}

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
    let oracle = run_oracle(sql, ctx).await?;
    let label = format!(
        "query (target_partitions {}, batch_size {}):\n{}\n",
        engine.config().target_partitions,
        engine.config().batch_size,
        sql.trim()
    );
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
