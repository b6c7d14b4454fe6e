//! TPC-H data: table sizes, and writing the tables to files.

use std::fmt;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use ffq_dataflow::operators::tpch_scan::{tpch_generator, tpch_schema, tpch_splits};
use ffq_dataflow::plan::TpchTable;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::format::CsvWriter;

/// The number of rows of `table` at `scale_factor` (lineitem approximate).
pub fn row_count(table: TpchTable, scale_factor: f64) -> u64 {
    let base: f64 = match table {
        TpchTable::Nation => return 25,
        TpchTable::Region => return 5,
        TpchTable::Part => 200_000.0,
        TpchTable::Supplier => 10_000.0,
        TpchTable::PartSupp => 800_000.0,
        TpchTable::Customer => 150_000.0,
        TpchTable::Orders => 1_500_000.0,
        TpchTable::LineItem => 6_000_000.0,
    };
    (base * scale_factor).max(1.0) as u64
}

/// The file format of generated TPC-H tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum TpchFileFormat {
    /// ZSTD-compressed Parquet, row groups of at most 1M rows.
    #[default]
    Parquet,
    /// CSV with a header row (see [`crate::format`]).
    Csv,
}

impl TpchFileFormat {
    pub fn extension(self) -> &'static str {
        match self {
            TpchFileFormat::Parquet => "parquet",
            TpchFileFormat::Csv => "csv",
        }
    }
}

impl fmt::Display for TpchFileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

impl FromStr for TpchFileFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "parquet" => Ok(TpchFileFormat::Parquet),
            "csv" => Ok(TpchFileFormat::Csv),
            _ => Err(Error::InvalidArgument(format!(
                "unknown TPC-H file format {s:?}; expected parquet or csv"
            ))),
        }
    }
}

/// One file written by [`write_tpch_files`].
#[derive(Debug, Clone)]
pub struct WrittenFile {
    pub table: TpchTable,
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
}

/// Rows per generated batch.
const GEN_BATCH_SIZE: usize = 8192;
/// Maximum rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// Writes the eight TPC-H tables at scale factor `sf` under `out`.
///
/// Parquet: `out/<table>/part-<i>.parquet`, `parts` files per table
/// (nation and region: always one). Earlier `part-*.parquet` files of the
/// table directory are removed first.
///
/// CSV: `out/<table>.csv` when `parts` is 1, else
/// `out/<table>/part-<i>.csv` like Parquet.
///
/// Data is generated batch by batch (a table is never held in memory);
/// parts are written in parallel threads.
pub fn write_tpch(sf: f64, out: &Path, format: TpchFileFormat, parts: usize) -> Result<()> {
    write_tpch_files(sf, out, format, parts, &TpchTable::ALL).map(|_| ())
}

/// Like [`write_tpch`] for the given `tables`; returns the files written,
/// by table then part.
pub fn write_tpch_files(
    sf: f64,
    out: &Path,
    format: TpchFileFormat,
    parts: usize,
    tables: &[TpchTable],
) -> Result<Vec<WrittenFile>> {
    if !(sf > 0.0 && sf.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "TPC-H scale factor must be positive, got {sf}"
        )));
    }
    if parts == 0 || parts > i32::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "the number of parts must be between 1 and {}, got {parts}",
            i32::MAX
        )));
    }
    create_dir(out)?;

    let mut jobs = Vec::new();
    for &table in tables {
        let single_file = format == TpchFileFormat::Csv && parts == 1;
        if single_file {
            let path = out.join(format!("{}.csv", table.name()));
            jobs.push(Job {
                table,
                part: 0,
                parts: 1,
                path,
            });
            continue;
        }
        let n = if tpch_splits(table) { parts } else { 1 };
        let dir = out.join(table.name());
        create_dir(&dir)?;
        remove_old_parts(&dir, format.extension())?;
        let width = (n - 1).to_string().len();
        for part in 0..n {
            let path = dir.join(format!("part-{part:0width$}.{}", format.extension()));
            jobs.push(Job {
                table,
                part,
                parts: n,
                path,
            });
        }
    }
    // Largest tables first, for a better balance over the threads.
    let order: Vec<usize> = {
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by_key(|&i| {
            let j = &jobs[i];
            std::cmp::Reverse(row_count(j.table, sf) / j.parts as u64)
        });
        order
    };

    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(jobs.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<WrittenFile>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = order.get(k) else { break };
                let r = write_job(&jobs[i], sf, format, &failed);
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                if let Ok(mut results) = results.lock() {
                    results[i] = Some(r);
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| Error::InvalidArgument("a TPC-H writer thread panicked".into()))?;
    let mut written = Vec::with_capacity(results.len());
    let mut first_error = None;
    for r in results {
        match r {
            Some(Ok(f)) => written.push(f),
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => {}
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if written.len() != jobs.len() {
        return Err(Error::InvalidArgument(
            "a TPC-H writer thread stopped early".into(),
        ));
    }
    Ok(written)
}

struct Job {
    table: TpchTable,
    /// 0-based.
    part: usize,
    parts: usize,
    path: PathBuf,
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir.display().to_string(), e))
}

