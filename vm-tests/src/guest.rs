//! What runs inside a guest: the `/init` script and the files it expects.
//!
//! The init is a busybox `sh` script in two stages:
//!
//! 1. Leave the initramfs root. The kernel's `rootfs` has no parent mount, and
//!    `pivot_root(2)` refuses to move a root like that (a container runtime's
//!    rootfs switch would fail with `EINVAL`), so the init binds `/` onto
//!    `/newroot`, moves that mount over `/` and `chroot`s into it, as
//!    `switch_root` does, without copying a byte.
//! 2. Mount `proc`, `sys`, `devtmpfs`, `devpts`, tmpfs on `/tmp` and `/run`
//!    (binding back what the archive put there: a checkout under `/tmp`);
//!    `insmod` the modules (in the order [`crate::modules`] resolved); set up
//!    cgroups in the cell's mode, read from the kernel command line
//!    ([`MODE_PARAM`]`=v1|v2`); run each test binary; power off.
//!
//! Results go to the second serial port (`/dev/ttyS1`, a file on the host),
//! away from the kernel's console messages on `ttyS0`. The lines are the
//! [`crate::results`] markers, with each test binary's libtest JSON events
//! (and anything else it prints) between its suite markers.

use std::fmt::Write as _;

use crate::results::{
    BEGIN, CGROUP, END, FAILED_CONTROLLER, NOT_APPLICABLE, SUITE_END, SUITE_START,
};

/// The kernel command-line parameter that tells the init the cgroup mode.
pub const MODE_PARAM: &str = "berth.cgroup";

/// The kernel command-line parameter whose value the init exports as
/// `BERTH_FORCE_FALLBACK` to the tests (`clone3,openat2`, `all`): berth then
/// uses the fallbacks it has for kernels without those system calls.
pub const FALLBACK_PARAM: &str = "berth.fallback";

/// Where, in the guest, the init keeps the modules to load (`<name>.ko`).
pub const MODULES_DIR: &str = "lib/berth-vm/modules";

/// The busybox applets the init itself uses (linked into `/bin`), on top of
/// what the test binaries call (`cp`, `sh`, `sleep`...). Every applet of the
/// busybox is linked in fact; see [`crate::guest`]'s caller.
pub const INIT_APPLETS: &[&str] = &[
    "sh", "mount", "mkdir", "cat", "echo", "insmod", "poweroff", "uname", "ip", "chroot", "awk",
    "dmesg", "hostname", "sync", "ln", "cp",
];

/// One test binary to run in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    /// A short name for the report (`sdk/lifecycle`).
    pub name: String,
    /// Its absolute path in the guest.
    pub path: String,
    /// More libtest arguments (`--ignored`).
    pub args: Vec<String>,
    /// Whether [`InitConfig::filter`] applies to it.
    pub filtered: bool,
}

/// Everything the init script depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitConfig {
    /// Modules to `insmod`, in load order (names, without `.ko`).
    pub modules: Vec<String>,
    /// The test binaries, run one after the other.
    pub suites: Vec<Suite>,
    /// libtest's `--test-threads`; `None` leaves libtest's default (the CPUs).
    pub test_threads: Option<u32>,
    /// A libtest filter: only tests whose name contains it run.
    pub filter: Option<String>,
    /// Extra environment for the test binaries.
    pub env: Vec<(String, String)>,
    /// cgroup v1 controllers without which a v1 guest cannot run berth's
    /// tests: when one of them fails to mount, the guest reports the cell *not
    /// applicable* and runs nothing.
    pub v1_required: Vec<String>,
}

/// Quotes `s` for `sh` (single quotes, `'` spelled `'\''`).
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `/init` script for `config`.
pub fn init_script(config: &InitConfig) -> String {
    let mut s = String::from(STAGE1);
    s += STAGE2_SETUP;
    for m in &config.modules {
        let _ = writeln!(
            s,
            "insmod /{MODULES_DIR}/{m}.ko 2>/dev/null || echo \"berth-vm: insmod {m} failed\""
        );
    }
    let required: Vec<String> = config.v1_required.iter().map(|c| sh_quote(c)).collect();
    s += &CGROUPS
        .replace("@REQUIRED@", &required.join(" "))
        .replace("@CGROUP@", CGROUP)
        .replace("@FAILED_CONTROLLER@", FAILED_CONTROLLER)
        .replace("@NOT_APPLICABLE@", NOT_APPLICABLE);
    for (k, v) in &config.env {
        let _ = writeln!(s, "export {k}={}", sh_quote(v));
    }
    let mut common = String::from("-Z unstable-options --format json");
    if let Some(n) = config.test_threads {
        let _ = write!(common, " --test-threads={n}");
    }
    s += "if [ -z \"$not_applicable\" ]; then\n";
    for suite in &config.suites {
        let mut args = common.clone();
        for a in &suite.args {
            let _ = write!(args, " {}", sh_quote(a));
        }
        if let (true, Some(f)) = (suite.filtered, &config.filter) {
            let _ = write!(args, " {}", sh_quote(f));
        }
        let _ = write!(
            s,
            "  out {SUITE_START} {name}\n  \
             ( cd /tmp && RUSTC_BOOTSTRAP=1 {path} {args} ) >&3 2>&3 </dev/null\n  \
             out {SUITE_END} {name} $?\n",
            name = sh_quote(&suite.name),
            path = sh_quote(&suite.path),
        );
    }
    s += "fi\n";
    let _ = writeln!(s, "out {END}");
    s += "sync\npoweroff -f\n";
    s.replace("@BEGIN@", BEGIN)
        .replace("@MODE_PARAM@", MODE_PARAM)
        .replace("@FALLBACK_PARAM@", FALLBACK_PARAM)
}

