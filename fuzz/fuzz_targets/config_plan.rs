//! Fuzz target `config_plan`: see `fuzz/checks/config_plan.rs` for what it checks.
#![no_main]

#[allow(dead_code)]
#[path = "../checks/common.rs"]
mod common;
#[path = "../checks/config_plan.rs"]
mod config_plan;

libfuzzer_sys::fuzz_target!(|data: &[u8]| config_plan::check(data));
