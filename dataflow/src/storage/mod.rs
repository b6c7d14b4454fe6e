//! Tables on object storage: `s3://`, `gs://`, `az://` (and the other
//! Azure schemes) and `http(s)://` locations, read through the
//! `object_store` crate. A table location is either a local path (read
//! with `std::fs`, as before) or a URL; this module answers for URLs:
//! listing a prefix, reading Parquet with range requests (footer, then the
//! column chunks of the selected row groups: never the whole object) and
//! streaming CSV objects.
//!
//! Credentials and endpoints come from the standard environment variables
//! of each store (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ALLOW_HTTP`, `GOOGLE_*`,
//! `AZURE_*`), overridden by the process's options ([`set_options`], from
//! `--object-store-config FILE`). Each process resolves URLs with its own
//! settings: a worker reads with its credentials, not the client's.
//!
//! Every request has a bounded time (5 s to connect, 60 s per request by
//! default) and a bounded retry budget (3 retries within 15 s), so an
//! unreachable endpoint fails with an error naming the URL instead of
//! hanging. Errors name the URL and say what went wrong: no such bucket,
//! no such object, access denied, endpoint unreachable.
//!
//! The options are process-wide (one set per process, like the
//! environment): the planner's calls that list and read footers have no
//! session to take them from. Planning is synchronous, so those calls run
//! on a small runtime of their own ([`blocking`]).

mod blocking;
mod config;
pub(crate) mod errors;
mod parquet_reader;
mod write;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, ObjectStoreScheme};
use parquet::file::metadata::ParquetMetaData;
use url::Url;

pub use config::{options, parse_options, set_options};
pub(crate) use parquet_reader::ObjectReader;
pub(crate) use write::writer;

use crate::error::{DataflowError, Result};
use errors::describe;
pub(crate) use errors::parquet as parquet_error;

/// Bytes read from the start of a CSV object to infer its schema.
pub(crate) const CSV_HEAD_BYTES: u64 = 1 << 20;

/// Whether `location` is an object-store URL (rather than a local path or
/// a `file://` URL).
pub fn is_url(location: &str) -> bool {
    match location.split_once("://") {
        Some((scheme, _)) => !scheme.eq_ignore_ascii_case("file") && is_scheme(scheme),
        None => false,
    }
}

fn is_scheme(s: &str) -> bool {
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// A parsed object URL: its store and the object path inside it.
pub(crate) struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub path: ObjectPath,
}

/// `scheme://authority` of `url`: the key of its store (one bucket, one
/// container, one HTTP server).
fn store_key(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.authority())
}

/// Built stores by [`store_key`], reset when the options change.
static STORES: Mutex<Option<HashMap<String, Arc<dyn ObjectStore>>>> = Mutex::new(None);

fn forget_stores() {
    if let Ok(mut stores) = STORES.lock() {
        *stores = None;
    }
}

/// Resolves `url` to its store (built once per bucket) and object path.
pub(crate) fn resolve(url_text: &str) -> Result<Location> {
    let url = Url::parse(url_text)
        .map_err(|e| DataflowError::file(url_text, format!("invalid URL: {e}")))?;
    let (scheme, path) = ObjectStoreScheme::parse(&url).map_err(|e| {
        DataflowError::file(
            url_text,
            format!("not supported: object store URL ({e}); use s3://, gs://, az://, http(s):// or a local path"),
        )
    })?;
    let key = store_key(&url);
    let mut stores = STORES
        .lock()
        .map_err(|_| DataflowError::Internal("object store cache poisoned".into()))?;
    let stores = stores.get_or_insert_with(HashMap::new);
    let store = match stores.get(&key) {
        Some(store) => Arc::clone(store),
        None => {
            let store = config::build_store(&scheme, &url, &options())
                .map_err(|e| DataflowError::file(url_text, e))?;
            stores.insert(key, Arc::clone(&store));
            store
        }
    };
    Ok(Location { store, path })
}

