//! Invalid specs: each gives a typed error naming the field or path, and
//! leaves nothing behind (the test runtime checks its state root and
//! cgroups when each test ends).

mod common;

use berth::oci_spec::runtime::{
    LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, MountBuilder, Spec,
};
use berth::Error;
use common::*;

fn with_mount(mut spec: Spec, destination: &str, typ: &str, source: &str) -> Spec {
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(
        MountBuilder::default()
            .destination(destination)
            .typ(typ)
            .source(source)
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));
    spec
}

/// Asserts `create` fails with an invalid-spec error on `field`.
async fn refused(rt: &TestRuntime, spec: Spec, field: &str, words: &str) -> Error {
    let id = id("invalid");
    let e = rt.create(&id, bundle(spec)).await.unwrap_err();
    match &e {
        Error::InvalidSpec { field: f, reason } => {
            assert!(f.starts_with(field), "field {f:?}, wanted {field:?}: {e}");
            assert!(
                reason.contains(words),
                "{reason:?} does not mention {words:?}"
            );
        }
        other => panic!("wanted an invalid-spec error on {field}, got {other:?}"),
    }
    assert!(!rt.config().root.join(&id).exists());
    e
}

#[tokio::test]
async fn missing_rootfs() {
    let rt = runtime().await;
    let mut spec = spec("true");
    let mut root = spec.root().clone().unwrap();
    root.set_path("/nonexistent/berth-rootfs".into());
    spec.set_root(Some(root));
    let e = refused(&rt, spec, "root.path", "/nonexistent/berth-rootfs").await;
    assert!(e.to_string().contains("No such file"), "{e}");
}

#[tokio::test]
async fn relative_mount_destination() {
    let rt = runtime().await;
    let spec = with_mount(spec("true"), "run/x", "tmpfs", "tmpfs");
    refused(&rt, spec, "mounts[", "not absolute").await;
}

#[tokio::test]
async fn escaping_mount_destination() {
    let rt = runtime().await;
    let spec = with_mount(spec("true"), "/../../etc", "tmpfs", "tmpfs");
    refused(&rt, spec, "mounts[", "escapes").await;
}

#[tokio::test]
async fn unknown_mount_type() {
    let rt = runtime().await;
    let spec = with_mount(spec("true"), "/run", "berthfs", "none");
    refused(&rt, spec, "mounts[", "berthfs").await;
}

#[tokio::test]
async fn missing_bind_source() {
    let rt = runtime().await;
    let mut spec = spec("true");
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(
        MountBuilder::default()
            .destination("/run")
            .source("/nonexistent/source")
            .options(vec!["rbind".into()])
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));
    refused(&rt, spec, "mounts[", "/nonexistent/source").await;
}

#[tokio::test]
async fn bad_uid_maps() {
    let rt = runtime().await;
    let userns = |maps: Vec<(u32, u32, u32)>| {
        let mut spec = spec("true");
        let mut linux = spec.linux().clone().unwrap();
        let mut ns = linux.namespaces().clone().unwrap();
        ns.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::User)
                .build()
                .unwrap(),
        );
        linux.set_namespaces(Some(ns));
        let m: Vec<_> = maps
            .into_iter()
            .map(|(c, h, n)| {
                LinuxIdMappingBuilder::default()
                    .container_id(c)
                    .host_id(h)
                    .size(n)
                    .build()
                    .unwrap()
            })
            .collect();
        linux.set_uid_mappings(Some(m.clone()));
        linux.set_gid_mappings(Some(m));
        spec.set_linux(Some(linux));
        spec
    };
    refused(
        &rt,
        userns(vec![(0, 1000, 0)]),
        "linux.uidMappings[0]",
        "size is 0",
    )
    .await;
    refused(
        &rt,
        userns(vec![(0, 100000, 1000), (500, 300000, 10)]),
        "linux.uidMappings[1]",
        "overlap",
    )
    .await;
    refused(
        &rt,
        userns(vec![(0, u32::MAX, 2)]),
        "linux.uidMappings[0]",
        "past the last id",
    )
    .await;
    refused(&rt, userns(vec![]), "linux.uidMappings", "empty").await;
}

