//! Images: content store, layer unpack, overlay snapshots, commit,
//! rollback and GC, with real containers (root).

#[path = "../../sdk/tests/common/mod.rs"]
mod common;
mod images_support;

use std::fs;
use std::path::Path;

use berth::{CreateOptions, Stdio};
use berth_image::{digest, Error, ImageOverrides};
use common::{finish, id, TestRuntime};

/// A runtime of the test's own, with image snapshots.
async fn runtime() -> TestRuntime {
    let mut config = common::config();
    config
        .extensions
        .push(std::sync::Arc::new(berth_image::Snapshots::default()));
    common::runtime_with(config).await
}
use images_support::*;

fn piped() -> CreateOptions {
    {
        let mut create_options = CreateOptions::default();
        create_options.stdin = Stdio::Null;
        create_options.stdout = Stdio::Piped;
        create_options.stderr = Stdio::Piped;
        create_options
    }
}

/// Runs a container from `image` (with `cmd` if given) to its end.
async fn run_image(rt: &berth::Runtime, image: &str, cmd: Option<&str>) -> common::Output {
    let mut overrides = ImageOverrides::default();
    overrides.cmd = cmd.map(|c| vec!["sh".into(), "-c".into(), c.into()]);
    let ctr = berth_image::create_container(rt, &id("img"), image, overrides, piped())
        .await
        .expect("create from image");
    ctr.start().await.unwrap();
    finish(ctr).await.unwrap()
}

