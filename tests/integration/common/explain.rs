//! What EXPLAIN statements print, for tests of plan shapes and metrics.

use arrow::array::{Array, StringArray};
use ffq::Engine;

/// The `(plan_type, plan)` rows of an EXPLAIN statement `sql`.
pub async fn explain_rows(engine: &Engine, sql: &str) -> Vec<(String, String)> {
    let batches = engine.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    for b in batches {
        let kinds = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let plans = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            out.push((kinds.value(i).to_string(), plans.value(i).to_string()));
        }
    }
    out
}
