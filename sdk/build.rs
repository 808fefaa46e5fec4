//! Builds `berth-waiter` (waiter/waiter.rs), the static program a created
//! container's first process runs while it waits for `start`, and leaves
//! it in `OUT_DIR` for `include_bytes!`. It needs no libc: only the Rust
//! compiler that builds this crate and the target's linker.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=waiter/waiter.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let exe = out.join("berth-waiter");

    let mut cmd = Command::new(rustc);
    cmd.args([
        "--edition=2021",
        "--crate-type=bin",
        "--crate-name=berth_waiter",
    ])
    .args(["--target", &target])
    .args([
        "-C",
        "opt-level=s",
        "-C",
        "panic=abort",
        "-C",
        "debuginfo=0",
    ])
    .args(["-C", "strip=symbols", "-C", "relocation-model=static"])
    .args(["-C", "target-feature=+crt-static"])
    .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib"])
    .args([
        "-C",
        "link-arg=-static",
        "-C",
        "link-arg=-Wl,--build-id=none",
    ])
    .arg("-o")
    .arg(&exe)
    .arg("waiter/waiter.rs");
    // The linker cargo would use for this target, when one is configured.
    let key = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace(['-', '.'], "_")
    );
    println!("cargo:rerun-if-env-changed={key}");
    if let Some(linker) = std::env::var_os(&key) {
        let mut arg = std::ffi::OsString::from("linker=");
        arg.push(linker);
        cmd.arg("-C").arg(arg);
    }
    // The waiter must not inherit flags meant for this crate (sanitizers
    // from cargo-fuzz, coverage instrumentation): it has no runtime.
    cmd.env_remove("CARGO_ENCODED_RUSTFLAGS");
    let status = cmd.status().expect("run rustc for berth-waiter");
    assert!(status.success(), "building berth-waiter failed: {status}");
}