const STAGE1: &str = r#"#!/bin/sh
# Generated by berth-vm-tests (guest.rs). Stage 1: leave the initramfs root,
# which pivot_root(2) refuses to move, by binding it onto /newroot, moving that
# over / and chrooting into it.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
if [ "$1" != stage2 ]; then
  mkdir -p /newroot
  mount --bind / /newroot || echo "berth-vm: bind of / failed"
  cd /newroot && mount --move . / && exec chroot . /init stage2
  echo "berth-vm: could not leave the initramfs root"
fi
"#;

const STAGE2_SETUP: &str = r#"# Stage 2.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx 2>/dev/null
mount -t tmpfs -o mode=1777 shm /dev/shm
# tmpfs on /tmp and /run, keeping what the archive put there (the host's
# checkout may live under /tmp): each entry is bound back over the tmpfs.
for d in /tmp /run; do
  dmode=0755; [ "$d" = /tmp ] && dmode=1777
  carried=
  for e in "$d"/* "$d"/.[!.]*; do [ -e "$e" ] && carried=1; done
  if [ -n "$carried" ]; then
    mkdir -p "/.carried$d" && mount --bind "$d" "/.carried$d"
  fi
  mount -t tmpfs -o mode=$dmode tmpfs "$d"
  if [ -n "$carried" ]; then
    for e in "/.carried$d"/* "/.carried$d"/.[!.]*; do
      [ -e "$e" ] || continue
      n="$d/${e##*/}"
      if [ -d "$e" ]; then mkdir -p "$n"; else : > "$n"; fi
      mount --bind "$e" "$n"
    done
  fi
done
mount -t mqueue mqueue /dev/mqueue 2>/dev/null
hostname berth-vm
ip link set lo up
exec 3>/dev/ttyS1
out() { echo "$*" >&3; }
mode=v2
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    @MODE_PARAM@=*) mode="${arg#*=}" ;;
    @FALLBACK_PARAM@=*) export BERTH_FORCE_FALLBACK="${arg#*=}" ;;
  esac
done
export BERTH_VM_CGROUP=$mode
out @BEGIN@ release=$(uname -r) mode=$mode cpus=$(grep -c ^processor /proc/cpuinfo) fallback=${BERTH_FORCE_FALLBACK:-none}
"#;

const CGROUPS: &str = r#"not_applicable=
if [ "$mode" = v1 ]; then
  mount -t tmpfs -o mode=0755 cgroup /sys/fs/cgroup
  for c in $(awk 'NR > 1 && $4 == 1 { print $1 }' /proc/cgroups); do
    mkdir -p /sys/fs/cgroup/$c
    if mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c 2>/dev/null; then
      out @CGROUP@ $c
    else
      rmdir /sys/fs/cgroup/$c
      out @FAILED_CONTROLLER@ $c
    fi
  done
  for c in @REQUIRED@; do
    [ -d /sys/fs/cgroup/$c ] || not_applicable="$not_applicable $c"
  done
  if [ -n "$not_applicable" ]; then
    out @NOT_APPLICABLE@ no cgroup v1 hierarchy for:$not_applicable
  fi
else
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
  for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo +$c > /sys/fs/cgroup/cgroup.subtree_control && out @CGROUP@ $c
  done
fi
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_sh() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn script_runs_each_suite_with_the_filter_and_ends_with_the_end_marker() {
        let script = init_script(&InitConfig {
            modules: vec!["overlay".into()],
            suites: vec![
                Suite {
                    name: "sdk/lifecycle".into(),
                    path: "/w/t/lifecycle-1".into(),
                    args: vec![],
                    filtered: true,
                },
                Suite {
                    name: "conformance/probe".into(),
                    path: "/w/t/probe-2".into(),
                    args: vec!["--ignored".into()],
                    filtered: false,
                },
            ],
            test_threads: Some(2),
            filter: Some("oom".into()),
            env: vec![("PROPTEST_CASES".into(), "8".into())],
            v1_required: vec!["memory".into()],
        });
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("insmod /lib/berth-vm/modules/overlay.ko"));
        assert!(script.contains("export PROPTEST_CASES='8'"));
        assert!(script.contains("for c in 'memory'; do"));
        let lifecycle = script.find("'/w/t/lifecycle-1'").unwrap();
        let probe = script.find("'/w/t/probe-2'").unwrap();
        assert!(lifecycle < probe);
        assert!(script.contains("--test-threads=2 'oom'"));
        assert!(script.contains(
            "'/w/t/probe-2' -Z unstable-options --format json --test-threads=2 '--ignored' )"
        ));
        let end = script.find(&format!("out {END}")).unwrap();
        assert!(probe < end && end < script.find("poweroff -f").unwrap());
        assert!(!script.contains('@'), "a placeholder is left:\n{script}");
    }
}
