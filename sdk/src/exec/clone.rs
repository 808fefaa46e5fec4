//! `clone3` (falling back to `clone`) into a function on a stack of its own.
//!
//! In shared-memory mode (`CLONE_VM`, like `posix_spawn`) the child runs on a
//! stack berth mapped for it and touches nothing but that stack and the
//! prebuilt plan until `execve`, so the cost of starting a container does not
//! grow with the memory of the embedding process (no page tables to copy).
//! Without `CLONE_VM` (needed to join an existing user namespace, which the
//! kernel refuses to a task that shares its mm) the child is an ordinary
//! fork-like copy and runs the same function.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use libc::c_void;

/// `struct clone_args` of clone3(2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The entry point the child jumps to. It must never return.
pub(crate) type ChildEntry = extern "C" fn(*mut c_void) -> !;

/// A stack for a `CLONE_VM` child: an anonymous mapping with a guard page
/// below it, unmapped on drop.
#[derive(Debug)]
pub(crate) struct ChildStack {
    base: *mut c_void,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving the owner
// between threads is fine.
unsafe impl Send for ChildStack {}
// SAFETY: `&ChildStack` only exposes the address, never the memory.
unsafe impl Sync for ChildStack {}

impl ChildStack {
    /// Usable size. The executor's deepest call chain needs a few KiB; the
    /// rest is margin. Pages are only touched (and so only cost) as used.
    pub(crate) const SIZE: usize = 256 * 1024;

    pub(crate) fn new() -> io::Result<ChildStack> {
        let page = 4096;
        let len = Self::SIZE + page;
        // SAFETY: an anonymous private mapping; no existing memory is
        // affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of our own fresh mapping becomes a guard,
        // so an overflow faults instead of writing into other memory.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    fn top(&self) -> u64 {
        (self.base as u64).saturating_add(self.len as u64)
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no child runs on
        // it any more (the owner keeps it alive until the child has exec'd
        // or exited).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// A freshly cloned child.
#[derive(Debug)]
pub(crate) struct Cloned {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

static NO_CLONE3: AtomicBool = AtomicBool::new(false);

/// Treats clone3 as missing from now on (see [`super::fallbacks`]).
pub(crate) fn force_clone() {
    NO_CLONE3.store(true, Ordering::Relaxed);
}

/// Clones a child that runs `entry(arg)`.
///
/// `flags` holds the namespace (`CLONE_NEW*`) and sharing flags; `CLONE_VM`
/// requires `stack`. `cgroup` is a v2 cgroup directory fd to start the child
/// in (`CLONE_INTO_CGROUP`); when clone3 is missing the caller must place the
/// child itself and gets `cgroup_applied == false` back.
///
/// # Safety
/// `entry` must only make raw system calls and read memory that stays alive
/// and unmodified until the child has exec'd or exited (`arg`, the plan it
/// points to, and `stack`). The calling thread should have all signals
/// blocked so that no handler of the parent runs in the child.
pub(crate) unsafe fn clone_child(
    flags: u64,
    stack: Option<&ChildStack>,
    cgroup: Option<RawFd>,
    entry: ChildEntry,
    arg: *mut c_void,
) -> io::Result<(Cloned, bool)> {
    let mut pidfd: libc::c_int = -1;
    if !NO_CLONE3.load(Ordering::Relaxed) {
        let mut args = CloneArgs {
            flags: flags | CLONE_PIDFD,
            pidfd: &mut pidfd as *mut libc::c_int as u64,
            // No exit signal: the embedder's `wait(-1)` and SIGCHLD
            // handler never see berth's children (reaped with __WALL).
            exit_signal: 0,
            ..Default::default()
        };
        if let Some(stack) = stack {
            args.stack = stack.base as u64;
            args.stack_size = stack.len as u64;
        }
        if let Some(fd) = cgroup {
            args.flags |= CLONE_INTO_CGROUP;
            args.cgroup = fd as u64;
        }
        // SAFETY: `args` is a valid clone_args that lives across the call;
        // the caller guarantees what the child may touch.
        let ret = unsafe {
            raw_clone(
                libc::SYS_clone3,
                &args as *const CloneArgs as usize,
                std::mem::size_of::<CloneArgs>(),
                0,
                0,
                0,
                entry,
                arg,
            )
        };
        match ret {
            pid if pid > 0 => return Ok((cloned(pid, pidfd), cgroup.is_some())),
            e if e.wrapping_neg() == libc::ENOSYS as isize => {
                NO_CLONE3.store(true, Ordering::Relaxed)
            }
            e => return Err(io::Error::from_raw_os_error(e.wrapping_neg() as i32)),
        }
    }
    let sp = stack.map_or(0, ChildStack::top) as usize;
    // Exit signal 0 (the low byte of the flags), as with clone3.
    let clone_flags = (flags | CLONE_PIDFD) as usize;
    let pidfd_ptr = &mut pidfd as *mut libc::c_int as usize;
    // SAFETY: as above; with CLONE_PIDFD the kernel stores the pidfd through
    // the parent_tid pointer, which points at `pidfd`.
    let ret = unsafe {
        raw_clone(
            libc::SYS_clone,
            clone_flags,
            sp,
            pidfd_ptr, // parent_tid on every architecture; the rest stay 0
            0,
            0,
            entry,
            arg,
        )
    };
    if ret > 0 {
        Ok((cloned(ret, pidfd), false))
    } else {
        Err(io::Error::from_raw_os_error(ret.wrapping_neg() as i32))
    }
}

fn cloned(pid: isize, pidfd: libc::c_int) -> Cloned {
    Cloned {
        pid: pid as i32,
        // SAFETY: the kernel returned a new pidfd that nothing else owns.
        pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
    }
}

/// Makes a clone-family system call; in the child, calls `entry(arg)` on
/// whatever stack the kernel gave it and never comes back.
///
/// # Safety
/// See [`clone_child`].
#[allow(clippy::too_many_arguments)]
#[inline(never)]
unsafe fn raw_clone(
    nr: libc::c_long,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
    entry: ChildEntry,
    arg: *mut c_void,
) -> isize {
    let ret: isize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: in the parent this is a plain syscall (rcx/r11 clobbered).
    // In the child (rax == 0) we align the stack, clear the frame pointer and
    // call `entry`, which never returns, so no Rust state of this frame is
    // relied upon afterwards.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "and rsp, -16",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") nr as isize => ret,
            in("rdi") a1, in("rsi") a2, in("rdx") a3, in("r10") a4, in("r8") a5,
            in("r12") arg, in("r13") entry,
            lateout("rcx") _, lateout("r11") _,
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as for x86_64; x20/x21 survive the syscall into the child.
    unsafe {
        std::arch::asm!(
            "svc 0",
            "cbnz x0, 2f",
            "mov x29, xzr",
            "mov x0, x20",
            "blr x21",
            "brk #0",
            "2:",
            in("x8") nr,
            inlateout("x0") a1 => ret,
            in("x1") a2, in("x2") a3, in("x3") a4, in("x4") a5,
            in("x20") arg, in("x21") entry,
        );
    }
    ret
}

/// Blocks every signal in the calling thread and restores the previous mask
/// on drop, so the child starts with all signals blocked and no parent
/// handler can run in it before it resets them.
pub(crate) struct SignalsBlocked(libc::sigset_t);

impl SignalsBlocked {
    pub(crate) fn new() -> SignalsBlocked {
        // SAFETY: sigset_t is plain data; sigfillset/pthread_sigmask only
        // write to the sets we pass.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            SignalsBlocked(old)
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}
