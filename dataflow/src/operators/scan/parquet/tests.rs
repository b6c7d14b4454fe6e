use super::*;
use crate::error::DataflowError;
use crate::expr::BinaryOp;
use crate::functions::FunctionRegistry;
use arrow::array::{
    Array, AsArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, StringArray,
};
use arrow::datatypes::{DataType, Field, Int64Type};
use datafusion_common::ScalarValue;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ffq-parquet-scan-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// id Int64, name Utf8, price Decimal(10,2), day Date32, opt Int32,
/// score Float64; `rows` rows with id = 0..rows.
fn file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Decimal128(10, 2), true),
        Field::new("day", DataType::Date32, true),
        Field::new("opt", DataType::Int32, true),
        Field::new("score", DataType::Float64, true),
    ]))
}

fn test_batch(from: i64, to: i64) -> RecordBatch {
    let ids: Vec<i64> = (from..to).collect();
    RecordBatch::try_new(
        file_schema(),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("n{i:03}")),
            )),
            Arc::new(
                Decimal128Array::from_iter_values(ids.iter().map(|i| *i as i128 * 100 + 5))
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            Arc::new(Date32Array::from_iter_values(
                ids.iter().map(|i| 10_000 + *i as i32),
            )),
            // all NULL from id 30 on
            Arc::new(Int32Array::from_iter(
                ids.iter().map(|i| (*i < 30).then_some(*i as i32)),
            )),
            Arc::new(Float64Array::from_iter_values(
                ids.iter().map(|i| *i as f64),
            )),
        ],
    )
    .unwrap()
}

/// A file of `rows` rows in row groups of `rg_rows` rows.
fn write_file(name: &str, rows: i64, rg_rows: usize) -> String {
    let path = temp_path(name);
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rg_rows))
        .build();
    let file = std::fs::File::create(&path).unwrap();
    let mut w = ArrowWriter::try_new(file, file_schema(), Some(props)).unwrap();
    w.write(&test_batch(0, rows)).unwrap();
    w.close().unwrap();
    path.to_string_lossy().into_owned()
}

fn spec(
    table_schema: SchemaRef,
    projection: Vec<usize>,
    pruning: &[PhysExpr],
    batch_size: usize,
) -> ScanSpec {
    let schema = Arc::new(table_schema.project(&projection).unwrap());
    ScanSpec {
        pruning: Arc::new(PruningPredicate::new(pruning, &table_schema)),
        table_schema,
        projection,
        schema,
        batch_size,
    }
}

async fn collect(splits: Vec<ParquetSplit>, spec: ScanSpec) -> Result<Vec<RecordBatch>> {
    let mut s = Box::pin(scan_splits(splits, spec));
    let mut out = vec![];
    while let Some(b) = s.next().await {
        out.push(b?);
    }
    Ok(out)
}

fn whole(path: &str) -> Vec<ParquetSplit> {
    vec![ParquetSplit {
        path: path.to_string(),
        row_groups: vec![],
    }]
}

fn ids(batches: &[RecordBatch], col: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| b.column(col).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

fn col(i: usize, name: &str) -> PhysExpr {
    PhysExpr::col(i, name)
}
fn lit(v: ScalarValue) -> PhysExpr {
    PhysExpr::lit(v)
}
fn bin(l: PhysExpr, op: BinaryOp, r: PhysExpr) -> PhysExpr {
    PhysExpr::Binary {
        left: Box::new(l),
        op,
        right: Box::new(r),
    }
}
fn id_op(op: BinaryOp, v: i64) -> PhysExpr {
    bin(col(0, "id"), op, lit(ScalarValue::Int64(Some(v))))
}

/// Row groups kept by pruning with `exprs` over the file's own schema.
fn kept(path: &str, table: &SchemaRef, exprs: &[PhysExpr]) -> Vec<usize> {
    let file = std::fs::File::open(path).unwrap();
    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).unwrap();
    let pred = PruningPredicate::new(exprs, table);
    let rgs: Vec<usize> = (0..meta.metadata().num_row_groups()).collect();
    let file_schema = meta.schema();
    let map = |ti: usize| find_field(file_schema, table.field(ti).name());
    let keep = pred.keep(&FileStats {
        file_schema,
        parquet_schema: meta.parquet_schema(),
        metadata: meta.metadata(),
        row_groups: &rgs,
        column_map: &map,
    });
    rgs.into_iter().filter(|&i| keep[i]).collect()
}

