//! Test helpers shared by the operator tests: running a plan over memory
//! tables, and building the plan nodes and batches the tests share.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;

use crate::error::Result;
use crate::exchange::ChannelExchange;
use crate::expr::PhysExpr;
use crate::functions::FunctionRegistry;
use crate::metrics::MetricsSnapshot;
use crate::plan::{JoinType, Partitioning, PhysicalPlan, ScanSource};
use crate::runner::{execute, ExecConfig, QueryStream};
use crate::tables::MemoryTableMap;

/// Runs `plan` over memory `tables` with batches of `batch_size` rows and
/// returns the output batches. Exchanges use channels of capacity 1 (the
/// smallest bound, so that tests exercise backpressure).
pub async fn run(
    plan: &PhysicalPlan,
    tables: Vec<(&str, Vec<RecordBatch>)>,
    batch_size: usize,
) -> Result<Vec<RecordBatch>> {
    run_with_memory(plan, tables, batch_size, None).await
}

/// [`run`] with a memory pool of `limit` bytes (`None`: unbounded).
pub async fn run_with_memory(
    plan: &PhysicalPlan,
    tables: Vec<(&str, Vec<RecordBatch>)>,
    batch_size: usize,
    limit: Option<usize>,
) -> Result<Vec<RecordBatch>> {
    let config = ExecConfig {
        batch_size,
        memory_pool: crate::execution::memory_pool(limit),
        ..ExecConfig::default()
    };
    collect(start(plan, tables, config)?).await
}

/// Starts `plan` over memory `tables` with `config` (channels of
/// capacity 1, as in [`run`]).
pub fn start(
    plan: &PhysicalPlan,
    tables: Vec<(&str, Vec<RecordBatch>)>,
    config: ExecConfig,
) -> Result<QueryStream> {
    let map = MemoryTableMap::default();
    for (n, b) in tables {
        map.insert(n, b)?;
    }
    execute(
        plan,
        config,
        Arc::new(FunctionRegistry::with_defaults()),
        Arc::new(map),
        Arc::new(ChannelExchange::new(1)),
    )
}

/// The batches of `stream`, up to its first error.
pub async fn collect(mut stream: QueryStream) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    while let Some(b) = stream.next().await {
        out.push(b?);
    }
    Ok(out)
}

/// A config with a memory limit of `limit` bytes that spills to `spill_dir`.
pub fn spilling_config(batch_size: usize, limit: usize, spill_dir: &Path) -> ExecConfig {
    ExecConfig {
        batch_size,
        memory_pool: crate::execution::memory_pool(Some(limit)),
        spill_dir: spill_dir.to_path_buf(),
        ..ExecConfig::default()
    }
}

/// Runs `plan` over memory `tables` under `config`; returns the output
/// (or the error) and the spill counters of all plan nodes together.
pub async fn run_counting_spills(
    plan: &PhysicalPlan,
    tables: Vec<(&str, Vec<RecordBatch>)>,
    config: ExecConfig,
) -> (Result<Vec<RecordBatch>>, MetricsSnapshot) {
    let stream = match start(plan, tables, config) {
        Ok(s) => s,
        Err(e) => return (Err(e), MetricsSnapshot::default()),
    };
    let metrics = stream.metrics();
    let result = collect(stream).await;
    let mut total = MetricsSnapshot::default();
    for node in metrics.snapshot() {
        total.merge(&node);
    }
    (result, total)
}

/// A query run under a memory limit (see [`run_spilling`]).
pub struct SpillingRun {
    pub result: Result<Vec<RecordBatch>>,
    /// Every node's counters, by node id.
    pub metrics: Vec<MetricsSnapshot>,
}

impl SpillingRun {
    /// Spill files written by node `node`.
    pub fn spill_files(&self, node: usize) -> u64 {
        self.metrics.get(node).map_or(0, |m| m.spill_files)
    }
}

/// Runs `plan` under a pool of `limit` bytes, spilling into `spill_dir`,
/// keeping every node's counters. With `stop_after`, the output stream is
/// dropped after that many batches (a cancelled query).
pub async fn run_spilling(
    plan: &PhysicalPlan,
    tables: Vec<(&str, Vec<RecordBatch>)>,
    batch_size: usize,
    limit: usize,
    spill_dir: &Path,
    stop_after: Option<usize>,
) -> SpillingRun {
    let config = spilling_config(batch_size, limit, spill_dir);
    let mut stream = match start(plan, tables, config) {
        Ok(s) => s,
        Err(e) => {
            return SpillingRun {
                result: Err(e),
                metrics: vec![],
            }
        }
    };
    let metrics = stream.metrics();
    let mut out = Vec::new();
    let result = loop {
        if stop_after.is_some_and(|n| out.len() >= n) {
            break Ok(out);
        }
        match stream.next().await {
            Some(Ok(b)) => out.push(b),
            Some(Err(e)) => break Err(e),
            None => break Ok(out),
        }
    };
    drop(stream);
    SpillingRun {
        result,
        metrics: metrics.snapshot(),
    }
}

