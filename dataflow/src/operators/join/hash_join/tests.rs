use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::*;
use crate::expr::BinaryOp;
use crate::operators::join::table::{Built, Cursor, Prober, TableBuilder};
use crate::plan::{JoinType, PhysicalPlan};
use crate::test_util::*;

fn left_rows() -> Vec<(Option<i32>, &'static str)> {
    vec![
        (Some(1), "l1"),
        (Some(2), "l2a"),
        (Some(2), "l2b"),
        (None, "lnull"),
        (Some(4), "l4"),
    ]
}

fn right_rows() -> Vec<(Option<i32>, &'static str)> {
    vec![
        (Some(2), "r2"),
        (Some(3), "r3"),
        (None, "rnull"),
        (Some(1), "r1a"),
        (Some(1), "r1b"),
    ]
}

struct Case {
    join_type: JoinType,
    filter: Option<PhysExpr>,
    null_equals_null: bool,
    null_aware: bool,
    collect_left: bool,
    /// Partitions of each side (hash exchanged on the key when > 1).
    partitions: usize,
    batch_size: usize,
}

impl Case {
    fn new(join_type: JoinType) -> Self {
        Case {
            join_type,
            filter: None,
            null_equals_null: false,
            null_aware: false,
            collect_left: false,
            partitions: 1,
            batch_size: 2,
        }
    }

    /// The join over memory tables "l" and "r", gathered to one partition.
    fn plan(&self) -> PhysicalPlan {
        let ls = kv_schema("lk", "lv");
        let rs = kv_schema("rk", "rv");
        let p = self.partitions;
        let (lp, rp) = if self.collect_left {
            (
                gather(memory_scan("l", &ls, 2)),
                if p > 1 {
                    hash_exchange(memory_scan("r", &rs, 2), 0, p)
                } else {
                    memory_scan("r", &rs, 1)
                },
            )
        } else if p > 1 {
            (
                hash_exchange(memory_scan("l", &ls, 2), 0, p),
                hash_exchange(memory_scan("r", &rs, 3), 0, p),
            )
        } else {
            (memory_scan("l", &ls, 1), memory_scan("r", &rs, 1))
        };
        let join = PhysicalPlan::HashJoin {
            left: Box::new(lp),
            right: Box::new(rp),
            join_type: self.join_type,
            on: vec![(PhysExpr::col(0, "lk"), PhysExpr::col(0, "rk"))],
            filter: self.filter.clone(),
            null_equals_null: self.null_equals_null,
            null_aware: self.null_aware,
            collect_left: self.collect_left,
            schema: join_schema(&ls, &rs, self.join_type),
        };
        if join.output_partitions() > 1 {
            gather(join)
        } else {
            join
        }
    }
}

async fn run_case(
    case: &Case,
    left: Vec<(Option<i32>, &str)>,
    right: Vec<(Option<i32>, &str)>,
) -> Vec<String> {
    let ls = kv_schema("lk", "lv");
    let rs = kv_schema("rk", "rv");
    // Split each side into batches of two rows.
    let lb: Vec<RecordBatch> = left.chunks(2).map(|c| kv_batch(&ls, c)).collect();
    let rb: Vec<RecordBatch> = right.chunks(2).map(|c| kv_batch(&rs, c)).collect();
    let plan = case.plan();
    let out = run(&plan, vec![("l", lb), ("r", rb)], case.batch_size)
        .await
        .unwrap();
    assert_batch_sizes(&out, case.batch_size);
    rows(&out)
}