#[tokio::test]
async fn reads_projection_in_table_order() {
    let path = write_file("a.parquet", 40, 10);
    // A table schema that orders columns differently from the file.
    let table = Arc::new(Schema::new(vec![
        Field::new("price", DataType::Decimal128(10, 2), true),
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batches = collect(whole(&path), spec(table, vec![1, 0, 1], &[], 7))
        .await
        .unwrap();
    assert!(batches.iter().all(|b| b.num_rows() <= 7));
    assert_eq!(batches[0].num_columns(), 3);
    assert_eq!(ids(&batches, 0), (0..40).collect::<Vec<_>>());
    assert_eq!(ids(&batches, 2), (0..40).collect::<Vec<_>>());
    let price = batches[0]
        .column(1)
        .as_primitive::<arrow::datatypes::Decimal128Type>();
    assert_eq!(price.value(3), 305);
}

#[tokio::test]
async fn reads_listed_row_groups_only() {
    let path = write_file("a.parquet", 40, 10);
    let splits = vec![ParquetSplit {
        path: path.clone(),
        row_groups: vec![3, 1],
    }];
    let batches = collect(splits, spec(file_schema(), vec![0], &[], 100))
        .await
        .unwrap();
    let expect: Vec<i64> = (30..40).chain(10..20).collect();
    assert_eq!(ids(&batches, 0), expect);

    let bad = vec![ParquetSplit {
        path: path.clone(),
        row_groups: vec![4],
    }];
    let err = collect(bad, spec(file_schema(), vec![0], &[], 100))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&path), "{err}");
}

#[tokio::test]
async fn empty_projection_counts_rows() {
    let path = write_file("a.parquet", 25, 10);
    let batches = collect(whole(&path), spec(file_schema(), vec![], &[], 8))
        .await
        .unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 25);
    assert!(batches.iter().all(|b| b.num_columns() == 0));
}

#[tokio::test]
async fn casts_to_planned_types() {
    let path = write_file("a.parquet", 12, 10);
    let table = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8View, true),
    ]));
    let pruning = [bin(
        col(1, "name"),
        BinaryOp::GtEq,
        lit(ScalarValue::Utf8View(Some("n010".into()))),
    )];
    let batches = collect(whole(&path), spec(table, vec![1, 0], &pruning, 100))
        .await
        .unwrap();
    // The first row group (n000..n009) is pruned.
    assert_eq!(ids(&batches, 1), vec![10, 11]);
    assert_eq!(batches[0].column(0).data_type(), &DataType::Utf8View);
    assert_eq!(
        batches[0].schema().field(0).data_type(),
        &DataType::Utf8View
    );
}

