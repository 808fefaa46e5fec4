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
/// one, the usual mounts, masked and read-only paths, and berth's default
/// seccomp profile (Docker's in intent) for its capabilities.
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
    berth::security::seccomp_default::apply(&mut spec);
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
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
                ],
                "knownFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                ],
                "supportedFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                ]
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
        },
        "annotations": { "org.opencontainers.runtime-spec.features.berth.version": env!("CARGO_PKG_VERSION") },
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(0)
}
