//! Device access rules: the v1 `devices` controller and the v2 eBPF program.
//!
//! The spec's `linux.resources.devices` is an ordered list of allow and deny
//! rules; on v1 the kernel keeps them as an exception list, on v2 there is no
//! controller and a `BPF_PROG_TYPE_CGROUP_DEVICE` program decides instead (as
//! runc and crun do). Both are driven from the same [`DeviceRule`]s, checked
//! once by [`rules`], with the same meaning: the *last* rule that matches a
//! request decides it, and a request no rule matches is allowed (a cgroup
//! starts out allowing every device; a spec that wants an allow-list starts
//! with a rule denying all devices).
//!
//! A rule matches a request of type `t` for `major:minor` with access `acc`
//! when its type is `a` or `t`, its numbers are wildcards or equal, and
//! - for an allow rule, `acc` is a subset of the rule's access (the kernel
//!   never combines two exceptions to grant one request);
//! - for a deny rule, `acc` shares a bit with the rule's access.

use std::fmt;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// The largest major number of a `dev_t` (12 bits).
const MAX_MAJOR: i64 = (1 << 12) - 1;
/// The largest minor number of a `dev_t` (20 bits).
const MAX_MINOR: i64 = (1 << 20) - 1;

/// Which devices a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Block and character devices (`a`).
    All,
    /// Block devices (`b`).
    Block,
    /// Character devices (`c`).
    Char,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::All => 'a',
            Kind::Block => 'b',
            Kind::Char => 'c',
        }
    }
}

/// `mknod`, the `BPF_DEVCG_ACC_MKNOD` bit.
pub(crate) const MKNOD: u8 = 1;
/// Read, `BPF_DEVCG_ACC_READ`.
pub(crate) const READ: u8 = 2;
/// Write, `BPF_DEVCG_ACC_WRITE`.
pub(crate) const WRITE: u8 = 4;
/// Every access.
pub(crate) const ALL_ACCESS: u8 = MKNOD | READ | WRITE;

/// One checked device rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceRule {
    /// Whether a match allows (or denies) the access.
    pub allow: bool,
    /// The device type.
    pub kind: Kind,
    /// The major number; `None` matches any.
    pub major: Option<u32>,
    /// The minor number; `None` matches any.
    pub minor: Option<u32>,
    /// The access bits ([`READ`], [`WRITE`], [`MKNOD`]), never empty.
    pub access: u8,
}

