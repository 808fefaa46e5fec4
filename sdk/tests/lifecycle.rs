//! Real containers, checked from inside (what the process sees) and from
//! outside (what the host's /proc shows). Run as root.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use berth::oci_spec::runtime::{
    HookBuilder, HooksBuilder, LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    MountBuilder, PosixRlimitBuilder, PosixRlimitType, UserBuilder,
};
use berth::{Error, ExitStatus, Signal, Status};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn lines(s: &str) -> HashMap<String, String> {
    s.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn init_is_pid_one_with_its_own_hostname() {
    let rt = runtime().await;
    let out = sh(&rt, "echo pid=$$; echo host=$(hostname); echo ppid=$PPID").await;
    let v = lines(&out);
    assert_eq!(v["pid"], "1");
    assert_eq!(v["host"], "berth");
    assert_eq!(v["ppid"], "0");
}

#[tokio::test]
async fn every_namespace_differs_from_the_host() {
    let rt = runtime().await;
    let ctr = create_piped(&rt, "ns", spec("exit 0")).await.unwrap();
    for ns in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        let host = std::fs::metadata(format!("/proc/self/ns/{ns}"))
            .unwrap()
            .ino();
        let theirs = std::fs::metadata(format!("/proc/{}/ns/{ns}", ctr.pid()))
            .unwrap()
            .ino();
        assert_ne!(host, theirs, "{ns} namespace is shared with the host");
    }
    // The user namespace was not asked for, so it is the host's.
    let host = std::fs::metadata("/proc/self/ns/user").unwrap().ino();
    let theirs = std::fs::metadata(format!("/proc/{}/ns/user", ctr.pid()))
        .unwrap()
        .ino();
    assert_eq!(host, theirs);
    ctr.start().await.unwrap();
    finish(ctr).await.unwrap();
}

