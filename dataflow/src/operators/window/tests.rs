use std::collections::BTreeMap;

use arrow::array::{Int32Array, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::DataType;

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::ScalarValue;

use super::*;
use crate::expr::{PhysExpr, Scalar, SortExpr};
use crate::functions::FunctionRegistry;
use crate::operators::sort::SortKeys;
use crate::plan::{Partitioning, PhysicalPlan};
use crate::test_util::{run_plan, scan};

pub(super) type Tuple = (i32, Option<i32>, Option<i64>);

pub(super) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("k", DataType::Int32, true),
        Field::new("v", DataType::Int64, true),
    ]))
}

/// `n` rows: k cycles through NULL, 1, 2, 3 (with a skew), v has NULLs
/// and ties.
pub(super) fn data(n: usize) -> Vec<Tuple> {
    (0..n as i32)
        .map(|i| {
            let k = match (i * 7 + i / 3) % 5 {
                0 => None,
                1 | 4 => Some(1),
                2 => Some(2),
                _ => Some(3),
            };
            let v = if i % 6 == 5 {
                None
            } else {
                Some(((i * 13) % 7) as i64)
            };
            (i, k, v)
        })
        .collect()
}

pub(super) fn batch(rows: &[Tuple]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int32Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(Int32Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

pub(super) fn col(i: usize) -> PhysExpr {
    PhysExpr::col(i, ["id", "k", "v"][i])
}

pub(super) fn asc(i: usize) -> SortExpr {
    SortExpr {
        expr: col(i),
        asc: true,
        nulls_first: false,
    }
}

pub(super) fn rows_frame(preceding: Option<u64>, following: Option<u64>) -> WindowFrame {
    let bound = |v: Option<u64>| Scalar(ScalarValue::UInt64(v));
    WindowFrame {
        units: FrameUnits::Rows,
        start: match preceding {
            Some(0) => FrameBound::CurrentRow,
            p => FrameBound::Preceding(bound(p)),
        },
        end: match following {
            Some(0) => FrameBound::CurrentRow,
            f => FrameBound::Following(bound(f)),
        },
    }
}

pub(super) fn range_to_current() -> WindowFrame {
    WindowFrame {
        units: FrameUnits::Range,
        start: FrameBound::Preceding(Scalar(ScalarValue::UInt64(None))),
        end: FrameBound::CurrentRow,
    }
}

pub(super) fn wexpr(
    func: WindowFunc,
    args: Vec<PhysExpr>,
    partition_by: Vec<PhysExpr>,
    order_by: Vec<SortExpr>,
    frame: WindowFrame,
    name: &str,
) -> WindowExpr {
    WindowExpr {
        func,
        args,
        partition_by,
        order_by,
        frame,
        ignore_nulls: false,
        distinct: false,
        filter: None,
        name: name.into(),
    }
}

/// row_number, sum over 1 preceding row, lag(v, 1, -1), count(*) over
/// the partition: PARTITION BY k ORDER BY id.
pub(super) fn by_id_exprs() -> Vec<WindowExpr> {
    let w = |f: &str| WindowFunc::Window(f.into());
    let a = |f: &str| WindowFunc::Aggregate(f.into());
    vec![
        wexpr(
            w("row_number"),
            vec![],
            vec![col(1)],
            vec![asc(0)],
            rows_frame(None, Some(0)),
            "rn",
        ),
        wexpr(
            a("sum"),
            vec![col(2)],
            vec![col(1)],
            vec![asc(0)],
            rows_frame(Some(1), Some(0)),
            "s",
        ),
        wexpr(
            w("lag"),
            vec![
                col(2),
                PhysExpr::lit(ScalarValue::Int64(Some(1))),
                PhysExpr::lit(ScalarValue::Int64(Some(-1))),
            ],
            vec![col(1)],
            vec![asc(0)],
            rows_frame(None, Some(0)),
            "lag",
        ),
        wexpr(
            a("count"),
            vec![PhysExpr::lit(ScalarValue::Int64(Some(1)))],
            vec![col(1)],
            vec![],
            WindowFrame::whole_partition(),
            "cnt",
        ),
    ]
}

/// The expected values of [`by_id_exprs`] per id.
fn by_id_reference(rows: &[Tuple]) -> BTreeMap<i32, Vec<Option<i64>>> {
    let mut groups: BTreeMap<Option<i32>, Vec<Tuple>> = BTreeMap::new();
    for r in rows {
        groups.entry(r.1).or_default().push(*r);
    }
    let mut out = BTreeMap::new();
    for (_, mut g) in groups {
        g.sort_by_key(|r| r.0);
        for (i, r) in g.iter().enumerate() {
            let window = &g[i.saturating_sub(1)..=i];
            let vals: Vec<i64> = window.iter().filter_map(|r| r.2).collect();
            let s = (!vals.is_empty()).then(|| vals.iter().sum());
            let lag = if i == 0 { Some(-1) } else { g[i - 1].2 };
            out.insert(r.0, vec![Some(i as i64 + 1), s, lag, Some(g.len() as i64)]);
        }
    }
    out
}

/// Output rows as id -> window values (cast to Int64).
pub(super) fn window_values(
    batches: &[RecordBatch],
    n_in: usize,
) -> BTreeMap<i32, Vec<Option<i64>>> {
    let mut out = BTreeMap::new();
    for b in batches {
        let ids = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
        let cols: Vec<Int64Array> = b.columns()[n_in..]
            .iter()
            .map(|c| {
                let c = cast(c, &DataType::Int64).unwrap();
                c.as_any().downcast_ref::<Int64Array>().unwrap().clone()
            })
            .collect();
        for i in 0..b.num_rows() {
            let vals = cols
                .iter()
                .map(|c| c.is_valid(i).then(|| c.value(i)))
                .collect();
            assert!(out.insert(ids.value(i), vals).is_none(), "duplicate row");
        }
    }
    out
}

pub(super) fn out_schema(exprs: &[WindowExpr]) -> SchemaRef {
    let input = schema();
    let registry = FunctionRegistry::with_defaults();
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    for e in exprs {
        fields.push(e.field(&input, &registry).unwrap());
    }
    Arc::new(Schema::new(fields))
}

pub(super) fn kernel(exprs: &[WindowExpr], batch_size: usize) -> WindowKernel {
    let input = schema();
    let registry = FunctionRegistry::with_defaults();
    let compiled = exprs
        .iter()
        .map(|e| e.compile(&input, &registry).unwrap())
        .collect();
    let keys = exprs[0]
        .partition_by
        .iter()
        .map(|k| k.compile(&input, &registry).unwrap())
        .collect();
    WindowKernel::new(
        Arc::new(compiled),
        Arc::new(keys),
        Arc::clone(&input),
        out_schema(exprs),
        batch_size,
    )
}

/// The rows sorted in the required order of `exprs`.
pub(super) fn sorted(rows: &[Tuple], exprs: &[WindowExpr]) -> RecordBatch {
    let order = required_order(exprs).unwrap();
    let keys = SortKeys::try_new(&order, &schema(), &FunctionRegistry::with_defaults()).unwrap();
    keys.sort_batch(&batch(rows), None).unwrap()
}

#[test]
fn kernel_matches_reference_for_any_batch_split() {
    let rows = data(53);
    let exprs = by_id_exprs();
    let input = sorted(&rows, &exprs);
    let expected = by_id_reference(&rows);
    for chunk in [1, 2, 3, 7, 16, 53] {
        for batch_size in [1, 4, 100] {
            let mut k = kernel(&exprs, batch_size);
            let mut out = Vec::new();
            let mut offset = 0;
            while offset < input.num_rows() {
                let len = chunk.min(input.num_rows() - offset);
                out.extend(k.push(input.slice(offset, len)).unwrap());
                offset += len;
            }
            out.extend(k.finish().unwrap());
            for b in &out {
                assert!(b.num_rows() <= batch_size, "batch of {}", b.num_rows());
            }
            assert_eq!(
                window_values(&out, 3),
                expected,
                "chunk {chunk}, batch_size {batch_size}"
            );
        }
    }
}

#[test]
fn kernel_emits_each_partition_when_complete() {
    let rows = data(40);
    let exprs = by_id_exprs();
    let input = sorted(&rows, &exprs);
    let mut k = kernel(&exprs, 1);
    // Rows of the first partition do not produce output until the
    // first row of the second partition arrives.
    let first_len = rows.iter().filter(|r| r.1.is_none()).count();
    assert!(first_len > 1);
    let mut emitted = 0;
    for i in 0..first_len {
        emitted += k.push(input.slice(i, 1)).unwrap().len();
    }
    assert_eq!(emitted, 0);
    let out = k.push(input.slice(first_len, 1)).unwrap();
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), first_len);
}

