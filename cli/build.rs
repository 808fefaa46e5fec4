//! Link flags of the `berth` and `berth-images` binaries.
//!
//! `-z pack-relative-relocs` stores the binaries' ~17,000 relative
//! relocations as a bitmap (`DT_RELR`, glibc 2.36 and binutils 2.38 on) in a
//! few kilobytes instead of a 400 KiB `.rela.dyn`, which the loader reads
//! in full at every start: less memory and start-up time for every runtime
//! command an OCI client calls. Only where the toolchain's linker takes it.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if linker_supports_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether `cc` links a program with the flag (older binutils refuse it).
fn linker_supports_relr() -> bool {
    let Ok(out) = std::env::var("OUT_DIR") else {
        return false;
    };
    let dir = std::path::Path::new(&out);
    let src = dir.join("relr-probe.c");
    if std::fs::write(&src, "int main(void) { return 0; }\n").is_err() {
        return false;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    std::process::Command::new(cc)
        .arg("-Wl,-z,pack-relative-relocs")
        .arg("-o")
        .arg(dir.join("relr-probe"))
        .arg(&src)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
