//! `SET name = value`, `SHOW name` / `SHOW ALL` and `RESET name`: the
//! settings that statements starting afterwards are planned and run with.
//!
//! Names are FFQ's (`target_partitions`, …) or DataFusion's where they mean
//! the same thing (`datafusion.execution.target_partitions`), matched
//! without regard to case. The memory limit and the spill directory belong
//! to the engine's memory pool, made when the engine starts: they can be
//! shown, not changed.

use std::sync::Arc;

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema};

use super::output::{no_rows, rows};
use crate::config::EngineConfig;
use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::session::SessionState;

/// A setting: FFQ's name, DataFusion's name, and how to read and change it.
struct Setting {
    name: &'static str,
    datafusion: &'static str,
    get: fn(&EngineConfig) -> String,
    /// The field `SET` changes; `Err`: fixed when the engine starts, and
    /// how to choose it then.
    field: Result<fn(&mut EngineConfig) -> &mut usize, &'static str>,
    /// The largest value `SET` accepts (as the CLI flag does).
    max: usize,
}

/// The largest batch size `SET` accepts (batches are allocated up front),
/// as `--batch-size`.
const MAX_BATCH_SIZE: usize = 16 * 1024 * 1024;

const SETTINGS: [Setting; 4] = [
    Setting {
        name: "target_partitions",
        datafusion: "datafusion.execution.target_partitions",
        get: |c| c.target_partitions.to_string(),
        field: Ok(|c| &mut c.target_partitions),
        max: ffq_dataflow::limits::MAX_PARTITIONS,
    },
    Setting {
        name: "batch_size",
        datafusion: "datafusion.execution.batch_size",
        get: |c| c.batch_size.to_string(),
        field: Ok(|c| &mut c.batch_size),
        max: MAX_BATCH_SIZE,
    },
    Setting {
        name: "memory_limit",
        datafusion: "datafusion.runtime.memory_limit",
        get: |c| match c.memory_limit {
            Some(bytes) => bytes.to_string(),
            None => "none".to_string(),
        },
        field: Err("the memory limit is fixed when the engine starts \
                  (EngineConfig::memory_limit, or --memory-limit)"),
        max: 0,
    },
    Setting {
        name: "spill_dir",
        datafusion: "datafusion.runtime.temp_directory",
        get: |c| match &c.spill_dir {
            Some(dir) => dir.display().to_string(),
            None => std::env::temp_dir().display().to_string(),
        },
        field: Err("the spill directory is fixed when the engine starts \
                  (EngineConfig::spill_dir, or --spill-dir)"),
        max: 0,
    },
];

/// The setting called `name`, or an error listing the known ones.
fn setting(name: &str) -> Result<&'static Setting> {
    let name = name.trim();
    SETTINGS
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name) || s.datafusion.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            let known: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
            Error::InvalidArgument(format!(
                "unknown setting '{name}' (settings: {})",
                known.join(", ")
            ))
        })
}

/// `SET name = value`.
pub(super) fn set(session: &Arc<SessionState>, name: &str, value: &str) -> Result<DataFrame> {
    let s = setting(name)?;
    let field = s
        .field
        .map_err(|why| Error::NotSupported(format!("SET {}: {why}", s.name)))?;
    let value = value.trim().trim_matches('\'');
    let n: usize = value.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "SET {}: '{value}' is not a positive whole number",
            s.name
        ))
    })?;
    if n > s.max {
        return Err(Error::InvalidArgument(format!(
            "SET {}: {n} exceeds the limit {}",
            s.name, s.max
        )));
    }
    session.update_config(|c| *field(c) = n);
    Ok(no_rows(session))
}

/// `RESET name`: back to the value the engine was built with.
pub(super) fn reset(session: &Arc<SessionState>, name: &str) -> Result<DataFrame> {
    let s = setting(name)?;
    if let Ok(field) = s.field {
        let initial = *field(&mut session.initial_config().clone());
        session.update_config(|c| *field(c) = initial);
    }
    Ok(no_rows(session))
}

/// `SHOW name` (one row) or `SHOW ALL` (every setting): columns `name`
/// and `value`, as DataFusion.
pub(super) fn show(session: &Arc<SessionState>, name: &str) -> Result<DataFrame> {
    let config = session.config();
    let shown: Vec<&Setting> = if name.eq_ignore_ascii_case("all") {
        SETTINGS.iter().collect()
    } else {
        vec![setting(name)?]
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
    ]));
    rows(
        session,
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(shown.iter().map(|s| s.name))),
            Arc::new(StringArray::from_iter_values(
                shown.iter().map(|s| (s.get)(&config)),
            )),
        ],
    )
}

#[cfg(test)]
mod tests;