#[tokio::test]
async fn network_namespace_has_only_loopback_and_it_is_up() {
    let rt = runtime().await;
    let out = sh(
        &rt,
        "ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags",
    )
    .await;
    let words: Vec<_> = out.split_whitespace().collect();
    assert_eq!(words[0], "lo", "{out}");
    // IFF_UP is bit 0 of the flags.
    let flags = u32::from_str_radix(words.last().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is down: {out}");
}

#[tokio::test]
async fn mountinfo_shows_the_spec_mounts() {
    let rt = runtime().await;
    let out = sh(&rt, "cat /proc/self/mountinfo").await;
    let mounts: Vec<(String, String, String)> = out
        .lines()
        .map(|l| {
            let f: Vec<_> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-").unwrap();
            (f[4].to_string(), f[5].to_string(), f[sep + 1].to_string())
        })
        .collect();
    let find = |target: &str| {
        mounts
            .iter()
            .find(|m| m.0 == target)
            .unwrap_or_else(|| panic!("{target} not mounted:\n{out}"))
    };
    assert!(
        find("/").1.split(',').any(|o| o == "ro"),
        "root is not read-only"
    );
    assert_eq!(find("/proc").2, "proc");
    assert_eq!(find("/dev").2, "tmpfs");
    assert_eq!(find("/dev/pts").2, "devpts");
    assert_eq!(find("/dev/shm").2, "tmpfs");
    assert_eq!(find("/dev/mqueue").2, "mqueue");
    let sys = find("/sys");
    assert_eq!(sys.2, "sysfs");
    assert!(
        sys.1.split(',').any(|o| o == "ro"),
        "sysfs is not read-only"
    );
    if berth::cgroup_layout() == berth::CgroupLayout::V2 {
        assert_eq!(find("/sys/fs/cgroup").2, "cgroup2");
    } else {
        // v1 and hybrid: a tmpfs with one mount per hierarchy.
        assert_eq!(find("/sys/fs/cgroup").2, "tmpfs");
        assert!(
            mounts
                .iter()
                .any(|m| m.0 == "/sys/fs/cgroup/memory" && m.2 == "cgroup"),
            "{out}"
        );
    }
    // Nothing of the host's mount table is left.
    assert!(
        !mounts
            .iter()
            .any(|m| m.0.starts_with("/work") || m.0.starts_with("/run/berth")),
        "{out}"
    );
}

#[tokio::test]
async fn masked_and_readonly_paths_hold() {
    let rt = runtime().await;
    let out = sh(
        &rt,
        "echo keys=$(wc -c < /proc/keys); \
         echo keys_mount=$(grep -c ' /proc/keys ' /proc/self/mountinfo); \
         echo acpi=$(ls -A /proc/acpi | wc -l); \
         if echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null; then echo sys=writable; else echo sys=ro; fi; \
         if touch /proc/sysrq-trigger 2>/dev/null; then echo sysrq=writable; else echo sysrq=ro; fi; \
         if touch /newfile 2>/dev/null; then echo root=writable; else echo root=ro; fi",
    )
    .await;
    let v = lines(&out);
    assert_eq!(v["keys"], "0", "{out}");
    assert_eq!(v["keys_mount"], "1", "{out}");
    assert_eq!(v["acpi"], "0", "{out}");
    assert_eq!(v["sys"], "ro", "{out}");
    assert_eq!(v["sysrq"], "ro", "{out}");
    assert_eq!(v["root"], "ro", "{out}");
}

#[tokio::test]
async fn user_groups_umask_cwd_env_and_args() {
    let rt = runtime().await;
    let mut spec = spec("");
    let p = spec.process_mut().as_mut().unwrap();
    p.set_user(
        UserBuilder::default()
            .uid(1000u32)
            .gid(1000u32)
            .additional_gids(vec![2000u32, 65534])
            .umask(0o027u32)
            .build()
            .unwrap(),
    );
    p.set_cwd("/home/berth".into());
    p.set_env(Some(vec![
        "PATH=/bin".into(),
        "GREETING=hello world".into(),
    ]));
    p.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "echo uid=$(id -u); echo gid=$(id -g); echo groups=$(id -G); echo umask=$(umask); \
         echo cwd=$(pwd); echo greeting=$GREETING; echo arg=$1; \
         grep -E '^(Uid|Gid|Groups):' /proc/self/status | tr '\\t' ' '"
            .into(),
        "zero".into(),
        "one two".into(),
    ]));
    let out = run(&rt, "user", spec).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let v = lines(&out.stdout);
    assert_eq!(v["uid"], "1000");
    assert_eq!(v["gid"], "1000");
    assert_eq!(v["groups"], "1000 2000 65534");
    assert_eq!(v["umask"], "0027");
    assert_eq!(v["cwd"], "/home/berth");
    assert_eq!(v["greeting"], "hello world");
    assert_eq!(v["arg"], "one two");
    assert!(
        out.stdout.contains("Uid: 1000 1000 1000 1000"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Groups: 2000 65534"), "{}", out.stdout);
}

#[tokio::test]
async fn rlimits_are_set() {
    let rt = runtime().await;
    let mut spec = spec(
        "echo soft=$(ulimit -n); echo hard=$(ulimit -Hn); grep 'Max processes' /proc/self/limits",
    );
    let rl = |t, soft: u64, hard: u64| {
        PosixRlimitBuilder::default()
            .typ(t)
            .soft(soft)
            .hard(hard)
            .build()
            .unwrap()
    };
    spec.process_mut().as_mut().unwrap().set_rlimits(Some(vec![
        rl(PosixRlimitType::RlimitNofile, 123, 456),
        rl(PosixRlimitType::RlimitNproc, 77, 88),
    ]));
    let out = run(&rt, "rlimit", spec).await.unwrap();
    let v = lines(&out.stdout);
    assert_eq!(v["soft"], "123", "{out:?}");
    assert_eq!(v["hard"], "456", "{out:?}");
    let nproc: Vec<_> = out
        .stdout
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&nproc[2..4], ["77", "88"], "{out:?}");
}

#[tokio::test]
async fn sysctls_apply_inside_only() {
    let rt = runtime().await;
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let mut spec = spec("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni");
    let mut linux = spec.linux().clone().unwrap();
    let want = if host_before.trim() == "1" { "0" } else { "1" };
    linux.set_sysctl(Some(HashMap::from([
        ("net.ipv4.ip_forward".to_string(), want.to_string()),
        ("kernel.shmmni".to_string(), "1234".to_string()),
    ])));
    spec.set_linux(Some(linux));
    let out = run(&rt, "sysctl", spec).await.unwrap();
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        [want, "1234"],
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before
    );
}

