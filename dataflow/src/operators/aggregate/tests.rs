use arrow::array::{
    Array, AsArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion_common::ScalarValue;

use super::aggregator::Aggregator;
use super::*;
use crate::error::DataflowError;
use crate::expr::{AggExpr, BinaryOp, PhysExpr};
use crate::plan::AggregateMode;

fn registry() -> FunctionRegistry {
    FunctionRegistry::with_defaults()
}

fn agg(func: &str, args: Vec<PhysExpr>, alias: &str) -> AggExpr {
    AggExpr {
        func: func.into(),
        args,
        distinct: false,
        filter: None,
        order_by: vec![],
        alias: alias.into(),
        ignore_nulls: false,
    }
}

fn col(i: usize, name: &str) -> PhysExpr {
    PhysExpr::col(i, name)
}

/// Input: k1 Utf8, k2 Int32, v Int64, f Float64
fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k1", DataType::Utf8, true),
        Field::new("k2", DataType::Int32, true),
        Field::new("v", DataType::Int64, true),
        Field::new("f", DataType::Float64, true),
    ]))
}

fn batch(k1: Vec<Option<&str>>, k2: Vec<Option<i32>>, v: Vec<Option<i64>>) -> RecordBatch {
    let f: Vec<Option<f64>> = v.iter().map(|x| x.map(|x| x as f64 / 2.0)).collect();
    RecordBatch::try_new(
        input_schema(),
        vec![
            Arc::new(StringArray::from(k1)),
            Arc::new(Int32Array::from(k2)),
            Arc::new(Int64Array::from(v)),
            Arc::new(Float64Array::from(f)),
        ],
    )
    .unwrap()
}

fn batch1() -> RecordBatch {
    batch(
        vec![
            Some("a"),
            Some("b"),
            None,
            Some("a"),
            Some("b"),
            None,
            Some("a"),
        ],
        vec![Some(1), Some(1), Some(2), Some(1), None, Some(2), None],
        vec![Some(10), None, Some(5), Some(20), Some(7), None, Some(1)],
    )
}

fn batch2() -> RecordBatch {
    batch(
        vec![Some("b"), Some("a"), Some("c"), None],
        vec![None, Some(1), Some(3), Some(2)],
        vec![Some(3), Some(30), None, Some(1)],
    )
}

fn standard_aggs() -> Vec<AggExpr> {
    vec![
        agg("count", vec![col(2, "v")], "cnt"),
        agg(
            "count",
            vec![PhysExpr::lit(ScalarValue::Int64(Some(1)))],
            "cnt_star",
        ),
        agg("sum", vec![col(2, "v")], "s"),
        agg("min", vec![col(2, "v")], "mn"),
        agg("max", vec![col(0, "k1")], "mx"),
        agg("avg", vec![col(3, "f")], "av"),
    ]
}

/// The schema the planner would compute.
fn out_schema(
    mode: AggregateMode,
    group_by: &[PhysExpr],
    aggs: &[AggExpr],
    input: &Schema,
) -> SchemaRef {
    let reg = registry();
    let mut fields: Vec<Field> = group_by
        .iter()
        .map(|g| {
            let e = g.compile(input, &reg).unwrap();
            Field::new(g.to_string(), e.data_type(input).unwrap(), true)
        })
        .collect();
    for a in aggs {
        let l = a.compile(input, &reg).unwrap();
        match mode {
            AggregateMode::Partial => fields.extend(
                l.aggregate
                    .state_fields()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_ref().clone()),
            ),
            _ => fields.push(l.aggregate.field().as_ref().clone()),
        }
    }
    Arc::new(Schema::new(fields))
}

fn spec(
    mode: AggregateMode,
    group_by: &[PhysExpr],
    aggs: &[AggExpr],
    operator_input: &Schema,
) -> Arc<AggSpec> {
    let input = input_schema();
    let schema = out_schema(mode, group_by, aggs, &input);
    Arc::new(
        AggSpec::try_new(
            operator_input,
            AggregateConfig {
                mode,
                group_by,
                grouping_sets: &[],
                aggregates: aggs,
                aggregate_input_schema: Arc::clone(&input),
                schema,
            },
            &registry(),
        )
        .unwrap(),
    )
}

fn run(spec: &Arc<AggSpec>, batches: &[RecordBatch], batch_size: usize) -> Vec<RecordBatch> {
    let mut a = Aggregator::try_new(Arc::clone(spec)).unwrap();
    for b in batches {
        a.push(b).unwrap();
    }
    a.finish(batch_size).unwrap()
}

fn run_single(group_by: &[PhysExpr], aggs: &[AggExpr], batches: &[RecordBatch]) -> Vec<String> {
    let s = spec(AggregateMode::Single, group_by, aggs, &input_schema());
    rows_of(&run(&s, batches, 3))
}

/// Partial over each input separately, then one Final over all partial
/// outputs.
fn run_two_phase(
    group_by: &[PhysExpr],
    aggs: &[AggExpr],
    inputs: &[Vec<RecordBatch>],
) -> Vec<String> {
    let partial = spec(AggregateMode::Partial, group_by, aggs, &input_schema());
    let mut partial_out = vec![];
    for input in inputs {
        partial_out.extend(run(&partial, input, 2));
    }
    let final_spec = spec(AggregateMode::Final, group_by, aggs, &partial.schema);
    rows_of(&run(&final_spec, &partial_out, 1024))
}

/// Rows rendered as strings, sorted.
fn rows_of(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = vec![];
    for b in batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| {
                    let v = ScalarValue::try_from_array(c, r).unwrap();
                    if v.is_null() {
                        "NULL".to_string()
                    } else {
                        v.to_string()
                    }
                })
                .collect();
            out.push(cells.join("|"));
        }
    }
    out.sort();
    out
}

#[test]
fn grouped_basic_aggregates_with_nulls() {
    let g = [col(0, "k1")];
    let got = run_single(&g, &standard_aggs(), &[batch1(), batch2()]);
    // a: v 10,20,1,30 ; b: v NULL,7,3 ; c: NULL ; NULL: 5,NULL,1
    assert_eq!(
        got,
        vec![
            "NULL|2|3|6|1|NULL|1.5",
            "a|4|4|61|1|a|7.625",
            "b|2|3|10|3|b|2.5",
            "c|0|1|NULL|NULL|c|NULL",
        ]
    );
}

