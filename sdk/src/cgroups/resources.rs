//! Resource limits and the freezer.
//!
//! cgroups-rs's `FsManager` writes most of `linux.resources` to the v1
//! controllers or the v2 unified files. This module checks every value first
//! ([`super::validate`]) and fills in what cgroups-rs lacks or gets wrong:
//! device rules (wildcards, and the v2 eBPF filter, in [`super::devices`]),
//! `cpu.idle`, `unified` key/values, and fields that v2 has no file for.

use std::os::fd::OwnedFd;

use cgroups_rs::manager::{FsManager, Manager};
use cgroups_rs::FreezerState;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxResources};

use super::devices::{self, DeviceRule};
use super::validate::{self, HostLimits};
use super::{bpf, device_program, Cgroup, Layout};
use crate::error::{Error, Result};

impl Cgroup {
    pub(super) fn manager(&self) -> Result<FsManager> {
        FsManager::new(self.path()).map_err(|e| self.error_from("open cgroup manager", e))
    }

    /// Checks and writes `resources` to the cgroup: cpu, cpuset, memory,
    /// pids, block I/O, huge pages, network class and priorities (v1),
    /// device rules (the v1 controller, an eBPF filter on v2), and
    /// `unified` files. Every value is checked before the first write; a bad
    /// one is an [`Error::InvalidSpec`] naming it
    /// (`linux.resources.cpu.quota`).
    ///
    /// After a rule that denies every device, the devices every container
    /// gets (`/dev/null`, `/dev/zero`, the terminal, ...) are allowed again,
    /// as runc does; a later rule of the spec that denies one still wins.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // used by tests and the conformance oracle
    pub fn apply(&self, resources: &LinuxResources) -> Result<()> {
        self.apply_with(resources, &[], &[])
    }

    /// [`Cgroup::apply`] for a new container, whose device rules must also
    /// allow the devices its spec creates in `/dev`.
    pub(crate) fn apply_for_create(
        &self,
        resources: &LinuxResources,
        created: &[LinuxDevice],
    ) -> Result<()> {
        self.apply_with(resources, &[], &devices::for_created(created))
    }

    /// Checks that `resources` can replace the limits of the running
    /// processes in this cgroup, then writes them as [`Cgroup::apply`]
    /// does. Unless the spec sets `checkBeforeUpdate` to `false`, a memory
    /// (or memory+swap) limit below what the cgroup uses now is refused:
    /// the kernel would otherwise fail after reclaim (v1) or OOM-kill to get
    /// there (v2).
    ///
    /// New device rules come after `before` (the rules in force) and the
    /// devices the container `created`: v1 appends them to the kernel's
    /// list; on v2 the filter is compiled anew from all of them.
    pub(crate) fn update(
        &self,
        resources: &LinuxResources,
        before: &[LinuxDeviceCgroup],
        created: &[LinuxDevice],
    ) -> Result<()> {
        validate::check(resources, HostLimits::get())?;
        if let Some(m) = resources.memory() {
            if m.check_before_update() != Some(false) {
                let usage = self.memory_usage()?;
                for (field, v) in [("limit", m.limit()), ("swap", m.swap())] {
                    if let (Some(v), Some(usage)) = (v.filter(|&v| v > 0), usage) {
                        if (v as u64) < usage {
                            return Err(Error::InvalidSpec {
                                field: format!("linux.resources.memory.{field}"),
                                reason: format!(
                                    "{v} bytes is below the {usage} bytes the container uses now"
                                ),
                            });
                        }
                    }
                }
            }
        }
        let mut before = devices::rules(before)?;
        before.extend(devices::for_created(created));
        self.apply_with(resources, &before, &[])
    }

    /// Bytes of memory the cgroup uses now, if the memory controller is there.
    fn memory_usage(&self) -> Result<Option<u64>> {
        let file = if self.layout == Layout::V2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        let Some(dir) = self.dir_with(file) else {
            return Ok(None);
        };
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        Ok(text.trim().parse().ok())
    }

    /// Writes `resources`; its device rules come after `before` (already in
    /// force, only needed to compile the v2 filter) and are followed by
    /// `created` (the devices a new container makes).
    fn apply_with(
        &self,
        resources: &LinuxResources,
        before: &[DeviceRule],
        created: &[DeviceRule],
    ) -> Result<()> {
        let host = HostLimits::get();
        validate::check(resources, host)?;
        let rules = match resources.devices().as_deref() {
            Some(spec) if !spec.is_empty() => {
                let mut rules = devices::rules(spec)?;
                rules.extend_from_slice(created);
                if self.layout == Layout::V2 {
                    rules.splice(0..0, before.iter().copied());
                }
                Some(devices::with_defaults(&rules))
            }
            _ => None,
        };

        let mut rest = resources.clone();
        rest.set_devices(None).set_unified(None);
        if self.layout == Layout::V2 {
            drop_without_v2_file(&mut rest);
        }
        // Making the manager reads /proc twice: not for nothing to set
        // (runc's default spec has only device rules).
        if rest != LinuxResources::default() {
            self.manager()?
                .set(&rest)
                .map_err(|e| self.error_from("apply resources", e))?;
        }

        if let Some(idle) = resources.cpu().as_ref().and_then(|c| c.idle()) {
            self.write_file("cpu.idle", &idle.to_string())?;
        }
        // v1 only (as crun): cgroup v2 accounts TCP memory with the rest.
        let tcp = resources.memory().as_ref().and_then(|m| m.kernel_tcp());
        if let Some(limit) = tcp.filter(|_| self.layout != Layout::V2) {
            self.write_file("memory.kmem.tcp.limit_in_bytes", &limit.to_string())?;
        }
        if let Some(rules) = rules {
            self.apply_devices(&rules)?;
        }
        for (key, value) in resources.unified().iter().flatten() {
            let dir = self
                .cgroup2_dir()
                .ok_or_else(|| self.error("no cgroup2 directory".into()))?;
            let path = dir.join(key);
            std::fs::write(&path, value)
                .map_err(|e| Error::io("write unified resource", &path, e))?;
        }
        Ok(())
    }

