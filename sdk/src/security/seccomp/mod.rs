//! `linux.seccomp`: the filter compiled to classic BPF in the parent by
//! berth's own compiler (no libseccomp), and the hand-over of a
//! user-notification descriptor to the listener the spec names.
//!
//! - [`compiler`]: profile to program (architecture check, binary search
//!   over call numbers, argument comparisons, runc's `-ENOSYS` stub);
//! - [`arch`] and `table`: the architectures and their call numbers,
//!   generated from libseccomp's tables;
//! - [`bpf`]: the instruction encoding, the program builder and an
//!   interpreter the tests run programs with.
//!
//! The executor loads the program with the raw `seccomp(2)` call.

pub mod arch;
pub mod bpf;
mod cache;
pub mod compiler;
#[rustfmt::skip]
mod table;

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};
use serde::Serialize;

use crate::error::{Error, Result};
use arch::ScArch;
use compiler::{ret, Cond, Op, Profile, Rule};

/// `SECCOMP_FILTER_FLAG_TSYNC`.
pub const FLAG_TSYNC: u32 = 1;
/// `SECCOMP_FILTER_FLAG_LOG`.
pub const FLAG_LOG: u32 = 2;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`.
pub const FLAG_SPEC_ALLOW: u32 = 4;
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`.
pub const FLAG_NEW_LISTENER: u32 = 8;
/// `SECCOMP_FILTER_FLAG_TSYNC_ESRCH`.
pub const FLAG_TSYNC_ESRCH: u32 = 16;
/// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`.
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

/// System calls the executor makes between loading a filter with a
/// listener and the parent's acknowledgement that the listener has the
/// descriptor (report it, wait, close it, or exit on failure). Sending
/// them to the listener would deadlock the container.
const NEEDED_AFTER_LOAD: [&str; 5] = ["sendmsg", "read", "close", "exit_group", "exit"];

/// A compiled filter, ready for `seccomp(SECCOMP_SET_MODE_FILTER)`.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Filter {
    /// The BPF program: `struct sock_filter` entries, 8 bytes each, in the
    /// kernel's byte order.
    #[serde(skip)]
    pub program: Vec<u8>,
    /// `SECCOMP_FILTER_FLAG_*` bits for seccomp(2).
    #[serde(serialize_with = "flag_names")]
    pub flags: u32,
    /// Where to send the user-notification descriptor
    /// (`linux.seccomp.listenerPath`); the filter is then loaded with
    /// `SECCOMP_FILTER_FLAG_NEW_LISTENER`.
    pub listener: Option<PathBuf>,
    /// `linux.seccomp.listenerMetadata`, passed on to the listener.
    pub metadata: Option<String>,
    /// What the filter does, in a line (for snapshots and logs).
    pub summary: String,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &(self.program.len() / 8))
            .field("flags", &flag_string(self.flags))
            .field("listener", &self.listener)
            .field("summary", &self.summary)
            .finish()
    }
}

fn flag_string(flags: u32) -> String {
    const NAMES: [(u32, &str); 6] = [
        (FLAG_TSYNC, "TSYNC"),
        (FLAG_LOG, "LOG"),
        (FLAG_SPEC_ALLOW, "SPEC_ALLOW"),
        (FLAG_NEW_LISTENER, "NEW_LISTENER"),
        (FLAG_TSYNC_ESRCH, "TSYNC_ESRCH"),
        (FLAG_WAIT_KILLABLE_RECV, "WAIT_KILLABLE_RECV"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "0".into()
    } else {
        names.join("|")
    }
}

fn flag_names<S: serde::Serializer>(flags: &u32, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&flag_string(*flags))
}

