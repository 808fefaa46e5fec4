//! Tests of the cgroup module. Those that touch the host's cgroups need
//! root and are skipped with a printed reason without it. Each test uses its
//! own parent cgroup so that tests running in parallel do not interfere.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, Command};
use std::time::Instant;

use super::*;

/// Whether this test can use the host's cgroups; prints why not.
fn can_run(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {test}: needs root to create cgroups");
        return false;
    }
    if layout() != Layout::V2 && host().mounts.is_empty() {
        eprintln!("skipping {test}: no cgroup hierarchy is mounted");
        return false;
    }
    true
}

/// A parent cgroup name unique to this test and process.
fn unique_parent(tag: &str) -> String {
    format!("berth-test-{tag}-{}", std::process::id())
}

/// `sleep 30`, to put into cgroups.
fn sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep")
}

/// Asserts that neither `cg` nor its top-level parent exists in any hierarchy.
fn assert_gone(cg: &Cgroup) {
    let depth = cg.path.split('/').count();
    for dir in &cg.dirs {
        assert!(!dir.exists(), "{} remains", dir.display());
        let top = dir.ancestors().nth(depth - 1).unwrap();
        assert!(!top.exists(), "parent {} remains", top.display());
    }
}

#[test]
fn bad_paths_are_refused() {
    for bad in [
        "",
        "/",
        "//",
        "../x",
        "a/../../b",
        "a/./b",
        "a//b",
        "a/",
        "a\0b",
    ] {
        for result in [Cgroup::create(bad), Cgroup::open(bad)] {
            match result {
                Err(Error::Cgroup { path, reason, .. }) => {
                    assert_eq!(path, bad);
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad:?}: expected a cgroup error, got {other:?}"),
            }
        }
    }
    assert_eq!(normalize("/berth/web").unwrap(), "berth/web");
    assert_eq!(normalize("//berth").unwrap(), "berth");
    assert_eq!(normalize("a..b/.c").unwrap(), "a..b/.c");
}

#[tokio::test]
async fn lifecycle() {
    if !can_run("lifecycle") {
        return;
    }
    let parent = unique_parent("life");
    let rel = format!("{parent}/{}-0", std::process::id());
    let cg = Cgroup::create(&format!("/{rel}")).unwrap();
    assert_eq!(cg.path(), rel);
    for dir in &cg.dirs {
        assert!(dir.is_dir(), "{} missing", dir.display());
    }
    // Creating again is fine.
    Cgroup::create(&rel).unwrap();

    // cpuset is usable in the new cgroup and in its new parent.
    let v1_mounts = host()
        .mounts
        .iter()
        .filter(|m| layout() != Layout::V2 && m.is_v1());
    for m in v1_mounts.filter(|m| m.has_option("cpuset")) {
        for dir in [m.mount_point.join(&parent), m.mount_point.join(&rel)] {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let value = fs::read_to_string(dir.join(file)).unwrap();
                assert!(
                    !value.trim().is_empty(),
                    "{}/{file} is empty",
                    dir.display()
                );
            }
        }
    }

    // Born in the cgroup2 directory (v2, or a hybrid host's cgroup2
    // mount); joining itself in each v1 hierarchy through its `tasks`.
    let placement = cg.placement().unwrap();
    assert_eq!(placement.into.is_some(), layout() != Layout::V1);
    if let Some(fd) = &placement.into {
        let target = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert_eq!(Some(&target), cg.cgroup2_dir());
    }
    let v1_dirs = cg.dirs.len() - usize::from(layout() == Layout::Hybrid);
    let expected_tasks = if layout() == Layout::V2 { 0 } else { v1_dirs };
    assert_eq!(placement.tasks.len(), expected_tasks);
    for (fd, dir) in placement.tasks.iter().zip(&cg.dirs) {
        let target = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert_eq!(target, dir.join("tasks"));
    }

    let mut child = sleeper();
    let pid = i32::try_from(child.id()).unwrap();
    cg.add_process(pid).unwrap();
    // A nested cgroup made after the process joined (on v2 its parent then
    // keeps its controllers to itself: no internal processes).
    let nested = Cgroup::create(&format!("{rel}/nested")).unwrap();
    let mut grandchild = sleeper();
    let nested_pid = i32::try_from(grandchild.id()).unwrap();
    nested.add_process(nested_pid).unwrap();

    let proc_cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    // Only the mounted hierarchies are joined: on v1 hosts not cgroup2 (its
    // `0::` line shows once it has been mounted anywhere), on v2 no v1 ones.
    let joined = |l: &&str| match layout() {
        Layout::V1 => !l.starts_with("0::"),
        Layout::Hybrid => true,
        Layout::V2 => l.starts_with("0::"),
    };
    for line in proc_cgroup.lines().filter(joined) {
        let path = line.splitn(3, ':').nth(2).unwrap();
        assert_eq!(
            path,
            format!("/{rel}"),
            "in /proc/{pid}/cgroup: {proc_cgroup}"
        );
    }
    if layout() != Layout::V1 {
        assert!(
            proc_cgroup.lines().any(|l| l.starts_with("0::")),
            "{proc_cgroup}"
        );
    }
    let pids = cg.pids().unwrap();
    assert!(
        pids.contains(&pid) && pids.contains(&nested_pid),
        "{pids:?}"
    );
    assert_eq!(nested.pids().unwrap(), vec![nested_pid]);
    assert!(cg.add_process(0).is_err() && cg.add_process(-1).is_err());

    // Kill, and reap only a little later: delete waits for the exiting processes.
    child.kill().unwrap();
    grandchild.kill().unwrap();
    let reaper = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(20));
        child.wait().unwrap();
        grandchild.wait().unwrap();
    });
    cg.delete().await.unwrap();
    reaper.await.unwrap();
    assert_gone(&cg);
    assert_eq!(cg.pids().unwrap(), Vec::<i32>::new());
    // Deleting what does not exist is fine.
    cg.delete().await.unwrap();
}

