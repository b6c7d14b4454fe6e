//! Typed ids and the zenoh key expressions of the distributed runtime.
//!
//! The key space (the contract, see ARCHITECTURE.md section 4):
//!
//! ```text
//! ffq/<cluster>/ctl/...                       control (submit, assign, status)
//! ffq/<cluster>/worker/<worker-id>            liveliness token of a worker
//! ffq/<cluster>/data/<query>/<stage>/<attempt>/<task>/<partition>
//!                                             the output of one task attempt
//! ```
//!
//! Every string id is one key chunk: non-empty, without `/` and without the
//! characters zenoh gives a meaning (`*`, `$`, `#`, `?`), not starting with
//! `@` (a verbatim chunk) and without control characters or whitespace.
//! Numeric ids are printed in decimal; parsing accepts only that canonical
//! form, so one id has exactly one key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::{Result, TransportError};

/// The first chunk of every FFQ key.
pub const ROOT: &str = "ffq";

/// Longest accepted string id, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Checks that `value` can be one key chunk; `kind` names the id in errors.
pub fn validate_chunk(kind: &'static str, value: &str) -> Result<()> {
    let invalid = |reason: String| TransportError::InvalidId {
        kind,
        value: value.to_string(),
        reason,
    };
    if value.is_empty() {
        return Err(invalid("must not be empty".into()));
    }
    if value.len() > MAX_ID_LEN {
        return Err(invalid(format!("longer than {MAX_ID_LEN} bytes")));
    }
    if value.starts_with('@') {
        return Err(invalid("must not start with '@'".into()));
    }
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, '/' | '*' | '$' | '#' | '?') || c.is_control() || c.is_whitespace())
    {
        return Err(invalid(format!("contains the forbidden character {c:?}")));
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A validated id.
            pub fn new(value: impl Into<String>) -> Result<Self> {
                let value = value.into();
                validate_chunk($kind, &value)?;
                Ok($name(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = TransportError;
            fn from_str(s: &str) -> Result<Self> {
                $name::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = TransportError;
            fn try_from(s: String) -> Result<Self> {
                $name::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        // Comparisons with plain strings, as `String` has them.
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

string_id!(
    /// The name of a cluster: all its keys live under `ffq/<cluster>/`.
    ClusterId,
    "cluster id"
);
string_id!(
    /// The id of a worker (its liveliness token is `ffq/<cluster>/worker/<id>`).
    WorkerId,
    "worker id"
);
string_id!(
    /// The id of a client: workers fetch the client's memory tables on
    /// `ffq/<cluster>/ctl/client/<id>/table`.
    ClientId,
    "client id"
);
string_id!(
    /// The id of a query (uuid-like; see [`QueryId::generate`]).
    QueryId,
    "query id"
);

impl QueryId {
    /// A fresh id, unique with high probability across processes: 32 hex
    /// digits from the clock, the process id, a counter and std's random
    /// hasher seed, formatted like a uuid.
    pub fn generate() -> QueryId {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut h = RandomState::new().build_hasher();
        h.write_u64(nanos);
        h.write_u32(std::process::id());
        h.write_u64(count);
        let hi = nanos ^ (u64::from(std::process::id()) << 32);
        let lo = h.finish();
        let s = format!("{hi:016x}{lo:016x}");
        QueryId(format!(
            "{}-{}-{}-{}-{}",
            &s[0..8],
            &s[8..12],
            &s[12..16],
            &s[16..20],
            &s[20..32]
        ))
    }
}

macro_rules! number_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u32);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = TransportError;
            fn from_str(s: &str) -> Result<Self> {
                parse_number($kind, s).map($name)
            }
        }

        impl From<u32> for $name {
            fn from(v: u32) -> Self {
                $name(v)
            }
        }
    };
}

number_id!(
    /// A stage of a query.
    StageId,
    "stage id"
);
number_id!(
    /// A task (input partition) of a stage.
    TaskId,
    "task id"
);
number_id!(
    /// One attempt at running a task; retries get new attempt ids.
    AttemptId,
    "attempt id"
);
number_id!(
    /// An output partition of a task.
    PartitionId,
    "partition id"
);

fn parse_number(kind: &'static str, s: &str) -> Result<u32> {
    let invalid = |reason: &str| TransportError::InvalidId {
        kind,
        value: s.to_string(),
        reason: reason.to_string(),
    };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("must be a decimal number"));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(invalid("must not have leading zeros"));
    }
    s.parse::<u32>()
        .map_err(|_| invalid("does not fit in 32 bits"))
}

