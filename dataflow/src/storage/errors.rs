//! Object-store errors as messages a user can act on: what went wrong (no
//! such bucket, no such object, access denied, endpoint unreachable)
//! followed by the store's own account of it. The caller adds the URL.

use std::error::Error as StdError;

use object_store::client::{HttpError, HttpErrorKind};

/// A message for `e`: its kind, then the whole chain of causes.
pub(super) fn describe(e: &object_store::Error) -> String {
    let chain = chain(e);
    let kind = match e {
        _ if chain.contains("NoSuchBucket") => "no such bucket",
        object_store::Error::NotFound { .. } => "no such object",
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => "access denied",
        // Listing errors keep only the store's message: the status and
        // the S3 error code are in its text.
        _ if [
            "status code: 401",
            "status code: 403",
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
        ]
        .iter()
        .any(|code| chain.contains(code)) =>
        {
            "access denied"
        }
        _ => match http_kind(e) {
            Some(HttpErrorKind::Connect) => "cannot reach the endpoint",
            Some(HttpErrorKind::Timeout) => "the endpoint did not answer in time",
            _ => "object store request failed",
        },
    };
    format!("{kind}: {chain}")
}

/// A Parquet reader's error: an object-store cause is described as by
/// [`describe`].
pub(crate) fn parquet(e: parquet::errors::ParquetError) -> String {
    let mut source: Option<&(dyn StdError + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(store) = s.downcast_ref::<object_store::Error>() {
            return describe(store);
        }
        source = s.source();
    }
    e.to_string()
}

/// `e` and its causes, joined by ": " (a cause already in the message
/// before it is not repeated).
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let here = s.to_string();
        if !text.contains(&here) {
            text.push_str(": ");
            text.push_str(&here);
        }
        source = s.source();
    }
    text
}

/// The kind of the HTTP error among `e`'s causes, if any.
fn http_kind(e: &(dyn StdError + 'static)) -> Option<HttpErrorKind> {
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(http) = s.downcast_ref::<HttpError>() {
            return Some(http.kind());
        }
        source = s.source();
    }
    None
}
