//! Spilling operator state to disk: Arrow IPC files in a per-query spill
//! directory, written and read back one batch at a time.
//!
//! Every query that spills gets one directory under the configured spill
//! directory ([`ExecConfig::spill_dir`](super::ExecConfig), default the
//! system temp dir), named `ffq-spill-<pid>-<random>`. It is made on the
//! first spill and removed with everything in it when the query's last
//! [`TaskContext`](super::TaskContext) is dropped: after success, after an
//! error and after the consumer dropped the stream (cancellation), because
//! each of those drops the query's operators. A process that dies leaves
//! its directory behind; [`remove_stale_spill_dirs`] (called when an
//! engine or a worker starts) removes the directories of processes that
//! no longer run.
//!
//! A [`SpillWriter`] writes one run; [`SpillWriter::finish`] turns it into
//! a [`SpillRun`], whose file is deleted when the run is dropped, so a
//! consumed run gives its disk space back before the query ends. The bytes,
//! rows, files and time of every spill are counted in the operator's
//! metrics (`EXPLAIN ANALYZE`).
//!
//! An operator whose hash table does not fit deals its rows over several
//! runs by hash of their keys ([`PartitionedSpill`], `partitioned.rs`, the
//! one partitioning kernel of the hash join, the hash aggregate, the set
//! operations and the exchange) and later processes one run at a time.
//!
//! Reads and writes are plain blocking file I/O of one batch at a time:
//! each call is as long as encoding or decoding one batch, like the CPU
//! work operators do inline, and the page cache serves recent writes.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, AsArray, GenericByteViewArray, RecordBatch, RecordBatchOptions,
};
use arrow::datatypes::{ByteViewType, DataType, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use tempfile::{TempDir, TempPath};

use crate::error::{DataflowError, Result};
use crate::metrics::OperatorMetrics;

mod partitioned;

pub use partitioned::{
    partition_indices, PartitionedSpill, MAX_SPILL_LEVEL, PARTITION_HASH_SEED, SPILL_FAN_OUT,
};

/// The prefix of every query's spill directory.
const DIR_PREFIX: &str = "ffq-spill-";

/// The spill directory of one query, made on first use.
#[derive(Debug)]
pub struct SpillArea {
    /// Where the directory goes.
    base: PathBuf,
    dir: Mutex<Option<Arc<TempDir>>>,
}

impl SpillArea {
    pub fn new(base: PathBuf) -> Self {
        SpillArea {
            base,
            dir: Mutex::new(None),
        }
    }

    /// The query's directory, made now if this is the first spill.
    fn dir(&self) -> Result<Arc<TempDir>> {
        let mut dir = self.dir.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = dir.as_ref() {
            return Ok(Arc::clone(d));
        }
        if self.base.exists() && !self.base.is_dir() {
            return Err(DataflowError::Execution(format!(
                "spilling: the spill directory {} is not a directory",
                self.base.display()
            )));
        }
        std::fs::create_dir_all(&self.base).map_err(|e| spill_error(&self.base, "creating", e))?;
        let made = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir_in(&self.base)
            .map_err(|e| spill_error(&self.base, "creating a directory in", e))?;
        let made = Arc::new(made);
        *dir = Some(Arc::clone(&made));
        Ok(made)
    }

    /// The query's directory, if it spilled (for tests and diagnostics).
    pub fn path(&self) -> Option<PathBuf> {
        let dir = self.dir.lock().unwrap_or_else(|p| p.into_inner());
        dir.as_ref().map(|d| d.path().to_path_buf())
    }

    /// A writer of a new run of batches of `schema`, counted in `metrics`.
    pub(crate) fn writer(
        &self,
        schema: &SchemaRef,
        metrics: Option<Arc<OperatorMetrics>>,
    ) -> Result<SpillWriter> {
        let start = Instant::now();
        let dir = self.dir()?;
        let file = tempfile::Builder::new()
            .prefix("run-")
            .suffix(".arrow")
            .tempfile_in(dir.path())
            .map_err(|e| spill_error(dir.path(), "creating a spill file in", e))?;
        let (file, path) = file.into_parts();
        let writer = StreamWriter::try_new(BufWriter::new(file), schema)?;
        let writer = SpillWriter {
            writer,
            path,
            _dir: dir,
            schema: Arc::clone(schema),
            rows: 0,
            batches: 0,
            metrics,
        };
        writer.count_time(start);
        Ok(writer)
    }
}

/// Writes one run of batches to a spill file.
pub struct SpillWriter {
    writer: StreamWriter<BufWriter<File>>,
    path: TempPath,
    /// Keeps the directory while the file exists.
    _dir: Arc<TempDir>,
    schema: SchemaRef,
    rows: usize,
    batches: usize,
    metrics: Option<Arc<OperatorMetrics>>,
}

impl SpillWriter {
    /// Writes `batch` (its view arrays compacted, see [`compact_views`]).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let start = Instant::now();
        let batch = compact_views(batch)?;
        self.writer
            .write(&batch)
            .map_err(|e| spill_arrow_error(&self.path, e))?;
        self.rows += batch.num_rows();
        self.batches += 1;
        self.count_time(start);
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Ends the run; its file can now be read back.
    pub fn finish(mut self) -> Result<SpillRun> {
        let start = Instant::now();
        self.writer
            .finish()
            .map_err(|e| spill_arrow_error(&self.path, e))?;
        let bytes = std::fs::metadata(&self.path)
            .map(|m| m.len())
            .map_err(|e| spill_error(&self.path, "reading the size of", e))?;
        if let Some(m) = &self.metrics {
            m.spill_files.fetch_add(1, Ordering::Relaxed);
            m.spilled_rows
                .fetch_add(self.rows as u64, Ordering::Relaxed);
            m.spilled_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        self.count_time(start);
        Ok(SpillRun {
            path: self.path,
            _dir: self._dir,
            schema: self.schema,
            rows: self.rows,
            batches: self.batches,
            bytes,
        })
    }

    fn count_time(&self, start: Instant) {
        if let Some(m) = &self.metrics {
            m.spill_ns
                .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }
}

/// A finished spill file; deleted when dropped.
#[derive(Debug)]
pub struct SpillRun {
    path: TempPath,
    _dir: Arc<TempDir>,
    schema: SchemaRef,
    rows: usize,
    batches: usize,
    bytes: u64,
}

impl SpillRun {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn batches(&self) -> usize {
        self.batches
    }

    /// Size of the file.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Reads the run back one batch at a time, in the order written. The
    /// file is deleted when the reader is dropped.
    pub fn read(self) -> Result<SpillReader> {
        SpillRun::read_shared(&Arc::new(self))
    }

    /// Reads a run that several readers share (e.g. a join build side
    /// spilled once and read by every probe partition), from its start.
    /// The file is deleted when the last handle and reader are dropped.
    pub fn read_shared(run: &Arc<SpillRun>) -> Result<SpillReader> {
        let file = File::open(&run.path).map_err(|e| spill_error(&run.path, "opening", e))?;
        let reader = StreamReader::try_new(BufReader::new(file), None)
            .map_err(|e| spill_arrow_error(&run.path, e))?;
        Ok(SpillReader {
            reader,
            run: Arc::clone(run),
        })
    }
}

/// The memory a batch read back from a spill run holds. The IPC reader
/// puts all of a batch's columns in one allocation, so
/// `get_array_memory_size`, which counts that allocation once per buffer,
/// would overstate it by the number of buffers; the sum of what the
/// columns use is what the allocation holds.
pub fn read_batch_size(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

/// Batches of one [`SpillRun`], read back in order.
pub struct SpillReader {
    reader: StreamReader<BufReader<File>>,
    run: Arc<SpillRun>,
}

impl SpillReader {
    pub fn schema(&self) -> &SchemaRef {
        &self.run.schema
    }
}

impl Iterator for SpillReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.reader
            .next()
            .map(|b| b.map_err(|e| spill_arrow_error(&self.run.path, e)))
    }
}

/// `batch` with its string and binary view columns compacted when their
/// data buffers hold more than their views use. A view array made by
/// `take` or `interleave` (a sorted or merged batch) keeps every buffer of
/// its sources, and the IPC writer writes them whole: without this, a spill
/// file and its read-back batches could be many times larger than the
/// rows. Views nested in lists or structs are left as they are.
pub fn compact_views(batch: &RecordBatch) -> Result<RecordBatch> {
    fn wasteful<T: ByteViewType + ?Sized>(a: &GenericByteViewArray<T>) -> bool {
        let held: usize = a.data_buffers().iter().map(|b| b.len()).sum();
        // Half wasted at least: compacting costs a copy.
        held > 2 * a.total_buffer_bytes_used()
    }
    let mut columns = None::<Vec<ArrayRef>>;
    for (i, c) in batch.columns().iter().enumerate() {
        let compacted: Option<ArrayRef> = match c.data_type() {
            DataType::Utf8View => {
                let a = c.as_string_view();
                wasteful(a).then(|| Arc::new(a.gc()) as ArrayRef)
            }
            DataType::BinaryView => {
                let a = c.as_binary_view();
                wasteful(a).then(|| Arc::new(a.gc()) as ArrayRef)
            }
            _ => None,
        };
        if let Some(a) = compacted {
            columns.get_or_insert_with(|| batch.columns().to_vec())[i] = a;
        }
    }
    match columns {
        None => Ok(batch.clone()),
        Some(columns) => Ok(RecordBatch::try_new_with_options(
            batch.schema(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?),
    }
}

/// Removes the spill directories under `base` left by processes that no
/// longer run (a crashed engine or worker cannot remove its own). Returns
/// how many were removed. Only on systems where a process can be looked up
/// by id (`/proc`); elsewhere nothing is removed.
pub fn remove_stale_spill_dirs(base: &Path) -> usize {
    if !Path::new("/proc/self").exists() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn spill_error(path: &Path, doing: &str, e: std::io::Error) -> DataflowError {
    DataflowError::Execution(format!("spilling: {doing} {}: {e}", path.display()))
}

fn spill_arrow_error(path: &Path, e: arrow::error::ArrowError) -> DataflowError {
    DataflowError::Execution(format!("spilling: spill file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(values: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values))]).unwrap()
    }

    #[test]
    fn runs_round_trip_and_the_directory_goes_with_the_area() {
        let base = tempfile::tempdir().unwrap();
        let area = SpillArea::new(base.path().to_path_buf());
        assert!(area.path().is_none(), "nothing is made before a spill");
        let metrics = Arc::new(OperatorMetrics::default());
        let b = batch(vec![1, 2, 3]);
        let mut w = area
            .writer(&b.schema(), Some(Arc::clone(&metrics)))
            .unwrap();
        w.write(&b).unwrap();
        w.write(&batch(vec![4])).unwrap();
        let run = w.finish().unwrap();
        assert_eq!((run.rows(), run.batches()), (4, 2));
        let snap = metrics.snapshot();
        assert_eq!((snap.spill_files, snap.spilled_rows), (1, 4));
        assert_eq!(snap.spilled_bytes, run.bytes());
        let dir = area.path().unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let back: Vec<_> = run.read().unwrap().map(|b| b.unwrap()).collect();
        // What a read batch holds is what it uses, not its allocation once
        // per column.
        let wide = back[0].get_array_memory_size();
        assert!(read_batch_size(&back[0]) >= 3 * 8 && read_batch_size(&back[0]) <= wide);
        assert_eq!(back, vec![b, batch(vec![4])]);
        // The reader was dropped: its file is gone, the directory stays
        // until the area goes.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        drop(area);
        assert!(!dir.exists());
    }

    #[test]
    fn view_arrays_are_compacted_before_they_are_written() {
        use arrow::array::{StringViewArray, UInt32Array};
        let long: Vec<String> = (0..1000)
            .map(|i| format!("a string longer than twelve {i}"))
            .collect();
        let all = StringViewArray::from_iter_values(long.iter());
        let schema = Arc::new(Schema::new(vec![Field::new(
            "s",
            DataType::Utf8View,
            false,
        )]));
        let wide = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(all)]).unwrap();
        // Two rows that keep every buffer of the 1000.
        let two = arrow::compute::take_record_batch(&wide, &UInt32Array::from(vec![7, 3])).unwrap();
        let compact = compact_views(&two).unwrap();
        assert_eq!(compact, two);
        assert!(compact.get_array_memory_size() * 10 < two.get_array_memory_size());
        // Compact batches pass unchanged (and uncopied).
        let again = compact_views(&compact).unwrap();
        assert!(again
            .column(0)
            .to_data()
            .ptr_eq(&compact.column(0).to_data()));
    }

    #[test]
    fn a_spill_dir_that_is_a_file_is_a_clear_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let area = SpillArea::new(file.path().to_path_buf());
        let b = batch(vec![1]);
        let err = area.writer(&b.schema(), None).err().map(|e| e.to_string());
        assert_eq!(
            err,
            Some(format!(
                "execution error: spilling: the spill directory {} is not a directory",
                file.path().display()
            ))
        );
    }

    #[test]
    fn unfinished_runs_leave_no_file() {
        let base = tempfile::tempdir().unwrap();
        let area = SpillArea::new(base.path().to_path_buf());
        let b = batch(vec![1]);
        let mut w = area.writer(&b.schema(), None).unwrap();
        w.write(&b).unwrap();
        drop(w);
        drop(area);
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    }

    #[test]
    fn stale_directories_of_dead_processes_are_removed() {
        let base = tempfile::tempdir().unwrap();
        // No process has this id (above the kernel's pid_max).
        let stale = base.path().join(format!("{DIR_PREFIX}4294967-abc"));
        std::fs::create_dir_all(stale.join("inner")).unwrap();
        let mine = base
            .path()
            .join(format!("{DIR_PREFIX}{}-x", std::process::id()));
        std::fs::create_dir_all(&mine).unwrap();
        let other = base.path().join("unrelated");
        std::fs::create_dir_all(&other).unwrap();
        let removed = remove_stale_spill_dirs(base.path());
        if Path::new("/proc/self").exists() {
            assert_eq!(removed, 1);
            assert!(!stale.exists());
        }
        assert!(mine.exists() && other.exists());
    }
}
