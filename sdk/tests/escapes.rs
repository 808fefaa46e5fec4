//! Regression tests for published runc escapes, each named after its CVE.
//! Each attempts the attack from inside a real container and shows it
//! fails.

mod common;

use common::*;
use tokio::io::AsyncReadExt;

async fn exec_sh(ctr: &berth::Container, script: &str) -> (berth::ExitStatus, String) {
    let mut process = ctr.spec().await.unwrap().process().clone().unwrap();
    process.set_args(Some(vec!["sh".into(), "-c".into(), script.into()]));
    let mut opts = berth::ExecOptions::default();
    opts.stdout = berth::Stdio::Piped;
    opts.stderr = berth::Stdio::Piped;
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
    ctr.force_delete().await.unwrap();
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
            Err(berth::Error::Init { kind, step, .. }) => {
                assert_eq!(kind, berth::InitStep::Chdir, "{step}")
            }
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
            ctr.force_delete().await.unwrap();
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
        Err(berth::Error::Init {
            kind,
            step,
            path,
            source,
        }) => {
            assert_eq!(source.raw_os_error(), Some(libc::ENODEV), "{path:?}");
            assert_eq!(kind, berth::InitStep::MaskPath, "{step}");
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
        Err(berth::Error::Init {
            kind, step, source, ..
        }) => {
            assert_eq!(kind, berth::InitStep::Console, "{step}");
            assert!(step.contains("console"), "{step}");
            assert_eq!(source.raw_os_error(), Some(libc::ELOOP), "{source}");
        }
        Ok(ctr) => {
            let mut pty = ctr.take_pty().unwrap();
            ctr.start().await.unwrap();
            let mut text = String::new();
            let _ = pty.read_to_string(&mut text).await;
            ctr.wait().await.unwrap();
            ctr.force_delete().await.unwrap();
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
    ctr.force_delete().await.unwrap();
    let host = std::fs::read_to_string(volume.path().join("victim")).unwrap();
    assert_eq!(
        host, "host-content\n",
        "the sysctl was written into the host file"
    );
    assert_eq!(String::from_utf8_lossy(&real.stdout), "1\n", "{real:?}");
}

/// `spec` with `CAP_SYS_PTRACE` in the bounding, effective and permitted
/// sets: what `--cap-add SYS_PTRACE` gives, and what lets a process of the
/// container ignore the dumpable flag of others in its pid namespace.
fn with_ptrace(mut spec: berth::oci_spec::runtime::Spec) -> berth::oci_spec::runtime::Spec {
    berth_fixtures::bundle::add_capability(
        &mut spec,
        berth::oci_spec::runtime::Capability::SysPtrace,
    );
    spec
}

/// What a process with `CAP_SYS_PTRACE` sees of pid 1 of its pid namespace
/// (a created container's init, waiting for `start`): where its exe link
/// points, whether it opens, and the files its memory maps.
const LOOK_AT_PID_1: &str = "echo exe=$(readlink /proc/1/exe); \
    (exec 3</proc/1/exe) && echo OPENED; \
    echo maps:; cut -c74- /proc/1/maps | sort -u";

fn assert_pid_1_is_the_sealed_waiter(out: &str) {
    let host_binary = std::env::current_exe().unwrap();
    assert!(
        out.contains("exe=/memfd:berth-waiter (deleted)"),
        "pid 1 is not berth-waiter: {out}"
    );
    assert!(
        !out.contains(host_binary.to_str().unwrap()),
        "pid 1 shows the embedder's binary: {out}"
    );
}

/// CVE-2019-5736 with `CAP_SYS_PTRACE`: the dumpable flag does not stop a
/// process holding it, so the created container's init must not *be* the
/// runtime: it waits as the sealed `berth-waiter`, whose memfd nobody can
/// write. (`cli/tests/escapes.rs` carries the full overwrite attempt.)
#[tokio::test]
async fn cve_2019_5736_with_cap_sys_ptrace_the_waiting_init_is_sealed() {
    let rt = runtime().await;
    let ctr = rt
        .create(
            &id("cve-2019-5736-ptrace"),
            bundle(with_ptrace(spec("true"))),
        )
        .await
        .unwrap();
    let (_, out) = exec_sh(
        &ctr,
        &format!(
            "{LOOK_AT_PID_1}; exec 3</proc/1/exe; \
             (printf '#!/bin/sh\\n' >/proc/self/fd/3) 2>/dev/null && echo WROTE; \
             (printf x >>/proc/self/fd/3) 2>/dev/null && echo APPENDED; echo end"
        ),
    )
    .await;
    ctr.force_delete().await.unwrap();
    assert_pid_1_is_the_sealed_waiter(&out);
    assert!(
        out.contains("OPENED"),
        "CAP_SYS_PTRACE should open it: {out}"
    );
    assert!(!out.contains("WROTE") && !out.contains("APPENDED"), "{out}");
    assert!(out.contains("end\n"), "{out}");
}

/// The memory variant: with the init cloned sharing the embedder's memory
/// (posix_spawn style), `/proc/1/mem` of a waiting init was this process's
/// own memory. A process of the container with `CAP_SYS_PTRACE` writes a
/// canary of ours through it and reads it back; neither may reach us.
#[tokio::test]
async fn a_waiting_init_shares_no_memory_with_the_embedder() {
    let canary: Box<[u8; 16]> = Box::new(*b"berth-canary-ok!");
    let addr = canary.as_ptr() as usize;
    let rt = runtime().await;
    let ctr = rt
        .create(&id("embedder-memory"), bundle(with_ptrace(spec("true"))))
        .await
        .unwrap();
    let (_, out) = exec_sh(
        &ctr,
        &format!(
            "{LOOK_AT_PID_1}; \
             printf PWNED-BY-CONTAIN | dd of=/proc/1/mem bs=1 seek={addr} count=16 conv=notrunc; \
             echo read=$(dd if=/proc/1/mem bs=1 skip={addr} count=16 2>/dev/null); echo end"
        ),
    )
    .await;
    ctr.force_delete().await.unwrap();
    // SAFETY: reads our own live allocation; volatile so the compiler
    // cannot assume it unchanged since the write above.
    let now = unsafe { std::ptr::read_volatile(canary.as_ptr() as *const [u8; 16]) };
    assert_eq!(
        &now, b"berth-canary-ok!",
        "the container wrote our memory: {out}"
    );
    assert!(
        !out.contains("read=berth-canary-ok!"),
        "our memory was read: {out}"
    );
    assert_pid_1_is_the_sealed_waiter(&out);
    assert!(out.contains("end\n"), "{out}");
}

/// The same from a second container that joins the first one's pid
/// namespace by path (a pod's shared pid namespace) and holds
/// `CAP_SYS_PTRACE`: the first one's waiting init is still only the
/// sealed waiter.
#[tokio::test]
async fn a_container_joining_the_pid_namespace_finds_only_the_sealed_waiter() {
    use berth::oci_spec::runtime::LinuxNamespaceType;
    let rt = runtime().await;
    let first = rt
        .create(&id("pod-first"), bundle(spec("true")))
        .await
        .unwrap();
    let mut second = with_ptrace(spec(LOOK_AT_PID_1));
    let mut linux = second.linux().clone().unwrap();
    let mut namespaces = linux.namespaces().clone().unwrap();
    for ns in &mut namespaces {
        if ns.typ() == LinuxNamespaceType::Pid {
            ns.set_path(Some(format!("/proc/{}/ns/pid", first.pid()).into()));
        }
    }
    linux.set_namespaces(Some(namespaces));
    second.set_linux(Some(linux));
    let out = run(&rt, "pod-second", second).await.unwrap();
    first.force_delete().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_pid_1_is_the_sealed_waiter(&out.stdout);
}

/// The embedder's own dumpable flag never changes, whatever berth does:
/// sampled on another thread while containers are created (shared-memory
/// and fork-like children), wait for `start`, run and are deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedder_stays_dumpable_while_containers_wait_for_start() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let rt = runtime().await;
    let stop = Arc::new(AtomicBool::new(false));
    let (samples, cleared) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let sampler = {
        let (stop, samples, cleared) = (stop.clone(), samples.clone(), cleared.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: PR_GET_DUMPABLE takes no pointer and changes nothing.
                if unsafe { libc::prctl(libc::PR_GET_DUMPABLE) } != 1 {
                    cleared.fetch_add(1, Ordering::Relaxed);
                }
                samples.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    for _ in 0..3 {
        let first = rt
            .create(&id("dumpable"), bundle(spec("true")))
            .await
            .unwrap();
        // Joining its pid namespace makes a fork-like child.
        let mut joiner = spec("true");
        let mut linux = joiner.linux().clone().unwrap();
        let mut namespaces = linux.namespaces().clone().unwrap();
        for ns in &mut namespaces {
            if ns.typ() == berth::oci_spec::runtime::LinuxNamespaceType::Pid {
                ns.set_path(Some(format!("/proc/{}/ns/pid", first.pid()).into()));
            }
        }
        linux.set_namespaces(Some(namespaces));
        joiner.set_linux(Some(linux));
        let second = rt.create(&id("dumpable"), bundle(joiner)).await.unwrap();
        let (_, out) = exec_sh(&first, "echo hi").await;
        assert_eq!(out, "hi\n");
        second.force_delete().await.unwrap();
        first.start().await.unwrap();
        first.wait().await.unwrap();
        first.delete().await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert!(samples.load(Ordering::Relaxed) > 0);
    assert_eq!(
        cleared.load(Ordering::Relaxed),
        0,
        "the embedder was non-dumpable in {} of {} samples",
        cleared.load(Ordering::Relaxed),
        samples.load(Ordering::Relaxed)
    );
}
