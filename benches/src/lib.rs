//! Shared set-up of berth's benchmarks: a runtime with a state root of its
//! own and a spec that runs `/bin/true` on the busybox rootfs.

use std::sync::atomic::{AtomicUsize, Ordering};

use berth::oci_spec::runtime::Spec;
use berth::{Bundle, Config, CreateOptions, Runtime, Stdio};

/// A runtime whose state and cgroups are named after this process.
pub async fn runtime() -> Runtime {
    let name = format!("berth-bench-{}", std::process::id());
    Runtime::new(Config {
        root: format!("/run/{name}").into(),
        cgroup_parent: name,
        ..Config::default()
    })
    .await
    .expect("runtime (benchmarks need root)")
}

/// runc's default spec (every namespace but user, a cgroup) running
/// `/bin/true` from the shared busybox rootfs.
pub fn true_spec() -> Spec {
    let mut spec = berth_fixtures::bundle::spec(&["/bin/true".into()]);
    let mut root = spec.root().clone().expect("root");
    root.set_path(berth_fixtures::rootfs::shared().expect("rootfs"));
    spec.set_root(Some(root));
    spec
}

/// A bundle around `spec`.
pub fn bundle(spec: Spec) -> Bundle {
    Bundle::new(std::env::temp_dir(), spec).expect("bundle")
}

/// One create + start + wait + delete.
pub async fn lifecycle(rt: &Runtime, spec: &Spec) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let id = format!("b{}", N.fetch_add(1, Ordering::Relaxed));
    let opts = CreateOptions {
        stdin: Stdio::Null,
        stdout: Stdio::Null,
        stderr: Stdio::Null,
        ..Default::default()
    };
    let ctr = rt
        .create_with(&id, bundle(spec.clone()), opts)
        .await
        .expect("create");
    ctr.start().await.expect("start");
    let status = ctr.wait().await.expect("wait");
    assert!(status.success(), "{status}");
    ctr.delete(false).await.expect("delete");
}

/// Removes the runtime's (empty) state root after a run.
pub fn cleanup(rt: &Runtime) {
    let _ = std::fs::remove_dir(&rt.config().root);
}

/// Allocates `bytes` and writes every page, so the memory is really mapped
/// (as in a large embedding process).
pub fn touched_memory(bytes: usize) -> Vec<u8> {
    let mut v = vec![0u8; bytes];
    for i in (0..bytes).step_by(4096) {
        v[i] = 1;
    }
    v
}