#[test]
fn output_types_match_aggregate_fields() {
    let g = [col(0, "k1")];
    let s = spec(AggregateMode::Single, &g, &standard_aggs(), &input_schema());
    let out = run(&s, &[batch1()], 100);
    assert_eq!(out[0].schema(), s.schema);
    assert_eq!(out[0].column(1).data_type(), &DataType::Int64);
    assert_eq!(out[0].column(6).data_type(), &DataType::Float64);
}

#[test]
fn multiple_keys_with_null_keys() {
    let g = [col(0, "k1"), col(1, "k2")];
    let aggs = [agg("sum", vec![col(2, "v")], "s")];
    let got = run_single(&g, &aggs, &[batch1(), batch2()]);
    assert_eq!(
        got,
        vec![
            "NULL|2|6",
            "a|1|60",
            "a|NULL|1",
            "b|1|NULL",
            "b|NULL|10",
            "c|3|NULL",
        ]
    );
}

#[test]
fn single_integer_key_with_nulls() {
    let g = [col(1, "k2")];
    let aggs = [
        agg("count", vec![col(2, "v")], "c"),
        agg("sum", vec![col(2, "v")], "s"),
    ];
    let got = run_single(&g, &aggs, &[batch1(), batch2()]);
    assert_eq!(got, vec!["1|3|60", "2|2|6", "3|0|NULL", "NULL|3|11"]);
    // Same through two phases.
    let two = run_two_phase(&g, &aggs, &[vec![batch1()], vec![batch2()]]);
    assert_eq!(two, got);
}

#[test]
fn empty_input_with_and_without_groups() {
    let aggs = standard_aggs();
    // Grouped: no rows at all.
    assert!(run_single(&[col(0, "k1")], &aggs, &[]).is_empty());
    assert!(run_two_phase(&[col(0, "k1")], &aggs, &[vec![], vec![]]).is_empty());
    // Ungrouped: one row.
    let empty = batch(vec![], vec![], vec![]);
    let expected = vec!["0|0|NULL|NULL|NULL|NULL"];
    assert_eq!(run_single(&[], &aggs, &[]), expected);
    assert_eq!(
        run_single(&[], &aggs, std::slice::from_ref(&empty)),
        expected
    );
    assert_eq!(run_two_phase(&[], &aggs, &[vec![], vec![empty]]), expected);
    // Partial without groups emits one row of states.
    let partial = spec(AggregateMode::Partial, &[], &aggs, &input_schema());
    let out = run(&partial, &[], 10);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].num_rows(), 1);
    assert_eq!(out[0].schema(), partial.schema);
    // Final over no partial rows at all.
    let final_spec = spec(AggregateMode::Final, &[], &aggs, &partial.schema);
    assert_eq!(rows_of(&run(&final_spec, &[], 10)), expected);
}

#[test]
fn ungrouped_aggregates() {
    let got = run_single(&[], &standard_aggs(), &[batch1(), batch2()]);
    assert_eq!(got, vec!["8|11|77|1|c|4.8125"]);
    let two = run_two_phase(&[], &standard_aggs(), &[vec![batch1()], vec![batch2()]]);
    assert_eq!(two, got);
}

#[test]
fn partial_final_round_trip_equals_single() {
    let mut aggs = standard_aggs();
    let mut d = agg("count", vec![col(2, "v")], "dc");
    d.distinct = true;
    aggs.push(d);
    let mut ds = agg("count", vec![col(0, "k1")], "dcs");
    ds.distinct = true;
    aggs.push(ds);
    for g in [
        vec![],
        vec![col(0, "k1")],
        vec![col(1, "k2")],
        vec![col(0, "k1"), col(1, "k2")],
    ] {
        let single = run_single(&g, &aggs, &[batch1(), batch2(), batch1()]);
        let two = run_two_phase(&g, &aggs, &[vec![batch1(), batch2()], vec![batch1()]]);
        assert_eq!(single, two, "group by {g:?}");
    }
}

#[test]
fn count_distinct() {
    let mut d = agg("count", vec![col(2, "v")], "dc");
    d.distinct = true;
    let mut ds = agg("count", vec![col(0, "k1")], "dcs");
    ds.distinct = true;
    let mut sd = agg("sum", vec![col(2, "v")], "sd");
    sd.distinct = true;
    let aggs = [d, ds, sd];
    // Ungrouped over the data twice: v = {10,5,20,7,1,3,30}, k1 = {a,b,c}.
    let got = run_single(&[], &aggs, &[batch1(), batch2(), batch1()]);
    assert_eq!(got, vec!["7|3|76"]);
    let two = run_two_phase(&[], &aggs, &[vec![batch1()], vec![batch2(), batch1()]]);
    assert_eq!(two, got);
    // Grouped by k2.
    let got = run_single(&[col(1, "k2")], &aggs, &[batch1(), batch2(), batch1()]);
    assert_eq!(
        got,
        vec!["1|3|2|60", "2|2|0|6", "3|0|1|NULL", "NULL|3|2|11"]
    );
    let two = run_two_phase(
        &[col(1, "k2")],
        &aggs,
        &[vec![batch1()], vec![batch2(), batch1()]],
    );
    assert_eq!(two, got);
}

#[test]
fn filter_clause() {
    let pred = PhysExpr::Binary {
        left: Box::new(col(2, "v")),
        op: BinaryOp::Gt,
        right: Box::new(PhysExpr::lit(ScalarValue::Int64(Some(5)))),
    };
    let mut c = agg(
        "count",
        vec![PhysExpr::lit(ScalarValue::Int64(Some(1)))],
        "c",
    );
    c.filter = Some(pred.clone());
    let mut s = agg("sum", vec![col(2, "v")], "s");
    s.filter = Some(pred.clone());
    let mut mx = agg("max", vec![col(0, "k1")], "mx");
    mx.filter = Some(pred);
    let aggs = [c, s, mx, agg("count", vec![col(2, "v")], "all")];
    // v > 5 (NULL v excluded): a: 10,20,30 ; b: 7 ; NULL: none ; c: none
    let got = run_single(&[col(0, "k1")], &aggs, &[batch1(), batch2()]);
    assert_eq!(
        got,
        vec![
            "NULL|0|NULL|NULL|2",
            "a|3|60|a|4",
            "b|1|7|b|2",
            "c|0|NULL|NULL|0",
        ]
    );
    let two = run_two_phase(&[col(0, "k1")], &aggs, &[vec![batch1()], vec![batch2()]]);
    assert_eq!(two, got);
    let got = run_single(&[], &aggs, &[batch1(), batch2()]);
    assert_eq!(got, vec!["4|67|b|8"]);
}

