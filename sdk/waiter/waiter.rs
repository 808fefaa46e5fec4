//! `berth-waiter`: what a created container's first process runs while it
//! waits for `start`.
//!
//! The container's first process is cloned from the embedding process
//! (sharing its memory, like `posix_spawn`) and sets the container up. Just
//! before it would wait for `start` it `execve`s this program from a sealed
//! memfd, so that from then on, while code of other processes may run in
//! its pid namespace, `/proc/1/exe` is a file nobody can write and
//! `/proc/1/mem` is this program's own few pages, not the embedder's
//! (CVE-2019-5736 and its memory variant; see `docs/ARCHITECTURE.md`).
//!
//! It is built by the `berth` crate's build script as a static executable
//! without libc: no allocation, no dynamic loader, raw system calls only.
//! It makes only the calls a seccomp profile that lets the container run
//! at all must allow anyway after the filter is loaded: `prctl`, `fcntl`, `read`,
//! `close`, `rt_sigprocmask`, `execve`, and `sendto`/`exit_group` on
//! failure.
//!
//! Arguments: `berth-waiter FIFO_FD REPORT_FD STEP PATH ARGV0 [ARGS...]`;
//! the environment is the container process's. It reads one byte from the
//! exec FIFO (the `start` signal), then `execve`s `PATH` with `ARGV0
//! ARGS...`. If that fails it sends the executor's failure report (kind
//! `FAILED`, the plan's step index `STEP`, the errno) on the `REPORT_FD`
//! socket, for `start` to turn into an error, and exits with 127 (not
//! found) or 126.
#![no_std]
#![no_main]

use core::arch::asm;

const EXIT_SETUP_FAILED: usize = 1;
const F_SETFD: usize = 2;
const PR_SET_DUMPABLE: usize = 4;
const FD_CLOEXEC: usize = 1;
const SIG_SETMASK: usize = 2;
const EINTR: isize = 4;
const ENOENT: isize = 2;
const MSG_NOSIGNAL: usize = 0x4000;
/// `Report::FAILED` of the executor's protocol.
const REPORT_FAILED: u32 = 4;

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const READ: usize = 0;
    pub const SENDTO: usize = 44;
    pub const PRCTL: usize = 157;
    pub const CLOSE: usize = 3;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const EXECVE: usize = 59;
    pub const FCNTL: usize = 72;
    pub const EXIT_GROUP: usize = 231;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const READ: usize = 63;
    pub const SENDTO: usize = 206;
    pub const PRCTL: usize = 167;
    pub const CLOSE: usize = 57;
    pub const RT_SIGPROCMASK: usize = 135;
    pub const EXECVE: usize = 221;
    pub const FCNTL: usize = 25;
    pub const EXIT_GROUP: usize = 94;
}

/// A raw system call with up to four arguments; returns `-errno` on error.
#[inline(always)]
fn syscall(nr: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    syscall6(nr, a1, a2, a3, a4, 0, 0)
}

#[inline(always)]
fn syscall6(nr: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize, a6: usize) -> isize {
    let ret: isize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a plain system call; the kernel clobbers rcx and r11 only.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a1, in("rsi") a2, in("rdx") a3, in("r10") a4, in("r8") a5, in("r9") a6,
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: a plain system call; x0 carries the result.
    unsafe {
        asm!(
            "svc 0",
            in("x8") nr,
            inlateout("x0") a1 as isize => ret,
            in("x1") a2, in("x2") a3, in("x3") a4, in("x4") a5, in("x5") a6,
            options(nostack),
        );
    }
    ret
}

fn exit(code: usize) -> ! {
    loop {
        syscall(nr::EXIT_GROUP, code, 0, 0, 0);
    }
}

/// Parses a decimal number below 10^9; `None` for anything else.
fn parse(s: *const u8) -> Option<usize> {
    if s.is_null() {
        return None;
    }
    let mut n: usize = 0;
    let mut i = 0;
    loop {
        // SAFETY: `s` is a NUL-terminated argument string from the kernel;
        // reading stops at the NUL.
        let b = unsafe { *s.add(i) };
        match b {
            0 if i > 0 => return Some(n),
            b'0'..=b'9' if i < 9 => n = n * 10 + (b - b'0') as usize,
            _ => return None,
        }
        i += 1;
    }
}

/// The program: `argv[1..]` as the module's documentation says.
fn main(argc: usize, argv: *const *const u8, envp: *const *const u8) -> ! {
    // Exec made us dumpable again: keep processes of the container without
    // CAP_SYS_PTRACE out of /proc/1 (the waiter holds the container's full
    // capability sets until its own exec). Best effort: a profile may deny it.
    syscall(nr::PRCTL, PR_SET_DUMPABLE, 0, 0, 0);
    if argc < 6 {
        exit(EXIT_SETUP_FAILED);
    }
    // SAFETY: argc counts the entries of argv, each a valid pointer.
    let arg = |i: usize| unsafe { *argv.add(i) };
    let (Some(fifo), Some(sock), Some(step)) = (parse(arg(1)), parse(arg(2)), parse(arg(3)))
    else {
        exit(EXIT_SETUP_FAILED);
    };
    // The report socket must not reach the container's program (the parent
    // sees EOF when it is gone); if the profile denies fcntl it is closed
    // now and a failure goes unreported (the exit code still tells).
    let report = syscall(nr::FCNTL, sock, F_SETFD, FD_CLOEXEC, 0) == 0;
    if !report {
        syscall(nr::CLOSE, sock, 0, 0, 0);
    }
    let mut byte = 0u8;
    loop {
        match syscall(nr::READ, fifo, &mut byte as *mut u8 as usize, 1, 0) {
            1 => break,
            r if r == -EINTR => continue,
            _ => exit(EXIT_SETUP_FAILED),
        }
    }
    syscall(nr::CLOSE, fifo, 0, 0, 0);
    // Signals stayed blocked since the clone; the program gets none blocked.
    let empty: u64 = 0;
    syscall(
        nr::RT_SIGPROCMASK,
        SIG_SETMASK,
        &empty as *const u64 as usize,
        0,
        8,
    );
    // SAFETY: argv has argc >= 6 entries and a NULL after them.
    let (path, args) = (arg(4), unsafe { argv.add(5) });
    let err = -syscall(nr::EXECVE, path as usize, args as usize, envp as usize, 0);
    if report {
        // `struct Report { kind, step, errno, _pad }`, native order.
        let msg: [u32; 4] = [REPORT_FAILED, step as u32, err as u32, 0];
        let (ptr, len) = (msg.as_ptr() as usize, core::mem::size_of_val(&msg));
        syscall6(nr::SENDTO, sock, ptr, len, MSG_NOSIGNAL, 0, 0);
    }
    exit(if err == ENOENT { 127 } else { 126 })
}

/// The entry point: the kernel leaves argc, argv and envp on the stack.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
extern "C" fn _start() -> ! {
    core::arch::naked_asm!(
        "xor ebp, ebp",
        "mov rdi, rsp",
        "and rsp, -16",
        "call {entry}",
        "ud2",
        entry = sym entry,
    )
}

#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
#[no_mangle]
extern "C" fn _start() -> ! {
    core::arch::naked_asm!(
        "mov x29, xzr",
        "mov x0, sp",
        "bl {entry}",
        "brk #0",
        entry = sym entry,
    )
}

extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: the System V start-up stack: argc, then argc argument
    // pointers and a NULL, then the environment pointers and a NULL.
    unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const u8;
        main(argc, argv, argv.add(argc + 1))
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(EXIT_SETUP_FAILED)
}
