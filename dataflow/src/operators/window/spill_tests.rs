//! Window partitions that do not fit: evaluated in chunks (streamed
//! frames) or through a spill run (whole-partition aggregates), with the
//! in-memory evaluation as the oracle.

use std::sync::Arc;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use datafusion_common::ScalarValue;

use super::large::ChunkedPlan;
use super::tests::{
    asc, batch, by_id_exprs, col, data, kernel, out_schema, range_to_current, rows_frame, schema,
    sorted, sorted_window_plan, wexpr, Tuple,
};
use super::*;
use crate::execution::SpillArea;
use crate::expr::{PhysExpr, Scalar};
use crate::functions::FunctionRegistry;
use crate::plan::PhysicalPlan;
use crate::test_util::{
    assert_exhausted, assert_spill_dir_empty, run_counting_spills, run_spilling, run_with_memory,
    spilling_config,
};

fn w(f: &str) -> WindowFunc {
    WindowFunc::Window(f.into())
}

fn a(f: &str) -> WindowFunc {
    WindowFunc::Aggregate(f.into())
}

fn lit(v: i64) -> PhysExpr {
    PhysExpr::lit(ScalarValue::Int64(Some(v)))
}

fn unbounded_to_unbounded(units: FrameUnits) -> WindowFrame {
    WindowFrame {
        units,
        ..WindowFrame::whole_partition()
    }
}

/// GROUPS BETWEEN `n` PRECEDING AND `n` FOLLOWING.
fn groups_around(n: u64) -> WindowFrame {
    let bound = Scalar(ScalarValue::UInt64(Some(n)));
    WindowFrame {
        units: FrameUnits::Groups,
        start: FrameBound::Preceding(bound.clone()),
        end: FrameBound::Following(bound),
    }
}

/// Expressions that stream, over `partition_by`: ORDER BY v (with ties
/// and NULLs), then id. Ranks, a RANGE running sum and a GROUPS frame see
/// peers.
fn streamed_exprs(partition_by: &[PhysExpr]) -> Vec<WindowExpr> {
    let by_v = vec![asc(2)];
    let by_v_id = vec![asc(2), asc(0)];
    let p = partition_by.to_vec();
    vec![
        wexpr(
            w("row_number"),
            vec![],
            p.clone(),
            by_v_id.clone(),
            rows_frame(None, Some(0)),
            "rn",
        ),
        wexpr(
            w("rank"),
            vec![],
            p.clone(),
            by_v.clone(),
            range_to_current(),
            "r",
        ),
        wexpr(
            w("dense_rank"),
            vec![],
            p.clone(),
            by_v.clone(),
            range_to_current(),
            "dr",
        ),
        wexpr(
            a("sum"),
            vec![col(2)],
            p.clone(),
            by_v.clone(),
            range_to_current(),
            "s_range",
        ),
        wexpr(
            a("count"),
            vec![col(2)],
            p.clone(),
            by_v_id.clone(),
            rows_frame(None, Some(0)),
            "c_rows",
        ),
        wexpr(
            a("sum"),
            vec![col(2)],
            p.clone(),
            by_v_id.clone(),
            rows_frame(Some(2), Some(1)),
            "sum_slide",
        ),
        wexpr(
            a("min"),
            vec![col(0)],
            p.clone(),
            by_v_id.clone(),
            rows_frame(Some(3), Some(0)),
            "min_slide",
        ),
        wexpr(
            w("lag"),
            vec![col(2), lit(2), lit(-1)],
            p.clone(),
            by_v_id.clone(),
            rows_frame(None, Some(0)),
            "lag",
        ),
        wexpr(
            w("lead"),
            vec![col(0), lit(3)],
            p.clone(),
            by_v_id.clone(),
            rows_frame(None, Some(0)),
            "lead",
        ),
        wexpr(
            w("last_value"),
            vec![col(0)],
            p.clone(),
            by_v.clone(),
            range_to_current(),
            "last",
        ),
        wexpr(
            a("max"),
            vec![col(0)],
            p.clone(),
            by_v.clone(),
            groups_around(1),
            "max_groups",
        ),
        wexpr(
            w("first_value"),
            vec![col(2)],
            p,
            by_v_id,
            rows_frame(Some(1), Some(2)),
            "first",
        ),
    ]
}