impl AttemptId {
    /// The attempt after this one.
    pub fn next(self) -> AttemptId {
        AttemptId(self.0 + 1)
    }
}

/// A task attempt: `(query, stage, task, attempt)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttemptRef {
    pub query: QueryId,
    pub stage: StageId,
    pub task: TaskId,
    pub attempt: AttemptId,
}

impl AttemptRef {
    pub fn new(query: QueryId, stage: StageId, task: TaskId, attempt: AttemptId) -> Self {
        AttemptRef {
            query,
            stage,
            task,
            attempt,
        }
    }

    /// The stream of output partition `partition` of this attempt.
    pub fn stream(&self, partition: PartitionId) -> StreamId {
        StreamId {
            query: self.query.clone(),
            stage: self.stage,
            attempt: self.attempt,
            task: self.task,
            partition,
        }
    }

    /// `ffq/<cluster>/data/<query>/<stage>/<attempt>/<task>/*`: every output
    /// partition of this attempt.
    pub fn data_space(&self, cluster: &ClusterId) -> String {
        format!(
            "{ROOT}/{cluster}/data/{}/{}/{}/{}/*",
            self.query, self.stage, self.attempt, self.task
        )
    }
}

/// The ids of one output stream: one output partition of one task attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamId {
    pub query: QueryId,
    pub stage: StageId,
    pub attempt: AttemptId,
    pub task: TaskId,
    pub partition: PartitionId,
}

impl StreamId {
    pub fn attempt_ref(&self) -> AttemptRef {
        AttemptRef {
            query: self.query.clone(),
            stage: self.stage,
            task: self.task,
            attempt: self.attempt,
        }
    }

    /// Whether `other` is the same stream except (perhaps) for the attempt.
    pub fn same_but_attempt(&self, other: &StreamId) -> bool {
        self.query == other.query
            && self.stage == other.stage
            && self.task == other.task
            && self.partition == other.partition
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}/{}",
            self.query, self.stage, self.attempt, self.task, self.partition
        )
    }
}

/// The key of one output stream:
/// `ffq/<cluster>/data/<query>/<stage>/<attempt>/<task>/<partition>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataKey {
    pub cluster: ClusterId,
    pub stream: StreamId,
}

impl DataKey {
    pub fn new(cluster: ClusterId, stream: StreamId) -> Self {
        DataKey { cluster, stream }
    }

    /// Parses a data key; fails (naming the key) on any other shape.
    pub fn parse(key: &str) -> Result<DataKey> {
        let bad = |reason: String| TransportError::InvalidKey {
            key: key.to_string(),
            reason,
        };
        let parts: Vec<&str> = key.split('/').collect();
        if parts.len() != 8 || parts[0] != ROOT || parts[2] != "data" {
            return Err(bad(format!(
                "expected {ROOT}/<cluster>/data/<query>/<stage>/<attempt>/<task>/<partition>"
            )));
        }
        let wrap = |e: TransportError| bad(e.to_string());
        Ok(DataKey {
            cluster: ClusterId::new(parts[1]).map_err(wrap)?,
            stream: StreamId {
                query: QueryId::new(parts[3]).map_err(wrap)?,
                stage: parts[4].parse().map_err(wrap)?,
                attempt: parts[5].parse().map_err(wrap)?,
                task: parts[6].parse().map_err(wrap)?,
                partition: parts[7].parse().map_err(wrap)?,
            },
        })
    }

    /// The key expression of the same stream of any attempt
    /// (`.../<stage>/*/<task>/<partition>`).
    pub fn any_attempt(&self) -> String {
        let s = &self.stream;
        format!(
            "{ROOT}/{}/data/{}/{}/*/{}/{}",
            self.cluster, s.query, s.stage, s.task, s.partition
        )
    }
}

impl fmt::Display for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ROOT}/{}/data/{}", self.cluster, self.stream)
    }
}

/// `ffq/<cluster>/data/**`: every data key of a cluster (what a worker's
/// data queryable declares).
pub fn data_space(cluster: &ClusterId) -> String {
    format!("{ROOT}/{cluster}/data/**")
}

/// `ffq/<cluster>/data/<query>/**`: every data key of one query.
pub fn query_data_space(cluster: &ClusterId, query: &QueryId) -> String {
    format!("{ROOT}/{cluster}/data/{query}/**")
}

/// `ffq/<cluster>/worker/<worker-id>`: a worker's liveliness token.
pub fn worker_key(cluster: &ClusterId, worker: &WorkerId) -> String {
    format!("{ROOT}/{cluster}/worker/{worker}")
}

