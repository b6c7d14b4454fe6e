//! Lowering a scan of a partitioned table ([`crate::partitioned`]): the
//! directories whose partition values fail a pushed-down filter are
//! dropped here, before any file is opened; each remaining directory
//! becomes a scan of its files under a projection that adds its partition
//! values as literal columns, and the directories are read side by side
//! (a union).
//!
//! ```text
//!   Union
//!   ├─ Projection [a, b, 2024 AS year, 1 AS month]   ← year=2024/month=1
//!   │   └─ Scan [a, b]
//!   └─ Projection [a, b, 2024 AS year, 2 AS month]   ← year=2024/month=2
//!       └─ Scan [a, b]
//! ```

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use ffq_dataflow::expr::PhysExpr;
use ffq_dataflow::functions::FunctionRegistry;
use ffq_dataflow::operators::parquet_scan;
use ffq_dataflow::plan::{PhysicalPlan, ScanSource};

use crate::error::Result;
use crate::partitioned::{PartitionDir, PartitionedFormat, PartitionedTable};

/// The scan of `table` (schema `table_schema`) reading the columns
/// `projection` (all when `None`), with `filters` over the table schema.
pub(super) fn lower_partitioned_scan(
    table: &PartitionedTable,
    table_schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
    filters: &[PhysExpr],
    target_partitions: usize,
    registry: &FunctionRegistry,
) -> Result<PhysicalPlan> {
    let file_n = table.file_columns(table_schema);
    let all: Vec<usize> = (0..table_schema.fields().len()).collect();
    let projection = projection.unwrap_or(&all);
    let schema = Arc::new(table_schema.project(projection)?);
    let dirs = kept_dirs(table, table_schema, file_n, filters, registry)?;
    if dirs.is_empty() {
        return Ok(PhysicalPlan::Empty {
            schema,
            produce_one_row: false,
        });
    }
    let file_schema = Arc::new(Schema::new(table_schema.fields()[..file_n].to_vec()));
    let file_projection: Vec<usize> = projection.iter().copied().filter(|&i| i < file_n).collect();
    let scan_schema = Arc::new(file_schema.project(&file_projection)?);
    // Row-group pruning of Parquet files takes the filters on file columns
    // (their indices are the same in the file schema).
    let pruning: Vec<PhysExpr> = match table.format {
        PartitionedFormat::Parquet => filters
            .iter()
            .filter(|f| columns_of(f).iter().all(|&c| c < file_n))
            .cloned()
            .collect(),
        _ => vec![],
    };
    let per_dir = (target_partitions.max(1) / dirs.len()).max(1);
    let mut inputs = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let source = match &table.format {
            PartitionedFormat::Parquet => ScanSource::Parquet {
                partitions: parquet_scan::parquet_splits(&dir.files, per_dir)?,
            },
            PartitionedFormat::Csv(options) => ScanSource::Csv {
                partitions: dir.files.iter().map(|f| vec![f.clone()]).collect(),
                has_header: options.has_header,
                delimiter: options.delimiter,
            },
            PartitionedFormat::Json => ScanSource::Json {
                partitions: dir.files.iter().map(|f| vec![f.clone()]).collect(),
            },
        };
        let scan = PhysicalPlan::Scan {
            source,
            table_schema: Arc::clone(&file_schema),
            projection: Some(file_projection.clone()),
            pruning: pruning.clone(),
            schema: Arc::clone(&scan_schema),
        };
        let exprs = projection
            .iter()
            .map(|&i| {
                let name = table_schema.field(i).name();
                match file_projection.iter().position(|&f| f == i) {
                    Some(at) => PhysExpr::col(at, name),
                    None => PhysExpr::lit(dir.values[i - file_n].clone()),
                }
            })
            .collect();
        inputs.push(PhysicalPlan::Projection {
            input: Box::new(scan),
            exprs,
            schema: Arc::clone(&schema),
        });
    }
    Ok(match inputs.len() {
        1 => inputs.remove(0),
        _ => PhysicalPlan::Union { inputs, schema },
    })
}

fn columns_of(e: &PhysExpr) -> Vec<usize> {
    let mut out = Vec::new();
    e.columns(&mut out);
    out
}

/// The directories whose partition values pass every filter that reads
/// partition columns only (a filter that cannot be evaluated keeps them).
fn kept_dirs<'a>(
    table: &'a PartitionedTable,
    table_schema: &SchemaRef,
    file_n: usize,
    filters: &[PhysExpr],
    registry: &FunctionRegistry,
) -> Result<Vec<&'a PartitionDir>> {
    let on_partitions: Vec<&PhysExpr> = filters
        .iter()
        .filter(|f| {
            let columns = columns_of(f);
            !columns.is_empty() && columns.iter().all(|&c| c >= file_n)
        })
        .collect();
    if on_partitions.is_empty() {
        return Ok(table.dirs.iter().collect());
    }
    // One row per directory: file columns NULL, partition columns its
    // values (every field nullable).
    let eval_schema = Arc::new(Schema::new(
        table_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let compiled = on_partitions
        .iter()
        .filter_map(|f| f.compile(&eval_schema, registry).ok())
        .collect::<Vec<_>>();
    let mut kept = Vec::new();
    for dir in &table.dirs {
        let mut columns: Vec<ArrayRef> = table_schema.fields()[..file_n]
            .iter()
            .map(|f| new_null_array(f.data_type(), 1))
            .collect();
        for v in &dir.values {
            columns.push(v.to_array_of_size(1)?);
        }
        let batch = RecordBatch::try_new(Arc::clone(&eval_schema), columns)?;
        let passes = compiled.iter().all(|expr| {
            let value = expr.evaluate(&batch).and_then(|v| v.into_array(1));
            match value {
                Ok(array) => array
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .is_none_or(|b| b.is_valid(0) && b.value(0)),
                Err(_) => true,
            }
        });
        if passes {
            kept.push(dir);
        }
    }
    Ok(kept)
}
