//! Resource limits and the freezer, through cgroups-rs's OCI manager.
//!
//! cgroups-rs's `FsManager` takes `oci_spec::runtime::LinuxResources` as they
//! are and writes them to the v1 controllers or the v2 unified files. The
//! per-field validation and the fields it lacks belong to the resources
//! issue; this file is the seam.

use cgroups_rs::manager::{FsManager, Manager};
use cgroups_rs::FreezerState;
use oci_spec::runtime::{
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxResources,
};

use super::Cgroup;
use crate::error::Result;

impl Cgroup {
    pub(super) fn manager(&self) -> Result<FsManager> {
        FsManager::new(self.path()).map_err(|e| self.error(format!("open cgroup manager: {e}")))
    }

    /// Writes `resources` (memory, cpu, cpuset, pids, blkio, hugetlb,
    /// network, devices) to the cgroup. Device rules always end with the
    /// devices every container gets (as runc adds them), so a spec that
    /// denies all devices still leaves `/dev/null` and the terminal usable.
    pub fn apply(&self, resources: &LinuxResources) -> Result<()> {
        let mut resources = resources.clone();
        if let Some(rules) = resources.devices() {
            if !rules.is_empty() {
                let mut rules = rules.clone();
                rules.extend(default_device_rules());
                resources.set_devices(Some(rules));
            }
        }
        self.manager()?
            .set(&resources)
            .map_err(|e| self.error(format!("apply resources: {e}")))
    }

    /// Freezes every process in the cgroup.
    pub fn freeze(&self) -> Result<()> {
        self.manager()?
            .freeze(FreezerState::Frozen)
            .map_err(|e| self.error(format!("freeze: {e}")))
    }

    /// Thaws a frozen cgroup.
    pub fn thaw(&self) -> Result<()> {
        self.manager()?
            .freeze(FreezerState::Thawed)
            .map_err(|e| self.error(format!("thaw: {e}")))
    }
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