/// The `SECCOMP_RET_*` value of an OCI action; `errno` is the spec's
/// `errnoRet` (`EPERM` when unset, as runc has it, for errno and trace).
fn action(a: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<u32> {
    use LinuxSeccompAction::*;
    let errno_ret = || -> Result<u32> {
        let e = errno.unwrap_or(libc::EPERM as u32);
        if e < 4096 {
            Ok(e)
        } else {
            Err(Error::invalid(
                field,
                format!("errnoRet {e} is not an errno (0..4096)"),
            ))
        }
    };
    if errno.is_some() && !matches!(a, ScmpActErrno | ScmpActTrace) {
        return Err(Error::invalid(
            field,
            format!("errnoRet is only meaningful with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {a}"),
        ));
    }
    Ok(match a {
        ScmpActKill | ScmpActKillThread => ret::KILL_THREAD,
        ScmpActKillProcess => ret::KILL_PROCESS,
        ScmpActTrap => ret::TRAP,
        ScmpActErrno => ret::ERRNO | errno_ret()?,
        ScmpActTrace => ret::TRACE | errno_ret()?,
        ScmpActLog => ret::LOG,
        ScmpActAllow => ret::ALLOW,
        ScmpActNotify => ret::USER_NOTIF,
    })
}

/// One argument condition. For `SCMP_CMP_MASKED_EQ` the spec's `value` is
/// the mask and `valueTwo` the datum compared with `arg & mask`, as runc
/// reads them.
fn condition(a: &LinuxSeccompArg, field: &str) -> Result<Cond> {
    if a.index() > 5 {
        return Err(Error::invalid(
            format!("{field}.index"),
            format!("{} is not an argument index (0..=5)", a.index()),
        ));
    }
    let two = a.value_two().unwrap_or(0);
    let (op, datum) = match a.op() {
        LinuxSeccompOperator::ScmpCmpMaskedEq => (Op::MaskedEq { mask: a.value() }, two),
        other => {
            if two != 0 {
                return Err(Error::invalid(
                    format!("{field}.valueTwo"),
                    format!("only SCMP_CMP_MASKED_EQ takes a second value, not {other}"),
                ));
            }
            let op = match other {
                LinuxSeccompOperator::ScmpCmpNe => Op::Ne,
                LinuxSeccompOperator::ScmpCmpLt => Op::Lt,
                LinuxSeccompOperator::ScmpCmpLe => Op::Le,
                LinuxSeccompOperator::ScmpCmpEq => Op::Eq,
                LinuxSeccompOperator::ScmpCmpGe => Op::Ge,
                LinuxSeccompOperator::ScmpCmpGt => Op::Gt,
                LinuxSeccompOperator::ScmpCmpMaskedEq => unreachable!("matched above"),
            };
            (op, a.value())
        }
    };
    Ok(Cond {
        index: a.index() as u8,
        op,
        datum,
    })
}

/// Whether `name` could be a system call's name on some architecture, now
/// or later (lower-case letters, digits, underscores).
fn well_formed(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 64
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Compiles `linux.seccomp` to BPF. Every architecture, action and
/// argument is checked here; an error names the field
/// (`linux.seccomp.syscalls[3].args[0].index`).
///
/// A well-formed name that no table knows (a call newer than the tables,
/// or a typo) is skipped with a warning, as runc and crun skip names
/// libseccomp does not know; a name that cannot be a system call's (empty,
/// upper case, punctuation) is an error naming it. A name known on some
/// architectures and not on others is skipped on the others, as libseccomp
/// does.
pub fn compile(spec: &LinuxSeccomp) -> Result<Filter> {
    cache::get_or_compile(spec, compile_uncached)
}

/// [`compile`] without the cache.
fn compile_uncached(spec: &LinuxSeccomp) -> Result<Filter> {
    const F: &str = "linux.seccomp";
    let default_field = format!("{F}.defaultAction");
    if spec.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(Error::invalid(
            default_field,
            "SCMP_ACT_NOTIFY cannot be the default action (the runtime's own calls would wait on the listener)",
        ));
    }
    let default = action(
        spec.default_action(),
        spec.default_errno_ret(),
        &format!("{F}.defaultErrnoRet"),
    )?;
    let mut arches = vec![ScArch::native()];
    let mut listed = Vec::new();
    for (i, a) in spec.architectures().iter().flatten().enumerate() {
        let sa = ScArch::of(*a).ok_or_else(|| {
            Error::invalid(
                format!("{F}.architectures[{i}]"),
                format!(
                    "berth has no system call table for {a} (it has x86_64, x86, x32, aarch64, arm, riscv64)"
                ),
            )
        })?;
        if !arches.contains(&sa) {
            arches.push(sa);
        }
        if !listed.contains(&sa) {
            listed.push(sa);
        }
    }

    let mut flags = 0;
    for f in spec.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        };
    }

    let mut notifies = false;
    let mut rules = Vec::new();
    let mut named = Vec::new();
    for (i, sc) in spec.syscalls().iter().flatten().enumerate() {
        // Field names are formatted only for an error: a profile has hundreds of names.
        let field = || format!("{F}.syscalls[{i}]");
        if sc.names().is_empty() {
            return Err(Error::invalid(format!("{}.names", field()), "empty"));
        }
        let act = action(
            sc.action(),
            sc.errno_ret(),
            &format!("{}.errnoRet", field()),
        )?;
        let conds = sc
            .args()
            .iter()
            .flatten()
            .enumerate()
            .map(|(j, a)| condition(a, &format!("{}.args[{j}]", field())))
            .collect::<Result<Vec<_>>>()?;
        // The conditions of a rule all hold, one per argument. A rule
        // naming an argument twice means "any of these values" (how
        // Docker's profile lists personalities), as runc has it: one rule
        // per condition.
        let mut indices: Vec<u8> = conds.iter().map(|c| c.index).collect();
        indices.sort_unstable();
        let repeated = indices.windows(2).any(|w| w[0] == w[1]);
        let alternatives: Vec<Vec<Cond>> = if repeated {
            conds.iter().map(|c| vec![*c]).collect()
        } else {
            vec![conds]
        };
        if sc.action() == LinuxSeccompAction::ScmpActNotify {
            notifies = true;
        }
        for (j, name) in sc.names().iter().enumerate() {
            let name_field = || format!("{}.names[{j}]", field());
            if !well_formed(name) {
                return Err(Error::invalid(
                    name_field(),
                    format!("{name:?} is not a system call name"),
                ));
            }
            if sc.action() == LinuxSeccompAction::ScmpActNotify
                && NEEDED_AFTER_LOAD.contains(&name.as_str())
            {
                return Err(Error::invalid(
                    name_field(),
                    format!("SCMP_ACT_NOTIFY on {name} would block berth's own set-up before the listener has the descriptor"),
                ));
            }
            let Some(idx) = arch::name_index(name) else {
                tracing::warn!(
                    "{}: unknown system call {name:?} ignored (tables of {})",
                    name_field(),
                    arch::TABLE_SOURCE
                );
                continue;
            };
            named.push(idx);
            // A rule repeating the default action changes nothing (and
            // libseccomp refuses it, so runc leaves it out too).
            if act == default {
                continue;
            }
            for conds in &alternatives {
                rules.push(Rule {
                    name: idx,
                    action: act,
                    conds: conds.clone(),
                });
            }
        }
    }

    let listener = spec.listener_path().clone();
    match (&listener, notifies) {
        (None, true) => {
            return Err(Error::invalid(
                format!("{F}.listenerPath"),
                "missing: SCMP_ACT_NOTIFY needs a listener",
            ))
        }
        (Some(p), _) if !p.is_absolute() => {
            return Err(Error::invalid(
                format!("{F}.listenerPath"),
                format!("{} is not absolute", p.display()),
            ))
        }
        _ => {}
    }
    if flags & FLAG_WAIT_KILLABLE_RECV != 0 && listener.is_none() {
        return Err(Error::invalid(
            format!("{F}.flags"),
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a listener (listenerPath)",
        ));
    }
    if listener.is_some() {
        flags |= FLAG_NEW_LISTENER;
        // TSYNC and NEW_LISTENER both want the return value; with
        // TSYNC_ESRCH a thread that cannot sync is an error instead.
        if flags & FLAG_TSYNC != 0 {
            flags |= FLAG_TSYNC_ESRCH;
        }
    }

    // runc's -ENOSYS stub, where runc adds it.
    let permissive = matches!(
        spec.default_action(),
        LinuxSeccompAction::ScmpActAllow
            | LinuxSeccompAction::ScmpActLog
            | LinuxSeccompAction::ScmpActTrace
    );
    let enosys = (!permissive && spec.default_errno_ret() != Some(libc::ENOSYS as u32))
        .then_some((listed, named));
    let insns = compiler::compile(&Profile {
        default,
        arches,
        rules,
        enosys,
    });
    if insns.len() > MAX_INSNS {
        return Err(Error::invalid(
            F,
            format!(
                "the filter takes {} instructions, more than the kernel's {MAX_INSNS}",
                insns.len()
            ),
        ));
    }
    Ok(Filter {
        summary: format!(
            "default {}{}, {} architecture(s), {} rule(s)",
            spec.default_action(),
            spec.default_errno_ret()
                .map(|e| format!("({e})"))
                .unwrap_or_default(),
            spec.architectures().as_ref().map_or(0, Vec::len),
            spec.syscalls().as_ref().map_or(0, Vec::len),
        ),
        program: bpf::encode(&insns),
        flags,
        listener,
        metadata: spec.listener_metadata().clone(),
    })
}

