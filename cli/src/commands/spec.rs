//! `spec`, `features` and `version`.

use berth::oci_spec::runtime::{get_rootless_mounts, Linux, Spec};
use serde_json::json;

use super::Outcome;
use crate::cli::SpecCmd;

/// The OCI runtime spec version berth implements.
const OCI_VERSION: &str = "1.2.0";

pub fn version() -> Outcome {
    println!("berth version {}", env!("CARGO_PKG_VERSION"));
    println!("spec: {OCI_VERSION}");
    Ok(0)
}

/// runc's starter spec: `sh` on a terminal, every namespace but the user
/// one, the usual mounts, masked and read-only paths.
pub fn spec(c: SpecCmd) -> Outcome {
    let path = c.bundle.join("config.json");
    if path.exists() {
        return Err(format!("{} exists already", path.display()).into());
    }
    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_string());
    spec.set_hostname(Some("berth".into()));
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(true));
    }
    if let Some(root) = spec.root_mut() {
        root.set_path("rootfs".into());
        root.set_readonly(Some(true));
    }
    if c.rootless {
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        spec.set_linux(Some(Linux::rootless(uid, gid)));
        spec.set_mounts(Some(get_rootless_mounts()));
    }
    std::fs::write(&path, serde_json::to_string_pretty(&spec)? + "\n")?;
    Ok(0)
}

/// The OCI features document (what `runc features` prints).
pub fn features() -> Outcome {
    let host = berth::host::Host::get();
    let caps: Vec<_> = (0..=host.last_cap)
        .filter_map(berth::security::capabilities::name)
        .collect();
    let doc = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand",
            "noatime", "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime",
            "nosuid", "nosymfollow", "private", "rbind", "relatime", "ro", "rprivate", "rshared",
            "rslave", "runbindable", "rw", "shared", "slave", "strictatime", "suid", "symfollow",
            "sync", "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false },
            "seccomp": { "enabled": false },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
        },
        "annotations": { "org.opencontainers.runtime-spec.features.berth.version": env!("CARGO_PKG_VERSION") },
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(0)
}