    /// Writes `value` to `file` in the first of the cgroup's directories that
    /// has it; a missing file means the kernel lacks the feature.
    fn write_file(&self, file: &str, value: &str) -> Result<()> {
        let dir = self.dir_with(file).ok_or_else(|| {
            Error::Unsupported(format!("{file}: this kernel's cgroups have no such file"))
        })?;
        let path = dir.join(file);
        std::fs::write(&path, value).map_err(|e| Error::io("write", &path, e))
    }

    /// Device rules: written to the v1 controller, or compiled into an eBPF
    /// filter that replaces the cgroup's previous one on v2.
    fn apply_devices(&self, rules: &[DeviceRule]) -> Result<()> {
        if self.layout != Layout::V2 {
            let dir = self
                .dir_with("devices.allow")
                .ok_or_else(|| self.error("the devices controller is not mounted".into()))?;
            return devices::write_v1(dir, rules);
        }
        let dir = &self.dirs[0];
        let fd: OwnedFd = nix::fcntl::open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open cgroup directory", dir, e.into()))?;
        attach_device_filter(&fd, rules).map_err(|e| Error::io("attach eBPF device filter", dir, e))
    }

    /// Freezes every process in the cgroup and waits until the kernel
    /// reports the whole cgroup frozen. v1's `freezer.state` has no
    /// notification: it is re-read with a short backoff, as runc does,
    /// for at most about two seconds.
    pub async fn freeze(&self) -> Result<()> {
        self.manager()?
            .freeze(FreezerState::Frozen)
            .map_err(|e| self.error_from("freeze", e))?;
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

    /// Sends `signal` to every process in the cgroup and its child cgroups,
    /// with none able to fork away meanwhile. `SIGKILL` on a v2 kernel with
    /// `cgroup.kill` (5.14+) is one atomic write. Otherwise the cgroup is
    /// frozen, every process signalled, and the cgroup thawed again, unless
    /// it was frozen (paused) before and the signal is not `SIGKILL`: a
    /// frozen process takes a `SIGKILL` only once thawed. Without a freezer
    /// the processes are signalled as they are listed.
    pub async fn kill_all(&self, signal: crate::Signal) -> Result<()> {
        use crate::Signal;
        if signal == Signal::KILL && self.layout == Layout::V2 {
            let kill = self.dirs[0].join("cgroup.kill");
            if kill.exists() {
                return std::fs::write(&kill, "1").map_err(|e| Error::io("write", &kill, e));
            }
        }
        let was_frozen = self.frozen().unwrap_or(false);
        let froze = !was_frozen && self.freeze().await.is_ok();
        let signalled = self.signal_each(signal);
        if froze || (was_frozen && signal == Signal::KILL) {
            self.thaw()?;
        }
        signalled
    }

    /// Sends `signal` to each process [`Cgroup::pids`] lists.
    fn signal_each(&self, signal: crate::Signal) -> Result<()> {
        for pid in self.pids()? {
            match crate::exec::sys::kill(pid, signal.number()) {
                Ok(()) | Err(libc::ESRCH) => {}
                Err(e) => return Err(Error::sys("kill", std::io::Error::from_raw_os_error(e))),
            }
        }
        Ok(())
    }

    /// Whether the whole cgroup is frozen.
    pub(crate) fn frozen(&self) -> Result<bool> {
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
            .map_err(|e| self.error_from("thaw", e))
    }
}

/// Loads the eBPF program for `rules` and makes it the device filter of the
/// cgroup directory `cgroup`.
pub(crate) fn attach_device_filter(cgroup: &OwnedFd, rules: &[DeviceRule]) -> std::io::Result<()> {
    let prog = bpf::load_device_filter(&device_program::compile(rules))?;
    bpf::replace(cgroup, &prog)
}

/// Removes from `r` what cgroup v2 has no file for, as runc and crun ignore
/// it there: swappiness, disabling the OOM killer, and the v1 network
/// controllers. (Realtime CPU limits are refused by the checks instead.)
fn drop_without_v2_file(r: &mut LinuxResources) {
    if let Some(mut m) = *r.memory() {
        if m.swappiness().is_some() || m.disable_oom_killer() == Some(true) {
            tracing::warn!(
                "cgroup v2 has no memory swappiness or OOM-killer switch; ignoring them"
            );
        }
        m.set_swappiness(None).set_disable_oom_killer(None);
        r.set_memory(Some(m));
    }
    if r.network().is_some() {
        tracing::warn!(
            "cgroup v2 has no net_cls/net_prio controllers; ignoring linux.resources.network"
        );
        r.set_network(None);
    }
}