#[tokio::test]
async fn delete_gives_up_on_a_live_process() {
    if !can_run("delete_gives_up_on_a_live_process") {
        return;
    }
    let rel = format!("{}/busy", unique_parent("busy"));
    let cg = Cgroup::create(&rel).unwrap();
    let mut child = sleeper();
    let pid = i32::try_from(child.id()).unwrap();
    cg.add_process(pid).unwrap();

    let started = Instant::now();
    let err = Cgroup::open(&rel).unwrap().delete().await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(err.errno(), Some(libc::EBUSY), "{err}");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert_eq!(cg.pids().unwrap(), vec![pid]);

    child.kill().unwrap();
    child.wait().unwrap();
    cg.delete().await.unwrap();
    assert_gone(&cg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 10)]
async fn concurrent_siblings() {
    if !can_run("concurrent_siblings") {
        return;
    }
    let parent = unique_parent("siblings");
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let path = format!("{parent}/c{i}");
            tokio::spawn(async move {
                for _ in 0..10 {
                    let cg = Cgroup::create(&path)?;
                    cg.delete().await?;
                }
                Cgroup::open(&path)
            })
        })
        .collect();
    let mut cgroups = Vec::new();
    for task in tasks {
        cgroups.push(task.await.unwrap().unwrap());
    }
    // Only once all are done can the shared parent be gone.
    cgroups.iter().for_each(assert_gone);
}

#[tokio::test]
async fn missing_cgroup() {
    if !can_run("missing_cgroup") {
        return;
    }
    let cg = Cgroup::open(&format!("{}/never/made", unique_parent("missing"))).unwrap();
    assert_eq!(cg.pids().unwrap(), Vec::<i32>::new());
    cg.delete().await.unwrap();
    assert!(cg
        .add_process(i32::try_from(std::process::id()).unwrap())
        .is_err());
    assert_gone(&cg);
}

