//! Destinations of writes (`COPY ... TO`, `INSERT INTO` a file-backed
//! table): an object-store URL resolves as for reads; a local path goes
//! through `object_store`'s local file system, so that one buffered,
//! multipart writer serves both. Local uploads are staged next to their
//! target and renamed into place when complete: a reader never sees half a
//! file, and a failed write leaves none.

use std::sync::{Arc, OnceLock};

use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use super::{is_url, resolve, Location};
use crate::error::{DataflowError, Result};

/// The local file system as an object store (creates parent directories).
fn local_store() -> Arc<dyn ObjectStore> {
    static LOCAL: OnceLock<Arc<dyn ObjectStore>> = OnceLock::new();
    Arc::clone(LOCAL.get_or_init(|| Arc::new(LocalFileSystem::new())))
}

/// Resolves `location` (a local path, a `file://` URL or an object URL)
/// for writing.
pub(crate) fn destination(location: &str) -> Result<Location> {
    if is_url(location) {
        return resolve(location);
    }
    let local = location.strip_prefix("file://").unwrap_or(location);
    let absolute = std::path::absolute(local)
        .map_err(|e| DataflowError::file(location, format!("invalid path: {e}")))?;
    let path = ObjectPath::from_absolute_path(&absolute)
        .map_err(|e| DataflowError::file(location, format!("invalid path: {e}")))?;
    Ok(Location {
        store: local_store(),
        path,
    })
}

/// A buffered writer of the file or object `location`: small outputs are
/// one request, large ones a multipart upload.
pub(crate) fn writer(location: &str) -> Result<BufWriter> {
    let Location { store, path } = destination(location)?;
    Ok(BufWriter::new(store, path))
}