#[test]
fn ranks_with_ties_and_range_frames() {
    // PARTITION BY k ORDER BY v: rank, dense_rank, sum with RANGE
    // UNBOUNDED PRECEDING AND CURRENT ROW (peers included).
    let rows = data(37);
    let order = vec![asc(2)];
    let w = |f: &str| WindowFunc::Window(f.into());
    let exprs = vec![
        wexpr(
            w("rank"),
            vec![],
            vec![col(1)],
            order.clone(),
            range_to_current(),
            "r",
        ),
        wexpr(
            w("dense_rank"),
            vec![],
            vec![col(1)],
            order.clone(),
            range_to_current(),
            "dr",
        ),
        wexpr(
            WindowFunc::Aggregate("sum".into()),
            vec![col(2)],
            vec![col(1)],
            order.clone(),
            range_to_current(),
            "s",
        ),
    ];
    let input = sorted(&rows, &exprs);
    let mut k = kernel(&exprs, 5);
    let mut out = Vec::new();
    for i in (0..input.num_rows()).step_by(4) {
        out.extend(k.push(input.slice(i, 4.min(input.num_rows() - i))).unwrap());
    }
    out.extend(k.finish().unwrap());
    let got = window_values(&out, 3);

    let mut expected = BTreeMap::new();
    for r in &rows {
        let peers: Vec<&Tuple> = rows.iter().filter(|o| o.1 == r.1).collect();
        // NULLS LAST: a NULL v is after every value.
        let before = |o: &Tuple| match (o.2, r.2) {
            (Some(a), Some(b)) => a < b,
            (Some(_), None) => true,
            _ => false,
        };
        let rank = peers.iter().filter(|o| before(o)).count() as i64 + 1;
        let mut distinct: Vec<Option<i64>> =
            peers.iter().filter(|o| before(o)).map(|o| o.2).collect();
        distinct.sort();
        distinct.dedup();
        let upto: Vec<i64> = peers
            .iter()
            .filter(|o| before(o) || o.2 == r.2)
            .filter_map(|o| o.2)
            .collect();
        let sum = (!upto.is_empty()).then(|| upto.iter().sum());
        expected.insert(r.0, vec![Some(rank), Some(distinct.len() as i64 + 1), sum]);
    }
    assert_eq!(got, expected);
}

