//! Reading `.slt` files and running their records, with the reporting
//! described in the module docs of [`crate::slt`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqllogictest::{AsyncDB, Normalizer, Record, Runner, TestError, TestErrorKind};

use super::db::{panic_message, FfqDb, PanicLog, SltError};
use super::output::{column_validator, ColType};
use super::report::{one_line, FileReport, FileStatus, Report, SltOptions};
use crate::engine::Engine;
use crate::error::Error;

/// Runs one `.slt` file on a fresh engine with default options.
pub async fn run_slt_file(path: impl AsRef<Path>) -> FileReport {
    run_slt_file_with(path.as_ref(), &SltOptions::default()).await
}

/// Runs every `.slt` file under `dir` (recursively, in path order) with
/// default options.
pub async fn run_slt_dir(dir: impl AsRef<Path>) -> crate::Result<Report> {
    run_slt_path(dir.as_ref(), &SltOptions::default()).await
}

/// Runs `path`: one `.slt` file, or every `.slt` file under a directory.
pub async fn run_slt_path(path: &Path, options: &SltOptions) -> crate::Result<Report> {
    let files = slt_files(path)?;
    let mut report = Report::default();
    for file in files {
        report.files.push(run_slt_file_with(&file, options).await);
    }
    Ok(report)
}

/// `path` itself when it is a file, else the `.slt` files under it, sorted.
pub fn slt_files(path: &Path) -> crate::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::file(path.display().to_string(), e))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| Error::file(dir.display().to_string(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::file(dir.display().to_string(), e))?;
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "slt") {
                files.push(p);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::file(
            path.display().to_string(),
            "no .slt files found",
        ));
    }
    Ok(files)
}

/// Runs one `.slt` file on a fresh engine.
pub async fn run_slt_file_with(path: &Path, options: &SltOptions) -> FileReport {
    let engine = Engine::with_config(options.engine.clone());
    let timeout = options.timeout;
    let panics = PanicLog::default();
    let log = Arc::clone(&panics);
    let make = move || {
        let db = FfqDb::with_panic_log(engine.clone(), timeout, Arc::clone(&log));
        async move { Ok::<_, SltError>(db) }
    };
    run_file_logged(path, make, options.strict, panics).await
}

/// Runs one `.slt` file against any database (FFQ's, or an oracle in the
/// tests), with the reporting described in the module docs. `make` makes a
/// connection; every connection of the file should share one database.
pub async fn run_file_on<D, M>(path: &Path, make: M, strict: bool) -> FileReport
where
    D: AsyncDB<ColumnType = ColType> + Send + 'static,
    M: sqllogictest::MakeConnection<Conn = D> + Send + 'static,
    M::MakeFuture: Send,
{
    run_file_logged(path, make, strict, PanicLog::default()).await
}

/// [`run_file_on`] where the connections record their panics in `panics`.
pub async fn run_file_logged<D, M>(
    path: &Path,
    make: M,
    strict: bool,
    panics: PanicLog,
) -> FileReport
where
    D: AsyncDB<ColumnType = ColType> + Send + 'static,
    M: sqllogictest::MakeConnection<Conn = D> + Send + 'static,
    M::MakeFuture: Send,
{
    // sqllogictest's parser panics on unreadable files: read first.
    if let Err(e) = std::fs::read_to_string(path) {
        return FileReport::failed_with(path, format!("cannot read the file: {e}"));
    }
    let records = match sqllogictest::parse_file::<ColType>(path) {
        Ok(r) => r,
        Err(e) => return FileReport::failed_with(path, format!("{}: {}", e.location(), e.kind())),
    };
    let path_buf = path.to_path_buf();
    // Run on a task of its own so that a panic fails this file only.
    let task = tokio::spawn(async move {
        let mut runner = Runner::new(make);
        runner.with_column_validator(column_validator);
        runner.with_validator(value_validator);
        let report = run_records(&mut runner, &path_buf, records, strict, &panics).await;
        runner.shutdown_async().await;
        report
    });
    match task.await {
        Ok(report) => report,
        Err(e) => {
            let message = match e.try_into_panic() {
                Ok(panic) => panic_message(panic.as_ref()),
                Err(e) => e.to_string(),
            };
            FileReport::failed_with(path, format!("panicked: {message}"))
        }
    }
}