fn expected(join_type: JoinType) -> Vec<String> {
    use JoinType::*;
    let v: &[&str] = match join_type {
        Inner => &["1|l1|1|r1a", "1|l1|1|r1b", "2|l2a|2|r2", "2|l2b|2|r2"],
        Left => &[
            "1|l1|1|r1a",
            "1|l1|1|r1b",
            "2|l2a|2|r2",
            "2|l2b|2|r2",
            "NULL|lnull|NULL|NULL",
            "4|l4|NULL|NULL",
        ],
        Right => &[
            "1|l1|1|r1a",
            "1|l1|1|r1b",
            "2|l2a|2|r2",
            "2|l2b|2|r2",
            "NULL|NULL|3|r3",
            "NULL|NULL|NULL|rnull",
        ],
        Full => &[
            "1|l1|1|r1a",
            "1|l1|1|r1b",
            "2|l2a|2|r2",
            "2|l2b|2|r2",
            "NULL|lnull|NULL|NULL",
            "4|l4|NULL|NULL",
            "NULL|NULL|3|r3",
            "NULL|NULL|NULL|rnull",
        ],
        LeftSemi => &["1|l1", "2|l2a", "2|l2b"],
        LeftAnti => &["NULL|lnull", "4|l4"],
        RightSemi => &["2|r2", "1|r1a", "1|r1b"],
        RightAnti => &["3|r3", "NULL|rnull"],
        LeftMark => &[
            "1|l1|true",
            "2|l2a|true",
            "2|l2b|true",
            "NULL|lnull|false",
            "4|l4|false",
        ],
        RightMark => &[
            "2|r2|true",
            "3|r3|false",
            "NULL|rnull|false",
            "1|r1a|true",
            "1|r1b|true",
        ],
    };
    sorted(v)
}

#[tokio::test]
async fn all_join_types_single_partition() {
    for jt in ALL_JOIN_TYPES {
        let got = run_case(&Case::new(jt), left_rows(), right_rows()).await;
        assert_eq!(got, expected(jt), "{jt:?}");
    }
}

#[tokio::test]
async fn all_join_types_partitioned() {
    for jt in ALL_JOIN_TYPES {
        for batch_size in [1, 3, 100] {
            let case = Case {
                partitions: 3,
                batch_size,
                ..Case::new(jt)
            };
            let got = run_case(&case, left_rows(), right_rows()).await;
            assert_eq!(got, expected(jt), "{jt:?} batch_size={batch_size}");
        }
    }
}

#[tokio::test]
async fn collect_left_shared_build() {
    for jt in [
        JoinType::Inner,
        JoinType::Right,
        JoinType::RightSemi,
        JoinType::RightAnti,
        JoinType::RightMark,
    ] {
        for partitions in [1, 3] {
            let case = Case {
                collect_left: true,
                partitions,
                ..Case::new(jt)
            };
            let got = run_case(&case, left_rows(), right_rows()).await;
            assert_eq!(got, expected(jt), "{jt:?} partitions={partitions}");
        }
    }
}