/// `BPF_MAXINSNS`: the longest program seccomp(2) loads.
const MAX_INSNS: usize = 4096;

/// Finds, in a `config.json` that did not parse, a `linux.seccomp` value
/// that is not one of the names the OCI spec allows (an unknown
/// architecture, flag, action or operator), so that the error names the
/// field rather than a line and column.
pub(crate) fn check_json(config: &serde_json::Value) -> Result<()> {
    use serde::de::DeserializeOwned;
    use serde_json::Value;
    fn one<T: DeserializeOwned>(v: &Value, field: String, what: &str) -> Result<()> {
        match serde_json::from_value::<T>(v.clone()) {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::invalid(
                field,
                format!("{v} is not a known seccomp {what}"),
            )),
        }
    }
    fn each<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = (usize, &'a Value)> {
        v.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
    }
    let Some(sc) = config.get("linux").and_then(|l| l.get("seccomp")) else {
        return Ok(());
    };
    const F: &str = "linux.seccomp";
    if let Some(a) = sc.get("defaultAction") {
        one::<LinuxSeccompAction>(a, format!("{F}.defaultAction"), "action")?;
    }
    for (i, a) in each(sc, "architectures") {
        one::<Arch>(a, format!("{F}.architectures[{i}]"), "architecture")?;
    }
    for (i, f) in each(sc, "flags") {
        one::<LinuxSeccompFilterFlag>(f, format!("{F}.flags[{i}]"), "filter flag")?;
    }
    for (i, call) in each(sc, "syscalls") {
        if let Some(a) = call.get("action") {
            one::<LinuxSeccompAction>(a, format!("{F}.syscalls[{i}].action"), "action")?;
        }
        for (j, arg) in each(call, "args") {
            if let Some(op) = arg.get("op") {
                let field = format!("{F}.syscalls[{i}].args[{j}].op");
                one::<LinuxSeccompOperator>(op, field, "operator")?;
            }
        }
    }
    Ok(())
}