impl DeviceRule {
    /// Whether this rule decides a request for `kind` (`Block` or `Char`)
    /// `major:minor` with `access` bits.
    #[cfg(test)]
    pub fn matches(&self, kind: Kind, major: u32, minor: u32, access: u8) -> bool {
        (self.kind == Kind::All || self.kind == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
            && if self.allow {
                access & !self.access == 0
            } else {
                access & self.access != 0
            }
    }

    /// Whether the rule denies every access to every device.
    fn denies_everything(&self) -> bool {
        !self.allow
            && self.kind == Kind::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ALL_ACCESS
    }
}

/// The v1 form, as written to `devices.allow` or `devices.deny`: `c 1:3 rwm`.
impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        write!(
            f,
            "{} {}:{} ",
            self.kind.letter(),
            num(self.major),
            num(self.minor)
        )?;
        for (bit, c) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
            if self.access & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Whether `rules` allow `access` to the `kind` device `major:minor`: the
/// last matching rule decides; no match allows.
#[cfg(test)]
pub(crate) fn allowed(
    rules: &[DeviceRule],
    kind: Kind,
    major: u32,
    minor: u32,
    access: u8,
) -> bool {
    rules
        .iter()
        .rev()
        .find(|r| r.matches(kind, major, minor, access))
        .is_none_or(|r| r.allow)
}

/// Checks the spec's rules (reported as `linux.resources.devices[i]`) and
/// converts them. Types `u` and `p` name devices, not cgroup rules; access
/// is made of `r`, `w` and `m` (absent means all three); a major or minor of
/// `-1` or absent is a wildcard.
pub(crate) fn rules(spec: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>> {
    spec.iter()
        .enumerate()
        .map(|(i, r)| {
            rule(r).map_err(|(name, reason)| Error::InvalidSpec {
                field: format!("linux.resources.devices[{i}].{name}"),
                reason,
            })
        })
        .collect()
}

/// One rule; the error names the rule's bad field and says why.
fn rule(r: &LinuxDeviceCgroup) -> std::result::Result<DeviceRule, (&'static str, String)> {
    let kind = match r.typ() {
        None | Some(LinuxDeviceType::A) => Kind::All,
        Some(LinuxDeviceType::B) => Kind::Block,
        Some(LinuxDeviceType::C) => Kind::Char,
        Some(t) => {
            return Err((
                "type",
                format!(
                    "device type {:?} is not one of a rule's types: \"a\", \"b\" or \"c\"",
                    t.as_str()
                ),
            ))
        }
    };
    let number = |n: Option<i64>, name: &'static str, max: i64| match n {
        None | Some(-1) => Ok(None),
        Some(n) if (0..=max).contains(&n) => Ok(Some(n as u32)),
        Some(n) => Err((
            name,
            format!("{n} is not a device {name} number (0..={max}, or -1 for any)"),
        )),
    };
    let major = number(r.major(), "major", MAX_MAJOR)?;
    let minor = number(r.minor(), "minor", MAX_MINOR)?;
    let access = match r.access().as_deref() {
        None => ALL_ACCESS,
        Some(s) => {
            let mut bits = 0;
            for c in s.chars() {
                bits |= match c {
                    'r' => READ,
                    'w' => WRITE,
                    'm' => MKNOD,
                    _ => return Err(("access", format!("{s:?}: {c:?} is not one of r, w, m"))),
                };
            }
            if bits == 0 {
                return Err((
                    "access",
                    "empty: give some of r, w, m (or leave it out for all)".into(),
                ));
            }
            bits
        }
    };
    Ok(DeviceRule {
        allow: r.allow(),
        kind,
        major,
        minor,
        access,
    })
}

/// `rules` with [`default_rules`] inserted after the last rule that denies
/// every device (none without one: nothing to undo), as runc adds them: a
/// spec that denies all devices still leaves `/dev/null` and the terminal
/// usable, and a later rule of the spec that denies one of them still wins.
pub(crate) fn with_defaults(rules: &[DeviceRule]) -> Vec<DeviceRule> {
    let mut out = rules.to_vec();
    if let Some(i) = rules.iter().rposition(DeviceRule::denies_everything) {
        out.splice(i + 1..i + 1, default_rules());
    }
    out
}

/// Character devices a container may always create and use: the OCI default
/// devices, `/dev/console`, `/dev/ptmx` and the pseudo-terminals.
fn default_rules() -> impl Iterator<Item = DeviceRule> {
    [
        (1, Some(3)), // null
        (1, Some(5)), // zero
        (1, Some(7)), // full
        (1, Some(8)), // random
        (1, Some(9)), // urandom
        (5, Some(0)), // tty
        (5, Some(1)), // console
        (5, Some(2)), // ptmx
        (136, None),  // pts/*
    ]
    .into_iter()
    .map(|(major, minor)| DeviceRule {
        allow: true,
        kind: Kind::Char,
        major: Some(major),
        minor,
        access: ALL_ACCESS,
    })
}

/// An allow rule (`rwm`) for each device the spec creates, as runc adds
/// them: a device the spec asks to create must also be usable.
pub(crate) fn for_created(devices: &[oci_spec::runtime::LinuxDevice]) -> Vec<DeviceRule> {
    devices
        .iter()
        .filter_map(|d| {
            let kind = match d.typ() {
                LinuxDeviceType::B => Kind::Block,
                LinuxDeviceType::C | LinuxDeviceType::U => Kind::Char,
                // FIFOs and `a` are not devices the controller checks.
                LinuxDeviceType::P | LinuxDeviceType::A => return None,
            };
            Some(DeviceRule {
                allow: true,
                kind,
                major: u32::try_from(d.major()).ok(),
                minor: u32::try_from(d.minor()).ok(),
                access: ALL_ACCESS,
            })
        })
        .collect()
}

/// Writes `rules` in order to the v1 `devices` cgroup directory `dir`.
pub(crate) fn write_v1(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    for r in rules {
        let file = dir.join(if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        });
        std::fs::write(&file, r.to_string())
            .map_err(|e| Error::io("write device rule", &file, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    fn spec_rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
        access: Option<&str>,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default().allow(allow).typ(typ);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        if let Some(a) = access {
            b = b.access(a);
        }
        b.build().unwrap()
    }

    #[test]
    fn v1_lines_use_wildcards_and_rwm_order() {
        let r = rules(&[
            spec_rule(false, LinuxDeviceType::A, None, None, Some("rwm")),
            spec_rule(true, LinuxDeviceType::C, Some(1), Some(-1), Some("mwr")),
            spec_rule(true, LinuxDeviceType::B, Some(8), Some(0), None),
        ])
        .unwrap();
        let lines: Vec<String> = r.iter().map(ToString::to_string).collect();
        assert_eq!(lines, ["a *:* rwm", "c 1:* rwm", "b 8:0 rwm"]);
    }

    #[test]
    fn bad_rules_name_the_field() {
        let cases = [
            (
                spec_rule(true, LinuxDeviceType::U, None, None, None),
                "linux.resources.devices[0].type",
            ),
            (
                spec_rule(true, LinuxDeviceType::C, Some(-2), None, None),
                "linux.resources.devices[0].major",
            ),
            (
                spec_rule(true, LinuxDeviceType::C, Some(1), Some(1 << 20), None),
                "linux.resources.devices[0].minor",
            ),
            (
                spec_rule(true, LinuxDeviceType::C, None, None, Some("rx")),
                "linux.resources.devices[0].access",
            ),
            (
                spec_rule(true, LinuxDeviceType::C, None, None, Some("")),
                "linux.resources.devices[0].access",
            ),
        ];
        for (r, want) in cases {
            match rules(&[r]) {
                Err(Error::InvalidSpec { field, reason }) => {
                    assert_eq!(field, want);
                    assert!(!reason.is_empty());
                }
                other => panic!("{want}: {other:?}"),
            }
        }
    }

    #[test]
    fn last_match_decides_and_partial_access_does_not_match_allow() {
        let r = with_defaults(
            &rules(&[
                spec_rule(false, LinuxDeviceType::A, None, None, None),
                spec_rule(true, LinuxDeviceType::C, Some(10), Some(200), Some("r")),
                spec_rule(false, LinuxDeviceType::C, Some(1), Some(7), Some("w")),
            ])
            .unwrap(),
        );
        assert!(allowed(&r, Kind::Char, 1, 3, READ | WRITE)); // default null
        assert!(allowed(&r, Kind::Char, 1, 7, READ)); // full: only w denied
        assert!(!allowed(&r, Kind::Char, 1, 7, READ | WRITE));
        assert!(allowed(&r, Kind::Char, 10, 200, READ));
        assert!(!allowed(&r, Kind::Char, 10, 200, READ | WRITE));
        assert!(!allowed(&r, Kind::Block, 8, 0, READ));
        assert!(allowed(&[], Kind::Block, 8, 0, READ)); // no rules: all allowed
    }
}
