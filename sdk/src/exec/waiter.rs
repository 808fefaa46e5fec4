//! The sealed program a created container's first process waits in.
//!
//! The first process is cloned sharing the embedding process's memory
//! (`CLONE_VM`), so that starting a container costs the same in a 2 GiB
//! daemon as in a small CLI. Until it calls `execve` it *is* the embedding
//! process as far as `/proc/<pid>/exe` and `/proc/<pid>/mem` go: the
//! embedder's binary on the host, and the embedder's address space. A
//! process with `CAP_SYS_PTRACE` in the container's pid namespace ignores
//! the dumpable flag, so it could open the one (to overwrite the host binary
//! once it is no longer busy: CVE-2019-5736) or write the other.
//!
//! So the first process never waits for `start` as itself: once the
//! container is set up it `execve`s `berth-waiter` (`sdk/waiter/waiter.rs`,
//! a 2 KiB static program without libc, built by the crate's build script)
//! from a memfd sealed against any change, made once per process. From
//! then on `/proc/1/exe` is that memfd (nobody can write it: the seals
//! forbid it, and it is not a file on the host) and `/proc/1/mem` is the
//! waiter's own pages. The waiter reads the `start` byte from the exec FIFO
//! and `execve`s the container's program. `create` returns only after the
//! first process has left the shared memory (EOF on the close-on-exec sync
//! socket), so no `exec` can see it before.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use rustix::fs::{MemfdFlags, SealFlags};

/// The waiter program, as the build script made it.
const PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-waiter"));

/// The name the waiter runs under (`argv[0]`, what `ps` shows before
/// `start`).
pub(crate) const ARGV0: &std::ffi::CStr = c"berth-waiter";

static SEALED: OnceLock<std::result::Result<OwnedFd, i32>> = OnceLock::new();

/// The close-on-exec memfd holding the sealed waiter, made on first use
/// and kept for the life of the process.
pub(crate) fn fd() -> std::io::Result<BorrowedFd<'static>> {
    match SEALED.get_or_init(|| seal().map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))) {
        Ok(fd) => Ok(fd.as_fd()),
        Err(errno) => Err(std::io::Error::from_raw_os_error(*errno)),
    }
}

fn seal() -> std::io::Result<OwnedFd> {
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    // MFD_EXEC (6.3) keeps the memfd executable where the host defaults new
    // memfds to non-executable (vm.memfd_noexec = 1); older kernels refuse
    // the flag, and their memfds are executable anyway.
    let fd = match rustix::fs::memfd_create("berth-waiter", flags | MemfdFlags::EXEC) {
        Err(rustix::io::Errno::INVAL) => rustix::fs::memfd_create("berth-waiter", flags)?,
        r => r?,
    };
    let mut file = std::fs::File::from(fd);
    file.write_all(PROGRAM)?;
    let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL;
    rustix::fs::fcntl_add_seals(&file, seals)?;
    Ok(file.into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn the_waiter_is_sealed_and_cannot_be_written() {
        use std::os::fd::AsRawFd;
        let fd = fd().unwrap();
        let seals = rustix::fs::fcntl_get_seals(fd).unwrap();
        assert!(
            seals.contains(SealFlags::WRITE | SealFlags::SEAL),
            "{seals:?}"
        );
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"#!/bin/sh\n"))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), PROGRAM);
    }

    #[test]
    fn the_waiter_is_a_static_executable() {
        // ELF magic, and no PT_INTERP: it needs no loader in the rootfs.
        assert_eq!(&PROGRAM[..4], b"\x7fELF");
        assert!(!PROGRAM.windows(7).any(|w| w == b"ld-linu"));
    }
}
