//! The probe on the host (no container): it prints one report that parses,
//! agrees with what this process sees, and survives paths and sysctls
//! that do not exist.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use berth_conformance::oracle::Host;
use berth_conformance::report::{Report, PATHS_ENV, SYSCTLS_ENV};

fn probe(args: &[&str], env: &[(&str, &str)]) -> Report {
    let out = Command::new(env!("CARGO_BIN_EXE_berth-probe"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir("/")
        .output()
        .expect("running the probe");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(stdout.lines().count(), 1, "one JSON object on one line");
    Report::parse(&stdout).expect("a report")
}

#[test]
fn the_probe_reports_what_this_process_sees() {
    let r = probe(
        &["one", "", "three words"],
        &[
            ("A", "1"),
            ("B", "x=y"),
            (PATHS_ENV, "/,/dev/null,/nonexistent/x,/proc/self/status"),
            (SYSCTLS_ENV, "net.ipv4.ip_forward,kernel.no_such_sysctl"),
        ],
    );
    let host = Host::current().unwrap();
    assert_eq!(r.args.as_ref().unwrap()[1..], ["one", "", "three words"]);
    assert_eq!(r.env["A"], "1");
    assert_eq!(r.env["B"], "x=y");
    assert_eq!(r.environ.as_ref().unwrap().len(), 4);
    assert_eq!(r.cwd.as_deref().unwrap(), "/");
    assert_eq!(r.hostname.as_ref().unwrap(), &host.hostname);
    let ns: BTreeMap<String, u64> = r
        .namespaces
        .iter()
        .map(|(k, v)| (k.clone(), *v.as_ref().unwrap()))
        .collect();
    assert_eq!(ns, host.namespaces);
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.cap_bnd, host.status.cap_bnd);
    assert_eq!(status.umask, host.status.umask);
    assert_eq!(r.rlimits.as_ref().unwrap(), &host.rlimits);
    assert_eq!(r.rlimits.as_ref().unwrap().len(), 16);
    assert_eq!(*r.oom_score_adj.as_ref().unwrap(), host.oom_score_adj);
    let mounts = r.mounts.as_ref().unwrap();
    assert!(mounts
        .iter()
        .any(|m| m.mount_point == "/proc" && m.fstype == "proc"));

    let null = &r.paths["/dev/null"];
    let st = null.stat.as_ref().unwrap();
    assert_eq!((st.kind.as_str(), st.major, st.minor), ("char", 1, 3));
    assert_eq!(*null.read.as_ref().unwrap(), 0);
    let missing = &r.paths["/nonexistent/x"];
    assert_eq!(
        missing.lstat.as_ref().unwrap_err().errno,
        Some(libc::ENOENT)
    );
    assert!(*r.paths["/proc/self/status"].read.as_ref().unwrap() > 0);
    assert_eq!(
        r.paths["/"].stat.as_ref().unwrap().uid,
        std::fs::metadata("/").unwrap().uid()
    );
    let ip_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    assert_eq!(
        r.sysctls["net.ipv4.ip_forward"].as_deref().unwrap(),
        ip_forward.trim()
    );
    assert_eq!(
        r.sysctls["kernel.no_such_sysctl"]
            .as_ref()
            .unwrap_err()
            .errno,
        Some(libc::ENOENT)
    );
}

#[test]
fn the_probe_never_opens_devices_other_than_the_memory_ones() {
    // /dev/tty (5:0) may block or fail; a watchdog would start ticking.
    let r = probe(&[], &[(PATHS_ENV, "/dev/tty,/dev/zero")]);
    assert!(r.paths["/dev/tty"].read.is_err());
    assert!(r.paths["/dev/tty"].write.is_err());
    assert!(r.paths["/dev/tty"]
        .read
        .as_ref()
        .unwrap_err()
        .message
        .contains("not opened"));
    assert_eq!(*r.paths["/dev/zero"].read.as_ref().unwrap(), 4096);
}