/// The v2 device filter, attached for real to a directory of the host's
/// cgroup2 hierarchy (the hybrid host's `unified` mount has no controllers,
/// but device programs need none): a shell moved there can open and create
/// exactly the devices the rules allow, and a replacing filter takes over.
#[test]
fn ebpf_device_filter_decides_opens_and_mknod() {
    use super::devices::{DeviceRule, Kind, ALL_ACCESS, READ};
    if !can_run("ebpf_device_filter_decides_opens_and_mknod") {
        return;
    }
    let Some(cg2) = host().mounts.iter().find(|m| !m.is_v1()) else {
        eprintln!("skipping: no cgroup2 mount");
        return;
    };
    let dir = cg2.mount_point.join(unique_parent("bpf"));
    fs::create_dir(&dir).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let fd: OwnedFd = fs::File::open(&dir).unwrap().into();
    let rule = |allow, kind, major, minor, access| DeviceRule {
        allow,
        kind,
        major,
        minor,
        access,
    };
    let probe = |dir: &Path| {
        let script = r#"
            echo $$ > "$1/cgroup.procs" || exit 9
            ( : < /dev/null ) 2>/dev/null && echo null-r
            ( : > /dev/null ) 2>/dev/null && echo null-w
            ( : < /dev/zero ) 2>/dev/null && echo zero-r
            ( : > /dev/zero ) 2>/dev/null && echo zero-w
            ( : < /dev/full ) 2>/dev/null && echo full-r
            mknod "$2/null" c 1 3 2>/dev/null && echo null-m
            mknod "$2/zero" c 1 5 2>/dev/null && echo zero-m
            rm -f "$2/null" "$2/zero"
        "#;
        let out = Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(dir)
            .arg(scratch.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "probe failed: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };

    let rules = devices::with_defaults(&[
        rule(false, Kind::All, None, None, ALL_ACCESS),
        rule(true, Kind::Char, Some(1), Some(5), READ),
        // The default rules allow /dev/zero and /dev/full again: deny them
        // after, the last match decides.
        rule(false, Kind::Char, Some(1), Some(5), ALL_ACCESS & !READ),
        rule(false, Kind::Char, Some(1), Some(7), ALL_ACCESS),
    ]);
    resources::attach_device_filter(&fd, &rules).unwrap();
    let seen = probe(&dir);
    assert_eq!(
        seen.split_whitespace().collect::<Vec<_>>(),
        ["null-r", "null-w", "zero-r", "null-m"]
    );

    // A replacing filter that allows everything: the first one is gone.
    resources::attach_device_filter(&fd, &[]).unwrap();
    assert_eq!(bpf::attached(fd.as_fd()).unwrap().len(), 1);
    let seen = probe(&dir);
    assert_eq!(
        seen.split_whitespace().collect::<Vec<_>>(),
        ["null-r", "null-w", "zero-r", "zero-w", "full-r", "null-m", "zero-m"]
    );
    drop(fd);
    fs::remove_dir(&dir).unwrap();
}

#[tokio::test]
async fn only_missing_parents_and_the_runtimes_own_are_removable() {
    if !can_run("only_missing_parents_and_the_runtimes_own_are_removable") {
        return;
    }
    let kept = unique_parent("kept");
    let made = Cgroup::create(&kept).unwrap();
    // `kept` exists and is someone else's: a create under it may remove
    // only what it makes itself.
    assert_eq!(
        Cgroup::removable_parents(&format!("{kept}/pod/ctr"), "berth").unwrap(),
        1
    );
    assert_eq!(
        Cgroup::removable_parents(&format!("/{kept}/ctr"), "berth").unwrap(),
        0
    );
    // At or below the runtime's own parent, existing or not.
    assert_eq!(
        Cgroup::removable_parents(&format!("{kept}/pod/ctr"), &kept).unwrap(),
        2
    );
    assert_eq!(
        Cgroup::removable_parents(&format!("{kept}/ctr"), &format!("/{kept}/")).unwrap(),
        1
    );
    // A sibling name sharing the prefix is not below it.
    assert_eq!(
        Cgroup::removable_parents(&format!("{kept}/ctr"), &kept[..kept.len() - 1]).unwrap(),
        0
    );
    // Nothing above a top-level cgroup.
    assert_eq!(Cgroup::removable_parents("ctr", "berth").unwrap(), 0);

    // delete_with_parents stops where it is told.
    let leaf = Cgroup::create(&format!("{kept}/pod/ctr")).unwrap();
    leaf.delete_with_parents(1).await.unwrap();
    assert!(!Cgroup::open(&format!("{kept}/pod")).unwrap().exists());
    assert!(made.exists(), "a parent it was not told to remove is gone");
    made.delete().await.unwrap();
    assert_gone(&made);
}