/// The objects of a table URL: the object itself, or the objects directly
/// under the prefix whose names end in `.ext` (sorted; names starting with
/// `.` or `_` skipped). Blocks; runs on the storage runtime.
pub fn list_objects(url: &str, ext: &str) -> Result<Vec<String>> {
    let url = url.to_string();
    let ext = ext.to_string();
    blocking::run(async move { list_objects_async(&url, &ext).await })?
}

async fn list_objects_async(url: &str, ext: &str) -> Result<Vec<String>> {
    let Location { store, path } = resolve(url)?;
    let as_prefix = url.ends_with('/') || path.as_ref().is_empty();
    if !as_prefix {
        match store.head(&path).await {
            Ok(_) => return Ok(vec![url.to_string()]),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(DataflowError::file(url, describe(&e))),
        }
    }
    let prefix = (!path.as_ref().is_empty()).then_some(&path);
    let listing = store
        .list_with_delimiter(prefix)
        .await
        .map_err(|e| DataflowError::file(url, describe(&e)))?;
    let base = url.trim_end_matches('/');
    let suffix = format!(".{ext}");
    let mut objects: Vec<String> = listing
        .objects
        .iter()
        .filter_map(|o| {
            let name = o.location.filename()?;
            let visible = !name.starts_with('.') && !name.starts_with('_');
            (visible && name.to_ascii_lowercase().ends_with(&suffix))
                .then(|| format!("{base}/{name}"))
        })
        .collect();
    objects.sort();
    if objects.is_empty() {
        let what = if listing.objects.is_empty() && listing.common_prefixes.is_empty() {
            "no such object or prefix".to_string()
        } else {
            format!("no .{ext} objects under this prefix")
        };
        return Err(DataflowError::file(url, what));
    }
    Ok(objects)
}

/// Whether `url` names an object or a prefix holding `.ext` objects
/// (directly). Blocks.
pub fn prefix_has(url: &str, ext: &str) -> bool {
    list_objects(url, ext).is_ok()
}

/// A reader of the Parquet object `url` doing range requests.
pub(crate) fn parquet_reader(url: &str) -> Result<ObjectReader> {
    let Location { store, path } = resolve(url)?;
    Ok(ObjectReader::new(store, path))
}

/// The footer metadata of the Parquet object `url` (a suffix range read).
/// Blocks; runs on the storage runtime.
pub fn parquet_metadata(url: &str) -> Result<Arc<ParquetMetaData>> {
    let url = url.to_string();
    blocking::run(async move {
        use parquet::arrow::async_reader::AsyncFileReader;
        let mut reader = parquet_reader(&url)?;
        reader
            .get_metadata(None)
            .await
            .map_err(|e| crate::operators::scan::files::file_error(&url, errors::parquet(e)))
    })?
}

/// The first bytes of object `url` (at most about 1 MiB, cut after the
/// last complete line): enough to infer a CSV schema. Blocks.
pub fn read_head(url: &str) -> Result<Vec<u8>> {
    let url = url.to_string();
    blocking::run(async move {
        let Location { store, path } = resolve(&url)?;
        let meta = store
            .head(&path)
            .await
            .map_err(|e| DataflowError::file(&url, describe(&e)))?;
        let end = meta.size.min(CSV_HEAD_BYTES);
        let bytes = store
            .get_range(&path, 0..end)
            .await
            .map_err(|e| DataflowError::file(&url, describe(&e)))?;
        let mut bytes = bytes.to_vec();
        if end < meta.size {
            let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            bytes.truncate(keep);
        }
        Ok(bytes)
    })?
}

/// The bytes of object `url` as a stream of chunks (for CSV scans).
pub(crate) async fn read_stream(
    url: &str,
) -> Result<impl futures::Stream<Item = Result<bytes::Bytes>> + Send + 'static> {
    let Location { store, path } = resolve(url)?;
    let result = store
        .get(&path)
        .await
        .map_err(|e| DataflowError::file(url, describe(&e)))?;
    let url = url.to_string();
    Ok(result
        .into_stream()
        .map_err(move |e| DataflowError::file(&url, describe(&e))))
}
