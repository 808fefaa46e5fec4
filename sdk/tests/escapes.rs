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
