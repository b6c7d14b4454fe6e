use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{Array, Decimal128Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::pretty::pretty_format_batches;

use super::*;
use crate::expr::{PhysExpr, SortExpr};
use crate::functions::FunctionRegistry;
use crate::plan::PhysicalPlan;
pub(crate) use crate::test_util::{run_plan, scan};

pub(crate) fn key(index: usize, asc: bool, nulls_first: bool) -> SortExpr {
    SortExpr {
        expr: PhysExpr::col(index, format!("c{index}")),
        asc,
        nulls_first,
    }
}

pub(crate) fn fmt(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

/// A batch of (a int32, s utf8, d decimal(10,2)).
pub(crate) fn batch(
    a: Vec<Option<i32>>,
    s: Vec<Option<&str>>,
    d: Vec<Option<i128>>,
) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int32, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("d", DataType::Decimal128(10, 2), true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from(a)),
            Arc::new(StringArray::from(s)),
            Arc::new(
                Decimal128Array::from(d)
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ],
    )
    .unwrap()
}

/// Rows of the test batches as (a, s, d) tuples.
pub(crate) fn tuples(batches: &[RecordBatch]) -> Vec<(Option<i32>, Option<String>, Option<i128>)> {
    let mut out = Vec::new();
    for b in batches {
        let a = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
        let s = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        let d = b
            .column(2)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            out.push((
                a.is_valid(i).then(|| a.value(i)),
                s.is_valid(i).then(|| s.value(i).to_string()),
                d.is_valid(i).then(|| d.value(i)),
            ));
        }
    }
    out
}

type Tuple = (Option<i32>, Option<String>, Option<i128>);