#[test]
fn collect_left_rejects_left_emitting_joins() {
    let ls = kv_schema("lk", "lv");
    let rs = kv_schema("rk", "rv");
    let left: Arc<dyn Operator> = memory_scan_operator("l", 1, &ls);
    let right: Arc<dyn Operator> = memory_scan_operator("r", 1, &rs);
    let on = [(PhysExpr::col(0, "lk"), PhysExpr::col(0, "rk"))];
    let reg = FunctionRegistry::with_defaults();
    for jt in [
        JoinType::Left,
        JoinType::Full,
        JoinType::LeftSemi,
        JoinType::LeftAnti,
    ] {
        let config = HashJoinConfig {
            join_type: jt,
            on: &on,
            filter: None,
            null_equals_null: false,
            null_aware: false,
            collect_left: true,
            schema: join_schema(&ls, &rs, jt),
        };
        let r = HashJoin::try_new(left.clone(), right.clone(), config, &reg);
        assert!(matches!(r, Err(DataflowError::Internal(_))), "{jt:?}");
    }
    // Mismatched key types are a clear error.
    let rs2 = Arc::new(Schema::new(vec![
        Field::new("rk", DataType::Int64, true),
        Field::new("rv", DataType::Utf8, true),
    ]));
    let right2: Arc<dyn Operator> = memory_scan_operator("r", 1, &rs2);
    let config = HashJoinConfig {
        join_type: JoinType::Inner,
        on: &on,
        filter: None,
        null_equals_null: false,
        null_aware: false,
        collect_left: false,
        schema: join_schema(&ls, &rs2, JoinType::Inner),
    };
    let r = HashJoin::try_new(left, right2, config, &reg);
    match r {
        Err(DataflowError::Plan(m)) => assert!(m.contains("key types differ"), "{m}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("expected an error"),
    }
}

#[tokio::test]
async fn null_equals_null() {
    let mut case = Case::new(JoinType::Inner);
    case.null_equals_null = true;
    let got = run_case(&case, left_rows(), right_rows()).await;
    let mut exp = expected(JoinType::Inner);
    exp.push("NULL|lnull|NULL|rnull".into());
    exp.sort();
    assert_eq!(got, exp);

    let mut case = Case::new(JoinType::LeftAnti);
    case.null_equals_null = true;
    case.partitions = 2;
    assert_eq!(
        run_case(&case, left_rows(), right_rows()).await,
        sorted(&["4|l4"])
    );

    let mut case = Case::new(JoinType::Full);
    case.null_equals_null = true;
    let got = run_case(&case, left_rows(), right_rows()).await;
    assert_eq!(
        got,
        sorted(&[
            "1|l1|1|r1a",
            "1|l1|1|r1b",
            "2|l2a|2|r2",
            "2|l2b|2|r2",
            "NULL|lnull|NULL|rnull",
            "4|l4|NULL|NULL",
            "NULL|NULL|3|r3",
        ])
    );
}

#[tokio::test]
async fn empty_sides() {
    use JoinType::*;
    for jt in ALL_JOIN_TYPES {
        // Empty build side.
        let got = run_case(&Case::new(jt), vec![], right_rows()).await;
        let exp: Vec<String> = match jt {
            Right | Full => sorted(&[
                "NULL|NULL|2|r2",
                "NULL|NULL|3|r3",
                "NULL|NULL|NULL|rnull",
                "NULL|NULL|1|r1a",
                "NULL|NULL|1|r1b",
            ]),
            RightAnti => sorted(&["2|r2", "3|r3", "NULL|rnull", "1|r1a", "1|r1b"]),
            RightMark => sorted(&[
                "2|r2|false",
                "3|r3|false",
                "NULL|rnull|false",
                "1|r1a|false",
                "1|r1b|false",
            ]),
            _ => vec![],
        };
        assert_eq!(got, exp, "empty build {jt:?}");
        // Empty probe side.
        let got = run_case(&Case::new(jt), left_rows(), vec![]).await;
        let exp: Vec<String> = match jt {
            Left | Full => sorted(&[
                "1|l1|NULL|NULL",
                "2|l2a|NULL|NULL",
                "2|l2b|NULL|NULL",
                "NULL|lnull|NULL|NULL",
                "4|l4|NULL|NULL",
            ]),
            LeftAnti => sorted(&["1|l1", "2|l2a", "2|l2b", "NULL|lnull", "4|l4"]),
            LeftMark => sorted(&[
                "1|l1|false",
                "2|l2a|false",
                "2|l2b|false",
                "NULL|lnull|false",
                "4|l4|false",
            ]),
            _ => vec![],
        };
        assert_eq!(got, exp, "empty probe {jt:?}");
    }
}

/// `lv < rv` over left ++ right columns (column 1 and column 3).
fn lv_lt_rv() -> PhysExpr {
    PhysExpr::Binary {
        left: Box::new(PhysExpr::col(1, "lv")),
        op: BinaryOp::Lt,
        right: Box::new(PhysExpr::col(3, "rv")),
    }
}

#[tokio::test]
async fn non_equi_filter() {
    use JoinType::*;
    let left = vec![(Some(1), "b"), (Some(1), "d"), (Some(2), "a"), (None, "a")];
    let right = vec![
        (Some(1), "c"),
        (Some(1), "a"),
        (Some(2), "a"),
        (Some(3), "z"),
    ];
    for jt in ALL_JOIN_TYPES {
        for partitions in [1, 2] {
            let case = Case {
                filter: Some(lv_lt_rv()),
                partitions,
                batch_size: 1,
                ..Case::new(jt)
            };
            let got = run_case(&case, left.clone(), right.clone()).await;
            // Matching pairs: (1,b)-(1,c) only.
            let exp: &[&str] = match jt {
                Inner => &["1|b|1|c"],
                Left => &[
                    "1|b|1|c",
                    "1|d|NULL|NULL",
                    "2|a|NULL|NULL",
                    "NULL|a|NULL|NULL",
                ],
                Right => &["1|b|1|c", "NULL|NULL|1|a", "NULL|NULL|2|a", "NULL|NULL|3|z"],
                Full => &[
                    "1|b|1|c",
                    "1|d|NULL|NULL",
                    "2|a|NULL|NULL",
                    "NULL|a|NULL|NULL",
                    "NULL|NULL|1|a",
                    "NULL|NULL|2|a",
                    "NULL|NULL|3|z",
                ],
                LeftSemi => &["1|b"],
                LeftAnti => &["1|d", "2|a", "NULL|a"],
                RightSemi => &["1|c"],
                RightAnti => &["1|a", "2|a", "3|z"],
                LeftMark => &["1|b|true", "1|d|false", "2|a|false", "NULL|a|false"],
                RightMark => &["1|c|true", "1|a|false", "2|a|false", "3|z|false"],
            };
            assert_eq!(got, sorted(exp), "{jt:?} partitions={partitions}");
        }
    }
}

#[tokio::test]
async fn duplicate_keys_explode_in_batch_sized_chunks() {
    // 30 x 40 rows with the same key: 1200 output rows in chunks.
    let left: Vec<(Option<i32>, &str)> = (0..30).map(|_| (Some(7), "l")).collect();
    let right: Vec<(Option<i32>, &str)> = (0..40).map(|_| (Some(7), "r")).collect();
    let mut case = Case::new(JoinType::Inner);
    case.batch_size = 64;
    let got = run_case(&case, left.clone(), right.clone()).await;
    assert_eq!(got.len(), 1200);
    assert!(got.iter().all(|r| r == "7|l|7|r"));
    case.join_type = JoinType::LeftSemi;
    assert_eq!(run_case(&case, left.clone(), right.clone()).await.len(), 30);
    case.join_type = JoinType::RightSemi;
    assert_eq!(run_case(&case, left, right).await.len(), 40);
}

fn i64_str_batch(
    schema: &SchemaRef,
    a: Vec<Option<i64>>,
    b: Vec<Option<i64>>,
    v: Vec<&str>,
) -> RecordBatch {
    RecordBatch::try_new(
        Arc::clone(schema),
        vec![
            Arc::new(Int64Array::from(a)),
            Arc::new(Int64Array::from(b)),
            Arc::new(StringArray::from(v)),
        ],
    )
    .unwrap()
}

/// Two Int64 keys (packed u128), and string keys (row format).
#[tokio::test]
async fn multi_column_and_string_keys() {
    let schema = |p: &str| -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(format!("{p}a"), DataType::Int64, true),
            Field::new(format!("{p}b"), DataType::Int64, true),
            Field::new(format!("{p}v"), DataType::Utf8, true),
        ]))
    };
    let (ls, rs) = (schema("l"), schema("r"));
    let lb = i64_str_batch(
        &ls,
        vec![Some(1), Some(1), Some(2), None, Some(-1)],
        vec![Some(1), Some(2), Some(1), Some(1), Some(i64::MAX)],
        vec!["x", "y", "z", "w", "m"],
    );
    let rb = i64_str_batch(
        &rs,
        vec![Some(1), Some(2), Some(2), None, Some(-1)],
        vec![Some(2), Some(1), Some(2), Some(1), Some(i64::MAX)],
        vec!["y", "q", "z", "w", "m"],
    );
    let run_keys = |on: Vec<(PhysExpr, PhysExpr)>, nen: bool| {
        let (ls, rs, lb, rb) = (ls.clone(), rs.clone(), lb.clone(), rb.clone());
        async move {
            let plan = PhysicalPlan::HashJoin {
                left: Box::new(memory_scan("l", &ls, 1)),
                right: Box::new(memory_scan("r", &rs, 1)),
                join_type: JoinType::Inner,
                on,
                filter: None,
                null_equals_null: nen,
                null_aware: false,
                collect_left: false,
                schema: join_schema(&ls, &rs, JoinType::Inner),
            };
            rows(
                &run(&plan, vec![("l", vec![lb]), ("r", vec![rb])], 8)
                    .await
                    .unwrap(),
            )
        }
    };
    let ab = vec![
        (PhysExpr::col(0, "la"), PhysExpr::col(0, "ra")),
        (PhysExpr::col(1, "lb"), PhysExpr::col(1, "rb")),
    ];
    assert_eq!(
        run_keys(ab.clone(), false).await,
        sorted(&[
            "1|2|y|1|2|y",
            "2|1|z|2|1|q",
            "-1|9223372036854775807|m|-1|9223372036854775807|m"
        ])
    );
    // Same with NULL = NULL (row format).
    assert_eq!(
        run_keys(ab, true).await,
        sorted(&[
            "1|2|y|1|2|y",
            "2|1|z|2|1|q",
            "NULL|1|w|NULL|1|w",
            "-1|9223372036854775807|m|-1|9223372036854775807|m"
        ])
    );
    // String key.
    let v = vec![(PhysExpr::col(2, "lv"), PhysExpr::col(2, "rv"))];
    assert_eq!(
        run_keys(v, false).await,
        sorted(&[
            "1|2|y|1|2|y",
            "2|1|z|2|2|z",
            "NULL|1|w|NULL|1|w",
            "-1|9223372036854775807|m|-1|9223372036854775807|m"
        ])
    );
}

