//! The seed corpus of every cargo-fuzz target (`fuzz/seeds/<target>/`), run
//! through the target's own check on the stable toolchain, so that CI
//! covers the fuzz targets without cargo-fuzz. The checks live in
//! `fuzz/checks/` and are shared with `fuzz/fuzz_targets/` by `#[path]`.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/checks/common.rs"]
mod common;
#[path = "../../fuzz/checks/config_plan.rs"]
mod config_plan;
#[path = "../../fuzz/checks/config_structured.rs"]
mod config_structured;
#[path = "../../fuzz/checks/mount_options.rs"]
mod mount_options;
#[path = "../../fuzz/checks/mountinfo.rs"]
mod mountinfo;
#[path = "../../fuzz/checks/process_exec.rs"]
mod process_exec;

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
}

fn run_seeds(target: &str, check: fn(&[u8])) {
    for seed in seeds(target) {
        let data = std::fs::read(&seed).unwrap();
        eprintln!("{target}: {}", seed.display());
        check(&data);
    }
}

#[test]
fn config_plan_seeds() {
    run_seeds("config_plan", config_plan::check);
}

#[test]
fn config_structured_seeds() {
    run_seeds("config_structured", config_structured::check);
}

#[test]
fn mount_options_seeds() {
    run_seeds("mount_options", mount_options::check);
}

#[test]
fn mountinfo_seeds() {
    run_seeds("mountinfo", mountinfo::check);
}

#[test]
fn process_exec_seeds() {
    run_seeds("process_exec", process_exec::check);
}

/// The crash the `mountinfo` target found (`fuzz/known-crashes/`): an
/// octal "escape" above `\377` overflowed `report::unescape`.
#[test]
fn mountinfo_known_crash() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/known-crashes");
    let data = std::fs::read(dir.join("mountinfo-unescape-overflow.txt")).unwrap();
    let text = String::from_utf8_lossy(&data);
    let _ = berth_conformance::report::parse_mountinfo(&text);
}
