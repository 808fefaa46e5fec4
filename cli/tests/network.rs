//! `--network`, `--publish` and `berth state`'s network through the binary,
//! with a network namespace of the test's own playing the host.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// A state root and a host namespace, removed at the end.
struct Fixture {
    root: PathBuf,
    netns: String,
}

impl Fixture {
    fn new() -> Fixture {
        berth_fixtures::require_root();
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!(
            "berth-cli-net-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        assert!(Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success());
        let lo = ["-n", &name, "link", "set", "lo", "up"];
        assert!(Command::new("ip").args(lo).status().unwrap().success());
        Fixture {
            root: PathBuf::from("/run").join(&name),
            netns: name,
        }
    }

    fn host_netns(&self) -> String {
        format!("/run/netns/{}", self.netns)
    }

    fn berth(&self, args: &[&str]) -> Output {
        // Files, not pipes: a created container inherits them.
        let out = tempfile::tempfile().unwrap();
        let err = tempfile::tempfile().unwrap();
        let status = Command::new(BERTH)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap())
            .status()
            .unwrap();
        let read = |f: std::fs::File| {
            use std::io::{Read, Seek};
            let mut f = f;
            let mut v = Vec::new();
            f.rewind().unwrap();
            f.read_to_end(&mut v).unwrap();
            v
        };
        Output {
            status,
            stdout: read(out),
            stderr: read(err),
        }
    }

    fn in_host(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(self.root.join("network"));
            let _ = std::fs::remove_dir(&self.root);
        }
    }
}

fn bundle(args: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut spec =
        berth_fixtures::bundle::spec(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let mut root = spec.root().clone().unwrap();
    root.set_path(berth_fixtures::rootfs::shared().unwrap());
    spec.set_root(Some(root));
    berth_fixtures::bundle::write_config(dir.path(), &spec).unwrap();
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn network_flags_connect_and_state_shows_the_address() {
    let f = Fixture::new();
    let host = f.host_netns();
    let net = [
        "--network",
        "bridge=clinet",
        "--subnet",
        "10.201.0.0/24",
        "--host-netns",
        &host,
    ];

    let b = bundle(&["sh", "-c", "ip -4 -o addr show eth0; cat /etc/hostname"]);
    let mut args = vec!["run", "--bundle", path(b.path())];
    args.extend(net);
    args.push("netrun");
    let out = f.berth(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("inet 10.201.0.2/24"), "{stdout}");

    let b = bundle(&["sleep", "100"]);
    let mut args = vec![
        "create",
        "--bundle",
        path(b.path()),
        "-p",
        "127.0.0.1:18200:80",
    ];
    args.extend(net);
    args.push("netstate");
    let out = f.berth(&args);
    assert!(out.status.success(), "{out:?}");
    let state: serde_json::Value =
        serde_json::from_slice(&f.berth(&["state", "netstate"]).stdout).unwrap();
    assert_eq!(state["network"]["address"], "10.201.0.2");
    assert_eq!(state["network"]["bridge"], "clinet");
    assert_eq!(state["network"]["ports"][0]["host_port"], 18200);
    assert!(f
        .in_host(&["nft", "list", "ruleset"])
        .contains("dnat to 10.201.0.2:80"));

    // A bad --publish is refused before anything exists.
    let mut args = vec!["create", "--bundle", path(b.path()), "-p", "80"];
    args.extend(net);
    args.push("netbad");
    let out = f.berth(&args);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOST_PORT:CONTAINER_PORT"));

    // A network from --network-config, with a range of its subnet.
    let conf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        conf.path(),
        r#"[{"name": "fromfile", "bridge": "ff0", "subnet": "10.203.0.0/24", "range": "10.203.0.64/26"}]"#,
    )
    .unwrap();
    let b2 = bundle(&["ip", "-4", "-o", "addr", "show", "eth0"]);
    let out = f.berth(&[
        "run",
        "--bundle",
        path(b2.path()),
        "--network",
        "bridge=fromfile",
        "--network-config",
        path(conf.path()),
        "--host-netns",
        &host,
        "netfile",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("inet 10.203.0.66/24"), "{stdout}");

    assert!(f.berth(&["delete", "--force", "netstate"]).status.success());
    assert_eq!(f.in_host(&["nft", "list", "ruleset"]).trim(), "");
    let links = f.in_host(&["ip", "-o", "link", "show"]);
    assert_eq!(links.lines().count(), 1, "only lo: {links}");
}

#[test]
fn network_cni_runs_the_plugins_of_a_conflist() {
    let f = Fixture::new();
    let host = f.host_netns();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    let list = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "clicni",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "clicni0",
                "isGateway": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": "10.212.0.0/24" }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": dir.path().join("ipam"),
                },
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
        ],
    });
    std::fs::write(conf.join("cli.conflist"), list.to_string()).unwrap();
    let leases = || {
        std::fs::read_dir(dir.path().join("ipam/clicni"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("10."))
            .count()
    };
    let net = [
        "--network",
        "cni=clicni",
        "--cni-conf-dir",
        path(&conf),
        "--cni-bin-dir",
        "/usr/lib/cni",
        "--host-netns",
        &host,
    ];

    let b = bundle(&["ip", "-4", "-o", "addr", "show", "eth0"]);
    let mut args = vec!["run", "--bundle", path(b.path())];
    args.extend(net);
    args.push("cnirun");
    let out = f.berth(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("inet 10.212.0.2/24"), "{stdout}");
    assert_eq!(leases(), 0, "run deletes, and DEL releases the lease");

    let b = bundle(&["sleep", "100"]);
    let mut args = vec!["create", "--bundle", path(b.path()), "-p", "18210:80"];
    args.extend(net);
    args.push("cnistate");
    let out = f.berth(&args);
    assert!(out.status.success(), "{out:?}");
    let state: serde_json::Value =
        serde_json::from_slice(&f.berth(&["state", "cnistate"]).stdout).unwrap();
    assert_eq!(state["network"]["driver"], "cni");
    assert_eq!(state["network"]["network"], "clicni");
    assert_eq!(state["network"]["bridge"], "clicni0");
    assert_eq!(leases(), 1);
    assert!(f
        .in_host(&["nft", "list", "ruleset"])
        .contains("dport 18210"));
    assert!(f.berth(&["delete", "--force", "cnistate"]).status.success());
    assert_eq!(leases(), 0);
    assert!(!f
        .in_host(&["nft", "list", "ruleset"])
        .contains("dport 18210"));

    // A network that is not in the directory.
    let mut args = vec!["create", "--bundle", path(b.path())];
    args.extend(net);
    args[4] = "cni=nope";
    args.push("cnibad");
    let out = f.berth(&args);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no CNI configuration named"),
        "{out:?}"
    );
}

