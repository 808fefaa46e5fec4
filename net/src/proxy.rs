//! The userland proxy that makes published ports of dual-stack networks
//! answer on `[::1]`.
//!
//! A published port is an nftables DNAT rule. For IPv4 loopback the bridge
//! gets `route_localnet`, so a connection to `127.0.0.1:PORT` can be
//! rewritten towards the container. IPv6 has no `route_localnet`: a
//! connection to `[::1]:PORT` rewritten towards the container never gets
//! its replies delivered. So, as Docker does with `docker-proxy`, a process
//! listens on `[::1]:PORT` and copies bytes (TCP) or datagrams (UDP) to the
//! container's address; the DNAT rules skip `::1` and handle every other
//! address.
//!
//! # Who parents the proxy
//!
//! berth has no daemon: a container is created by an embedding program, by
//! the CLI (which exits after `create`), or by a detached container's shim.
//! None of them is sure to outlive the container, so the proxy is a process
//! of its own that belongs to no one:
//!
//! - The creator runs [`Settings::port_proxy`](crate::Settings::port_proxy)
//!   (the `berth` binary, or berth-net's `berth-port-proxy`) as
//!   `PROGRAM port-proxy SPEC`, from the thread that is in the namespace
//!   playing the host, with `/dev/null` as stdin and stderr and a pipe as
//!   stdout. That process closes every other descriptor it inherited, makes
//!   a session of its own, enters the host namespace named in the spec,
//!   binds the sockets (an error is reported on the pipe, and the
//!   container's create fails), forks, prints the child's pid and exits.
//!   The creator reaps it at once, so no zombie is left with a
//!   long-running embedder, and the child, the proxy, is reparented to
//!   init (or to the nearest subreaper): it survives its creator, and holds
//!   none of the creator's descriptors, nor its terminal. A creator that is
//!   a child subreaper (berth's shim, which reaps all it inherits before it
//!   exits) is none while this runs, so the proxy never holds it up.
//! - The creator records the proxy (pid and start time) in the container's
//!   state directory (`port-proxy.json`) before attach returns.
//! - Release (delete, or a failed create) kills it through a pidfd, and
//!   only if the process with that pid started when the proxy did; it
//!   waits until the proxy has exited, so the port is free on return.
//! - A crashed creator's containers are handled by the next runtime's
//!   recovery: the network of a gone container is torn down, its proxy
//!   with it.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth::extension::{write_atomic, HostProcess};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{PortMapping, Protocol};

/// The record of a container's proxy in its state directory.
pub(crate) const RECORD_FILE: &str = "port-proxy.json";

/// The first argument of the proxy program.
pub(crate) const SUBCOMMAND: &str = "port-proxy";

/// How long a UDP flow lives without a reply from the container.
const UDP_IDLE: Duration = Duration::from_secs(90);

/// What a proxy serves: the single argument after [`SUBCOMMAND`].
#[derive(Debug, Serialize, Deserialize)]
struct Spec {
    /// The namespace playing the host, to listen in.
    netns: Option<PathBuf>,
    forwards: Vec<Forward>,
}

/// One published port.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Forward {
    protocol: Protocol,
    /// The port on `[::1]`.
    host_port: u16,
    /// The container's address and port.
    target: SocketAddr,
}

/// The published ports of a container at `address` that need a proxy:
/// those on every host address (one with a host address is IPv4 only).
fn forwards(address: IpAddr, ports: &[PortMapping]) -> Vec<Forward> {
    ports
        .iter()
        .filter(|p| p.host_ip.is_none())
        .map(|p| Forward {
            protocol: p.protocol,
            host_port: p.host_port,
            target: SocketAddr::new(address, p.container_port),
        })
        .collect()
}

