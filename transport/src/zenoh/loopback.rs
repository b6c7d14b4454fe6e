//! Loopback endpoints for sessions and processes on one machine (local
//! clusters, tests, benchmarks, examples): a TCP port that is free now and
//! the zenoh endpoint on it.
//!
//! The port is only free when asked: another process may take it before
//! the session listens on it. That race is accepted where these are used
//! (short-lived clusters on loopback); production endpoints are configured.

use super::error::{Result, TransportError};

/// A TCP port of 127.0.0.1 that no socket is bound to right now.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| TransportError::Config(format!("no free loopback port: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| TransportError::Config(format!("no free loopback port: {e}")))?;
    Ok(addr.port())
}

/// `tcp/127.0.0.1:PORT` on a [`free_port`].
pub fn loopback_endpoint() -> Result<String> {
    Ok(format!("tcp/127.0.0.1:{}", free_port()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_and_loopback_endpoint() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        let endpoint = loopback_endpoint().unwrap();
        assert!(endpoint.starts_with("tcp/127.0.0.1:"), "{endpoint}");
    }
}
