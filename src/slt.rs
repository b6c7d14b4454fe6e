//! A [sqllogictest](https://www.sqlite.org/sqllogictest/) runner for FFQ.
//!
//! [`FfqDb`] implements the `sqllogictest` crate's [`AsyncDB`] over an
//! [`Engine`]: each record runs one statement and its result is rendered in
//! DataFusion's sqllogictest conventions (see [`batches_to_output`]).
//! [`run_slt_path`] runs a `.slt` file or every `.slt` file under a directory,
//! each file on a fresh engine, and returns a [`Report`] with the outcome of
//! every file: passed, failed (with the errors) or skipped.
//!
//! Skipping is never silent. A record that fails with `not supported: ...`
//! is counted as skipped, with its reason; when such a record is a statement
//! that should have succeeded (usually setup: `CREATE TABLE`, `INSERT`), the
//! rest of the file depends on it and is not run. A file with any skipped
//! record is reported as skipped, not passed. With [`SltOptions::strict`],
//! skipped records count as failures.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float16Type, Float32Type, Float64Type, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::FutureExt;
use sqllogictest::{AsyncDB, ColumnType, DBOutput, Record, Runner, TestError, TestErrorKind};

use crate::engine::{Engine, EngineConfig};
use crate::error::Error;

/// The engine name that `skipif ffq` / `onlyif ffq` conditions refer to.
pub const ENGINE_NAME: &str = "ffq";

// ---------------------------------------------------------------------------
// Column types and value rendering
// ---------------------------------------------------------------------------

/// The type letter of a result column: `I` integers, `R` floats and
/// decimals, `T` text and everything else. Other letters of external suites
/// (DataFusion's `B`, `D`, `P`, `?`) parse as [`ColType::Other`], which
/// [`column_validator`] accepts for any actual type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Integer,
    Float,
    Text,
    Other(char),
}

impl ColumnType for ColType {
    fn from_char(value: char) -> Option<Self> {
        Some(match value {
            'I' => ColType::Integer,
            'R' => ColType::Float,
            'T' => ColType::Text,
            c => ColType::Other(c),
        })
    }

    fn to_char(&self) -> char {
        match self {
            ColType::Integer => 'I',
            ColType::Float => 'R',
            ColType::Text => 'T',
            ColType::Other(c) => *c,
        }
    }
}

impl ColType {
    /// The type letter of an Arrow type.
    pub fn of(data_type: &DataType) -> ColType {
        match data_type {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => ColType::Integer,
            DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal32(_, _)
            | DataType::Decimal64(_, _)
            | DataType::Decimal128(_, _)
            | DataType::Decimal256(_, _) => ColType::Float,
            _ => ColType::Text,
        }
    }
}

/// Checks the column types of a query: the same number of columns, and each
/// actual type equal to the expected one unless the expected letter is not
/// one of `I`, `R`, `T`.
#[allow(clippy::ptr_arg)] // the signature of sqllogictest's ColumnTypeValidator
pub fn column_validator(actual: &Vec<ColType>, expected: &Vec<ColType>) -> bool {
    actual.len() == expected.len()
        && actual
            .iter()
            .zip(expected)
            .all(|(a, e)| matches!(e, ColType::Other(_)) || a == e)
}

/// Decimal places that floats and decimals are rounded to.
const ROUND_DIGITS: usize = 12;

/// Renders query results as sqllogictest rows, in DataFusion's conventions:
/// `NULL` for nulls, `(empty)` for empty strings, `true`/`false`, floats and
/// decimals rounded to 12 decimal places without trailing zeros (`1.5`,
/// `2`, `NaN`, `Infinity`, `-Infinity`), everything else as Arrow displays
/// it (dates `2024-01-31`, timestamps `2024-01-31T10:00:00`).
///
/// A result without columns (DDL) is `StatementComplete(0)`.
pub fn batches_to_output(
    schema: &Schema,
    batches: &[RecordBatch],
) -> Result<DBOutput<ColType>, arrow::error::ArrowError> {
    if schema.fields().is_empty() {
        return Ok(DBOutput::StatementComplete(0));
    }
    let types = schema
        .fields()
        .iter()
        .map(|f| ColType::of(f.data_type()))
        .collect();
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<Vec<String>> = batch
            .columns()
            .iter()
            .map(render_column)
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[row].clone()).collect());
        }
    }
    Ok(DBOutput::Rows { types, rows })
}

