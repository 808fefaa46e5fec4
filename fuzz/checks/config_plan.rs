//! `config_plan`: arbitrary bytes as `config.json` → parse → plan.
//!
//! Whatever parses as an OCI `Spec` is compiled (root at `/`) with this
//! host's probe; the compiler must never panic, and its result must keep the
//! invariants of `common::check_result`.

use berth::oci_spec::runtime::Spec;

/// Checks one input.
pub fn check(data: &[u8]) {
    if let Ok(spec) = serde_json::from_slice::<Spec>(data) {
        super::common::compile_spec(spec);
    }
}
