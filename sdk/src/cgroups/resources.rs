//! Resource limits and the freezer, through cgroups-rs's OCI manager.
//!
//! cgroups-rs's `FsManager` takes `oci_spec::runtime::LinuxResources` as they
//! are and writes them to the v1 controllers or the v2 unified files. The
//! per-field validation and the fields it lacks belong to the resources
//! issue; this file is the seam.

use cgroups_rs::manager::{FsManager, Manager};
use cgroups_rs::FreezerState;
use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxResources,
};

use super::Cgroup;
use crate::error::Result;

impl Cgroup {
    pub(super) fn manager(&self) -> Result<FsManager> {
        FsManager::new(self.path()).map_err(|e| self.error(format!("open cgroup manager: {e}")))
    }

    /// Writes `resources` (memory, cpu, cpuset, pids, blkio, hugetlb,
    /// network, devices) to the cgroup. After a rule that denies every
    /// device, the devices every container gets are allowed again (as runc
    /// adds them), so a spec that denies all devices still leaves
    /// `/dev/null` and the terminal usable; a later rule of the spec that
    /// denies one of them still wins.
    pub fn apply(&self, resources: &LinuxResources) -> Result<()> {
        let mut resources = resources.clone();
        if let Some(rules) = resources.devices() {
            resources.set_devices(Some(with_default_devices(rules)));
        }
        self.manager()?
            .set(&resources)
            .map_err(|e| self.error(format!("apply resources: {e}")))
    }

    /// Freezes every process in the cgroup and waits until the kernel
    /// reports the whole cgroup frozen. v1's `freezer.state` has no
    /// notification: it is re-read with a short backoff, as runc does,
    /// for at most about two seconds.
    pub async fn freeze(&self) -> Result<()> {
        self.manager()?
            .freeze(FreezerState::Frozen)
            .map_err(|e| self.error(format!("freeze: {e}")))?;
        let mut delay = std::time::Duration::from_micros(100);
        for _ in 0..40 {
            if self.frozen()? {
                return Ok(());
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_millis(100));
        }
        Err(self.error("freeze: the cgroup did not report frozen within 2 s".into()))
    }

    /// Whether the whole cgroup is frozen.
    fn frozen(&self) -> Result<bool> {
        let (file, want) = if self.layout == super::Layout::V2 {
            ("cgroup.events", "frozen 1")
        } else {
            ("freezer.state", "FROZEN")
        };
        let dir = self
            .dir_with(file)
            .ok_or_else(|| self.error(format!("no {file}: is the freezer mounted?")))?;
        let text = std::fs::read_to_string(dir.join(file))
            .map_err(|e| crate::error::Error::io("read", dir.join(file), e))?;
        Ok(text.lines().any(|l| l.trim() == want))
    }

    /// Thaws a frozen cgroup.
    pub fn thaw(&self) -> Result<()> {
        self.manager()?
            .freeze(FreezerState::Thawed)
            .map_err(|e| self.error(format!("thaw: {e}")))
    }
}

/// `resources` with an allow rule (`rwm`) for each of the spec's devices
/// appended to its device rules, as runc does: a device the spec asks to
/// create must also be usable.
pub(crate) fn allowing(resources: &LinuxResources, devices: &[LinuxDevice]) -> LinuxResources {
    let mut r = resources.clone();
    if let Some(rules) = r.devices().as_ref().filter(|rules| !rules.is_empty()) {
        let mut rules = rules.clone();
        for d in devices {
            if let Ok(rule) = LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(d.typ())
                .major(d.major())
                .minor(d.minor())
                .access("rwm")
                .build()
            {
                rules.push(rule);
            }
        }
        r.set_devices(Some(rules));
    }
    r
}

/// `rules` with [`default_device_rules`] inserted after the last rule that
/// denies every device (none without one: nothing to undo).
fn with_default_devices(rules: &[LinuxDeviceCgroup]) -> Vec<LinuxDeviceCgroup> {
    let denies_all = |r: &LinuxDeviceCgroup| {
        !r.allow()
            && matches!(r.typ(), None | Some(LinuxDeviceType::A))
            && r.major().is_none()
            && r.minor().is_none()
    };
    let mut out = rules.to_vec();
    if let Some(i) = rules.iter().rposition(denies_all) {
        out.splice(i + 1..i + 1, default_device_rules());
    }
    out
}

/// Character devices a container may always create and use: the OCI default
/// devices, `/dev/console`, `/dev/ptmx` and the pseudo-terminals.
fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |major: i64, minor: Option<i64>| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(major)
            .access("rwm");
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().expect("all fields set")
    };
    vec![
        rule(1, Some(3)), // null
        rule(1, Some(5)), // zero
        rule(1, Some(7)), // full
        rule(1, Some(8)), // random
        rule(1, Some(9)), // urandom
        rule(5, Some(0)), // tty
        rule(5, Some(1)), // console
        rule(5, Some(2)), // ptmx
        rule(136, None),  // pts/*
    ]
}