#[test]
fn order_sensitive_aggregates() {
    use crate::expr::SortExpr;
    let desc = |e: PhysExpr| SortExpr {
        expr: e,
        asc: false,
        nulls_first: false,
    };
    let mut fv = agg("first_value", vec![col(2, "v")], "fv");
    fv.order_by = vec![desc(col(2, "v"))];
    let mut fs = agg("first_value", vec![col(0, "k1")], "fs");
    fs.order_by = vec![desc(col(2, "v"))];
    let mut aa = agg("array_agg", vec![col(2, "v")], "aa");
    aa.order_by = vec![desc(col(2, "v"))];
    let aggs = [fv, fs, agg("max", vec![col(2, "v")], "mx"), aa];
    let g = [col(1, "k2")];
    let got = run_single(&g, &aggs, &[batch1(), batch2()]);
    // k2=1: v 10,NULL,20,30 (k1 a,b,a,a); k2=2: 5,NULL,1; 3: NULL; NULL: 7,1,3
    // (list display shows NULL elements as empty)
    assert_eq!(
        got,
        vec![
            "1|30|a|30|[30, 20, 10, ]",
            "2|5|NULL|5|[5, 1, ]",
            "3|NULL|c|NULL|[]",
            "NULL|7|b|7|[7, 3, 1]",
        ]
    );
    let two = run_two_phase(&g, &aggs, &[vec![batch1()], vec![batch2()]]);
    assert_eq!(two, got);
}

#[test]
fn output_is_sliced_to_batch_size() {
    let n = 10_000i64;
    let schema = input_schema();
    let b = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("k{}", i % 1000)),
            )),
            Arc::new(Int32Array::from_iter_values(
                (0..n).map(|i| (i % 777) as i32),
            )),
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64))),
        ],
    )
    .unwrap();
    // k1 = i % 1000, k2 = i % 777: the pair is unique per row (lcm > n).
    for (g, expected) in [
        (vec![col(0, "k1")], 1000),
        (vec![col(1, "k2")], 777),
        (vec![col(0, "k1"), col(1, "k2")], n as usize),
    ] {
        let s = spec(
            AggregateMode::Single,
            &g,
            &[agg("sum", vec![col(2, "v")], "s")],
            &input_schema(),
        );
        let out = run(&s, &[b.clone(), b.slice(100, 500)], 256);
        assert!(out.iter().all(|b| b.num_rows() <= 256));
        let total: usize = out.iter().map(|b| b.num_rows()).sum();
        assert_eq!(total, expected, "group by {g:?}");
        let sum: i64 = out
            .iter()
            .map(|b| {
                b.column(g.len())
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .sum::<i64>()
            })
            .sum();
        assert_eq!(sum, (0..n).sum::<i64>() + (100..600).sum::<i64>());
    }
}

// ---- grouping sets ----------------------------------------------------

fn sets_schema(
    mode: AggregateMode,
    group_by: &[PhysExpr],
    sets: &[Vec<bool>],
    aggs: &[AggExpr],
) -> SchemaRef {
    let base = out_schema(mode, group_by, aggs, &input_schema());
    let (_, id_type) = grouping_ids(sets).unwrap();
    let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.insert(group_by.len(), Field::new("__grouping_id", id_type, false));
    Arc::new(Schema::new(fields))
}

fn sets_spec(
    mode: AggregateMode,
    group_by: &[PhysExpr],
    sets: &[Vec<bool>],
    aggs: &[AggExpr],
    operator_input: &Schema,
) -> Arc<AggSpec> {
    Arc::new(
        AggSpec::try_new(
            operator_input,
            AggregateConfig {
                mode,
                group_by,
                grouping_sets: sets,
                aggregates: aggs,
                aggregate_input_schema: input_schema(),
                schema: sets_schema(mode, group_by, sets, aggs),
            },
            &registry(),
        )
        .unwrap(),
    )
}

/// Single, and Partial per input then Final; both must agree.
fn run_sets(
    group_by: &[PhysExpr],
    sets: &[Vec<bool>],
    aggs: &[AggExpr],
    inputs: &[Vec<RecordBatch>],
) -> Vec<String> {
    let single = sets_spec(AggregateMode::Single, group_by, sets, aggs, &input_schema());
    let all: Vec<RecordBatch> = inputs.iter().flatten().cloned().collect();
    let out = run(&single, &all, 3);
    assert!(out.iter().all(|b| b.schema() == single.schema));
    let got = rows_of(&out);
    let partial = sets_spec(
        AggregateMode::Partial,
        group_by,
        sets,
        aggs,
        &input_schema(),
    );
    let mut partial_out = vec![];
    for input in inputs {
        partial_out.extend(run(&partial, input, 2));
    }
    let final_spec = sets_spec(AggregateMode::Final, group_by, sets, aggs, &partial.schema);
    assert_eq!(rows_of(&run(&final_spec, &partial_out, 1024)), got);
    got
}

