//! Rootless through the SDK: one unprivileged process creates two
//! containers concurrently (each with a user namespace mapping the caller
//! to root), leaves one waiting for `start` while the other runs, and both
//! work. The test (root) runs itself again as `nobody` with setpriv; the
//! second run, seeing `BERTH_ROOTLESS_TEST_DIR`, is the unprivileged
//! embedder.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth::oci_spec::runtime::{get_rootless_mounts, Linux, Spec};
use berth::{Config, CreateOptions, ExitStatus, Runtime, Stdio};
use tokio::io::AsyncReadExt;

/// `nobody`.
const UID: u32 = 65534;
const CHILD_ENV: &str = "BERTH_ROOTLESS_TEST_DIR";

/// A rootless spec (as `berth spec --rootless` writes it) on the shared
/// rootfs, running `sh -c script`.
fn rootless_spec(script: &str) -> Spec {
    let mut spec = common::spec(script);
    spec.set_linux(Some(Linux::rootless(UID, UID)));
    spec.set_mounts(Some(get_rootless_mounts()));
    spec
}

async fn output(ctr: &berth::Container) -> String {
    let mut out = String::new();
    ctr.take_stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    out
}

/// The unprivileged half: runs as `nobody`, state under `dir`.
async fn as_nobody(dir: &Path) {
    let config = {
        let mut config = Config::default();
        config.root = dir.join("state");
        config
    };
    let rt = Runtime::new(config).await.unwrap();
    let opts = || {
        let mut create_options = CreateOptions::default();
        create_options.stdin = Stdio::Null;
        create_options.stdout = Stdio::Piped;
        create_options.stderr = Stdio::Inherit;
        create_options
    };
    let script = "echo uid=$(id -u) map=$(tr -s ' ' </proc/self/uid_map)";
    let (id_a, id_b) = (common::id("rootless-a"), common::id("rootless-b"));
    let (a, b) = tokio::join!(
        rt.create_with(&id_a, common::bundle(rootless_spec(script)), opts()),
        rt.create_with(&id_b, common::bundle(rootless_spec(script)), opts()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    // `a` waits for start while `b` runs to its end.
    b.start().await.unwrap();
    let out_b = output(&b).await;
    assert_eq!(b.wait().await.unwrap(), ExitStatus::Exited(0));
    assert_eq!(a.status().await.unwrap(), berth::Status::Created);
    a.start().await.unwrap();
    let out_a = output(&a).await;
    assert_eq!(a.wait().await.unwrap(), ExitStatus::Exited(0));
    for out in [&out_a, &out_b] {
        assert_eq!(out.trim(), format!("uid=0 map= 0 {UID} 1"), "{out}");
    }
    a.delete().await.unwrap();
    b.delete().await.unwrap();

    // exec into a container whose user namespace maps only the caller.
    let c = rt
        .create_with(
            &common::id("rootless-c"),
            common::bundle(rootless_spec("echo ready; exec sleep 100")),
            opts(),
        )
        .await
        .unwrap();
    c.start().await.unwrap();
    let mut stdout = c.take_stdout().unwrap();
    let mut ready = [0u8; 6];
    stdout.read_exact(&mut ready).await.unwrap();
    let mut process = c.spec().await.unwrap().process().clone().unwrap();
    process.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "id -u; tr -s ' ' </proc/self/uid_map; cat /proc/self/setgroups; echo $$".into(),
    ]));
    let e = c
        .exec(&process, {
            let mut o = berth::ExecOptions::default();
            o.stdout = Stdio::Piped;
            o
        })
        .await
        .unwrap();
    let out = read_all(e.take_stdout().unwrap()).await;
    assert_eq!(e.wait().await.unwrap(), ExitStatus::Exited(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0..3], ["0", &format!(" 0 {UID} 1"), "deny"], "{out}");
    assert!(lines[3].parse::<i32>().unwrap() > 1, "{out}");
    c.kill(berth::Signal::KILL).unwrap();
    c.wait().await.unwrap();
    c.delete().await.unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.join("state"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "network")
        .collect();
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

#[test]
fn two_rootless_containers_created_concurrently_by_one_process_both_work() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio.block_on(as_nobody(Path::new(&dir)));
        return;
    }
    berth_fixtures::require_root();
    // The shared rootfs must be there (made as root) before nobody uses it.
    let _ = common::rootfs();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(UID), Some(UID)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let me: PathBuf = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args([
            format!("--reuid={UID}"),
            format!("--regid={UID}"),
            "--clear-groups".into(),
            "--".into(),
        ])
        .arg(&me)
        .args([
            "--exact",
            "two_rootless_containers_created_concurrently_by_one_process_both_work",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .env("XDG_RUNTIME_DIR", dir.path())
        .env_remove("BERTH_ROOT")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "as nobody:\n{text}");
    // The run as nobody ran the test (and did not filter it away).
    assert!(text.contains("1 passed"), "{text}");
}

