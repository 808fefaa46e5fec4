//! Running without root: where state goes, and how the id maps of a new
//! user namespace are written by an unprivileged parent.

use std::path::PathBuf;

/// Whether this process runs without root (its effective uid is not 0).
pub fn is_rootless() -> bool {
    !nix::unistd::geteuid().is_root()
}

/// The default state root: `/run/berth` for root, else
/// `$XDG_RUNTIME_DIR/berth` (as runc uses `$XDG_RUNTIME_DIR/runc`), else
/// `/run/user/<uid>/berth`.
pub fn default_root() -> PathBuf {
    if !is_rootless() {
        return PathBuf::from("/run/berth");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("berth"),
        None => PathBuf::from(format!("/run/user/{}/berth", nix::unistd::geteuid())),
    }
}

/// The default cgroup parent: `berth` for root; `berth-rootless-<uid>`
/// for a user, whose containers get a cgroup only where one was delegated,
/// and must not share a parent with root's.
pub fn default_cgroup_parent() -> String {
    if is_rootless() {
        format!("berth-rootless-{}", nix::unistd::geteuid())
    } else {
        "berth".into()
    }
}
