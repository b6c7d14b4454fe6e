//! How processes of a cluster open their zenoh sessions.

use std::path::PathBuf;
use std::time::Duration;

use ffq_transport::zenoh_exchange::{config_from_file, peer_config, ClusterId};

use crate::error::{ClusterError, Result};
use crate::security::Security;

/// The default cluster name.
pub const DEFAULT_CLUSTER: &str = "default";

/// Where a process finds its cluster, and how its session is set up.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub cluster: ClusterId,
    /// Endpoints to connect to (the coordinator's), e.g. `tcp/127.0.0.1:7447`.
    pub connect: Vec<String>,
    /// Endpoint to listen on, so that peers can connect (workers must be
    /// reachable by the other workers and clients that read their outputs);
    /// `tcp/127.0.0.1:0` picks a free port.
    pub listen: Option<String>,
    /// A zenoh json5 config file; `connect` and `listen` are added to it.
    pub zenoh_config: Option<PathBuf>,
    /// How long the peers of this session wait without hearing from it
    /// before they consider it gone (zenoh's lease; its default is 10 s).
    pub lease: Option<Duration>,
    /// How long to wait for the coordinator when connecting.
    pub connect_timeout: Duration,
    /// TLS, user-password authentication and access control (none by
    /// default: anyone reaching the endpoints may join).
    pub security: Security,
}

impl ClusterConfig {
    /// A client of the coordinator at `endpoint`, in the default cluster.
    pub fn new(endpoint: impl Into<String>) -> Self {
        ClusterConfig {
            cluster: ClusterId::new(DEFAULT_CLUSTER).expect("a valid id"),
            connect: vec![endpoint.into()],
            listen: None,
            zenoh_config: None,
            lease: None,
            connect_timeout: Duration::from_secs(10),
            security: Security::default(),
        }
    }

    pub fn with_cluster(mut self, name: &str) -> Result<Self> {
        self.cluster = ClusterId::new(name).map_err(|e| ClusterError::Config(e.to_string()))?;
        Ok(self)
    }

    /// The zenoh config of a session of this process: peer mode, no
    /// multicast scouting (nothing leaks onto the network), the file's
    /// settings if any, then [`Security`]'s (which override the file's).
    pub fn zenoh(&self) -> Result<zenoh::Config> {
        let connect: Vec<&str> = self.connect.iter().map(String::as_str).collect();
        let mut config = match &self.zenoh_config {
            Some(path) => {
                let mut c = config_from_file(path)?;
                set(&mut c, "connect/endpoints", &endpoint_list(&connect))?;
                if let Some(l) = &self.listen {
                    set(&mut c, "listen/endpoints", &endpoint_list(&[l.as_str()]))?;
                }
                c
            }
            None => peer_config(self.listen.as_deref(), &connect)?,
        };
        if let Some(lease) = self.lease {
            set(
                &mut config,
                "transport/link/tx/lease",
                &lease.as_millis().max(100).to_string(),
            )?;
        }
        self.security.apply(
            &self.cluster,
            &mut config,
            &self.connect,
            self.listen.as_deref(),
        )?;
        Ok(config)
    }
}

fn endpoint_list(endpoints: &[&str]) -> String {
    let quoted: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
    format!("[{}]", quoted.join(","))
}

fn set(config: &mut zenoh::Config, key: &str, value: &str) -> Result<()> {
    config
        .insert_json5(key, value)
        .map_err(|e| ClusterError::Config(format!("{key} = {value}: {e}")))
}