/// What the listener receives with the descriptor: runc's
/// `ContainerProcessState` (`fds` names the descriptors passed).
#[derive(Debug, Serialize)]
pub struct ProcessState<'a> {
    /// The OCI version of `state`.
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    /// Names of the descriptors sent with the message, in order.
    pub fds: [&'a str; 1],
    /// The container process's pid (in the runtime's pid namespace).
    pub pid: i32,
    /// `linux.seccomp.listenerMetadata`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<&'a str>,
    /// The container's OCI state.
    pub state: &'a oci_spec::runtime::State,
}

/// Connects to `listener` and sends `state` as JSON with `fd` as
/// `SCM_RIGHTS`, as runc does for `listenerPath`.
#[cfg_attr(not(feature = "internals"), allow(dead_code))] // used by tests and the conformance oracle
pub fn send_to_listener(
    listener: &Path,
    state: &ProcessState<'_>,
    fd: BorrowedFd<'_>,
) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let stream = UnixStream::connect(listener)
        .map_err(|e| Error::io("connect to seccomp listener", listener, e))?;
    let json = serde_json::to_vec(state)
        .map_err(|e| Error::io("encode seccomp listener message", listener, e.into()))?;
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&json)],
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| Error::io("send to seccomp listener", listener, e.into()))?;
    if sent != json.len() {
        return Err(Error::io(
            "send to seccomp listener",
            listener,
            std::io::Error::from(std::io::ErrorKind::WriteZero),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSyscallBuilder};

    fn profile(syscalls: Vec<oci_spec::runtime::LinuxSyscall>) -> LinuxSeccomp {
        LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActAllow)
            .syscalls(syscalls)
            .build()
            .unwrap()
    }

    fn rule(names: &[&str], action: LinuxSeccompAction) -> LinuxSyscallBuilder {
        LinuxSyscallBuilder::default()
            .names(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .action(action)
    }

    fn field_of(e: Error) -> String {
        match e {
            Error::InvalidSpec { field, .. } => field,
            other => panic!("not InvalidSpec: {other}"),
        }
    }

    #[test]
    fn exports_a_program_of_whole_instructions() {
        let f = compile(&profile(vec![rule(
            &["getpid"],
            LinuxSeccompAction::ScmpActErrno,
        )
        .errno_ret(42u32)
        .build()
        .unwrap()]))
        .unwrap();
        assert!(f.program.len() >= 8 && f.program.len() % 8 == 0);
        assert_eq!(f.flags, 0);
    }

    #[test]
    fn malformed_names_are_errors_and_unknown_names_are_skipped() {
        let p = profile(vec![
            rule(&["getpid"], LinuxSeccompAction::ScmpActErrno)
                .build()
                .unwrap(),
            rule(&["read", "No such call"], LinuxSeccompAction::ScmpActErrno)
                .build()
                .unwrap(),
        ]);
        assert_eq!(
            field_of(compile(&p).unwrap_err()),
            "linux.seccomp.syscalls[1].names[1]"
        );
        // runc and crun skip a name libseccomp does not know.
        let skipped = profile(vec![rule(
            &["getpid", "no_such_call"],
            LinuxSeccompAction::ScmpActErrno,
        )
        .build()
        .unwrap()]);
        let only = profile(vec![rule(&["getpid"], LinuxSeccompAction::ScmpActErrno)
            .build()
            .unwrap()]);
        assert_eq!(
            compile(&skipped).unwrap().program,
            compile(&only).unwrap().program
        );
    }

    #[test]
    fn unsupported_architectures_name_the_field() {
        let mut p = profile(vec![]);
        p.set_architectures(Some(vec![Arch::ScmpArchX86, Arch::ScmpArchS390x]));
        assert_eq!(
            field_of(compile(&p).unwrap_err()),
            "linux.seccomp.architectures[1]"
        );
    }

    #[test]
    fn malformed_arguments_name_the_field() {
        let arg = |index: usize, op, two: Option<u64>| {
            let b = LinuxSeccompArgBuilder::default()
                .index(index)
                .value(1u64)
                .op(op);
            match two {
                Some(t) => b.value_two(t).build().unwrap(),
                None => b.build().unwrap(),
            }
        };
        let with = |a| {
            profile(vec![rule(&["kill"], LinuxSeccompAction::ScmpActErrno)
                .args(vec![a])
                .build()
                .unwrap()])
        };
        let e = compile(&with(arg(6, LinuxSeccompOperator::ScmpCmpEq, None))).unwrap_err();
        assert_eq!(field_of(e), "linux.seccomp.syscalls[0].args[0].index");
        let e = compile(&with(arg(1, LinuxSeccompOperator::ScmpCmpGt, Some(3)))).unwrap_err();
        assert_eq!(field_of(e), "linux.seccomp.syscalls[0].args[0].valueTwo");
        assert!(compile(&with(arg(
            1,
            LinuxSeccompOperator::ScmpCmpMaskedEq,
            Some(1)
        )))
        .is_ok());
    }

    #[test]
    fn notify_needs_a_listener_and_spares_the_runtime_calls() {
        let p = profile(vec![rule(&["mkdir"], LinuxSeccompAction::ScmpActNotify)
            .build()
            .unwrap()]);
        assert_eq!(
            field_of(compile(&p).unwrap_err()),
            "linux.seccomp.listenerPath"
        );
        let mut p = profile(vec![rule(
            &["mkdir", "sendmsg"],
            LinuxSeccompAction::ScmpActNotify,
        )
        .build()
        .unwrap()]);
        p.set_listener_path(Some("/run/l.sock".into()));
        assert_eq!(
            field_of(compile(&p).unwrap_err()),
            "linux.seccomp.syscalls[0].names[1]"
        );
        let mut p = profile(vec![rule(&["mkdir"], LinuxSeccompAction::ScmpActNotify)
            .build()
            .unwrap()]);
        p.set_listener_path(Some("/run/l.sock".into()));
        p.set_flags(Some(vec![LinuxSeccompFilterFlag::SeccompFilterFlagTsync]));
        let f = compile(&p).unwrap();
        assert_eq!(f.flags, FLAG_TSYNC | FLAG_NEW_LISTENER | FLAG_TSYNC_ESRCH);
    }

    #[test]
    fn unparsable_enums_name_their_field() {
        let config = serde_json::json!({"linux": {"seccomp": {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"],
        }}});
        assert_eq!(
            field_of(check_json(&config).unwrap_err()),
            "linux.seccomp.architectures[1]"
        );
        let config = serde_json::json!({"linux": {"seccomp": {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 1, "value": 2, "op": "SCMP_CMP_ROUGHLY"}]}],
        }}});
        assert_eq!(
            field_of(check_json(&config).unwrap_err()),
            "linux.seccomp.syscalls[0].args[0].op"
        );
    }

    /// The verdict of `p`'s program on x86_64 call `nr` with first argument `a0`.
    fn verdict(p: &LinuxSeccomp, arch: u32, nr: u32, a0: u64) -> u32 {
        let prog = bpf::decode(&compile(p).unwrap().program);
        let data = bpf::SeccompData {
            nr,
            arch,
            ip: 0,
            args: [a0, 0, 0, 0, 0, 0],
        };
        bpf::run(&prog, &data).unwrap()
    }

    #[test]
    fn calls_newer_than_the_profile_get_enosys_as_under_runc() {
        const X86_64: u32 = 0xc000_003e;
        let mut p = profile(vec![
            rule(&["getpid"], LinuxSeccompAction::ScmpActAllow)
                .build()
                .unwrap(),
            rule(&["kill"], LinuxSeccompAction::ScmpActAllow)
                .args(vec![LinuxSeccompArgBuilder::default()
                    .index(0usize)
                    .value(0x1_0000_0000u64)
                    .op(LinuxSeccompOperator::ScmpCmpGe)
                    .build()
                    .unwrap()])
                .build()
                .unwrap(),
        ]);
        p.set_default_action(LinuxSeccompAction::ScmpActErrno);
        p.set_architectures(Some(vec![Arch::ScmpArchX86_64]));
        let eperm = ret::ERRNO | libc::EPERM as u32;
        let enosys = ret::ERRNO | libc::ENOSYS as u32;
        assert_eq!(verdict(&p, X86_64, 39, 0), ret::ALLOW);
        assert_eq!(verdict(&p, X86_64, 38, 0), eperm);
        // kill (62) is the last call named: above it, ENOSYS.
        assert_eq!(verdict(&p, X86_64, 63, 0), enosys);
        assert_eq!(verdict(&p, X86_64, 450, 0), enosys);
        // kill's argument compared as 64 bits.
        assert_eq!(verdict(&p, X86_64, 62, 0xffff_ffff), eperm);
        assert_eq!(verdict(&p, X86_64, 62, 0x1_0000_0000), ret::ALLOW);
        // x32 is not in the filter: its calls get the bad-arch kill.
        assert_eq!(verdict(&p, X86_64, 0x4000_0027, 0), ret::KILL_THREAD);
        // An architecture not named at all: kill.
        assert_eq!(verdict(&p, 0xc000_00b7, 39, 0), ret::KILL_THREAD);
        // A permissive default has no stub.
        p.set_default_action(LinuxSeccompAction::ScmpActLog);
        assert_eq!(verdict(&p, X86_64, 450, 0), ret::LOG);
    }

    #[test]
    fn errno_ret_only_with_errno_or_trace() {
        let p = profile(vec![rule(
            &["getpid"],
            LinuxSeccompAction::ScmpActKillProcess,
        )
        .errno_ret(1u32)
        .build()
        .unwrap()]);
        assert_eq!(
            field_of(compile(&p).unwrap_err()),
            "linux.seccomp.syscalls[0].errnoRet"
        );
    }
}
