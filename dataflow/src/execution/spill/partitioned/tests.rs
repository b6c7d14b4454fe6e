use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion_physical_expr::expressions::Column;

use super::*;
use crate::execution::{memory_pool, ExecConfig, QueryServices, QueryTasks};
use crate::functions::FunctionRegistry;
use crate::tables::MemoryTableMap;

fn context(spill_dir: &std::path::Path) -> (Arc<TaskContext>, Arc<QueryTasks>) {
    context_with_batches(spill_dir, 8192)
}

fn context_with_batches(
    spill_dir: &std::path::Path,
    batch_size: usize,
) -> (Arc<TaskContext>, Arc<QueryTasks>) {
    let config = ExecConfig {
        batch_size,
        memory_pool: memory_pool(Some(1 << 20)),
        spill_dir: spill_dir.to_path_buf(),
        ..ExecConfig::default()
    };
    let services = QueryServices::new(
        config,
        Arc::new(FunctionRegistry::with_defaults()),
        Arc::new(MemoryTableMap::default()),
    );
    let tasks = Arc::new(QueryTasks::new());
    (Arc::new(TaskContext::new(services, &tasks)), tasks)
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Utf8, true),
    ]))
}

/// Rows `(k, "r<i>")` for `i` in `range`, `k = i % keys` (NULL for 0).
fn batch(range: std::ops::Range<i64>, keys: i64) -> RecordBatch {
    let k: Int64Array = range
        .clone()
        .map(|i| Some(i % keys).filter(|&k| k != 0))
        .collect();
    let v: StringArray = range.map(|i| Some(format!("r{i}"))).collect();
    RecordBatch::try_new(schema(), vec![Arc::new(k), Arc::new(v)]).unwrap()
}

fn key_column() -> Vec<Arc<dyn PhysicalExpr>> {
    vec![Arc::new(Column::new("k", 0))]
}

/// Partitions `batches` at `level`: key -> run index, and all rows read back.
fn partition(
    ctx: &Arc<TaskContext>,
    batches: &[RecordBatch],
    level: usize,
) -> (BTreeMap<Option<i64>, usize>, Vec<String>) {
    let refused = DataflowError::Internal("refused".into());
    let mut spill =
        PartitionedSpill::try_new(ctx, &schema(), key_column(), level, refused).unwrap();
    for b in batches {
        spill.write(b).unwrap();
    }
    let mut run_of = BTreeMap::new();
    let mut rows = vec![];
    let runs = spill.finish().unwrap();
    assert_eq!(runs.len(), SPILL_FAN_OUT);
    for (p, run) in runs.into_iter().enumerate() {
        let Some(run) = run else { continue };
        for b in run.read().unwrap() {
            let b = b.unwrap();
            let k = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let v = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..b.num_rows() {
                let key = k.is_valid(i).then(|| k.value(i));
                let seen = *run_of.entry(key).or_insert(p);
                assert_eq!(seen, p, "key {key:?} in two runs");
                rows.push(v.value(i).to_string());
            }
        }
    }
    rows.sort();
    (run_of, rows)
}

#[test]
fn every_row_lands_once_and_equal_keys_together() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, _tasks) = context(dir.path());
    let batches = [batch(0..700, 100), batch(700..1000, 100), batch(0..0, 100)];
    let (run_of, rows) = partition(&ctx, &batches, 0);
    let mut expected: Vec<String> = (0..1000).map(|i| format!("r{i}")).collect();
    expected.sort();
    assert_eq!(rows, expected);
    assert_eq!(run_of.len(), 100);
    // 100 keys spread over most of the 16 runs.
    let used: std::collections::BTreeSet<_> = run_of.values().collect();
    assert!(used.len() > SPILL_FAN_OUT / 2, "{used:?}");
    // The runs were read back and dropped: no file is left.
    let spill_dir = ctx.spill_path().unwrap();
    assert_eq!(std::fs::read_dir(&spill_dir).unwrap().count(), 0);
    drop(ctx);
    assert!(!spill_dir.exists());
}

#[test]
fn deeper_levels_spread_one_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, _tasks) = context(dir.path());
    let (level0, _) = partition(&ctx, &[batch(0..2000, 2000)], 0);
    // The keys of one level-0 run, partitioned at level 1.
    let keys: Vec<i64> = level0
        .iter()
        .filter(|(_, &p)| p == 3)
        .filter_map(|(k, _)| *k)
        .collect();
    assert!(keys.len() > 50, "{}", keys.len());
    let k: Int64Array = keys.iter().map(|&k| Some(k)).collect();
    let v: StringArray = keys.iter().map(|k| Some(format!("r{k}"))).collect();
    let one_run = RecordBatch::try_new(schema(), vec![Arc::new(k), Arc::new(v)]).unwrap();
    // The same level keeps the run together; the next one spreads it.
    let (again, rows) = partition(&ctx, std::slice::from_ref(&one_run), 0);
    assert_eq!(rows.len(), keys.len());
    assert!(again.values().all(|&p| p == 3), "{again:?}");
    let (level1, rows) = partition(&ctx, &[one_run], 1);
    assert_eq!(rows.len(), keys.len());
    let used: std::collections::BTreeSet<_> = level1.values().collect();
    assert!(used.len() > SPILL_FAN_OUT / 2, "{used:?}");
    assert_ne!(level_seed(0), level_seed(1));
    for level in 0..=MAX_SPILL_LEVEL {
        assert_ne!(level_seed(level), PARTITION_HASH_SEED);
    }
}

