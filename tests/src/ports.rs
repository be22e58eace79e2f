//! Free TCP ports on 127.0.0.1 for the components.

use std::net::{Ipv4Addr, TcpListener};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The loopback ports a cluster listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    /// etcd client URL port.
    pub etcd_client: u16,
    /// etcd peer URL port.
    pub etcd_peer: u16,
    /// kube-apiserver secure port.
    pub apiserver: u16,
    /// kube-controller-manager secure (health) port.
    pub controller_manager: u16,
    /// kube-scheduler secure (health) port.
    pub scheduler: u16,
    /// metrics-server secure port.
    pub metrics_server: u16,
}

impl Ports {
    /// Reserves distinct free ports. The listeners are all held until every
    /// port has been chosen, so the six are distinct; another process could
    /// still grab one before the component binds it (unlikely on loopback).
    pub fn allocate() -> Result<Self> {
        let mut held = Vec::with_capacity(6);
        let mut next = || -> Result<u16> {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::Port)?;
            let port = listener.local_addr().map_err(Error::Port)?.port();
            held.push(listener);
            Ok(port)
        };
        Ok(Ports {
            etcd_client: next()?,
            etcd_peer: next()?,
            apiserver: next()?,
            controller_manager: next()?,
            scheduler: next()?,
            metrics_server: next()?,
        })
    }
}

/// A single free loopback port (released on return), e.g. for a virtual
/// node's kubelet endpoint.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::Port)?;
    Ok(listener.local_addr().map_err(Error::Port)?.port())
}