/// Whole-partition aggregates (one with a FILTER, one by RANGE without
/// ORDER BY), with some streamed expressions.
fn whole_partition_exprs(partition_by: &[PhysExpr]) -> Vec<WindowExpr> {
    let p = partition_by.to_vec();
    let mut count_nulls = wexpr(
        a("count"),
        vec![lit(1)],
        p.clone(),
        vec![asc(2), asc(0)],
        unbounded_to_unbounded(FrameUnits::Rows),
        "nulls",
    );
    count_nulls.filter = Some(PhysExpr::IsNull(Box::new(col(2))));
    let mut exprs = vec![
        wexpr(
            a("sum"),
            vec![col(2)],
            p.clone(),
            vec![],
            range_to_current(),
            "total",
        ),
        wexpr(
            a("max"),
            vec![col(0)],
            p.clone(),
            vec![asc(2)],
            unbounded_to_unbounded(FrameUnits::Range),
            "max_id",
        ),
        count_nulls,
    ];
    let mut streamed = streamed_exprs(&p);
    exprs.insert(1, streamed.remove(0));
    exprs.push(streamed.remove(2));
    exprs
}

/// Functions of the partition's size (these spill the window partition),
/// with a streamed expression: ntile by v and id, percent_rank and
/// cume_dist by v (ties), cume_dist without ORDER BY.
fn sized_exprs(partition_by: &[PhysExpr]) -> Vec<WindowExpr> {
    let p = partition_by.to_vec();
    let by_v_id = vec![asc(2), asc(0)];
    vec![
        wexpr(
            w("ntile"),
            vec![lit(7)],
            p.clone(),
            by_v_id.clone(),
            rows_frame(None, Some(0)),
            "tile",
        ),
        wexpr(
            w("percent_rank"),
            vec![],
            p.clone(),
            vec![asc(2)],
            range_to_current(),
            "pr",
        ),
        wexpr(
            w("cume_dist"),
            vec![],
            p.clone(),
            vec![asc(2)],
            range_to_current(),
            "cd",
        ),
        wexpr(
            w("cume_dist"),
            vec![],
            p.clone(),
            vec![],
            range_to_current(),
            "cd_all",
        ),
        wexpr(
            w("lag"),
            vec![col(0)],
            p,
            by_v_id,
            rows_frame(None, Some(0)),
            "lag",
        ),
    ]
}

fn chunked_kernel(exprs: &[WindowExpr], batch_size: usize) -> WindowKernel {
    let input = schema();
    let registry = FunctionRegistry::with_defaults();
    let compiled: Vec<_> = exprs
        .iter()
        .map(|e| e.compile(&input, &registry).unwrap())
        .collect();
    let plan = ChunkedPlan::try_new(exprs, &compiled, &input, &out_schema(exprs), &registry)
        .unwrap()
        .expect("the expressions can be evaluated in chunks");
    kernel(exprs, batch_size).with_chunked(Some(Arc::new(plan)))
}

/// The in-memory evaluation of `input`.
fn in_memory(exprs: &[WindowExpr], input: &RecordBatch) -> RecordBatch {
    let mut k = kernel(exprs, 1000);
    let mut out = k.push(input.clone()).unwrap();
    out.extend(k.finish().unwrap());
    concat_batches(&out_schema(exprs), &out).unwrap()
}