const SUBIDS_ENV: &str = "BERTH_ROOTLESS_SUBIDS";

/// A spec mapping container ids 0..65536 to the user's subordinate ranges
/// (`uid_base`, `gid_base`), with a tmpfs on /tmp.
fn subordinate_spec(script: &str, uid_base: u32, gid_base: u32) -> Spec {
    use berth::oci_spec::runtime::{LinuxIdMappingBuilder, MountBuilder};
    let map = |host: u32| {
        vec![LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(host)
            .size(65536u32)
            .build()
            .unwrap()]
    };
    let mut spec = rootless_spec(script);
    let mut linux = spec.linux().clone().unwrap();
    linux.set_uid_mappings(Some(map(uid_base)));
    linux.set_gid_mappings(Some(map(gid_base)));
    spec.set_linux(Some(linux));
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(
        MountBuilder::default()
            .destination("/tmp")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec!["nosuid".into(), "nodev".into()])
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));
    // chown inside needs it (runc's default spec has no CAP_CHOWN).
    berth_fixtures::bundle::add_capability(&mut spec, berth::oci_spec::runtime::Capability::Chown);
    spec
}

async fn read_all(mut r: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut out = String::new();
    r.read_to_string(&mut out).await.unwrap();
    out
}

fn dumpable() -> i32 {
    nix::sys::prctl::get_dumpable().map_or(-1, i32::from)
}

