use super::counts::RowCounts;
use super::*;
use arrow::array::{Array, Int32Array, Int64Array, StringArray};
use arrow::array::{ArrayRef, BooleanArray};
use arrow::datatypes::{Field, Schema};

fn keys(a: Vec<Option<i32>>, b: Vec<Option<&str>>) -> Vec<ArrayRef> {
    vec![
        Arc::new(Int32Array::from(a)),
        Arc::new(StringArray::from(b)),
    ]
}

fn counts_of(right: &[Vec<ArrayRef>]) -> RowCounts {
    let mut c = RowCounts::try_new(&[DataType::Int32, DataType::Utf8]).unwrap();
    for k in right {
        c.add(k, None).unwrap();
    }
    c
}

fn mask(b: &BooleanArray) -> Vec<bool> {
    (0..b.len()).map(|i| b.value(i)).collect()
}

#[test]
fn multiset_counts_with_nulls_equal() {
    // Right: (1,x) x2, (NULL,y) x1, (2,NULL) x1, across two batches.
    let right = [
        keys(vec![Some(1), None], vec![Some("x"), Some("y")]),
        keys(vec![Some(1), Some(2)], vec![Some("x"), None]),
    ];
    // Left: (1,x) x3, (NULL,y) x2, (2,NULL) x1, (3,z) x1.
    let left = [
        keys(
            vec![Some(1), None, Some(1), Some(3)],
            vec![Some("x"), Some("y"), Some("x"), Some("z")],
        ),
        keys(
            vec![Some(1), None, Some(2)],
            vec![Some("x"), Some("y"), None],
        ),
    ];
    let mut c = counts_of(&right);
    let a = c.take(&left[0], SetOpKind::IntersectAll).unwrap();
    let b = c.take(&left[1], SetOpKind::IntersectAll).unwrap();
    // min(3,2) of (1,x), min(2,1) of (NULL,y), (2,NULL) once, no (3,z).
    assert_eq!(mask(&a), vec![true, true, true, false]);
    assert_eq!(mask(&b), vec![false, false, true]);

    let mut c = counts_of(&right);
    let a = c.take(&left[0], SetOpKind::ExceptAll).unwrap();
    let b = c.take(&left[1], SetOpKind::ExceptAll).unwrap();
    // 3-2 of (1,x), 2-1 of (NULL,y), 1-1 of (2,NULL), (3,z).
    assert_eq!(mask(&a), vec![false, false, false, true]);
    assert_eq!(mask(&b), vec![true, true, false]);
}

#[test]
fn empty_right_side() {
    let left = keys(vec![Some(1), None], vec![None, None]);
    let mut c = counts_of(&[]);
    assert_eq!(
        mask(&c.take(&left, SetOpKind::IntersectAll).unwrap()),
        vec![false, false]
    );
    assert_eq!(
        mask(&c.take(&left, SetOpKind::ExceptAll).unwrap()),
        vec![true, true]
    );
}

#[test]
fn key_types_must_match() {
    use crate::operators::values::Empty;
    let l = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, true)]));
    let r = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
    let reg = FunctionRegistry::with_defaults();
    let on = vec![(PhysExpr::col(0, "a"), PhysExpr::col(0, "a"))];
    let err = SetOperation::try_new(
        Arc::new(Empty::new(Arc::clone(&l), false)),
        Arc::new(Empty::new(r, false)),
        SetOpConfig {
            op: SetOpKind::IntersectAll,
            on: &on,
            schema: Arc::clone(&l),
        },
        &reg,
    )
    .err()
    .unwrap();
    assert!(matches!(err, DataflowError::Internal(_)), "{err}");
    // Int64 keys of different widths are fine after a cast.
    let ok = SetOperation::try_new(
        Arc::new(Empty::new(Arc::clone(&l), false)),
        Arc::new(Empty::new(
            Arc::new(Schema::new(vec![Field::new("b", DataType::Int64, true)])),
            false,
        )),
        SetOpConfig {
            op: SetOpKind::ExceptAll,
            on: &[(
                PhysExpr::Cast {
                    expr: Box::new(PhysExpr::col(0, "a")),
                    data_type: DataType::Int64,
                },
                PhysExpr::col(0, "b"),
            )],
            schema: l,
        },
        &reg,
    );
    assert!(ok.is_ok());
}

use crate::test_util::{memory_scan, run};

#[tokio::test]
async fn operator_through_runner() {
    use crate::plan::PhysicalPlan;
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
    let batch = |v: Vec<Option<i64>>| {
        RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(v))]).unwrap()
    };
    // Left: 1 x4, 2 x2, NULL x3, 3 x1; right: 1 x2, NULL x1, 2 x3, 4 x1.
    let tables = || {
        vec![
            (
                "l",
                vec![
                    batch(vec![Some(1), Some(1), None, Some(2)]),
                    batch(vec![Some(1), None, Some(3), None, Some(2), Some(1)]),
                ],
            ),
            (
                "r",
                vec![
                    batch(vec![Some(2), Some(1), None]),
                    batch(vec![Some(4), Some(2), Some(1), Some(2)]),
                ],
            ),
        ]
    };
    let scan = |t: &str| memory_scan(t, &schema, 1);
    for (op, expected) in [
        (SetOpKind::IntersectAll, vec!["1", "1", "2", "2", "NULL"]),
        (SetOpKind::ExceptAll, vec!["1", "1", "3", "NULL", "NULL"]),
    ] {
        let plan = PhysicalPlan::SetOperation {
            left: Box::new(scan("l")),
            right: Box::new(scan("r")),
            op,
            on: vec![(PhysExpr::col(0, "v"), PhysExpr::col(0, "v"))],
            schema: Arc::clone(&schema),
        };
        let batches = run(&plan, tables(), 2).await.unwrap();
        let mut got = vec![];
        for b in batches {
            assert!(b.num_rows() <= 2);
            let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                got.push(if col.is_null(i) {
                    "NULL".to_string()
                } else {
                    col.value(i).to_string()
                });
            }
        }
        got.sort();
        assert_eq!(got, expected, "{op:?}");
    }
}