/// Evaluates `input` fed in `chunk`s, every window partition in chunks;
/// returns the output and the most the kernel held.
fn all_chunked(
    exprs: &[WindowExpr],
    input: &RecordBatch,
    chunk: usize,
    batch_size: usize,
    spill: &SpillArea,
) -> (RecordBatch, usize) {
    let mut k = chunked_kernel(exprs, batch_size);
    let mut out = Vec::new();
    let mut held = 0;
    let mut offset = 0;
    let mut ended = false;
    while !ended {
        if offset < input.num_rows() {
            let len = chunk.min(input.num_rows() - offset);
            // A copy: a slice would count the whole input's buffers.
            let indices = UInt32Array::from_iter_values(offset as u32..(offset + len) as u32);
            k.buffer(take_record_batch(input, &indices).unwrap())
                .unwrap();
            offset += len;
        } else {
            k.end_input();
            ended = true;
        }
        loop {
            while let Some(o) = k.step().unwrap() {
                held = held.max(k.size());
                out.extend(o);
            }
            let writer = |s: &SchemaRef| spill.writer(s, None);
            if !k.start_chunked(writer).unwrap() {
                break;
            }
        }
        out.extend(k.evaluate_complete().unwrap());
    }
    out.extend(k.flush().unwrap());
    for b in &out {
        assert!(b.num_rows() <= batch_size, "batch of {}", b.num_rows());
    }
    (concat_batches(&out_schema(exprs), &out).unwrap(), held)
}

#[test]
fn chunked_evaluation_equals_in_memory() {
    let rows = data(301);
    let dir = tempfile::tempdir().unwrap();
    let spill = SpillArea::new(dir.path().to_path_buf());
    for partition_by in [vec![], vec![col(1)]] {
        for exprs in [
            streamed_exprs(&partition_by),
            whole_partition_exprs(&partition_by),
            sized_exprs(&partition_by),
        ] {
            let input = sorted(&rows, &exprs);
            let expected = in_memory(&exprs, &input);
            for chunk in [1, 2, 7, 64, 301] {
                for batch_size in [3, 100] {
                    let (got, _) = all_chunked(&exprs, &input, chunk, batch_size, &spill);
                    assert_eq!(
                        got, expected,
                        "{} exprs, PARTITION BY {partition_by:?}, chunk {chunk}, batch_size {batch_size}",
                        exprs.len()
                    );
                }
            }
        }
    }
    // Every run was read back and deleted.
    let dir_left = spill.path().map(|p| std::fs::read_dir(p).unwrap().count());
    assert_eq!(dir_left, Some(0));
}

#[test]
fn chunked_partition_holds_its_frames_not_its_rows() {
    let rows = big_rows(20_000, 1);
    for (exprs, spills) in [
        (streamed_exprs(&[]), false),
        (whole_partition_exprs(&[]), true),
    ] {
        let input = sorted(&rows, &exprs);
        let dir = tempfile::tempdir().unwrap();
        let spill = SpillArea::new(dir.path().to_path_buf());
        let (got, held) = all_chunked(&exprs, &input, 100, 512, &spill);
        assert_eq!(got, in_memory(&exprs, &input));
        // The RANGE frames hold a peer group (a v value) at a time, about
        // 20 rows; the chunks are 100 rows.
        let total = input.get_array_memory_size();
        assert!(held < total / 10, "held {held} of {total}");
        assert_eq!(spill.path().is_some(), spills);
    }
}

#[test]
fn expressions_that_need_the_partition_have_no_chunked_plan() {
    let input = schema();
    let registry = FunctionRegistry::with_defaults();
    let to_end = WindowFrame {
        units: FrameUnits::Rows,
        start: FrameBound::CurrentRow,
        ..WindowFrame::whole_partition()
    };
    let mut lag_ignoring_nulls = wexpr(
        w("lag"),
        vec![col(2)],
        vec![],
        vec![asc(0)],
        rows_frame(None, Some(0)),
        "l",
    );
    lag_ignoring_nulls.ignore_nulls = true;
    for e in [
        wexpr(
            w("last_value"),
            vec![col(2)],
            vec![],
            vec![asc(0)],
            WindowFrame::whole_partition(),
            "l",
        ),
        wexpr(a("sum"), vec![col(2)], vec![], vec![asc(0)], to_end, "s"),
        lag_ignoring_nulls,
    ] {
        let exprs = vec![e];
        let compiled: Vec<_> = exprs
            .iter()
            .map(|e| e.compile(&input, &registry).unwrap())
            .collect();
        let plan = ChunkedPlan::try_new(&exprs, &compiled, &input, &out_schema(&exprs), &registry)
            .unwrap();
        assert!(plan.is_none(), "{}", exprs[0]);
    }
}

