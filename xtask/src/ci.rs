//! `cargo xtask ci`: the checks of `.ci/run`, without the package install.
//! The VM cells need qemu-system-x86 and fetch their kernel on first use.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The steps `.ci/run` takes after `scripts/install-deps.sh`, in order.
const STEPS: &[&[&str]] = &[
    &["fmt", "--all", "--", "--check"],
    &[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ],
    &["test", "--workspace"],
    // One pure cgroup v1 and one pure cgroup v2 guest (README: Tests).
    &["xtask", "vm-test", "--kernel", "5.10", "--cgroup", "v1,v2"],
    // The shipped binary (static, hot text together) runs containers as
    // the dynamic one does, beside crun and runc.
    &["xtask", "bench-compare", "--runs", "5"],
    // The kernel's floor under the benches' lifecycle builds, runs and
    // leaves no cgroup behind.
    &["xtask", "floor", "--in-flight", "10", "--count", "200"],
];

/// Prints versions, then runs each of [`STEPS`] from the workspace root,
/// stopping at the first failure.
pub fn run() -> Result<()> {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    println!("--- versions");
    step(&root, Command::new("uname").arg("-r"))?;
    step(&root, Command::new(&cargo).arg("--version"))?;
    for args in STEPS {
        println!("--- cargo {}", args.join(" "));
        step(&root, Command::new(&cargo).args(*args))?;
    }
    Ok(())
}

fn step(root: &Path, cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .current_dir(root)
        .status()
        .with_context(|| format!("running {shown}"))?;
    if !status.success() {
        bail!("{shown} failed: {status}");
    }
    Ok(())
}

/// The workspace root: the parent of this crate's directory.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_match_the_ci_script() {
        let script = std::fs::read_to_string(workspace_root().join(".ci/run")).unwrap();
        for args in STEPS {
            let line = format!("cargo {}", args.join(" "));
            assert!(
                script.lines().any(|l| l.trim() == line),
                ".ci/run does not run `{line}`"
            );
        }
    }
}
