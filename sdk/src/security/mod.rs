//! Privileges of the container's process: capabilities, the seccomp
//! filter and its default profile.

pub mod capabilities;
pub mod seccomp;
pub mod seccomp_default;
