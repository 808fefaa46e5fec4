//! Link flags of the `berth` and `berth-images` binaries.
//!
//! - `-z pack-relative-relocs` stores the binaries' ~17,000 relative
//!   relocations as a bitmap (`DT_RELR`, glibc 2.36 and binutils 2.38 on)
//!   in a few kilobytes instead of a 400 KiB `.rela.dyn`, which the loader
//!   reads in full at every start: less memory and start-up time for every
//!   runtime command an OCI client calls. Only where the toolchain's linker
//!   takes it.
//! - In a build with v0 symbol names (`cargo xtask dist`), the functions
//!   listed in `hot-text.txt` go first, together, in `.text.hot`. The
//!   kernel maps code 64 KiB at a time, so scattered they keep ~5 MB of
//!   `berth` resident, together ~1.4 MB. With legacy names a pattern would
//!   match every instance of a generic function, so other builds keep the
//!   default layout.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=hot-text.txt");
    if linker_supports_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags
        .split('\x1f')
        .any(|f| f.ends_with("symbol-mangling-version=v0"))
    {
        hot_text_layout();
    }
}

/// Writes a linker script that gathers the listed functions in `.text.hot`
/// before `.text`, and passes it to the link of `berth`.
fn hot_text_layout() {
    let Ok(list) = std::fs::read_to_string("hot-text.txt") else {
        return;
    };
    let Ok(out) = std::env::var("OUT_DIR") else {
        return;
    };
    // The layout counts 64 KiB windows from the section's start: the
    // section starts on such a boundary, and the segments are aligned to
    // 64 KiB so that the kernel loads the binary at such a boundary too
    // (it aligns a PIE's load address to its segments' largest alignment).
    // Then the windows the layout counts are those the kernel's fault-around
    // maps, at every start, whatever address ASLR picks.
    let mut script = String::from("SECTIONS {\n  .text.hot ALIGN(0x10000) : {\n");
    for line in list.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.contains(".a:") {
            // A member of a static C library (`libc.a:memcpy.o`): its code
            // is in sections named after the file, not the function.
            let _ = writeln!(script, "    *{line}(.text .text.*)");
        } else {
            let _ = writeln!(script, "    *(.text.{line} .text.unlikely.{line})");
        }
    }
    script.push_str("  }\n}\nINSERT BEFORE .text;\n");
    let path = Path::new(&out).join("hot-text.ld");
    if std::fs::write(&path, script).is_ok() {
        println!("cargo:rustc-link-arg-bin=berth=-Wl,-T,{}", path.display());
        println!("cargo:rustc-link-arg-bin=berth=-Wl,-z,max-page-size=0x10000");
    }
}

/// Whether `cc` links a program with the flag (older binutils refuse it).
fn linker_supports_relr() -> bool {
    let Ok(out) = std::env::var("OUT_DIR") else {
        return false;
    };
    let dir = Path::new(&out);
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
