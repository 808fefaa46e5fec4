//! Forcing the fallbacks berth has for system calls older kernels lack.
//!
//! berth finds out whether `clone3` (Linux 5.3) and `openat2` (5.6) exist by
//! calling them, and falls back when the kernel answers `ENOSYS`. Every
//! kernel of the VM matrix (5.10 and later) has both, so the fallbacks would
//! never run there. Setting [`FORCE_FALLBACK_ENV`] makes berth behave as on
//! a kernel without them (read once per process, a comma-separated list):
//!
//! - `clone3`: plain `clone(CLONE_PIDFD)`; without clone3 there is no
//!   `CLONE_INTO_CGROUP` either, so on cgroup v2 the child is moved into its
//!   cgroup through `cgroup.procs` before it is released;
//! - `openat2`: mount destinations are resolved by the component-by-component
//!   `O_NOFOLLOW` walk instead of `openat2(RESOLVE_IN_ROOT)`;
//! - `all`: both.
//!
//! `cargo xtask vm-test --fallbacks on` sets it in the guests. Unknown names
//! are ignored (with a warning).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// The environment variable that forces the fallbacks.
pub(crate) const FORCE_FALLBACK_ENV: &str = "BERTH_FORCE_FALLBACK";

static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Reads [`FORCE_FALLBACK_ENV`] the first time it is called (in the parent,
/// before any clone).
pub(crate) fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Some(value) = std::env::var_os(FORCE_FALLBACK_ENV) else {
            return;
        };
        for name in value.to_string_lossy().split(',').map(str::trim) {
            match name {
                "clone3" => super::clone::force_clone(),
                "openat2" => NO_OPENAT2.store(true, Ordering::Relaxed),
                "all" => {
                    super::clone::force_clone();
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                }
                "" => {}
                other => tracing::warn!("{FORCE_FALLBACK_ENV}: unknown system call {other:?}"),
            }
        }
    });
}

/// Whether `openat2` is to be treated as missing from the start. A plain
/// atomic load: safe in the post-clone child.
pub(crate) fn no_openat2() -> bool {
    NO_OPENAT2.load(Ordering::Relaxed)
}