/// A three-layer image: busybox (gzip); /etc/greeting, /data/old and
/// /opq/{a,b} (zstd); then a whiteout of /data/old, an opaque /opq with
/// only /opq/c, and /data/new (plain tar).
fn three_layers() -> Vec<(Vec<u8>, Comp)> {
    let l2 = Layer::new()
        .dir("etc", 0o755)
        .file("etc/greeting", b"hello from layer 2\n", 0o644)
        .dir("data", 0o755)
        .file("data/old", b"old\n", 0o644)
        .dir("opq", 0o755)
        .file("opq/a", b"a\n", 0o644)
        .file("opq/b", b"b\n", 0o644)
        .into_tar();
    let l3 = Layer::new()
        .file("data/.wh.old", b"", 0o644)
        .file("data/new", b"new\n", 0o600)
        .dir("opq", 0o755)
        .file("opq/.wh..wh..opq", b"", 0o644)
        .file("opq/c", b"c\n", 0o644)
        .into_tar();
    vec![
        (busybox_layer(), Comp::Gzip),
        (l2, Comp::Zstd),
        (l3, Comp::Plain),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_with_wrong_digest_is_refused_and_not_stored() {
    let rt = runtime().await;
    let _g = StoreGuard::new(&rt);
    let store = berth_image::store(&rt).unwrap();
    let claimed = digest::of(b"what the sender promised");
    let err = store
        .write_blob(&claimed, &b"what arrived"[..])
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(!store.has_blob(&claimed));
    assert!(!store.blob_path(&digest::of(b"what arrived")).exists());
    assert_eq!(
        fs::read_dir(store.root().join("ingest")).unwrap().count(),
        0
    );
    // The right bytes are stored.
    store
        .write_blob(&claimed, &b"what the sender promised"[..])
        .unwrap();
    assert_eq!(
        store.read_blob(&claimed).unwrap(),
        b"what the sender promised"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn layout_with_a_tampered_layer_is_refused_and_not_tagged() {
    let rt = runtime().await;
    let _g = StoreGuard::new(&rt);
    let store = berth_image::store(&rt).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layer = Layer::new().file("x", b"genuine", 0o644).into_tar();
    write_layout(
        dir.path(),
        "t",
        &[(layer.clone(), Comp::Gzip)],
        &sh("true"),
        false,
    );
    let blob = digest::of(&compress(&layer, Comp::Gzip));
    let path = dir.path().join("blobs/sha256").join(blob.digest());
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 9;
    bytes[last] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let err = store
        .import_layout(dir.path(), None, "tampered")
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(!store.has_blob(&blob));
    assert!(store.image("tampered").is_err());
    assert!(store.list().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn run_write_commit_and_run_the_new_image() {
    let rt = runtime().await;
    let g = StoreGuard::new(&rt);
    let store = berth_image::store(&rt).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = Run {
        env: vec!["GREETING_FILE=/etc/greeting".into()],
        workdir: Some("/data".into()),
        user: Some("berth".into()),
        ..sh("cat $GREETING_FILE; ls; ls /opq; pwd; id -u; id -g")
    };
    write_layout(dir.path(), "base", &three_layers(), &run, true);
    assert_eq!(
        store
            .import_layout(dir.path(), Some("base"), "test/base")
            .unwrap(),
        "test/base:latest"
    );

    // The image's own command, env, workdir and user.
    let out = run_image(&rt, "test/base", None).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        out.stdout,
        "hello from layer 2\nnew\nc\n/data\n1000\n1000\n"
    );

    // Write, delete, commit.
    let cid = id("commit");
    let ctr = berth_image::create_container(
        &rt,
        &cid,
        "test/base",
        {
            let mut image_overrides = ImageOverrides::default();
            image_overrides.cmd = Some(vec![
                "sh".into(),
                "-c".into(),
                "echo committed > /root-file; rm /etc/greeting".into(),
            ]);
            image_overrides.user = Some("0".into());
            image_overrides
        },
        piped(),
    )
    .await
    .unwrap();
    let snap = store.snapshot(&cid);
    assert!(mounted_below(&snap.rootfs()), "overlay not in mountinfo");
    ctr.start().await.unwrap();
    let mut out_stream = ctr.take_stdout().unwrap();
    let mut s = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut out_stream, &mut s)
        .await
        .unwrap();
    assert!(ctr.wait().await.unwrap().success());
    let new_digest = berth_image::commit(&rt, &cid, "test/committed:v1")
        .await
        .unwrap();
    ctr.delete().await.unwrap();
    assert!(
        !mounted_below(&snap.rootfs()),
        "overlay left mounted after delete"
    );
    assert!(!snap.dir.exists(), "snapshot left after delete");

    let image = store.image("test/committed:v1").unwrap();
    assert_eq!(image.digest, new_digest);
    assert_eq!(image.manifest.layers().len(), 4);
    let out = run_image(
        &rt,
        "test/committed:v1",
        Some("cat /root-file; test -e /etc/greeting || echo greeting-gone; ls /data; id -u"),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    // The committed config keeps the image's user.
    assert_eq!(out.stdout, "committed\ngreeting-gone\nnew\n1000\n");
    drop(g);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_images_sharing_a_base_store_it_once() {
    let rt = runtime().await;
    let _g = StoreGuard::new(&rt);
    let store = berth_image::store(&rt).unwrap();
    let base = busybox_layer();
    for (name, extra) in [("a", "only in a"), ("b", "only in b")] {
        let dir = tempfile::tempdir().unwrap();
        let top = Layer::new().file(name, extra.as_bytes(), 0o644).into_tar();
        write_layout(
            dir.path(),
            name,
            &[(base.clone(), Comp::Gzip), (top, Comp::Gzip)],
            &sh(&format!("cat /{name}")),
            false,
        );
        store.import_layout(dir.path(), None, name).unwrap();
    }
    for name in ["a", "b"] {
        let out = run_image(&rt, name, None).await;
        assert_eq!(out.stdout, format!("only in {name}"));
    }
    let layers = store.root().join("layers");
    assert_eq!(fs::read_dir(&layers).unwrap().count(), 3, "base + two tops");
    let base_dir = store.layer_dir(&digest::of(&base));
    let base_bytes = disk_usage(&base_dir);
    let all_bytes = disk_usage(&layers);
    assert!(
        base_bytes > 1_000_000,
        "busybox layer is {base_bytes} bytes"
    );
    assert!(
        all_bytes < base_bytes * 3 / 2,
        "base stored twice? {all_bytes} vs {base_bytes}"
    );
    // One gzip blob of the base: 2 manifests + 2 configs + 3 layers.
    assert_eq!(
        fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        7
    );

    // Untagging one image and collecting keeps the shared base.
    store.untag("a").unwrap();
    let report = store.gc().unwrap();
    assert_eq!((report.blobs, report.layers), (3, 1));
    assert!(base_dir.is_dir());
    let out = run_image(&rt, "b", None).await;
    assert_eq!(out.stdout, "only in b");
}

/// Imports a one-layer image made of `layer` on top of busybox and tries
/// to run it.
async fn try_malicious(rt: &berth::Runtime, layer: Vec<u8>) -> Error {
    let store = berth_image::store(rt).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = id("evil");
    write_layout(
        dir.path(),
        &name,
        &[(busybox_layer(), Comp::Gzip), (layer, Comp::Gzip)],
        &sh("true"),
        false,
    );
    store.import_layout(dir.path(), None, &name).unwrap();
    let cid = id("evil");
    let err = berth_image::create_container(rt, &cid, &name, ImageOverrides::default(), piped())
        .await
        .unwrap_err();
    assert!(
        !store.snapshot(&cid).dir.exists(),
        "snapshot left after refusal"
    );
    assert!(!rt.config().root.join(&cid).exists());
    let leftovers: Vec<_> = fs::read_dir(store.root().join("layers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "partial unpack left: {leftovers:?}");
    store.untag(&name).unwrap();
    err
}

#[tokio::test(flavor = "multi_thread")]
async fn malicious_layers_are_refused_and_touch_nothing_outside() {
    use tar::EntryType::*;
    let rt = runtime().await;
    let _g = StoreGuard::new(&rt);
    let host = tempfile::tempdir().unwrap();
    let canary = host.path().join("canary");
    fs::write(&canary, "untouched").unwrap();
    let h = host.path().to_str().unwrap().as_bytes().to_vec();
    let depth = b"../".repeat(20);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot path",
            Layer::new()
                .raw(
                    Regular,
                    &[&depth[..], &h[1..], b"/pwned"].concat(),
                    b"",
                    b"x",
                )
                .into_tar(),
        ),
        (
            "absolute path",
            Layer::new()
                .raw(Regular, &[&h[..], b"/pwned"].concat(), b"", b"x")
                .into_tar(),
        ),
        (
            "symlink escape",
            Layer::new()
                .raw(Symlink, b"link", &h, b"")
                .raw(Regular, b"link/pwned", b"", b"x")
                .into_tar(),
        ),
        (
            "symlink escape overwriting the canary",
            Layer::new()
                .raw(Symlink, b"link", &h, b"")
                .raw(Regular, b"link/canary", b"", b"x")
                .into_tar(),
        ),
        (
            "hardlink to a host file",
            Layer::new()
                .raw(Link, b"passwd", &[&h[..], b"/canary"].concat(), b"")
                .into_tar(),
        ),
        (
            "hardlink climbing out",
            Layer::new()
                .raw(
                    Link,
                    b"passwd",
                    &[&depth[..], &h[1..], b"/canary"].concat(),
                    b"",
                )
                .into_tar(),
        ),
        (
            "hardlink through a symlink",
            Layer::new()
                .raw(Symlink, b"link", &h, b"")
                .raw(Link, b"passwd", b"link/canary", b"")
                .into_tar(),
        ),
        (
            "whiteout of ..",
            Layer::new()
                .raw(Regular, b"etc/.wh...", b"", b"")
                .into_tar(),
        ),
        (
            "whiteout of .",
            Layer::new().raw(Regular, b".wh..", b"", b"").into_tar(),
        ),
    ];
    for (what, layer) in cases {
        let err = try_malicious(&rt, layer).await;
        eprintln!("{what}: {err}");
        assert!(matches!(err, Error::UnsafeLayer { .. }), "{what}: {err}");
        let names: Vec<_> = fs::read_dir(host.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("canary")], "{what}");
        assert_eq!(fs::read_to_string(&canary).unwrap(), "untouched", "{what}");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            fs::metadata(&canary).unwrap().nlink(),
            1,
            "{what}: canary got a hardlink"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn many_layers_mount_past_the_option_length_limit() {
    let rt = runtime().await;
    let _g = StoreGuard::new(&rt);
    let store = berth_image::store(&rt).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut layers = vec![(busybox_layer(), Comp::Gzip)];
    let n = 120;
    for i in 0..n {
        layers.push((
            Layer::new()
                .dir("layers", 0o755)
                .file(&format!("layers/{i}"), b"", 0o644)
                .into_tar(),
            Comp::Plain,
        ));
    }
    write_layout(
        dir.path(),
        "many",
        &layers,
        &sh("ls /layers | wc -l"),
        false,
    );
    store.import_layout(dir.path(), None, "many").unwrap();
    // The lowerdirs alone, as absolute paths, are far past one page.
    let option_len: usize =
        layers.len() * (store.layer_dir(&digest::of(b"")).as_os_str().len() + 1);
    assert!(option_len > 4096, "{option_len}");
    let out = run_image(&rt, "many", None).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.trim(), n.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_resets_the_container_layer() {
    let rt = runtime().await;
    let _g = StoreGuard::new(&rt);
    let store = berth_image::store(&rt).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_layout(
        dir.path(),
        "r",
        &[(busybox_layer(), Comp::Gzip)],
        &sh("echo x > /scratch; rm /etc/passwd"),
        false,
    );
    store.import_layout(dir.path(), None, "r").unwrap();
    let cid = id("rollback");
    let ctr = berth_image::create_container(&rt, &cid, "r", ImageOverrides::default(), piped())
        .await
        .unwrap();
    let err = berth_image::rollback(&rt, &cid).await.unwrap_err();
    assert!(
        matches!(err, Error::Runtime(berth::Error::InvalidState { .. })),
        "{err}"
    );
    ctr.start().await.unwrap();
    assert!(ctr.wait().await.unwrap().success());
    let snap = store.snapshot(&cid);
    assert!(snap.rootfs().join("scratch").exists());
    assert!(!snap.rootfs().join("etc/passwd").exists());
    berth_image::rollback(&rt, &cid).await.unwrap();
    assert!(!snap.rootfs().join("scratch").exists());
    assert!(snap.rootfs().join("etc/passwd").exists());
    assert_eq!(fs::read_dir(snap.upper()).unwrap().count(), 0);
    ctr.delete().await.unwrap();
    assert!(!mounted_below(&snap.dir));
}

#[tokio::test(flavor = "multi_thread")]
async fn export_and_import_round_trip() {
    let rt = runtime().await;
    let _g = StoreGuard::new(&rt);
    let store = berth_image::store(&rt).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let md = write_layout(dir.path(), "x", &three_layers(), &sh("true"), false);
    store.import_layout(dir.path(), None, "x:1").unwrap();
    let out = tempfile::tempdir().unwrap();
    store.export_layout("x:1", out.path()).unwrap();
    let rt2 = runtime().await;
    let _g2 = StoreGuard::new(&rt2);
    let store2 = berth_image::store(&rt2).unwrap();
    store2.import_layout(out.path(), Some("x:1"), "y").unwrap();
    assert_eq!(store2.image("y").unwrap().digest, md);
    assert!(Path::new(out.path()).join("index.json").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_image_and_bad_reference_are_typed_errors() {
    let rt = runtime().await;
    let _g = StoreGuard::new(&rt);
    for r in ["nope", "Bad Ref", "x@sha256:00"] {
        let err = berth_image::create_container(
            &rt,
            &id("none"),
            r,
            ImageOverrides::default(),
            CreateOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Image { .. }), "{r}: {err}");
    }
}

/// Pulls everything of `reference`, collecting progress.
async fn pull(
    store: &berth_image::ImageStore,
    reference: &str,
) -> (
    berth_image::Result<berth::oci_spec::image::Digest>,
    Vec<berth_image::LayerProgress>,
) {
    use futures::StreamExt;
    let mut p = store.pull(reference, Default::default()).unwrap();
    let progress: Vec<_> = p.progress().collect().await;
    (p.finish().await, progress)
}

/// The last count reported per blob.
fn last_counts(
    progress: &[berth_image::LayerProgress],
) -> std::collections::BTreeMap<String, (u64, u64)> {
    progress
        .iter()
        .map(|p| (p.digest.clone(), (p.done, p.total)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_from_a_local_registry_run_commit_and_run() {
    let rt = runtime().await;
    let _g = StoreGuard::new(&rt);
    let store = berth_image::store(&rt).unwrap();
    let reg = Registry::start().await;
    let dir = tempfile::tempdir().unwrap();
    let layers = three_layers();
    // Behind an index that lists another architecture first.
    let md = write_layout(dir.path(), "base", &layers, &sh("cat /etc/greeting"), true);
    reg.push_layout(dir.path(), "base", "test/base:1");
    let reference = format!("{}/test/base:1", reg.addr);

    let (result, progress) = pull(&store, &reference).await;
    assert_eq!(result.unwrap(), md, "the manifest for this platform");
    let counts = last_counts(&progress);
    assert_eq!(counts.len(), 4, "config and three layers: {counts:?}");
    for (d, (done, total)) in &counts {
        assert_eq!(done, total, "{d}");
    }
    let image = store.image(&reference).unwrap();
    assert_eq!(image.manifest.layers().len(), 3);

    let out = run_image(&rt, &reference, None).await;
    assert_eq!(out.stdout, "hello from layer 2\n");

    let cid = id("pulled");
    let ctr = berth_image::create_container(
        &rt,
        &cid,
        &reference,
        {
            let mut image_overrides = ImageOverrides::default();
            image_overrides.cmd = Some(vec![
                "sh".into(),
                "-c".into(),
                "echo written > /data/file".into(),
            ]);
            image_overrides
        },
        piped(),
    )
    .await
    .unwrap();
    ctr.start().await.unwrap();
    let _ = finish_keep(&ctr).await;
    berth_image::commit(&rt, &cid, "test/after-pull")
        .await
        .unwrap();
    ctr.delete().await.unwrap();
    let out = run_image(&rt, "test/after-pull", Some("cat /data/file")).await;
    assert_eq!(out.stdout, "written\n");

    // A second pull finds everything stored.
    let (result, progress) = pull(&store, &reference).await;
    assert_eq!(result.unwrap(), md);
    assert!(progress.iter().all(|p| p.done == p.total));
}

/// Waits for a piped container without deleting it.
async fn finish_keep(ctr: &berth::Container) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = ctr.take_stdout().unwrap();
    let mut s = String::new();
    out.read_to_string(&mut s).await.unwrap();
    assert!(ctr.wait().await.unwrap().success());
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_resumes_a_partial_blob_and_refuses_a_corrupt_one() {
    let rt = runtime().await;
    let _g = StoreGuard::new(&rt);
    let store = berth_image::store(&rt).unwrap();
    let reg = Registry::start().await;
    let dir = tempfile::tempdir().unwrap();
    let big = Layer::new()
        .file("big", &vec![7u8; 3 << 20], 0o644)
        .into_tar();
    let layers = vec![(busybox_layer(), Comp::Gzip), (big.clone(), Comp::Plain)];
    write_layout(dir.path(), "r", &layers, &sh("true"), false);
    reg.push_layout(dir.path(), "r", "test/resume:1");
    let reference = format!("{}/test/resume:1", reg.addr);

    // Half of the big layer is already here from an interrupted pull.
    let big_digest = digest::of(&big);
    let half = big.len() / 2;
    fs::write(
        store
            .root()
            .join("ingest")
            .join(format!("partial-{}", big_digest.digest())),
        &big[..half],
    )
    .unwrap();
    let (result, progress) = pull(&store, &reference).await;
    result.unwrap();
    let first = progress
        .iter()
        .find(|p| p.digest == big_digest.to_string())
        .unwrap();
    assert_eq!(first.done, half as u64, "resumed from the partial blob");
    assert!(store.has_blob(&big_digest));

    // The registry now serves a corrupted copy of another image's layer.
    let other = Layer::new()
        .file("other", &vec![1u8; 1 << 20], 0o644)
        .into_tar();
    let dir2 = tempfile::tempdir().unwrap();
    write_layout(
        dir2.path(),
        "c",
        &[(other.clone(), Comp::Plain)],
        &sh("true"),
        false,
    );
    reg.push_layout(dir2.path(), "c", "test/corrupt:1");
    let od = digest::of(&other);
    let file = reg.blob_file(od.digest());
    let mut bytes = fs::read(&file).unwrap();
    bytes[1000] ^= 0xff;
    fs::write(&file, &bytes).unwrap();
    let (result, _) = pull(&store, &format!("{}/test/corrupt:1", reg.addr)).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(!store.has_blob(&od));
    assert!(store
        .image(&format!("{}/test/corrupt:1", reg.addr))
        .is_err());
    let ingest: Vec<_> = fs::read_dir(store.root().join("ingest"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(ingest.is_empty(), "{ingest:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn commit_push_and_pull_into_another_store() {
    use futures::StreamExt;
    let rt = runtime().await;
    let _g = StoreGuard::new(&rt);
    let store = berth_image::store(&rt).unwrap();
    let reg = Registry::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_layout(
        dir.path(),
        "p",
        &[(busybox_layer(), Comp::Gzip)],
        &sh("cat /pushed"),
        false,
    );
    let base = format!("{}/test/pushed:1", reg.addr);
    store.import_layout(dir.path(), None, &base).unwrap();

    let cid = id("push");
    let ctr = berth_image::create_container(
        &rt,
        &cid,
        &base,
        {
            let mut image_overrides = ImageOverrides::default();
            image_overrides.cmd = Some(vec![
                "sh".into(),
                "-c".into(),
                "echo across registries > /pushed".into(),
            ]);
            image_overrides
        },
        piped(),
    )
    .await
    .unwrap();
    ctr.start().await.unwrap();
    finish_keep(&ctr).await;
    let committed = format!("{}/test/pushed:2", reg.addr);
    let md = berth_image::commit(&rt, &cid, &committed).await.unwrap();
    ctr.delete().await.unwrap();

    let mut push = store.push(&committed, Default::default()).unwrap();
    let progress: Vec<_> = push.progress().collect().await;
    assert_eq!(push.finish().await.unwrap(), md);
    let counts = last_counts(&progress);
    assert_eq!(counts.len(), 3, "config and two layers: {counts:?}");
    assert!(counts.values().all(|(d, t)| d == t));

    let rt2 = runtime().await;
    let _g2 = StoreGuard::new(&rt2);
    let store2 = berth_image::store(&rt2).unwrap();
    let (result, _) = pull(&store2, &committed).await;
    assert_eq!(result.unwrap(), md);
    let out = run_image(&rt2, &committed, None).await;
    assert_eq!(out.stdout, "across registries\n");
}

/// A P-256 key from a fixed seed and its PEM public key.
fn key(seed: u8) -> (p256::ecdsa::SigningKey, String) {
    use p256::pkcs8::EncodePublicKey;
    let sk = p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap();
    let pem = sk
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    (sk, pem)
}

/// Signs `signed` as `cosign sign --key` does and pushes the signature
/// artifact beside it (through a store of its own).
async fn cosign(
    reg: &Registry,
    repo: &str,
    signed: &berth::oci_spec::image::Digest,
    sk: &p256::ecdsa::SigningKey,
) {
    use base64::Engine;
    use berth::oci_spec::image::{Descriptor, MediaType};
    use p256::ecdsa::signature::Signer;
    let rt = runtime().await;
    let _g = StoreGuard::new(&rt);
    let store = berth_image::store(&rt).unwrap();
    let payload = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": format!("{}/{repo}", reg.addr)},
            "image": {"docker-manifest-digest": signed.to_string()},
            "type": "cosign container image signature"
        },
        "optional": null
    })
    .to_string();
    let sig: p256::ecdsa::DerSignature = sk.sign(payload.as_bytes());
    let pd = store.put_blob(payload.as_bytes()).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [pd.to_string()]}
    })
    .to_string();
    let cd = store.put_blob(config.as_bytes()).unwrap();
    let mut layer = Descriptor::new(
        MediaType::Other("application/vnd.dev.cosign.simplesigning.v1+json".into()),
        payload.len() as u64,
        pd,
    );
    layer.set_annotations(Some(
        [(
            berth_image::SIGNATURE_ANNOTATION.to_string(),
            base64::engine::general_purpose::STANDARD.encode(sig.as_bytes()),
        )]
        .into(),
    ));
    let manifest = berth::oci_spec::image::ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config.len() as u64,
            cd,
        ))
        .layers(vec![layer])
        .build()
        .unwrap()
        .to_string()
        .unwrap();
    let md = store.put_blob(manifest.as_bytes()).unwrap();
    let tag = format!("{}/{repo}:{}", reg.addr, berth_image::signature_tag(signed));
    store.tag(&tag, &md).unwrap();
    let mut push = store.push(&tag, Default::default()).unwrap();
    drop(push.progress());
    push.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn signature_policy_refuses_unsigned_and_wrongly_signed_images() {
    let rt = runtime().await;
    let _g = StoreGuard::new(&rt);
    let store = berth_image::store(&rt).unwrap();
    let reg = Registry::start().await;
    let dir = tempfile::tempdir().unwrap();
    let top = Layer::new().file("signed", b"yes", 0o644).into_tar();
    let md = write_layout(
        dir.path(),
        "s",
        &[(busybox_layer(), Comp::Gzip), (top.clone(), Comp::Gzip)],
        &sh("cat /signed"),
        false,
    );
    for repo in ["test/signed:1", "test/unsigned:1", "test/other-key:1"] {
        reg.push_layout(dir.path(), "s", repo);
    }
    let (good, good_pem) = key(7);
    let (bad, _) = key(9);
    cosign(&reg, "test/signed", &md, &good).await;
    cosign(&reg, "test/other-key", &md, &bad).await;

    let mut policy = berth_image::PullOptions::default();
    policy.signatures = {
        let mut signature_policy = berth_image::SignaturePolicy::default();
        signature_policy.require = true;
        signature_policy.keys = vec![good_pem];
        signature_policy
    };
    let top_blob = digest::of(&compress(&top, Comp::Gzip));
    for repo in ["test/unsigned:1", "test/other-key:1"] {
        let reference = format!("{}/{repo}", reg.addr);
        let err = store
            .pull(&reference, policy.clone())
            .unwrap()
            .finish()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Signature { .. }), "{repo}: {err}");
        eprintln!("{repo}: {err}");
        assert!(store.image(&reference).is_err());
        assert!(!store.has_blob(&top_blob), "{repo}: a layer was downloaded");
    }
    let reference = format!("{}/test/signed:1", reg.addr);
    let d = store
        .pull(&reference, policy)
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_eq!(d, md);
    let out = run_image(&rt, &reference, None).await;
    assert_eq!(out.stdout, "yes");
    // Without a policy, the unsigned image pulls.
    let unsigned = format!("{}/test/unsigned:1", reg.addr);
    store
        .pull(&unsigned, Default::default())
        .unwrap()
        .finish()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_id_in_use_is_refused_and_its_snapshot_kept() {
    let rt = runtime().await;
    let _g = StoreGuard::new(&rt);
    let store = berth_image::store(&rt).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_layout(
        dir.path(),
        "i",
        &[(busybox_layer(), Comp::Gzip)],
        &sh("true"),
        false,
    );
    store.import_layout(dir.path(), None, "i").unwrap();
    let cid = id("inuse");
    let ctr = berth_image::create_container(&rt, &cid, "i", ImageOverrides::default(), piped())
        .await
        .unwrap();
    let err = berth_image::create_container(&rt, &cid, "i", ImageOverrides::default(), piped())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Runtime(berth::Error::AlreadyExists(_))),
        "{err}"
    );
    let snap = store.snapshot(&cid);
    assert!(mounted_below(&snap.rootfs()));
    assert!(snap.rootfs().join("bin/busybox").exists());
    ctr.force_delete().await.unwrap();
    assert!(!snap.dir.exists());
    assert!(!mounted_below(&snap.dir));
}
