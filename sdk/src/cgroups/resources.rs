//! Resource limits and the freezer, through cgroups-rs's OCI manager.
//!
//! cgroups-rs's `FsManager` takes `oci_spec::runtime::LinuxResources` as they
//! are and writes them to the v1 controllers or the v2 unified files. The
//! per-field validation and the fields it lacks belong to the resources
//! issue; this file is the seam.

use cgroups_rs::manager::{FsManager, Manager};
use cgroups_rs::FreezerState;
use oci_spec::runtime::LinuxResources;

use super::Cgroup;
use crate::error::Result;

impl Cgroup {
    fn manager(&self) -> Result<FsManager> {
        FsManager::new(self.path()).map_err(|e| self.error(format!("open cgroup manager: {e}")))
    }

    /// Writes `resources` (memory, cpu, cpuset, pids, blkio, hugetlb,
    /// network, devices) to the cgroup.
    pub fn apply(&self, resources: &LinuxResources) -> Result<()> {
        self.manager()?
            .set(resources)
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
