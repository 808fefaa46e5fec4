//! Specs that runc and crun run, run under berth too (issue #15): their own
//! default configs, as root and as an unprivileged user, recursive mount
//! options, seccomp profiles that predate berth's own calls, `proc` on a
//! symlink and `--preserve-fds`. Where runc is the reference, the same
//! bundle runs under runc and under berth and the test compares what the
//! container saw. (crun 1.8.1 refuses to run on a hybrid cgroup host, so
//! crun's default spec is compared with runc's view of it.)
//!
//! Run as root; the rootless cases drop to `nobody` with setpriv.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// `nobody`.
const NOBODY: u32 = 65534;

fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `cmd` with stdout and stderr in files (a container left behind
/// would keep a pipe open).
fn output(cmd: &mut Command) -> Output {
    berth_fixtures::output_via_files(cmd)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Which runtime runs the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rt {
    Berth,
    Runc,
}

/// A runtime's state root of the test's own, plus the user it runs as.
struct Runtime {
    rt: Rt,
    root: PathBuf,
    user: Option<u32>,
    /// `$XDG_RUNTIME_DIR` of a rootless run.
    xdg: Option<tempfile::TempDir>,
    ids: Vec<String>,
}

impl Runtime {
    fn new(rt: Rt, user: Option<u32>) -> Runtime {
        berth_fixtures::require_root();
        let xdg = user.map(|_| owned_dir());
        let root = match &xdg {
            Some(d) => d.path().join("state"),
            None => PathBuf::from(format!("/run/{}", unique("berth-compat"))),
        };
        Runtime {
            rt,
            root,
            user,
            xdg,
            ids: Vec::new(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let program = match self.rt {
            Rt::Berth => BERTH,
            Rt::Runc => "runc",
        };
        let mut cmd = match self.user {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.args([
                    format!("--reuid={uid}"),
                    format!("--regid={uid}"),
                    "--clear-groups".into(),
                    "--".into(),
                    "env".into(),
                    format!(
                        "XDG_RUNTIME_DIR={}",
                        self.xdg.as_ref().unwrap().path().display()
                    ),
                    program.into(),
                ]);
                c
            }
            None => Command::new(program),
        };
        cmd.arg("--root").arg(&self.root).args(args);
        cmd
    }

    /// `run` of `bundle` in a pseudo-terminal (runc's `run` of a spec with
    /// `process.terminal` wants one, as the default specs ask).
    fn run(&mut self, bundle: &Path, terminal: bool) -> Output {
        let id = unique(match self.rt {
            Rt::Berth => "berth",
            Rt::Runc => "runc",
        });
        self.ids.push(id.clone());
        let b = bundle.to_str().unwrap();
        let cmd = self.command(&["run", "--bundle", b, &id]);
        if !terminal {
            return output(&mut { cmd });
        }
        let line: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| format!("'{}'", a.to_str().unwrap()))
            .collect();
        let mut o = output(Command::new("script").args(["-qec", &line.join(" "), "/dev/null"]));
        // The terminal's carriage returns and script(1)'s control bytes.
        o.stdout
            .retain(|&b| b == b'\n' || b == b'\t' || (b' '..=b'~').contains(&b));
        o
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = output(&mut self.command(&["delete", "--force", id]));
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A directory `nobody` owns.
fn owned_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(d.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A bundle directory with `tool spec [--rootless]`'s config.json,
/// generated as `user`.
struct Bundle {
    dir: tempfile::TempDir,
    spec: Value,
}

impl Bundle {
    fn generate(tool: &str, user: Option<u32>) -> Bundle {
        let dir = owned_dir();
        let mut cmd = match user {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.args([
                    format!("--reuid={uid}"),
                    format!("--regid={uid}"),
                    "--clear-groups".into(),
                    "--".into(),
                    tool.into(),
                ]);
                c
            }
            None => Command::new(tool),
        };
        cmd.arg("spec").current_dir(dir.path());
        if user.is_some() {
            cmd.arg("--rootless");
        }
        let o = output(&mut cmd);
        assert!(o.status.success(), "{tool} spec: {}", text(&o));
        let spec =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
                .unwrap();
        Bundle { dir, spec }
    }

    /// The spec with only `args` and `root.path` changed (the shared
    /// busybox rootfs), written to config.json.
    fn with_args(&mut self, args: &[&str]) -> &Path {
        self.spec["process"]["args"] = json!(args);
        self.spec["root"]["path"] = berth_fixtures::rootfs::shared()
            .unwrap()
            .to_str()
            .unwrap()
            .into();
        self.write()
    }

    fn write(&self) -> &Path {
        std::fs::write(self.dir.path().join("config.json"), self.spec.to_string()).unwrap();
        self.dir.path()
    }

    fn terminal(&self) -> bool {
        self.spec["process"]["terminal"].as_bool().unwrap_or(false)
    }

    /// The namespace types the spec lists (as `/proc/self/ns` names them).
    fn namespaces(&self) -> BTreeSet<String> {
        self.spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| match n["type"].as_str().unwrap() {
                "network" => "net".to_string(),
                "mount" => "mnt".to_string(),
                other => other.to_string(),
            })
            .collect()
    }
}

const NAMESPACES: [&str; 7] = ["pid", "net", "ipc", "uts", "mnt", "user", "cgroup"];

/// What the default specs' process reports: its capability sets, no_new_privs,
/// uid, hostname, and `ns <type> <link>` for each namespace.
const OBSERVE: &str = "grep -E '^(Cap|NoNewPrivs)' /proc/self/status; echo uid $(id -u); \
     echo host $(hostname); for n in pid net ipc uts mnt user cgroup; do \
     echo ns $n $(readlink /proc/self/ns/$n); done";

/// The lines of [`OBSERVE`]'s output, with namespace links turned into
/// "new" or "host".
fn observed(out: &str) -> Vec<String> {
    out.lines()
        // runc's terminal set-up echoes a NUL, which the pty shows as "^@".
        .map(|l| l.trim_start_matches("^@"))
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["ns", n, link] => {
                    let host = std::fs::read_link(format!("/proc/self/ns/{n}")).unwrap();
                    let new = Path::new(link) != host;
                    format!("ns {n} {}", if new { "new" } else { "host" })
                }
                _ => w.join(" "),
            }
        })
        .collect()
}