/// `ffq/<cluster>/worker/*`: every worker's liveliness token.
pub fn worker_space(cluster: &ClusterId) -> String {
    format!("{ROOT}/{cluster}/worker/*")
}

/// Parses a worker liveliness key back into its ids.
pub fn parse_worker_key(key: &str) -> Result<(ClusterId, WorkerId)> {
    let (cluster, id) = parse_token_key(key, "worker")?;
    let id = WorkerId::new(id).map_err(|e| TransportError::InvalidKey {
        key: key.to_string(),
        reason: e.to_string(),
    })?;
    Ok((cluster, id))
}

/// `ffq/<cluster>/client/<client-id>`: a client's liveliness token. The
/// coordinator ends a client's queries when it goes away.
pub fn client_key(cluster: &ClusterId, client: &ClientId) -> String {
    format!("{ROOT}/{cluster}/client/{client}")
}

/// `ffq/<cluster>/client/*`: every client's liveliness token.
pub fn client_space(cluster: &ClusterId) -> String {
    format!("{ROOT}/{cluster}/client/*")
}

/// Parses a client liveliness key back into its ids.
pub fn parse_client_key(key: &str) -> Result<(ClusterId, ClientId)> {
    let (cluster, id) = parse_token_key(key, "client")?;
    let id = ClientId::new(id).map_err(|e| TransportError::InvalidKey {
        key: key.to_string(),
        reason: e.to_string(),
    })?;
    Ok((cluster, id))
}

/// `ffq/<cluster>/coordinator`: the coordinator's liveliness token.
/// Workers drop everything they hold when it goes away: no coordinator
/// can release it any more.
pub fn coordinator_token_key(cluster: &ClusterId) -> String {
    format!("{ROOT}/{cluster}/coordinator")
}

/// `ffq/<cluster>/<kind>/<id>` into the cluster id and the raw id.
fn parse_token_key<'k>(key: &'k str, kind: &str) -> Result<(ClusterId, &'k str)> {
    let bad = |reason: String| TransportError::InvalidKey {
        key: key.to_string(),
        reason,
    };
    let parts: Vec<&str> = key.split('/').collect();
    if parts.len() != 4 || parts[0] != ROOT || parts[2] != kind {
        return Err(bad(format!("expected {ROOT}/<cluster>/{kind}/<{kind}-id>")));
    }
    let cluster = ClusterId::new(parts[1]).map_err(|e| bad(e.to_string()))?;
    Ok((cluster, parts[3]))
}

/// `ffq/<cluster>/ctl/<path...>`: a control key; each element of `path` is
/// one validated chunk.
pub fn ctl_key(cluster: &ClusterId, path: &[&str]) -> Result<String> {
    if path.is_empty() {
        return Err(TransportError::InvalidKey {
            key: format!("{ROOT}/{cluster}/ctl"),
            reason: "a control key needs at least one chunk after ctl/".into(),
        });
    }
    for chunk in path {
        validate_chunk("control key chunk", chunk)?;
    }
    Ok(format!("{ROOT}/{cluster}/ctl/{}", path.join("/")))
}