#[tokio::test]
async fn oom_score_adj_and_no_new_privileges() {
    let rt = runtime().await;
    let mut spec = spec("cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status");
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_oom_score_adj(Some(500));
    let out = run(&rt, "oom", spec).await.unwrap();
    let words: Vec<_> = out.stdout.split_whitespace().collect();
    assert_eq!(words, ["500", "NoNewPrivs:", "1"], "{out:?}");
}

#[tokio::test]
async fn capabilities_follow_the_spec() {
    let rt = runtime().await;
    let out = sh(
        &rt,
        "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status",
    )
    .await;
    // oci-spec's default: AUDIT_WRITE(29), KILL(5), NET_BIND_SERVICE(10).
    let want = (1u64 << 29) | (1 << 5) | (1 << 10);
    let caps: HashMap<_, _> = out
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_string(), u64::from_str_radix(v.trim(), 16).unwrap())
        })
        .collect();
    assert_eq!(caps["CapBnd"], want, "{out}");
    assert_eq!(caps["CapEff"], want, "{out}");
    assert_eq!(caps["CapPrm"], want, "{out}");
    // The default spec also asks for the same ambient set.
    assert_eq!(caps["CapAmb"], want, "{out}");
    assert_eq!(caps["CapInh"], want, "{out}");
}

#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    let rt = runtime().await;
    let out = run(&rt, "exit", spec("exit 3")).await.unwrap();
    assert_eq!(out.status, ExitStatus::Exited(3));

    let ctr = create_piped(&rt, "kill9", spec("sleep 100")).await.unwrap();
    ctr.start().await.unwrap();
    ctr.kill(Signal::KILL).unwrap();
    assert_eq!(finish(ctr).await.unwrap().status, ExitStatus::Signaled(9));

    // A handler installed by the container's init receives SIGTERM.
    let ctr = create_piped(
        &rt,
        "term",
        spec("trap 'exit 42' TERM; echo ready; while :; do sleep 1; done"),
    )
    .await
    .unwrap();
    let mut out = ctr.take_stdout().unwrap();
    ctr.start().await.unwrap();
    let mut buf = [0u8; 6];
    out.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ready\n");
    ctr.kill(Signal::TERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), ctr.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, ExitStatus::Exited(42));
    ctr.delete().await.unwrap();
}

#[tokio::test]
async fn delete_refuses_live_containers_unless_forced() {
    let rt = runtime().await;
    let ctr = create_piped(&rt, "del", spec("sleep 100")).await.unwrap();
    assert_eq!(ctr.status().await.unwrap(), Status::Created);
    let e = ctr.delete().await.unwrap_err();
    assert!(matches!(e, Error::InvalidState { .. }), "{e}");
    ctr.start().await.unwrap();
    assert_eq!(ctr.status().await.unwrap(), Status::Running);
    let e = ctr.delete().await.unwrap_err();
    assert!(matches!(e, Error::InvalidState { .. }), "{e}");
    let dir = ctr.state_dir().to_path_buf();
    let pid = ctr.pid();
    ctr.force_delete().await.unwrap();
    assert!(!dir.exists());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} survived"
    );
    let cg = format!(
        "/sys/fs/cgroup/pids/{}/{}",
        rt.config().cgroup_parent,
        ctr.id()
    );
    assert!(!std::path::Path::new(&cg).exists(), "{cg} survived");
}

