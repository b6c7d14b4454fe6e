//! Scan of Parquet files: partition `p` reads its splits (a file and some of
//! its row groups) in order, with projection and row-group pruning. A file
//! is a local path or an object-store URL ([`crate::storage`]), read with
//! range requests: the footer, then only the selected column chunks.
//!
//! The table schema is the planner's view; each file is read with its own
//! schema and table columns are matched to file columns by name. Row groups
//! whose min/max statistics prove a pruning conjunct false are skipped
//! (see [`super::pruning`]).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use futures::StreamExt;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::files::{check_projection, conform_columns, file_error, open_error, ScanColumns};
use super::pruning::{FileStats, PruningPredicate};
use crate::error::Result;
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::expr::PhysExpr;
use crate::plan::ParquetSplit;
use crate::storage;
use crate::stream::{boxed, SendableRecordBatchStream};

#[cfg(test)]
mod tests;

pub struct ParquetScan {
    properties: OperatorProperties,
    partitions: Vec<Vec<ParquetSplit>>,
    table_schema: SchemaRef,
    projection: Vec<usize>,
    pruning: Arc<PruningPredicate>,
    schema: SchemaRef,
}

impl ParquetScan {
    /// Partition `p` reads the splits `partitions[p]`; `pruning` are
    /// conjuncts over the table schema used to skip row groups.
    pub fn try_new(
        partitions: Vec<Vec<ParquetSplit>>,
        columns: ScanColumns,
        pruning: &[PhysExpr],
    ) -> Result<Self> {
        let ScanColumns {
            table_schema,
            projection,
            schema,
        } = columns;
        let projection = check_projection(&table_schema, projection, &schema, "ParquetScan")?;
        let pruning = Arc::new(PruningPredicate::new(pruning, &table_schema));
        Ok(ParquetScan {
            properties: OperatorProperties::new(
                "ParquetScan",
                Arc::clone(&schema),
                partitions.len().max(1),
            ),
            partitions,
            table_schema,
            projection,
            pruning,
            schema,
        })
    }
}

/// The index of the field named `name` in `schema`: an exact match, else
/// the only case-insensitive one.
pub(crate) fn find_field(schema: &Schema, name: &str) -> Option<usize> {
    let fields = schema.fields();
    if let Some(i) = fields.iter().position(|f| f.name() == name) {
        return Some(i);
    }
    let mut matches = fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name().eq_ignore_ascii_case(name));
    match (matches.next(), matches.next()) {
        (Some((i, _)), None) => Some(i),
        _ => None,
    }
}

/// The Arrow schema of a Parquet file, from its footer.
pub fn parquet_file_schema(path: &str) -> Result<SchemaRef> {
    Ok(parquet_file_info(path)?.0)
}

/// The Arrow schema (without file-level metadata) and the row count of a
/// Parquet file, from its footer.
pub fn parquet_file_info(path: &str) -> Result<(SchemaRef, u64)> {
    let meta = if storage::is_url(path) {
        ArrowReaderMetadata::try_new(storage::parquet_metadata(path)?, ArrowReaderOptions::new())
    } else {
        let file = std::fs::File::open(path).map_err(|e| open_error(path, e))?;
        ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
    }
    .map_err(|e| read_error(path, e))?;
    let rows = meta.metadata().file_metadata().num_rows().max(0) as u64;
    let schema = Schema::new(meta.schema().fields().clone());
    Ok((Arc::new(schema), rows))
}

/// The footer metadata of Parquet file (or object URL) `path`.
fn file_metadata(path: &str) -> Result<Arc<ParquetMetaData>> {
    if storage::is_url(path) {
        return storage::parquet_metadata(path);
    }
    let file = std::fs::File::open(path).map_err(|e| open_error(path, e))?;
    ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .map(Arc::new)
        .map_err(|e| read_error(path, e))
}

/// Maps a Parquet reader's error on `path` (an object-store cause is
/// described: no such object, access denied, ...).
fn read_error(path: &str, e: parquet::errors::ParquetError) -> crate::error::DataflowError {
    file_error(path, storage::parquet_error(e))
}

/// Splits `files` into at most `partitions` partitions of row groups,
/// balancing row counts. Each row group goes to exactly one partition;
/// there are never more partitions than row groups, and at least one.
pub fn parquet_splits(files: &[String], partitions: usize) -> Result<Vec<Vec<ParquetSplit>>> {
    // (file, row group, rows)
    let mut units: Vec<(usize, usize, u64)> = Vec::new();
    for (fi, path) in files.iter().enumerate() {
        let meta = file_metadata(path)?;
        for (rg, r) in meta.row_groups().iter().enumerate() {
            units.push((fi, rg, r.num_rows().max(0) as u64));
        }
    }
    let n = partitions.max(1).min(units.len()).max(1);
    // Largest first, each to the least loaded partition (ties: the one with
    // fewer units, then the lowest index).
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_by(|&a, &b| units[b].2.cmp(&units[a].2).then(a.cmp(&b)));
    let mut load = vec![(0u64, 0usize); n];
    let mut assigned: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for u in order {
        let p = (0..n).min_by_key(|&p| (load[p], p)).unwrap_or(0);
        load[p].0 += units[u].2;
        load[p].1 += 1;
        assigned[p].push((units[u].0, units[u].1));
    }
    Ok(assigned
        .into_iter()
        .map(|mut a| {
            a.sort_unstable();
            let mut splits: Vec<ParquetSplit> = Vec::new();
            for (fi, rg) in a {
                match splits.last_mut() {
                    Some(s) if s.path == files[fi] => s.row_groups.push(rg),
                    _ => splits.push(ParquetSplit {
                        path: files[fi].clone(),
                        row_groups: vec![rg],
                    }),
                }
            }
            splits
        })
        .collect())
}