#[test]
fn past_the_deepest_level_the_refusal_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, _tasks) = context(dir.path());
    let refused = DataflowError::Internal("refused".into());
    let err =
        PartitionedSpill::try_new(&ctx, &schema(), key_column(), MAX_SPILL_LEVEL + 1, refused)
            .err()
            .map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("internal error: refused"));
    assert!(ctx.spill_path().is_none(), "nothing was written");
}

#[test]
fn runs_are_made_only_for_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, _tasks) = context(dir.path());
    let mut spill = PartitionedSpill::new(&ctx, &schema(), key_column());
    spill.write(&batch(0..0, 10)).unwrap();
    let runs = spill.finish().unwrap();
    assert_eq!(runs.len(), SPILL_FAN_OUT);
    assert!(runs.iter().all(Option::is_none));
    assert!(ctx.spill_path().is_none(), "nothing spilled, no directory");
}

#[test]
fn dropped_unfinished_partitions_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, tasks) = context(dir.path());
    let refused = DataflowError::Internal("refused".into());
    let mut spill = PartitionedSpill::try_new(&ctx, &schema(), key_column(), 0, refused).unwrap();
    spill.write(&batch(0..100, 10)).unwrap();
    let spill_dir = ctx.spill_path().unwrap();
    assert!(std::fs::read_dir(&spill_dir).unwrap().count() > 0);
    drop(spill);
    assert_eq!(std::fs::read_dir(&spill_dir).unwrap().count(), 0);
    drop((ctx, tasks));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn inputs_partitioned_alongside_pair_up_by_run() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, _tasks) = context(dir.path());
    let refused = DataflowError::Internal("refused".into());
    let mut first = PartitionedSpill::try_new(&ctx, &schema(), key_column(), 2, refused).unwrap();
    // The second input has its key in another column.
    let other = Arc::new(Schema::new(vec![
        Field::new("v", DataType::Utf8, true),
        Field::new("k", DataType::Int64, true),
    ]));
    let mut second = first.alongside(&other, vec![Arc::new(Column::new("k", 1))]);
    let b = batch(0..500, 50);
    first.write(&b).unwrap();
    let swapped = RecordBatch::try_new(
        Arc::clone(&other),
        vec![b.column(1).clone(), b.column(0).clone()],
    )
    .unwrap();
    second.write(&swapped).unwrap();
    let keys_of = |runs: Vec<Option<SpillRun>>, col: usize| {
        runs.into_iter()
            .enumerate()
            .filter_map(|(p, run)| Some((p, run?)))
            .map(|(p, run)| {
                let mut keys: Vec<Option<i64>> = vec![];
                for b in run.read().unwrap() {
                    let b = b.unwrap();
                    let k = b.column(col).as_any().downcast_ref::<Int64Array>().unwrap();
                    keys.extend((0..b.num_rows()).map(|i| k.is_valid(i).then(|| k.value(i))));
                }
                keys.sort();
                (p, keys)
            })
            .collect::<Vec<_>>()
    };
    let a = keys_of(first.finish().unwrap(), 0);
    assert!(a.len() > 1);
    assert_eq!(a, keys_of(second.finish().unwrap(), 1));
}

#[test]
fn large_batches_are_dealt_out_in_slices() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, _tasks) = context_with_batches(dir.path(), 100);
    let refused = DataflowError::Internal("refused".into());
    let mut spill = PartitionedSpill::try_new(&ctx, &schema(), key_column(), 0, refused).unwrap();
    // One key: every row goes to one run, in slices of at most 100 rows.
    spill.write(&batch(0..1050, 1)).unwrap();
    let runs: Vec<SpillRun> = spill.finish().unwrap().into_iter().flatten().collect();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!((run.rows(), run.batches()), (1050, 11));
}

/// Key -> the runs its rows went to.
fn runs_of_keys(runs: Vec<Option<SpillRun>>, col: usize) -> BTreeMap<Option<i64>, BTreeSet<usize>> {
    let mut runs_of: BTreeMap<_, BTreeSet<usize>> = BTreeMap::new();
    for (p, run) in runs.into_iter().enumerate() {
        let Some(run) = run else { continue };
        for b in run.read().unwrap() {
            let b = b.unwrap();
            let k = b.column(col).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                runs_of
                    .entry(k.is_valid(i).then(|| k.value(i)))
                    .or_default()
                    .insert(p);
            }
        }
    }
    runs_of
}

#[test]
fn spread_nulls_go_to_every_run_and_other_keys_stay_together() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, _tasks) = context(dir.path());
    let mut first = PartitionedSpill::new(&ctx, &schema(), key_column()).spreading_nulls();
    let other = Arc::new(Schema::new(vec![
        Field::new("v", DataType::Utf8, true),
        Field::new("k", DataType::Int64, true),
    ]));
    // The second input spreads its NULLs too.
    let mut second = first.alongside(&other, vec![Arc::new(Column::new("k", 1))]);
    // 100 NULL keys (every tenth row) among 1000 rows, in two batches.
    first.write(&batch(0..600, 10)).unwrap();
    first.write(&batch(600..1000, 10)).unwrap();
    let b = batch(0..1000, 10);
    let swapped = RecordBatch::try_new(
        Arc::clone(&other),
        vec![b.column(1).clone(), b.column(0).clone()],
    )
    .unwrap();
    second.write(&swapped).unwrap();
    for (runs, col) in [(first.finish().unwrap(), 0), (second.finish().unwrap(), 1)] {
        let runs_of = runs_of_keys(runs, col);
        assert_eq!(runs_of.len(), 10);
        // Round-robin: 100 NULL rows reach every one of the 16 runs.
        assert_eq!(runs_of[&None].len(), SPILL_FAN_OUT);
        assert!(runs_of
            .iter()
            .all(|(k, runs)| k.is_none() || runs.len() == 1));
    }
}