fn new_namespaces(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("ns ")?.strip_suffix(" new"))
        .map(String::from)
        .collect()
}

/// Runs `tool spec`'s default config (only `args` and `root.path` changed)
/// under runc and berth as `user`; both must succeed and see the same.
fn default_spec_runs_like_runc(tool: &str, user: Option<u32>) {
    let mut bundle = Bundle::generate(tool, user);
    let dir = bundle.with_args(&["sh", "-c", OBSERVE]).to_path_buf();
    let listed = bundle.namespaces();
    let mut seen = Vec::new();
    for rt in [Rt::Runc, Rt::Berth] {
        let mut r = Runtime::new(rt, user);
        let o = r.run(&dir, bundle.terminal());
        assert!(
            o.status.success(),
            "{rt:?} with {tool} spec (user {user:?}): {}",
            text(&o)
        );
        let lines = observed(&String::from_utf8_lossy(&o.stdout));
        let new = new_namespaces(&lines);
        let expected: BTreeSet<String> = NAMESPACES
            .iter()
            .filter(|n| listed.contains(**n))
            .map(|n| n.to_string())
            .collect();
        assert_eq!(new, expected, "{rt:?}: namespaces; {lines:?}");
        seen.push(lines);
    }
    assert_eq!(seen[0], seen[1], "runc (left) and berth (right) differ");
    // runc and crun skip ambient capabilities outside inheritable: none.
    assert!(
        seen[1].iter().any(|l| l == "CapAmb: 0000000000000000"),
        "{:?}",
        seen[1]
    );
}