/// Kernel-level check of the chunked probe: resuming inside a chain.
#[tokio::test]
async fn probe_resumes_inside_chains() {
    let ls = kv_schema("lk", "lv");
    let rs = kv_schema("rk", "rv");
    let lb = kv_batch(
        &ls,
        &[
            (Some(5), "a"),
            (Some(6), "b"),
            (Some(5), "c"),
            (Some(5), "d"),
        ],
    );
    let rb = kv_batch(
        &rs,
        &[(Some(5), "x"), (Some(6), "y"), (None, "z"), (Some(5), "w")],
    );
    let reg = FunctionRegistry::with_defaults();
    let keys = JoinKeys::try_new(
        &[(PhysExpr::col(0, "lk"), PhysExpr::col(0, "rk"))],
        &ls,
        &rs,
        false,
        &reg,
    )
    .unwrap();
    let memory = crate::execution::OperatorMemory::new(
        &crate::execution::memory_pool(None),
        "test".into(),
        Default::default(),
        false,
    );
    let mut builder = TableBuilder::new(&keys, memory);
    assert!(builder.push(&keys, lb).unwrap().is_none());
    let Built::Table(table) = builder.finish(&ls).unwrap() else {
        panic!("an unbounded pool refused the table");
    };
    let mut prober = Prober::new(&keys);
    prober.prepare(&keys, &rb).unwrap();
    for limit in 1..=8 {
        let mut cursor = Cursor::start();
        let mut pairs = Vec::new();
        loop {
            let (mut b, mut p) = (Vec::new(), Vec::new());
            let done = prober
                .probe(
                    &table,
                    ProbeMode::AllPairs,
                    &mut cursor,
                    limit,
                    &mut b,
                    &mut p,
                    &mut [],
                )
                .unwrap();
            assert!(b.len() <= limit);
            pairs.extend(b.into_iter().zip(p));
            if done {
                break;
            }
        }
        // Chains are in build order.
        assert_eq!(
            pairs,
            vec![(0, 0), (2, 0), (3, 0), (1, 1), (0, 3), (2, 3), (3, 3)],
            "limit={limit}"
        );
    }
}

