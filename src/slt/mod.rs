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
//!
//! `output` renders results, `db` is the database, `report` the outcome
//! of a run and `run` reads and runs the files.

mod db;
mod output;
mod report;
mod run;

pub use db::{FfqDb, PanicLog, SltError, ENGINE_NAME};
pub use output::{batches_to_output, column_validator, round_decimal_string, ColType};
pub use report::{FileReport, FileStatus, Report, SltOptions};
pub use run::{
    run_file_logged, run_file_on, run_slt_dir, run_slt_file, run_slt_file_with, run_slt_path,
    slt_files,
};

#[cfg(test)]
mod tests;