#[test]
fn runc_default_spec_runs_as_root_like_runc() {
    default_spec_runs_like_runc("runc", None);
}

#[test]
fn crun_default_spec_runs_as_root_like_runc() {
    default_spec_runs_like_runc("crun", None);
}

#[test]
fn runc_rootless_default_spec_runs_as_an_unprivileged_user_like_runc() {
    default_spec_runs_like_runc("runc", Some(NOBODY));
}

/// `crun spec --rootless` keeps the default device rule (deny all) and
/// writes no id maps: berth maps the caller to root, as crun does, and runs
/// it without a delegated cgroup, as runc runs device rules rootless.
#[test]
fn crun_rootless_default_spec_with_device_rules_runs_as_an_unprivileged_user() {
    let mut bundle = Bundle::generate("crun", Some(NOBODY));
    assert!(bundle.spec["linux"]["resources"]["devices"].is_array());
    let dir = bundle
        .with_args(&["sh", "-c", &format!("{OBSERVE}; cat /proc/self/uid_map")])
        .to_path_buf();
    let mut r = Runtime::new(Rt::Berth, Some(NOBODY));
    let o = r.run(&dir, bundle.terminal());
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines = observed(&out);
    assert!(lines.iter().any(|l| l == "uid 0"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l == &format!("0 {NOBODY} 1")),
        "{lines:?}"
    );
    let expected: BTreeSet<String> = NAMESPACES
        .iter()
        .filter(|n| bundle.namespaces().contains(**n))
        .map(|n| n.to_string())
        .collect();
    assert_eq!(new_namespaces(&lines), expected, "{lines:?}");

    // A limit only a cgroup of its own can enforce is still refused, by
    // its field.
    bundle.spec["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    bundle.write();
    let o = r.run(&dir, bundle.terminal());
    assert!(
        !o.status.success(),
        "ran with a memory limit it cannot enforce"
    );
    let t = text(&o);
    assert!(
        t.contains("linux.resources.memory") && t.contains("not delegated"),
        "{t}"
    );
}

/// A host directory with a tmpfs mounted inside it (the nested mount),
/// unmounted and removed on drop.
struct Nested {
    dir: tempfile::TempDir,
}

impl Nested {
    fn new() -> Nested {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("inner")).unwrap();
        let o = output(Command::new("mount").args([
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "tmpfs",
            dir.path().join("inner").to_str().unwrap(),
        ]));
        assert!(o.status.success(), "{}", text(&o));
        Nested { dir }
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        let _ = output(Command::new("umount").arg(self.dir.path().join("inner")));
    }
}

/// The per-mount options (field 6) of `mountpoint` in mountinfo output.
fn mount_options(mountinfo: &str, mountpoint: &str) -> BTreeSet<String> {
    let line = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some(mountpoint))
        .unwrap_or_else(|| panic!("{mountpoint} not in {mountinfo}"));
    line.split_whitespace()
        .nth(5)
        .unwrap()
        .split(',')
        .map(String::from)
        .collect()
}