#[tokio::test]
async fn missing_executable_fails_at_create() {
    let rt = runtime().await;
    let mut spec = spec("true");
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_args(Some(vec!["no-such-program".into()]));
    let id = id("noexec");
    let e = rt.create(&id, bundle(spec)).await.unwrap_err();
    match &e {
        Error::Init {
            kind,
            step,
            path,
            source,
        } => {
            assert_eq!(*kind, berth::InitStep::FindExecutable, "{e}");
            assert!(step.contains("find executable"), "{e}");
            assert_eq!(
                path.as_deref(),
                Some(std::path::Path::new("no-such-program")),
                "{e}"
            );
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT), "{e}");
        }
        other => panic!("wanted an init error, got {other:?}"),
    }
    assert!(!rt.config().root.join(&id).exists());
}

#[tokio::test]
async fn a_symlink_out_of_the_rootfs_is_refused_and_the_host_untouched() {
    let rt = runtime().await;
    // A private copy of the rootfs with crafted symlinks in it.
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(common::rootfs())
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(status.success());
    let victim = tempfile::tempdir().unwrap();
    let up = "../".repeat(rootfs.components().count() + 2);
    let rel = format!(
        "{up}{}",
        victim.path().display().to_string().trim_start_matches('/')
    );
    std::os::unix::fs::symlink(&rel, rootfs.join("evil")).unwrap();
    std::os::unix::fs::symlink(victim.path(), rootfs.join("abs")).unwrap();

    let mut base = spec("true");
    let mut root = base.root().clone().unwrap();
    root.set_path(rootfs.clone());
    base.set_root(Some(root));

    refused(
        &rt,
        with_mount(base.clone(), "/evil/sub", "tmpfs", "tmpfs"),
        "mounts[",
        "out of the rootfs",
    )
    .await;

    // An absolute symlink is followed inside the rootfs, as the container
    // sees it: the mount lands in <rootfs><victim>, never on the host's.
    let spec = with_mount(base, "/abs/sub", "tmpfs", "tmpfs");
    let out = run(&rt, "abs", spec).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_dir(victim.path()).unwrap().count(),
        0,
        "the host directory was written to"
    );
    assert!(rootfs
        .join(victim.path().strip_prefix("/").unwrap())
        .join("sub")
        .is_dir());
}

#[tokio::test]
async fn other_refusals_name_their_field() {
    let rt = runtime().await;
    let mut s = spec("true");
    s.process_mut().as_mut().unwrap().set_cwd("relative".into());
    refused(&rt, s, "process.cwd", "not absolute").await;

    let mut s = spec("true");
    s.process_mut().as_mut().unwrap().set_args(Some(vec![]));
    refused(&rt, s, "process.args", "empty").await;

    let mut s = spec("true");
    let mut linux = s.linux().clone().unwrap();
    linux.set_sysctl(Some([("kernel.panic".to_string(), "1".to_string())].into()));
    s.set_linux(Some(linux));
    refused(
        &rt,
        s,
        "linux.sysctl.kernel.panic",
        "not a namespaced sysctl",
    )
    .await;

    // No mount namespace is supported (see tests/compat.rs); one joined by
    // path is not.
    let mut s = spec("true");
    let mut linux = s.linux().clone().unwrap();
    linux.set_namespaces(Some(vec![
        berth::oci_spec::runtime::LinuxNamespaceBuilder::default()
            .typ(berth::oci_spec::runtime::LinuxNamespaceType::Mount)
            .path("/proc/self/ns/mnt")
            .build()
            .unwrap(),
    ]));
    s.set_linux(Some(linux));
    refused(&rt, s, "linux.namespaces", "mount namespace").await;

    let mut s = spec("true");
    s.process_mut()
        .as_mut()
        .unwrap()
        .set_oom_score_adj(Some(5000));
    refused(&rt, s, "process.oomScoreAdj", "5000").await;
}

#[tokio::test]
async fn bad_ids_and_duplicates() {
    let rt = runtime().await;
    let e = rt
        .create("../escape", bundle(spec("true")))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidId { .. }), "{e}");
    let ctr = create_piped(&rt, "dup", spec("true")).await.unwrap();
    let e = rt.create(ctr.id(), bundle(spec("true"))).await.unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_)), "{e}");
    ctr.start().await.unwrap();
    finish(ctr).await.unwrap();
}
