//! Process attributes beyond ids and capabilities: `linux.personality`,
//! `linux.memoryPolicy`, `linux.timeOffsets`, `process.scheduler`,
//! `process.ioPriority` and the LSM labels
//! (`process.apparmorProfile`, `process.selinuxLabel`, `linux.mountLabel`).

use oci_spec::runtime::{
    IOPriorityClass, LinuxMemoryPolicy, LinuxPersonality, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, LinuxTimeOffset, MemoryPolicyFlagType,
    MemoryPolicyModeType, Process,
};

use super::{CPath, SchedAttr, Step};
use crate::error::{Error, Result};
use crate::host::Host;
use crate::security::lsm;

/// `personality(2)` of `linux.personality`.
pub(super) fn personality(p: &LinuxPersonality) -> Result<Step> {
    const PER_LINUX: u64 = 0x0000;
    const PER_LINUX32: u64 = 0x0008;
    if let Some(flag) = p.flags().iter().flatten().next() {
        return Err(Error::invalid(
            "linux.personality.flags",
            format!("{flag:?}: no personality flag is supported (runc takes none either)"),
        ));
    }
    Ok(Step::Personality {
        persona: match p.domain() {
            LinuxPersonalityDomain::PerLinux => PER_LINUX,
            LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
        },
    })
}

/// `process.ioPriority` as an `ioprio_set` value.
pub(super) fn io_priority(process: &Process) -> Result<Option<Step>> {
    let Some(io) = process.io_priority() else {
        return Ok(None);
    };
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let level = io.priority();
    if !(0..=7).contains(&level) {
        return Err(Error::invalid(
            "process.ioPriority.priority",
            format!("{level} is outside 0..=7"),
        ));
    }
    Ok(Some(Step::IoPriority {
        value: (class << 13) | level as u32,
    }))
}

/// `process.scheduler` as a `sched_attr`, checked as the kernel would.
pub(super) fn scheduler(process: &Process) -> Result<Option<Step>> {
    let Some(s) = process.scheduler() else {
        return Ok(None);
    };
    const F: &str = "process.scheduler";
    use LinuxSchedulerPolicy::*;
    let policy = match *s.policy() {
        SchedOther => 0,
        SchedFifo => 1,
        SchedRr => 2,
        SchedBatch => 3,
        SchedIso => {
            return Err(Error::invalid(
                format!("{F}.policy"),
                "SCHED_ISO is reserved: Linux does not implement it",
            ))
        }
        SchedIdle => 5,
        SchedDeadline => 6,
    };
    let realtime = matches!(*s.policy(), SchedFifo | SchedRr);
    let priority = s.priority().unwrap_or(0);
    if realtime && !(1..=99).contains(&priority) {
        return Err(Error::invalid(
            format!("{F}.priority"),
            format!("{priority}: {} needs a priority in 1..=99", s.policy()),
        ));
    }
    if !realtime && priority != 0 {
        return Err(Error::invalid(
            format!("{F}.priority"),
            format!(
                "{} takes no priority (only SCHED_FIFO and SCHED_RR do)",
                s.policy()
            ),
        ));
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(Error::invalid(
            format!("{F}.nice"),
            format!("{nice} is outside -20..=19"),
        ));
    }
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if *s.policy() == SchedDeadline {
        let period_or_deadline = if period == 0 { deadline } else { period };
        if runtime == 0 || runtime > deadline || deadline > period_or_deadline {
            return Err(Error::invalid(
                F,
                format!(
                    "SCHED_DEADLINE needs 0 < runtime <= deadline <= period \
                     (got {runtime}, {deadline}, {period})"
                ),
            ));
        }
    } else if runtime != 0 || deadline != 0 || period != 0 {
        return Err(Error::invalid(
            F,
            "runtime, deadline and period are for SCHED_DEADLINE only",
        ));
    }
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin
            | LinuxSchedulerFlag::SchedFlagUtilClampMax => {
                return Err(Error::invalid(
                    format!("{F}.flags"),
                    format!("{f}: the OCI spec carries no clamp value to set"),
                ))
            }
        };
    }
    Ok(Some(Step::Scheduler(SchedAttr {
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime,
        deadline,
        period,
    })))
}

fn absent(field: &str, lsm: &str) -> Error {
    Error::Unsupported(format!(
        "{field} asks for {lsm}, which is not enabled on this host"
    ))
}