/// Removes `part-*.<ext>` files (an earlier run's output) from `dir`.
fn remove_old_parts(dir: &Path, ext: &str) -> Result<()> {
    let name = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::file(&name, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::file(&name, e))?;
        let file_name = entry.file_name().to_string_lossy().to_string();
        let old = file_name
            .strip_prefix("part-")
            .and_then(|s| s.strip_suffix(&format!(".{ext}")))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if old {
            let p = entry.path();
            std::fs::remove_file(&p).map_err(|e| Error::file(p.display().to_string(), e))?;
        }
    }
    Ok(())
}

/// Generates one part into a hidden temporary file next to `job.path`,
/// then renames it.
fn write_job(
    job: &Job,
    sf: f64,
    format: TpchFileFormat,
    failed: &AtomicBool,
) -> Result<WrittenFile> {
    let path_name = job.path.display().to_string();
    let file_name = job
        .path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = job.path.with_file_name(format!(".{file_name}.tmp"));
    let r = write_part(job, sf, format, &tmp, failed);
    let rows = match r {
        Ok(rows) => rows,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &job.path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::file(&path_name, e)
    })?;
    let bytes = std::fs::metadata(&job.path)
        .map_err(|e| Error::file(&path_name, e))?
        .len();
    Ok(WrittenFile {
        table: job.table,
        path: job.path.clone(),
        rows,
        bytes,
    })
}

/// Writes part `job.part` of `job.table` to `tmp`; returns the row count.
fn write_part(
    job: &Job,
    sf: f64,
    format: TpchFileFormat,
    tmp: &Path,
    failed: &AtomicBool,
) -> Result<u64> {
    let name = job.path.display().to_string();
    let file_err = |e: &dyn fmt::Display| Error::file(&name, e);
    let file = File::create(tmp).map_err(|e| file_err(&e))?;
    let schema = tpch_schema(job.table);
    let batches = tpch_generator(
        job.table,
        sf,
        (job.part + 1) as i32,
        job.parts as i32,
        GEN_BATCH_SIZE,
    );
    // Each generated batch, unless another file failed: then the part stops.
    let mut rows = 0u64;
    let mut batches = batches.map(|batch| {
        if failed.load(Ordering::Relaxed) {
            return Err(file_err(&"stopped after an error in another file"));
        }
        let batch = batch.map_err(|e| file_err(&format!("generating data: {e}")))?;
        rows += batch.num_rows() as u64;
        Ok(batch)
    });
    match format {
        TpchFileFormat::Parquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(
                    ZstdLevel::try_new(1).map_err(|e| file_err(&e))?,
                ))
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                .set_created_by(format!("ffq {}", env!("CARGO_PKG_VERSION")))
                .build();
            let mut writer = ArrowWriter::try_new(BufWriter::new(file), schema, Some(props))
                .map_err(|e| file_err(&e))?;
            for batch in &mut batches {
                writer.write(&batch?).map_err(|e| file_err(&e))?;
            }
            writer.close().map_err(|e| file_err(&e))?;
        }
        TpchFileFormat::Csv => {
            let mut writer = CsvWriter::new(BufWriter::with_capacity(1 << 20, file), schema);
            for batch in &mut batches {
                writer.write(&batch?).map_err(|e| file_err(&e))?;
            }
            let out = writer.finish().map_err(|e| file_err(&e))?;
            out.into_inner()
                .map_err(|e| file_err(&e.error()))?
                .sync_all()
                .map_err(|e| file_err(&e))?;
        }
    }
    drop(batches);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nation_and_orders_parts() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_tpch_files(
            0.01,
            dir.path(),
            TpchFileFormat::Parquet,
            2,
            &[TpchTable::Nation, TpchTable::Orders],
        )
        .unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| {
                f.path
                    .strip_prefix(dir.path())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            vec![
                "nation/part-0.parquet",
                "orders/part-0.parquet",
                "orders/part-1.parquet"
            ]
        );
        assert_eq!(files[0].rows, 25);
        assert_eq!(files[1].rows + files[2].rows, 15_000);

        // A second run with fewer parts removes the stale part.
        write_tpch_files(
            0.01,
            dir.path(),
            TpchFileFormat::Parquet,
            1,
            &[TpchTable::Orders],
        )
        .unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path().join("orders"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        left.sort();
        assert_eq!(left, vec!["part-0.parquet"]);
    }

    #[test]
    fn writes_csv() {
        let dir = tempfile::tempdir().unwrap();
        write_tpch_files(
            0.01,
            dir.path(),
            TpchFileFormat::Csv,
            1,
            &[TpchTable::Region],
        )
        .unwrap();
        let text = std::fs::read_to_string(dir.path().join("region.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0], "r_regionkey,r_name,r_comment");
        assert!(lines[1].starts_with("0,AFRICA,"), "{}", lines[1]);
    }

    #[test]
    fn rejects_bad_arguments() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_tpch(0.0, dir.path(), TpchFileFormat::Parquet, 1).is_err());
        assert!(write_tpch(0.01, dir.path(), TpchFileFormat::Parquet, 0).is_err());
    }
}