// ---- spilling ----------------------------------------------------------

mod spilling {
    use super::*;
    use crate::execution::SPILL_FAN_OUT;
    use crate::plan::PhysicalPlan;
    use crate::test_util::{assert_exhausted, assert_spill_dir_empty, run, run_spilling};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]))
    }

    /// Rows `(f(i) or NULL, "x<i % 5>")` for `i` in `0..n`, in batches of 500.
    fn rows(n: i64, f: impl Fn(i64) -> i64) -> Vec<RecordBatch> {
        (0..n)
            .step_by(500)
            .map(|start| {
                let range = start..(start + 500).min(n);
                let a: Int64Array = range.clone().map(|i| (i % 37 != 0).then(|| f(i))).collect();
                let b: StringArray = range.map(|i| Some(format!("x{}", i % 5))).collect();
                RecordBatch::try_new(schema(), vec![Arc::new(a), Arc::new(b)]).unwrap()
            })
            .collect()
    }

    fn tables() -> Vec<(&'static str, Vec<RecordBatch>)> {
        // ~10000 distinct left rows, some twice; right overlaps, with copies.
        vec![
            ("l", rows(12_000, |i| i % 2000)),
            ("r", rows(9_000, |i| (i * 3) % 2500)),
        ]
    }

    fn plan(op: SetOpKind) -> PhysicalPlan {
        set_op(
            op,
            memory_scan("l", &schema(), 1),
            memory_scan("r", &schema(), 1),
        )
    }

    fn set_op(op: SetOpKind, left: PhysicalPlan, right: PhysicalPlan) -> PhysicalPlan {
        PhysicalPlan::SetOperation {
            left: Box::new(left),
            right: Box::new(right),
            op,
            on: vec![
                (PhysExpr::col(0, "a"), PhysExpr::col(0, "a")),
                (PhysExpr::col(1, "b"), PhysExpr::col(1, "b")),
            ],
            schema: schema(),
        }
    }

    fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
        let mut out = vec![];
        for b in batches {
            let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let s = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..b.num_rows() {
                let a = if a.is_null(i) {
                    "NULL".to_string()
                } else {
                    a.value(i).to_string()
                };
                out.push(format!("{a}|{}", s.value(i)));
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn spilled_pairs_give_the_unlimited_rows() {
        for op in [SetOpKind::IntersectAll, SetOpKind::ExceptAll] {
            let plan = plan(op);
            let unlimited = run(&plan, tables(), 512).await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let spilled = run_spilling(&plan, tables(), 512, 4 << 10, dir.path(), None).await;
            let files = spilled.spill_files(0);
            let got = spilled.result.unwrap_or_else(|e| panic!("{op:?}: {e}"));
            let expected = sorted_rows(&unlimited);
            assert!(expected.len() > 1000, "{op:?}: {}", expected.len());
            assert_eq!(sorted_rows(&got), expected, "{op:?}");
            assert!(got.iter().all(|b| b.num_rows() <= 512));
            // Both inputs at level 0 and again below: a pair was repartitioned.
            assert!(files > 2 * SPILL_FAN_OUT as u64, "{op:?}: {files} files");
            assert_spill_dir_empty(dir.path()).await;
        }
    }

    #[tokio::test]
    async fn partitioned_inputs_spill_per_partition() {
        use crate::test_util::{gather, hash_exchange};
        let scan = |t: &str| hash_exchange(memory_scan(t, &schema(), 2), 0, 3);
        let plan = gather(set_op(SetOpKind::ExceptAll, scan("l"), scan("r")));
        let unlimited = run(&plan, tables(), 512).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spilled = run_spilling(&plan, tables(), 512, 12 << 10, dir.path(), None).await;
        // Nodes: gather 0, set operation 1.
        assert!(spilled.spill_files(1) > 0);
        let got = spilled.result.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sorted_rows(&got), sorted_rows(&unlimited));
        assert_spill_dir_empty(dir.path()).await;
    }

    #[tokio::test]
    async fn counts_that_never_fit_fail() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(SetOpKind::ExceptAll);
        // Not even an empty table fits.
        let spilled = run_spilling(&plan, tables(), 512, 64, dir.path(), None).await;
        assert_exhausted(spilled.result, "SetOperation (node 0, partition 0)", 64);
        assert_spill_dir_empty(dir.path()).await;
    }

    #[tokio::test]
    async fn a_dropped_stream_leaves_no_spill_file() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(SetOpKind::ExceptAll);
        let spilled = run_spilling(&plan, tables(), 64, 16 << 10, dir.path(), Some(1)).await;
        assert!(spilled.spill_files(0) > 0);
        assert_eq!(spilled.result.map(|b| b.len()).ok(), Some(1));
        assert_spill_dir_empty(dir.path()).await;
    }
}
