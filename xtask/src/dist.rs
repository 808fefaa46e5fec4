//! `cargo xtask dist`: the runtime binary as it is shipped, built for a
//! small resident set.
//!
//! - **Static (`-C target-feature=+crt-static`)**, like runc's release
//!   binaries: no `ld.so`, `libc.so.6`, `libm` or `libgcc_s` to map and
//!   relocate at every start (~2 MiB resident), only the C library code
//!   berth calls.
//! - **v0 symbol names (`-C symbol-mangling-version=v0`)**, which spell out
//!   generic arguments, so that `cli/hot-text.txt` names one instance
//!   and not every instance of a generic. `cli/build.rs` then places the
//!   listed functions together in `.text.hot`.
//!
//! A plain `cargo build --release -p berth-cli` is the same program, linked
//! dynamically and with the default layout. `berth-images` (registry
//! client, TLS: the name service and certificates of the host's C library)
//! is that build's, copied beside it, where `berth` looks for it.

use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the dist `berth` into `target/dist/berth` and returns that path.
pub fn build(root: &Path) -> Result<PathBuf> {
    let triple = host_triple()?;
    let mut flags = std::env::var("RUSTFLAGS").unwrap_or_default();
    for f in [
        "-C target-feature=+crt-static",
        "-C symbol-mangling-version=v0",
    ] {
        if !flags.contains(f) {
            flags.push(' ');
            flags.push_str(f);
        }
    }
    println!("--- building the dist berth ({triple}, static, hot text together)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // An explicit --target keeps these flags off build scripts and proc
    // macros (which cannot be static) and the artifacts apart from the
    // default build's.
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "berth-cli", "--bin", "berth"])
        .args(["--target", &triple])
        .env("RUSTFLAGS", flags.trim())
        .current_dir(root)
        .status()?;
    ensure!(status.success(), "cargo build of the dist berth failed");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--release",
            "-p",
            "berth-cli",
            "--bin",
            "berth-images",
        ])
        .current_dir(root)
        .status()?;
    ensure!(status.success(), "cargo build of berth-images failed");
    let dist = root.join("target/dist");
    std::fs::create_dir_all(&dist)?;
    install(
        &root.join("target").join(&triple).join("release/berth"),
        &dist.join("berth"),
    )?;
    install(
        &root.join("target/release/berth-images"),
        &dist.join("berth-images"),
    )?;
    let out = dist.join("berth");
    println!("--- {}", out.display());
    report_stale_hot_text(root, &out)?;
    Ok(out)
}

/// Says how much of `cli/hot-text.txt` names functions this build no
/// longer has. Their replacements sit in cold `.text`, so every command
/// maps more of the binary until the list is traced again: after the
/// runtime commands' code changes, `cargo xtask hot-text`.
fn report_stale_hot_text(root: &Path, binary: &Path) -> Result<()> {
    let list = std::fs::read_to_string(root.join("cli/hot-text.txt"))?;
    let listed = list.lines().filter(|l| l.starts_with("_R")).count();
    let stale = crate::hot_text::stale_patterns(&list, binary)?;
    if stale.is_empty() {
        println!("--- cli/hot-text.txt: all {listed} listed Rust functions are in this build");
        return Ok(());
    }
    println!(
        "--- cli/hot-text.txt: {} of {listed} listed Rust functions are not in this build \
         (renamed or gone since the trace); their code is in cold .text: \
         regenerate the list with `cargo xtask hot-text` (~45 min). For example:",
        stale.len()
    );
    for line in stale.iter().take(3) {
        println!("    {line}");
    }
    Ok(())
}

/// Copies `from` to `to` by a rename, never writing through: a running
/// container's runtime may be the old file.
fn install(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).with_context(|| format!("copying {}", from.display()))?;
    std::fs::rename(&tmp, to)?;
    Ok(())
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc).arg("-vV").output()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("rustc -vV printed no host")
}
