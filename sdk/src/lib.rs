//! # berth
//!
//! An async-first OCI container runtime for Linux, as a library. berth turns
//! an OCI runtime spec (`config.json` + rootfs) into a running, isolated
//! container and hands it back as futures: [`Container::wait`] resolves with
//! the exit status, observed through a pidfd registered with tokio.
//!
//! ```no_run
//! # async fn demo() -> berth::Result<()> {
//! use berth::{Bundle, Config, Runtime};
//!
//! let rt = Runtime::new(Config::default()).await?;
//! let ctr = rt.create("hello", Bundle::from_dir("bundle").await?).await?;
//! ctr.start().await?;
//! let status = ctr.wait().await?;
//! ctr.delete().await?;
//! assert!(status.success());
//! # Ok(()) }
//! ```
//!
//! ## How a container starts
//!
//! The spec is first compiled into a plan: every path a C string,
//! every option a flag, every invalid value an [`Error::InvalidSpec`]
//! before any process exists. Then one `clone3` (into the container's
//! namespaces, sharing memory like `posix_spawn` so the cost does not grow
//! with the embedding process) starts a child that walks the plan with raw
//! system calls and blocks before `execve` until [`Container::start`].
//!
//! ## What is API
//!
//! The user's view is [`Runtime`], [`Container`], [`ExecProcess`],
//! [`Bundle`], [`Config`] and the option types, [`Error`], [`Event`],
//! [`Stats`], [`Stdio`], [`Pty`], [`ExitStatus`], [`Status`], and
//! [`extension`] for crates that extend the runtime (`berth-net`,
//! `berth-image`), [`blocking`] (where berth makes its blocking system
//! calls), the shim's [`shim::run_shim`], and a few functions of
//! the host and security modules ([`cgroup_layout`],
//! [`default_seccomp_profile`]). The internals (the plan, cgroup, host and
//! security modules) are public only with the `internals` feature, for
//! berth's own CLI, tests, fuzzers and benches: they are not part of the
//! API and change without notice.

#![deny(missing_docs)]

/// Declares modules that are public only with the `internals` feature (for
/// berth's own CLI, tests, fuzzers and benches; not API).
macro_rules! internal_modules {
    ($($name:ident),* $(,)?) => {
        $(
            #[cfg(feature = "internals")]
            #[doc(hidden)]
            pub mod $name;
            #[cfg(not(feature = "internals"))]
            mod $name;
        )*
    };
}

internal_modules!(cgroups, host, plan, security);

pub mod blocking;
mod bundle;
mod container;
mod error;
mod exec;
pub mod extension;
mod hooks;
mod inotify;
pub mod logs;
pub mod rootless;
mod runtime;
pub mod shim;
mod signal;
mod state;
mod stdio;

pub use bundle::Bundle;
pub use cgroups::{layout as cgroup_layout, Layout as CgroupLayout};
pub use cgroups::{
    BlkioEntry, BlkioStats, CpuStats, CpuUsage, HugetlbStats, MemoryStats, MemoryUsage, PidsStats,
    Stats, StatsDetail, Throttling,
};
pub use container::{
    leave_children_to_parent, validate_id, Container, CreateOptions, Event, ExecOptions,
    ExecProcess, RootfsMount, StatsSampler, StatsTick, STOP_SIGNAL_ANNOTATION,
};
pub use error::{Error, InitStep, Result};
pub use logs::{LogConfig, LogLine, LogOptions, LogStream};
pub use oci_spec;
pub use runtime::{Config, Runtime};
pub use security::seccomp_default::{
    apply as apply_default_seccomp_profile, profile as default_seccomp_profile,
};
pub use signal::Signal;
pub use state::{ExitStatus, Status};
pub use stdio::{take_preserved_fds, Pty, Stdio};
