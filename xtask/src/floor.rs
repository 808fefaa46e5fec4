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
    run_on(&berth_fixtures::rootfs::shared()?, in_flight, count)
}

/// [`run`] on `rootfs`.
fn run_on(rootfs: &Path, in_flight: usize, count: usize) -> Result<()> {
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

    let child = Command::new(&binary)
        .arg(rootfs)
        .arg(in_flight.to_string())
        .arg(count.to_string())
        .spawn()
        .with_context(|| format!("running {}", binary.display()))?;
    let pid = child.id();
    let output = child.wait_with_output()?;
    let left = leftover_cgroups(pid)?;
    if !output.status.success() {
        // What a failed run left (the program removes its cgroups unless
        // it died) goes with it: a child still exiting keeps its cgroup
        // busy for a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while left.iter().any(|d| Path::new(d).exists()) && std::time::Instant::now() < deadline {
            left.iter().for_each(|d| remove_tree(Path::new(d)));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        bail!("{} failed: {}", binary.display(), output.status);
    }
    ensure!(left.is_empty(), "the floor program left cgroups: {left:?}");
    Ok(())
}

/// Removes the cgroup `dir` and its child cgroups, as far as it can.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The floor program's cgroup directories still present in any hierarchy.
fn leftover_cgroups(pid: u32) -> Result<Vec<String>> {
    let name = format!("lifecycle-floor-{pid}");
    Ok(floor_cgroups()?
        .into_iter()
        .filter(|d| d.ends_with(&name))
        .collect())
}

/// Every floor program's cgroup directory, in every hierarchy.
fn floor_cgroups() -> Result<Vec<String>> {
    let mut found = Vec::new();
    let cgroups = Path::new("/sys/fs/cgroup");
    let hierarchies = std::fs::read_dir(cgroups)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    for dir in std::iter::once(cgroups.to_path_buf()).chain(hierarchies) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with("lifecycle-floor-") {
                found.push(entry.path().display().to_string());
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run whose children fail (no rootfs) is an error, and leaves no
    /// cgroup behind. Root, and the system's `cc`.
    #[test]
    fn a_failed_run_leaves_no_cgroup() {
        let before = floor_cgroups().unwrap();
        let err = run_on(Path::new("/nonexistent-floor-rootfs"), 2, 10).unwrap_err();
        assert!(err.to_string().contains("failed"), "{err:#}");
        let after: Vec<String> = floor_cgroups()
            .unwrap()
            .into_iter()
            .filter(|d| !before.contains(d))
            .collect();
        assert!(after.is_empty(), "left behind: {after:?}");
    }
}