async fn run_records<D, M>(
    runner: &mut Runner<D, M>,
    path: &Path,
    records: Vec<Record<ColType>>,
    strict: bool,
    panics: &PanicLog,
) -> FileReport
where
    D: AsyncDB<ColumnType = ColType>,
    M: sqllogictest::MakeConnection<Conn = D>,
{
    let mut report = FileReport::new(path);
    let counted =
        |r: &Record<ColType>| matches!(r, Record::Statement { .. } | Record::Query { .. });
    let mut records = records.into_iter();
    while let Some(record) = records.next() {
        if matches!(record, Record::Halt { .. }) {
            break;
        }
        let is_counted = counted(&record);
        // A `SET` only changes a setting: when it fails, the rest of the
        // file still runs (under the settings it had).
        let needs_success = matches!(
            &record,
            Record::Statement { expected, sql, .. }
                if !matches!(expected, sqllogictest::StatementExpect::Error(_))
                    && !is_set(sql)
        );
        let (location, sql) = match &record {
            Record::Statement { loc, sql, .. } | Record::Query { loc, sql, .. } => {
                (loc.to_string(), sql.trim().to_string())
            }
            _ => (String::new(), String::new()),
        };
        let panics_before = panics.lock().map(|p| p.len()).unwrap_or(0);
        let result = runner.run_async(record).await;
        let new_panic = panics
            .lock()
            .ok()
            .and_then(|p| p.get(panics_before).cloned());
        if let Some(message) = new_panic {
            // Even where an error was expected: a panic is a bug.
            report.failed += 1;
            report
                .failures
                .push(format!("{location}: panicked: {message}\n[SQL] {sql}"));
            continue;
        }
        match result {
            Ok(_) => {
                if is_counted {
                    report.passed += 1;
                }
            }
            Err(e) => match not_supported(&e) {
                Some(reason) if !strict => {
                    report.skipped += 1;
                    let mut text = format!("{}: {reason}", e.location());
                    if needs_success {
                        // Setup the rest of the file depends on: stop here.
                        let rest = records.by_ref().filter(|r| counted(r)).count();
                        report.skipped += rest;
                        text.push_str(&format!(
                            " (a statement: the {rest} records after it were not run)"
                        ));
                        report.skips.push(text);
                        break;
                    }
                    report.skips.push(text);
                }
                _ => {
                    report.failed += 1;
                    report.failures.push(error_text(&e));
                }
            },
        }
    }
    report.status = if report.failed > 0 {
        FileStatus::Failed
    } else if report.skipped > 0 {
        FileStatus::Skipped
    } else {
        FileStatus::Passed
    };
    report
}

/// A row is its cells joined by one space, compared with the expected line
/// as written, only trailing whitespace dropped (as DataFusion's runner
/// does): spaces inside and around values count.
fn value_validator(_normalizer: Normalizer, actual: &[Vec<String>], expected: &[String]) -> bool {
    actual.len() == expected.len()
        && actual
            .iter()
            .zip(expected)
            .all(|(row, line)| row.join(" ").trim_end() == line.trim_end())
}

fn is_set(sql: &str) -> bool {
    let head = sql.trim_start();
    head.get(..4)
        .is_some_and(|h| h.eq_ignore_ascii_case("set "))
}

/// The reason when a record failed only because FFQ does not support it.
fn not_supported(e: &TestError) -> Option<String> {
    let err = match e.kind() {
        TestErrorKind::Fail { err, .. } | TestErrorKind::ErrorMismatch { err, .. } => err,
        _ => return None,
    };
    let is = err
        .downcast_ref::<SltError>()
        .is_some_and(SltError::is_not_supported)
        || err.to_string().starts_with("not supported:");
    is.then(|| one_line(&err.to_string()))
}

/// `file:line: message` (the message may span lines: diffs).
fn error_text(e: &TestError) -> String {
    let kind = e.kind();
    let text = match &kind {
        TestErrorKind::Fail { sql, err, kind } => {
            format!("{kind} failed: {err}\n[SQL] {}", sql.trim())
        }
        other => other.to_string(),
    };
    format!("{}: {}", e.location(), text.trim_end())
}