#[test]
fn grouping_id_values_and_types() {
    let (f, t) = (false, true);
    // ROLLUP(a, b)
    let (ids, ty) = grouping_ids(&[vec![f, f], vec![f, t], vec![t, t]]).unwrap();
    assert_eq!((ids, ty), (vec![0, 1, 3], DataType::UInt8));
    // The first key is the most significant bit.
    let (ids, _) = grouping_ids(&[vec![t, f], vec![f, t]]).unwrap();
    assert_eq!(ids, vec![2, 1]);
    // Repeated sets get their occurrence number above the key bits.
    let (ids, ty) = grouping_ids(&[vec![f, t], vec![f, t], vec![t, t], vec![f, t]]).unwrap();
    assert_eq!((ids, ty), (vec![1, 5, 3, 9], DataType::UInt8));
    // 7 keys and an ordinal of 2 need 9 bits.
    let (_, ty) = grouping_ids(&[vec![f; 7], vec![f; 7], vec![f; 7]]).unwrap();
    assert_eq!(ty, DataType::UInt16);
    assert_eq!(grouping_ids(&[vec![f; 8]]).unwrap().1, DataType::UInt8);
    assert_eq!(grouping_ids(&[vec![f; 9]]).unwrap().1, DataType::UInt16);
    assert_eq!(grouping_ids(&[vec![f; 17]]).unwrap().1, DataType::UInt32);
    assert_eq!(grouping_ids(&[vec![f; 33]]).unwrap().1, DataType::UInt64);
    assert_eq!(grouping_ids(&[vec![t; 64]]).unwrap().0, vec![u64::MAX]);
    assert!(grouping_ids(&[vec![f; 64], vec![f; 64]]).is_err());
    assert!(grouping_ids(&[vec![f; 2], vec![f; 3]]).is_err());
}

#[test]
fn rollup_two_keys() {
    let (f, t) = (false, true);
    let g = [col(0, "k1"), col(1, "k2")];
    let sets = [vec![f, f], vec![f, t], vec![t, t]];
    let aggs = [agg("sum", vec![col(2, "v")], "s")];
    let got = run_sets(&g, &sets, &aggs, &[vec![batch1()], vec![batch2()]]);
    // k1|k2|__grouping_id|sum: a NULL key (id 0) differs from a key
    // that is not grouped (id 1, 3).
    assert_eq!(
        got,
        vec![
            "NULL|2|0|6",
            "NULL|NULL|1|6",
            "NULL|NULL|3|77",
            "a|1|0|60",
            "a|NULL|0|1",
            "a|NULL|1|61",
            "b|1|0|NULL",
            "b|NULL|0|10",
            "b|NULL|1|10",
            "c|3|0|NULL",
            "c|NULL|1|NULL",
        ]
    );
}

#[test]
fn grouping_sets_with_aggregate_states_and_filter() {
    let (f, t) = (false, true);
    // GROUPING SETS ((k2), (k1), (k2)) with avg, count(distinct) and
    // a FILTER clause.
    let g = [col(0, "k1"), col(1, "k2")];
    let sets = [vec![t, f], vec![f, t], vec![t, f]];
    let mut dc = agg("count", vec![col(0, "k1")], "dc");
    dc.distinct = true;
    let mut c = agg(
        "count",
        vec![PhysExpr::lit(ScalarValue::Int64(Some(1)))],
        "c",
    );
    c.filter = Some(PhysExpr::Binary {
        left: Box::new(col(2, "v")),
        op: BinaryOp::Gt,
        right: Box::new(PhysExpr::lit(ScalarValue::Int64(Some(5)))),
    });
    let aggs = [agg("avg", vec![col(3, "f")], "av"), dc, c];
    let got = run_sets(
        &g,
        &sets,
        &aggs,
        &[vec![batch1(), batch2()], vec![batch1()]],
    );
    // Per k2 (twice: ids 2 and 6) and per k1 (id 1).
    let by_k2 = [
        "NULL|1|{}|9|2|5",
        "NULL|2|{}|1.8333333333333333|0|0",
        "NULL|3|{}|NULL|1|0",
        "NULL|NULL|{}|1.9|2|2",
    ];
    let mut expected: Vec<String> = by_k2
        .iter()
        .flat_map(|r| [r.replace("{}", "2"), r.replace("{}", "6")])
        .collect();
    expected.extend(
        [
            "NULL|NULL|1|1.8333333333333333|0|0",
            "a|NULL|1|6.571428571428571|1|5",
            "b|NULL|1|2.8333333333333335|1|2",
            "c|NULL|1|NULL|1|0",
        ]
        .map(String::from),
    );
    expected.sort();
    // (f = v / 2; batch1 counts twice)
    assert_eq!(got, expected);
}

#[test]
fn grouping_sets_empty_input_and_empty_set() {
    let (f, t) = (false, true);
    let aggs = [agg("count", vec![col(2, "v")], "c")];
    // ROLLUP(k1) over no rows: only the total, once (one partial row
    // per empty partition, merged).
    let got = run_sets(
        &[col(0, "k1")],
        &[vec![f], vec![t]],
        &aggs,
        &[vec![], vec![]],
    );
    assert_eq!(got, vec!["NULL|1|0"]);
    let more = [
        agg("count", vec![col(2, "v")], "c"),
        agg("sum", vec![col(2, "v")], "s"),
        agg("avg", vec![col(3, "f")], "a"),
        agg("max", vec![col(0, "k1")], "m"),
    ];
    let sets = [vec![f, f], vec![t, t], vec![f, t], vec![t, t]];
    let g = [col(0, "k1"), col(1, "k2")];
    let got = run_sets(&g, &sets, &more, &[vec![], vec![]]);
    assert_eq!(
        got,
        vec![
            "NULL|NULL|3|0|NULL|NULL|NULL",
            "NULL|NULL|7|0|NULL|NULL|NULL"
        ]
    );
    // Only one partition without rows: its total merges with the others.
    let got = run_sets(&g, &sets, &more, &[vec![batch1()], vec![]]);
    let single = run_sets(&g, &sets, &more, &[vec![batch1()]]);
    assert_eq!(got, single);
    // No set without keys: no rows.
    let got = run_sets(&g, &[vec![f, t], vec![t, f]], &aggs, &[vec![], vec![]]);
    assert!(got.is_empty());
    // GROUPING SETS ((), ()): two totals told apart by the id.
    let got = run_sets(
        &[],
        &[vec![], vec![]],
        &aggs,
        &[vec![batch1()], vec![batch2()]],
    );
    assert_eq!(got, vec!["0|8", "1|8"]);
}