#[tokio::test]
async fn state_is_persisted_and_another_handle_sees_it() {
    let rt = runtime().await;
    let ctr = create_piped(&rt, "state", spec("sleep 100")).await.unwrap();
    let other = rt.get(ctr.id()).await.unwrap();
    let s = other.state().await.unwrap();
    assert_eq!(s.id(), ctr.id());
    assert_eq!(*s.pid(), Some(ctr.pid()));
    assert_eq!(format!("{}", s.status()), "created");
    assert!(rt.list().await.unwrap().iter().any(|s| s.id() == ctr.id()));

    // Start through the other handle, as `berth start` from another
    // process would.
    other.start().await.unwrap();
    assert_eq!(ctr.status().await.unwrap(), Status::Running);
    let e = other.start().await.unwrap_err();
    assert!(matches!(e, Error::InvalidState { .. }), "{e}");
    ctr.kill(Signal::KILL).unwrap();
    assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Signaled(9));
    assert_eq!(other.status().await.unwrap(), Status::Stopped);
    // The parent recorded the exit status for everyone.
    assert_eq!(
        rt.get(ctr.id()).await.unwrap().wait().await.unwrap(),
        ExitStatus::Signaled(9)
    );
    ctr.delete().await.unwrap();
    assert!(matches!(
        rt.get(ctr.id()).await.unwrap_err(),
        Error::NotFound(_)
    ));
}

#[tokio::test]
async fn piped_stdin_reaches_the_container() {
    let rt = runtime().await;
    let mut opts = berth::CreateOptions::default();
    opts.stdin = berth::Stdio::Piped;
    opts.stdout = berth::Stdio::Piped;
    opts.stderr = berth::Stdio::Null;
    let ctr = rt
        .create_with(&id("stdin"), bundle(spec("tr a-z A-Z")), opts)
        .await
        .unwrap();
    let mut stdin = ctr.take_stdin().unwrap();
    let mut stdout = ctr.take_stdout().unwrap();
    ctr.start().await.unwrap();
    stdin.write_all(b"hello container\n").await.unwrap();
    drop(stdin);
    let mut text = String::new();
    stdout.read_to_string(&mut text).await.unwrap();
    assert_eq!(text, "HELLO CONTAINER\n");
    assert!(ctr.wait().await.unwrap().success());
    ctr.delete().await.unwrap();
}

#[tokio::test]
async fn terminal_gives_the_container_a_pty() {
    let rt = runtime().await;
    let mut spec = spec("tty; test -t 0 && echo stdin-is-a-tty; ls -l /dev/console | cut -c1");
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_terminal(Some(true));
    let ctr = rt.create(&id("pty"), bundle(spec)).await.unwrap();
    let mut pty = ctr.take_pty().expect("a pty");
    ctr.start().await.unwrap();
    let mut text = String::new();
    pty.read_to_string(&mut text).await.unwrap();
    assert!(ctr.wait().await.unwrap().success(), "{text}");
    ctr.delete().await.unwrap();
    let text = text.replace('\r', "");
    let lines: Vec<_> = text.lines().collect();
    assert!(
        lines[0].starts_with("/dev/pts/") || lines[0] == "/dev/console",
        "{text}"
    );
    assert_eq!(lines[1], "stdin-is-a-tty", "{text}");
    assert_eq!(lines[2], "c", "{text}");
}

#[tokio::test]
async fn bind_mounts_with_options() {
    let rt = runtime().await;
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("hello"), "from the host\n").unwrap();
    let mut spec = spec(
        "cat /run/data/hello; if touch /run/data/x 2>/dev/null; then echo writable; else echo ro; fi; \
         grep ' /run/data ' /proc/self/mountinfo | cut -d' ' -f6",
    );
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(
        MountBuilder::default()
            .destination("/run")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec!["nosuid".into()])
            .build()
            .unwrap(),
    );
    mounts.push(
        MountBuilder::default()
            .destination("/run/data")
            .source(host.path())
            .options(vec![
                "bind".into(),
                "ro".into(),
                "nosuid".into(),
                "nodev".into(),
            ])
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));
    let out = run(&rt, "bind", spec).await.unwrap();
    let l: Vec<_> = out.stdout.lines().collect();
    assert_eq!(l[0], "from the host", "{out:?}");
    assert_eq!(l[1], "ro", "{out:?}");
    let opts: Vec<_> = l[2].split(',').collect();
    for o in ["ro", "nosuid", "nodev"] {
        assert!(opts.contains(&o), "{o} missing in {opts:?}");
    }
    assert!(!host.path().join("x").exists());
}

