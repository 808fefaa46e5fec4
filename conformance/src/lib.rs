//! Property-based conformance tests for berth.
//!
//! - [`report`]: what the probe (`berth-probe`, a binary of this crate that
//!   runs as the container's process) prints: the kernel's view of the
//!   process, as JSON;
//! - [`oracle`]: from a spec, what the probe must report, and the
//!   comparison;
//! - [`strategies`]: proptest strategies of valid specs within what berth
//!   supports, and of invalid specs it must refuse.
//!
//! `tests/conformance.rs` puts them together: each generated spec runs the
//! probe in a real container and the report must match the oracle.

pub mod oracle;
pub mod report;
pub mod seccomp_oracle;
pub mod strategies;