#[test]
fn subnet6_makes_a_dual_stack_bridge() {
    let f = Fixture::new();
    let host = f.host_netns();
    let b = bundle(&[
        "sh",
        "-c",
        "ip -6 -o addr show eth0 scope global; ip -6 route",
    ]);
    let out = f.berth(&[
        "run",
        "--bundle",
        path(b.path()),
        "--network",
        "bridge=cli6",
        "--subnet",
        "10.213.0.0/24",
        "--subnet6",
        "fd00:213::/64",
        "--host-netns",
        &host,
        "cli6run",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("inet6 fd00:213::2/64"), "{stdout}");
    assert!(stdout.contains("default via fd00:213::1"), "{stdout}");
    assert_eq!(f.in_host(&["nft", "list", "ruleset"]).trim(), "");

    // --subnet6 alone is refused.
    let out = f.berth(&[
        "run",
        "--bundle",
        path(b.path()),
        "--subnet6",
        "fd00:213::/64",
        "cli6bad",
    ]);
    assert!(!out.status.success());
}

/// Whether process `pid` that started at `start` still runs (not a
/// zombie, not a recycled pid).
fn runs(pid: i64, start: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.first() != Some(&"Z") && f.get(19).and_then(|s| s.parse().ok()) == Some(start)
}

fn json_of(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// A published port of a dual-stack network answers on `[::1]` through
/// the `berth port-proxy` process the CLI starts; with captured output (a
/// shim parents the container) the shim still exits when the container
/// does, not held by the proxy; delete stops the proxy.
#[test]
fn a_published_port_answers_on_ipv6_loopback_through_the_port_proxy() {
    let f = Fixture::new();
    let host = f.host_netns();
    let b = bundle(&["sh", "-c", "echo pong | nc -l -p 8000"]);
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("ctr.log");
    let out = f.berth(&[
        "create",
        "--bundle",
        path(b.path()),
        "--network",
        "bridge=cli7",
        "--subnet",
        "10.214.0.0/24",
        "--subnet6",
        "fd00:214::/64",
        "--publish",
        "18130:8000",
        "--host-netns",
        &host,
        "--log-path",
        path(&log),
        "cli7",
    ]);
    assert!(out.status.success(), "{out:?}");
    let dir = f.root.join("cli7");
    let proxy = json_of(&dir.join("port-proxy.json"));
    let (ppid, pstart) = (
        proxy["pid"].as_i64().unwrap(),
        proxy["start_time"].as_u64().unwrap(),
    );
    assert!(runs(ppid, pstart), "the proxy died with the CLI");
    let shim = json_of(&dir.join("state.json"))["shim"].clone();
    let (spid, sstart) = (
        shim["pid"].as_i64().unwrap(),
        shim["start_time"].as_u64().unwrap(),
    );
    assert!(f.berth(&["start", "cli7"]).status.success());

    let ns = PathBuf::from(&host);
    let got = std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        for _ in 0..200 {
            let to: std::net::SocketAddr = "[::1]:18130".parse().unwrap();
            if let Ok(mut s) =
                std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_secs(1))
            {
                use std::io::Read;
                let mut text = String::new();
                if s.read_to_string(&mut text).is_ok() && !text.is_empty() {
                    return text;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        String::new()
    })
    .join()
    .unwrap();
    assert_eq!(got, "pong\n");

    // The container exits after one connection, and its shim with it.
    for _ in 0..200 {
        if !runs(spid, sstart) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!runs(spid, sstart), "the shim stays (held by the proxy?)");
    assert!(runs(ppid, pstart), "the proxy went before delete");

    let out = f.berth(&["delete", "cli7"]);
    assert!(out.status.success(), "{out:?}");
    assert!(!runs(ppid, pstart), "the proxy outlived delete");
    assert_eq!(f.in_host(&["nft", "list", "ruleset"]).trim(), "");
}
