//! `linux.seccomp`: the filter compiled with libseccomp in the parent, its
//! BPF exported into the plan, and the hand-over of a user-notification
//! descriptor to the listener the spec names.
//!
//! The executor loads the exported program with the raw `seccomp(2)` call;
//! nothing of libseccomp runs after `clone`.

use std::io::{IoSlice, Read, Seek};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};
use serde::Serialize;

use crate::error::{Error, Result};

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
    /// What the filter does, in a line (for snapshots and logs; the
    /// program itself depends on the libseccomp version).
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

/// The libseccomp action of an OCI action; `errno` is the spec's `errnoRet`.
fn action(a: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<ScmpAction> {
    use LinuxSeccompAction::*;
    let errno_ret = || -> Result<i32> {
        let e = errno.unwrap_or(libc::EPERM as u32);
        i32::try_from(e)
            .ok()
            .filter(|e| (0..4096).contains(e))
            .ok_or_else(|| Error::invalid(field, format!("errnoRet {e} is not an errno (0..4096)")))
    };
    if errno.is_some() && !matches!(a, ScmpActErrno | ScmpActTrace) {
        return Err(Error::invalid(
            field,
            format!("errnoRet is only meaningful with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {a}"),
        ));
    }
    Ok(match a {
        ScmpActKill | ScmpActKillThread => ScmpAction::KillThread,
        ScmpActKillProcess => ScmpAction::KillProcess,
        ScmpActTrap => ScmpAction::Trap,
        ScmpActErrno => ScmpAction::Errno(errno_ret()?),
        ScmpActTrace => ScmpAction::Trace(errno_ret()? as u16),
        ScmpActLog => ScmpAction::Log,
        ScmpActAllow => ScmpAction::Allow,
        ScmpActNotify => ScmpAction::Notify,
    })
}

fn arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// One argument condition. For `SCMP_CMP_MASKED_EQ` the spec's `value` is
/// the mask and `valueTwo` the datum compared with `arg & mask`, as runc
/// reads them.
fn condition(a: &LinuxSeccompArg, field: &str) -> Result<ScmpArgCompare> {
    if a.index() > 5 {
        return Err(Error::invalid(
            format!("{field}.index"),
            format!("{} is not an argument index (0..=5)", a.index()),
        ));
    }
    let two = a.value_two().unwrap_or(0);
    let (op, datum) = match a.op() {
        LinuxSeccompOperator::ScmpCmpMaskedEq => (ScmpCompareOp::MaskedEqual(a.value()), two),
        other => {
            if two != 0 {
                return Err(Error::invalid(
                    format!("{field}.valueTwo"),
                    format!("only SCMP_CMP_MASKED_EQ takes a second value, not {other}"),
                ));
            }
            let op = match other {
                LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
                LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
                LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
                LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
                LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
                LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
                LinuxSeccompOperator::ScmpCmpMaskedEq => unreachable!("matched above"),
            };
            (op, a.value())
        }
    };
    Ok(ScmpArgCompare::new(a.index() as u32, op, datum))
}

/// Compiles `linux.seccomp`. Every name, architecture, action and argument
/// is checked here; the error names the field (`linux.seccomp.syscalls[3].names[0]`).
///
/// libseccomp takes 10–40 ms for a Docker-sized profile on three
/// architectures (most of it generating the BPF), far more than the rest of
/// a container's start: filters are kept, by profile, for the next
/// container of this process.
pub fn compile(spec: &LinuxSeccomp) -> Result<Filter> {
    use std::collections::HashMap;
    /// Profiles a process uses are few; past this many, start over.
    const KEEP: usize = 32;
    let cache_of = || CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let key = serde_json::to_string(spec).ok();
    if let Some(k) = &key {
        let cache = cache_of();
        if let Some(f) = cache.as_ref().and_then(|c| c.get(k)) {
            return Ok(f.clone());
        }
    }
    let filter = compile_uncached(spec)?;
    if let Some(k) = key {
        let mut cache = cache_of();
        let map = cache.get_or_insert_with(HashMap::new);
        if map.len() >= KEEP {
            map.clear();
        }
        map.insert(k, filter.clone());
    }
    Ok(filter)
}

/// Compiled filters by the JSON of their profile.
static CACHE: std::sync::Mutex<Option<std::collections::HashMap<String, Filter>>> =
    std::sync::Mutex::new(None);

fn compile_uncached(spec: &LinuxSeccomp) -> Result<Filter> {
    const F: &str = "linux.seccomp";
    let lib = |field: String, what: &str, e: libseccomp::error::SeccompError| {
        Error::invalid(field, format!("{what}: {e}"))
    };
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
    let mut ctx = ScmpFilterContext::new(default)
        .map_err(|e| lib(default_field, "libseccomp refused the default action", e))?;
    for (i, a) in spec.architectures().iter().flatten().enumerate() {
        ctx.add_arch(arch(*a)).map_err(|e| {
            lib(
                format!("{F}.architectures[{i}]"),
                &format!("{a} is not supported by this libseccomp"),
                e,
            )
        })?;
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
    for (i, sc) in spec.syscalls().iter().flatten().enumerate() {
        let field = format!("{F}.syscalls[{i}]");
        if sc.names().is_empty() {
            return Err(Error::invalid(format!("{field}.names"), "empty"));
        }
        let act = action(sc.action(), sc.errno_ret(), &format!("{field}.errnoRet"))?;
        let conds = sc
            .args()
            .iter()
            .flatten()
            .enumerate()
            .map(|(j, a)| condition(a, &format!("{field}.args[{j}]")))
            .collect::<Result<Vec<_>>>()?;
        // libseccomp ANDs the conditions of one rule, one per argument. A
        // rule naming an argument twice means "any of these values" (how
        // Docker's profile lists personalities): one rule per condition.
        let mut indices: Vec<u32> = sc
            .args()
            .iter()
            .flatten()
            .map(|a| a.index() as u32)
            .collect();
        indices.sort_unstable();
        let repeated = indices.windows(2).any(|w| w[0] == w[1]);
        for (j, name) in sc.names().iter().enumerate() {
            let name_field = format!("{field}.names[{j}]");
            let nr = libseccomp::ScmpSyscall::from_name(name).map_err(|_| {
                Error::invalid(
                    name_field.clone(),
                    format!("{name:?} is not a system call libseccomp knows"),
                )
            })?;
            if sc.action() == LinuxSeccompAction::ScmpActNotify {
                if NEEDED_AFTER_LOAD.contains(&name.as_str()) {
                    return Err(Error::invalid(
                        name_field,
                        format!("SCMP_ACT_NOTIFY on {name} would block berth's own set-up before the listener has the descriptor"),
                    ));
                }
                notifies = true;
            }
            // libseccomp refuses rules that repeat the default action.
            if sc.action() == spec.default_action() && sc.errno_ret() == spec.default_errno_ret() {
                continue;
            }
            let add = |ctx: &mut ScmpFilterContext, c: &[ScmpArgCompare]| {
                ctx.add_rule_conditional(act, nr, c)
                    .map(drop)
                    .map_err(|e| lib(name_field.clone(), "libseccomp refused the rule", e))
            };
            if repeated {
                for c in &conds {
                    add(&mut ctx, std::slice::from_ref(c))?;
                }
            } else {
                add(&mut ctx, &conds)?;
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

    let program = export(&ctx)?;
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
        program,
        flags,
        listener,
        metadata: spec.listener_metadata().clone(),
    })
}

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

/// The filter's BPF, through a memfd (libseccomp 2.5 exports only to a
/// descriptor).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(c"berth-seccomp", MFdFlags::MFD_CLOEXEC)
        .map_err(|e| Error::sys("memfd_create", std::io::Error::from(e)))?;
    ctx.export_bpf(&fd)
        .map_err(|e| Error::sys("export seccomp filter", std::io::Error::other(e)))?;
    let mut file = std::fs::File::from(fd);
    let mut program = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut program))
        .map_err(|e| Error::sys("read seccomp filter", e))?;
    if program.is_empty() || program.len() % 8 != 0 || program.len() / 8 > u16::MAX as usize {
        return Err(Error::sys(
            "export seccomp filter",
            std::io::Error::other(format!("a program of {} bytes", program.len())),
        ));
    }
    Ok(program)
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
    fn unknown_syscall_names_the_field() {
        let p = profile(vec![
            rule(&["getpid"], LinuxSeccompAction::ScmpActErrno)
                .build()
                .unwrap(),
            rule(&["read", "no_such_call"], LinuxSeccompAction::ScmpActErrno)
                .build()
                .unwrap(),
        ]);
        assert_eq!(
            field_of(compile(&p).unwrap_err()),
            "linux.seccomp.syscalls[1].names[1]"
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

    #[test]
    fn a_profile_compiles_once_per_process() {
        // A profile of this test's own.
        let p = profile(vec![rule(&["getpid"], LinuxSeccompAction::ScmpActErrno)
            .errno_ret(4094u32)
            .build()
            .unwrap()]);
        let key = serde_json::to_string(&p).unwrap();
        let cached = || {
            let c = CACHE.lock().unwrap();
            c.as_ref().and_then(|m| m.get(&key)).cloned()
        };
        assert!(cached().is_none());
        let first = compile(&p).unwrap();
        assert!(cached() == Some(first.clone()));
        assert!(compile(&p).unwrap() == first);
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
