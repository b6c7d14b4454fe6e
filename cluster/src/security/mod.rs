//! Who may join a cluster, and what each member may do there.
//!
//! Without settings here, any process that reaches a cluster's zenoh
//! endpoints can do anything on `ffq/<cluster>/**`. [`Security`] adds what
//! zenoh provides, applied to every session of this process
//! ([`ClusterConfig::zenoh`](crate::ClusterConfig::zenoh)):
//!
//! - **Mutual TLS** ([`TlsFiles`]) on `quic/` or `tls/` endpoints: every
//!   link is encrypted, and both ends show a certificate signed by the
//!   cluster's CA. The certificate's
//!   common name is the member's identity; [`Members`] gives it a
//!   [`Role`]. With TLS on, the session also gets an access control list
//!   ([`acl`]): default deny, so a peer whose name is no member's gets
//!   nothing, and each role may only send what its part of the protocol
//!   needs.
//! - **User-password authentication** ([`Credentials`]): a listener only
//!   accepts peers that log in with a `user:password` of its dictionary.
//!   zenoh tells only the listening side who logged in (the connecting side
//!   learns nothing about its listener), so roles cannot be told apart
//!   by user names on every link: with user-password alone, every
//!   authenticated member may do what any role may.
//!
//! Both can be combined (TLS for encryption and roles, passwords as a
//! second factor).
//!
//! Prefer `quic/` endpoints: zenoh 1.10.2's `tls/` link reads and writes
//! one rustls stream from two tasks at once, and a write that meets a read
//! in progress fails with "handshake not complete", which closes the link
//! and loses the messages in flight (seen as lost data frames under
//! concurrent queries). Its QUIC link (quinn) has no such race. Settings from `--zenoh-config` are kept unless a flag
//! sets the same key; an `access_control` section the file enables is kept
//! instead of the generated one.

pub mod acl;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ffq_transport::zenoh_exchange::ClusterId;

use crate::error::{ClusterError, Result};

/// Endpoint schemes whose links are encrypted with the TLS settings:
/// QUIC, and TLS over TCP.
pub const ENCRYPTED: [&str; 2] = ["quic/", "tls/"];

/// What a member of a cluster does, which decides what it may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Coordinator,
    Worker,
    Client,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Coordinator, Role::Worker, Role::Client];

    pub fn name(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Worker => "worker",
            Role::Client => "client",
        }
    }

    /// The certificate common name of this role when [`Members`] names
    /// none: `ffq-coordinator`, `ffq-worker`, `ffq-client`.
    pub fn default_identity(self) -> String {
        format!("ffq-{}", self.name())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = ClusterError;
    fn from_str(s: &str) -> Result<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                ClusterError::Config(format!(
                    "unknown role {s:?}: expected coordinator, worker or client"
                ))
            })
    }
}

/// The identities (certificate common names) of each role. A role no
/// entry names has its [`Role::default_identity`]. Every process of a
/// cluster must be given the same members, as each one checks its peers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Members {
    named: Vec<(Role, String)>,
}

impl Members {
    /// `name` is a member with `role`.
    pub fn add(&mut self, role: Role, name: impl Into<String>) -> Result<()> {
        let name = name.into();
        if name.is_empty() {
            return Err(ClusterError::Config(format!(
                "empty member name for role {role}"
            )));
        }
        if let Some((other, _)) = self.named.iter().find(|(_, n)| *n == name) {
            if *other != role {
                return Err(ClusterError::Config(format!(
                    "member {name:?} is given two roles: {other} and {role}"
                )));
            }
            return Ok(());
        }
        self.named.push((role, name));
        Ok(())
    }

    /// Parses `ROLE=NAME` (the `--member` flag) and adds it.
    pub fn add_spec(&mut self, spec: &str) -> Result<()> {
        let (role, name) = spec.split_once('=').ok_or_else(|| {
            ClusterError::Config(format!(
                "member {spec:?}: expected ROLE=NAME, e.g. worker=worker-1.example.com"
            ))
        })?;
        self.add(role.trim().parse()?, name.trim())
    }

    /// The identities of `role`.
    pub fn of(&self, role: Role) -> Vec<String> {
        let named: Vec<String> = self
            .named
            .iter()
            .filter(|(r, _)| *r == role)
            .map(|(_, n)| n.clone())
            .collect();
        if named.is_empty() {
            vec![role.default_identity()]
        } else {
            named
        }
    }
}

