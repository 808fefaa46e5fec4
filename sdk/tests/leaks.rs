//! 50 full lifecycles and 20 failing creates leave nothing behind: no
//! mount, cgroup, process, zombie, descriptor or state entry. One test in
//! its own binary, so that this process's descriptors and children are
//! only berth's.

mod common;

use berth::oci_spec::runtime::{HookBuilder, HooksBuilder};
use berth_fixtures::leaks::Snapshot;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycles_and_failed_creates_leave_nothing() {
    let rt = runtime().await;
    let c = rt.config().clone();
    // Warm up what is made once per process (the rootfs cache, tokio's
    // blocking pool, the host probe) before the first snapshot.
    sh(&rt, "true").await;
    let before = Snapshot::take(&c.root, &c.cgroup_parent).unwrap();

    for i in 0..50 {
        let out = run(&rt, "cycle", spec(&format!("echo {i}"))).await.unwrap();
        assert_eq!(out.stdout.trim(), i.to_string());
    }
    for i in 0..20 {
        let mut s = spec("true");
        match i % 4 {
            // Refused by the plan compiler.
            0 => {
                s.process_mut().as_mut().unwrap().set_cwd("relative".into());
            }
            // Fails in the child after its mounts.
            1 => {
                s.process_mut()
                    .as_mut()
                    .unwrap()
                    .set_args(Some(vec!["/no/such/binary".into()]));
            }
            // Fails in a hook while the child waits.
            2 => {
                s.set_hooks(Some(
                    HooksBuilder::default()
                        .create_runtime(vec![HookBuilder::default()
                            .path("/bin/false")
                            .build()
                            .unwrap()])
                        .build()
                        .unwrap(),
                ));
            }
            // Fails mounting (an option the kernel refuses for tmpfs).
            _ => {
                let mut mounts = s.mounts().clone().unwrap();
                mounts.push(
                    berth::oci_spec::runtime::MountBuilder::default()
                        .destination("/run")
                        .typ("tmpfs")
                        .source("tmpfs")
                        .options(vec!["size=nonsense".into()])
                        .build()
                        .unwrap(),
                );
                s.set_mounts(Some(mounts));
            }
        }
        let e = rt.create(&id("fail"), bundle(s)).await.unwrap_err();
        assert!(!e.to_string().is_empty());
    }

    let after = Snapshot::take(&c.root, &c.cgroup_parent).unwrap();
    let leaks = after.leaks_since(&before);
    assert!(leaks.is_empty(), "leaked:\n{}", leaks.join("\n"));
    println!(
        "checked {} mounts, {} fds, {} children before and after",
        after.mountinfo_lines,
        after.fds.len(),
        after.children.len()
    );
}
