//! `process_exec`: arbitrary bytes as the `process` JSON of `berth exec` →
//! `compile_exec` with no namespace to join: never a panic; a plan ending
//! with `Exec`, or an error with a message.

use berth::host::Host;
use berth::oci_spec::runtime::Process;
use berth::plan::{compile_exec, Options};

/// Checks one input.
pub fn check(data: &[u8]) {
    if let Ok(process) = serde_json::from_slice::<Process>(data) {
        super::common::check_result(compile_exec(
            &process,
            Vec::new(),
            Host::get(),
            &Options::default(),
        ));
    }
}
