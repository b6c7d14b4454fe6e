//! The TPC-H data of the tests: generated once per process and shared, as
//! the oracle's tables and as a calibration of the generator's speed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use arrow::array::RecordBatch;
use ffq_dataflow::operators::tpch_scan::tpch_generator;
use ffq_dataflow::plan::TpchTable;

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

/// The text of TPC-H query `n` (from queries/tpch).
pub fn tpch_query(n: usize) -> String {
    let path = format!("{}/queries/tpch/q{n}.sql", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}
