//! Fuzz target `config_structured`: see `fuzz/checks/config_structured.rs` for what it checks.
#![no_main]

#[allow(dead_code)]
#[path = "../checks/common.rs"]
mod common;
#[path = "../checks/config_structured.rs"]
mod config_structured;

libfuzzer_sys::fuzz_target!(|data: &[u8]| config_structured::check(data));
