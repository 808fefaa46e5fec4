//! Regression tests for published runc escapes, each named after its CVE.
//! Each attempts the attack from inside a real container and shows it
//! fails.

mod common;

use common::*;
use tokio::io::AsyncReadExt;

async fn exec_sh(ctr: &berth::Container, script: &str) -> (berth::ExitStatus, String) {
    let mut process = ctr.spec().unwrap().process().clone().unwrap();
    process.set_args(Some(vec!["sh".into(), "-c".into(), script.into()]));
    let opts = berth::ExecOptions {
        stdout: berth::Stdio::Piped,
        stderr: berth::Stdio::Piped,
        ..Default::default()
    };
    let p = ctr.exec(&process, opts).await.unwrap();
    let mut out = String::new();
    let mut err = String::new();
    let (mut o, mut e) = (p.take_stdout().unwrap(), p.take_stderr().unwrap());
    let (a, b) = tokio::join!(o.read_to_string(&mut out), e.read_to_string(&mut err));
    a.unwrap();
    b.unwrap();
    (p.wait().await.unwrap(), out + &err)
}

/// CVE-2019-5736: a process in the container reaches the runtime's own
/// binary through `/proc/<pid>/exe` of a runtime process in its pid
/// namespace (the container's init before it execs, while the container is
/// created but not started) and keeps it to overwrite later.
#[tokio::test]
async fn cve_2019_5736_proc_exe_of_the_runtime_is_unreachable() {
    let rt = runtime().await;
    let ctr = rt
        .create(&id("cve-2019-5736"), bundle(spec("true")))
        .await
        .unwrap();
    // Every other process of the pid namespace: the waiting init, and
    // this exec's own parent side if it were visible.
    let (_, out) = exec_sh(
        &ctr,
        "for p in /proc/[0-9]*; do [ $p = /proc/$$ ] && continue; \
           readlink $p/exe && echo LINK; (exec 3<$p/exe) && echo OPENED; done; echo end",
    )
    .await;
    ctr.delete(true).await.unwrap();
    let host_binary = std::env::current_exe().unwrap();
    assert!(out.contains("Permission denied"), "{out}");
    assert!(!out.contains("OPENED") && !out.contains("LINK"), "{out}");
    assert!(!out.contains(host_binary.to_str().unwrap()), "{out}");
    assert!(out.contains("end\n"), "{out}");
}

/// CVE-2024-21626: a descriptor of the runtime left open in the container's
/// process (a host directory) and a `process.cwd` of `/proc/self/fd/<n>`
/// put the process's cwd on the host, outside the rootfs. Every such cwd
/// must be refused, and the process must start with no descriptor but
/// stdio.
#[tokio::test]
async fn cve_2024_21626_no_leaked_fds_and_no_cwd_outside_the_rootfs() {
    let rt = runtime().await;
    // A host directory open in this (the runtime's) process, as runc's
    // leaked cgroup descriptor was.
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("host-secret"), "x").unwrap();
    let _held = std::fs::File::open(host_dir.path()).unwrap();
    for n in 3..40 {
        let mut s = spec("ls; pwd");
        s.process_mut()
            .as_mut()
            .unwrap()
            .set_cwd(format!("/proc/self/fd/{n}").into());
        match run(&rt, "cve-2024-21626", s).await {
            Ok(out) => assert!(
                !out.stdout.contains("host-secret"),
                "fd {n}: cwd outside the rootfs: {out:?}"
            ),
            Err(berth::Error::Init { step, .. }) => assert!(step.contains("chdir"), "{step}"),
            Err(e) => panic!("fd {n}: {e}"),
        }
    }
    // What the container's process has open.
    let out = sh(&rt, "ls /proc/self/fd | sort -n | tr '\\n' ' '").await;
    // 0-2 and the descriptor ls uses to read the directory.
    assert_eq!(out, "0 1 2 3 ", "{out}");
}

