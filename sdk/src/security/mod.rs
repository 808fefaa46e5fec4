//! Privileges of the container's process: capabilities, the seccomp
//! filter and its default profile, LSM labels, running without root.

pub mod capabilities;
pub mod lsm;
pub mod rootless;
pub mod seccomp;
pub mod seccomp_default;
