//! The one error type of the SDK.
//!
//! Variants say which step failed, on which path, and with which errno, so a
//! caller can tell a bad spec ([`Error::InvalidSpec`]) from a kernel refusal
//! ([`Error::Init`], [`Error::Io`]) from a missing feature
//! ([`Error::Unsupported`]).

use std::io;
use std::path::PathBuf;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in berth.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The OCI spec asks for something impossible or unsafe. Nothing was
    /// created. `field` is the JSON path of the offending value
    /// (`mounts[2].destination`, `process.user.uid`, ...).
    #[error("invalid spec: {field}: {reason}")]
    InvalidSpec {
        /// JSON path of the offending field, as in `config.json`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The bundle could not be read (missing directory, unreadable or
    /// malformed `config.json`).
    #[error("bundle {path}: {reason}")]
    Bundle {
        /// The bundle directory or file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// A step of container initialisation failed inside the new container
    /// process: `kind` says which kind of step, to match on; `step`
    /// describes it for people, as the plan does (`mount proc on /proc`).
    #[error("container init: {step}{}: {source}", path.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default())]
    Init {
        /// The kind of the failed step.
        kind: InitStep,
        /// The failed step, described (for messages: the text may change).
        step: String,
        /// The path the step worked on, if any.
        path: Option<PathBuf>,
        /// The errno the kernel returned.
        #[source]
        source: io::Error,
    },

    /// A host-side operation failed: `op` says what berth was doing.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What berth was doing (`create state directory`, `write uid_map`).
        op: &'static str,
        /// The path it was working on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A system call failed on the host side.
    #[error("{op}: {source}")]
    Sys {
        /// The system call or operation.
        op: &'static str,
        /// The errno.
        #[source]
        source: io::Error,
    },

    /// An option of a call (not a field of the spec) is invalid: `option`
    /// names it (`log.max_size`, `stop signal`). Nothing was done.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option, as the SDK names it.
        option: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The container id is malformed.
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId {
        /// The id given.
        id: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A container with this id exists already.
    #[error("container {0:?} already exists")]
    AlreadyExists(String),

    /// No container with this id.
    #[error("container {0:?} does not exist")]
    NotFound(String),

    /// The operation is not allowed in the container's current state
    /// (deleting a running container without `force`, starting twice, ...).
    #[error("container {id:?} is {status}: cannot {op}")]
    InvalidState {
        /// The container id.
        id: String,
        /// Its status when the operation was attempted.
        status: String,
        /// The refused operation.
        op: &'static str,
    },

    /// The host lacks a feature the spec needs.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// Without root, an id mapping of the spec asks for host ids that are
    /// not the caller's: neither its own id nor within its subordinate
    /// ranges (`/etc/subuid`, `/etc/subgid`), or the caller has no such
    /// range at all.
    #[error("{field}: host ids {range} are not {user}'s: {reason}")]
    SubordinateIds {
        /// The mapping (`linux.uidMappings[1]`).
        field: String,
        /// The host ids it asks for (`100000-165535`).
        range: String,
        /// The user running the runtime.
        user: String,
        /// What is missing (no entry in `/etc/subuid`, or the ranges it has).
        reason: String,
    },

    /// Without root (no `CAP_SYS_RESOURCE`), `process.oomScoreAdj` may only
    /// raise the score the runtime's own process has, never lower it.
    #[error(
        "process.oomScoreAdj: {requested} is lower than this process's own {current}: \
         only raising it is allowed without root"
    )]
    OomScoreAdjLowered {
        /// The value the spec asks for.
        requested: i32,
        /// The runtime process's own `oom_score_adj`.
        current: i32,
    },

    /// A task berth ran in the background (on tokio's blocking pool, or
    /// spawned) ended without giving its result: it panicked, or it was
    /// cancelled as the runtime shut down. `task` names it.
    #[error("{task} task failed: {reason}")]
    TaskFailed {
        /// What the task was doing (`create`, `spawn`, `blocking`).
        task: &'static str,
        /// How it ended (the panic's message, or the cancellation).
        reason: String,
    },

    /// The container has exited, but its exit status is known only to
    /// the process that created it: that process neither recorded it nor
    /// is there to ask (it left its children to its own parent, as the
    /// CLI does, and is gone).
    #[error("container {id:?} has exited, but its exit status is known only to the process that created it")]
    ExitStatusUnknown {
        /// The container id.
        id: String,
    },

    /// An OCI hook failed or timed out.
    #[error("{kind} hook {path}: {reason}")]
    Hook {
        /// Which hook list (`prestart`, `createRuntime`, ...).
        kind: &'static str,
        /// The hook's executable.
        path: PathBuf,
        /// Exit status, timeout or spawn error.
        reason: String,
    },

    /// A cgroup operation failed.
    #[error("cgroup {path}: {reason}{}", source.as_ref().map(|s| format!(": {s}")).unwrap_or_default())]
    Cgroup {
        /// The cgroup path (relative to the hierarchy roots).
        path: String,
        /// What failed.
        reason: String,
        /// The cause (cgroups-rs's error, with the kernel's errno below
        /// it; see [`Error::errno`]), when there was one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },

    /// The shim of a detached container failed to create it; the message is
    /// the shim's error.
    #[error("shim: {0}")]
    Shim(String),

    /// The state file of a container is unreadable or corrupt.
    #[error("state of container {id:?}: {reason}")]
    State {
        /// The container id.
        id: String,
        /// What is wrong.
        reason: String,
    },

    /// An [extension](crate::extension) (a network, an image snapshot)
    /// failed; `source` is its own error, to downcast.
    #[error("{name}: {source}")]
    Extension {
        /// The extension's name.
        name: String,
        /// Its error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// The kind of set-up step that failed in a new container process, in
/// [`Error::Init`]: one per kind of step of the plan, and the failures
/// around them. New kinds may come with new steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InitStep {
    /// Before the first step: moving the child's own descriptors out of
    /// the range the container inherits, closing the embedder's.
    Descriptors,
    /// Resetting signal dispositions.
    ResetSignals,
    /// Joining the container's cgroup (v1 `tasks` files).
    JoinCgroup,
    /// Waiting for the parent to write the id maps and place the process.
    AwaitParent,
    /// Joining an existing namespace (`linux.namespaces[].path`).
    JoinNamespace,
    /// Becoming root of the new user namespace.
    BecomeRoot,
    /// Forking into a joined pid namespace (`exec` without root).
    ForkIntoPidNamespace,
    /// Writing the process's own `oom_score_adj` (without root).
    OomScoreAdj,
    /// Creating the cgroup namespace.
    UnshareCgroup,
    /// Creating the time namespace and setting its offsets.
    UnshareTime,
    /// `set_mempolicy` (`linux.memoryPolicy`).
    MemoryPolicy,
    /// Starting a new session.
    SetSid,
    /// Bringing up `lo` in a new network namespace.
    LoopbackUp,
    /// Setting the propagation of a mount (`linux.rootfsPropagation`).
    Propagation,
    /// Binding the rootfs onto itself.
    BindRootfs,
    /// A mount of the spec's `mounts` (or a default one).
    Mount,
    /// Remounting a mount point with new flags.
    Remount,
    /// Recursive mount attributes (`mount_setattr`).
    MountSetattr,
    /// Creating (or binding) a device node.
    Device,
    /// Creating a symlink in the rootfs (`/dev/fd`, `/dev/ptmx`, ...).
    Symlink,
    /// Waiting while the parent ran the create hooks.
    AwaitHooks,
    /// `pivot_root` into the rootfs.
    PivotRoot,
    /// Moving the rootfs onto `/` (a rootfs on an initramfs).
    MoveRoot,
    /// `chroot` into the rootfs (no mount namespace of its own).
    Chroot,
    /// Setting up the terminal and `/dev/console`.
    Console,
    /// Putting the stdio descriptors in place.
    Stdio,
    /// Writing a sysctl (`linux.sysctl`).
    Sysctl,
    /// Masking a path (`linux.maskedPaths`).
    MaskPath,
    /// Making a path read-only (`linux.readonlyPaths`).
    ReadonlyPath,
    /// Remounting the root read-only (`root.readonly`).
    ReadonlyRoot,
    /// `sethostname` (`hostname`).
    SetHostname,
    /// `setdomainname` (`domainname`).
    SetDomainname,
    /// Setting a resource limit (`process.rlimits`).
    Rlimit,
    /// `personality` (`linux.personality`).
    Personality,
    /// `sched_setattr` (`process.scheduler`).
    Scheduler,
    /// `ioprio_set` (`process.ioPriority`).
    IoPriority,
    /// Writing the LSM label for `execve` (AppArmor profile, SELinux label).
    LsmLabel,
    /// Dropping capabilities from the bounding set.
    DropBoundingCaps,
    /// Keeping capabilities across the switch of user.
    KeepCaps,
    /// `setgroups` (`process.user.additionalGids`).
    SetGroups,
    /// Switching to the process's gid.
    SetGid,
    /// Switching to the process's uid.
    SetUid,
    /// Setting the effective, permitted and inheritable capabilities.
    SetCaps,
    /// Setting the ambient capabilities.
    AmbientCaps,
    /// Changing to `process.cwd`.
    Chdir,
    /// Setting the umask.
    Umask,
    /// Setting `no_new_privs`.
    NoNewPrivileges,
    /// Loading the seccomp filter (or passing its notify descriptor on).
    Seccomp,
    /// Finding `process.args[0]`: not found or not executable.
    FindExecutable,
    /// Marking inherited descriptors close-on-exec.
    CloseFds,
    /// Waiting for `start`.
    AwaitStart,
    /// `execve` of the process.
    Exec,
    /// Starting `berth-waiter`, which waits for `start` in the container.
    StartWaiter,
    /// The process exited during set-up without reporting a step.
    Exited,
    /// A step the parent does not know (a report it cannot place).
    Unknown,
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidSpec {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// An error of extension `name`.
    pub fn extension(
        name: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error::Extension {
            name: name.into(),
            source: source.into(),
        }
    }

    /// A background task that ended without its result.
    pub(crate) fn task(task: &'static str, e: impl std::fmt::Display) -> Self {
        Error::TaskFailed {
            task,
            reason: e.to_string(),
        }
    }

    pub(crate) fn sys(op: &'static str, source: impl Into<io::Error>) -> Self {
        Error::Sys {
            op,
            source: source.into(),
        }
    }

    /// The errno behind this error, when the kernel refused something
    /// (found anywhere in the chain of causes).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Init { source, .. } | Error::Io { source, .. } | Error::Sys { source, .. } => {
                source.raw_os_error()
            }
            other => {
                let mut cause = std::error::Error::source(other);
                while let Some(e) = cause {
                    if let Some(n) = e
                        .downcast_ref::<io::Error>()
                        .and_then(io::Error::raw_os_error)
                    {
                        return Some(n);
                    }
                    cause = e.source();
                }
                None
            }
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::sys("system call", io::Error::from(e))
    }
}

#[cfg(test)]
mod errno_tests {
    use super::Error;

    /// An error whose cause is another error, as cgroups-rs nests them.
    #[derive(Debug, thiserror::Error)]
    #[error("write failed")]
    struct Wrapped(#[source] std::io::Error);

    #[test]
    fn the_errno_is_found_below_a_cgroup_error() {
        let e = Error::Cgroup {
            path: "a/b".into(),
            reason: "apply resources".into(),
            source: Some(Box::new(Wrapped(std::io::Error::from_raw_os_error(
                libc::EBUSY,
            )))),
        };
        assert_eq!(e.errno(), Some(libc::EBUSY));
        assert_eq!(e.to_string(), "cgroup a/b: apply resources: write failed");
        let none = Error::Cgroup {
            path: "a".into(),
            reason: "no cgroup hierarchy is mounted".into(),
            source: None,
        };
        assert_eq!(none.errno(), None);
    }
}