#[test]
fn pruning_decides_row_groups() {
    let path = write_file("a.parquet", 40, 10);
    let t = file_schema();
    let all = vec![0, 1, 2, 3];
    let s = |v: &str| lit(ScalarValue::Utf8(Some(v.into())));
    let dec = |v: i128, p: u8, sc: i8| lit(ScalarValue::Decimal128(Some(v), p, sc));
    let day = |d: i32| lit(ScalarValue::Date32(Some(d)));
    let cases: Vec<(PhysExpr, Vec<usize>)> = vec![
        (id_op(BinaryOp::Eq, 15), vec![1]),
        (id_op(BinaryOp::NotEq, 15), all.clone()),
        (id_op(BinaryOp::Lt, 10), vec![0]),
        (id_op(BinaryOp::LtEq, 10), vec![0, 1]),
        (id_op(BinaryOp::Gt, 29), vec![3]),
        (id_op(BinaryOp::GtEq, 29), vec![2, 3]),
        (id_op(BinaryOp::Eq, 100), vec![]),
        (
            bin(
                lit(ScalarValue::Int64(Some(15))),
                BinaryOp::Eq,
                col(0, "id"),
            ),
            vec![1],
        ),
        (
            bin(
                lit(ScalarValue::Int64(Some(10))),
                BinaryOp::Gt,
                col(0, "id"),
            ),
            vec![0],
        ),
        // A literal of another integer type.
        (
            bin(
                col(0, "id"),
                BinaryOp::Eq,
                lit(ScalarValue::Int32(Some(25))),
            ),
            vec![2],
        ),
        (
            PhysExpr::Between {
                expr: Box::new(col(0, "id")),
                negated: false,
                low: Box::new(lit(ScalarValue::Int64(Some(12)))),
                high: Box::new(lit(ScalarValue::Int64(Some(25)))),
            },
            vec![1, 2],
        ),
        (
            PhysExpr::Between {
                expr: Box::new(col(0, "id")),
                negated: true,
                low: Box::new(lit(ScalarValue::Int64(Some(10)))),
                high: Box::new(lit(ScalarValue::Int64(Some(29)))),
            },
            vec![0, 3],
        ),
        (
            PhysExpr::InList {
                expr: Box::new(col(0, "id")),
                list: vec![
                    lit(ScalarValue::Int64(Some(3))),
                    lit(ScalarValue::Int64(Some(35))),
                ],
                negated: false,
            },
            vec![0, 3],
        ),
        (bin(col(1, "name"), BinaryOp::Eq, s("n021")), vec![2]),
        (bin(col(1, "name"), BinaryOp::Lt, s("n010")), vec![0]),
        (bin(col(1, "name"), BinaryOp::Gt, s("n1")), vec![]),
        // price = id + 0.05
        (
            bin(col(2, "price"), BinaryOp::Gt, dec(3000, 10, 2)),
            vec![3],
        ),
        (
            bin(col(2, "price"), BinaryOp::Eq, dec(10050, 12, 3)),
            vec![1],
        ),
        (
            bin(col(2, "price"), BinaryOp::Eq, dec(10051, 12, 3)),
            vec![1],
        ),
        (bin(col(3, "day"), BinaryOp::GtEq, day(10_030)), vec![3]),
        (bin(col(3, "day"), BinaryOp::Lt, day(10_000)), vec![]),
        // A cast of the column in the same family.
        (
            bin(
                PhysExpr::Cast {
                    expr: Box::new(col(4, "opt")),
                    data_type: DataType::Int64,
                },
                BinaryOp::Lt,
                lit(ScalarValue::Int64(Some(5))),
            ),
            vec![0],
        ),
        // Row group 3 of opt is all NULL.
        (
            bin(
                col(4, "opt"),
                BinaryOp::GtEq,
                lit(ScalarValue::Int32(Some(0))),
            ),
            vec![0, 1, 2],
        ),
        (PhysExpr::IsNotNull(Box::new(col(4, "opt"))), vec![0, 1, 2]),
        // OR / AND
        (
            bin(
                id_op(BinaryOp::Eq, 5),
                BinaryOp::Or,
                id_op(BinaryOp::Eq, 35),
            ),
            vec![0, 3],
        ),
        (
            bin(
                id_op(BinaryOp::Eq, 5),
                BinaryOp::Or,
                bin(
                    col(5, "score"),
                    BinaryOp::Gt,
                    lit(ScalarValue::Float64(Some(1.0))),
                ),
            ),
            all.clone(),
        ),
        (
            bin(
                id_op(BinaryOp::Gt, 100),
                BinaryOp::And,
                bin(
                    col(5, "score"),
                    BinaryOp::Gt,
                    lit(ScalarValue::Float64(Some(1.0))),
                ),
            ),
            vec![],
        ),
        // Not decidable: floats, arithmetic, LIKE.
        (
            bin(
                col(5, "score"),
                BinaryOp::Gt,
                lit(ScalarValue::Float64(Some(1e9))),
            ),
            all.clone(),
        ),
        (
            bin(
                bin(
                    col(0, "id"),
                    BinaryOp::Plus,
                    lit(ScalarValue::Int64(Some(1))),
                ),
                BinaryOp::Eq,
                lit(ScalarValue::Int64(Some(1000))),
            ),
            all.clone(),
        ),
        (
            bin(col(0, "id"), BinaryOp::Eq, lit(ScalarValue::Int64(None))),
            all.clone(),
        ),
        (lit(ScalarValue::Boolean(Some(false))), vec![]),
    ];
    for (e, want) in cases {
        assert_eq!(kept(&path, &t, std::slice::from_ref(&e)), want, "{e}");
    }
    // Several conjuncts: each must hold.
    assert_eq!(
        kept(
            &path,
            &t,
            &[id_op(BinaryOp::GtEq, 10), id_op(BinaryOp::Lt, 30)]
        ),
        vec![1, 2]
    );
    // IS NULL may only skip row groups known to have no NULLs.
    let k = kept(&path, &t, &[PhysExpr::IsNull(Box::new(col(4, "opt")))]);
    assert!(k.contains(&3), "{k:?}");
}

