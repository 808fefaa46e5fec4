//! User-mode networking for containers of an unprivileged user:
//! [`Network::Slirp4netns`](crate::Network::Slirp4netns).
//!
//! At attach, `slirp4netns --configure --mtu=65520 PID tap0` is started for
//! the container's process (joining its user namespace first when it has
//! one of its own): the container gets `tap0` with 10.0.2.100/24, a default
//! route via 10.0.2.2 (which is also the host's loopback) and DNS on
//! 10.0.2.3. It needs no privilege: slirp4netns only uses the host's
//! sockets, in the namespace of the process that creates the container
//! ([`Settings::host_netns`](crate::Settings::host_netns) is not used).
//!
//! slirp4netns is detached as the port proxy is (see the `proxy` module):
//! `/bin/sh` starts it in the background in a session of its own, with
//! `/dev/null` as stdin and stdout, the creator's other descriptors closed
//! at exec, prints its pid and exits; the creator reaps `sh` at once, so
//! slirp4netns is reparented to init (or the nearest subreaper other than
//! this process) and survives its creator. It reports readiness on
//! `--ready-fd`; its pid and start time, with the container's process's,
//! are recorded in the state directory (`slirp4netns.json`). Release
//! kills it through a pidfd; recovery does so for a container whose
//! process is gone.
//!
//! Published ports are forwarded by slirp4netns itself: it gets an API
//! socket in the state directory (`slirp4netns.sock`), and each port an
//! `add_hostfwd` there, before attach returns.

use std::path::Path;
use std::process::{Command, Stdio};

use berth::extension::{write_atomic, HostProcess};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::proxy;
use crate::PortMapping;

/// The record in a container's state directory.
pub(crate) const RECORD_FILE: &str = "slirp4netns.json";
/// slirp4netns's stderr, in the state directory.
const LOG_FILE: &str = "slirp4netns.log";
/// The program, found in `PATH`.
const PROGRAM: &str = "slirp4netns";
/// Its API socket, in the state directory, when ports are published.
const API_SOCKET: &str = "slirp4netns.sock";

/// What is recorded: slirp4netns (the fields [`proxy::stop_recorded`]
/// reads) and the container's process it serves.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    slirp: HostProcess,
    container: HostProcess,
}

/// Starts slirp4netns for the container whose process is `pid` (state
/// directory `dir`) and records it. Blocking.
pub(crate) fn start(dir: &Path, pid: i32, ports: &[PortMapping]) -> Result<()> {
    let failed = |reason: String| Error::Network {
        network: "slirp4netns".into(),
        reason,
    };
    let container_start = proxy::start_time(pid)
        .ok_or_else(|| failed(format!("the container's process {pid} is gone")))?;
    let userns = format!("/proc/{pid}/ns/user");
    let own_userns = std::fs::read_link("/proc/self/ns/user").ok();
    let mut args = vec![
        "--configure".to_string(),
        "--mtu=65520".into(),
        "--ready-fd=3".into(),
    ];
    // Joining the user namespace one is in already is an error (EINVAL).
    if std::fs::read_link(&userns).ok() != own_userns {
        args.push(format!("--userns-path={userns}"));
    }
    let api = dir.join(API_SOCKET);
    if !ports.is_empty() {
        // sun_path holds 108 bytes, the last a NUL.
        if api.as_os_str().len() > 107 {
            return Err(failed(format!(
                "the API socket path {} is too long for a socket",
                api.display()
            )));
        }
        args.push(format!("--api-socket={}", api.display()));
    }
    args.extend([pid.to_string(), "tap0".into()]);
    let log = dir.join(LOG_FILE);
    // `"$@"` keeps the arguments as they are; 3 is the pipe (stdout).
    let script = r#"log=$1; shift; "$@" 3>&1 </dev/null >/dev/null 2>>"$log" & echo $!"#;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .arg("sh")
        .arg(&log)
        .arg(PROGRAM)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .current_dir("/");
    // SAFETY: setsid and close_range are async-signal-safe system calls;
    // nothing is allocated or locked between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            // CLOSE_RANGE_CLOEXEC: the creator's descriptors that lack
            // O_CLOEXEC close at exec (the error pipe of `spawn` stays).
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 4u32) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // As for the port proxy: this process must not be the subreaper that
    // inherits slirp4netns when `sh` exits.
    let subreaper = nix::sys::prctl::get_child_subreaper().unwrap_or(false);
    if subreaper {
        let _ = nix::sys::prctl::set_child_subreaper(false);
    }
    let answer = run(cmd);
    if subreaper {
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    let (pid_line, ready) = answer?;
    let slirp_pid: i32 = pid_line
        .trim()
        .parse()
        .map_err(|_| failed(format!("unexpected answer {pid_line:?}")))?;
    let slirp_start = proxy::start_time(slirp_pid);
    let why = || {
        std::fs::read_to_string(&log)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let Some(slirp_start) = slirp_start.filter(|_| ready) else {
        if let Some(t) = proxy::start_time(slirp_pid) {
            let _ = proxy::kill(HostProcess::new(slirp_pid, t));
        }
        return Err(failed(format!("slirp4netns did not start: {}", why())));
    };
    let record = Record {
        slirp: HostProcess::new(slirp_pid, slirp_start),
        container: HostProcess::new(pid, container_start),
    };
    let json = serde_json::to_vec(&record).map_err(|e| failed(e.to_string()))?;
    if let Err(e) = write_atomic(&dir.join(RECORD_FILE), &json) {
        let _ = proxy::kill(record.slirp);
        return Err(e.into());
    }
    for p in ports {
        if let Err(reason) = forward(&api, p) {
            let _ = stop(dir);
            return Err(failed(format!(
                "publishing {}:{}/{}: {reason}",
                p.host_port,
                p.container_port,
                p.protocol.as_str()
            )));
        }
    }
    Ok(())
}

/// Asks slirp4netns (API socket `api`) to forward `p`.
fn forward(api: &Path, p: &PortMapping) -> std::result::Result<(), String> {
    use std::io::{Read, Write};
    let request = serde_json::json!({
        "execute": "add_hostfwd",
        "arguments": {
            "proto": p.protocol.as_str(),
            "host_addr": p.host_ip.map_or("0.0.0.0".to_string(), |a| a.to_string()),
            "host_port": p.host_port,
            "guest_port": p.container_port,
        }
    });
    let mut s = std::os::unix::net::UnixStream::connect(api).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(proxy::ANSWER_TIME))
        .map_err(|e| e.to_string())?;
    s.write_all(request.to_string().as_bytes())
        .and_then(|()| s.shutdown(std::net::Shutdown::Write))
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.take(4096)
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    let v: serde_json::Value =
        serde_json::from_str(&answer).map_err(|_| format!("unexpected answer {answer:?}"))?;
    match v.get("error") {
        None if v.get("return").is_some() => Ok(()),
        Some(e) => Err(e
            .get("desc")
            .and_then(|d| d.as_str())
            .unwrap_or("refused")
            .to_string()),
        None => Err(format!("unexpected answer {answer:?}")),
    }
}

