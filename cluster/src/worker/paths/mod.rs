//! What a client may make a worker read: the files of a task's scans must
//! lie under the roots the worker was started with (`ffq worker
//! --allow-path DIR`). A plan arrives from whoever can reach the cluster,
//! so without this any client could read any file the worker's user can
//! (`/etc/passwd` as a CSV table). Generated (TPC-H) and memory tables name
//! no file and always pass. The embedded engine has no such policy: its
//! user reads what they can.
//!
//! Paths are resolved before the check, so neither a symlink inside a root
//! nor `..` can lead out of it; a path that does not exist is checked on
//! its lexical absolute form (and its scan then fails as missing).

use std::path::{Component, Path, PathBuf};

use ffq_dataflow::error::DataflowError;
use ffq_dataflow::plan::PhysicalPlan;
use ffq_dataflow::tree::Tree;

use crate::error::{ClusterError, Result};

/// The roots a worker's tasks may read files under (none: no file at all).
#[derive(Debug, Clone, Default)]
pub struct PathPolicy {
    /// Canonical roots.
    roots: Vec<PathBuf>,
}

impl PathPolicy {
    /// A policy allowing the files under `roots`; every root must exist
    /// (it is resolved once, here).
    pub fn new(roots: &[PathBuf]) -> Result<PathPolicy> {
        let roots = roots
            .iter()
            .map(|root| {
                std::fs::canonicalize(root).map_err(|e| {
                    ClusterError::Config(format!("--allow-path {}: {e}", root.display()))
                })
            })
            .collect::<Result<_>>()?;
        Ok(PathPolicy { roots })
    }

    /// Fails with a "not allowed" error naming the first file a scan of
    /// `plan` would open outside the roots; opens none of them.
    pub fn check(&self, plan: &PhysicalPlan) -> ffq_dataflow::Result<()> {
        let mut refused = None;
        plan.visit(&mut |node| {
            if let PhysicalPlan::Scan { source, .. } = node {
                if refused.is_none() {
                    refused = source
                        .files()
                        .into_iter()
                        .find(|path| !self.allows(Path::new(path)))
                        .map(str::to_string);
                }
            }
        });
        match refused {
            None => Ok(()),
            Some(path) => Err(DataflowError::NotAllowed(format!(
                "{path} is outside the worker's allowed paths (--allow-path)"
            ))),
        }
    }

    /// Whether `path`, resolved, lies under a root.
    pub fn allows(&self, path: &Path) -> bool {
        if self.roots.is_empty() {
            return false;
        }
        let Ok(absolute) = std::path::absolute(path) else {
            return false;
        };
        let resolved = std::fs::canonicalize(&absolute).unwrap_or_else(|_| lexical(&absolute));
        self.roots.iter().any(|root| resolved.starts_with(root))
    }
}

/// `path` (absolute) with `.` and `..` resolved by their names alone.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests;
