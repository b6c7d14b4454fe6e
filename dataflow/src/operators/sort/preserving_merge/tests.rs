use std::cmp::Ordering;
use std::time::Duration;

use arrow::array::RecordBatch;
use futures::stream;

use super::*;
use crate::operators::sort::tests::{batch, cmp_keys, key, random_batches, run_plan, scan, tuples};
use crate::plan::PhysicalPlan;

fn merge_plan(
    schema: &SchemaRef,
    partitions: usize,
    order: Vec<SortExpr>,
    fetch: Option<usize>,
) -> PhysicalPlan {
    PhysicalPlan::SortPreservingMerge {
        input: Box::new(PhysicalPlan::Sort {
            input: Box::new(scan(schema, partitions)),
            order: order.clone(),
            fetch: None,
        }),
        order,
        fetch,
    }
}

#[tokio::test]
async fn merge_three_sorted_inputs_with_fetch() {
    let input = random_batches(9, 31, 17);
    let schema = input[0].schema();
    let order = vec![key(2, false, true), key(1, true, false)];
    let mut want = tuples(&input);
    want.sort_by(|x, y| cmp_keys(x, y, &order));
    for (fetch, batch_size) in [
        (None, 7),
        (Some(10), 4),
        (Some(279), 1000),
        (Some(5000), 64),
    ] {
        let out = run_plan(
            merge_plan(&schema, 3, order.clone(), fetch),
            input.clone(),
            batch_size,
        )
        .await
        .unwrap();
        assert!(out.iter().all(|b| b.num_rows() <= batch_size));
        let got = tuples(&out);
        assert_eq!(got.len(), fetch.unwrap_or(usize::MAX).min(279));
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(cmp_keys(g, w, &order), Ordering::Equal, "{g:?} vs {w:?}");
        }
        if fetch.is_none() {
            let mut g = got.clone();
            g.sort();
            let mut w = want.clone();
            w.sort();
            assert_eq!(g, w);
        }
    }
    // fetch 0, and a single input partition (passed through).
    let out = run_plan(
        merge_plan(&schema, 3, order.clone(), Some(0)),
        input.clone(),
        8,
    )
    .await
    .unwrap();
    assert!(out.is_empty());
    let out = run_plan(
        merge_plan(&schema, 1, order.clone(), Some(12)),
        input.clone(),
        8,
    )
    .await
    .unwrap();
    let got = tuples(&out);
    assert_eq!(got.len(), 12);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(cmp_keys(g, w, &order), Ordering::Equal);
    }
    // More partitions than batches: some inputs are empty.
    let out = run_plan(
        merge_plan(&schema, 12, order.clone(), None),
        input.clone(),
        50,
    )
    .await
    .unwrap();
    assert_eq!(tuples(&out).len(), 279);
}

/// Sorted partitions fed by one hash exchange with tiny channels: the
/// merge must drive all inputs at once (reading them one after the
/// other would leave the exchange producers blocked on a full channel).
#[tokio::test]
async fn merge_over_hash_exchange_does_not_deadlock() {
    let input = random_batches(20, 40, 29);
    let schema = input[0].schema();
    let order = vec![key(0, true, false), key(2, false, false)];
    let exchange = PhysicalPlan::Exchange {
        input: Box::new(scan(&schema, 2)),
        partitioning: crate::plan::Partitioning::Hash {
            keys: vec![crate::expr::PhysExpr::col(1, "s")],
            partitions: 4,
        },
    };
    let plan = PhysicalPlan::SortPreservingMerge {
        input: Box::new(PhysicalPlan::Sort {
            input: Box::new(exchange),
            order: order.clone(),
            fetch: None,
        }),
        order: order.clone(),
        fetch: None,
    };
    let out = tokio::time::timeout(Duration::from_secs(20), run_plan(plan, input, 3))
        .await
        .expect("merge deadlocked")
        .unwrap();
    let got = tuples(&out);
    assert_eq!(got.len(), 800);
    for w in got.windows(2) {
        assert_ne!(cmp_keys(&w[0], &w[1], &order), Ordering::Greater);
    }
}

fn ints(v: &[i32]) -> RecordBatch {
    batch(
        v.iter().map(|x| Some(*x)).collect(),
        vec![None; v.len()],
        vec![None; v.len()],
    )
}

/// Merges test streams with tokio tasks for the inputs.
fn merge_test(
    inputs: Vec<Vec<Result<RecordBatch>>>,
    hang: bool,
    fetch: Option<usize>,
    batch_size: usize,
) -> SendableRecordBatchStream {
    let schema = ints(&[]).schema();
    let registry = FunctionRegistry::with_defaults();
    let keys = Arc::new(SortKeys::try_new(&[key(0, true, true)], &schema, &registry).unwrap());
    let streams = inputs
        .into_iter()
        .map(|items| {
            let s = stream::iter(items);
            if hang {
                boxed(Arc::clone(&schema), s.chain(stream::pending()))
            } else {
                boxed(Arc::clone(&schema), s)
            }
        })
        .collect();
    merge_streams(schema, streams, keys, batch_size, fetch, |task| {
        tokio::spawn(task);
        Ok(())
    })
}

#[tokio::test]
async fn merge_streams_before_inputs_end() {
    // The inputs never end, yet the first 5 rows come out.
    let mut out = merge_test(
        vec![
            vec![Ok(ints(&[1, 4])), Ok(ints(&[7, 10]))],
            vec![Ok(ints(&[2, 5, 8]))],
            vec![Ok(ints(&[])), Ok(ints(&[3])), Ok(ints(&[6, 9]))],
        ],
        true,
        Some(5),
        2,
    );
    let mut rows = vec![];
    while let Some(b) = tokio::time::timeout(Duration::from_secs(5), out.next())
        .await
        .expect("merge blocked")
    {
        let b = b.unwrap();
        assert!(b.num_rows() <= 2);
        rows.extend(tuples(&[b]).into_iter().map(|t| t.0.unwrap()));
    }
    assert_eq!(rows, vec![1, 2, 3, 4, 5]);
    // Without fetch the merge emits what it can before the inputs end:
    // a full first batch.
    let mut out = merge_test(
        vec![vec![Ok(ints(&[1, 3, 5]))], vec![Ok(ints(&[2, 4, 6]))]],
        true,
        None,
        3,
    );
    let first = tokio::time::timeout(Duration::from_secs(5), out.next())
        .await
        .expect("merge blocked")
        .unwrap()
        .unwrap();
    let a: Vec<_> = tuples(&[first]).into_iter().map(|t| t.0.unwrap()).collect();
    assert_eq!(a, vec![1, 2, 3]);
}

#[tokio::test]
async fn merge_propagates_input_errors() {
    let mut out = merge_test(
        vec![
            vec![Ok(ints(&[0, 2, 3]))],
            vec![Ok(ints(&[1])), Err(DataflowError::Execution("boom".into()))],
        ],
        false,
        None,
        8,
    );
    let mut err = None;
    while let Some(b) = out.next().await {
        if let Err(e) = b {
            err = Some(e.to_string());
            break;
        }
    }
    assert!(err.unwrap().contains("boom"));
}