/// Mount destinations missing several components are made, one inside
/// the other (directories; a file for a file's bind mount), where only
/// the deepest existing one is found by a single resolution.
#[tokio::test]
async fn mount_destinations_missing_several_components() {
    let rt = runtime().await;
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("hello"), "deep\n").unwrap();
    let mut spec =
        spec("cat /run/a/b/c/hello; cat /run/x/y/file; stat -c %F /run/a /run/a/b /run/x/y/file");
    let mut mounts = spec.mounts().clone().unwrap();
    let tmpfs = MountBuilder::default()
        .destination("/run")
        .typ("tmpfs")
        .source("tmpfs")
        .build()
        .unwrap();
    let bind = |source: std::path::PathBuf, destination: &str| {
        MountBuilder::default()
            .destination(destination)
            .source(source)
            .options(vec!["bind".into()])
            .build()
            .unwrap()
    };
    mounts.push(tmpfs);
    mounts.push(bind(host.path().to_path_buf(), "/run/a/b/c"));
    mounts.push(bind(host.path().join("hello"), "/run/x/y/file"));
    spec.set_mounts(Some(mounts));
    let out = run(&rt, "deep-dest", spec).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let l: Vec<_> = out.stdout.lines().collect();
    assert_eq!(
        l,
        ["deep", "deep", "directory", "directory", "regular file"],
        "{out:?}"
    );
}

#[tokio::test]
async fn joins_namespaces_of_another_container() {
    let rt = runtime().await;
    let a = create_piped(&rt, "host-a", spec("sleep 100"))
        .await
        .unwrap();
    a.start().await.unwrap();
    let mut spec =
        spec("echo pid=$$; echo host=$(hostname); readlink /proc/self/ns/net; ps -o args");
    let mut linux = spec.linux().clone().unwrap();
    let mut namespaces = linux.namespaces().clone().unwrap();
    for ns in namespaces.iter_mut() {
        let name = match ns.typ() {
            LinuxNamespaceType::Network => "net",
            LinuxNamespaceType::Uts => "uts",
            LinuxNamespaceType::Pid => "pid",
            _ => continue,
        };
        ns.set_path(Some(format!("/proc/{}/ns/{name}", a.pid()).into()));
    }
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    spec.set_hostname(None);
    let out = run(&rt, "joiner", spec).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let l: Vec<_> = out.stdout.lines().collect();
    assert_ne!(l[0], "pid=1", "joined pid namespace but is init: {out:?}");
    assert_eq!(l[1], "host=berth");
    let a_net = std::fs::read_link(format!("/proc/{}/ns/net", a.pid())).unwrap();
    assert_eq!(l[2], a_net.to_str().unwrap());
    assert!(
        l[3..].contains(&"sleep 100"),
        "A's sleep is not visible: {out:?}"
    );
    a.force_delete().await.unwrap();
}

#[tokio::test]
async fn user_namespace_maps_root_to_an_unprivileged_host_id() {
    let rt = runtime().await;
    let mut spec = spec("id -u; cat /proc/self/uid_map /proc/self/gid_map | tr -s ' '; sleep 1");
    let mut linux = spec.linux().clone().unwrap();
    let mut namespaces = linux.namespaces().clone().unwrap();
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::User)
            .build()
            .unwrap(),
    );
    linux.set_namespaces(Some(namespaces));
    let map = LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(200000u32)
        .size(65536u32)
        .build()
        .unwrap();
    linux.set_uid_mappings(Some(vec![map]));
    linux.set_gid_mappings(Some(vec![map]));
    spec.set_linux(Some(linux));
    // v1 cgroupfs cannot be mounted from a user namespace.
    let mounts = spec
        .mounts()
        .clone()
        .unwrap()
        .into_iter()
        .filter(|m| m.typ().as_deref() != Some("cgroup"))
        .collect();
    spec.set_mounts(Some(mounts));
    let ctr = create_piped(&rt, "userns", spec).await.unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", ctr.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some("200000"),
        "{uid_line}"
    );
    ctr.start().await.unwrap();
    let out = finish(ctr).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let l: Vec<_> = out.stdout.lines().map(str::trim).collect();
    assert_eq!(l[0], "0");
    assert_eq!(l[1], "0 200000 65536");
    assert_eq!(l[2], "0 200000 65536");
}

