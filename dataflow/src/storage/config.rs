//! The process's object-store options (`--object-store-config FILE`) and
//! building a store for a URL from them and the environment.
//!
//! Options are `key=value` pairs with the keys of the `object_store`
//! builders (`aws_access_key_id`, `endpoint`, `region`, `allow_http`,
//! `google_service_account`, `azure_storage_account_name`, `timeout`,
//! `connect_timeout`, ...), plus `retry_max` and `retry_timeout` for the
//! retry budget. A key applies to every store kind that knows it; a key no
//! kind knows is refused when the options are set, so a typo is not
//! silently ignored.

use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreScheme, RetryConfig};
use url::Url;

use crate::error::{DataflowError, Result};

/// Default connect timeout: an endpoint that does not answer fails fast.
const CONNECT_TIMEOUT: &str = "5s";
/// Default time for one request, body included.
const REQUEST_TIMEOUT: &str = "60s";
/// Default retries of a failed request, and the time they may take.
const RETRY_MAX: usize = 3;
const RETRY_TIMEOUT: Duration = Duration::from_secs(15);

/// How errors about the options name them.
const OPTIONS_NAME: &str = "object store options";

static OPTIONS: RwLock<Vec<(String, String)>> = RwLock::new(Vec::new());

/// The process's object-store options.
pub fn options() -> Vec<(String, String)> {
    OPTIONS.read().map(|o| o.clone()).unwrap_or_default()
}

/// Sets the process's object-store options (replacing earlier ones);
/// stores built with the old options are dropped. Fails on a key no store
/// kind knows, or a retry setting that does not parse.
pub fn set_options(options: Vec<(String, String)>) -> Result<()> {
    let options: Vec<(String, String)> = options
        .into_iter()
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    for (key, value) in &options {
        if !is_known_key(key) {
            return Err(DataflowError::file(
                OPTIONS_NAME,
                format!(
                    "unknown option '{key}' (the keys of the object_store builders, \
                     e.g. aws_access_key_id, endpoint, region, allow_http, timeout)"
                ),
            ));
        }
        retry_setting(key, value)?;
    }
    let mut current = OPTIONS
        .write()
        .map_err(|_| DataflowError::Internal("object store options poisoned".into()))?;
    *current = options;
    drop(current);
    super::forget_stores();
    Ok(())
}

/// Parses `key=value` lines (blank lines and `#` comments skipped);
/// `source` names the text in errors (a file name).
pub fn parse_options(text: &str, source: &str) -> Result<Vec<(String, String)>> {
    let mut options = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(DataflowError::file(
                source,
                format!("line {}: expected key=value, got {line:?}", i + 1),
            ));
        };
        options.push((key.trim().to_string(), value.trim().to_string()));
    }
    Ok(options)
}

fn is_known_key(key: &str) -> bool {
    matches!(key, "retry_max" | "retry_timeout")
        || AmazonS3ConfigKey::from_str(key).is_ok()
        || GoogleConfigKey::from_str(key).is_ok()
        || AzureConfigKey::from_str(key).is_ok()
        || ClientConfigKey::from_str(key).is_ok()
}

enum RetrySetting {
    Max(usize),
    Timeout(Duration),
}

fn retry_setting(key: &str, value: &str) -> Result<Option<RetrySetting>> {
    let bad = |what: &str| {
        DataflowError::file(
            OPTIONS_NAME,
            format!("option {key}={value}: expected {what}"),
        )
    };
    match key {
        "retry_max" => value
            .parse()
            .map(|n| Some(RetrySetting::Max(n)))
            .map_err(|_| bad("a number of retries")),
        "retry_timeout" => parse_seconds(value)
            .map(|d| Some(RetrySetting::Timeout(d)))
            .ok_or_else(|| bad("a duration such as 15s or 500ms")),
        _ => Ok(None),
    }
}

/// `15s`, `500ms`, `2m` or a number of seconds.
fn parse_seconds(value: &str) -> Option<Duration> {
    let (number, unit) = match value.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => value.split_at(i),
        None => (value, "s"),
    };
    let n: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

fn retry_config(options: &[(String, String)]) -> RetryConfig {
    let mut retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: RETRY_MAX,
        retry_timeout: RETRY_TIMEOUT,
    };
    for (key, value) in options {
        match retry_setting(key, value) {
            Ok(Some(RetrySetting::Max(n))) => retry.max_retries = n,
            Ok(Some(RetrySetting::Timeout(d))) => retry.retry_timeout = d,
            _ => {}
        }
    }
    retry
}

/// Applies the default timeouts (where the environment set none), then
/// the options a builder of this kind knows.
macro_rules! configure {
    ($builder:expr, $key:ty, $options:expr) => {{
        let mut builder = $builder;
        for (key, default) in [
            (ClientConfigKey::ConnectTimeout, CONNECT_TIMEOUT),
            (ClientConfigKey::Timeout, REQUEST_TIMEOUT),
        ] {
            if builder
                .get_config_value(&<$key>::Client(key.clone()))
                .is_none()
            {
                builder = builder.with_config(<$key>::Client(key), default);
            }
        }
        for (key, value) in $options {
            if let Ok(key) = <$key>::from_str(key) {
                builder = builder.with_config(key, value.clone());
            }
        }
        builder.with_retry(retry_config($options))
    }};
}

/// A store for `url` (of kind `scheme`) configured from the environment
/// and `options`; the error says what is wrong with the configuration.
pub(super) fn build_store(
    scheme: &ObjectStoreScheme,
    url: &Url,
    options: &[(String, String)],
) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    let describe = |e: object_store::Error| format!("object store configuration: {e}");
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::AmazonS3 => Arc::new(
            configure!(AmazonS3Builder::from_env(), AmazonS3ConfigKey, options)
                .with_url(url.as_str())
                .build()
                .map_err(describe)?,
        ),
        ObjectStoreScheme::GoogleCloudStorage => Arc::new(
            configure!(
                GoogleCloudStorageBuilder::from_env(),
                GoogleConfigKey,
                options
            )
            .with_url(url.as_str())
            .build()
            .map_err(describe)?,
        ),
        ObjectStoreScheme::MicrosoftAzure => Arc::new(
            configure!(MicrosoftAzureBuilder::from_env(), AzureConfigKey, options)
                .with_url(url.as_str())
                .build()
                .map_err(describe)?,
        ),
        ObjectStoreScheme::Http => {
            let mut builder = HttpBuilder::new()
                .with_url(format!("{}://{}", url.scheme(), url.authority()))
                .with_config(ClientConfigKey::ConnectTimeout, CONNECT_TIMEOUT)
                .with_config(ClientConfigKey::Timeout, REQUEST_TIMEOUT);
            for (key, value) in options {
                if let Ok(key) = ClientConfigKey::from_str(key) {
                    builder = builder.with_config(key, value.clone());
                }
            }
            Arc::new(
                builder
                    .with_retry(retry_config(options))
                    .build()
                    .map_err(describe)?,
            )
        }
        other => return Err(format!("not supported: {other:?} URLs as table locations")),
    };
    Ok(store)
}
