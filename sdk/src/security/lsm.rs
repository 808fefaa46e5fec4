//! Linux security modules: which of AppArmor and SELinux this host runs,
//! and the `/proc` attributes through which a process asks for its label
//! at `execve`.

use std::path::Path;

/// The LSMs berth can apply a spec's labels with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lsms {
    /// AppArmor is enabled (`/sys/module/apparmor/parameters/enabled` is
    /// `Y`, as runc checks).
    pub apparmor: bool,
    /// SELinux is enabled (selinuxfs is mounted at `/sys/fs/selinux`).
    pub selinux: bool,
}

impl Lsms {
    /// Reads what this host runs.
    pub fn probe() -> Lsms {
        let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.trim() == "Y");
        let selinux = Path::new("/sys/fs/selinux/enforce").exists();
        Lsms { apparmor, selinux }
    }
}

/// The attribute file a process writes its AppArmor profile for the next
/// `execve` to: the AppArmor-specific one (Linux 5.8) where it exists.
pub(crate) fn apparmor_exec_attr() -> &'static str {
    if Path::new("/proc/self/attr/apparmor/exec").exists() {
        "/proc/self/attr/apparmor/exec"
    } else {
        "/proc/self/attr/exec"
    }
}

/// The attribute file of the SELinux label for the next `execve`.
pub(crate) const SELINUX_EXEC_ATTR: &str = "/proc/self/attr/exec";