/// Reference comparison of one key of the tuples.
pub(crate) fn cmp_key(x: &Tuple, y: &Tuple, k: &SortExpr) -> Ordering {
    fn opt<T: Ord>(a: &Option<T>, b: &Option<T>, asc: bool, nulls_first: bool) -> Ordering {
        match (a, b) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => {
                if nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (Some(_), None) => {
                if nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (Some(a), Some(b)) => {
                if asc {
                    a.cmp(b)
                } else {
                    b.cmp(a)
                }
            }
        }
    }
    let PhysExpr::Column { index, .. } = &k.expr else {
        panic!()
    };
    match index {
        0 => opt(&x.0, &y.0, k.asc, k.nulls_first),
        1 => opt(&x.1, &y.1, k.asc, k.nulls_first),
        _ => opt(&x.2, &y.2, k.asc, k.nulls_first),
    }
}

pub(crate) fn cmp_keys(x: &Tuple, y: &Tuple, keys: &[SortExpr]) -> Ordering {
    keys.iter()
        .map(|k| cmp_key(x, y, k))
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

/// Pseudo-random test data with NULLs and many ties.
pub(crate) fn random_batches(n_batches: usize, rows: usize, seed: u64) -> Vec<RecordBatch> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words = ["", "a", "ab", "b", "ba", "zzz", "Z", "é"];
    (0..n_batches)
        .map(|_| {
            let mut a = vec![];
            let mut s = vec![];
            let mut d = vec![];
            for _ in 0..rows {
                let r = next();
                a.push((r % 7 != 0).then_some((r >> 8) as i32 % 5 - 2));
                s.push((r % 5 != 1).then(|| words[(r >> 20) as usize % words.len()]));
                d.push((r % 6 != 2).then_some(((r >> 30) % 2001) as i128 - 1000));
            }
            batch(a, s, d)
        })
        .collect()
}

fn schema3() -> SchemaRef {
    batch(vec![], vec![], vec![]).schema()
}

#[test]
fn sort_multi_key_mixed_directions_and_nulls() {
    let b = batch(
        vec![Some(1), None, Some(1), Some(2), None, Some(1)],
        vec![Some("b"), Some("a"), None, Some("a"), None, Some("b")],
        vec![Some(150), Some(-5), Some(0), None, Some(7), Some(-150)],
    );
    let schema = b.schema();
    let registry = FunctionRegistry::with_defaults();
    // a ASC NULLS FIRST, s DESC NULLS LAST, d DESC NULLS FIRST
    let order = vec![
        key(0, true, true),
        key(1, false, false),
        key(2, false, true),
    ];
    let keys = SortKeys::try_new(&order, &schema, &registry).unwrap();
    let expected = "\
+---+---+-------+
| a | s | d     |
+---+---+-------+
|   | a | -0.05 |
|   |   | 0.07  |
| 1 | b | 1.50  |
| 1 | b | -1.50 |
| 1 |   | 0.00  |
| 2 | a |       |
+---+---+-------+";
    let sorted = keys.sort_batch(&b, None).unwrap();
    assert_eq!(fmt(&[sorted]), expected);
    let run = keys.sorted_run(&b).unwrap();
    assert_eq!(fmt(std::slice::from_ref(&run.batch)), expected);
    // The encoded keys are in order.
    for i in 1..run.rows.num_rows() {
        assert!(run.rows.row(i - 1) <= run.rows.row(i));
    }
    // Single key (typed sort path), decimal DESC NULLS LAST.
    let keys = SortKeys::try_new(&[key(2, false, false)], &schema, &registry).unwrap();
    let run = keys.sorted_run(&b).unwrap();
    let d: Vec<_> = tuples(&[run.batch]).into_iter().map(|t| t.2).collect();
    assert_eq!(
        d,
        vec![Some(150), Some(7), Some(0), Some(-5), Some(-150), None]
    );
}

#[test]
fn merge_runs_matches_reference() {
    let registry = FunctionRegistry::with_defaults();
    let schema = schema3();
    let orders = [
        vec![key(0, true, true), key(1, false, false)],
        vec![
            key(1, true, false),
            key(2, false, true),
            key(0, false, false),
        ],
        vec![key(2, true, true)],
    ];
    for order in &orders {
        let keys = SortKeys::try_new(order, &schema, &registry).unwrap();
        let input = random_batches(5, 37, 11);
        let runs: Vec<_> = input.iter().map(|b| keys.sorted_run(b).unwrap()).collect();
        let out = merge_runs(Arc::clone(&schema), runs, 16, None).unwrap();
        assert!(out.iter().all(|b| b.num_rows() <= 16));
        let got = tuples(&out);
        let mut want = tuples(&input);
        want.sort_by(|x, y| cmp_keys(x, y, order));
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(cmp_keys(g, w, order), Ordering::Equal, "{g:?} vs {w:?}");
        }
        // Same multiset of rows.
        let mut g = got.clone();
        g.sort();
        let mut w = want.clone();
        w.sort();
        assert_eq!(g, w);
    }
}

#[test]
fn merge_with_empty_runs_and_fetch() {
    let registry = FunctionRegistry::with_defaults();
    let schema = schema3();
    let order = vec![key(0, false, false)];
    let keys = SortKeys::try_new(&order, &schema, &registry).unwrap();
    let runs = vec![
        keys.sorted_run(&batch(vec![], vec![], vec![])).unwrap(),
        keys.sorted_run(&batch(
            vec![Some(1), Some(3)],
            vec![None, None],
            vec![None, None],
        ))
        .unwrap(),
        keys.sorted_run(&batch(
            vec![Some(2), None],
            vec![None, None],
            vec![None, None],
        ))
        .unwrap(),
    ];
    let out = merge_runs(Arc::clone(&schema), runs, 2, Some(3)).unwrap();
    let a: Vec<_> = tuples(&out).into_iter().map(|t| t.0).collect();
    assert_eq!(a, vec![Some(3), Some(2), Some(1)]);
    assert!(merge_runs(schema, vec![], 2, None).unwrap().is_empty());
}