#[tokio::test]
async fn plan_with_hash_exchange_sort_and_window() {
    let rows = data(101);
    let exprs = by_id_exprs();
    let order = required_order(&exprs).unwrap();
    let batches: Vec<RecordBatch> = rows.chunks(9).map(batch).collect();
    for partitions in [1, 3] {
        let input = PhysicalPlan::Exchange {
            input: Box::new(scan(&schema(), 2)),
            partitioning: Partitioning::Hash {
                keys: vec![col(1)],
                partitions,
            },
        };
        let plan = PhysicalPlan::Exchange {
            input: Box::new(PhysicalPlan::Window {
                input: Box::new(PhysicalPlan::Sort {
                    input: Box::new(input),
                    order: order.clone(),
                    fetch: None,
                }),
                exprs: exprs.clone(),
                schema: out_schema(&exprs),
            }),
            partitioning: Partitioning::Gather,
        };
        let out = run_plan(plan, batches.clone(), 8).await.unwrap();
        assert_eq!(window_values(&out, 3), by_id_reference(&rows));
    }
}

#[tokio::test]
async fn no_partition_by_uses_the_whole_input() {
    let rows = data(30);
    let exprs = vec![wexpr(
        WindowFunc::Window("ntile".into()),
        vec![PhysExpr::lit(ScalarValue::Int64(Some(4)))],
        vec![],
        vec![asc(0)],
        rows_frame(None, Some(0)),
        "tile",
    )];
    let plan = PhysicalPlan::Window {
        input: Box::new(PhysicalPlan::Sort {
            input: Box::new(PhysicalPlan::Exchange {
                input: Box::new(scan(&schema(), 3)),
                partitioning: Partitioning::Gather,
            }),
            order: required_order(&exprs).unwrap(),
            fetch: None,
        }),
        exprs: exprs.clone(),
        schema: out_schema(&exprs),
    };
    let out = run_plan(plan, rows.chunks(4).map(batch).collect(), 7)
        .await
        .unwrap();
    let got = window_values(&out, 3);
    // 30 rows in 4 tiles: 8, 8, 7, 7.
    for (id, vals) in got {
        let tile = if id < 8 {
            1
        } else if id < 16 {
            2
        } else if id < 23 {
            3
        } else {
            4
        };
        assert_eq!(vals, vec![Some(tile)], "id {id}");
    }
}

#[test]
fn required_order_needs_shared_keys() {
    let a = by_id_exprs();
    assert_eq!(
        required_order(&a).unwrap(),
        vec![
            SortExpr {
                expr: col(1),
                asc: true,
                nulls_first: true
            },
            asc(0)
        ]
    );
    let mut other_partition = a[0].clone();
    other_partition.partition_by = vec![col(2)];
    assert!(required_order(&[a[0].clone(), other_partition]).is_none());
    let mut other_order = a[0].clone();
    other_order.order_by = vec![asc(2)];
    assert!(required_order(&[a[0].clone(), other_order.clone()]).is_none());
    let mut longer = a[0].clone();
    longer.order_by = vec![asc(0), asc(2)];
    assert_eq!(
        required_order(&[a[3].clone(), a[0].clone(), longer])
            .unwrap()
            .len(),
        3
    );

    // The operator refuses incompatible expressions.
    let input: Arc<dyn Operator> = Arc::new(super::super::values::Empty::new(schema(), false));
    let exprs = vec![a[0].clone(), other_order];
    let err = Window::try_new(
        input,
        &exprs,
        out_schema(&exprs),
        &FunctionRegistry::with_defaults(),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("PARTITION BY"), "{err}");
}