#[test]
fn schema_column_count_mismatch_is_internal_error() {
    let input = input_schema();
    let aggs = [agg("avg", vec![col(3, "f")], "av")];
    // Final-style schema given to a Partial aggregate (avg has 2 states).
    let wrong = out_schema(AggregateMode::Final, &[col(0, "k1")], &aggs, &input);
    let err = AggSpec::try_new(
        &input,
        AggregateConfig {
            mode: AggregateMode::Partial,
            group_by: &[col(0, "k1")],
            grouping_sets: &[],
            aggregates: &aggs,
            aggregate_input_schema: Arc::clone(&input),
            schema: wrong,
        },
        &registry(),
    )
    .err()
    .unwrap();
    let msg = err.to_string();
    assert!(matches!(err, DataflowError::Internal(_)), "{msg}");
    assert!(msg.contains("2 columns") && msg.contains("3"), "{msg}");
}

// ---- operator through the runner -------------------------------------

#[tokio::test]
async fn operator_partial_then_final_through_runner() {
    use crate::plan::PhysicalPlan;
    let input = input_schema();
    let g = vec![col(0, "k1")];
    let aggs = standard_aggs();
    let scan = crate::test_util::scan(&input, 1);
    let partial_schema = out_schema(AggregateMode::Partial, &g, &aggs, &input);
    let partial = PhysicalPlan::Aggregate {
        input: Box::new(scan),
        mode: AggregateMode::Partial,
        group_by: g.clone(),
        grouping_sets: vec![],
        aggregates: aggs.clone(),
        aggregate_input_schema: Arc::clone(&input),
        schema: partial_schema,
    };
    let final_plan = PhysicalPlan::Aggregate {
        input: Box::new(partial),
        mode: AggregateMode::Final,
        group_by: g.clone(),
        grouping_sets: vec![],
        aggregates: aggs.clone(),
        aggregate_input_schema: Arc::clone(&input),
        schema: out_schema(AggregateMode::Final, &g, &aggs, &input),
    };
    let batches = crate::test_util::run_plan(final_plan, vec![batch1(), batch2()], 2)
        .await
        .unwrap();
    for b in &batches {
        assert!(b.num_rows() <= 2);
    }
    assert_eq!(
        rows_of(&batches),
        run_single(&g, &aggs, &[batch1(), batch2()])
    );
}

// ---- memory limit ------------------------------------------------------

#[tokio::test]
async fn aggregate_under_memory_limit() {
    use crate::plan::PhysicalPlan;
    use crate::test_util::{assert_exhausted, run_with_memory, scan};
    let input = input_schema();
    let g = vec![col(0, "k1")];
    let aggs = standard_aggs();
    let plan = PhysicalPlan::Aggregate {
        input: Box::new(scan(&input, 1)),
        mode: AggregateMode::Single,
        group_by: g.clone(),
        grouping_sets: vec![],
        aggregates: aggs.clone(),
        aggregate_input_schema: Arc::clone(&input),
        schema: out_schema(AggregateMode::Single, &g, &aggs, &input),
    };
    let tables = || vec![("t", vec![batch1(), batch2()])];
    // The group values and accumulators do not fit in 64 bytes.
    let refused = run_with_memory(&plan, tables(), 2, Some(64)).await;
    assert_exhausted(refused, "HashAggregate (node 0, partition 0)", 64);
    let roomy = run_with_memory(&plan, tables(), 2, Some(64 << 20))
        .await
        .unwrap();
    assert_eq!(
        rows_of(&roomy),
        run_single(&g, &aggs, &[batch1(), batch2()])
    );
}

// ---- spilling ----------------------------------------------------------

mod spilling {
    use super::*;
    use crate::execution::SPILL_FAN_OUT;
    use crate::expr::SortExpr;
    use crate::plan::PhysicalPlan;
    use crate::test_util::{
        assert_exhausted, assert_spill_dir_empty, hash_exchange, run_spilling, scan,
    };

    /// `n` rows over `groups` values of k2 (spread over the input), 97 of
    /// k1, with NULLs among keys and values.
    fn many_groups(n: i64, groups: i64, batch_rows: i64) -> Vec<RecordBatch> {
        let mut out = vec![];
        for start in (0..n).step_by(batch_rows as usize) {
            let rows = start..(start + batch_rows).min(n);
            let k1: Vec<Option<String>> = rows
                .clone()
                .map(|i| (i % 31 != 0).then(|| format!("s{}", i % 97)))
                .collect();
            let k2 = rows
                .clone()
                .map(|i| (i % 53 != 0).then_some(((i * 7919) % groups) as i32))
                .collect();
            let v = rows.map(|i| (i % 13 != 0).then_some(i % 1000)).collect();
            out.push(batch(k1.iter().map(|s| s.as_deref()).collect(), k2, v));
        }
        out
    }

    /// Every kind of aggregate: plain, DISTINCT, order-sensitive with and
    /// without ORDER BY, FILTER.
    pub(super) fn all_aggs() -> Vec<AggExpr> {
        let desc = |e: PhysExpr| SortExpr {
            expr: e,
            asc: false,
            nulls_first: false,
        };
        let distinct = |mut a: AggExpr| {
            a.distinct = true;
            a
        };
        let ordered = |mut a: AggExpr, by: PhysExpr| {
            a.order_by = vec![desc(by)];
            a
        };
        let comma = || PhysExpr::lit(ScalarValue::Utf8(Some(",".into())));
        let mut filtered = agg("sum", vec![col(2, "v")], "sf");
        filtered.filter = Some(PhysExpr::Binary {
            op: BinaryOp::Gt,
            left: Box::new(col(2, "v")),
            right: Box::new(PhysExpr::lit(ScalarValue::Int64(Some(500)))),
        });
        let mut aggs = standard_aggs();
        aggs.extend([
            distinct(agg("count", vec![col(2, "v")], "dc")),
            distinct(agg("sum", vec![col(2, "v")], "ds")),
            agg("array_agg", vec![col(2, "v")], "aa"),
            ordered(agg("array_agg", vec![col(2, "v")], "aao"), col(2, "v")),
            agg("string_agg", vec![col(0, "k1"), comma()], "sa"),
            ordered(
                agg("string_agg", vec![col(0, "k1"), comma()], "sao"),
                col(0, "k1"),
            ),
            // f is a function of v: ties give the same value.
            ordered(agg("first_value", vec![col(3, "f")], "fv"), col(2, "v")),
            filtered,
        ]);
        aggs
    }

    /// [`all_aggs`] but those whose value depends on the input order,
    /// which several partitions do not define.
    fn order_insensitive_aggs() -> Vec<AggExpr> {
        let mut aggs = all_aggs();
        aggs.retain(|a| a.alias != "aa" && a.alias != "sa");
        aggs
    }