fn render_column(array: &ArrayRef) -> Result<Vec<String>, arrow::error::ArrowError> {
    let n = array.len();
    let mut out = Vec::with_capacity(n);
    match array.data_type() {
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    "NULL".to_string()
                } else {
                    float_to_string(a.value(i), &a.value(i).to_string())
                });
            }
        }
        DataType::Float32 => {
            let a = array.as_primitive::<Float32Type>();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    "NULL".to_string()
                } else {
                    float_to_string(a.value(i) as f64, &a.value(i).to_string())
                });
            }
        }
        DataType::Float16 => {
            let a = array.as_primitive::<Float16Type>();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    "NULL".to_string()
                } else {
                    let v = f32::from(a.value(i));
                    float_to_string(v as f64, &v.to_string())
                });
            }
        }
        dt => {
            let decimal = matches!(
                dt,
                DataType::Decimal32(_, _)
                    | DataType::Decimal64(_, _)
                    | DataType::Decimal128(_, _)
                    | DataType::Decimal256(_, _)
            );
            let options = FormatOptions::default().with_null("NULL");
            let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
            for i in 0..n {
                if array.is_null(i) {
                    out.push("NULL".to_string());
                    continue;
                }
                let s = formatter.value(i).try_to_string()?;
                out.push(if decimal {
                    round_decimal_string(&s, ROUND_DIGITS)
                } else if s.is_empty() {
                    "(empty)".to_string()
                } else {
                    s
                });
            }
        }
    }
    Ok(out)
}

/// `shortest` is the shortest decimal text of the value (Rust's `Display`,
/// which never uses exponents).
fn float_to_string(v: f64, shortest: &str) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "Infinity".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Infinity".to_string()
    } else {
        round_decimal_string(shortest, ROUND_DIGITS)
    }
}

/// Rounds a plain decimal string (`-123.4567`) to `digits` decimal places
/// (half to even) and removes trailing zeros; `-0` becomes `0`. A string
/// that is not a plain decimal is returned unchanged.
pub fn round_decimal_string(s: &str, digits: usize) -> String {
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    let plain = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() || !plain(int_part) || !plain(frac_part) {
        return s.to_string();
    }
    let mut int_digits: Vec<u8> = int_part.bytes().map(|b| b - b'0').collect();
    let mut frac_digits: Vec<u8> = frac_part.bytes().map(|b| b - b'0').collect();
    if frac_digits.len() > digits {
        let rest = frac_digits.split_off(digits);
        let last = frac_digits
            .last()
            .copied()
            .unwrap_or_else(|| int_digits.last().copied().unwrap_or(0));
        let round_up = match rest[0].cmp(&5) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => rest[1..].iter().any(|&d| d != 0) || last % 2 == 1,
        };
        if round_up {
            // Add one unit in the last kept place, carrying leftwards.
            let mut carry = true;
            for d in frac_digits
                .iter_mut()
                .rev()
                .chain(int_digits.iter_mut().rev())
            {
                if !carry {
                    break;
                }
                if *d == 9 {
                    *d = 0;
                } else {
                    *d += 1;
                    carry = false;
                }
            }
            if carry {
                int_digits.insert(0, 1);
            }
        }
    }
    while frac_digits.last() == Some(&0) {
        frac_digits.pop();
    }
    while int_digits.len() > 1 && int_digits[0] == 0 {
        int_digits.remove(0);
    }
    let mut out = String::new();
    let zero = int_digits.iter().all(|&d| d == 0) && frac_digits.is_empty();
    if negative && !zero {
        out.push('-');
    }
    out.extend(int_digits.iter().map(|d| char::from(b'0' + d)));
    if !frac_digits.is_empty() {
        out.push('.');
        out.extend(frac_digits.iter().map(|d| char::from(b'0' + d)));
    }
    out
}

// ---------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------

/// An error of one statement run by [`FfqDb`].
#[derive(Debug)]
pub enum SltError {
    /// The engine's error.
    Engine(Error),
    /// The statement did not finish in time.
    Timeout(Duration),
    /// Running the statement panicked.
    Panic(String),
}

