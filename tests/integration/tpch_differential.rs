//! TPC-H queries at SF 0.01: FFQ against DataFusion over the same generated
//! data, and FFQ with 1, 2, 3 and 8 partitions against itself.

use crate::common;
use crate::common::{check_against, compare_rows, oracle_ctx, run_oracle, tpch_engine, tpch_query};

const SF: f64 = 0.01;

/// The queries compared with DataFusion.
const QUERIES: [usize; 12] = [1, 3, 5, 6, 7, 8, 9, 10, 12, 14, 18, 19];

async fn differential(n: usize) {
    let sql = tpch_query(n);
    let ctx = oracle_ctx(SF);
    let engine = tpch_engine(SF, 2);
    let oracle = run_oracle(&sql, &ctx)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let label = format!("TPC-H q{n} (target_partitions 2)");
    match check_against(&label, &sql, &engine, &oracle).await {
        Ok(rows) => eprintln!("q{n}: {} rows, order {:?}", rows.len(), oracle.order),
        Err(e) => panic!("{e}"),
    }
}

macro_rules! tpch_tests {
    ($($name:ident => $n:expr),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                differential($n).await;
            }
        )*
    };
}

tpch_tests! {
    q1 => 1,
    q3 => 3,
    q5 => 5,
    q6 => 6,
    q7 => 7,
    q8 => 8,
    q9 => 9,
    q10 => 10,
    q12 => 12,
    q14 => 14,
    q18 => 18,
    q19 => 19,
}

/// Results must be identical for 1, 2, 3 and 8 partitions (2 is covered by
/// the per-query tests): each is compared with DataFusion and with the
/// result of 1 partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_results_for_1_3_8_partitions() {
    let ctx = oracle_ctx(SF);
    let engines: Vec<(usize, ffq::Engine)> =
        [1, 3, 8].iter().map(|&p| (p, tpch_engine(SF, p))).collect();
    let mut failures = Vec::new();
    for n in QUERIES {
        let sql = tpch_query(n);
        let oracle = match run_oracle(&sql, &ctx).await {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("q{n}: {e}"));
                continue;
            }
        };
        let mut first: Option<Vec<common::Row>> = None;
        for (p, engine) in &engines {
            let label = format!("TPC-H q{n} (target_partitions {p})");
            let rows = match check_against(&label, &sql, engine, &oracle).await {
                Ok(rows) => rows,
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            // Identical to the result of 1 partition (same comparison:
            // floats within the tolerance, ORDER BY ties as multisets).
            match &first {
                None => first = Some(rows),
                Some(base) => {
                    let label = format!("TPC-H q{n}: 1 partition (left) vs {p} partitions (right)");
                    if let Err(e) = compare_rows(&label, base, &rows, &oracle.order) {
                        failures.push(e);
                    }
                }
            }
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} failures:\n\n{}",
            failures.len(),
            failures.join("\n----------------------------------------\n")
        );
    }
}