#[tokio::test]
async fn sort_operator_end_to_end() {
    let input = random_batches(7, 50, 3);
    let schema = input[0].schema();
    let order = vec![key(1, false, true), key(0, true, false), key(2, true, true)];
    for batch_size in [1, 16, 1000] {
        let plan = PhysicalPlan::Sort {
            input: Box::new(scan(&schema, 1)),
            order: order.clone(),
            fetch: None,
        };
        let out = run_plan(plan, input.clone(), batch_size).await.unwrap();
        assert!(out.iter().all(|b| b.num_rows() <= batch_size));
        let got = tuples(&out);
        assert_eq!(got.len(), 350);
        for w in got.windows(2) {
            assert_ne!(cmp_keys(&w[0], &w[1], &order), Ordering::Greater);
        }
    }
    // Empty input.
    let plan = PhysicalPlan::Sort {
        input: Box::new(scan(&schema, 1)),
        order: order.clone(),
        fetch: None,
    };
    assert!(run_plan(plan, vec![], 16).await.unwrap().is_empty());
    // No keys: rows pass (in any order).
    let plan = PhysicalPlan::Sort {
        input: Box::new(scan(&schema, 1)),
        order: vec![],
        fetch: None,
    };
    let out = run_plan(plan, input.clone(), 64).await.unwrap();
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 350);
}

#[tokio::test]
async fn sort_strings_nulls_first_across_batches() {
    let b = batch(
        vec![Some(1), Some(2), Some(3), Some(4)],
        vec![Some("pear"), None, Some("apple"), Some("fig")],
        vec![None; 4],
    );
    let schema = b.schema();
    let plan = PhysicalPlan::Sort {
        input: Box::new(scan(&schema, 1)),
        order: vec![key(1, true, true)],
        fetch: None,
    };
    let out = run_plan(plan, vec![b.slice(0, 2), b.slice(2, 2)], 3)
        .await
        .unwrap();
    let a: Vec<_> = tuples(&out).into_iter().map(|t| t.0).collect();
    assert_eq!(a, vec![Some(2), Some(3), Some(4), Some(1)]);
}

#[tokio::test]
async fn sort_and_topk_under_memory_limit() {
    use crate::test_util::{assert_exhausted, run_with_memory};
    let input = random_batches(7, 50, 3);
    let schema = input[0].schema();
    let order = vec![key(1, false, true), key(0, true, false), key(2, true, true)];
    for (fetch, name) in [(None, "Sort"), (Some(20), "TopK")] {
        let plan = PhysicalPlan::Sort {
            input: Box::new(scan(&schema, 1)),
            order: order.clone(),
            fetch,
        };
        let tables = || vec![("t", input.clone())];
        let small = run_with_memory(&plan, tables(), 16, Some(512)).await;
        let unlimited = run_with_memory(&plan, tables(), 16, None).await.unwrap();
        match fetch {
            // A sort spills (the spill directory is the temp dir here).
            None => assert_eq!(tuples(&small.unwrap()), tuples(&unlimited)),
            // A top-k keeps its k rows in memory: they do not fit.
            Some(_) => assert_exhausted(small, &format!("{name} (node 0, partition 0)"), 512),
        }
        let roomy = run_with_memory(&plan, tables(), 16, Some(64 << 20))
            .await
            .unwrap();
        assert_eq!(tuples(&roomy), tuples(&unlimited), "{name}");
    }
}

mod spilling {
    use super::external::MAX_FAN_IN;
    use super::*;
    use crate::expr::BinaryOp;
    use crate::metrics::MetricsSnapshot;
    use crate::test_util::{assert_spill_dir_empty, run_counting_spills, spilling_config, start};
    use datafusion_common::ScalarValue;
    use futures::StreamExt;

    /// Several keys, both directions, NULLS FIRST and LAST, strings, and
    /// many ties (so that the order of ties is checked too).
    fn order() -> Vec<SortExpr> {
        vec![
            key(1, false, true),
            key(0, true, false),
            key(2, false, false),
        ]
    }