/// `rro`, `rnosuid`, ... reach the nested mount of an `rbind`, as runc
/// applies them: checked in mountinfo, and compared with runc's.
#[test]
fn recursive_mount_options_reach_nested_mounts_like_runc() {
    let nested = Nested::new();
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &["rro", "rnosuid", "rnodev", "rnoexec", "rnoatime"],
            &["ro", "nosuid", "nodev", "noexec", "noatime"],
        ),
        (&["rstrictatime", "rnodiratime"], &["rw", "nodiratime"]),
        // `ro` applies to the top mount only; `rrw` then clears it on all.
        (&["ro", "rrw", "rrelatime"], &["rw", "relatime"]),
    ];
    for (opts, expected) in cases {
        let mut bundle = Bundle::generate("runc", None);
        bundle.spec["process"]["terminal"] = false.into();
        let mut options = vec!["rbind"];
        options.extend(opts);
        bundle.spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt",
            "type": "bind",
            "source": nested.dir.path(),
            "options": options,
        }));
        let dir = bundle
            .with_args(&["cat", "/proc/self/mountinfo"])
            .to_path_buf();
        let mut seen = Vec::new();
        for rt in [Rt::Runc, Rt::Berth] {
            let mut r = Runtime::new(rt, None);
            let o = r.run(&dir, false);
            assert!(o.status.success(), "{rt:?} {opts:?}: {}", text(&o));
            let info = String::from_utf8_lossy(&o.stdout).to_string();
            let inner = mount_options(&info, "/mnt/inner");
            let outer = mount_options(&info, "/mnt");
            for e in expected {
                assert!(inner.contains(*e), "{rt:?} {opts:?}: /mnt/inner {inner:?}");
                assert!(outer.contains(*e), "{rt:?} {opts:?}: /mnt {outer:?}");
            }
            seen.push((outer, inner));
        }
        assert_eq!(seen[0], seen[1], "{opts:?}: runc (left) and berth (right)");
        // nosymfollow is not shown in mountinfo's per-mount options on
        // every kernel; it is checked by following a symlink below.
    }
}

/// `rnosymfollow` stops symlinks on the nested mount from being followed.
#[test]
fn rnosymfollow_applies_to_nested_mounts() {
    let nested = Nested::new();
    std::os::unix::fs::symlink("/etc/passwd", nested.dir.path().join("inner/link")).unwrap();
    let mut bundle = Bundle::generate("runc", None);
    bundle.spec["process"]["terminal"] = false.into();
    bundle.spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt",
        "type": "bind",
        "source": nested.dir.path(),
        "options": ["rbind", "rnosymfollow"],
    }));
    let dir = bundle
        .with_args(&[
            "sh",
            "-c",
            "cat /mnt/inner/link >/dev/null && echo followed || echo refused",
        ])
        .to_path_buf();
    let mut seen = Vec::new();
    for rt in [Rt::Runc, Rt::Berth] {
        let mut r = Runtime::new(rt, None);
        let o = r.run(&dir, false);
        assert!(o.status.success(), "{rt:?}: {}", text(&o));
        seen.push(String::from_utf8_lossy(&o.stdout).trim().to_string());
    }
    assert_eq!(seen, ["refused", "refused"]);
}

/// Options a filesystem takes as data still reach it; an option the
/// filesystem does not know is refused by it, naming the mount.
#[test]
fn filesystem_data_options_pass_and_unknown_ones_fail() {
    let mut bundle = Bundle::generate("runc", None);
    bundle.spec["process"]["terminal"] = false.into();
    bundle.spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "mode=0755", "size=65536k"],
    }));
    let dir = bundle
        .with_args(&["sh", "-c", "grep ' /mnt ' /proc/self/mountinfo"])
        .to_path_buf();
    let mut r = Runtime::new(Rt::Berth, None);
    let o = r.run(&dir, false);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("mode=755") && out.contains("size=65536k"),
        "{out}"
    );

    let n = bundle.spec["mounts"].as_array().unwrap().len();
    bundle.spec["mounts"][n - 1]["options"] = json!(["nosuid", "nosuchoption"]);
    bundle.write();
    for rt in [Rt::Runc, Rt::Berth] {
        let mut r = Runtime::new(rt, None);
        let o = r.run(&dir, false);
        assert!(!o.status.success(), "{rt:?} ran: {}", text(&o));
    }
}