/// `n` rows in `partitions` window partitions (k NULL in one), ids
/// scrambled, peer groups (equal v) of about `n / 1000` rows (the RANGE
/// frames hold one).
fn big_rows(n: i32, partitions: i32) -> Vec<Tuple> {
    (0..n)
        .map(|i| {
            let k = i % partitions;
            (
                (i * 7919) % n,
                (k != 0).then_some(k),
                (i % 211 != 3).then_some((i % 1009) as i64),
            )
        })
        .collect()
}

const LIMIT: usize = 512 << 10;

async fn unlimited(plan: &PhysicalPlan, rows: &[Tuple]) -> RecordBatch {
    let tables = vec![("t", rows.chunks(1000).map(batch).collect())];
    let out = run_with_memory(plan, tables, 1024, None).await.unwrap();
    concat_batches(&plan.schema(), &out).unwrap()
}

#[tokio::test]
async fn streamed_window_partition_larger_than_the_limit() {
    let rows = big_rows(60_000, 3);
    for partition_by in [vec![], vec![col(1)]] {
        let exprs = streamed_exprs(&partition_by);
        let plan = sorted_window_plan(&exprs);
        let dir = tempfile::tempdir().unwrap();
        let config = spilling_config(1024, LIMIT, dir.path());
        let tables = vec![("t", rows.chunks(1000).map(batch).collect())];
        let run = run_spilling(&plan, tables, 1024, LIMIT, dir.path(), None).await;
        let got = concat_batches(&plan.schema(), run.result.as_ref().unwrap()).unwrap();
        assert_eq!(got, unlimited(&plan, &rows).await);
        assert!(run.spill_files(1) > 0, "the sort spills");
        assert_eq!(run.spill_files(0), 0, "streamed frames do not spill");
        drop(config);
        assert_spill_dir_empty(dir.path()).await;
    }
}

#[tokio::test]
async fn whole_partition_aggregates_and_sized_functions_spill_the_window_partition() {
    let rows = big_rows(60_000, 3);
    for exprs in [
        whole_partition_exprs(&[]),
        whole_partition_exprs(&[col(1)]),
        sized_exprs(&[]),
        sized_exprs(&[col(1)]),
    ] {
        let plan = sorted_window_plan(&exprs);
        let dir = tempfile::tempdir().unwrap();
        let tables = vec![("t", rows.chunks(1000).map(batch).collect())];
        let run = run_spilling(&plan, tables, 1024, LIMIT, dir.path(), None).await;
        let got = concat_batches(&plan.schema(), run.result.as_ref().unwrap()).unwrap();
        assert_eq!(got, unlimited(&plan, &rows).await);
        assert!(
            run.spill_files(0) > 0,
            "the window spills: {:?}",
            run.metrics
        );
        assert_spill_dir_empty(dir.path()).await;

        // Dropped after two output batches: nothing left behind.
        let tables = vec![("t", rows.chunks(1000).map(batch).collect())];
        let run = run_spilling(&plan, tables, 1024, LIMIT, dir.path(), Some(2)).await;
        assert_eq!(run.result.unwrap().len(), 2);
        assert_spill_dir_empty(dir.path()).await;
    }
}

#[tokio::test]
async fn window_partition_that_cannot_be_chunked_fails_naming_the_window() {
    let rows = big_rows(60_000, 2);
    // A frame from the current row to the partition's end.
    let to_end = WindowFrame {
        units: FrameUnits::Rows,
        start: FrameBound::CurrentRow,
        ..WindowFrame::whole_partition()
    };
    let exprs = vec![
        by_id_exprs().remove(0),
        wexpr(
            a("sum"),
            vec![col(2)],
            vec![col(1)],
            vec![asc(0)],
            to_end,
            "rest",
        ),
    ];
    let plan = sorted_window_plan(&exprs);
    let dir = tempfile::tempdir().unwrap();
    let config = spilling_config(1024, LIMIT, dir.path());
    let tables = vec![("t", rows.chunks(1000).map(batch).collect())];
    let (out, spill) = run_counting_spills(&plan, tables, config).await;
    assert_exhausted(out, "Window (node 0, partition 0) window partition", LIMIT);
    assert!(spill.spill_files > 0, "the sort spilled before: {spill:?}");
    assert_spill_dir_empty(dir.path()).await;
}