    fn sort_plan(schema: &SchemaRef, order: Vec<SortExpr>) -> PhysicalPlan {
        PhysicalPlan::Sort {
            input: Box::new(scan(schema, 1)),
            order,
            fetch: None,
        }
    }

    /// The unlimited sort of `input`: the reference, which must not spill.
    async fn unlimited(
        plan: &PhysicalPlan,
        input: &[RecordBatch],
        batch_size: usize,
    ) -> Vec<Tuple> {
        let dir = tempfile::tempdir().unwrap();
        let mut config = spilling_config(batch_size, 1, dir.path());
        config.memory_pool = crate::execution::memory_pool(None);
        let (out, spill) = run_counting_spills(plan, vec![("t", input.to_vec())], config).await;
        assert_eq!(spill.spill_files, 0);
        tuples(&out.unwrap())
    }

    /// Sorts `input` by `order` in batches of `batch_size` under `limit`
    /// and checks the rows against the unlimited sort (in batches of
    /// `reference_batch_size`) and that no spill file is left; returns
    /// the spill counters.
    async fn spilled_sort_equals_unlimited(
        input: &[RecordBatch],
        order: Vec<SortExpr>,
        (batch_size, reference_batch_size): (usize, usize),
        limit: usize,
    ) -> MetricsSnapshot {
        let plan = sort_plan(&input[0].schema(), order);
        let want = unlimited(&plan, input, reference_batch_size).await;
        let dir = tempfile::tempdir().unwrap();
        let config = spilling_config(batch_size, limit, dir.path());
        let (out, spill) = run_counting_spills(&plan, vec![("t", input.to_vec())], config).await;
        let out = out.unwrap_or_else(|e| panic!("limit {limit}: {e}"));
        assert!(out.iter().all(|b| b.num_rows() <= batch_size));
        assert_eq!(tuples(&out), want, "limit {limit}");
        assert!(spill.spilled_bytes > 0, "{spill:?}");
        assert_spill_dir_empty(dir.path()).await;
        spill
    }

    #[tokio::test]
    async fn spilled_sort_equals_unlimited_sort_row_for_row() {
        let input = random_batches(40, 50, 7);
        // Sorting by `s` and `a` only leaves ties whose order shows.
        for order in [order(), vec![key(1, true, false), key(0, false, true)]] {
            // 16 KiB holds a few runs; 4 KiB about two, which leaves more
            // spilled runs than fit in one merge (several merge passes).
            let spill =
                spilled_sort_equals_unlimited(&input, order.clone(), (16, 16), 16 << 10).await;
            assert!(spill.spill_files > 1, "{spill:?}");
            let spill = spilled_sort_equals_unlimited(&input, order, (16, 16), 4 << 10).await;
            // Merge passes write rows again.
            assert!(spill.spilled_rows > 2000, "{spill:?}");
        }
    }

    #[tokio::test]
    async fn more_spilled_runs_than_the_largest_fan_in() {
        // Runs of 2 rows: a few hundred bytes each, so the limit holds
        // many runs, and a merge may read the largest fan-in at once:
        // about 75 spilled runs, one pass makes two, then the final merge.
        // `order()` sorts by every column: only equal rows tie, so the
        // reference may use large runs (a merge of 6000 runs in memory is
        // slow).
        let input = random_batches(6000, 2, 13);
        let spill = spilled_sort_equals_unlimited(&input, order(), (2, 1000), 48 << 10).await;
        assert!(spill.spill_files > MAX_FAN_IN as u64 + 1, "{spill:?}");
        assert!(spill.spilled_rows > 12000, "a merge pass: {spill:?}");
    }

