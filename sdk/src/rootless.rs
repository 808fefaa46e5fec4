//! Running without root: the id mappings a user's containers get, and
//! writing them for a process of the caller's (an extension's helper that
//! must own files as the container's users, say).
//!
//! ```no_run
//! # fn demo() -> berth::Result<()> {
//! if berth::rootless::is_rootless() {
//!     let maps = berth::rootless::default_id_mappings()?;
//!     println!("container root is host uid {}", maps.uid[0].host_id());
//! }
//! # Ok(()) }
//! ```

use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::security::rootless::{subordinate_ranges, user_name, write_id_maps};

pub use crate::security::rootless::is_rootless;

/// The uid and gid mappings of a user namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IdMappings {
    /// `linux.uidMappings`.
    pub uid: Vec<LinuxIdMapping>,
    /// `linux.gidMappings`.
    pub gid: Vec<LinuxIdMapping>,
}

/// The mappings rootless podman gives a user's containers by default: the
/// caller's own uid (gid) is the container's 0, and the first range that
/// `/etc/subuid` (`/etc/subgid`) gives the user follows from 1. Fails with
/// [`Error::SubordinateIds`] when the user has no range.
pub fn default_id_mappings() -> Result<IdMappings> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let user = user_name(uid);
    let map = |file: &str, field: &str, own: u32| -> Result<Vec<LinuxIdMapping>> {
        let content = std::fs::read_to_string(file).unwrap_or_default();
        let Some(&(first, count)) = subordinate_ranges(&content, &user, uid).first() else {
            return Err(Error::SubordinateIds {
                field: field.into(),
                range: "1-65536".into(),
                user: user.clone(),
                reason: format!("{file} has no range for {user}"),
            });
        };
        let mapping = |container: u64, host: u64, size: u64| {
            LinuxIdMappingBuilder::default()
                .container_id(u32::try_from(container).unwrap_or(u32::MAX))
                .host_id(u32::try_from(host).unwrap_or(u32::MAX))
                .size(u32::try_from(size).unwrap_or(u32::MAX))
                .build()
                .map_err(|e| Error::invalid(field, e.to_string()))
        };
        // Up to the last id a 32-bit uid can be.
        let size = count.min((1 << 32) - 2);
        Ok(vec![
            mapping(0, u64::from(own), 1)?,
            mapping(1, first, size)?,
        ])
    };
    Ok(IdMappings {
        uid: map("/etc/subuid", "linux.uidMappings", uid)?,
        gid: map("/etc/subgid", "linux.gidMappings", gid)?,
    })
}

/// Writes `mappings` as the id maps of the new user namespace of process
/// `pid`, a child of the caller's that has unshared it: a map of only the
/// caller's own id directly, any other through the setuid
/// `newuidmap`/`newgidmap` (Debian's `uidmap`), which check it against
/// `/etc/subuid` and `/etc/subgid`. Blocking.
pub fn write_id_mappings(pid: i32, mappings: &IdMappings) -> Result<()> {
    let render = |maps: &[LinuxIdMapping]| -> String {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect()
    };
    write_id_maps(
        pid,
        Some(&render(&mappings.uid)),
        Some(&render(&mappings.gid)),
    )
}
