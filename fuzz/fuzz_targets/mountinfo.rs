//! Fuzz target `mountinfo`: see `fuzz/checks/mountinfo.rs` for what it checks.
#![no_main]

#[allow(dead_code)]
#[path = "../checks/common.rs"]
mod common;
#[path = "../checks/mountinfo.rs"]
mod mountinfo;

libfuzzer_sys::fuzz_target!(|data: &[u8]| mountinfo::check(data));