/// Starts the proxy for the ports of the container whose state directory
/// is `dir` (at `address`, on `network`), and records it there. Called on
/// a thread in the namespace `netns` that plays the host. Nothing is
/// started when no port needs one.
pub(crate) fn start(
    program: &Path,
    dir: &Path,
    netns: Option<&Path>,
    network: &str,
    address: IpAddr,
    ports: &[PortMapping],
) -> Result<()> {
    let forwards = forwards(address, ports);
    if forwards.is_empty() {
        return Ok(());
    }
    let spec = Spec {
        netns: netns.map(Path::to_path_buf),
        forwards,
    };
    let failed = |reason: String| Error::Network {
        network: network.to_string(),
        reason: format!("port proxy on [::1] ({}): {reason}", program.display()),
    };
    let spec = serde_json::to_string(&spec).map_err(|e| failed(e.to_string()))?;
    // A proxy reparented to a child subreaper (berth's shim is one) would
    // keep it from exiting, as the shim reaps all it inherits before it
    // goes. So this process is none while the proxy's first process runs
    // and exits: the proxy goes to the next subreaper above, or to init.
    // Nothing else is orphaned meanwhile: the container waits, blocked,
    // for its start.
    let subreaper = nix::sys::prctl::get_child_subreaper().unwrap_or(false);
    if subreaper {
        let _ = nix::sys::prctl::set_child_subreaper(false);
    }
    let answer = ask(program, &spec);
    if subreaper {
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    let (line, status) = answer?;
    let line = line.trim();
    if !status.success() {
        let why = line.strip_prefix("error: ").unwrap_or(line);
        return Err(failed(format!("{why} ({status})")));
    }
    let pid: i32 = line
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| failed(format!("unexpected answer {line:?}")))?;
    let start_time =
        start_time(pid).ok_or_else(|| failed(format!("the proxy (pid {pid}) exited at once")))?;
    let me = HostProcess::new(pid, start_time);
    let json = serde_json::to_vec(&me).map_err(|e| failed(e.to_string()))?;
    if let Err(e) = write_atomic(&dir.join(RECORD_FILE), &json) {
        let _ = kill(me);
        return Err(e.into());
    }
    Ok(())
}

/// How long the proxy's first process may take to answer and exit.
pub(crate) const ANSWER_TIME: Duration = Duration::from_secs(10);