    /// Asserts equal sorted rows, showing only the first differences.
    pub(super) fn assert_same_rows(got: &[RecordBatch], expected: &[RecordBatch]) {
        let (got, expected) = (rows_of(got), rows_of(expected));
        if got == expected {
            return;
        }
        // The first rows of `a` that `b` does not have, shortened.
        let only = |a: &[String], b: &[String]| -> Vec<String> {
            let short = |r: &String| r.chars().take(300).collect::<String>();
            a.iter()
                .filter(|r| !b.contains(r))
                .take(3)
                .map(short)
                .collect()
        };
        let (only_got, only_expected) = (only(&got, &expected), only(&expected, &got));
        panic!(
            "{} rows, expected {}; only got: {only_got:#?}; only expected: {only_expected:#?}",
            got.len(),
            expected.len()
        );
    }

    pub(super) fn aggregate(
        input: PhysicalPlan,
        mode: AggregateMode,
        group_by: &[PhysExpr],
        sets: &[Vec<bool>],
        aggs: &[AggExpr],
    ) -> PhysicalPlan {
        let schema = if sets.is_empty() {
            out_schema(mode, group_by, aggs, &input_schema())
        } else {
            sets_schema(mode, group_by, sets, aggs)
        };
        PhysicalPlan::Aggregate {
            input: Box::new(input),
            mode,
            group_by: group_by.to_vec(),
            grouping_sets: sets.to_vec(),
            aggregates: aggs.to_vec(),
            aggregate_input_schema: input_schema(),
            schema,
        }
    }

    /// Partial aggregates over `partitions` scan partitions, a hash
    /// exchange on the first key into 2, Final aggregates, a gather. Node
    /// ids: gather 0, final 1, exchange 2, partial 3, scan 4.
    pub(super) fn two_phase(
        partitions: usize,
        group_by: &[PhysExpr],
        sets: &[Vec<bool>],
        aggs: &[AggExpr],
    ) -> PhysicalPlan {
        let partial = aggregate(
            scan(&input_schema(), partitions),
            AggregateMode::Partial,
            group_by,
            sets,
            aggs,
        );
        let final_plan = aggregate(
            hash_exchange(partial, 0, 2),
            AggregateMode::Final,
            group_by,
            sets,
            aggs,
        );
        crate::test_util::gather(final_plan)
    }

    /// Runs `plan` over `input` unlimited and under `limit`; asserts the
    /// same rows, that node `node` spilled at least `min_files` files, and
    /// that no spill file is left. Returns the spilled run's counters.
    async fn same_rows_spilled(
        plan: &PhysicalPlan,
        input: &[RecordBatch],
        limit: usize,
        node: usize,
        min_files: u64,
    ) -> Vec<crate::metrics::MetricsSnapshot> {
        let tables = || vec![("t", input.to_vec())];
        let unlimited = crate::test_util::run(plan, tables(), 512).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spilled = run_spilling(plan, tables(), 512, limit, dir.path(), None).await;
        let files = spilled.spill_files(node);
        let metrics = spilled.metrics.clone();
        let rows = spilled.result.unwrap_or_else(|e| panic!("{e}"));
        assert_same_rows(&rows, &unlimited);
        assert!(files >= min_files, "{files} spill files: {metrics:?}");
        assert!(metrics[node].spilled_bytes > 0 && metrics[node].spilled_rows > 0);
        assert_spill_dir_empty(dir.path()).await;
        metrics
    }

    #[tokio::test]
    async fn single_spills_and_repartitions_with_the_unlimited_rows() {
        let input = many_groups(20_000, 8_000, 512);
        let aggs = all_aggs();
        // One integer key, then two keys (encoded rows).
        for g in [vec![col(1, "k2")], vec![col(0, "k1"), col(1, "k2")]] {
            let plan = aggregate(
                scan(&input_schema(), 1),
                AggregateMode::Single,
                &g,
                &[],
                &aggs,
            );
            // More files than one level has: a partition was repartitioned.
            same_rows_spilled(&plan, &input, 1 << 20, 0, SPILL_FAN_OUT as u64 + 1).await;
        }
    }

    #[tokio::test]
    async fn grouping_sets_spill_with_the_unlimited_rows() {
        let input = many_groups(6_000, 3_000, 512);
        let (f, t) = (false, true);
        // ROLLUP(k1, k2)
        let sets = vec![vec![f, f], vec![f, t], vec![t, t]];
        let g = [col(0, "k1"), col(1, "k2")];
        // The grand total holds every row: no lists of values.
        let mut aggs = all_aggs();
        aggs.retain(|a| !["aa", "aao", "sa", "sao"].contains(&a.alias.as_str()));
        let plan = aggregate(
            scan(&input_schema(), 1),
            AggregateMode::Single,
            &g,
            &sets,
            &aggs,
        );
        same_rows_spilled(&plan, &input, 256 << 10, 0, 1).await;
        // Partial (emitting early) then Final (spilling).
        let plan = two_phase(2, &g, &sets, &aggs);
        same_rows_spilled(&plan, &input, 512 << 10, 1, 1).await;
    }

    #[tokio::test]
    async fn partial_emits_early_and_final_spills() {
        let input = many_groups(20_000, 8_000, 512);
        let g = [col(1, "k2")];
        let aggs = order_insensitive_aggs();
        let plan = two_phase(3, &g, &[], &aggs);
        let metrics = same_rows_spilled(&plan, &input, 512 << 10, 1, 1).await;
        let unlimited_partial_rows = {
            let dir = tempfile::tempdir().unwrap();
            let roomy = run_spilling(
                &plan,
                vec![("t", input.clone())],
                512,
                1 << 30,
                dir.path(),
                None,
            )
            .await;
            roomy.metrics[3].output_rows
        };
        // Groups were emitted early, several times over.
        assert!(
            metrics[3].output_rows > unlimited_partial_rows,
            "{metrics:?}"
        );
        assert_eq!(metrics[3].spill_files, 0);
    }

