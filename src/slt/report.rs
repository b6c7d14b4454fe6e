//! The outcome of a run: per file passed, failed or skipped, with the
//! reasons.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engine::EngineConfig;

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct SltOptions {
    /// Count records that are not supported as failures, not skips.
    pub strict: bool,
    /// The longest one statement may run.
    pub timeout: Duration,
    /// The settings of the engine created for each file.
    pub engine: EngineConfig,
}

impl Default for SltOptions {
    fn default() -> Self {
        SltOptions {
            strict: false,
            timeout: Duration::from_secs(120),
            engine: EngineConfig::default(),
        }
    }
}

/// The outcome of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// Every record ran and matched.
    Passed,
    /// At least one record failed (or the file could not be read).
    Failed,
    /// Nothing failed, but some records were not run because FFQ does not
    /// support what they need.
    Skipped,
}

/// The result of one `.slt` file.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub path: PathBuf,
    pub status: FileStatus,
    /// Statement and query records that ran and matched.
    pub passed: usize,
    /// Statement and query records that did not match (or errored).
    pub failed: usize,
    /// Statement and query records that were not supported, plus those not
    /// run after an unsupported setup statement.
    pub skipped: usize,
    /// The failures, in file order: the location and the full message.
    pub failures: Vec<String>,
    /// Why records were skipped, in file order: location and reason.
    pub skips: Vec<String>,
}

impl FileReport {
    pub(super) fn new(path: &Path) -> Self {
        FileReport {
            path: path.to_path_buf(),
            status: FileStatus::Passed,
            passed: 0,
            failed: 0,
            skipped: 0,
            failures: Vec::new(),
            skips: Vec::new(),
        }
    }

    pub(super) fn failed_with(path: &Path, message: String) -> Self {
        let mut report = FileReport::new(path);
        report.status = FileStatus::Failed;
        report.failed = 1;
        report.failures.push(message);
        report
    }

    /// One line: `ok`, `FAILED` with the first error, or `skipped` with the
    /// first reason.
    pub fn summary_line(&self) -> String {
        let path = self.path.display();
        match self.status {
            FileStatus::Passed => format!("ok      {path} ({} records)", self.passed),
            FileStatus::Failed => {
                let first = self
                    .failures
                    .first()
                    .map(|f| one_line(f))
                    .unwrap_or_default();
                let more = if self.failed > 1 {
                    format!(" (and {} more failed records)", self.failed - 1)
                } else {
                    String::new()
                };
                format!("FAILED  {path}: {first}{more}")
            }
            FileStatus::Skipped => {
                let first = self.skips.first().map(|s| one_line(s)).unwrap_or_default();
                format!(
                    "skipped {path}: {} of {} records skipped; {first}",
                    self.skipped,
                    self.passed + self.skipped
                )
            }
        }
    }
}

/// The results of a run, one per file in path order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub files: Vec<FileReport>,
}

impl Report {
    pub fn count(&self, status: FileStatus) -> usize {
        self.files.iter().filter(|f| f.status == status).count()
    }

    pub fn passed(&self) -> usize {
        self.count(FileStatus::Passed)
    }

    pub fn failed(&self) -> usize {
        self.count(FileStatus::Failed)
    }

    pub fn skipped(&self) -> usize {
        self.count(FileStatus::Skipped)
    }

    /// `N passed, N failed, N skipped` (files).
    pub fn closing_line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.skipped()
        )
    }
}

/// The first line of a message, and the second when the first ends with
/// a colon (`query result mismatch:` is followed by the `[SQL]` line).
pub(super) fn one_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("").to_string();
    if first.ends_with(':') {
        if let Some(next) = lines.next() {
            return format!("{first} {next}");
        }
    }
    first
}