#[tokio::test]
async fn the_container_is_in_its_cgroup_until_deleted() {
    let rt = runtime().await;
    let ctr = create_piped(&rt, "cg", spec("cat /proc/self/cgroup"))
        .await
        .unwrap();
    let host_view = std::fs::read_to_string(format!("/proc/{}/cgroup", ctr.pid())).unwrap();
    let want = format!("/{}/{}", rt.config().cgroup_parent, ctr.id());
    for line in host_view.lines() {
        let (_, path) = line.rsplit_once(':').unwrap();
        assert_eq!(path, want, "{host_view}");
    }
    ctr.start().await.unwrap();
    let id = ctr.id().to_string();
    let out = finish(ctr).await.unwrap();
    // Inside its cgroup namespace the container sees itself at the root.
    assert!(
        out.stdout.lines().all(|l| l.ends_with(":/")),
        "{}",
        out.stdout
    );
    for h in ["pids", "memory", "cpu", "freezer", "unified"] {
        let p = format!("/sys/fs/cgroup/{h}/{}/{id}", rt.config().cgroup_parent);
        assert!(!std::path::Path::new(&p).exists(), "{p} survived delete");
    }
}

#[tokio::test]
async fn hooks_run_in_order_with_the_state_on_stdin() {
    let rt = runtime().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let hook = |name: &str| {
        HookBuilder::default()
            .path("/bin/sh")
            .args(vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "echo {name} $(readlink /proc/self/ns/mnt) $(cat | tr -d '\\n') >> {}",
                    log.display()
                ),
            ])
            .build()
            .unwrap()
    };
    let mut spec = spec("true");
    spec.set_hooks(Some(
        HooksBuilder::default()
            .create_runtime(vec![hook("createRuntime")])
            .create_container(vec![hook("createContainer")])
            .poststart(vec![hook("poststart")])
            .poststop(vec![hook("poststop")])
            .build()
            .unwrap(),
    ));
    let ctr = create_piped(&rt, "hooks", spec).await.unwrap();
    let mnt = std::fs::read_link(format!("/proc/{}/ns/mnt", ctr.pid())).unwrap();
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let id = ctr.id().to_string();
    ctr.start().await.unwrap();
    finish(ctr).await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let l: Vec<Vec<&str>> = text.lines().map(|l| l.splitn(3, ' ').collect()).collect();
    let names: Vec<_> = l.iter().map(|f| f[0]).collect();
    assert_eq!(
        names,
        ["createRuntime", "createContainer", "poststart", "poststop"],
        "{text}"
    );
    assert_eq!(
        l[0][1],
        host_mnt.to_str().unwrap(),
        "createRuntime runs in the runtime's namespace"
    );
    assert_eq!(
        l[1][1],
        mnt.to_str().unwrap(),
        "createContainer runs in the container's namespace"
    );
    for f in &l {
        let state: serde_json::Value = serde_json::from_str(f[2]).unwrap();
        assert_eq!(state["id"], id.as_str());
    }
    let statuses: Vec<_> = l
        .iter()
        .map(|f| serde_json::from_str::<serde_json::Value>(f[2]).unwrap()["status"].clone())
        .collect();
    assert_eq!(statuses, ["creating", "creating", "running", "stopped"]);
}

#[tokio::test]
async fn a_failing_hook_fails_create_and_leaves_nothing() {
    let rt = runtime().await;
    let mut spec = spec("true");
    spec.set_hooks(Some(
        HooksBuilder::default()
            .create_runtime(vec![HookBuilder::default()
                .path("/bin/false")
                .build()
                .unwrap()])
            .build()
            .unwrap(),
    ));
    let id = id("badhook");
    let e = rt.create(&id, bundle(spec)).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Hook {
                kind: "createRuntime",
                ..
            }
        ),
        "{e}"
    );
    assert!(!rt.config().root.join(&id).exists());
    assert!(!std::path::Path::new(&format!(
        "/sys/fs/cgroup/pids/{}/{id}",
        rt.config().cgroup_parent
    ))
    .exists());
}

