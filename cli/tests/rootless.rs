//! Rootless: an unprivileged host user runs `berth` with a user namespace
//! that maps it to root. The test (root) drops to `nobody` with setpriv.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// `nobody`.
const UID: u32 = 65534;

/// `berth <args>` as `nobody`, with `xdg` as its `$XDG_RUNTIME_DIR` and no
/// `--root`: the state root must default to `$XDG_RUNTIME_DIR/berth`.
fn berth_as_nobody(xdg: &Path, args: &[&str]) -> Output {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let status = Command::new("setpriv")
        .args([
            format!("--reuid={UID}"),
            format!("--regid={UID}"),
            "--clear-groups".into(),
            "--".into(),
            "env".into(),
            "-u".into(),
            "BERTH_ROOT".into(),
            format!("XDG_RUNTIME_DIR={}", xdg.display()),
            BERTH.into(),
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .unwrap();
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut s = String::new();
        f.rewind().unwrap();
        f.read_to_string(&mut s).unwrap();
        s.into_bytes()
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A directory `nobody` owns.
fn owned_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(d.path(), Some(UID), Some(UID)).unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

#[test]
fn rootless_container_runs_as_an_unprivileged_host_user_mapped_to_root() {
    berth_fixtures::require_root();
    let xdg = owned_dir();
    let bundle = owned_dir();
    let b = bundle.path().to_str().unwrap();
    // berth spec --rootless, as the user would.
    ok(berth_as_nobody(
        xdg.path(),
        &["spec", "--rootless", "--bundle", b],
    ));
    let config = bundle.path().join("config.json");
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    spec["root"]["path"] = berth_fixtures::rootfs::shared()
        .unwrap()
        .to_str()
        .unwrap()
        .into();
    spec["process"]["terminal"] = false.into();
    let write = |args: Value| {
        let mut s = spec.clone();
        s["process"]["args"] = args;
        std::fs::write(&config, s.to_string()).unwrap();
    };

    // Inside, the process is root, and root is nobody outside.
    write(serde_json::json!([
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map"
    ]));
    let id = format!("rootless-{}", std::process::id());
    let out = ok(berth_as_nobody(xdg.path(), &["run", "--bundle", b, &id]));
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words, ["0", "0", &UID.to_string(), "1"], "{out}");

    write(serde_json::json!(["sleep", "100"]));
    ok(berth_as_nobody(xdg.path(), &["create", "--bundle", b, &id]));
    let state: Value =
        serde_json::from_str(&ok(berth_as_nobody(xdg.path(), &["state", &id]))).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    // State lives under $XDG_RUNTIME_DIR/berth.
    assert!(xdg.path().join("berth").join(&id).is_dir());

    // On the host, every id of the container's process is nobody's ...
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids: Vec<u32> = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|u| u.parse().unwrap())
        .collect();
    assert_eq!(uids, [UID; 4], "{status}");
    // ... in a user namespace of its own that maps root to nobody.
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", &UID.to_string(), "1"],
        "{map}"
    );
    let own_ns = std::fs::read_link("/proc/self/ns/user").unwrap();
    let its_ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    assert_ne!(own_ns, its_ns, "no user namespace");
    // No cgroup was delegated to nobody: the container has none of its own.
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(!cgroups.contains(&id), "{cgroups}");

    ok(berth_as_nobody(xdg.path(), &["delete", "--force", &id]));
    assert!(!xdg.path().join("berth").join(&id).exists());
    assert!(std::fs::read_dir(xdg.path().join("berth"))
        .unwrap()
        .next()
        .is_none());
}

/// A bundle of `user`'s own, made by `berth spec --rootless` run as that
/// user, on the shared rootfs and without a terminal: its directory, its
/// `config.json`, and the spec to edit and write there.
fn rootless_bundle(
    user: &berth_fixtures::users::TestUser,
) -> (tempfile::TempDir, std::path::PathBuf, Value) {
    let bundle = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(bundle.path(), Some(user.uid), Some(user.gid)).unwrap();
    let b = bundle.path().to_str().unwrap();
    ok(berth_as(user, &["spec", "--rootless", "--bundle", b]));
    let config = bundle.path().join("config.json");
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    spec["root"]["path"] = berth_fixtures::rootfs::shared()
        .unwrap()
        .to_str()
        .unwrap()
        .into();
    spec["process"]["terminal"] = false.into();
    (bundle, config, spec)
}

