use std::sync::Arc;

use arrow::array::{Array, Int32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_physical_expr::expressions::Column;
use datafusion_physical_expr::PhysicalExpr;

use super::*;
use crate::execution::{memory_pool, ExecConfig, QueryServices, QueryTasks};
use crate::functions::FunctionRegistry;
use crate::tables::MemoryTableMap;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int32, true),
        Field::new("v", DataType::Int32, false),
    ]))
}

fn batch(keys: Vec<Option<i32>>) -> RecordBatch {
    let v: Vec<i32> = (0..keys.len() as i32).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int32Array::from(keys)),
            Arc::new(Int32Array::from(v)),
        ],
    )
    .unwrap()
}

fn context(dir: &std::path::Path) -> (Arc<QueryTasks>, Arc<TaskContext>) {
    let tasks = Arc::new(QueryTasks::new());
    let config = ExecConfig {
        memory_pool: memory_pool(Some(1 << 20)),
        spill_dir: dir.to_path_buf(),
        ..ExecConfig::default()
    };
    let services = QueryServices::new(
        config,
        Arc::new(FunctionRegistry::with_defaults()),
        Arc::new(MemoryTableMap::default()),
    );
    let ctx = Arc::new(TaskContext::new(services, &tasks));
    (tasks, ctx)
}

fn keys_of(run: SpillRun) -> Vec<Option<i32>> {
    run.read()
        .unwrap()
        .flat_map(|b| {
            let b = b.unwrap();
            let k = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
            (0..k.len())
                .map(|i| k.is_valid(i).then(|| k.value(i)))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn key_exprs() -> Vec<Arc<dyn PhysicalExpr>> {
    vec![Arc::new(Column::new("k", 0))]
}

#[test]
fn equal_keys_share_a_run_and_every_row_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_tasks, ctx) = context(dir.path());
    let mut p = SpillPartitioner::new(&ctx, &schema(), &key_exprs(), 8, 0);
    let keys: Vec<Option<i32>> = (0..500).map(|i| (i % 7 != 0).then_some(i % 50)).collect();
    p.write(&batch(keys[..250].to_vec())).unwrap();
    p.write(&batch(vec![])).unwrap();
    p.write(&batch(keys[250..].to_vec())).unwrap();
    let runs = p.finish().unwrap();
    assert_eq!(runs.len(), 8);
    let mut seen_in: std::collections::HashMap<Option<i32>, usize> = Default::default();
    let mut all = Vec::new();
    for (i, run) in runs.into_iter().enumerate() {
        let Some(run) = run else { continue };
        for k in keys_of(run) {
            assert_eq!(*seen_in.entry(k).or_insert(i), i, "key {k:?} in two runs");
            all.push(k);
        }
    }
    let mut expected = keys.clone();
    expected.sort();
    all.sort();
    assert_eq!(all, expected);
    // 50 keys spread over more than one run.
    assert!(
        seen_in
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1
    );
    assert!(ctx.spill_path().is_some());
}

#[test]
fn another_level_splits_a_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let (_tasks, ctx) = context(dir.path());
    let keys: Vec<Option<i32>> = (0..1000).map(Some).collect();
    let mut first = SpillPartitioner::new(&ctx, &schema(), &key_exprs(), 4, 0);
    first.write(&batch(keys)).unwrap();
    let run = Arc::new(
        first
            .finish()
            .unwrap()
            .into_iter()
            .flatten()
            .next()
            .unwrap(),
    );
    let rows = run.rows();
    // The same level keeps the run together; the next one splits it.
    for (level, together) in [(0, true), (1, false)] {
        let mut again = SpillPartitioner::new(&ctx, &schema(), &key_exprs(), 4, level);
        for b in SpillRun::read_shared(&run).unwrap() {
            again.write(&b.unwrap()).unwrap();
        }
        let sizes: Vec<usize> = again
            .finish()
            .unwrap()
            .iter()
            .map(|r| r.as_ref().map_or(0, |r| r.rows()))
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), rows);
        assert_eq!(sizes.contains(&rows), together, "{sizes:?}");
    }
    assert_ne!(level_seed(0), level_seed(1));
    assert_ne!(level_seed(0), PARTITION_HASH_SEED);
}

#[test]
fn runs_are_made_only_for_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (_tasks, ctx) = context(dir.path());
    let p = SpillPartitioner::new(&ctx, &schema(), &key_exprs(), 16, 0);
    assert!(p.finish().unwrap().iter().all(Option::is_none));
    assert!(ctx.spill_path().is_none(), "nothing spilled, no directory");
}
