//! Runs inside the guests of `cargo xtask vm-test`, before berth's suites:
//! checks that the guest's init set the cell up as it says, and fails on
//! purpose when asked to (`cargo xtask vm-test --inject-failure`), which
//! shows that a failing test fails the cell and prints its output.
//!
//! On the host these tests are ignored: they read the environment the guest's
//! init exports ([`MODE_ENV`]). The guest runs them with `--ignored`.

use std::fs;

/// Set by the guest's init to the cell's cgroup mode (`v1` or `v2`).
const MODE_ENV: &str = "BERTH_VM_CGROUP";
/// Set by `cargo xtask vm-test --inject-failure` to a message.
const INJECT_ENV: &str = "BERTH_VM_INJECT_FAILURE";

/// `(mount point, fstype)` of every mount in `/proc/self/mountinfo`.
fn mounts() -> Vec<(String, String)> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    text.lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            Some((fields.get(4)?.to_string(), fields.get(sep + 1)?.to_string()))
        })
        .collect()
}

#[test]
#[ignore = "runs inside cargo xtask vm-test guests"]
fn the_guest_has_the_cgroup_layout_of_its_cell() {
    let mode = std::env::var(MODE_ENV).expect("BERTH_VM_CGROUP is set by the guest's init");
    let mounts = mounts();
    let last_at = |p: &str| mounts.iter().rfind(|(m, _)| m == p).map(|(_, t)| t.clone());
    let v1: Vec<&String> = mounts
        .iter()
        .filter(|(m, t)| t == "cgroup" && m.starts_with("/sys/fs/cgroup/"))
        .map(|(m, _)| m)
        .collect();
    let cgroup2 = mounts.iter().filter(|(_, t)| t == "cgroup2").count();
    match mode.as_str() {
        "v2" => {
            assert_eq!(
                last_at("/sys/fs/cgroup").as_deref(),
                Some("cgroup2"),
                "{mounts:?}"
            );
            assert!(v1.is_empty(), "v1 hierarchies in a v2 guest: {v1:?}");
            let enabled = fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control").unwrap();
            assert!(
                enabled.contains("pids"),
                "root subtree_control: {enabled:?}"
            );
        }
        "v1" => {
            assert_eq!(
                last_at("/sys/fs/cgroup").as_deref(),
                Some("tmpfs"),
                "{mounts:?}"
            );
            assert!(v1.len() >= 5, "too few v1 hierarchies: {v1:?}");
            assert_eq!(cgroup2, 0, "a cgroup2 mount in a v1 guest: {mounts:?}");
        }
        other => panic!("unknown mode {other:?}"),
    }
    // The modules the tests need were loaded.
    let filesystems = fs::read_to_string("/proc/filesystems").unwrap();
    assert!(filesystems.contains("\toverlay\n"), "{filesystems}");
    assert!(fs::metadata("/sys/module/veth").is_ok(), "veth not loaded");
    assert!(
        fs::metadata("/sys/module/bridge").is_ok(),
        "bridge not loaded"
    );
    // The root is not the initramfs' own mount, which has no parent (its
    // parent id is its own id) and which pivot_root(2) refuses to move.
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = text
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .rfind(|f| f.get(4) == Some(&"/"))
        .expect("a mount at /");
    assert_ne!(root[0], root[1], "/ is a mount without a parent: {root:?}");
}

#[test]
#[ignore = "runs inside cargo xtask vm-test guests"]
fn a_failure_is_injected_when_asked() {
    if let Ok(message) = std::env::var(INJECT_ENV) {
        println!("this test fails on purpose (cargo xtask vm-test --inject-failure)");
        panic!("injected failure: {message}");
    }
}
