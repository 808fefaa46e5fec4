//! berth's default seccomp profile: Docker's default in intent — what a
//! container may call without extra privilege — as data.
//!
//! The allowlist is Docker's (`profiles/seccomp/default.json`); calls that
//! need a capability are allowed only when the process's capabilities
//! include it, as Docker resolves its `includes.caps` when it writes a
//! container's spec. Everything else fails with `EPERM`, and `clone3` with
//! `ENOSYS` so that C libraries fall back to `clone`, whose namespace flags
//! are filtered.

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

use super::capabilities;

/// Calls every container may make.
const ALLOW: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    // Docker allows these from kernel 4.8 on, where ptrace can no longer
    // bypass seccomp; berth needs a newer kernel anyway.
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
];

/// Calls of the native architecture only.
#[cfg(target_arch = "x86_64")]
const ARCH_ALLOW: &[&str] = &["arch_prctl", "modify_ldt"];
#[cfg(target_arch = "aarch64")]
const ARCH_ALLOW: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
];

/// The architectures a native process may call through.
#[cfg(target_arch = "x86_64")]
const ARCHES: &[Arch] = &[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32];
#[cfg(target_arch = "aarch64")]
const ARCHES: &[Arch] = &[Arch::ScmpArchAarch64, Arch::ScmpArchArm];

/// Calls allowed to a process holding a capability.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &["kcmp", "pidfd_getfd", "process_madvise"],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// `personality(2)` values a container may set: `PER_LINUX`,
/// `PER_LINUX32`, `UNAME26`, `UNAME26|PER_LINUX32`, and the query `0xffffffff`.
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// `CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|
/// CLONE_NEWPID|CLONE_NEWNET`: `clone` without `CAP_SYS_ADMIN` may set none.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7e02_0000;

/// `AF_VSOCK`: its sockets reach the host, whatever the network namespace.
const AF_VSOCK: u64 = 40;

fn rule(names: &[&str], action: LinuxSeccompAction) -> LinuxSyscall {
    let mut r = LinuxSyscall::default();
    r.set_names(names.iter().map(|s| s.to_string()).collect());
    r.set_action(action);
    r
}

fn arg(index: usize, value: u64, op: LinuxSeccompOperator) -> LinuxSeccompArg {
    LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op)
        .build()
        .expect("every field is set")
}

/// The default profile for a process with capabilities `caps` (its
/// bounding set). Names berth's system call tables do not know (calls
/// newer than them) are left out: a filter cannot name them, and the
/// default action refuses them.
pub fn profile<'a>(caps: impl IntoIterator<Item = &'a Capability>) -> LinuxSeccomp {
    let held: Vec<u32> = caps.into_iter().filter_map(capabilities::of).collect();
    let has = |name: &str| capabilities::number(name).is_some_and(|n| held.contains(&n));
    let known = |n: &&str| super::seccomp::arch::is_known(n);

    let mut allow: Vec<&str> = ALLOW.iter().chain(ARCH_ALLOW).copied().collect();
    for (cap, names) in BY_CAPABILITY {
        if has(cap) {
            allow.extend(names.iter().copied());
        }
    }
    allow.sort_unstable();
    allow.dedup();
    allow.retain(known);

    let mut rules = vec![rule(&allow, LinuxSeccompAction::ScmpActAllow)];
    let mut socket = rule(&["socket"], LinuxSeccompAction::ScmpActAllow);
    socket.set_args(Some(vec![arg(
        0,
        AF_VSOCK,
        LinuxSeccompOperator::ScmpCmpNe,
    )]));
    rules.push(socket);
    let mut personality = rule(&["personality"], LinuxSeccompAction::ScmpActAllow);
    // One argument listed several times: any of the values.
    personality.set_args(Some(
        PERSONALITIES
            .iter()
            .map(|&p| arg(0, p, LinuxSeccompOperator::ScmpCmpEq))
            .collect(),
    ));
    rules.push(personality);
    if !has("CAP_SYS_ADMIN") {
        let mut clone = rule(&["clone"], LinuxSeccompAction::ScmpActAllow);
        // s390 swaps clone's first two arguments; berth runs on x86_64
        // and aarch64 only.
        clone.set_args(Some(vec![arg(
            0,
            CLONE_NAMESPACE_FLAGS,
            LinuxSeccompOperator::ScmpCmpMaskedEq,
        )]));
        rules.push(clone);
        // clone3 passes its flags in memory, which seccomp cannot read:
        // ENOSYS makes C libraries fall back to the filtered clone.
        let mut clone3 = rule(&["clone3"], LinuxSeccompAction::ScmpActErrno);
        clone3.set_errno_ret(Some(libc::ENOSYS as u32));
        rules.push(clone3);
    }

    let mut p = LinuxSeccomp::default();
    p.set_default_action(LinuxSeccompAction::ScmpActErrno);
    p.set_default_errno_ret(Some(libc::EPERM as u32));
    p.set_architectures(Some(ARCHES.to_vec()));
    p.set_syscalls(Some(rules));
    p
}

/// Gives `spec` the default profile for its process's bounding set, as
/// `berth spec` and the test fixtures do (and `docker run` without
/// `--security-opt seccomp=...`).
pub fn apply(spec: &mut oci_spec::runtime::Spec) {
    let caps: Vec<Capability> = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .map(|b| b.iter().copied().collect())
        .unwrap_or_default();
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_seccomp(Some(profile(&caps)));
    spec.set_linux(Some(linux));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_profile_compiles() {
        let caps = [
            Capability::Chown,
            Capability::Kill,
            Capability::NetBindService,
        ];
        let p = profile(&caps);
        let f = super::super::seccomp::compile(&p).unwrap();
        assert!(f.program.len() > 8 * 100, "{} bytes", f.program.len());
        let allowed = &p.syscalls().as_ref().unwrap()[0];
        assert!(allowed.names().iter().any(|n| n == "read"));
        assert!(!allowed.names().iter().any(|n| n == "mount"));
        let with_admin = profile(&[Capability::SysAdmin]);
        assert!(with_admin.syscalls().as_ref().unwrap()[0]
            .names()
            .iter()
            .any(|n| n == "mount"));
        super::super::seccomp::compile(&with_admin).unwrap();
    }

    #[test]
    fn every_name_of_the_lists_is_in_the_system_call_tables_or_newer() {
        // Names the tables do not know are dropped at run time; list
        // them so that a typo cannot hide among them.
        let unknown: Vec<&str> = ALLOW
            .iter()
            .chain(ARCH_ALLOW)
            .chain(BY_CAPABILITY.iter().flat_map(|(_, n)| n.iter()))
            .copied()
            .filter(|n| !super::super::seccomp::arch::is_known(n))
            .collect();
        assert!(unknown.len() <= 4, "unknown to the tables: {unknown:?}");
    }
}
