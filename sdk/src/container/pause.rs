//! `pause`, `resume`, `update` and `pids`: the container's cgroup.

use oci_spec::runtime::LinuxResources;

use super::Container;
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};

impl Container {
    pub(super) fn cgroup(&self) -> Result<Cgroup> {
        Cgroup::open(&self.load()?.cgroup_path)
    }

    /// Freezes every process of the container (the cgroup freezer) and
    /// returns once the kernel reports it frozen. Under the container's
    /// state lock, like every transition.
    pub async fn pause(&self) -> Result<()> {
        let _lock = self.lock().await?;
        self.require_live("pause")?;
        self.cgroup()?.freeze().await?;
        self.announce(super::Event::Paused).await;
        Ok(())
    }

    /// Thaws a paused container (under the state lock; the write runs on
    /// a blocking thread).
    pub async fn resume(&self) -> Result<()> {
        let _lock = self.lock().await?;
        self.require_live("resume")?;
        let cgroup = self.cgroup()?;
        super::blocking(move || cgroup.thaw()).await?;
        self.announce(super::Event::Resumed).await;
        Ok(())
    }

    /// Changes the resource limits of a live container. Every value is
    /// checked before the first write ([`Error::InvalidSpec`] naming it), and
    /// unless `memory.checkBeforeUpdate` is `false`, a memory limit below
    /// what the container uses now is refused. Device rules are added after
    /// those in force, as on the v1 controller. The container's saved spec
    /// records the new values, so later updates build on them. Under the
    /// container's state lock, so concurrent updates (from any process)
    /// never lose one another's values; the cgroup writes run on a
    /// blocking thread.
    pub async fn update(&self, resources: &LinuxResources) -> Result<()> {
        let _lock = self.lock().await?;
        self.require_live("update")?;
        let ctr = self.clone();
        let resources = resources.clone();
        super::blocking(move || {
            let mut spec = ctr.spec_now()?;
            let mut linux = spec.linux().clone().unwrap_or_default();
            let current = linux.resources().clone().unwrap_or_default();
            let before = current.devices().clone().unwrap_or_default();
            let created = linux.devices().clone().unwrap_or_default();
            ctr.cgroup()?.update(&resources, &before, &created)?;

            linux.set_resources(Some(merge(current, &resources)));
            spec.set_linux(Some(linux));
            let json = serde_json::to_vec_pretty(&spec).map_err(|e| Error::State {
                id: ctr.id().to_string(),
                reason: format!("serialize the updated spec: {e}"),
            })?;
            crate::state::write_atomic(&ctr.inner.dir.join(crate::state::SPEC_FILE), &json)
        })
        .await
    }

    /// One sample of the container's resource usage (CPU, memory, pids),
    /// read from its cgroup now, on tokio's blocking pool.
    /// [`Container::stats`] gives a stream.
    pub async fn stats_now(&self) -> Result<crate::Stats> {
        let me = self.clone();
        super::blocking(move || me.cgroup()?.stats()).await
    }

    /// Pids (as the host sees them) of every process in the container,
    /// read from its cgroup on tokio's blocking pool. Without root, a
    /// container that got no cgroup (none delegated) is listed by its pid
    /// namespace instead: every process in the namespace of its first
    /// process, as far as this user may see them.
    pub async fn pids(&self) -> Result<Vec<i32>> {
        let me = self.clone();
        super::blocking(move || {
            let rootless = crate::security::rootless::is_rootless();
            match me.cgroup().and_then(|c| c.pids()) {
                Ok(pids) if !(rootless && pids.is_empty()) => Ok(pids),
                // No cgroup (the directory read as empty, or missing).
                r => {
                    let fallback = rootless
                        .then(|| me.load().ok())
                        .flatten()
                        .and_then(|p| pids_in_pid_namespace(p.pid));
                    match fallback {
                        Some(pids) => Ok(pids),
                        None => r,
                    }
                }
            }
        })
        .await
    }
}

/// The host pids of every process in the pid namespace of `pid`, if it has
/// one of its own (not this process's); sorted.
fn pids_in_pid_namespace(pid: i32) -> Option<Vec<i32>> {
    use std::os::unix::fs::MetadataExt;
    let ns = |p: &str| {
        std::fs::metadata(format!("/proc/{p}/ns/pid"))
            .ok()
            .map(|m| (m.dev(), m.ino()))
    };
    let theirs = ns(&pid.to_string())?;
    if Some(theirs) == ns("self") {
        return None;
    }
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| ns(&p.to_string()) == Some(theirs))
        .collect();
    pids.sort_unstable();
    Some(pids)
}

/// `current` with every field `update` sets replaced (objects merged field
/// by field) and `update`'s device rules appended to those in force.
fn merge(current: LinuxResources, update: &LinuxResources) -> LinuxResources {
    fn deep(into: &mut serde_json::Value, from: serde_json::Value, key: &str) {
        use serde_json::Value;
        match (into, from) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    deep(a.entry(k.clone()).or_insert(Value::Null), v, &k);
                }
            }
            (Value::Array(a), Value::Array(b)) if key == "devices" => a.extend(b),
            (slot, v) => *slot = v,
        }
    }
    let (Ok(mut merged), Ok(from)) = (serde_json::to_value(&current), serde_json::to_value(update))
    else {
        return current;
    };
    deep(&mut merged, from, "");
    serde_json::from_value(merged).unwrap_or(current)
}