/// Runs `cmd` (the `sh` above): slirp4netns's pid, and whether it became
/// ready, within [`proxy::ANSWER_TIME`].
fn run(mut cmd: Command) -> Result<(String, bool)> {
    let mut child = cmd.spawn().map_err(|e| Error::io("start", "/bin/sh", e))?;
    let deadline = std::time::Instant::now() + proxy::ANSWER_TIME;
    // `PID\n` from sh, then `1` from slirp4netns once configured (or the
    // end of the pipe if it fails).
    let answer = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))
        .and_then(|out| {
            proxy::read_until(out, deadline, |b| {
                b.iter()
                    .position(|c| *c == b'\n')
                    .is_some_and(|i| b.len() > i + 1)
            })
        });
    // sh exits at once after its echo.
    let waited = child.wait();
    let buf = answer.map_err(|e| Error::io("read the answer of", PROGRAM, e))?;
    waited.map_err(|e| Error::io("wait for", "/bin/sh", e))?;
    let text = String::from_utf8_lossy(&buf);
    let (pid, rest) = text.split_once('\n').unwrap_or((&text, ""));
    Ok((pid.to_string(), rest.starts_with('1')))
}

/// Stops the container's slirp4netns, if it has one. Idempotent.
pub(crate) fn stop(dir: &Path) -> Result<()> {
    proxy::stop_recorded(&dir.join(RECORD_FILE))?;
    let _ = std::fs::remove_file(dir.join(LOG_FILE));
    let _ = std::fs::remove_file(dir.join(API_SOCKET));
    Ok(())
}

/// Stops the slirp4netns of every container under `root` whose process is
/// gone.
pub(crate) fn recover(root: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Ok(bytes) = std::fs::read(dir.join(RECORD_FILE)) else {
            continue;
        };
        let gone =
            serde_json::from_slice::<Record>(&bytes).map_or(true, |r| !r.container.is_alive());
        if gone {
            tracing::info!(dir = %dir.display(), "stopping the slirp4netns of a gone container");
            stop(&dir)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopping_without_a_record_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        stop(dir.path()).unwrap();
        recover(dir.path()).unwrap();
    }

    #[test]
    fn a_record_reads_as_the_process_it_names() {
        let me = HostProcess::this().unwrap();
        let r = Record {
            slirp: me,
            container: me,
        };
        let json = serde_json::to_vec(&r).unwrap();
        let p: HostProcess = serde_json::from_slice(&json).unwrap();
        assert_eq!(p, me);
    }
}