fn own_oom_score_adj() -> i32 {
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The unprivileged half of the subordinate-range test: a real user (not
/// root pretending) with /etc/subuid and /etc/subgid ranges.
async fn as_user_with_subordinate_ids(dir: &Path, uid_base: u32, gid_base: u32) {
    let rt = Runtime::new({
        let mut config = Config::default();
        config.root = dir.join("state");
        config
    })
    .await
    .unwrap();
    let piped = || {
        let mut o = CreateOptions::default();
        o.stdin = Stdio::Null;
        o.stdout = Stdio::Piped;
        o.stderr = Stdio::Inherit;
        o
    };

    // Host ids outside the user's ranges: refused before any process, the
    // range named.
    let mut bad = subordinate_spec("true", uid_base, gid_base);
    let mut linux = bad.linux().clone().unwrap();
    linux.set_uid_mappings(Some(vec![
        berth::oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(uid_base + 1)
            .size(65536u32)
            .build()
            .unwrap(),
    ]));
    bad.set_linux(Some(linux));
    match rt
        .create_with(&common::id("subids-bad"), common::bundle(bad), piped())
        .await
    {
        Err(berth::Error::SubordinateIds { field, range, .. }) => {
            assert_eq!(field, "linux.uidMappings[0]");
            assert_eq!(range, format!("{}-{}", uid_base + 1, uid_base + 65536));
        }
        other => panic!("expected SubordinateIds, got {other:?}"),
    }

    // oomScoreAdj: lowering is refused, raising applied.
    let own = own_oom_score_adj();
    if own > -1000 {
        let mut low = subordinate_spec("true", uid_base, gid_base);
        let mut p = low.process().clone().unwrap();
        p.set_oom_score_adj(Some(own - 1));
        low.set_process(Some(p));
        match rt
            .create_with(&common::id("oom-low"), common::bundle(low), piped())
            .await
        {
            Err(berth::Error::OomScoreAdjLowered { requested, current }) => {
                assert_eq!((requested, current), (own - 1, own));
            }
            other => panic!("expected OomScoreAdjLowered, got {other:?}"),
        }
    }
    let high = (own + 100).min(1000);
    let mut raise = subordinate_spec("cat /proc/self/oom_score_adj", uid_base, gid_base);
    let mut p = raise.process().clone().unwrap();
    p.set_oom_score_adj(Some(high));
    raise.set_process(Some(p));
    let c = rt
        .create_with(&common::id("oom-high"), common::bundle(raise), piped())
        .await
        .unwrap();
    c.start().await.unwrap();
    let out = read_all(c.take_stdout().unwrap()).await;
    assert_eq!(c.wait().await.unwrap(), ExitStatus::Exited(0));
    assert_eq!(out.trim(), high.to_string());
    c.delete().await.unwrap();
    assert_eq!(own_oom_score_adj(), own, "the embedder's own score changed");

    // Creating it left this process dumpable (a child that shared our
    // memory and changed its ids would have made it not).
    assert_eq!(dumpable(), 1);

    // The container: root inside is the first subordinate id outside.
    let script = "touch /tmp/f && chown 1000:1000 /tmp/f && echo ready && exec sleep 1000";
    let id = common::id("subids");
    let ctr = rt
        .create_with(
            &id,
            common::bundle(subordinate_spec(script, uid_base, gid_base)),
            piped(),
        )
        .await
        .unwrap();
    ctr.start().await.unwrap();
    let mut stdout = ctr.take_stdout().unwrap();
    let mut ready = [0u8; 6];
    stdout.read_exact(&mut ready).await.unwrap();
    assert_eq!(&ready, b"ready\n");
    let pid = ctr.pid();
    let host_uids = |pid: i32| -> String {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        host_uids(pid)
            .split_whitespace()
            .skip(1)
            .map(String::from)
            .collect::<Vec<_>>(),
        vec![uid_base.to_string(); 4],
    );
    // The file chowned to 1000 inside is the subordinate id base+1000
    // outside.
    let meta = std::fs::metadata(format!("/proc/{pid}/root/tmp/f")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid()), (uid_base + 1000, gid_base + 1000));

    // exec: joins the user namespace first, forks into the pid namespace.
    let mut process = ctr.spec().await.unwrap().process().clone().unwrap();
    process.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "id -u; id -g; id -G; ls -ln /tmp/f; tr -s ' ' </proc/self/uid_map; \
         tr -s ' ' </proc/self/gid_map; cat /proc/self/oom_score_adj; echo pid=$$; \
         cat /proc/self/setgroups"
            .into(),
    ]));
    let mut user = process.user().clone();
    user.set_additional_gids(Some(vec![10]));
    process.set_user(user);
    let exec_high = (own + 200).min(1000);
    process.set_oom_score_adj(Some(exec_high));
    let e = ctr
        .exec(&process, {
            let mut o = berth::ExecOptions::default();
            o.stdin = Stdio::Null;
            o.stdout = Stdio::Piped;
            o.stderr = Stdio::Inherit;
            o
        })
        .await
        .unwrap();
    // Its host pid is ours to see, its user a subordinate one.
    assert!(
        host_uids(e.pid()).contains(&uid_base.to_string()),
        "{}",
        host_uids(e.pid())
    );
    let out = read_all(e.take_stdout().unwrap()).await;
    assert_eq!(e.wait().await.unwrap(), ExitStatus::Exited(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0..3], ["0", "0", "0 10"], "{out}");
    let ls: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(ls[2..4], ["1000", "1000"], "{out}");
    assert_eq!(lines[4].trim(), format!("0 {uid_base} 65536"), "{out}");
    assert_eq!(lines[5].trim(), format!("0 {gid_base} 65536"), "{out}");
    assert_eq!(lines[6], exec_high.to_string(), "{out}");
    // In the container's pid namespace (its first process is 1).
    let inner: i32 = lines[7].strip_prefix("pid=").unwrap().parse().unwrap();
    assert!(inner > 1, "{out}");
    // newgidmap left setgroups allowed, as runc has it.
    assert_eq!(lines[8], "allow", "{out}");

    // pids: no cgroup was delegated; found by the pid namespace.
    let pids = ctr.pids().await.unwrap();
    assert_eq!(pids, [pid], "{pids:?}");

    assert_eq!(dumpable(), 1);
    ctr.kill(berth::Signal::KILL).unwrap();
    assert_eq!(
        ctr.wait().await.unwrap(),
        ExitStatus::Signaled(libc::SIGKILL)
    );
    ctr.delete().await.unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.join("state"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "network")
        .collect();
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

#[test]
fn a_real_user_maps_its_subordinate_ranges_and_execs_into_the_container() {
    const NAME: &str = "a_real_user_maps_its_subordinate_ranges_and_execs_into_the_container";
    if let Some(ids) = std::env::var_os(SUBIDS_ENV) {
        let ids = ids.into_string().unwrap();
        let (u, g) = ids.split_once(':').unwrap();
        let dir = std::env::var_os("XDG_RUNTIME_DIR").unwrap();
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio.block_on(as_user_with_subordinate_ids(
            Path::new(&dir),
            u.parse().unwrap(),
            g.parse().unwrap(),
        ));
        return;
    }
    berth_fixtures::require_root();
    let _ = common::rootfs();
    let user = berth_fixtures::users::TestUser::create("brs").unwrap();
    let me: PathBuf = std::env::current_exe().unwrap();
    // Output through files: a container left behind by a failure must not
    // keep this waiting on a pipe (the user's drop kills it).
    let out = berth_fixtures::output_via_files(
        user.command(&me)
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(SUBIDS_ENV, format!("{}:{}", user.subuid.0, user.subgid.0)),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing of the user's runs any more (containers included).
    let left = user.processes();
    drop(user);
    assert!(out.status.success(), "as the test user:\n{text}");
    assert!(text.contains("1 passed"), "{text}");
    assert!(left.is_empty(), "processes left behind: {left:?}");
}
