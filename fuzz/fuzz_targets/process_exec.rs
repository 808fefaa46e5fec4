//! Fuzz target `process_exec`: see `fuzz/checks/process_exec.rs` for what it checks.
#![no_main]

#[allow(dead_code)]
#[path = "../checks/common.rs"]
mod common;
#[path = "../checks/process_exec.rs"]
mod process_exec;

libfuzzer_sys::fuzz_target!(|data: &[u8]| process_exec::check(data));