/// The label steps of `process.apparmorProfile` and `process.selinuxLabel`;
/// an [`Error::Unsupported`] naming the field where the host lacks the LSM.
pub(super) fn labels(process: &Process, host: &Host) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let attr = |path: &str, value: String, field: &str| -> Result<Step> {
        Ok(Step::ProcAttr {
            path: CPath::new(path).ok_or_else(|| Error::invalid(field, "NUL byte"))?,
            value: CPath::new(value).ok_or_else(|| Error::invalid(field, "contains a NUL byte"))?,
        })
    };
    if let Some(profile) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        const FIELD: &str = "process.apparmorProfile";
        if !host.lsms.apparmor {
            return Err(absent(FIELD, "AppArmor"));
        }
        steps.push(attr(
            lsm::apparmor_exec_attr(),
            format!("exec {profile}"),
            FIELD,
        )?);
    }
    if let Some(label) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        const FIELD: &str = "process.selinuxLabel";
        if !host.lsms.selinux {
            return Err(absent(FIELD, "SELinux"));
        }
        steps.push(attr(lsm::SELINUX_EXEC_ATTR, label.to_string(), FIELD)?);
    }
    Ok(steps)
}

/// The `context=` mount option of `linux.mountLabel`, for the filesystems
/// the container mounts (not binds, whose files keep their labels).
pub(super) fn mount_label(label: Option<&str>, host: &Host) -> Result<Option<String>> {
    match label.filter(|l| !l.is_empty()) {
        None => Ok(None),
        Some(_) if !host.lsms.selinux => Err(absent("linux.mountLabel", "SELinux")),
        // Quoted, as labels have commas (`...:s0:c1,c2`).
        Some(l) if l.contains('"') => Err(Error::invalid(
            "linux.mountLabel",
            format!("{l:?} cannot be quoted as a mount option"),
        )),
        Some(l) => Ok(Some(format!("context=\"{l}\""))),
    }
}

/// `set_mempolicy(2)` of `linux.memoryPolicy`: the mode with its flags,
/// and the node mask, checked against the nodes this host has online.
pub(super) fn memory_policy(
    p: &LinuxMemoryPolicy,
    online: &std::collections::BTreeSet<u32>,
) -> Result<Step> {
    const F: &str = "linux.memoryPolicy";
    let mode = match p.mode() {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    };
    let mut flags = 0u32;
    for f in p.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    let nodes = match p.nodes().as_deref().map(str::trim) {
        None | Some("") => Default::default(),
        Some(list) => crate::cgroups::parse_node_list(list)
            .map_err(|e| Error::invalid(format!("{F}.nodes"), e))?,
    };
    // The kernel's own rules (mm/mempolicy.c), named here.
    match (mode, nodes.is_empty()) {
        (0 | 4, false) => {
            return Err(Error::invalid(
                format!("{F}.nodes"),
                "MPOL_DEFAULT and MPOL_LOCAL take no nodes",
            ))
        }
        (1..=3 | 5 | 6, true) if mode != 1 => {
            return Err(Error::invalid(
                format!("{F}.nodes"),
                "missing: this mode needs at least one node",
            ))
        }
        _ => {}
    }
    if flags & (1 << 14 | 1 << 15) == (1 << 14 | 1 << 15) {
        return Err(Error::invalid(
            format!("{F}.flags"),
            "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other",
        ));
    }
    if flags & (1 << 14 | 1 << 15) == 0 {
        if let Some(n) = nodes.iter().find(|n| !online.contains(n)) {
            return Err(Error::invalid(
                format!("{F}.nodes"),
                format!("node {n} is not online on this host"),
            ));
        }
    }
    let last = nodes.iter().next_back().copied().unwrap_or(0);
    if last >= 1024 {
        return Err(Error::invalid(
            format!("{F}.nodes"),
            format!("node {last} is beyond the kernel's limit (1023)"),
        ));
    }
    let mut mask = vec![
        0u64;
        if nodes.is_empty() {
            0
        } else {
            last as usize / 64 + 1
        }
    ];
    for n in nodes {
        mask[n as usize / 64] |= 1 << (n % 64);
    }
    Ok(Step::MemoryPolicy {
        mode: mode | flags,
        nodes: mask,
    })
}

/// `linux.timeOffsets` as `/proc/<pid>/timens_offsets` wants them:
/// `monotonic <secs> <nanosecs>` and `boottime ...`, one per line.
pub(super) fn time_offsets(
    offsets: &std::collections::HashMap<String, LinuxTimeOffset>,
) -> Result<String> {
    let mut out = String::new();
    let mut clocks: Vec<_> = offsets.iter().collect();
    clocks.sort_by(|a, b| a.0.cmp(b.0));
    for (clock, o) in clocks {
        let field = format!("linux.timeOffsets.{clock}");
        if clock != "monotonic" && clock != "boottime" {
            return Err(Error::invalid(
                field,
                "only the monotonic and boottime clocks have offsets",
            ));
        }
        let nanos = o.nanosecs().unwrap_or(0);
        if nanos >= 1_000_000_000 {
            return Err(Error::invalid(
                format!("{field}.nanosecs"),
                format!("{nanos} is not below one second"),
            ));
        }
        out.push_str(&format!("{clock} {} {nanos}\n", o.secs().unwrap_or(0)));
    }
    Ok(out)
}