    #[tokio::test]
    async fn empty_input_under_a_limit() {
        let (f, t) = (false, true);
        let sets = [vec![f, t], vec![t, t]];
        let g = [col(0, "k1"), col(1, "k2")];
        for (g, sets) in [(&g[..], &sets[..]), (&[], &[]), (&g[..1], &[])] {
            let plan = aggregate(
                scan(&input_schema(), 1),
                AggregateMode::Single,
                g,
                sets,
                &all_aggs(),
            );
            let dir = tempfile::tempdir().unwrap();
            let got =
                run_spilling(&plan, vec![("t", vec![])], 512, 64 << 10, dir.path(), None).await;
            let unlimited = crate::test_util::run(&plan, vec![("t", vec![])], 512)
                .await
                .unwrap();
            assert_eq!(rows_of(&got.result.unwrap()), rows_of(&unlimited));
        }
    }

    #[tokio::test]
    async fn ungrouped_distinct_that_does_not_fit_fails() {
        let input = many_groups(20_000, 10, 512);
        let mut dc = agg("count", vec![col(2, "v")], "dc");
        dc.distinct = true;
        let plan = aggregate(
            scan(&input_schema(), 1),
            AggregateMode::Single,
            &[],
            &[],
            &[dc],
        );
        let dir = tempfile::tempdir().unwrap();
        let run = run_spilling(&plan, vec![("t", input)], 512, 4 << 10, dir.path(), None).await;
        assert_eq!(run.spill_files(0), 0);
        assert_exhausted(run.result, "HashAggregate (node 0, partition 0)", 4 << 10);
        assert_spill_dir_empty(dir.path()).await;
    }

    #[tokio::test]
    async fn one_group_too_large_fails_after_the_deepest_level() {
        // One group whose ordered list of all values does not fit.
        let input = many_groups(20_000, 1, 512);
        let aa = agg("array_agg", vec![col(2, "v")], "aa");
        let g = [col(1, "k2")];
        let plan = aggregate(
            scan(&input_schema(), 1),
            AggregateMode::Single,
            &g,
            &[],
            &[aa],
        );
        let dir = tempfile::tempdir().unwrap();
        let run = run_spilling(&plan, vec![("t", input)], 512, 16 << 10, dir.path(), None).await;
        // Spilled at every level before giving up.
        assert!(run.spill_files(0) > crate::execution::MAX_SPILL_LEVEL as u64);
        assert_exhausted(run.result, "HashAggregate (node 0, partition 0)", 16 << 10);
        assert_spill_dir_empty(dir.path()).await;
    }

    #[tokio::test]
    async fn a_dropped_stream_leaves_no_spill_file() {
        let input = many_groups(20_000, 8_000, 512);
        let g = [col(1, "k2")];
        let plan = aggregate(
            scan(&input_schema(), 1),
            AggregateMode::Single,
            &g,
            &[],
            &all_aggs(),
        );
        let dir = tempfile::tempdir().unwrap();
        let run = run_spilling(
            &plan,
            vec![("t", input)],
            512,
            256 << 10,
            dir.path(),
            Some(1),
        )
        .await;
        assert!(run.spill_files(0) > 0);
        assert_eq!(run.result.map(|b| b.len()).ok(), Some(1));
        assert_spill_dir_empty(dir.path()).await;
    }
}

/// One batch of the input schema whose float column `f` holds `f` (the
/// other columns constant, `v` = 1).
fn float_batch(f: Vec<Option<f64>>) -> RecordBatch {
    let n = f.len();
    RecordBatch::try_new(
        input_schema(),
        vec![
            Arc::new(StringArray::from(vec![Some("a"); n])),
            Arc::new(Int32Array::from(vec![Some(1); n])),
            Arc::new(Int64Array::from(vec![Some(1); n])),
            Arc::new(Float64Array::from(f)),
        ],
    )
    .unwrap()
}

#[test]
fn float_keys_group_zeros_and_nans_together() {
    let nan = f64::NAN;
    let aggs = [agg("count", vec![col(2, "v")], "n")];
    let keys = [col(3, "f")];
    let input = float_batch(vec![
        Some(-0.0),
        Some(0.0),
        Some(nan),
        Some(-nan),
        Some(1.5),
        None,
    ]);
    let expected = vec!["-0|2", "1.5|1", "NULL|1", "NaN|2"];
    assert_eq!(
        run_single(&keys, &aggs, std::slice::from_ref(&input)),
        expected
    );
    // The zeros and NaNs of different partial aggregates meet in the final.
    let parts = [
        vec![float_batch(vec![Some(-0.0), Some(nan), Some(1.5)])],
        vec![float_batch(vec![Some(0.0), Some(-nan), None])],
    ];
    assert_eq!(run_two_phase(&keys, &aggs, &parts), expected);
    // With another key beside the float one (the row-encoded path).
    let two_keys = [col(0, "k1"), col(3, "f")];
    assert_eq!(
        run_single(&two_keys, &aggs, &[input]),
        vec!["a|-0|2", "a|1.5|1", "a|NULL|1", "a|NaN|2"]
    );
    // A group shows the first value it saw.
    let zero_first = float_batch(vec![Some(0.0), Some(-0.0)]);
    assert_eq!(run_single(&keys, &aggs, &[zero_first]), vec!["0|2"]);
}

#[test]
fn min_max_over_floats_with_nan() {
    let nan = f64::NAN;
    let aggs = [
        agg("min", vec![col(3, "f")], "mn"),
        agg("max", vec![col(3, "f")], "mx"),
    ];
    let numbers = float_batch(vec![Some(1.0), Some(nan), Some(-3.0), None]);
    assert_eq!(run_single(&[], &aggs, &[numbers]), vec!["-3|NaN"]);
    // A negative NaN is a NaN too.
    let negative = float_batch(vec![Some(1.0), Some(-nan), Some(-3.0)]);
    assert_eq!(run_single(&[], &aggs, &[negative]), vec!["-3|NaN"]);
    let only_nan = float_batch(vec![Some(nan), None, Some(nan)]);
    assert_eq!(run_single(&[], &aggs, &[only_nan]), vec!["NaN|NaN"]);
    let parts = [
        vec![float_batch(vec![Some(1.0)])],
        vec![float_batch(vec![Some(nan)])],
        vec![float_batch(vec![Some(-3.0)])],
        vec![float_batch(vec![None])],
    ];
    assert_eq!(run_two_phase(&[], &aggs, &parts), vec!["-3|NaN"]);
    assert_eq!(
        run_two_phase(&[col(0, "k1")], &aggs, &parts),
        vec!["a|-3|NaN"]
    );
}