/// A volume shared by two containers: the attacker (`A`, which has it on
/// `/tmp`) plants `link` in it, pointing with `..` at `victim`, a host
/// directory; the victim container (`B`) mounts the volume on `/tmp` and
/// asks for `mount` at `/tmp/link/<name>`. Returns whether B was created.
async fn through_a_planted_link(
    rt: &TestRuntime,
    victim: &std::path::Path,
    mount: berth::oci_spec::runtime::Mount,
) -> bool {
    use berth::oci_spec::runtime::MountBuilder;
    let volume = tempfile::tempdir().unwrap();
    let bind = |dest: &str| {
        MountBuilder::default()
            .destination(dest)
            .typ("bind")
            .source(volume.path())
            .options(vec!["rbind".to_string(), "rw".to_string()])
            .build()
            .unwrap()
    };
    let with_mounts = |mut s: berth::oci_spec::runtime::Spec, extra: Vec<_>| {
        let mut m = s.mounts().clone().unwrap();
        m.extend(extra);
        s.set_mounts(Some(m));
        s
    };
    // From inside A: enough `..` to climb out of any volume, then the
    // victim's absolute path.
    let target = format!("{}{}", "../".repeat(16), victim.display());
    let a = with_mounts(
        spec(&format!("ln -s {target} /tmp/link")),
        vec![bind("/tmp")],
    );
    let out = run(rt, "attacker", a).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(volume.path().join("link").is_symlink());

    let b = with_mounts(spec("true"), vec![bind("/tmp"), mount]);
    match rt.create(&id("victim"), bundle(b)).await {
        Ok(ctr) => {
            ctr.delete(true).await.unwrap();
            true
        }
        Err(berth::Error::Init { .. }) => false,
        Err(e) => panic!("{e}"),
    }
}

/// CVE-2021-30465: a mount destination whose path, by the time the
/// runtime mounts, goes through a symlink out of the rootfs (runc lost a
/// rename race to such a swap). Destinations are resolved inside the
/// rootfs (`openat2(RESOLVE_IN_ROOT)`): nothing is created or mounted on
/// the host.
#[tokio::test]
async fn cve_2021_30465_mount_destination_symlinked_out_of_the_rootfs() {
    use berth::oci_spec::runtime::MountBuilder;
    let rt = runtime().await;
    let victim = tempfile::tempdir().unwrap();
    let tmpfs = MountBuilder::default()
        .destination("/tmp/link/mnt")
        .typ("tmpfs")
        .source("tmpfs")
        .build()
        .unwrap();
    through_a_planted_link(&rt, victim.path(), tmpfs).await;
    let left: Vec<_> = std::fs::read_dir(victim.path())
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "made on the host: {left:?}");
}

/// CVE-2024-45310: a file created on the host by the runtime (the empty
/// file a bind mount of a file needs at its destination) through a
/// crafted volume.
#[tokio::test]
async fn cve_2024_45310_no_file_created_on_the_host_through_a_volume() {
    use berth::oci_spec::runtime::MountBuilder;
    let rt = runtime().await;
    let victim = tempfile::tempdir().unwrap();
    let source = tempfile::NamedTempFile::new().unwrap();
    let file = MountBuilder::default()
        .destination("/tmp/link/planted")
        .typ("bind")
        .source(source.path())
        .options(vec!["bind".to_string()])
        .build()
        .unwrap();
    through_a_planted_link(&rt, victim.path(), file).await;
    assert!(
        !victim.path().join("planted").exists(),
        "a file was created on the host"
    );
}