#[tokio::test]
async fn build_side_under_memory_limit() {
    let ls = kv_schema("lk", "lv");
    let rs = kv_schema("rk", "rv");
    let lb: Vec<RecordBatch> = left_rows().chunks(2).map(|c| kv_batch(&ls, c)).collect();
    let rb: Vec<RecordBatch> = right_rows().chunks(2).map(|c| kv_batch(&rs, c)).collect();
    for collect_left in [false, true] {
        let left = memory_scan("l", &ls, 1);
        let plan = PhysicalPlan::HashJoin {
            left: Box::new(left),
            right: Box::new(memory_scan("r", &rs, 1)),
            join_type: JoinType::Inner,
            on: vec![(PhysExpr::col(0, "lk"), PhysExpr::col(0, "rk"))],
            filter: None,
            null_equals_null: false,
            null_aware: false,
            collect_left,
            schema: join_schema(&ls, &rs, JoinType::Inner),
        };
        let tables = || vec![("l", lb.clone()), ("r", rb.clone())];
        // Not one batch of the build side fits: no split helps.
        let refused = run_with_memory(&plan, tables(), 2, Some(100)).await;
        // Node 0 is the join (its inputs are 1 and 2).
        assert_exhausted(refused, "HashJoin (node 0, partition 0) build", 100);
        let roomy = run_with_memory(&plan, tables(), 2, Some(64 << 20))
            .await
            .unwrap();
        assert_eq!(rows(&roomy), expected(JoinType::Inner), "{collect_left}");
    }
}

