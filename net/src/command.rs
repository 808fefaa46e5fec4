//! Running a helper program (`nft`, a CNI plugin) with its input, output
//! and errors in memory files, and an optional deadline.
//!
//! Memory files, not pipes: a container cloned meanwhile by another thread
//! holds copies of this process's descriptors until it execs, and a copy
//! of a pipe's writing end would keep the helper (or us) waiting for an
//! end of file forever.
//!
//! The helper runs in the network namespace of the calling thread.

use std::io::{Read, Seek, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

fn memfd(name: &str) -> Result<std::fs::File> {
    nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map(std::fs::File::from)
        .map_err(|e| Error::sys("memfd_create", e))
}

/// Runs `cmd` with `stdin` as its input. With a `timeout`, a helper still
/// running then is killed with the processes it started (it leads a
/// process group of its own) and `Ok(None)` returned.
pub(crate) fn run(
    mut cmd: Command,
    stdin: &[u8],
    timeout: Option<Duration>,
) -> Result<Option<Output>> {
    let what = cmd.get_program().to_string_lossy().into_owned();
    let io = |e| Error::io("run", what.clone(), e);
    let mut input = memfd("helper-in")?;
    input
        .write_all(stdin)
        .and_then(|()| input.rewind())
        .map_err(io)?;
    let (mut out, mut err) = (memfd("helper-out")?, memfd("helper-err")?);
    if timeout.is_some() {
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    }
    let mut child = cmd
        .stdin(Stdio::from(input))
        .stdout(Stdio::from(out.try_clone().map_err(io)?))
        .stderr(Stdio::from(err.try_clone().map_err(io)?))
        .spawn()
        .map_err(io)?;
    let status = match timeout {
        None => child.wait().map_err(io)?,
        Some(t) => {
            let deadline = Instant::now() + t;
            let mut pause = Duration::from_millis(1);
            loop {
                if let Some(s) = child.try_wait().map_err(io)? {
                    break s;
                }
                if Instant::now() >= deadline {
                    let group = nix::unistd::Pid::from_raw(child.id() as i32);
                    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                    let _ = child.wait();
                    return Ok(None);
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    out.rewind()
        .and_then(|()| out.read_to_end(&mut stdout))
        .and_then(|_| err.rewind())
        .and_then(|()| err.read_to_end(&mut stderr))
        .map_err(io)?;
    Ok(Some(Output {
        status,
        stdout,
        stderr,
    }))
}
