use std::sync::Arc;

use arrow::array::{Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion_common::DFSchema;
use datafusion_expr::logical_plan::builder::LogicalPlanBuilder;
use datafusion_expr::{col, lit, LogicalPlan};

use super::{with_working_table, CteWorkTable, SeenRows};

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("n", DataType::Int32, true),
        Field::new("s", DataType::Utf8, true),
    ]))
}

fn batch(n: Vec<Option<i32>>, s: Vec<Option<&str>>) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int32Array::from(n)),
            Arc::new(StringArray::from(s)),
        ],
    )
    .unwrap()
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

#[test]
fn union_keeps_each_row_once_across_iterations_with_nulls_equal() {
    let df_schema = Arc::new(DFSchema::try_from(schema().as_ref().clone()).unwrap());
    let mut seen = SeenRows::new(&df_schema).unwrap();
    let first = seen
        .keep_new(vec![batch(
            vec![Some(1), Some(1), None, None],
            vec![Some("a"), Some("a"), None, None],
        )])
        .unwrap();
    assert_eq!(rows(&first), 2);
    let second = seen
        .keep_new(vec![
            batch(vec![None, Some(2)], vec![None, Some("a")]),
            batch(vec![Some(1), Some(2)], vec![Some("b"), Some("a")]),
        ])
        .unwrap();
    // (NULL, NULL) was seen; (2, a) is new once; (1, b) is new.
    assert_eq!(rows(&second), 2);
    assert!(rows(&seen.keep_new(second).unwrap()) == 0);
}

#[test]
fn the_working_table_scan_reads_the_rows_with_its_projection_and_filters() {
    let source = Arc::new(CteWorkTable::new("r", schema()));
    let term = LogicalPlanBuilder::scan("r", source, Some(vec![0]))
        .unwrap()
        .filter(col("r.n").gt(lit(1)))
        .unwrap()
        .build()
        .unwrap();
    let work = [batch(vec![Some(1), Some(2)], vec![Some("x"), Some("y")])];
    let replaced = with_working_table(&term, "r", &work).unwrap();
    let text = replaced.display_indent().to_string();
    assert!(text.contains("Values: 2 rows"), "{text}");
    assert!(!text.contains("TableScan"), "{text}");
    assert_eq!(replaced.schema().fields().len(), 1);
    // Another table of the same name is not the working table.
    let other = LogicalPlanBuilder::scan(
        "r",
        Arc::new(datafusion_expr::logical_plan::builder::LogicalTableSource::new(schema())),
        None,
    )
    .unwrap()
    .build()
    .unwrap();
    let kept = with_working_table(&other, "r", &work).unwrap();
    assert!(matches!(kept, LogicalPlan::TableScan(_)));
}