/// Mutual TLS: PEM files of the cluster's CA, and this process's
/// certificate (used both to listen and to connect) and private key.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The login a process presents to the listeners it connects to. The
/// password never shows in `Debug` output or logs.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    pub user: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Credentials {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Result<Credentials> {
        let (user, password) = (user.into(), password.into());
        if user.is_empty() || user.contains(':') || password.is_empty() {
            return Err(ClusterError::Config(
                "credentials need a non-empty user without ':' and a non-empty password".into(),
            ));
        }
        Ok(Credentials { user, password })
    }

    /// Reads `USER:PASSWORD` from the first line of `path` (the line
    /// format of zenoh's dictionary files, so a process's own line can be
    /// copied there).
    pub fn from_file(path: &Path) -> Result<Credentials> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ClusterError::Config(format!("credentials file {}: {e}", path.display()))
        })?;
        let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
        let (user, password) = line.split_once(':').ok_or_else(|| {
            ClusterError::Config(format!(
                "credentials file {}: expected one line USER:PASSWORD",
                path.display()
            ))
        })?;
        Credentials::new(user, password)
            .map_err(|e| ClusterError::Config(format!("credentials file {}: {e}", path.display())))
    }
}

/// How a process authenticates itself and its peers (see the module doc).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Security {
    /// Mutual TLS, which also turns on access control by role.
    pub tls: Option<TlsFiles>,
    /// This process's login on the listeners it connects to.
    pub credentials: Option<Credentials>,
    /// zenoh's dictionary file (`USER:PASSWORD` lines): the logins this
    /// process's listener accepts.
    pub accepted_users: Option<PathBuf>,
    /// Which identities have which role.
    pub members: Members,
}

impl Security {
    /// Whether anything here is set (otherwise sessions are open to anyone).
    pub fn is_enabled(&self) -> bool {
        self.tls.is_some() || self.credentials.is_some() || self.accepted_users.is_some()
    }

    /// Sets this process's security on `config`, a session of `cluster`
    /// that connects to `connect` and listens on `listen`.
    pub fn apply(
        &self,
        cluster: &ClusterId,
        config: &mut zenoh::Config,
        connect: &[String],
        listen: Option<&str>,
    ) -> Result<()> {
        self.check(connect, listen)?;
        if let Some(tls) = &self.tls {
            let path = |p: &Path| json_string(&p.display().to_string());
            let tls_key = |k: &str| format!("transport/link/tls/{k}");
            set(config, &tls_key("root_ca_certificate"), &path(&tls.ca))?;
            for side in ["listen", "connect"] {
                set(
                    config,
                    &tls_key(&format!("{side}_certificate")),
                    &path(&tls.cert),
                )?;
                set(
                    config,
                    &tls_key(&format!("{side}_private_key")),
                    &path(&tls.key),
                )?;
            }
            set(config, &tls_key("enable_mtls"), "true")?;
            // Shared memory would carry data frames past TLS between
            // co-located members: a secured cluster keeps them on its links.
            ffq_transport::zenoh_exchange::shared_memory(config, false)
                .map_err(|e| ClusterError::Config(e.to_string()))?;
            let file_acl = config.get_json("access_control/enabled").ok();
            if file_acl.as_deref() != Some("true") {
                let acl = acl::access_control(cluster, &self.members);
                set(config, "access_control", &acl.to_string())?;
            }
        }
        if let Some(c) = &self.credentials {
            set(config, "transport/auth/usrpwd/user", &json_string(&c.user))?;
            set(
                config,
                "transport/auth/usrpwd/password",
                &json_string(&c.password),
            )
            .map_err(|_| ClusterError::Config("the password is not valid for zenoh".into()))?;
        }
        if let Some(users) = &self.accepted_users {
            let text = std::fs::read_to_string(users).map_err(|e| {
                ClusterError::Config(format!("users file {}: {e}", users.display()))
            })?;
            if !text.lines().any(|l| l.contains(':')) {
                return Err(ClusterError::Config(format!(
                    "users file {}: expected USER:PASSWORD lines",
                    users.display()
                )));
            }
            set(
                config,
                "transport/auth/usrpwd/dictionary_file",
                &json_string(&users.display().to_string()),
            )?;
        }
        Ok(())
    }

    /// Settings that would leave a door open are refused rather than
    /// silently applied.
    fn check(&self, connect: &[String], listen: Option<&str>) -> Result<()> {
        if self.tls.is_some() {
            let plain = connect
                .iter()
                .map(String::as_str)
                .chain(listen)
                .find(|e| !ENCRYPTED.iter().any(|scheme| e.starts_with(scheme)));
            if let Some(e) = plain {
                return Err(ClusterError::Config(format!(
                    "endpoint {e} is not encrypted: with TLS, every endpoint must be \
                     quic/HOST:PORT or tls/HOST:PORT"
                )));
            }
        }
        if self.accepted_users.is_some() && self.credentials.is_none() {
            return Err(ClusterError::Config(
                "a users file needs credentials too: peers of a listening process also connect \
                 to each other's listeners"
                    .into(),
            ));
        }
        if self.credentials.is_some() && listen.is_some() && self.accepted_users.is_none() {
            return Err(ClusterError::Config(
                "with credentials, a process that listens needs a users file, else anyone may \
                 connect to its listener"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn set(config: &mut zenoh::Config, key: &str, value: &str) -> Result<()> {
    config
        .insert_json5(key, value)
        .map_err(|e| ClusterError::Config(format!("{key}: {e}")))
}
