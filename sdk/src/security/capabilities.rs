//! Capability names (as the OCI spec spells them) and their numbers.

use oci_spec::runtime::Capability;

/// Every capability the kernel defines, by number (`capability.h`).
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The number of a capability name (`"CAP_CHOWN"` → 0).
pub fn number(name: &str) -> Option<u32> {
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// The name of capability number `n`.
pub fn name(n: u32) -> Option<&'static str> {
    NAMES.get(n as usize).copied()
}

/// The number of an oci-spec capability.
pub(crate) fn of(cap: &Capability) -> Option<u32> {
    // oci-spec serializes capabilities under their kernel names.
    let v = serde_json::to_value(cap).ok()?;
    number(v.as_str()?)
}

/// A bit mask of the capabilities in `caps`, or the first one the kernel
/// (up to `last_cap`) does not know.
pub(crate) fn mask<'a>(
    caps: impl IntoIterator<Item = &'a Capability>,
    last_cap: u32,
) -> Result<u64, String> {
    let mut m = 0u64;
    for cap in caps {
        match of(cap) {
            Some(n) if n <= last_cap => m |= 1 << n,
            _ => return Err(format!("{cap:?} is not known to this kernel")),
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_kernel_header() {
        assert_eq!(number("CAP_CHOWN"), Some(0));
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(number("CAP_NOPE"), None);
        assert_eq!(of(&Capability::NetBindService), Some(10));
    }

    #[test]
    fn mask_refuses_capabilities_beyond_the_kernel() {
        assert_eq!(
            mask([&Capability::Chown, &Capability::Kill], 40),
            Ok(0b100001)
        );
        assert!(mask([&Capability::Bpf], 37).is_err());
    }
}
