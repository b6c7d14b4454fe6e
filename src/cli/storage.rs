//! `--object-store-config FILE`: the object-store options of this process
//! (`key=value` lines; see [`ffq::storage`]), shared by `ffq sql`, the
//! REPL and `ffq worker`.

use std::path::Path;

use super::CliError;

/// Reads `file` and makes its options this process's.
pub fn apply_config_file(file: &Path) -> Result<(), CliError> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        CliError::msg(format!("--object-store-config {name}: {reason}"))
    })?;
    let options = ffq::storage::parse_options(&text, &name)
        .map_err(|e| CliError::msg(format!("--object-store-config {e}")))?;
    ffq::storage::set_options(options)
        .map_err(|e| CliError::msg(format!("--object-store-config {name}: {e}")))
}
