//! The `bpf(2)` calls that load a device filter and attach it to a cgroup.
//!
//! No maintained crate wraps these few commands without pulling in libbpf or
//! a whole eBPF toolchain, so this module issues them itself; it is the only
//! place outside `exec` with `unsafe`, each block a single `syscall` whose
//! attribute struct lives on the stack for the duration of the call.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::device_program::Insn;

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Several programs may be attached; each must allow an access.
const BPF_F_ALLOW_MULTI: u32 = 2;
/// The license the kernel records; device filters need no GPL helpers.
const LICENSE: &[u8] = b"Apache-2.0\0";
/// Size of the verifier log asked for when a load fails.
const LOG_SIZE: usize = 64 * 1024;

/// `union bpf_attr` for `BPF_PROG_LOAD`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_PROG_ATTACH` and `BPF_PROG_DETACH`.
#[repr(C)]
#[derive(Default)]
struct Attach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `union bpf_attr` for `BPF_PROG_QUERY`.
#[repr(C)]
#[derive(Default)]
struct Query {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// `union bpf_attr` for `BPF_PROG_GET_FD_BY_ID`.
#[repr(C)]
#[derive(Default)]
struct GetFdById {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `bpf(cmd, attr, sizeof attr)`.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed `repr(C)` prefix of
    // `union bpf_attr` for `cmd`, and its size is passed with it; the kernel
    // reads and writes only within that size. Any pointers inside it refer
    // to buffers the caller keeps alive across this call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads `prog` as a device filter. On a verifier refusal the error carries
/// the verifier's log.
pub(crate) fn load_device_filter(prog: &[Insn]) -> io::Result<OwnedFd> {
    let mut log = vec![0u8; LOG_SIZE];
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        ..ProgLoad::default()
    };
    attr.prog_name[..12].copy_from_slice(b"berth_device");
    let fd = match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => fd,
        Err(e)
            if e.raw_os_error() == Some(libc::EACCES) || e.raw_os_error() == Some(libc::EINVAL) =>
        {
            // Load again with the log on, to say why.
            attr.log_level = 1;
            attr.log_size = LOG_SIZE as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            match bpf(BPF_PROG_LOAD, &mut attr) {
                Ok(fd) => fd,
                Err(_) => {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..end]);
                    return Err(io::Error::new(e.kind(), format!("{e}; verifier: {text}")));
                }
            }
        }
        Err(e) => return Err(e),
    };
    // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Attaches `prog` to the cgroup directory `cgroup` (alongside any other
/// device program, each of which must allow an access).
pub(crate) fn attach(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = Attach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Attach::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// Detaches `prog` from `cgroup`.
pub(crate) fn detach(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = Attach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Attach::default()
    };
    bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}

/// The device programs attached to `cgroup` itself, as descriptors.
pub(crate) fn attached(cgroup: BorrowedFd<'_>) -> io::Result<Vec<OwnedFd>> {
    let mut ids = [0u32; 64];
    let mut attr = Query {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Query::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    let count = (attr.prog_cnt as usize).min(ids.len());
    let mut fds = Vec::with_capacity(count);
    for &id in &ids[..count] {
        let mut attr = GetFdById {
            prog_id: id,
            ..GetFdById::default()
        };
        match bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) {
            // SAFETY: a successful BPF_PROG_GET_FD_BY_ID returns a new descriptor we own.
            Ok(fd) => fds.push(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }),
            // Detached and freed since the query.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(fds)
}

/// Replaces the device programs attached to `cgroup` with `prog`: the new
/// one is attached before the old ones are detached, so nothing the new
/// rules deny is allowed in between.
pub(crate) fn replace(cgroup: impl AsFd, prog: &OwnedFd) -> io::Result<()> {
    let cgroup = cgroup.as_fd();
    let old = attached(cgroup)?;
    attach(cgroup, prog.as_fd())?;
    for p in old {
        match detach(cgroup, p.as_fd()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