// ---- Spilling (the grace hash join) ----

/// `n` rows with keys `i % distinct` (every `null_every`-th key NULL) and
/// values spread so that a `lv < rv` filter keeps about half the pairs.
fn spill_rows(
    n: usize,
    distinct: i32,
    null_every: usize,
    mul: usize,
) -> Vec<(Option<i32>, String)> {
    (0..n)
        .map(|i| {
            let k = ((i + 1) % null_every != 0).then_some(i as i32 % distinct);
            (k, format!("v{:03}", (i * mul) % 1000))
        })
        .collect()
}

fn spill_batches(
    schema: &SchemaRef,
    rows: &[(Option<i32>, String)],
    batch_rows: usize,
) -> Vec<RecordBatch> {
    rows.chunks(batch_rows)
        .map(|c| {
            let c: Vec<(Option<i32>, &str)> = c.iter().map(|(k, v)| (*k, v.as_str())).collect();
            kv_batch(schema, &c)
        })
        .collect()
}

/// The result of a run under a memory limit with its own spill directory.
struct Spilled {
    rows: Result<Vec<String>>,
    /// Spill files and rows of all nodes.
    spill_files: u64,
    spilled_rows: u64,
}

fn spill_config(limit: Option<usize>, spill_dir: &std::path::Path) -> crate::runner::ExecConfig {
    crate::runner::ExecConfig {
        batch_size: 64,
        memory_pool: crate::execution::memory_pool(limit),
        spill_dir: spill_dir.to_path_buf(),
        ..crate::runner::ExecConfig::default()
    }
}