    #[tokio::test]
    async fn runs_of_whole_batches_and_empty_input() {
        // A few runs of 200 rows fill the limit; the merge holds two or
        // three read-back batches of 200 rows.
        let input = random_batches(12, 200, 5);
        let spill = spilled_sort_equals_unlimited(&input, order(), (200, 200), 40 << 10).await;
        assert!(spill.spill_files >= 3, "{spill:?}");

        let dir = tempfile::tempdir().unwrap();
        let plan = sort_plan(&input[0].schema(), order());
        let config = spilling_config(200, 40 << 10, dir.path());
        let (out, spill) = run_counting_spills(&plan, vec![("t", vec![])], config).await;
        assert!(out.unwrap().is_empty());
        assert_eq!(spill.spill_files, 0);
    }

    #[tokio::test]
    async fn a_merge_smaller_than_two_batches_still_progresses_and_cleans_up() {
        // 512 bytes hold less than the two read-back batches of a merge:
        // those are working memory, so the sort completes, two runs at a
        // time, with the unlimited sort's rows.
        let input = random_batches(20, 50, 3);
        let schema = input[0].schema();
        let plan = sort_plan(&schema, order());
        let expected = unlimited(&plan, &input, 16).await;
        let dir = tempfile::tempdir().unwrap();
        let config = spilling_config(16, 512, dir.path());
        let (out, spill) = run_counting_spills(&plan, vec![("t", input)], config).await;
        assert_eq!(tuples(&out.unwrap()), expected);
        assert!(spill.spill_files > 0);
        assert_spill_dir_empty(dir.path()).await;
    }

    /// `input` with `a` = 0 only in its last batch, under a projection
    /// `100 / a`: the input of the sort fails after many batches.
    fn failing_input() -> (PhysicalPlan, Vec<RecordBatch>) {
        let mut input = random_batches(30, 50, 9);
        let nonzero = |t: Tuple| (t.0.map(|a| if a == 0 { 3 } else { a }), t.1, t.2);
        for b in input.iter_mut() {
            let rows: Vec<Tuple> = tuples(std::slice::from_ref(b))
                .into_iter()
                .map(nonzero)
                .collect();
            *b = batch(
                rows.iter().map(|t| t.0).collect(),
                rows.iter().map(|t| t.1.as_deref()).collect(),
                rows.iter().map(|t| t.2).collect(),
            );
        }
        input.push(batch(vec![Some(0)], vec![None], vec![None]));
        let schema = input[0].schema();
        let divide = PhysExpr::Binary {
            left: Box::new(PhysExpr::lit(ScalarValue::Int32(Some(100)))),
            op: BinaryOp::Divide,
            right: Box::new(PhysExpr::col(0, "a")),
        };
        let projection = PhysicalPlan::Projection {
            input: Box::new(scan(&schema, 1)),
            exprs: vec![divide, PhysExpr::col(1, "s"), PhysExpr::col(2, "d")],
            schema: Arc::clone(&schema),
        };
        let plan = PhysicalPlan::Sort {
            input: Box::new(projection),
            order: order(),
            fetch: None,
        };
        (plan, input)
    }

    #[tokio::test]
    async fn input_error_after_spilling_cleans_up() {
        let (plan, input) = failing_input();
        let dir = tempfile::tempdir().unwrap();
        let config = spilling_config(16, 4 << 10, dir.path());
        let (out, spill) = run_counting_spills(&plan, vec![("t", input)], config).await;
        let err = out.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("Divide by zero"), "{err}");
        assert!(spill.spill_files > 0, "{spill:?}");
        assert_spill_dir_empty(dir.path()).await;
    }

    #[tokio::test]
    async fn dropping_the_output_mid_way_cleans_up() {
        let input = random_batches(40, 50, 7);
        let schema = input[0].schema();
        let plan = sort_plan(&schema, order());
        let dir = tempfile::tempdir().unwrap();
        let config = spilling_config(16, 4 << 10, dir.path());
        let mut stream = start(&plan, vec![("t", input)], config).unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.num_rows(), 16);
        let files = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
            .count();
        assert!(files > 0, "the merge reads spilled runs");
        drop(stream);
        assert_spill_dir_empty(dir.path()).await;
    }
}