impl fmt::Display for SltError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SltError::Engine(e) => write!(f, "{e}"),
            SltError::Timeout(d) => write!(f, "statement timed out after {d:?}"),
            SltError::Panic(m) => write!(f, "panicked: {m}"),
        }
    }
}

impl std::error::Error for SltError {}

impl SltError {
    pub fn is_not_supported(&self) -> bool {
        matches!(self, SltError::Engine(Error::NotSupported(_)))
    }
}

impl From<Error> for SltError {
    fn from(e: Error) -> Self {
        SltError::Engine(e)
    }
}

/// Messages of the panics caught while running statements. A panic fails
/// its record even when the record expects an error.
pub type PanicLog = Arc<Mutex<Vec<String>>>;

/// An FFQ engine as a sqllogictest database.
pub struct FfqDb {
    engine: Engine,
    timeout: Duration,
    panics: PanicLog,
}

impl FfqDb {
    pub fn new(engine: Engine, timeout: Duration) -> Self {
        FfqDb::with_panic_log(engine, timeout, PanicLog::default())
    }

    /// Records the panics of its statements in `panics`.
    pub fn with_panic_log(engine: Engine, timeout: Duration, panics: PanicLog) -> Self {
        FfqDb {
            engine,
            timeout,
            panics,
        }
    }

    async fn run_one(&self, sql: &str) -> Result<DBOutput<ColType>, SltError> {
        let df = self.engine.sql(sql).await?;
        let batches = df.collect().await?;
        let schema = df.schema();
        batches_to_output(&schema, &batches).map_err(|e| SltError::Engine(Error::from(e)))
    }
}

#[async_trait::async_trait]
impl AsyncDB for FfqDb {
    type Error = SltError;
    type ColumnType = ColType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<ColType>, SltError> {
        let work = async {
            // A record normally holds one statement; a script runs in order
            // and its last statement gives the output.
            let statements = Engine::split_sql(sql)?;
            match statements.as_slice() {
                [] | [_] => self.run_one(sql).await,
                many => {
                    let mut output = DBOutput::StatementComplete(0);
                    for statement in many {
                        output = self.run_one(statement).await?;
                    }
                    Ok(output)
                }
            }
        };
        let timeout = self.timeout;
        let guarded = std::panic::AssertUnwindSafe(tokio::time::timeout(timeout, work));
        match guarded.catch_unwind().await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SltError::Timeout(timeout)),
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                if let Ok(mut log) = self.panics.lock() {
                    log.push(message.clone());
                }
                Err(SltError::Panic(message))
            }
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        ENGINE_NAME
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

