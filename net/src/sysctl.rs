//! The two sysctls a bridge network needs in the host namespace, read and
//! written through `/proc/sys/net`, which shows the namespace of the thread
//! that opens it.
//!
//! - `net.ipv4.ip_forward`: containers' traffic is routed through the host.
//!   berth sets it to 1 when it brings up the first network and puts back
//!   the old value when the last one goes (recorded under the runtime root,
//!   so a later process undoes it too).
//! - `net.ipv4.conf.<bridge>.route_localnet`: lets a connection to a port
//!   published on 127.0.0.1, rewritten to a container's address, leave
//!   through the bridge. Set on berth's bridge only; it goes with the
//!   bridge.

use std::path::PathBuf;

use crate::error::{Error, Result};

fn path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys/net").join(key)
}

/// Reads `net.<key>` (`ipv4/ip_forward`).
pub(crate) fn get(key: &str) -> Result<String> {
    let p = path(key);
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::io("read sysctl", p, e))
}

/// Writes `net.<key>`.
pub(crate) fn set(key: &str, value: &str) -> Result<()> {
    let p = path(key);
    std::fs::write(&p, value).map_err(|e| Error::io("write sysctl", p, e))
}