/// Everything a partition needs to read its splits.
#[derive(Clone)]
pub(crate) struct ScanSpec {
    pub table_schema: SchemaRef,
    pub projection: Vec<usize>,
    pub pruning: Arc<PruningPredicate>,
    pub schema: SchemaRef,
    pub batch_size: usize,
}

/// Reads `splits` in order.
pub(crate) fn scan_splits(
    splits: Vec<ParquetSplit>,
    spec: ScanSpec,
) -> impl futures::Stream<Item = Result<RecordBatch>> + Send + 'static {
    async_stream::try_stream! {
        for split in splits {
            let path = split.path.as_str();
            let Some((mut reader, positions)) = open_split(&split, &spec).await? else {
                continue;
            };
            while let Some(batch) = reader.next().await {
                let batch = batch.map_err(|e| read_error(path, e))?;
                let columns = positions.iter().map(|&i| Arc::clone(batch.column(i))).collect();
                yield conform_columns(columns, batch.num_rows(), &spec.schema)
                    .map_err(|e| file_error(path, e))?;
            }
        }
    }
}

/// A local file or an object read with range requests.
type FileInput = Box<dyn AsyncFileReader>;
type FileStream = parquet::arrow::async_reader::ParquetRecordBatchStream<FileInput>;

/// Opens one split: maps columns, selects and prunes row groups. Returns
/// `None` when nothing is left to read; otherwise the reader and, for each
/// output column, its position in the reader's batches.
async fn open_split(
    split: &ParquetSplit,
    spec: &ScanSpec,
) -> Result<Option<(FileStream, Vec<usize>)>> {
    let path = split.path.as_str();
    let input: FileInput = if storage::is_url(path) {
        Box::new(storage::parquet_reader(path)?)
    } else {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| open_error(path, e))?;
        Box::new(file)
    };
    let builder = ParquetRecordBatchStreamBuilder::new(input)
        .await
        .map_err(|e| read_error(path, e))?;
    let file_schema = Arc::clone(builder.schema());

    // Table columns -> file root columns, by name.
    let mut roots = Vec::with_capacity(spec.projection.len());
    for &ti in &spec.projection {
        let name = spec.table_schema.field(ti).name();
        let fi = find_field(&file_schema, name)
            .ok_or_else(|| file_error(path, format!("column {name} not found in file")))?;
        roots.push(fi);
    }

    let metadata = Arc::clone(builder.metadata());
    let num_row_groups = metadata.num_row_groups();
    let mut row_groups: Vec<usize> = if split.row_groups.is_empty() {
        (0..num_row_groups).collect()
    } else {
        split.row_groups.clone()
    };
    if let Some(bad) = row_groups.iter().find(|&&rg| rg >= num_row_groups) {
        Err(file_error(
            path,
            format!("row group {bad} out of range (file has {num_row_groups})"),
        ))?;
    }
    if !spec.pruning.is_empty() && !row_groups.is_empty() {
        let table_schema = &spec.table_schema;
        let column_map = |ti: usize| -> Option<usize> {
            find_field(&file_schema, table_schema.fields().get(ti)?.name())
        };
        let keep = spec.pruning.keep(&FileStats {
            file_schema: &file_schema,
            parquet_schema: builder.parquet_schema(),
            metadata: &metadata,
            row_groups: &row_groups,
            column_map: &column_map,
        });
        let mut k = keep.into_iter();
        row_groups.retain(|_| k.next().unwrap_or(true));
    }
    let rows: i64 = row_groups
        .iter()
        .map(|&rg| metadata.row_group(rg).num_rows())
        .sum();
    if row_groups.is_empty() || rows <= 0 {
        return Ok(None);
    }

    let mut unique = roots.clone();
    unique.sort_unstable();
    unique.dedup();
    let positions = roots
        .iter()
        .map(|r| unique.partition_point(|x| x < r))
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), unique.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_row_groups(row_groups)
        .with_batch_size(spec.batch_size.max(1))
        .build()
        .map_err(|e| read_error(path, e))?;
    Ok(Some((reader, positions)))
}

impl Operator for ParquetScan {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let splits = self.partitions.get(partition).cloned().unwrap_or_default();
        let spec = ScanSpec {
            table_schema: Arc::clone(&self.table_schema),
            projection: self.projection.clone(),
            pruning: Arc::clone(&self.pruning),
            schema: Arc::clone(&self.schema),
            batch_size: ctx.config.batch_size,
        };
        Ok(boxed(self.schema(), scan_splits(splits, spec)))
    }
}