fn spill_tables(
    left: &[(Option<i32>, String)],
    right: &[(Option<i32>, String)],
) -> Arc<crate::tables::MemoryTableMap> {
    let map = crate::tables::MemoryTableMap::default();
    // A map without a pool never refuses.
    for (name, rows, schema) in [
        ("l", left, kv_schema("lk", "lv")),
        ("r", right, kv_schema("rk", "rv")),
    ] {
        map.insert(name, spill_batches(&schema, rows, 50))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    Arc::new(map)
}

fn start(
    plan: &PhysicalPlan,
    tables: Arc<crate::tables::MemoryTableMap>,
    limit: Option<usize>,
    spill_dir: &std::path::Path,
) -> crate::runner::QueryStream {
    crate::runner::execute(
        plan,
        spill_config(limit, spill_dir),
        Arc::new(FunctionRegistry::with_defaults()),
        tables,
        Arc::new(crate::exchange::ChannelExchange::new(1)),
    )
    .unwrap()
}

async fn run_spilled(
    plan: &PhysicalPlan,
    left: &[(Option<i32>, String)],
    right: &[(Option<i32>, String)],
    limit: Option<usize>,
) -> Spilled {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let mut stream = start(plan, spill_tables(left, right), limit, dir.path());
    let mut out = Vec::new();
    let mut failed = None;
    while let Some(b) = stream.next().await {
        match b {
            Ok(b) => out.push(b),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let metrics = stream.metrics();
    drop(stream);
    assert_spill_dir_gone(dir.path()).await;
    let (spill_files, spilled_rows) = metrics
        .snapshot()
        .iter()
        .fold((0, 0), |(f, r), m| (f + m.spill_files, r + m.spilled_rows));
    Spilled {
        rows: match failed {
            Some(e) => Err(e),
            None => Ok(rows(&out)),
        },
        spill_files,
        spilled_rows,
    }
}

/// The query's spill directory under `base` is removed once the query is
/// gone (its aborted tasks may take a moment to drop).
async fn assert_spill_dir_gone(base: &std::path::Path) {
    for _ in 0..500 {
        if std::fs::read_dir(base).unwrap().next().is_none() {
            return;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let left: Vec<_> = std::fs::read_dir(base).unwrap().collect();
    panic!("spill directory left behind: {left:?}");
}

/// Fan-out of one split: more spill files than two splits' worth means a
/// partition was split again.
const ONE_SPLIT_FILES: u64 = 2 * crate::execution::SPILL_FAN_OUT as u64;

/// Runs `case` without a limit and under `limit`: same rows, and the
/// limited run spilled.
async fn assert_spills_same_rows(
    case: &Case,
    left: &[(Option<i32>, String)],
    right: &[(Option<i32>, String)],
    limit: usize,
) -> Spilled {
    let plan = case.plan();
    let what = format!(
        "{:?} filter={} null_equals_null={} partitions={} collect_left={} null_aware={}",
        case.join_type,
        case.filter.is_some(),
        case.null_equals_null,
        case.partitions,
        case.collect_left,
        case.null_aware
    );
    let free = run_spilled(&plan, left, right, None).await;
    assert_eq!(free.spill_files, 0, "{what}: spilled without a limit");
    let expected = free.rows.unwrap_or_else(|e| panic!("{what}: {e}"));
    let limited = run_spilled(&plan, left, right, Some(limit)).await;
    let got = match &limited.rows {
        Ok(r) => r,
        Err(e) => panic!("{what}: {e}"),
    };
    assert_eq!(got.len(), expected.len(), "{what}");
    assert!(got == &expected, "{what}: rows differ");
    assert!(
        limited.spill_files > 0 && limited.spilled_rows > 0,
        "{what}: nothing spilled"
    );
    limited
}

fn build_rows() -> Vec<(Option<i32>, String)> {
    spill_rows(1500, 97, 13, 37)
}

fn probe_rows() -> Vec<(Option<i32>, String)> {
    spill_rows(1200, 131, 17, 53)
}

/// A limit under which the build side spills and its partitions are
/// split again.
const SPLIT_AGAIN_LIMIT: usize = 3 << 10;

#[tokio::test]
async fn spilled_join_types_match_unlimited() {
    let (left, right) = (build_rows(), probe_rows());
    for jt in ALL_JOIN_TYPES {
        for filter in [None, Some(lv_lt_rv())] {
            let case = Case {
                filter,
                ..Case::new(jt)
            };
            let spilled = assert_spills_same_rows(&case, &left, &right, SPLIT_AGAIN_LIMIT).await;
            assert!(
                spilled.spill_files > ONE_SPLIT_FILES,
                "{jt:?}: no partition was split again ({} files)",
                spilled.spill_files
            );
        }
    }
}

#[tokio::test]
async fn spilled_partitioned_and_shared_builds_match_unlimited() {
    let (left, right) = (build_rows(), probe_rows());
    for jt in ALL_JOIN_TYPES {
        for filter in [None, Some(lv_lt_rv())] {
            let case = Case {
                filter: filter.clone(),
                partitions: 3,
                ..Case::new(jt)
            };
            // Three partitions share the limit.
            assert_spills_same_rows(&case, &left, &right, 3 * SPLIT_AGAIN_LIMIT).await;
            if !jt.emits_unmatched_left() {
                // The shared build spills once; each probe partition
                // partitions its rows and reads the build runs.
                let case = Case {
                    filter,
                    collect_left: true,
                    partitions: 3,
                    ..Case::new(jt)
                };
                assert_spills_same_rows(&case, &left, &right, 3 * SPLIT_AGAIN_LIMIT).await;
            }
        }
    }
}

/// `NOT IN`: the probe side's NULLs (anywhere) and emptiness decide for
/// every partition pair.
#[tokio::test]
async fn spilled_null_aware_anti_join_uses_global_facts() {
    let case = Case {
        null_aware: true,
        ..Case::new(JoinType::LeftAnti)
    };
    let left = build_rows();
    assert!(left.iter().any(|r| r.0.is_none()));
    // Even keys only: the odd keys of the build side stay.
    let no_nulls: Vec<_> = spill_rows(600, 131, usize::MAX, 53)
        .into_iter()
        .map(|(k, v)| (k.map(|k| 2 * k), v))
        .collect();
    let one_null: Vec<_> = no_nulls
        .iter()
        .cloned()
        .chain([(None, "x".to_string())])
        .collect();
    let plan = case.plan();
    // Without NULLs on the probe side: build rows with a NULL key go, the
    // unmatched others stay.
    let spilled = assert_spills_same_rows(&case, &left, &no_nulls, SPLIT_AGAIN_LIMIT).await;
    let got = spilled.rows.unwrap();
    assert!(
        !got.is_empty() && got.iter().all(|r| !r.starts_with("NULL|")),
        "{:?}",
        &got[..got.len().min(5)]
    );
    // One NULL on the probe side (in one partition) removes every row.
    let spilled = run_spilled(&plan, &left, &one_null, Some(SPLIT_AGAIN_LIMIT)).await;
    assert_eq!(spilled.rows.unwrap(), Vec::<String>::new());
    assert!(spilled.spill_files > 0);
    // An empty probe side keeps every row, NULL keys too.
    let spilled = run_spilled(&plan, &left, &[], Some(SPLIT_AGAIN_LIMIT)).await;
    assert_eq!(spilled.rows.unwrap().len(), left.len());
    assert!(spilled.spill_files > 0);
    // Without NULLs on the build side either.
    let left_no_nulls = spill_rows(1500, 97, usize::MAX, 37);
    assert_spills_same_rows(&case, &left_no_nulls, &no_nulls, SPLIT_AGAIN_LIMIT).await;
    assert_spills_same_rows(&case, &left_no_nulls, &one_null, SPLIT_AGAIN_LIMIT).await;
}

/// One key with more rows than the limit holds cannot be split: after the
/// last level the refusal is the error, and the spill files are gone.
#[tokio::test]
async fn one_key_too_large_fails_with_resources_exhausted() {
    let left: Vec<_> = (0..800).map(|i| (Some(7), format!("l{i}"))).collect();
    let right = spill_rows(100, 10, usize::MAX, 3);
    for collect_left in [false, true] {
        let case = Case {
            collect_left,
            ..Case::new(JoinType::Inner)
        };
        let spilled = run_spilled(&case.plan(), &left, &right, Some(SPLIT_AGAIN_LIMIT)).await;
        // The build rows were written more than once: splits were tried.
        assert!(
            spilled.spilled_rows > 2 * left.len() as u64,
            "{collect_left}"
        );
        assert_exhausted(
            spilled.rows,
            "HashJoin (node 0, partition 0) build",
            SPLIT_AGAIN_LIMIT,
        );
    }
}

/// Dropping the output stream while pairs are being joined removes the
/// spill files.
#[tokio::test]
async fn dropped_stream_removes_spill_files() {
    use futures::StreamExt;
    for case in [
        Case::new(JoinType::Full),
        Case {
            partitions: 3,
            ..Case::new(JoinType::Inner)
        },
        Case {
            partitions: 3,
            collect_left: true,
            ..Case::new(JoinType::RightAnti)
        },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let tables = spill_tables(&build_rows(), &probe_rows());
        let mut stream = start(
            &case.plan(),
            tables,
            Some(3 * SPLIT_AGAIN_LIMIT),
            dir.path(),
        );
        let first = stream.next().await.unwrap().unwrap();
        assert!(first.num_rows() > 0);
        let metrics = stream.metrics();
        assert!(metrics.snapshot().iter().any(|m| m.spill_files > 0));
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_some());
        drop(stream);
        assert_spill_dir_gone(dir.path()).await;
    }
}

/// With NULL = NULL the NULL keys are one key: they share a partition on
/// both sides and meet there.
#[tokio::test]
async fn spilled_null_equals_null_joins_match_unlimited() {
    let left = spill_rows(1500, 97, 150, 37);
    let right = spill_rows(1200, 131, 170, 53);
    for jt in ALL_JOIN_TYPES {
        let case = Case {
            null_equals_null: true,
            ..Case::new(jt)
        };
        assert_spills_same_rows(&case, &left, &right, SPLIT_AGAIN_LIMIT).await;
    }
}