/// `berth <args>` as `user`, stdio in files (a container it leaves behind
/// must not hold a pipe we read).
fn berth_as(user: &berth_fixtures::users::TestUser, args: &[&str]) -> Output {
    berth_fixtures::output_via_files(user.command(BERTH).args(args))
}

/// Waits (10 s at most) until nothing of `user`'s runs: a killed process
/// reparented when `create` exited, or a shim ending after `delete`, may
/// take a moment to be reaped.
fn assert_no_process_left(user: &berth_fixtures::users::TestUser) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !user.processes().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "left behind: {:?}",
            user.processes()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The real uid of `pid` on the host.
fn host_uid(pid: i64) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_real_user_runs_a_container_of_its_subordinate_ids_and_execs_ps_kills_deletes_it() {
    berth_fixtures::require_root();
    let user = berth_fixtures::users::TestUser::create("brc").unwrap();
    let (subuid, subgid) = (user.subuid.0, user.subgid.0);
    let (bundle, config, mut spec) = rootless_bundle(&user);
    let b = bundle.path().to_str().unwrap();
    // 0..65536 inside: the user's subordinate ranges outside.
    spec["linux"]["uidMappings"] =
        serde_json::json!([{"containerID": 0, "hostID": subuid, "size": 65536}]);
    spec["linux"]["gidMappings"] =
        serde_json::json!([{"containerID": 0, "hostID": subgid, "size": 65536}]);
    spec["mounts"].as_array_mut().unwrap().push(serde_json::json!(
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}
    ));
    for set in ["bounding", "effective", "permitted"] {
        spec["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push("CAP_CHOWN".into());
    }
    let write = |args: Value| {
        let mut s = spec.clone();
        s["process"]["args"] = args;
        std::fs::write(&config, s.to_string()).unwrap();
    };
    let id = format!("rootless-subids-{}", std::process::id());

    // id, chown 1000 and ls -ln inside show the container's ids.
    write(serde_json::json!([
        "sh",
        "-c",
        "id -u; id -g; touch /tmp/f; chown 1000:1000 /tmp/f; ls -ln /tmp/f; \
         tr -s ' ' </proc/self/uid_map"
    ]));
    let out = ok(berth_as(&user, &["run", "--bundle", b, &id]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0..2], ["0", "0"], "{out}");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>()[2..4],
        ["1000", "1000"],
        "{out}"
    );
    assert_eq!(lines[3].trim(), format!("0 {subuid} 65536"), "{out}");

    write(serde_json::json!([
        "sh",
        "-c",
        "touch /tmp/f && chown 1000:1000 /tmp/f && exec sleep 1000"
    ]));
    ok(berth_as(&user, &["create", "--bundle", b, &id]));
    ok(berth_as(&user, &["start", &id]));
    let state: Value = serde_json::from_str(&ok(berth_as(&user, &["state", &id]))).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    assert!(user.xdg().join("berth").join(&id).is_dir());
    // Root inside is the first subordinate uid outside.
    assert_eq!(host_uid(pid), subuid);
    // The file chowned to 1000 inside is subuid+1000 outside (once the
    // script got there).
    let f = format!("/proc/{pid}/root/tmp/f");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    use std::os::unix::fs::MetadataExt;
    while std::fs::metadata(&f).map_or(true, |m| m.uid() != subuid + 1000) {
        assert!(std::time::Instant::now() < deadline, "{f} never chowned");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(std::fs::metadata(&f).unwrap().gid(), subgid + 1000);

    // berth exec, from another process of the user's.
    let out = ok(berth_as(
        &user,
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "id -u; ls -ln /tmp/f; tr -s ' ' </proc/self/gid_map; echo $$",
        ],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "{out}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>()[2..4],
        ["1000", "1000"],
        "{out}"
    );
    assert_eq!(lines[2].trim(), format!("0 {subgid} 65536"), "{out}");
    // In the container's pid namespace, where sleep is 1.
    assert!(lines[3].parse::<i32>().unwrap() > 1, "{out}");

    // With a terminal (berth copies it to its stdout).
    let out = ok(berth_as(
        &user,
        &["exec", "--tty", &id, "sh", "-c", "tty; id -u"],
    ));
    assert!(out.contains("/dev/pts/"), "{out:?}");

    // ps: the container has no cgroup (none delegated here); its pid
    // namespace lists it.
    let out = ok(berth_as(&user, &["ps", "--format", "json", &id]));
    let pids: Vec<i64> = serde_json::from_str(&out).unwrap();
    assert_eq!(pids, [pid], "{out}");
    let out = ok(berth_as(&user, &["ps", &id]));
    assert!(out.contains("sleep 1000"), "{out}");

    ok(berth_as(&user, &["kill", &id, "KILL"]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let state: Value = serde_json::from_str(&ok(berth_as(&user, &["state", &id]))).unwrap();
        if state["status"] == "stopped" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{state}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    ok(berth_as(&user, &["delete", &id]));
    assert!(!user.xdg().join("berth").join(&id).exists());
    assert!(std::fs::read_dir(user.xdg().join("berth"))
        .unwrap()
        .next()
        .is_none());
    assert_no_process_left(&user);
    let name = user.name.clone();
    drop(user);
    for f in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(!text.contains(&format!("{name}:")), "{f}: {text}");
    }
}

#[test]
fn a_user_without_subordinate_ids_gets_an_error_naming_the_range() {
    berth_fixtures::require_root();
    let user = berth_fixtures::users::TestUser::create_without_subordinate_ids("brn").unwrap();
    let (bundle, config, mut spec) = rootless_bundle(&user);
    let b = bundle.path().to_str().unwrap();
    spec["process"]["args"] = serde_json::json!(["true"]);
    // Its own uid as root, and 1..65536 from a range it does not have.
    spec["linux"]["uidMappings"] = serde_json::json!([
        {"containerID": 0, "hostID": user.uid, "size": 1},
        {"containerID": 1, "hostID": 200000, "size": 65535}
    ]);
    std::fs::write(&config, spec.to_string()).unwrap();
    let id = format!("rootless-nosubids-{}", std::process::id());
    let out = berth_as(&user, &["run", "--bundle", b, &id]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("linux.uidMappings[1]")
            && err.contains("200000-265534")
            && err.contains(&format!("/etc/subuid has no range for {}", user.name)),
        "{err}"
    );
    // Refused before anything existed.
    assert!(!user.xdg().join("berth").join(&id).exists());

    // An image's layers need the ranges too: refused, naming them, and
    // no snapshot is left.
    let layout = tempfile::tempdir().unwrap();
    std::fs::set_permissions(layout.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    berth_fixtures::image::write_layout(
        layout.path(),
        "bb",
        &[(
            berth_fixtures::image::busybox_layer(),
            berth_fixtures::image::Comp::Gzip,
        )],
        &berth_fixtures::image::sh("true"),
        false,
    );
    let images = env!("CARGO_BIN_EXE_berth-images");
    let l = layout.path().to_str().unwrap();
    ok(berth_fixtures::output_via_files(
        user.command(images).args(["import", l, "test/bb"]),
    ));
    let out = berth_as(&user, &["run", "--image", "test/bb", &id]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("/etc/subuid has no range for {}", user.name)),
        "{err}"
    );
    let snapshots = user.xdg().join("berth/images/snapshots");
    assert_eq!(std::fs::read_dir(&snapshots).unwrap().count(), 0);
    assert!(!user.xdg().join("berth").join(&id).exists());
    assert!(user.processes().is_empty());
}

/// Rootless podman (`podman --runtime berth` as the user, its own storage;
/// no network, then podman's slirp4netns): podman runs berth as root of the user's namespace, which
/// berth treats as rootless (as runc does).
#[test]
fn rootless_podman_runs_berth_as_a_real_user() {
    berth_fixtures::require_root();
    let user = berth_fixtures::users::TestUser::create("brp").unwrap();
    let dir = tempfile::Builder::new()
        .prefix("berth-rootless-podman-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    for sub in ["", "store"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
        std::os::unix::fs::chown(d.join(sub), Some(user.uid), Some(user.gid)).unwrap();
    }
    std::fs::write(
        d.join("containers.conf"),
        "[containers]\nnetns = \"none\"\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
    )
    .unwrap();
    let tar = d.join("rootfs.tar");
    let rootfs = berth_fixtures::rootfs::shared().unwrap();
    let status = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
    let tun_scratch = d.join("tun");
    let podman = |args: &[&str]| -> Output {
        let mut c = user.command_with_tun("podman", &tun_scratch);
        c.env("HOME", d.join("store"))
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("store/root"))
            .arg("--runroot")
            .arg(user.xdg().join("run"))
            .arg("--tmpdir")
            .arg(user.xdg().join("tmp"))
            .args([
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--storage-driver",
                "vfs",
                "--runtime",
                BERTH,
            ])
            .args(args);
        berth_fixtures::output_via_files(&mut c)
    };
    // Whatever happens, podman's own state goes (the user's drop then
    // kills what is left and removes the user).
    struct Reset<'a>(&'a dyn Fn(&[&str]) -> Output);
    impl Drop for Reset<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["rm", "--all", "--force", "--time", "0"]);
            let _ = (self.0)(&["system", "reset", "--force"]);
        }
    }
    let _reset = Reset(&podman);

    ok(podman(&[
        "import",
        tar.to_str().unwrap(),
        "localhost/berth-test:latest",
    ]));
    let out = ok(podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/berth-test",
        "echo",
        "hi",
    ]));
    assert_eq!(out, "hi\n");

    let id = ok(podman(&[
        "run",
        "-d",
        "--network",
        "none",
        "localhost/berth-test",
        "sleep",
        "1000",
    ]));
    let id = id.trim();
    // berth keeps its state under the user's $XDG_RUNTIME_DIR.
    assert!(user.xdg().join("berth").join(id).is_dir());
    let out = ok(podman(&["exec", id, "sh", "-c", "echo exec $$; id -u"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("exec "), "{out}");
    assert_ne!(lines[0], "exec 1", "{out}");
    assert_eq!(lines[1], "0", "{out}");
    let out = ok(podman(&["exec", "-t", id, "tty"]));
    assert!(out.starts_with("/dev/pts/"), "{out:?}");
    let status = ok(podman(&["inspect", "--format", "{{.State.Status}}", id]));
    assert_eq!(status.trim(), "running");
    ok(podman(&["stop", "--time", "1", id]));
    let status = ok(podman(&["inspect", "--format", "{{.State.Status}}", id]));
    assert_eq!(status.trim(), "exited");
    ok(podman(&["rm", id]));
    assert!(!user.xdg().join("berth").join(id).exists());

    // podman's own rootless network: slirp4netns, started by podman on the
    // network namespace of the container berth made; 10.0.2.2 is the
    // host's loopback.
    let port = loopback_http_server();
    let url = format!("http://10.0.2.2:{port}/");
    let out = ok(podman(&[
        "run",
        "--rm",
        "--network",
        "slirp4netns:allow_host_loopback=true",
        "localhost/berth-test",
        "wget",
        "-q",
        "-O-",
        &url,
    ]));
    assert_eq!(out, "from-the-hos", "{out}");
}

/// `berth <args>` as `user`, with a `/dev/net/tun` it can open
/// ([`TestUser::command_with_tun`](berth_fixtures::users::TestUser::command_with_tun)).
fn berth_as_with_tun(
    user: &berth_fixtures::users::TestUser,
    scratch: &Path,
    args: &[&str],
) -> Output {
    let mut cmd = user.command_with_tun(BERTH, scratch);
    cmd.args(args);
    berth_fixtures::output_via_files(&mut cmd)
}

/// An HTTP server on 127.0.0.1 only, answering `from-the-hos` (its
/// Content-Length cuts the body short, as `wget` shows it); its port.
fn loopback_http_server() -> u16 {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in server.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\nfrom-the-host");
        }
    });
    port
}

