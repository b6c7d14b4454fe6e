//! zenoh session configuration.
//!
//! Shared memory: zenoh is built with its `shared-memory` feature. Two
//! sessions on one host that both enable it agree on it when their link
//! opens, and then zenoh copies every large enough message of the kinds
//! listed into a shared-memory pool of the sender and sends a reference
//! instead of the bytes; between hosts (or when either side disables it,
//! or the pool is full) messages go over the link as before. [`peer_config`]
//! enables it for replies only, which carry the data frames of the exchange
//! ([`shared_memory`]); control gets stay on the link.

use std::path::Path;

use zenoh::Config;

use super::error::{Result, TransportError};

fn insert(config: &mut Config, key: &str, value: &str) -> Result<()> {
    config
        .insert_json5(key, value)
        .map_err(|e| TransportError::Config(format!("{key} = {value}: {e}")))
}

fn endpoint_list(endpoints: &[&str]) -> Result<String> {
    let list: Vec<String> = endpoints
        .iter()
        .map(|e| {
            e.parse::<zenoh::config::EndPoint>()
                .map(|_| format!("{e:?}"))
                .map_err(|err| TransportError::Config(format!("bad endpoint {e:?}: {err}")))
        })
        .collect::<Result<_>>()?;
    Ok(format!("[{}]", list.join(",")))
}

/// A peer-mode config with multicast scouting off: it listens on `listen`
/// (e.g. `tcp/127.0.0.1:7447`; `None`: no listener, so the session only
/// connects out) and connects to `connect`. Shared memory is on for data
/// replies between co-located sessions ([`shared_memory`]).
pub fn peer_config(listen: Option<&str>, connect: &[&str]) -> Result<Config> {
    let mut config = Config::default();
    insert(&mut config, "mode", "\"peer\"")?;
    insert(&mut config, "scouting/multicast/enabled", "false")?;
    let listen: Vec<&str> = listen.into_iter().collect();
    insert(&mut config, "listen/endpoints", &endpoint_list(&listen)?)?;
    insert(&mut config, "connect/endpoints", &endpoint_list(connect)?)?;
    shared_memory(&mut config, true)?;
    Ok(config)
}

/// The shared-memory pool of one session, in bytes (a message that finds
/// the pool full goes over the link instead). Measured with zenoh 1.10.2:
/// a session's pool is resident in full (`/dev/shm`, outside any memory
/// limit) once it sent its first message through it, and a sent chunk is
/// freed only by zenoh's hand-off task, which runs every 100 ms, so a pool
/// carries at most about ten times its size per second before messages
/// fall back to the link. 128 MiB pools made the test suite hold 2.1 GB
/// of `/dev/shm`; 32 MiB keeps that a quarter while the frames of one get
/// in flight still fit.
pub const SHARED_MEMORY_POOL_BYTES: usize = 32 << 20;

/// Replies smaller than this go over the link even between co-located
/// sessions: for a few KiB, a copy into the socket costs less than the
/// shared-memory bookkeeping.
pub const SHARED_MEMORY_THRESHOLD_BYTES: usize = 64 << 10;

/// Turns zenoh's shared memory on (for replies of at least
/// [`SHARED_MEMORY_THRESHOLD_BYTES`], from a pool of
/// [`SHARED_MEMORY_POOL_BYTES`]) or off. It only takes effect between
/// sessions on one host that both have it on.
pub fn shared_memory(config: &mut Config, enabled: bool) -> Result<()> {
    let key = |k: &str| format!("transport/shared_memory/{k}");
    insert(config, &key("enabled"), &enabled.to_string())?;
    let opt = |k: &str| key(&format!("transport_optimization/{k}"));
    insert(config, &opt("enabled"), &enabled.to_string())?;
    if enabled {
        insert(
            config,
            &opt("pool_size"),
            &SHARED_MEMORY_POOL_BYTES.to_string(),
        )?;
        insert(
            config,
            &opt("message_size_threshold"),
            &SHARED_MEMORY_THRESHOLD_BYTES.to_string(),
        )?;
        insert(config, &opt("messages"), "[\"reply\"]")?;
    }
    Ok(())
}

/// A config read from a json5 file (zenoh's format).
pub fn config_from_file(path: impl AsRef<Path>) -> Result<Config> {
    let path = path.as_ref();
    Config::from_file(path).map_err(|e| TransportError::Config(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_config_values() {
        let c = peer_config(Some("tcp/127.0.0.1:7447"), &["tcp/127.0.0.1:7448"]).unwrap();
        assert_eq!(c.get_json("mode").unwrap(), "\"peer\"");
        assert_eq!(c.get_json("scouting/multicast/enabled").unwrap(), "false");
        assert!(c
            .get_json("listen/endpoints")
            .unwrap()
            .contains("127.0.0.1:7447"));
        assert!(c
            .get_json("connect/endpoints")
            .unwrap()
            .contains("127.0.0.1:7448"));
        assert_eq!(
            c.get_json("transport/shared_memory/enabled").unwrap(),
            "true"
        );
        let mut off = c.clone();
        shared_memory(&mut off, false).unwrap();
        assert_eq!(
            off.get_json("transport/shared_memory/enabled").unwrap(),
            "false"
        );
        let e = peer_config(Some("nonsense"), &[]).unwrap_err().to_string();
        assert!(e.contains("nonsense"), "{e}");
    }

    #[test]
    fn config_file() {
        let dir = std::env::temp_dir().join(format!("ffq-zcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("z.json5");
        std::fs::write(
            &path,
            "{ mode: 'peer', scouting: { multicast: { enabled: false } }, // comment\n }",
        )
        .unwrap();
        let c = config_from_file(&path).unwrap();
        assert_eq!(c.get_json("scouting/multicast/enabled").unwrap(), "false");
        let e = config_from_file(dir.join("missing.json5"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json5"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
