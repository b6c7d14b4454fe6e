use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};

use super::*;
use crate::expr::BinaryOp;
use crate::plan::{JoinType, PhysicalPlan};
use crate::test_util::*;

async fn run_nlj(
    join_type: JoinType,
    filter: Option<PhysExpr>,
    left: Vec<(Option<i32>, &str)>,
    right: Vec<(Option<i32>, &str)>,
    right_partitions: usize,
    batch_size: usize,
) -> Vec<String> {
    let ls = kv_schema("lk", "lv");
    let rs = kv_schema("rk", "rv");
    let lb: Vec<RecordBatch> = left.chunks(2).map(|c| kv_batch(&ls, c)).collect();
    let rb: Vec<RecordBatch> = right.chunks(2).map(|c| kv_batch(&rs, c)).collect();
    let plan = PhysicalPlan::NestedLoopJoin {
        // Left from two partitions: collected from both.
        left: Box::new(memory_scan("l", &ls, 2)),
        right: Box::new(memory_scan("r", &rs, right_partitions)),
        join_type,
        filter,
        schema: join_schema(&ls, &rs, join_type),
    };
    let plan = if plan.output_partitions() > 1 {
        gather(plan)
    } else {
        plan
    };
    let out = run(&plan, vec![("l", lb), ("r", rb)], batch_size)
        .await
        .unwrap();
    assert_batch_sizes(&out, batch_size);
    rows(&out)
}

/// `lk < rk`
fn lk_lt_rk() -> PhysExpr {
    PhysExpr::Binary {
        left: Box::new(PhysExpr::col(0, "lk")),
        op: BinaryOp::Lt,
        right: Box::new(PhysExpr::col(2, "rk")),
    }
}

fn left_rows() -> Vec<(Option<i32>, &'static str)> {
    vec![(Some(1), "a"), (Some(3), "b"), (None, "n"), (Some(9), "z")]
}

fn right_rows() -> Vec<(Option<i32>, &'static str)> {
    vec![(Some(2), "x"), (Some(4), "y"), (None, "m"), (Some(0), "w")]
}

#[tokio::test]
async fn filter_all_join_types() {
    use JoinType::*;
    for jt in ALL_JOIN_TYPES {
        let parts: &[usize] = if jt.emits_unmatched_left() {
            &[1]
        } else {
            &[1, 3]
        };
        for &rp in parts {
            for bs in [1, 3, 64] {
                let got = run_nlj(jt, Some(lk_lt_rk()), left_rows(), right_rows(), rp, bs).await;
                // Pairs with lk < rk: 1<2, 1<4, 3<4.
                let exp: &[&str] = match jt {
                    Inner => &["1|a|2|x", "1|a|4|y", "3|b|4|y"],
                    Left => &[
                        "1|a|2|x",
                        "1|a|4|y",
                        "3|b|4|y",
                        "NULL|n|NULL|NULL",
                        "9|z|NULL|NULL",
                    ],
                    Right => &[
                        "1|a|2|x",
                        "1|a|4|y",
                        "3|b|4|y",
                        "NULL|NULL|NULL|m",
                        "NULL|NULL|0|w",
                    ],
                    Full => &[
                        "1|a|2|x",
                        "1|a|4|y",
                        "3|b|4|y",
                        "NULL|n|NULL|NULL",
                        "9|z|NULL|NULL",
                        "NULL|NULL|NULL|m",
                        "NULL|NULL|0|w",
                    ],
                    LeftSemi => &["1|a", "3|b"],
                    LeftAnti => &["NULL|n", "9|z"],
                    RightSemi => &["2|x", "4|y"],
                    RightAnti => &["NULL|m", "0|w"],
                    LeftMark => &["1|a|true", "3|b|true", "NULL|n|false", "9|z|false"],
                    RightMark => &["2|x|true", "4|y|true", "NULL|m|false", "0|w|false"],
                };
                assert_eq!(
                    got,
                    sorted(exp),
                    "{jt:?} right_partitions={rp} batch_size={bs}"
                );
            }
        }
    }
}