/// A real user's container on `--network slirp4netns` reaches a server on
/// the host's loopback through 10.0.2.2, from `run` and (slirp4netns
/// having outlived `create`) from `exec`, and publishes a port on the
/// host's loopback; recovery after a crash and delete leave no process.
#[test]
fn a_real_users_container_on_slirp4netns_reaches_the_hosts_loopback() {
    berth_fixtures::require_root();
    if Command::new("slirp4netns")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("slirp4netns is not installed (scripts/install-deps.sh)");
    }
    let port = loopback_http_server();
    let user = berth_fixtures::users::TestUser::create("brs").unwrap();
    let (bundle, config, spec) = rootless_bundle(&user);
    let b = bundle.path().to_str().unwrap();
    let write = |args: Value| {
        let mut s = spec.clone();
        s["process"]["args"] = args;
        std::fs::write(&config, s.to_string()).unwrap();
    };
    let url = format!("http://10.0.2.2:{port}/");
    let id = format!("rootless-slirp-{}", std::process::id());

    write(serde_json::json!([
        "sh",
        "-c",
        format!("ip -4 addr show tap0 | grep -o 'inet [0-9./]*'; wget -q -O- {url}")
    ]));
    let scratch = bundle.path().join("tun");
    let out = ok(berth_as_with_tun(
        &user,
        &scratch,
        &["run", "--network", "slirp4netns", "--bundle", b, &id],
    ));
    assert_eq!(out, "inet 10.0.2.100/24\nfrom-the-hos", "{out}");

    // create exits; slirp4netns stays, a process of the user's.
    // A port published on the host's loopback, forwarded by slirp4netns.
    let host_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let publish = format!("127.0.0.1:{host_port}:8000");
    write(serde_json::json!([
        "nc",
        "-ll",
        "-p",
        "8000",
        "-e",
        "echo",
        "from-the-container"
    ]));
    ok(berth_as_with_tun(
        &user,
        &scratch,
        &[
            "create",
            "--network",
            "slirp4netns",
            "-p",
            &publish,
            "--bundle",
            b,
            &id,
        ],
    ));
    let slirp: Vec<i32> = user
        .processes()
        .into_iter()
        .filter(|p| {
            // (The one of `run`, killed, may still await its reaping.)
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .is_ok_and(|s| s.contains("(slirp4netns) ") && !s.contains(") Z "))
        })
        .collect();
    let show = |ps: &[i32]| {
        ps.iter()
            .map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert_eq!(slirp.len(), 1, "{:#?}", show(&user.processes()));
    // It holds none of its creator's descriptors: /dev/null, its log,
    // and its own sockets and devices.
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", slirp[0]))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_link(e.path()).unwrap().display().to_string())
        .collect();
    assert!(
        fds.iter()
            .all(|f| !f.starts_with("pipe:") && !f.contains("/dev/pts")),
        "{fds:?}"
    );
    ok(berth_as(&user, &["start", &id]));
    let out = ok(berth_as(&user, &["exec", &id, "wget", "-q", "-O-", &url]));
    assert_eq!(out, "from-the-hos", "{out}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        use std::io::Read;
        let mut got = String::new();
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", host_port)) {
            let _ = s.read_to_string(&mut got);
        }
        if got == "from-the-container\n" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{got:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // The container's process killed (as by a crash): the next runtime's
    // recovery (`run` of another container) stops its slirp4netns.
    let state: Value = serde_json::from_str(&ok(berth_as(&user, &["state", &id]))).unwrap();
    let pid = state["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let gone = |p: i32| {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        stat.is_empty() || stat.contains(") Z ")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gone(pid) {
        assert!(std::time::Instant::now() < deadline, "{pid} still runs");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!gone(slirp[0]));
    write(serde_json::json!(["true"]));
    let other = format!("{id}-other");
    ok(berth_as(&user, &["run", "--bundle", b, &other]));
    assert!(gone(slirp[0]), "recovery left slirp4netns {}", slirp[0]);
    // Its published port is free again.
    drop(std::net::TcpListener::bind(("127.0.0.1", host_port)).unwrap());
    assert!(!user
        .xdg()
        .join("berth")
        .join(&id)
        .join("slirp4netns.json")
        .exists());
    ok(berth_as(&user, &["delete", "--force", &id]));
    let left: Vec<_> = std::fs::read_dir(user.xdg().join("berth"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_no_process_left(&user);
}

/// An image whose files belong to several users, pulled from a registry and
/// run by a real user with subordinate ids: the layers are written as the
/// container's users (in a user namespace with the container's mappings),
/// the container's overlay is mounted in its own user namespace, and
/// inside, owners, whiteouts and opaque directories are the image's.
/// Delete, `rmi` and the store's garbage collection remove what the user
/// cannot remove itself; nothing is left.
#[test]
fn a_real_user_runs_an_image_whose_files_belong_to_other_users() {
    use berth_fixtures::image::{busybox_layer, sh, write_layout, Comp, Layer};
    berth_fixtures::require_root();
    let user = berth_fixtures::users::TestUser::create("bri").unwrap();
    let layout = tempfile::tempdir().unwrap();
    std::fs::set_permissions(layout.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let owned = Layer::new()
        .owned_dir("srv", 0o755, 33, 33)
        .owned_file("srv/www", b"w", 0o644, 33, 33)
        .dir("home", 0o755)
        .owned_dir("home/u", 0o755, 1000, 1001)
        .owned_file("home/u/note", b"n", 0o644, 1000, 1001)
        .file("etc/gone", b"g", 0o644)
        .dir("opq", 0o755)
        .file("opq/old", b"o", 0o644)
        .into_tar();
    let deletes = Layer::new()
        .file("etc/.wh.gone", b"", 0o644)
        .dir("opq", 0o755)
        .file("opq/.wh..wh..opq", b"", 0o644)
        .file("opq/new", b"n", 0o644)
        .into_tar();
    write_layout(
        layout.path(),
        "owned",
        &[
            (busybox_layer(), Comp::Gzip),
            (owned, Comp::Gzip),
            (deletes, Comp::Plain),
        ],
        &sh(
            "stat -c '%u:%g %n' /srv /srv/www /home/u /home/u/note; ls /opq; \
             test -e /etc/gone && echo gone-present || echo gone-absent; id -u; \
             touch /tmp/x && stat -c '%u:%g' /tmp/x",
        ),
        false,
    );
    // Pushed to a registry on the host's loopback (from a store of
    // root's own), pulled from there by the user.
    let images = env!("CARGO_BIN_EXE_berth-images");
    let registry = berth_fixtures::image::Registry::start();
    let reference = format!("{}/rootless/owned:1", registry.addr());
    let root_store = tempfile::tempdir().unwrap();
    let as_root = |args: &[&str]| -> Output {
        berth_fixtures::output_via_files(
            Command::new(images)
                .arg("--root")
                .arg(root_store.path())
                .args(args),
        )
    };
    let l = layout.path().to_str().unwrap();
    ok(as_root(&["import", l, &reference]));
    ok(as_root(&["push", &reference]));
    let as_user = |program: &str, args: &[&str]| -> Output {
        berth_fixtures::output_via_files(user.command(program).args(args))
    };
    ok(as_user(images, &["pull", &reference]));
    let store = user.xdg().join("berth/images");

    let id = format!("rootless-image-{}", std::process::id());
    let out = ok(as_user(BERTH, &["run", "--image", &reference, &id]));
    assert_eq!(
        out,
        "33:33 /srv\n33:33 /srv/www\n1000:1001 /home/u\n1000:1001 /home/u/note\n\
         new\ngone-absent\n0\n0:0\n",
        "{out}"
    );
    // Unpacked for the run: on the host, the layer's files belong to the user's subordinate ids:
    // container id n (n ≥ 1) is host id first + n - 1.
    let www = std::fs::read_dir(store.join("layers"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("srv/www"))
        .find(|p| p.exists())
        .expect("a layer with srv/www");
    let meta = std::fs::metadata(&www).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.uid(), meta.gid()),
        (user.subuid.0 + 32, user.subgid.0 + 32),
        "{}",
        www.display()
    );

    // The overlay was mounted in the container only.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&id), "{mounts}");
    // `run` deleted it: its writable layer went with it.
    assert!(!store.join("snapshots").join(&id).exists());

    // A writable layer with a directory of 1000's (not the user's to
    // empty): removed all the same.
    let out = ok(as_user(
        BERTH,
        &[
            "run",
            "--image",
            &reference,
            "--user",
            "1000:1001",
            &id,
            "sh",
            "-c",
            "mkdir /tmp/d && touch /tmp/d/f && stat -c '%u:%g' /tmp/d/f",
        ],
    ));
    assert_eq!(out, "1000:1001\n");
    assert!(!store.join("snapshots").join(&id).exists());

    // Created for later (a shim keeps it, and mounts its overlay in the
    // container's namespaces), started, exec'd into, killed, deleted.
    ok(as_user(
        BERTH,
        &["create", "--image", &reference, &id, "sleep", "1000"],
    ));
    ok(as_user(BERTH, &["start", &id]));
    let out = ok(as_user(
        BERTH,
        &["exec", &id, "stat", "-c", "%u:%g", "/srv/www"],
    ));
    assert_eq!(out, "33:33\n");
    ok(as_user(BERTH, &["kill", &id, "KILL"]));
    ok(as_user(BERTH, &["delete", "--force", &id]));
    assert!(!store.join("snapshots").join(&id).exists());

    ok(as_user(images, &["rmi", &reference]));
    let layers: Vec<_> = std::fs::read_dir(store.join("layers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(layers.is_empty(), "layers left: {layers:?}");
    assert_no_process_left(&user);
}