#[test]
fn distinct_aggregates_beside_other_aggregates() {
    let distinct = |func: &str, alias: &str| {
        let mut a = agg(func, vec![col(2, "v")], alias);
        a.distinct = true;
        a
    };
    let aggs = [
        distinct("bit_xor", "x"),
        distinct("sum", "s"),
        distinct("bit_or", "o"),
        agg("count", vec![col(2, "v")], "n"),
    ];
    let v = |values: Vec<i64>| {
        batch(
            vec![Some("a"); values.len()],
            vec![Some(1); values.len()],
            values.into_iter().map(Some).collect(),
        )
    };
    // Distinct values {1, 2, 3}: xor 0, sum 6, or 3; six rows.
    let input = [v(vec![1, 1, 2]), v(vec![3, 3, 3])];
    assert_eq!(run_single(&[], &aggs, &input), vec!["0|6|3|6"]);
    assert_eq!(
        run_two_phase(
            &[],
            &aggs,
            &[vec![input[0].clone()], vec![input[1].clone()]]
        ),
        vec!["0|6|3|6"]
    );
    assert_eq!(
        run_single(&[col(0, "k1")], &aggs, &input),
        vec!["a|0|6|3|6"]
    );
}

#[test]
fn distinct_aggregates_count_zeros_and_nans_once() {
    let mut d = agg("count", vec![col(3, "f")], "d");
    d.distinct = true;
    let aggs = [d, agg("count", vec![col(3, "f")], "n")];
    let input = float_batch(vec![Some(0.0), Some(-0.0), Some(f64::NAN), Some(-f64::NAN)]);
    assert_eq!(run_single(&[], &aggs, &[input]), vec!["2|4"]);
}

// ---- pass-through partial aggregation ----------------------------------

mod pass_through {
    use super::spilling::{aggregate, all_aggs, assert_same_rows, two_phase};
    use super::*;
    use crate::plan::PhysicalPlan;
    use crate::test_util::scan;

    /// `n` rows in batches of 512; k2 is `i / repeat` (so `repeat` rows per
    /// group), with NULL keys and values among them.
    fn rows(n: i64, repeat: i64) -> Vec<RecordBatch> {
        (0..n)
            .step_by(512)
            .map(|start| {
                let rows = start..(start + 512).min(n);
                let k1 = rows
                    .clone()
                    .map(|i| (i % 7 != 0).then(|| ["x", "y"][i as usize % 2]));
                let k2 = rows
                    .clone()
                    .map(|i| (i % 1001 != 0).then_some((i / repeat) as i32));
                let v = rows.map(|i| (i % 13 != 0).then_some(i % 1000 - 300));
                batch(k1.collect(), k2.collect(), v.collect())
            })
            .collect()
    }

    /// The aggregates that may pass through: all but DISTINCT and
    /// order-sensitive ones.
    fn plain_aggs() -> Vec<AggExpr> {
        let mut aggs = all_aggs();
        aggs.retain(|a| !a.distinct && a.order_by.is_empty() && a.alias != "aa" && a.alias != "sa");
        aggs
    }

    /// Runs `plan` over `input`: the rows, and the rows partial aggregate
    /// (node 3 of [`two_phase`]) passed through.
    async fn run_counting_skips(
        plan: &PhysicalPlan,
        input: &[RecordBatch],
    ) -> (Vec<RecordBatch>, u64) {
        let stream = crate::test_util::start(
            plan,
            vec![("t", input.to_vec())],
            crate::runner::ExecConfig::default(),
        )
        .unwrap();
        let metrics = stream.metrics();
        let out = crate::test_util::collect(stream).await.unwrap();
        (out, metrics.snapshot()[3].skipped_partial_rows)
    }

    /// The same aggregate in one phase, which never passes through.
    async fn single(g: &[PhysExpr], aggs: &[AggExpr], input: &[RecordBatch]) -> Vec<RecordBatch> {
        let plan = aggregate(
            scan(&input_schema(), 1),
            AggregateMode::Single,
            g,
            &[],
            aggs,
        );
        crate::test_util::run(&plan, vec![("t", input.to_vec())], 512)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_partial_aggregate_that_does_not_reduce_passes_rows_through() {
        // Two partitions of about 130,000 rows, nearly one group per row.
        let input = rows(260_000, 1);
        let g = [col(1, "k2")];
        let aggs = plain_aggs();
        let (got, skipped) = run_counting_skips(&two_phase(2, &g, &[], &aggs), &input).await;
        // Each partition decides after its first 100,000 rows.
        assert!(
            (40_000..=65_000).contains(&skipped),
            "{skipped} rows passed through"
        );
        assert_same_rows(&got, &single(&g, &aggs, &input).await);
        // Two keys (encoded rows), with the string key first.
        let g = [col(0, "k1"), col(1, "k2")];
        let (got, skipped) = run_counting_skips(&two_phase(2, &g, &[], &aggs), &input).await;
        assert!(skipped > 0);
        assert_same_rows(&got, &single(&g, &aggs, &input).await);
    }

    #[tokio::test]
    async fn a_partial_aggregate_that_reduces_or_has_distinct_aggregates_keeps_hashing() {
        let g = [col(1, "k2")];
        // Two rows per group: the partial aggregate halves its input.
        let input = rows(260_000, 2);
        let aggs = plain_aggs();
        let (got, skipped) = run_counting_skips(&two_phase(2, &g, &[], &aggs), &input).await;
        assert_eq!(skipped, 0);
        assert_same_rows(&got, &single(&g, &aggs, &input).await);
        // One group per row, but a DISTINCT or an order-sensitive aggregate.
        let input = rows(260_000, 1);
        let mut aggs = all_aggs();
        aggs.retain(|a| ["s", "dc", "fv"].contains(&a.alias.as_str()));
        let (got, skipped) = run_counting_skips(&two_phase(2, &g, &[], &aggs), &input).await;
        assert_eq!(skipped, 0);
        assert_same_rows(&got, &single(&g, &aggs, &input).await);
    }
}