#[tokio::test]
async fn dropping_a_create_future_leaves_no_container() {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let rt = runtime().await;
    let id = id("dropped");
    // The state directory may come and go between two looks: inotify sees
    // it appear (renamed into place) whenever that happens.
    let watch = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
    watch
        .add_watch(
            &rt.config().root,
            AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CREATE,
        )
        .unwrap();
    let fut = rt.create(&id, bundle(spec("true")));
    // Let it get under way, then give up on it.
    let _ = tokio::time::timeout(Duration::from_micros(200), fut).await;
    // The create task finishes on its own and cleans up after itself: its
    // state directory appears (it may not have yet) and goes again.
    let dir = rt.config().root.join(&id);
    let mut seen = false;
    for _ in 0..500 {
        seen |= dir.exists();
        seen |= watch.read_events().is_ok_and(|events| {
            events
                .iter()
                .any(|e| e.name.as_deref() == Some(std::ffi::OsStr::new(&id)))
        });
        if seen && !dir.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(seen, "the abandoned create never made {id}");
    assert!(
        !rt.config().root.join(&id).exists(),
        "abandoned container {id} was left behind"
    );
}

#[tokio::test]
async fn exec_joins_every_namespace_and_the_cgroup() {
    let rt = runtime().await;
    let ctr = create_piped(&rt, "exec", spec("sleep 100")).await.unwrap();
    ctr.start().await.unwrap();
    let mut process = spec("").process().clone().unwrap();
    process.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "id -u; hostname; for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done; echo $MARK".into(),
    ]));
    process.set_env(Some(vec!["PATH=/bin".into(), "MARK=exec'd".into()]));
    process.set_user(
        UserBuilder::default()
            .uid(1000u32)
            .gid(1000u32)
            .build()
            .unwrap(),
    );
    let mut opts = berth::ExecOptions::default();
    opts.stdout = berth::Stdio::Piped;
    let p = ctr.exec(&process, opts).await.unwrap();
    let mut out = p.take_stdout().unwrap();
    let mut text = String::new();
    out.read_to_string(&mut text).await.unwrap();
    assert!(p.wait().await.unwrap().success(), "{text}");
    let l: Vec<_> = text.lines().collect();
    assert_eq!(l[0], "1000");
    assert_eq!(l[1], "berth");
    for (i, n) in ["pid", "net", "ipc", "uts", "mnt", "cgroup"]
        .iter()
        .enumerate()
    {
        let theirs = std::fs::read_link(format!("/proc/{}/ns/{n}", ctr.pid())).unwrap();
        assert_eq!(
            l[2 + i],
            theirs.to_str().unwrap(),
            "{n} namespace not joined"
        );
    }
    assert_eq!(l[8], "exec'd");

    // It runs in the container's cgroup.
    process.set_args(Some(vec!["sleep".into(), "100".into()]));
    let sleeper = ctr.exec(&process, Default::default()).await.unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", sleeper.pid())).unwrap();
    for line in cgroup.lines() {
        assert!(
            line.ends_with(&format!("/{}", ctr.id())),
            "not in the container's cgroup: {cgroup}"
        );
    }
    sleeper.kill(Signal::KILL).unwrap();
    assert_eq!(sleeper.wait().await.unwrap(), ExitStatus::Signaled(9));

    // A missing program is an error of exec, not a silent exit.
    process.set_args(Some(vec!["no-such-program".into()]));
    let e = ctr.exec(&process, Default::default()).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Init {
                kind: berth::InitStep::FindExecutable,
                ..
            }
        ),
        "{e}"
    );
    ctr.force_delete().await.unwrap();
}

