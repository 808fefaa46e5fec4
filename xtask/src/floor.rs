//! `cargo xtask floor`: the kernel's own cost of the lifecycle the
//! `throughput` example and the `lifecycle` bench measure, with no runtime
//! in it. It builds `benches/floor/lifecycle_floor.c` (a C program, so
//! that nothing of berth, Rust's runtime or tokio is in the figure) with
//! the system's `cc`, runs it on the fixtures' shared rootfs, and checks
//! that it left no cgroup behind.

use anyhow::{bail, ensure, Context, Result};
use std::path::Path;
use std::process::Command;

/// Builds and runs the floor program: `count` lifecycles, `in_flight` at
/// a time.
pub fn run(in_flight: usize, count: usize) -> Result<()> {
    let root = crate::ci::workspace_root();
    let source = root.join("benches/floor/lifecycle_floor.c");
    let out_dir = root.join("target/floor");
    std::fs::create_dir_all(&out_dir)?;
    let binary = out_dir.join("lifecycle_floor");
    let status = Command::new("cc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .context("running cc (the floor program is C)")?;
    ensure!(status.success(), "cc {} failed: {status}", source.display());

    let rootfs = berth_fixtures::rootfs::shared()?;
    let child = Command::new(&binary)
        .arg(&rootfs)
        .arg(in_flight.to_string())
        .arg(count.to_string())
        .spawn()
        .with_context(|| format!("running {}", binary.display()))?;
    let pid = child.id();
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("{} failed: {}", binary.display(), output.status);
    }
    let left = leftover_cgroups(pid)?;
    ensure!(left.is_empty(), "the floor program left cgroups: {left:?}");
    Ok(())
}

/// The floor program's cgroup directories still present in any hierarchy.
fn leftover_cgroups(pid: u32) -> Result<Vec<String>> {
    let name = format!("lifecycle-floor-{pid}");
    let mut left = Vec::new();
    let mut check = |dir: &Path| {
        let d = dir.join(&name);
        if d.exists() {
            left.push(d.display().to_string());
        }
    };
    let cgroups = Path::new("/sys/fs/cgroup");
    check(cgroups);
    for entry in std::fs::read_dir(cgroups)? {
        let path = entry?.path();
        if path.is_dir() {
            check(&path);
        }
    }
    Ok(left)
}
