//! A routable address for a virtual node on this machine only. kube-apiserver refuses to proxy
//! to loopback (`address not allowed`), so a node whose InternalIP is 127.0.0.1 cannot be
//! reached through `nodes/<node>/proxy/`. This creates a veth pair whose far end lives in a
//! network namespace of its own (so the link is up) and gives the near end, in this namespace,
//! an address from 10.250.0.0/16 (a /30 per node): vk-host listens there and publishes it as the
//! node's InternalIP. Everything is removed when the handle drops. It needs `ip` (iproute2) and
//! the right to create namespaces (root); without them, [`RoutableAddress::create`] says so.

use std::{
    net::Ipv4Addr,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

/// The address could not be made.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot give the virtual node a routable address ({0}); the API server's node proxy needs \
     one (it refuses loopback). Run as root with iproute2 installed (apt-get install iproute2)"
)]
pub struct AddressError(String);

/// A veth pair with an address on the near end; removed on drop.
#[derive(Debug)]
pub struct RoutableAddress {
    /// The node's address.
    pub ip: Ipv4Addr,
    link: String,
    netns: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// /30 blocks in 10.250.0.0/16.
const BLOCKS: u32 = 1 << 14;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl RoutableAddress {
    /// Creates a pair with a free address.
    pub fn create() -> Result<Self, AddressError> {
        let pid = std::process::id();
        let mut last = String::new();
        for _ in 0..16 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let block = (pid.wrapping_mul(31).wrapping_add(n.wrapping_mul(7919))) % BLOCKS;
            match Self::try_block(block, pid, n) {
                // A name left by an earlier process with the same pid: take the next.
                Ok(a) => return Ok(a),
                Err(e) if e.contains("File exists") => last = e,
                Err(e) => return Err(AddressError(e)),
            }
        }
        Err(AddressError(format!("no free address block: {last}")))
    }

    fn try_block(block: u32, pid: u32, n: u32) -> Result<Self, String> {
        let base = u32::from(Ipv4Addr::new(10, 250, 0, 0)) + block * 4;
        let near = Ipv4Addr::from(base + 1);
        let far = Ipv4Addr::from(base + 2);
        // Interface names are at most 15 bytes.
        let tag = format!("{:x}", (pid << 8) ^ n);
        let link = format!("vk{}", &tag[tag.len().saturating_sub(10)..]);
        let peer = format!("{link}p");
        let netns = format!("vk-node-{pid}-{n}");
        ip(&["netns", "add", &netns])?;
        // From here on, drop cleans up whatever was made (the names are this process's own; an
        // address another node also uses is harmless: both are local, and their ports differ).
        let address = Self {
            ip: near,
            link: link.clone(),
            netns: netns.clone(),
        };
        ip(&["link", "add", &link, "type", "veth", "peer", "name", &peer])?;
        ip(&["link", "set", &peer, "netns", &netns])?;
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{far}/30"),
            "dev",
            &peer,
        ])?;
        ip(&["-n", &netns, "link", "set", &peer, "up"])?;
        ip(&["addr", "add", &format!("{near}/30"), "dev", &link])?;
        ip(&["link", "set", &link, "up"])?;
        Ok(address)
    }
}

impl Drop for RoutableAddress {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both.
        let _ = ip(&["link", "del", &self.link]);
        let _ = ip(&["netns", "del", &self.netns]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_says_what_to_do() {
        let e = AddressError("ip netns add x: Operation not permitted".into()).to_string();
        assert!(e.contains("refuses loopback") && e.contains("root"), "{e}");
    }
}