/// Pruning never loses a matching row: scanning with and without it and
/// filtering afterwards gives the same rows.
#[tokio::test]
async fn pruning_keeps_all_matching_rows() {
    let path = write_file("a.parquet", 40, 10);
    let t = file_schema();
    let registry = FunctionRegistry::with_defaults();
    let preds = vec![
        id_op(BinaryOp::Eq, 15),
        id_op(BinaryOp::GtEq, 29),
        id_op(BinaryOp::NotEq, 0),
        bin(
            col(1, "name"),
            BinaryOp::LtEq,
            lit(ScalarValue::Utf8(Some("n020".into()))),
        ),
        bin(
            col(2, "price"),
            BinaryOp::Lt,
            lit(ScalarValue::Decimal128(Some(1005), 10, 2)),
        ),
        PhysExpr::InList {
            expr: Box::new(col(3, "day")),
            list: vec![lit(ScalarValue::Date32(Some(10_011)))],
            negated: false,
        },
        bin(
            col(4, "opt"),
            BinaryOp::Gt,
            lit(ScalarValue::Int32(Some(27))),
        ),
    ];
    let all: Vec<usize> = (0..6).collect();
    for p in preds {
        let filter = p.compile(&t, &registry).unwrap();
        let run = |pruning: Vec<PhysExpr>| {
            let spec = spec(Arc::clone(&t), all.clone(), &pruning, 16);
            let path = path.clone();
            let filter = Arc::clone(&filter);
            async move {
                let batches = collect(whole(&path), spec).await.unwrap();
                let read: usize = batches.iter().map(|b| b.num_rows()).sum();
                let filtered: Vec<RecordBatch> = batches
                    .iter()
                    .map(|b| crate::operators::filter::filter_batch(filter.as_ref(), b))
                    .collect::<Result<_>>()
                    .unwrap();
                (read, ids(&filtered, 0))
            }
        };
        let (read_all, rows_all) = run(vec![]).await;
        let (read_pruned, rows_pruned) = run(vec![p.clone()]).await;
        assert_eq!(read_all, 40);
        assert!(read_pruned < 40 || p == id_op(BinaryOp::NotEq, 0), "{p}");
        assert_eq!(rows_pruned, rows_all, "{p}");
        assert!(!rows_all.is_empty(), "{p}");
    }
}

