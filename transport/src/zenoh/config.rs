//! zenoh session configuration.

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
/// connects out) and connects to `connect`.
pub fn peer_config(listen: Option<&str>, connect: &[&str]) -> Result<Config> {
    let mut config = Config::default();
    insert(&mut config, "mode", "\"peer\"")?;
    insert(&mut config, "scouting/multicast/enabled", "false")?;
    let listen: Vec<&str> = listen.into_iter().collect();
    insert(&mut config, "listen/endpoints", &endpoint_list(&listen)?)?;
    insert(&mut config, "connect/endpoints", &endpoint_list(connect)?)?;
    Ok(config)
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