/// Runs `script` in an attacker container with `volume` on `/tmp`.
async fn attacker(rt: &TestRuntime, volume: &std::path::Path, script: &str) {
    let mut a = spec(script);
    let mut m = a.mounts().clone().unwrap();
    m.push(volume_mount(volume, "/tmp"));
    a.set_mounts(Some(m));
    let out = run(rt, "attacker", a).await.unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn volume_mount(volume: &std::path::Path, dest: &str) -> berth::oci_spec::runtime::Mount {
    berth::oci_spec::runtime::MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(volume)
        .options(vec!["rbind".to_string(), "rw".to_string()])
        .build()
        .unwrap()
}

/// `spec(script)` with `volume` as its `/dev` instead of a tmpfs.
fn with_dev_from(script: &str, volume: &std::path::Path) -> berth::oci_spec::runtime::Spec {
    let mut s = spec(script);
    let mounts = s
        .mounts()
        .clone()
        .unwrap()
        .into_iter()
        .map(|m| {
            if m.destination() == std::path::Path::new("/dev") {
                volume_mount(volume, "/dev")
            } else {
                m
            }
        })
        .collect();
    s.set_mounts(Some(mounts));
    s
}

/// CVE-2025-31133: the container's `/dev/null` replaced by a symlink (here
/// planted from another container into a shared `/dev` volume) to a
/// `/proc` file, so that masking a path would bind that file over it — a
/// writable alias of a file /proc/sys keeps read-only. The runtime binds
/// only a verified null device, through its descriptor.
#[tokio::test]
async fn cve_2025_31133_masked_path_never_bound_from_a_swapped_dev_null() {
    let rt = runtime().await;
    let volume = tempfile::tempdir().unwrap();
    attacker(
        &rt,
        volume.path(),
        "ln -s /proc/sys/kernel/hostname /tmp/null",
    )
    .await;
    // /proc/keys is among the default masked paths (and, unlike
    // /proc/kcore, in every kernel).
    let b = with_dev_from("cat /proc/keys; echo end", volume.path());
    match run(&rt, "victim", b).await {
        Err(berth::Error::Init { step, path, source }) => {
            assert_eq!(source.raw_os_error(), Some(libc::ENODEV), "{path:?}");
            assert!(step.contains("mask"), "{step}")
        }
        Ok(out) => assert_eq!(out.stdout, "end\n", "/proc/keys is an alias: {out:?}"),
        Err(e) => panic!("{e}"),
    }
}

/// CVE-2025-52565: `/dev/console` replaced by a symlink, so that binding
/// the terminal onto it would bind it over the symlink's target instead.
#[tokio::test]
async fn cve_2025_52565_dev_console_symlink_is_refused() {
    let rt = runtime().await;
    let volume = tempfile::tempdir().unwrap();
    attacker(
        &rt,
        volume.path(),
        "mkdir /tmp/pts && ln -s pts/ptmx /tmp/ptmx && ln -s /proc/sys/kernel/hostname /tmp/console",
    )
    .await;
    let mut b = with_dev_from(
        "grep -c ' /proc/sys/kernel/hostname ' /proc/self/mountinfo",
        volume.path(),
    );
    b.process_mut().as_mut().unwrap().set_terminal(Some(true));
    // Nothing else in this /dev: no null device to mask paths with.
    let mut linux = b.linux().clone().unwrap();
    linux.set_masked_paths(None);
    b.set_linux(Some(linux));
    match rt.create(&id("victim"), bundle(b)).await {
        Err(berth::Error::Init { step, source, .. }) => {
            assert!(step.contains("console"), "{step}");
            assert_eq!(source.raw_os_error(), Some(libc::ELOOP), "{source}");
        }
        Ok(ctr) => {
            let mut pty = ctr.take_pty().unwrap();
            ctr.start().await.unwrap();
            let mut text = String::new();
            let _ = pty.read_to_string(&mut text).await;
            ctr.wait().await.unwrap();
            ctr.delete(true).await.unwrap();
            panic!("created with the console bound through the symlink: {text:?}");
        }
        Err(e) => panic!("{e}"),
    }
}

/// CVE-2025-52881: a file of the host (from a shared volume) mounted over
/// the `/proc/sys` file the runtime writes a sysctl to, so that the write
/// lands in the host file. The runtime writes through a procfs of its own
/// that nothing is mounted on.
#[tokio::test]
async fn cve_2025_52881_sysctl_write_not_redirected_by_a_mount_over_proc() {
    let rt = runtime().await;
    let volume = tempfile::tempdir().unwrap();
    attacker(&rt, volume.path(), "echo host-content > /tmp/victim").await;
    let mut b = spec("sleep 100");
    let mut m = b.mounts().clone().unwrap();
    m.push(
        berth::oci_spec::runtime::MountBuilder::default()
            .destination("/proc/sys/net/ipv4/ip_forward")
            .typ("bind")
            .source(volume.path().join("victim"))
            .options(vec!["bind".to_string(), "rw".to_string()])
            .build()
            .unwrap(),
    );
    b.set_mounts(Some(m));
    let mut linux = b.linux().clone().unwrap();
    linux.set_sysctl(Some(
        [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
    ));
    b.set_linux(Some(linux));
    let ctr = rt.create(&id("victim"), bundle(b)).await.unwrap();
    // The container's own network namespace got the value.
    let ns = format!("--net=/proc/{}/ns/net", ctr.pid());
    let real = std::process::Command::new("nsenter")
        .args([ns.as_str(), "cat", "/proc/sys/net/ipv4/ip_forward"])
        .output()
        .unwrap();
    ctr.delete(true).await.unwrap();
    let host = std::fs::read_to_string(volume.path().join("victim")).unwrap();
    assert_eq!(
        host, "host-content\n",
        "the sysctl was written into the host file"
    );
    assert_eq!(String::from_utf8_lossy(&real.stdout), "1\n", "{real:?}");
}
