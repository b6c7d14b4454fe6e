use std::cmp::Ordering;

use super::*;
use crate::operators::sort::tests::{batch, cmp_keys, key, random_batches, run_plan, scan, tuples};
use crate::plan::PhysicalPlan;

#[test]
fn topk_buffer_with_ties_is_bounded_and_exact() {
    let registry = FunctionRegistry::with_defaults();
    let input = random_batches(40, 25, 5);
    let schema = input[0].schema();
    let order = vec![key(0, false, true), key(1, true, false)];
    let keys = Arc::new(SortKeys::try_new(&order, &schema, &registry).unwrap());
    let mut want = tuples(&input);
    want.sort_by(|x, y| cmp_keys(x, y, &order));
    for k in [1, 3, 10, 57, 999, 1000, 5000] {
        let mut buf = TopKBuffer::new(Arc::clone(&keys), k, 8);
        for b in &input {
            buf.push(b.clone()).unwrap();
            assert!(buf.buffered_rows() <= k + k.max(8) + 25);
        }
        let got = tuples(&buf.finish().unwrap().into_iter().collect::<Vec<_>>());
        assert_eq!(got.len(), k.min(1000));
        // Sorted, and each position ties with the reference (ties may
        // pick other rows).
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(cmp_keys(g, w, &order), Ordering::Equal);
        }
        // Every kept row is one of the input rows.
        for g in &got {
            assert!(want.contains(g));
        }
    }
}

#[test]
fn topk_zero_and_empty() {
    let registry = FunctionRegistry::with_defaults();
    let b = batch(vec![Some(1)], vec![None], vec![None]);
    let keys = Arc::new(SortKeys::try_new(&[key(0, true, true)], &b.schema(), &registry).unwrap());
    let mut buf = TopKBuffer::new(Arc::clone(&keys), 0, 8);
    buf.push(b).unwrap();
    assert!(buf.finish().unwrap().is_none());
    let buf = TopKBuffer::new(keys, 3, 8);
    assert!(buf.finish().unwrap().is_none());
}

#[tokio::test]
async fn topk_operator() {
    let b = batch(
        vec![Some(5), Some(1), None, Some(5), Some(3), Some(5)],
        vec![Some("x"), Some("y"), Some("z"), Some("w"), None, Some("v")],
        vec![Some(1), Some(2), Some(3), Some(4), Some(5), Some(6)],
    );
    let schema = b.schema();
    let plan = |k| PhysicalPlan::Sort {
        input: Box::new(scan(&schema, 1)),
        order: vec![key(0, false, false), key(2, true, true)],
        fetch: Some(k),
    };
    let input = vec![b.slice(0, 3), b.slice(3, 3)];
    let out = run_plan(plan(2), input.clone(), 1).await.unwrap();
    let got: Vec<_> = tuples(&out).into_iter().map(|t| (t.0, t.2)).collect();
    assert_eq!(got, vec![(Some(5), Some(1)), (Some(5), Some(4))]);
    // k larger than the input: a full sort, NULLs last.
    let out = run_plan(plan(100), input.clone(), 4).await.unwrap();
    let got: Vec<_> = tuples(&out).into_iter().map(|t| t.2).collect();
    assert_eq!(
        got,
        vec![Some(1), Some(4), Some(6), Some(5), Some(2), Some(3)]
    );
    assert!(out.iter().all(|b| b.num_rows() <= 4));
    assert!(run_plan(plan(0), input, 4).await.unwrap().is_empty());
}
