//! Disk space for output frames that do not fit the store's memory budget.
//!
//! A spill file is created unnamed (`O_TMPFILE` or create-then-unlink) in
//! the spill directory, so the operating system removes it when the last
//! handle closes: when the streams that point into it are released, and
//! also when the worker process dies. No spill file can outlive its
//! process, so there is nothing stale to clean up at start-up.
//!
//! Frames are appended and never rewritten; one file serves all streams of
//! one stage of one query, so the number of open files stays small however
//! many partitions a stage writes. Space of a released attempt inside a
//! shared file comes back when the whole stage is released.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(unix)]
use std::os::unix::fs::FileExt;

use super::super::error::{Result, TransportError};

/// One append-only spill file.
#[derive(Debug)]
pub(super) struct SpillFile {
    file: File,
    /// Bytes written so far: the offset of the next frame. Appends happen
    /// under the store's lock, reads at offsets below it.
    len: AtomicU64,
    /// The directory it lives in, for error messages.
    dir: PathBuf,
}

impl SpillFile {
    pub(super) fn create(dir: &Path) -> Result<SpillFile> {
        let file = tempfile::tempfile_in(dir).map_err(|e| {
            TransportError::Store(format!(
                "cannot create a spill file in {}: {e}",
                dir.display()
            ))
        })?;
        Ok(SpillFile {
            file,
            len: AtomicU64::new(0),
            dir: dir.to_path_buf(),
        })
    }

    /// Writes `bytes` at the end; returns their offset.
    pub(super) fn append(&self, bytes: &[u8]) -> Result<u64> {
        let offset = self.len.load(Ordering::Acquire);
        write_all_at(&self.file, bytes, offset).map_err(|e| {
            TransportError::Store(format!(
                "writing {} bytes to a spill file in {}: {e}",
                bytes.len(),
                self.dir.display()
            ))
        })?;
        self.len.fetch_add(bytes.len() as u64, Ordering::AcqRel);
        Ok(offset)
    }

    /// Reads back `len` bytes written at `offset`.
    pub(super) fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0; len];
        read_exact_at(&self.file, &mut buf, offset).map_err(|e| {
            TransportError::Store(format!(
                "reading {len} bytes at offset {offset} of a spill file in {}: {e}",
                self.dir.display()
            ))
        })?;
        Ok(buf)
    }
}

#[cfg(unix)]
fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    file.write_all_at(bytes, offset)
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    file.read_exact_at(buf, offset)
}

#[cfg(not(unix))]
fn write_all_at(_: &File, _: &[u8], _: u64) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "spilling output partitions needs a Unix file system",
    ))
}

#[cfg(not(unix))]
fn read_exact_at(_: &File, _: &mut [u8], _: u64) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "spilling output partitions needs a Unix file system",
    ))
}