/// A `proc` mount whose destination is a symlink in the rootfs is refused,
/// as runc refuses it ("must be mounted on ordinary directory").
#[test]
fn proc_on_a_symlink_is_refused_like_runc() {
    for (dest, fstype) in [("/proc", "proc"), ("/sys", "sysfs")] {
        let rootfs = tempfile::tempdir().unwrap();
        berth_fixtures::rootfs::build(rootfs.path()).unwrap();
        let name = dest.trim_start_matches('/');
        let _ = std::fs::remove_dir(rootfs.path().join(name));
        std::fs::create_dir_all(rootfs.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink("/elsewhere", rootfs.path().join(name)).unwrap();
        let mut bundle = Bundle::generate("runc", None);
        bundle.spec["process"]["terminal"] = false.into();
        bundle.spec["process"]["args"] = json!(["true"]);
        bundle.spec["root"] = json!({"path": rootfs.path(), "readonly": true});
        // The default spec binds /sys for rootless only: mount sysfs.
        for m in bundle.spec["mounts"].as_array_mut().unwrap() {
            if m["destination"] == dest {
                m["type"] = fstype.into();
                m["source"] = fstype.into();
                m["options"] = json!(["nosuid", "noexec", "nodev"]);
            }
        }
        let dir = bundle.write().to_path_buf();
        for rt in [Rt::Runc, Rt::Berth] {
            let mut r = Runtime::new(rt, None);
            let o = r.run(&dir, false);
            assert!(!o.status.success(), "{rt:?} mounted {fstype} on a symlink");
            if rt == Rt::Berth {
                let t = text(&o);
                assert!(t.contains("ordinary directory") && t.contains(dest), "{t}");
            }
        }
        // Nothing was mounted in the rootfs's "elsewhere".
        assert_eq!(
            std::fs::read_dir(rootfs.path().join("elsewhere"))
                .unwrap()
                .count(),
            0
        );
    }
}

/// A profile whose default action is an errno and whose allow-list lacks
/// `close_range`, `fchdir` and `openat2` (as profiles older than those
/// calls do) runs under runc and under berth alike, with and without
/// noNewPrivileges. Without `getcwd` as well, runc 1.1.5 fails to verify
/// its cwd ("operation not permitted") when the filter is loaded first;
/// berth checks the cwd before it loads the filter, and runs it.
#[test]
fn seccomp_allow_list_without_newer_calls_runs_like_runc() {
    for with_getcwd in [true, false] {
        let mut allowed: Vec<&str> = berth_fixtures::seccomp::BASE_ALLOW_LIST.to_vec();
        if with_getcwd {
            allowed.push("getcwd");
        }
        for nnp in [false, true] {
            let mut bundle = Bundle::generate("runc", None);
            bundle.spec["process"]["terminal"] = false.into();
            bundle.spec["process"]["noNewPrivileges"] = nnp.into();
            bundle.spec["process"]["cwd"] = "/tmp".into();
            bundle.spec["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}],
            });
            let dir = bundle
                .with_args(&["sh", "-c", "echo ok; grep Seccomp: /proc/self/status"])
                .to_path_buf();
            let case = format!("getcwd allowed: {with_getcwd}, nnp: {nnp}");
            let mut seen = Vec::new();
            for rt in [Rt::Runc, Rt::Berth] {
                let mut r = Runtime::new(rt, None);
                let o = r.run(&dir, false);
                if rt == Rt::Runc && !o.status.success() {
                    assert!(!with_getcwd && !nnp, "runc, {case}: {}", text(&o));
                    continue;
                }
                assert!(o.status.success(), "{rt:?}, {case}: {}", text(&o));
                seen.push(String::from_utf8_lossy(&o.stdout).to_string());
            }
            assert!(seen.windows(2).all(|w| w[0] == w[1]), "{case}: {seen:?}");
            assert!(seen[0].contains("Seccomp:\t2"), "{case}: {seen:?}");
        }
    }
}

