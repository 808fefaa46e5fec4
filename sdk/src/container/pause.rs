//! `pause`, `resume`, `update` and `pids`: the container's cgroup.

use oci_spec::runtime::LinuxResources;

use super::Container;
use crate::cgroups::Cgroup;
use crate::error::Result;

impl Container {
    pub(super) fn cgroup(&self) -> Result<Cgroup> {
        Cgroup::open(&self.load()?.cgroup_path)
    }

    /// Freezes every process of the container (the cgroup freezer) and
    /// returns once the kernel reports it frozen.
    pub async fn pause(&self) -> Result<()> {
        self.require_live("pause")?;
        self.cgroup()?.freeze().await
    }

    /// Thaws a paused container.
    pub fn resume(&self) -> Result<()> {
        self.require_live("resume")?;
        self.cgroup()?.thaw()
    }

    /// Changes the resource limits of a live container, with the checks of
    /// [`Cgroup::update`]: every value is checked before the first write, and
    /// a memory limit below the current usage is refused.
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        self.require_live("update")?;
        self.cgroup()?.update(resources)
    }

    /// One sample of the container's resource usage (CPU, memory, pids),
    /// read from its cgroup now. [`Container::stats`] gives a stream.
    pub fn stats_now(&self) -> Result<crate::cgroups::Stats> {
        self.cgroup()?.stats()
    }

    /// Pids (as the host sees them) of every process in the container.
    pub fn pids(&self) -> Result<Vec<i32>> {
        self.cgroup()?.pids()
    }
}