// ---------------------------------------------------------------------------
// Running files
// ---------------------------------------------------------------------------

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
    fn new(path: &Path) -> Self {
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

    fn failed_with(path: &Path, message: String) -> Self {
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

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".to_string())
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
        let needs_success = matches!(
            &record,
            Record::Statement { expected, .. }
                if !matches!(expected, sqllogictest::StatementExpect::Error(_))
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

/// The first line of a message, and the second when the first ends with
/// a colon (`query result mismatch:` is followed by the `[SQL]` line).
fn one_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("").to_string();
    if first.ends_with(':') {
        if let Some(next) = lines.next() {
            return format!("{first} {next}");
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Decimal128Array, Float64Array, Int32Array, StringArray};
    use arrow::datatypes::Field;
    use std::sync::Arc;

    #[test]
    fn rounding() {
        assert_eq!(round_decimal_string("1.50", 12), "1.5");
        assert_eq!(round_decimal_string("2.000", 12), "2");
        assert_eq!(round_decimal_string("0.30000000000000004", 12), "0.3");
        assert_eq!(round_decimal_string("-0.0000000000001", 12), "0");
        assert_eq!(round_decimal_string("9.9999999999999", 12), "10");
        assert_eq!(round_decimal_string("0.0000000000005", 12), "0");
        assert_eq!(
            round_decimal_string("0.0000000000015", 12),
            "0.000000000002"
        );
        assert_eq!(round_decimal_string("-12.345", 2), "-12.34");
        assert_eq!(round_decimal_string("-12.3451", 2), "-12.35");
        assert_eq!(round_decimal_string("100", 12), "100");
        assert_eq!(round_decimal_string("abc", 12), "abc");
    }

    #[test]
    fn rendering() {
        let schema = Schema::new(vec![
            Field::new("i", DataType::Int32, true),
            Field::new("f", DataType::Float64, true),
            Field::new("d", DataType::Decimal128(10, 2), true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema.clone()),
            vec![
                Arc::new(Int32Array::from(vec![Some(1), None])),
                Arc::new(Float64Array::from(vec![Some(0.1 + 0.2), Some(f64::NAN)])),
                Arc::new(
                    Decimal128Array::from(vec![Some(150), None])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
                Arc::new(StringArray::from(vec![Some(""), None])),
                Arc::new(BooleanArray::from(vec![Some(true), None])),
            ],
        )
        .unwrap();
        let DBOutput::Rows { types, rows } = batches_to_output(&schema, &[batch]).unwrap() else {
            panic!("expected rows")
        };
        assert_eq!(
            types,
            vec![
                ColType::Integer,
                ColType::Float,
                ColType::Float,
                ColType::Text,
                ColType::Text
            ]
        );
        assert_eq!(rows[0], vec!["1", "0.3", "1.5", "(empty)", "true"]);
        assert_eq!(rows[1], vec!["NULL", "NaN", "NULL", "NULL", "NULL"]);
        assert!(matches!(
            batches_to_output(&Schema::empty(), &[]).unwrap(),
            DBOutput::StatementComplete(0)
        ));
    }

    #[test]
    fn validator() {
        use ColType::*;
        assert!(column_validator(&vec![Integer, Text], &vec![Integer, Text]));
        assert!(column_validator(
            &vec![Integer, Text],
            &vec![Integer, Other('B')]
        ));
        assert!(!column_validator(&vec![Integer, Text], &vec![Float, Text]));
        assert!(!column_validator(&vec![Integer], &vec![Integer, Text]));
    }

    #[tokio::test]
    async fn runs_a_file() {
        let dir = std::env::temp_dir().join(format!("ffq-slt-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("a_ok.slt");
        std::fs::write(
            &ok,
            "query IT\nSELECT 1, 'x'\n----\n1 x\n\nstatement error\nSELECT nope\n",
        )
        .unwrap();
        let bad = dir.join("b_bad.slt");
        std::fs::write(
            &bad,
            "query I\nSELECT 1\n----\n2\n\nquery I\nSELECT 3\n----\n3\n",
        )
        .unwrap();
        let skip = dir.join("c_skip.slt");
        std::fs::write(
            &skip,
            "query I\nSELECT 1\n----\n1\n\nquery T\nWITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n FROM r\n----\nx\n\n\
             statement ok\nCOPY (SELECT 2) TO 'x.csv'\n\nquery I\nSELECT 1\n----\n1\n",
        )
        .unwrap();
        let report = run_slt_dir(&dir).await.unwrap();
        assert_eq!(report.files.len(), 3);
        assert_eq!(
            report.files[0].status,
            FileStatus::Passed,
            "{:?}",
            report.files[0]
        );
        assert_eq!(report.files[0].passed, 2);
        assert_eq!(report.files[1].status, FileStatus::Failed);
        assert_eq!((report.files[1].passed, report.files[1].failed), (1, 1));
        assert!(
            report.files[1]
                .summary_line()
                .contains("b_bad.slt:1: query result mismatch"),
            "{}",
            report.files[1].summary_line()
        );
        let skipped = &report.files[2];
        assert_eq!(skipped.status, FileStatus::Skipped, "{skipped:?}");
        assert!(
            skipped.summary_line().contains("not supported"),
            "{}",
            skipped.summary_line()
        );
        assert_eq!((skipped.passed, skipped.skipped), (1, 3), "{skipped:?}");
        assert_eq!(report.closing_line(), "1 passed, 1 failed, 1 skipped");

        let strict = SltOptions {
            strict: true,
            ..SltOptions::default()
        };
        let report = run_slt_path(&skip, &strict).await.unwrap();
        assert_eq!(report.files[0].status, FileStatus::Failed);
        std::fs::remove_dir_all(&dir).ok();
    }
}
