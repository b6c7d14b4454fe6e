//! What a client may make a worker read and write: the files of a task's
//! scans, and the files or directories its writes (`COPY`, `INSERT` into a
//! file-backed table) produce, must lie under the roots the worker was
//! started with (`ffq worker --allow-path DIR`). A plan arrives from whoever can reach the cluster,
//! so without this any client could read any file the worker's user can
//! (`/etc/passwd` as a CSV table). Generated (TPC-H) and memory tables name
//! no file and always pass. The embedded engine has no such policy: its
//! user reads what they can.
//!
//! Object-store URLs are allowed by URL roots (`--allow-path
//! s3://bucket/prefix`): the same scheme and bucket, under the prefix at a
//! `/` boundary, no `..` segment.
//!
//! Paths are resolved before the check, so neither a symlink inside a root
//! nor `..` can lead out of it; a path that does not exist is checked on
//! its lexical absolute form (and its scan then fails as missing).

use std::path::{Component, Path, PathBuf};

use ffq_dataflow::error::DataflowError;
use ffq_dataflow::plan::PhysicalPlan;
use ffq_dataflow::storage;
use ffq_dataflow::tree::Tree;

use crate::error::{ClusterError, Result};

/// The roots a worker's tasks may read files under (none: no file at all).
#[derive(Debug, Clone, Default)]
pub struct PathPolicy {
    /// Canonical roots.
    roots: Vec<PathBuf>,
    /// Object-store roots, normalized by [`url_root`].
    url_roots: Vec<String>,
}

impl PathPolicy {
    /// A policy allowing the files under `roots`: directories, which must
    /// exist (each is resolved once, here), or object-store URL prefixes
    /// (`s3://bucket/prefix`: the objects under that prefix).
    pub fn new(roots: &[PathBuf]) -> Result<PathPolicy> {
        let mut policy = PathPolicy::default();
        for root in roots {
            let text = root.to_string_lossy();
            if storage::is_url(&text) {
                let normalized = url_root(&text).ok_or_else(|| {
                    ClusterError::Config(format!(
                        "--allow-path {text}: not a valid object store URL prefix"
                    ))
                })?;
                policy.url_roots.push(normalized);
                continue;
            }
            let canonical = std::fs::canonicalize(root).map_err(|e| {
                ClusterError::Config(format!("--allow-path {}: {e}", root.display()))
            })?;
            policy.roots.push(canonical);
        }
        Ok(policy)
    }

    /// Fails with a "not allowed" error naming the first file a scan of
    /// `plan` would open, or the first file or directory a write would
    /// write, outside the roots; opens none of them.
    pub fn check(&self, plan: &PhysicalPlan) -> ffq_dataflow::Result<()> {
        let mut refused = None;
        plan.visit(&mut |node| {
            if refused.is_some() {
                return;
            }
            match node {
                PhysicalPlan::Scan { source, .. } => {
                    refused = source
                        .files()
                        .into_iter()
                        .find(|path| !self.allows_location(path))
                        .map(str::to_string);
                }
                // Writes obey the same roots as reads.
                PhysicalPlan::Write { sink, .. } => {
                    let location = sink.target.location();
                    if !self.allows_location(location) {
                        refused = Some(location.to_string());
                    }
                }
                _ => {}
            }
        });
        match refused {
            None => Ok(()),
            Some(path) => Err(DataflowError::NotAllowed(format!(
                "{path} is outside the worker's allowed paths (--allow-path)"
            ))),
        }
    }

    /// Whether a scan may read `location`: a local path or an object URL.
    pub fn allows_location(&self, location: &str) -> bool {
        if storage::is_url(location) {
            self.allows_url(location)
        } else {
            self.allows(Path::new(location))
        }
    }

    /// Whether object URL `url` lies under a URL root: same scheme and
    /// bucket (or host), and a path below the root's at a `/` boundary.
    pub fn allows_url(&self, url: &str) -> bool {
        let Some(url) = url_root(url) else {
            return false;
        };
        self.url_roots
            .iter()
            .any(|root| url.starts_with(root.as_str()))
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

/// `url` in the form URL roots are compared in: parsed (scheme and host
/// lower-cased, `.` segments removed), with a trailing `/` so that a root
/// `s3://b/data` does not allow `s3://b/database`. `None` for a URL that
/// does not parse, has no host, or keeps a `..` segment, even escaped.
fn url_root(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed.host_str()?;
    let path = parsed.path();
    if path.split('/').any(|segment| {
        matches!(
            segment.to_ascii_lowercase().as_str(),
            ".." | "%2e%2e" | ".%2e" | "%2e."
        )
    }) {
        return None;
    }
    let mut normalized = format!("{}://{}{}", parsed.scheme(), parsed.authority(), path);
    if !normalized.ends_with('/') {
        normalized.push('/');
    }
    Some(normalized)
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