/// Checks that nothing is left in `spill_dir` (the query's directory is
/// removed when its operators are dropped, which may take a moment when
/// they run in tasks: up to 10 s).
pub async fn assert_spill_dir_empty(spill_dir: &Path) {
    for _ in 0..1000 {
        if std::fs::read_dir(spill_dir).map_or(true, |mut d| d.next().is_none()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let left: Vec<_> = std::fs::read_dir(spill_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    panic!("spill directory not empty: {left:?}");
}

/// Checks that `result` failed with a resources-exhausted error naming
/// `operator` and a limit of `limit` bytes (the message too).
pub fn assert_exhausted<T: std::fmt::Debug>(result: Result<T>, operator: &str, limit: usize) {
    match result {
        Err(e @ crate::DataflowError::ResourcesExhausted { .. }) => {
            let msg = e.to_string();
            let crate::DataflowError::ResourcesExhausted {
                operator: op,
                limit: l,
                needs,
                ..
            } = &e
            else {
                unreachable!("matched above")
            };
            assert!(op.starts_with(operator), "{msg}");
            assert_eq!(*l, Some(limit), "{msg}");
            assert!(*needs > 0, "{msg}");
            assert!(msg.starts_with("resources exhausted: "), "{msg}");
            assert!(msg.contains(operator), "{msg}");
            assert!(
                msg.contains(&format!(
                    "memory limit {}",
                    crate::execution::format_bytes(limit)
                )),
                "{msg}"
            );
        }
        other => panic!("expected resources exhausted for {operator}, got {other:?}"),
    }
}

/// Runs `plan` over the memory table "t" made of `batches`.
pub async fn run_plan(
    plan: PhysicalPlan,
    batches: Vec<RecordBatch>,
    batch_size: usize,
) -> Result<Vec<RecordBatch>> {
    run(&plan, vec![("t", batches)], batch_size).await
}

/// A scan of memory table `name` with `partitions` partitions.
pub fn memory_scan(name: &str, schema: &SchemaRef, partitions: usize) -> PhysicalPlan {
    PhysicalPlan::Scan {
        source: ScanSource::Memory {
            table: name.to_string(),
            partitions,
        },
        table_schema: Arc::clone(schema),
        projection: None,
        pruning: vec![],
        schema: Arc::clone(schema),
    }
}

/// A memory-scan operator over table `name` (no projection), for tests
/// that build operators directly rather than compiling a plan.
pub fn memory_scan_operator(
    name: &str,
    partitions: usize,
    schema: &SchemaRef,
) -> std::sync::Arc<dyn crate::operators::Operator> {
    std::sync::Arc::new(crate::operators::memory_scan::MemoryScan::new(
        name.into(),
        partitions,
        None,
        schema.clone(),
    ))
}

/// A hash exchange on column `key` into `partitions` partitions.
pub fn hash_exchange(input: PhysicalPlan, key: usize, partitions: usize) -> PhysicalPlan {
    PhysicalPlan::Exchange {
        input: Box::new(input),
        partitioning: Partitioning::Hash {
            keys: vec![PhysExpr::col(key, "k")],
            partitions,
        },
    }
}

pub fn gather(input: PhysicalPlan) -> PhysicalPlan {
    PhysicalPlan::Exchange {
        input: Box::new(input),
        partitioning: Partitioning::Gather,
    }
}

/// Every join type, for tests that run each.
pub const ALL_JOIN_TYPES: [JoinType; 10] = [
    JoinType::Inner,
    JoinType::Left,
    JoinType::Right,
    JoinType::Full,
    JoinType::LeftSemi,
    JoinType::LeftAnti,
    JoinType::RightSemi,
    JoinType::RightAnti,
    JoinType::LeftMark,
    JoinType::RightMark,
];

/// A table of nullable (Int32 key, Utf8 value) rows, `(k, v)`.
pub fn kv_schema(k: &str, v: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(k, DataType::Int32, true),
        Field::new(v, DataType::Utf8, true),
    ]))
}

pub fn kv_batch(schema: &SchemaRef, rows: &[(Option<i32>, &str)]) -> RecordBatch {
    let k: ArrayRef = Arc::new(Int32Array::from(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
    ));
    let v: ArrayRef = Arc::new(StringArray::from(
        rows.iter().map(|r| Some(r.1)).collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(Arc::clone(schema), vec![k, v]).unwrap()
}

/// Output schema of a join of `left` and `right` of `join_type`
/// (outer-joined sides nullable).
pub fn join_schema(left: &SchemaRef, right: &SchemaRef, join_type: JoinType) -> SchemaRef {
    use JoinType::*;
    let nullable = |fs: &arrow::datatypes::Fields| -> Vec<Field> {
        fs.iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect()
    };
    let fields = match join_type {
        Inner | Left | Right | Full => {
            let mut f = nullable(left.fields());
            f.extend(nullable(right.fields()));
            f
        }
        LeftSemi | LeftAnti => nullable(left.fields()),
        RightSemi | RightAnti => nullable(right.fields()),
        LeftMark | RightMark => {
            let side = if join_type == LeftMark { left } else { right };
            let mut f = nullable(side.fields());
            f.push(Field::new(
                "mark",
                arrow::datatypes::DataType::Boolean,
                false,
            ));
            f
        }
    };
    Arc::new(Schema::new(fields))
}

/// The rows of `batches` as `a|b|c` strings (NULL for nulls), sorted.
pub fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            let cells: Vec<String> = fmts.iter().map(|f| f.value(r).to_string()).collect();
            out.push(cells.join("|"));
        }
    }
    out.sort();
    out
}

pub fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Sanity check of batch sizes: none empty, none over `max` rows.
pub fn assert_batch_sizes(batches: &[RecordBatch], max: usize) {
    for b in batches {
        assert!(b.num_rows() > 0, "empty batch");
        assert!(
            b.num_rows() <= max,
            "batch of {} rows > {max}",
            b.num_rows()
        );
    }
}

/// A scan of the memory table "t" that [`run_plan`] registers.
pub fn scan(schema: &SchemaRef, partitions: usize) -> PhysicalPlan {
    memory_scan("t", schema, partitions)
}