#[tokio::test]
async fn errors_name_the_file() {
    // Missing file.
    let missing = temp_path("missing.parquet").to_string_lossy().into_owned();
    let err = collect(whole(&missing), spec(file_schema(), vec![0], &[], 10))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataflowError::File { .. }), "{msg}");
    assert!(
        msg.contains(&missing) && msg.contains("no such file"),
        "{msg}"
    );

    // Not a Parquet file.
    let corrupt = temp_path("corrupt.parquet");
    std::fs::write(&corrupt, b"this is not a parquet file at all").unwrap();
    let corrupt = corrupt.to_string_lossy().into_owned();
    let err = collect(whole(&corrupt), spec(file_schema(), vec![0], &[], 10))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&corrupt), "{err}");
    let err = parquet_file_schema(&corrupt).unwrap_err();
    assert!(err.to_string().contains(&corrupt), "{err}");
    let err = parquet_splits(std::slice::from_ref(&corrupt), 2).unwrap_err();
    assert!(err.to_string().contains(&corrupt), "{err}");
    let err = parquet_file_schema(&missing).unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");

    // A table column the file does not have.
    let path = write_file("a.parquet", 5, 10);
    let table = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("zzz", DataType::Int64, true),
    ]));
    let err = collect(whole(&path), spec(table, vec![1], &[], 10))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&path) && msg.contains("zzz"), "{msg}");
}

#[test]
fn file_schema_and_splits() {
    let a = write_file("a.parquet", 40, 10); // 4 x 10 rows
    let b = write_file("b.parquet", 10, 5); // 2 x 5 rows
    let schema = parquet_file_schema(&a).unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "name", "price", "day", "opt", "score"]);
    assert_eq!(schema.field(2).data_type(), &DataType::Decimal128(10, 2));

    let files = vec![a.clone(), b.clone()];
    let rows_of = |parts: &[Vec<ParquetSplit>], p: usize| -> i64 {
        parts[p]
            .iter()
            .map(|s| if s.path == a { 10 } else { 5 } * s.row_groups.len() as i64)
            .sum()
    };
    let units = |parts: &[Vec<ParquetSplit>]| {
        let mut u: Vec<(String, usize)> = parts
            .iter()
            .flatten()
            .flat_map(|s| s.row_groups.iter().map(|&r| (s.path.clone(), r)))
            .collect();
        u.sort();
        u
    };
    let mut expect: Vec<(String, usize)> = (0..4)
        .map(|r| (a.clone(), r))
        .chain((0..2).map(|r| (b.clone(), r)))
        .collect();
    expect.sort();

    let three = parquet_splits(&files, 3).unwrap();
    assert_eq!(three.len(), 3);
    assert_eq!(units(&three), expect);
    for p in 0..3 {
        assert!(three[p].iter().all(|s| !s.row_groups.is_empty()));
        // 50 rows over 3: 20/20/10 at worst
        assert!((10..=20).contains(&rows_of(&three, p)), "{three:?}");
    }
    let many = parquet_splits(&files, 100).unwrap();
    assert_eq!(many.len(), 6);
    assert_eq!(units(&many), expect);
    assert!(many.iter().all(|p| p.len() == 1));
    let one = parquet_splits(&files, 0).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(units(&one), expect);
    assert_eq!(one[0].len(), 2);
    assert!(parquet_splits(&[], 4).unwrap() == vec![Vec::<ParquetSplit>::new()]);
}

#[tokio::test]
async fn operator_through_runner() {
    use crate::plan::{PhysicalPlan, ScanSource};
    let a = write_file("a.parquet", 40, 10);
    let table = file_schema();
    let plan = PhysicalPlan::Scan {
        source: ScanSource::Parquet {
            partitions: vec![vec![
                ParquetSplit {
                    path: a.clone(),
                    row_groups: vec![0, 2],
                },
                ParquetSplit {
                    path: a.clone(),
                    row_groups: vec![3],
                },
            ]],
        },
        table_schema: Arc::clone(&table),
        projection: Some(vec![0]),
        pruning: vec![id_op(BinaryOp::Lt, 25)],
        schema: Arc::new(table.project(&[0]).unwrap()),
    };
    let batches = crate::test_util::run(&plan, vec![], 4).await.unwrap();
    assert!(batches.iter().all(|b| b.num_rows() <= 4));
    let expect: Vec<i64> = (0..10).chain(20..30).collect();
    assert_eq!(ids(&batches, 0), expect);
    let _ = std::fs::remove_file(&a);
}
