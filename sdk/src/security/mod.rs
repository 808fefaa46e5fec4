//! Privileges of the container's process: capabilities (seccomp,
//! no_new_privs and LSM labels come with the security issue).

pub mod capabilities;