/// `ffq/<cluster>/ctl/**`.
pub fn ctl_space(cluster: &ClusterId) -> String {
    format!("{ROOT}/{cluster}/ctl/**")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> StreamId {
        StreamId {
            query: QueryId::new("q-1").unwrap(),
            stage: StageId(2),
            attempt: AttemptId(1),
            task: TaskId(7),
            partition: PartitionId(3),
        }
    }

    #[test]
    fn attempt_data_space_covers_its_partitions() {
        let attempt = stream().attempt_ref();
        let cluster = ClusterId::new("c1").unwrap();
        assert_eq!(attempt.data_space(&cluster), "ffq/c1/data/q-1/2/1/7/*");
    }

    #[test]
    fn data_key_format_and_parse() {
        let key = DataKey::new(ClusterId::new("c1").unwrap(), stream());
        assert_eq!(key.to_string(), "ffq/c1/data/q-1/2/1/7/3");
        assert_eq!(DataKey::parse("ffq/c1/data/q-1/2/1/7/3").unwrap(), key);
        assert_eq!(key.any_attempt(), "ffq/c1/data/q-1/2/*/7/3");
        // Every produced key is a valid zenoh key expression.
        zenoh::key_expr::KeyExpr::try_from(key.to_string()).unwrap();
        zenoh::key_expr::KeyExpr::try_from(key.any_attempt()).unwrap();
    }

    #[test]
    fn other_keys() {
        let c = ClusterId::new("prod").unwrap();
        let w = WorkerId::new("w-01.host").unwrap();
        assert_eq!(worker_key(&c, &w), "ffq/prod/worker/w-01.host");
        assert_eq!(
            parse_worker_key("ffq/prod/worker/w-01.host").unwrap(),
            (c.clone(), w)
        );
        assert_eq!(worker_space(&c), "ffq/prod/worker/*");
        let client = ClientId::new("c-1").unwrap();
        assert_eq!(client_key(&c, &client), "ffq/prod/client/c-1");
        assert_eq!(
            parse_client_key("ffq/prod/client/c-1").unwrap(),
            (c.clone(), client)
        );
        assert!(parse_client_key("ffq/prod/worker/c-1").is_err());
        assert!(parse_worker_key("ffq/prod/worker/a b").is_err());
        assert_eq!(client_space(&c), "ffq/prod/client/*");
        assert_eq!(coordinator_token_key(&c), "ffq/prod/coordinator");
        assert_eq!(data_space(&c), "ffq/prod/data/**");
        let q = QueryId::new("abc").unwrap();
        assert_eq!(query_data_space(&c, &q), "ffq/prod/data/abc/**");
        assert_eq!(ctl_key(&c, &["submit"]).unwrap(), "ffq/prod/ctl/submit");
        assert_eq!(
            ctl_key(&c, &["status", "abc"]).unwrap(),
            "ffq/prod/ctl/status/abc"
        );
        assert!(ctl_key(&c, &[]).is_err());
        assert!(ctl_key(&c, &["a/b"]).is_err());
        for k in [
            data_space(&c),
            worker_space(&c),
            ctl_space(&c),
            client_space(&c),
            coordinator_token_key(&c),
        ] {
            zenoh::key_expr::KeyExpr::try_from(k).unwrap();
        }
    }

    #[test]
    fn invalid_ids_are_rejected_with_clear_errors() {
        for bad in [
            "", "a/b", "a*", "$x", "a#", "what?", "@admin", "a b", "tab\t",
        ] {
            let e = QueryId::new(bad).unwrap_err().to_string();
            assert!(e.contains("invalid query id"), "{e}");
        }
        let e = QueryId::new("a/b").unwrap_err().to_string();
        assert!(e.contains("'/'"), "{e}");
        assert!(ClusterId::new("x".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(WorkerId::new("ok_name-1.2").is_ok());
        assert!(ClientId::new("c/1").is_err());
    }

    #[test]
    fn string_ids_compare_with_strings() {
        let w = WorkerId::new("w-1").unwrap();
        assert_eq!(w, "w-1");
        assert_eq!("w-1", w);
        assert_eq!(*"w-1", w);
        assert_eq!(w, *"w-1");
        assert_ne!(w, "w-2");
    }

    #[test]
    fn numeric_ids_parse_canonically() {
        assert_eq!("0".parse::<StageId>().unwrap(), StageId(0));
        assert_eq!("4294967295".parse::<TaskId>().unwrap(), TaskId(u32::MAX));
        for bad in ["", "01", "-1", "+1", "1x", "4294967296", "*"] {
            let e = bad.parse::<AttemptId>().unwrap_err().to_string();
            assert!(e.contains("invalid attempt id"), "{bad}: {e}");
        }
    }

    #[test]
    fn malformed_data_keys() {
        for bad in [
            "ffq/c/data/q/1/2/3",
            "ffq/c/data/q/1/2/3/4/5",
            "xx/c/data/q/1/2/3/4",
            "ffq/c/worker/q/1/2/3/4",
            "ffq/c/data/q/1/*/3/4",
            "ffq/c/data/q/01/2/3/4",
        ] {
            let e = DataKey::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn generated_query_ids_are_valid_and_distinct() {
        let a = QueryId::generate();
        let b = QueryId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 36);
        QueryId::new(a.as_str()).unwrap();
    }

    #[test]
    fn serde_validates() {
        let mut buf = Vec::new();
        ciborium::into_writer(&"bad/id".to_string(), &mut buf).unwrap();
        let r: std::result::Result<QueryId, _> = ciborium::from_reader(&buf[..]);
        assert!(r.is_err());
        let mut buf = Vec::new();
        ciborium::into_writer(&stream(), &mut buf).unwrap();
        let back: StreamId = ciborium::from_reader(&buf[..]).unwrap();
        assert_eq!(back, stream());
    }
}