#[tokio::test]
async fn cross_join_and_no_filter() {
    use JoinType::*;
    let got = run_nlj(Inner, None, left_rows(), right_rows(), 3, 5).await;
    assert_eq!(got.len(), 16);
    assert!(got.contains(&"NULL|n|NULL|m".to_string()));
    for jt in ALL_JOIN_TYPES {
        let parts = if jt.emits_unmatched_left() { 1 } else { 2 };
        let got = run_nlj(jt, None, left_rows(), right_rows(), parts, 4).await;
        let n = match jt {
            Inner | Left | Right | Full => 16,
            LeftSemi | RightSemi | LeftMark | RightMark => 4,
            LeftAnti | RightAnti => 0,
        };
        assert_eq!(got.len(), n, "{jt:?}");
    }
}

#[tokio::test]
async fn empty_sides() {
    use JoinType::*;
    for jt in ALL_JOIN_TYPES {
        let got = run_nlj(jt, Some(lk_lt_rk()), vec![], right_rows(), 1, 4).await;
        let n = match jt {
            Right | Full | RightAnti | RightMark => 4,
            _ => 0,
        };
        assert_eq!(got.len(), n, "empty left {jt:?}");
        let got = run_nlj(jt, None, left_rows(), vec![], 1, 4).await;
        let n = match jt {
            Left | Full | LeftAnti | LeftMark => 4,
            _ => 0,
        };
        assert_eq!(got.len(), n, "empty right {jt:?}");
    }
}

#[tokio::test]
async fn zero_column_sides() {
    // count(*) over a cross join prunes every column.
    let empty: SchemaRef = Arc::new(Schema::empty());
    let batch = |n: usize| {
        RecordBatch::try_new_with_options(
            Arc::clone(&empty),
            vec![],
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
        )
        .unwrap()
    };
    let plan = PhysicalPlan::NestedLoopJoin {
        left: Box::new(memory_scan("l", &empty, 1)),
        right: Box::new(memory_scan("r", &empty, 1)),
        join_type: JoinType::Inner,
        filter: None,
        schema: Arc::clone(&empty),
    };
    let out = run(
        &plan,
        vec![("l", vec![batch(3)]), ("r", vec![batch(5), batch(2)])],
        4,
    )
    .await
    .unwrap();
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 21);
}

#[test]
fn left_emitting_needs_one_right_partition() {
    let ls = kv_schema("lk", "lv");
    let rs = kv_schema("rk", "rv");
    let left: Arc<dyn Operator> = memory_scan_operator("l", 1, &ls);
    let right: Arc<dyn Operator> = memory_scan_operator("r", 2, &rs);
    let config = NestedLoopJoinConfig {
        join_type: JoinType::Left,
        filter: None,
        schema: join_schema(&ls, &rs, JoinType::Left),
    };
    let r = NestedLoopJoin::try_new(left, right, config, &FunctionRegistry::with_defaults());
    assert!(matches!(r, Err(DataflowError::Internal(_))));
}

#[test]
fn cross_pairs_chunks() {
    let (mut b, mut p) = (Vec::new(), Vec::new());
    cross_pairs(2..7, 3, &mut b, &mut p);
    assert_eq!(b, vec![0, 1, 1, 1, 2]);
    assert_eq!(p, vec![2, 0, 1, 2, 0]);
}

#[tokio::test]
async fn build_side_under_memory_limit() {
    let ls = kv_schema("lk", "lv");
    let rs = kv_schema("rk", "rv");
    let lb: Vec<RecordBatch> = left_rows().chunks(2).map(|c| kv_batch(&ls, c)).collect();
    let rb: Vec<RecordBatch> = right_rows().chunks(2).map(|c| kv_batch(&rs, c)).collect();
    let plan = PhysicalPlan::NestedLoopJoin {
        left: Box::new(memory_scan("l", &ls, 1)),
        right: Box::new(memory_scan("r", &rs, 1)),
        join_type: JoinType::Inner,
        filter: Some(lk_lt_rk()),
        schema: join_schema(&ls, &rs, JoinType::Inner),
    };
    let tables = || vec![("l", lb.clone()), ("r", rb.clone())];
    let refused = run_with_memory(&plan, tables(), 2, Some(64)).await;
    assert_exhausted(refused, "NestedLoopJoin (node 0, partition 0) build", 64);
    let roomy = run_with_memory(&plan, tables(), 2, Some(64 << 20))
        .await
        .unwrap();
    assert_eq!(rows(&roomy), sorted(&["1|a|2|x", "1|a|4|y", "3|b|4|y"]));
}
