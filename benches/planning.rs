//! Planning cost of long lists: a `VALUES` list of N rows and an `IN` list
//! of N items, for growing N. Planning must grow linearly with N (the time
//! per item stays flat down a column of the table).
//!
//! ```sh
//! cargo bench --bench planning                          # N = 1,000 10,000 100,000
//! FFQ_BENCH_SIZES=20000,200000 cargo bench --bench planning
//! cargo test --bench planning                           # the same, unoptimized
//! ```
//!
//! Each size is planned `FFQ_BENCH_RUNS` times (default 3) after one
//! warm-up; the table shows medians of: splitting the text into statements
//! (`Engine::split_sql`, which the CLI and the sqllogictest runner do),
//! planning (`Engine::sql`: parsing, DataFusion's analyzer and optimizer,
//! FFQ's physical planner) and encoding the physical plan as it is sent to
//! workers (CBOR). Every query is also run once and its answer checked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch};
use ffq::{Engine, EngineConfig};

mod common;

use common::env_or;

/// `VALUES (0, 'v0'), (1, 'v1'), ...`: the sum of the first column.
fn values_query(n: usize) -> (String, i64) {
    let rows: Vec<String> = (0..n).map(|i| format!("({i}, 'v{i}')")).collect();
    let sql = format!("SELECT sum(a) FROM (VALUES {}) AS t(a, b)", rows.join(", "));
    (sql, (0..n as i64).sum())
}

/// `a IN (0, 2, 4, ...)` over `t` (the numbers 0..10,000): the count of
/// even numbers below min(2n, 10,000).
fn in_query(n: usize) -> (String, i64) {
    let items: Vec<String> = (0..n).map(|i| (2 * i).to_string()).collect();
    let sql = format!("SELECT count(*) FROM t WHERE a IN ({})", items.join(", "));
    (sql, n.min(5_000) as i64)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Median time of `f` over `runs` runs after a warm-up.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let _ = f();
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                let _ = f();
                start.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let sizes: Vec<usize> = std::env::var("FFQ_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("FFQ_BENCH_SIZES: numbers"))
        .collect();
    let runs = env_or("FFQ_BENCH_RUNS", 3usize).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let engine = Engine::with_config(EngineConfig {
        target_partitions: 2,
        ..EngineConfig::default()
    });
    let numbers = RecordBatch::try_from_iter([(
        "a",
        Arc::new(Int64Array::from_iter_values(0..10_000)) as ArrayRef,
    )])
    .expect("table t");
    engine
        .register_batches("t", vec![numbers])
        .expect("register t");

    println!("Planning long lists, median of {runs} runs\n");
    println!("| query | N | text KiB | split ms | plan ms | encode ms | plan µs per item |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for &n in &sizes {
        for (name, (sql, expected)) in [("VALUES", values_query(n)), ("IN", in_query(n))] {
            let split = time(runs, || Engine::split_sql(&sql).expect("split"));
            let plan = time(runs, || {
                runtime.block_on(engine.sql(&sql)).expect("plan");
            });
            let df = runtime.block_on(engine.sql(&sql)).expect("plan");
            let physical = df.physical_plan().expect("a query has a physical plan");
            let encode = time(runs, || {
                let mut bytes = Vec::new();
                ciborium::into_writer(physical, &mut bytes).expect("encode");
                bytes.len()
            });
            let batches = runtime.block_on(df.collect()).expect("run");
            let answer = batches
                .iter()
                .find(|b| b.num_rows() > 0)
                .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>().cloned())
                .filter(|c| c.is_valid(0))
                .map(|c| c.value(0));
            assert_eq!(answer, Some(expected), "{name} list of {n}: wrong answer");
            println!(
                "| {name} | {n} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} |",
                sql.len() as f64 / 1024.0,
                split.as_secs_f64() * 1e3,
                plan.as_secs_f64() * 1e3,
                encode.as_secs_f64() * 1e3,
                plan.as_secs_f64() * 1e6 / n as f64,
            );
        }
    }
}
