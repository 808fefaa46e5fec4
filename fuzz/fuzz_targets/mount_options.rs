//! Fuzz target `mount_options`: see `fuzz/checks/mount_options.rs` for what it checks.
#![no_main]

#[allow(dead_code)]
#[path = "../checks/common.rs"]
mod common;
#[path = "../checks/mount_options.rs"]
mod mount_options;

libfuzzer_sys::fuzz_target!(|data: &[u8]| mount_options::check(data));
