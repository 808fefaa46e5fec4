//! The berth command line: a runc-compatible front end to the berth SDK,
//! built as two binaries.
//!
//! - `berth` is what containerd, podman and other callers of runc exec for
//!   every `create`, `start`, `state`, `kill`, `delete`: the runtime
//!   commands and container networks. It holds no image code (no registry
//!   client, TLS or layer decompression), so those commands start lean.
//! - `berth-images` holds the same commands plus the image ones (`pull`,
//!   `push`, `images`, `rmi`, `commit`, `import`, `create`/`run --image`).
//!   `berth` runs it (by `exec`, the same process) for those commands, so
//!   users only ever type `berth`.
//!
//! Commands, flags, exit codes and JSON shapes follow runc's, since callers
//! parse them.

pub mod cli;
pub mod commands;
mod entry;
mod log;

pub use commands::{Delegated, Images, InProcess};
pub use entry::main;