/// `--preserve-fds N` hands the container the caller's descriptors 3..3+N
/// (here 3 and 4, the rest of the range being gaps) and none of berth's
/// own: no socket, eventpoll, eventfd, FIFO or directory.
#[test]
fn preserve_fds_passes_only_the_callers_descriptors() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut bundle = Bundle::generate("runc", None);
    bundle.spec["process"]["terminal"] = false.into();
    let dir = bundle
        .with_args(&[
            "sh",
            "-c",
            "for f in /proc/self/fd/*; do echo \"${f##*/} $(readlink $f)\"; done",
        ])
        .to_path_buf();
    let root = PathBuf::from(format!("/run/{}", unique("berth-compat-fds")));
    let id = unique("fds");
    let script = format!(
        "exec 3<{f} 4<{f}; exec {BERTH} --root {root} run --preserve-fds 12 --bundle {b} {id}",
        f = file.path().display(),
        root = root.display(),
        b = dir.display(),
    );
    let o = output(Command::new("sh").args(["-c", &script]));
    let _ = output(
        Command::new(BERTH)
            .arg("--root")
            .arg(&root)
            .args(["delete", "--force", &id]),
    );
    let _ = std::fs::remove_dir_all(&root);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let file = file.path().to_str().unwrap().to_string();
    for line in out.lines() {
        let (fd, target) = line.split_once(' ').unwrap_or((line, ""));
        let fd: u32 = fd.parse().unwrap();
        match fd {
            0..=2 => {}
            3 | 4 => assert_eq!(target, file, "{out}"),
            // The shell's own descriptor of the /proc/self/fd listing
            // (closed again by the time readlink looks).
            _ if target.is_empty() || target.starts_with("/proc/") => {}
            // The gaps the caller left: filled by the CLI, never berth's.
            5..=14 => assert_eq!(target, "/dev/null", "fd {fd}: {out}"),
            _ => panic!("descriptor {fd} ({target}) beyond the range: {out}"),
        }
    }
}

/// Mount points in this process's mountinfo at or under `dir`.
fn host_mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.to_str().unwrap();
    info.lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| *m == d || m.starts_with(&format!("{d}/")))
        .map(String::from)
        .collect()
}

/// Without a mount namespace (an unlisted namespace is inherited, OCI
/// says) runc and berth both run the container in its rootfs; runc leaves
/// its mounts on the host after delete, berth removes them. (runc refuses
/// masked and read-only paths there: "unable to restrict sys entries
/// without a private MNT namespace"; the spec leaves them out for it.)
#[test]
fn no_mount_namespace_runs_like_runc_and_leaves_no_mount_behind() {
    let rootfs = tempfile::tempdir().unwrap();
    berth_fixtures::rootfs::build(rootfs.path()).unwrap();
    let mut bundle = Bundle::generate("runc", None);
    bundle.spec["process"]["terminal"] = false.into();
    bundle.spec["process"]["args"] = json!(["sh", "-c", "ls /; readlink /proc/1/root"]);
    bundle.spec["root"]["path"] = rootfs.path().to_str().unwrap().into();
    let linux = bundle.spec["linux"].as_object_mut().unwrap();
    linux.remove("maskedPaths");
    linux.remove("readonlyPaths");
    let ns: Vec<Value> = linux["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "mount")
        .cloned()
        .collect();
    linux.insert("namespaces".into(), ns.into());
    let dir = bundle.write().to_path_buf();
    let mut seen = Vec::new();
    for rt in [Rt::Runc, Rt::Berth] {
        let mut r = Runtime::new(rt, None);
        let o = r.run(&dir, false);
        drop(r);
        let left = host_mounts_under(rootfs.path());
        // What runc left behind, removed before anything can fail.
        if !left.is_empty() {
            let _ = output(Command::new("umount").arg("-R").arg(rootfs.path()));
        }
        assert!(o.status.success(), "{rt:?}: {}", text(&o));
        match rt {
            Rt::Runc => assert!(!left.is_empty(), "runc cleaned up after all"),
            Rt::Berth => assert!(left.is_empty(), "berth left {left:?}"),
        }
        seen.push(String::from_utf8_lossy(&o.stdout).to_string());
    }
    assert_eq!(seen[0], seen[1], "runc (left) and berth (right)");
    assert!(seen[1].lines().any(|l| l == "bin"), "{}", seen[1]);
}