/// Runs the proxy's first process with `spec`: its answer (one line, at
/// most 4 KiB) and its exit status, within [`ANSWER_TIME`]; a program
/// that answers nothing or never exits is killed, an error.
fn ask(program: &Path, spec: &str) -> Result<(String, std::process::ExitStatus)> {
    let mut child = Command::new(program)
        .arg(SUBCOMMAND)
        .arg(spec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .current_dir("/")
        .spawn()
        .map_err(|e| Error::io("start port proxy", program, e))?;
    let deadline = std::time::Instant::now() + ANSWER_TIME;
    let answer = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))
        .and_then(|out| first_line(out, deadline));
    let status = answer.and_then(|line| {
        // Our child until waited for: its pid cannot be recycled here.
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok((line, status));
            }
            if std::time::Instant::now() >= deadline {
                return Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    status.map_err(|e| {
        let _ = child.kill();
        let _ = child.wait();
        Error::io("wait for the port proxy's answer", program, e)
    })
}

/// The first line `out` gives before `deadline` (what came before its
/// end, if it ends first).
fn first_line(
    out: std::process::ChildStdout,
    deadline: std::time::Instant,
) -> std::io::Result<String> {
    let mut buf = read_until(out, deadline, |b| b.contains(&b'\n'))?;
    if let Some(i) = buf.iter().position(|b| *b == b'\n') {
        buf.truncate(i);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// What `out` gives until `done` holds for it or `out` ends, before
/// `deadline` (at most 4 KiB).
pub(crate) fn read_until(
    mut out: std::process::ChildStdout,
    deadline: std::time::Instant,
    done: impl Fn(&[u8]) -> bool,
) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    loop {
        if done(&buf) {
            break;
        }
        if buf.len() > 4096 {
            return Err(std::io::Error::other("an answer longer than 4 KiB"));
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
        }
        let timeout = nix::poll::PollTimeout::try_from(left).unwrap_or(nix::poll::PollTimeout::MAX);
        let mut fds = [nix::poll::PollFd::new(
            out.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, timeout) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let mut chunk = [0u8; 512];
        match out.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf)
}

/// Kills the proxy recorded in the state directory `dir`, if it still
/// runs, and removes the record. Idempotent.
pub(crate) fn stop(dir: &Path) -> Result<()> {
    stop_recorded(&dir.join(RECORD_FILE))
}

/// Kills the process recorded (a [`HostProcess`]) in the file `path`, if
/// it still runs, and removes the record. Idempotent.
pub(crate) fn stop_recorded(path: &Path) -> Result<()> {
    let path = path.to_path_buf();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    // A record cut short cannot be: it is written atomically.
    if let Ok(p) = serde_json::from_slice::<HostProcess>(&bytes) {
        kill(p)?;
    }
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// Kills `p` through a pidfd and waits until it has exited (its sockets
/// closed). A pid now used by another process is left alone.
pub(crate) fn kill(p: HostProcess) -> Result<()> {
    use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};
    let Some(pid) = Pid::from_raw(p.pid) else {
        return Ok(());
    };
    let fd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(()),
        Err(e) => return Err(Error::sys("pidfd_open of a helper process", e)),
    };
    // The pidfd names whichever process has the pid now: it is the proxy
    // only if that process started when the proxy did.
    if !p.is_alive() {
        return Ok(());
    }
    match pidfd_send_signal(&fd, Signal::KILL) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(e) => return Err(Error::sys("kill a helper process", e)),
    }
    // Readable once it has exited.
    let mut fds = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(5000u16)) {
        Ok(0) => Err(Error::sys(
            "wait for a helper process to exit",
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(Error::sys("wait for a helper process to exit", e)),
    }
}

/// Field 22 of `/proc/<pid>/stat`, `None` when the process is gone.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields are counted
    // after its last `)`, where field 3 begins.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(22 - 4)?.parse().ok()
}

/// The port proxy's `main`: what `berth port-proxy SPEC` and
/// `berth-port-proxy port-proxy SPEC` run, in a process of one thread,
/// with the spec berth-net gives them. Prints `ready PID` (the proxy's
/// pid) or `error: REASON` on stdout, and returns in the process that
/// printed it; the proxy itself runs until killed.
///
/// Not for calling from a program of its own: berth-net starts it (see
/// [`Settings::port_proxy`](crate::Settings::port_proxy)).
pub fn port_proxy_main(spec: &str) -> ExitCode {
    match run(spec) {
        Ok(Some(pid)) => {
            println!("ready {pid}");
            ExitCode::SUCCESS
        }
        // The proxy, stopped by an error of its own.
        Ok(None) => ExitCode::FAILURE,
        Err(e) => {
            println!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up the proxy and forks it: `Some(pid)` in the first process, and
/// in the proxy, `None` once serving ends (it does not, unless an error
/// stops it).
fn run(spec: &str) -> Result<Option<i32>> {
    let spec: Spec = serde_json::from_str(spec)
        .map_err(|e| Error::invalid_option(SUBCOMMAND, format!("unreadable spec: {e}")))?;
    if threads() != Some(1) {
        return Err(Error::Unsupported(
            "the port proxy must start in a process of one thread".into(),
        ));
    }
    close_inherited()?;
    // Already a group leader (a caller's choice): keep its session.
    let _ = nix::unistd::setsid();
    if let Some(ns) = &spec.netns {
        let f = std::fs::File::open(ns).map_err(|e| Error::io("open network namespace", ns, e))?;
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::io("enter network namespace", ns, e.into()))?;
    }
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    for f in &spec.forwards {
        let at = SocketAddrV6::new(Ipv6Addr::LOCALHOST, f.host_port, 0, 0);
        let taken = |e: std::io::Error| Error::Network {
            network: format!("[::1]:{}/{}", f.host_port, f.protocol.as_str()),
            reason: format!("the port proxy cannot listen: {e}"),
        };
        match f.protocol {
            Protocol::Tcp => tcp.push((std::net::TcpListener::bind(at).map_err(taken)?, f.target)),
            Protocol::Udp => udp.push((std::net::UdpSocket::bind(at).map_err(taken)?, f.target)),
        }
    }
    // SAFETY: this process has one thread (checked above), so the child
    // is a whole copy of it: no lock or allocator state is held by a
    // thread that does not exist in the child.
    match unsafe { nix::unistd::fork() }.map_err(|e| Error::sys("fork the port proxy", e))? {
        nix::unistd::ForkResult::Parent { child } => Ok(Some(child.as_raw())),
        nix::unistd::ForkResult::Child => {
            // Nothing of the creator's stays open: its pipe goes now.
            if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
                let _ = std::io::stdout().flush();
                let _ = nix::unistd::dup2_stdout(&null);
            }
            let _ = serve(tcp, udp);
            Ok(None)
        }
    }
}

/// The number of threads of this process.
fn threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Closes every descriptor above stderr that the creator left open to its
/// children (one without `O_CLOEXEC`).
fn close_inherited() -> Result<()> {
    // SAFETY: called first thing in the proxy process, before it opens
    // anything: no object of this process owns a descriptor above 2, so
    // none is closed under an owner.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if r != 0 {
        return Err(Error::sys(
            "close inherited descriptors",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Copies until killed.
fn serve(
    tcp: Vec<(std::net::TcpListener, SocketAddr)>,
    udp: Vec<(std::net::UdpSocket, SocketAddr)>,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::sys("start the port proxy's runtime", e))?;
    rt.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for (l, target) in tcp {
            l.set_nonblocking(true)
                .map_err(|e| Error::sys("listen", e))?;
            let l = tokio::net::TcpListener::from_std(l).map_err(|e| Error::sys("listen", e))?;
            tasks.spawn(tcp_loop(l, target));
        }
        for (s, target) in udp {
            s.set_nonblocking(true)
                .map_err(|e| Error::sys("listen", e))?;
            let s = tokio::net::UdpSocket::from_std(s).map_err(|e| Error::sys("listen", e))?;
            tasks.spawn(udp_loop(Arc::new(s), target));
        }
        // The loops never end.
        while tasks.join_next().await.is_some() {}
        Ok(())
    })
}

/// Each connection to `l` gets one to `target`, and bytes are copied both
/// ways until both sides have closed.
async fn tcp_loop(l: tokio::net::TcpListener, target: SocketAddr) {
    loop {
        let mut inbound = match l.accept().await {
            Ok((s, _)) => s,
            // Out of descriptors, a connection reset before accept: wait
            // a moment rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// Each client of `sock` gets a socket of its own towards `target` (a
/// flow), whose replies go back to the client from `sock`; a flow without
/// a reply for [`UDP_IDLE`] ends.
async fn udp_loop(sock: Arc<tokio::net::UdpSocket>, target: SocketAddr) {
    type Flows = Arc<Mutex<HashMap<SocketAddr, Arc<tokio::net::UdpSocket>>>>;
    let flows: Flows = Arc::default();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let known = flows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&from)
            .cloned();
        let up = match known {
            Some(up) => up,
            None => {
                let any: SocketAddr = if target.is_ipv6() {
                    (Ipv6Addr::UNSPECIFIED, 0).into()
                } else {
                    (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                };
                let Ok(up) = tokio::net::UdpSocket::bind(any).await else {
                    continue;
                };
                if up.connect(target).await.is_err() {
                    continue;
                }
                let up = Arc::new(up);
                flows
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(from, up.clone());
                let (up2, sock2, flows2) = (up.clone(), sock.clone(), flows.clone());
                tokio::spawn(async move {
                    let mut b = vec![0u8; 65_536];
                    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, up2.recv(&mut b)).await {
                        let _ = sock2.send_to(&b[..n], from).await;
                    }
                    flows2
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&from);
                });
                up
            }
        };
        let _ = up.send(&buf[..n]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ports_on_every_address_are_proxied() {
        let ports: Vec<PortMapping> = ["8080:80", "127.0.0.1:8081:81", "53:5353/udp"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let a: IpAddr = "fd00::2".parse().unwrap();
        let f = forwards(a, &ports);
        assert_eq!(f.len(), 2);
        assert_eq!(
            (f[0].host_port, f[0].target),
            (8080, "[fd00::2]:80".parse().unwrap())
        );
        assert_eq!(f[1].protocol, Protocol::Udp);
        assert!(forwards(a, &[]).is_empty());
    }

    #[test]
    fn a_bad_spec_is_an_error_not_a_panic() {
        for bad in ["", "{", "{\"netns\":null}", "[]"] {
            assert!(run(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn start_time_of_self_and_of_nothing() {
        let me = HostProcess::this().unwrap();
        assert_eq!(start_time(me.pid), Some(me.start_time));
        assert_eq!(start_time(i32::MAX), None);
    }

    #[test]
    fn a_proxy_program_that_misbehaves_is_an_error_in_bounded_time() {
        let dir = tempfile::tempdir().unwrap();
        let ports = ["8080:80".parse().unwrap()];
        let a: IpAddr = "fd00::2".parse().unwrap();
        let t = std::time::Instant::now();
        // Prints forever; answers and exits with a failure; no program.
        for program in ["/usr/bin/yes", "/bin/false", "/nonexistent/proxy"] {
            let e = start(Path::new(program), dir.path(), None, "n", a, &ports).unwrap_err();
            assert!(e.to_string().contains(program), "{e}");
        }
        assert!(t.elapsed() < ANSWER_TIME, "{:?}", t.elapsed());
        assert!(!dir.path().join(RECORD_FILE).exists());
    }

    #[test]
    fn stopping_without_a_record_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        stop(dir.path()).unwrap();
        std::fs::write(dir.path().join(RECORD_FILE), b"not json").unwrap();
        stop(dir.path()).unwrap();
        assert!(!dir.path().join(RECORD_FILE).exists());
    }
}