#[tokio::test]
async fn spec_devices_and_dev_symlinks() {
    let rt = runtime().await;
    let mut spec = spec(
        "stat -c '%F %t %T %a %u' /dev/fuse /dev/null; for l in /dev/ptmx /dev/fd /dev/stdin; do readlink $l; done; \
         echo x > /dev/null && echo null-writable",
    );
    let mut linux = spec.linux().clone().unwrap();
    linux.set_devices(Some(vec![
        berth::oci_spec::runtime::LinuxDeviceBuilder::default()
            .path("/dev/fuse")
            .typ(berth::oci_spec::runtime::LinuxDeviceType::C)
            .major(10i64)
            .minor(229i64)
            .file_mode(0o640u32)
            .uid(1000u32)
            .build()
            .unwrap(),
    ]));
    spec.set_linux(Some(linux));
    let out = run(&rt, "dev", spec).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let l: Vec<_> = out.stdout.lines().collect();
    assert_eq!(l[0], "character special file a e5 640 1000", "{out:?}");
    assert_eq!(l[1], "character special file 1 3 666 0", "{out:?}");
    assert_eq!(&l[2..5], ["pts/ptmx", "/proc/self/fd", "/proc/self/fd/0"]);
    assert_eq!(l[5], "null-writable");
}

#[tokio::test]
async fn no_pivot_moves_the_rootfs_over_the_root() {
    let rt = runtime().await;
    let mut opts = berth::CreateOptions::default();
    opts.stdin = berth::Stdio::Null;
    opts.stdout = berth::Stdio::Piped;
    opts.stderr = berth::Stdio::Piped;
    opts.no_pivot = true;
    let ctr = rt
        .create_with(
            &id("nopivot"),
            bundle(spec("ls /; grep -c . /proc/self/mountinfo")),
            opts,
        )
        .await
        .unwrap();
    ctr.start().await.unwrap();
    let out = finish(ctr).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.lines().any(|l| l == "bin"), "{out:?}");
    assert!(
        !out.stdout.contains("work"),
        "the host's root is visible: {out:?}"
    );
}

#[tokio::test]
async fn a_hook_past_its_timeout_fails_create() {
    let rt = runtime().await;
    let mut spec = spec("true");
    spec.set_hooks(Some(
        HooksBuilder::default()
            .create_runtime(vec![HookBuilder::default()
                .path("/bin/sleep")
                .args(vec!["sleep".into(), "30".into()])
                .timeout(1i64)
                .build()
                .unwrap()])
            .build()
            .unwrap(),
    ));
    let started = std::time::Instant::now();
    let e = rt.create(&id("slowhook"), bundle(spec)).await.unwrap_err();
    assert!(
        matches!(&e, Error::Hook { reason, .. } if reason.contains("timed out")),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the hook was not stopped"
    );
}

/// A container waiting for `start` holds none of the embedding process's
/// descriptors: a pipe whose write end the process closes reaches EOF, and
/// the waiting process has stdio, its sync socket and the exec fifo only.
#[tokio::test]
async fn a_created_container_holds_no_descriptor_of_its_creator() {
    let rt = runtime().await;
    let (reader, writer) = nix::unistd::pipe().unwrap();
    let ctr = create_piped(&rt, "fds", spec("true")).await.unwrap();
    drop(writer);
    let mut reader = tokio::net::unix::pipe::Receiver::from_owned_fd(reader).unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut reader, &mut buf),
    )
    .await
    .expect("the pipe never reached EOF: the container holds its write end")
    .unwrap();
    assert_eq!(n, 0);
    // What the waiting process holds beyond stdio: its sync socket, the
    // exec fifo, the sources of its stdio, and what its own steps opened
    // (the new root, a private procfs); never the creator's epoll, eventfd
    // or other pipes.
    let (mut stdio, mut held) = (Vec::new(), Vec::new());
    for e in std::fs::read_dir(format!("/proc/{}/fd", ctr.pid())).unwrap() {
        let e = e.unwrap();
        let fd: u32 = e.file_name().to_string_lossy().parse().unwrap();
        let target = std::fs::read_link(e.path())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if fd > 2 {
            held.push(target)
        } else {
            stdio.push(target)
        }
    }
    let sockets = held.iter().filter(|t| t.starts_with("socket:")).count();
    assert_eq!(sockets, 1, "{held:?}");
    assert!(
        held.iter().all(|t| t.starts_with("socket:")
            || t.ends_with("exec.fifo")
            || t == "/"
            || stdio.contains(t)),
        "{held:?} (stdio {stdio:?})"
    );
    ctr.start().await.unwrap();
    finish(ctr).await.unwrap();
}