#[test]
fn bad_expressions_fail_at_compile_time() {
    let registry = FunctionRegistry::with_defaults();
    let mut e = by_id_exprs()[1].clone();
    e.frame = rows_frame(Some(1), Some(0));
    e.frame.start = FrameBound::Following(Scalar(ScalarValue::UInt64(Some(2))));
    let err = e.compile(&schema(), &registry).err().unwrap();
    assert!(err.to_string().contains("invalid window frame"), "{err}");

    let mut e = by_id_exprs()[0].clone();
    e.func = WindowFunc::Window("no_such_window".into());
    let err = e.compile(&schema(), &registry).err().unwrap();
    assert!(matches!(err, DataflowError::NotSupported(_)), "{err}");
}

#[test]
fn window_expr_roundtrips_through_cbor() {
    let mut exprs = by_id_exprs();
    exprs[1].filter = Some(PhysExpr::IsNotNull(Box::new(col(2))));
    exprs[1].frame = WindowFrame {
        units: FrameUnits::Range,
        start: FrameBound::Preceding(Scalar(ScalarValue::Int64(Some(3)))),
        end: FrameBound::Following(Scalar(ScalarValue::Int64(None))),
    };
    for e in exprs {
        let mut buf = Vec::new();
        ciborium::into_writer(&e, &mut buf).unwrap();
        let back: WindowExpr = ciborium::from_reader(buf.as_slice()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.frame.to_df(), e.frame.to_df());
    }
    let plan = PhysicalPlan::Window {
        input: Box::new(scan(&schema(), 1)),
        exprs: by_id_exprs(),
        schema: out_schema(&by_id_exprs()),
    };
    assert!(plan
        .describe()
        .starts_with("Window: [row_number() OVER (PARTITION BY k@1"));
}

/// Sort by the required order of `exprs`, then the window, over one
/// partition of the scan of `schema()`.
pub(super) fn sorted_window_plan(exprs: &[WindowExpr]) -> PhysicalPlan {
    PhysicalPlan::Window {
        input: Box::new(PhysicalPlan::Sort {
            input: Box::new(scan(&schema(), 1)),
            order: required_order(exprs).unwrap(),
            fetch: None,
        }),
        exprs: exprs.to_vec(),
        schema: out_schema(exprs),
    }
}

#[tokio::test]
async fn small_window_partitions_under_a_limit_with_a_spilling_sort() {
    use crate::test_util::{assert_spill_dir_empty, run_counting_spills, spilling_config};
    // 50 window partitions of 40 rows, in scrambled order.
    let rows: Vec<Tuple> = (0..2000)
        .map(|i| {
            (
                (i * 7919) % 2000,
                Some(i % 50),
                (i % 9 != 4).then_some(i as i64 % 13),
            )
        })
        .collect();
    let exprs = by_id_exprs();
    let plan = sorted_window_plan(&exprs);
    let dir = tempfile::tempdir().unwrap();
    let config = spilling_config(16, 32 << 10, dir.path());
    let tables = vec![("t", rows.chunks(50).map(batch).collect())];
    let (out, spill) = run_counting_spills(&plan, tables, config).await;
    assert_eq!(window_values(&out.unwrap(), 3), by_id_reference(&rows));
    assert!(spill.spill_files > 0, "the sort spills: {spill:?}");
    assert_spill_dir_empty(dir.path()).await;
}

#[tokio::test]
async fn window_partition_that_does_not_fit_fails_naming_the_window() {
    use crate::test_util::{
        assert_exhausted, assert_spill_dir_empty, run_counting_spills, spilling_config,
    };
    let rows = data(2000);
    // No PARTITION BY: all 2000 rows are one window partition, and the
    // frame of the first row reaches the last.
    let exprs = vec![wexpr(
        WindowFunc::Aggregate("sum".into()),
        vec![col(2)],
        vec![],
        vec![asc(0)],
        WindowFrame {
            units: FrameUnits::Rows,
            start: FrameBound::CurrentRow,
            ..WindowFrame::whole_partition()
        },
        "rest",
    )];
    let plan = sorted_window_plan(&exprs);
    let dir = tempfile::tempdir().unwrap();
    let limit = 32 << 10;
    let config = spilling_config(16, limit, dir.path());
    let tables = vec![("t", rows.chunks(50).map(batch).collect())];
    let (out, _) = run_counting_spills(&plan, tables, config).await;
    assert_exhausted(out, "Window (node 0, partition 0) window partition", limit);
    assert_spill_dir_empty(dir.path()).await;
}
