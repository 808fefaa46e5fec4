//! `berth-probe`: runs as a container's process and prints, as one JSON
//! object on stdout, what the kernel shows it (see
//! `berth_conformance::report::Report`).
//!
//! It reads `/proc` rather than calling libc, needs no argument, never
//! panics on a missing or unreadable file (the error goes into the report)
//! and always exits 0 once the report is written.
//!
//! Environment: `BERTH_PROBE_SYSCTLS` (comma-separated sysctl keys to read)
//! and `BERTH_PROBE_PATHS` (comma-separated paths to inspect).

#[allow(dead_code)]
#[path = "../report.rs"]
mod report;

use report::{
    parse_limits, parse_mountinfo, parse_status, Failure, PathReport, Probed, Report, Stat,
    PATHS_ENV, SYSCTLS_ENV, WRITE_TEST_NAME,
};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

fn main() {
    let report = probe();
    let mut json = match serde_json::to_string(&report) {
        Ok(j) => j,
        Err(e) => format!("{{\"probe_error\":{:?}}}", e.to_string()),
    };
    json.push('\n');
    let mut out = std::io::stdout().lock();
    // Nothing sensible to do if stdout is gone.
    let _ = out.write_all(json.as_bytes());
    let _ = out.flush();
}

fn probe() -> Report {
    let environ = nul_list("/proc/self/environ");
    let mut env = BTreeMap::new();
    if let Ok(list) = &environ {
        for entry in list {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            env.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
    }
    let list = |name: &str| -> Vec<String> {
        env.get(name)
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let sysctls = list(SYSCTLS_ENV)
        .into_iter()
        .map(|key| {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            let value = read(&path).map(|v| v.trim().to_string());
            (key, value)
        })
        .collect();
    let paths = list(PATHS_ENV)
        .into_iter()
        .map(|p| {
            let r = path_report(Path::new(&p));
            (p, r)
        })
        .collect();
    Report {
        pid: std::process::id(),
        hostname: read("/proc/sys/kernel/hostname").map(|s| s.trim_end().to_string()),
        domainname: read("/proc/sys/kernel/domainname").map(|s| s.trim_end().to_string()),
        status: read("/proc/self/status").and_then(|s| parse_status(&s)),
        rlimits: read("/proc/self/limits").and_then(|s| parse_limits(&s)),
        cwd: std::env::current_dir()
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|e| Failure::io("getcwd", &e)),
        environ,
        env,
        args: nul_list("/proc/self/cmdline"),
        mounts: read("/proc/self/mountinfo").and_then(|s| parse_mountinfo(&s)),
        namespaces: namespaces(),
        oom_score_adj: read("/proc/self/oom_score_adj").and_then(|s| {
            s.trim()
                .parse()
                .map_err(|e| Failure::msg(format!("oom_score_adj {s:?}: {e}")))
        }),
        sysctls,
        paths,
    }
}

fn read(path: &str) -> Probed<String> {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| Failure::io(&format!("read {path}"), &e))
}

/// A file of NUL-terminated strings (`cmdline`, `environ`).
fn nul_list(path: &str) -> Probed<Vec<String>> {
    let bytes = fs::read(path).map_err(|e| Failure::io(&format!("read {path}"), &e))?;
    let body = bytes.strip_suffix(b"\0").unwrap_or(&bytes);
    if body.is_empty() && bytes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(body
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

fn namespaces() -> BTreeMap<String, Probed<u64>> {
    let mut out = BTreeMap::new();
    match fs::read_dir("/proc/self/ns") {
        Ok(dir) => {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let ino = fs::metadata(entry.path())
                    .map(|m| m.ino())
                    .map_err(|e| Failure::io(&format!("stat /proc/self/ns/{name}"), &e));
                out.insert(name, ino);
            }
        }
        Err(e) => {
            out.insert(
                "error".to_string(),
                Err(Failure::io("read_dir /proc/self/ns", &e)),
            );
        }
    }
    out
}

fn stat_of(m: &fs::Metadata) -> Stat {
    let t = m.file_type();
    let kind = if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "dir"
    } else if t.is_file() {
        "file"
    } else if t.is_char_device() {
        "char"
    } else if t.is_block_device() {
        "block"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else {
        "unknown"
    };
    let rdev = m.rdev();
    let (major, minor) = if t.is_char_device() || t.is_block_device() {
        // The glibc encoding of dev_t.
        (
            ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff),
            ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff),
        )
    } else {
        (0, 0)
    };
    Stat {
        kind: kind.to_string(),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        major,
        minor,
        size: m.size(),
    }
}

/// Minors of major 1 that are safe to open: null, zero, full, random,
/// urandom.
const SAFE_MEM_MINORS: [u64; 5] = [3, 5, 7, 8, 9];

fn path_report(path: &Path) -> PathReport {
    let what = |op: &str| format!("{op} {}", path.display());
    let lstat = fs::symlink_metadata(path)
        .map(|m| stat_of(&m))
        .map_err(|e| Failure::io(&what("lstat"), &e));
    let meta = fs::metadata(path);
    let stat = meta
        .as_ref()
        .map(stat_of)
        .map_err(|e| Failure::io(&what("stat"), e));
    let link = fs::read_link(path)
        .ok()
        .map(|l| l.to_string_lossy().into_owned());
    let is_dir = meta.as_ref().is_ok_and(|m| m.is_dir());
    // Opening a device can have effects (a watchdog starts counting): only
    // the harmless memory devices are opened.
    let untouchable = match &stat {
        Ok(s) if s.kind == "block" => true,
        Ok(s) if s.kind == "char" => !(s.major == 1 && SAFE_MEM_MINORS.contains(&s.minor)),
        _ => false,
    };
    if untouchable {
        let skipped =
            || Failure::msg("not opened: a device other than null, zero, full, random or urandom");
        return PathReport {
            lstat,
            stat,
            link,
            read: Err(skipped()),
            write: Err(skipped()),
        };
    }
    let read = if is_dir {
        fs::read_dir(path)
            .map(|d| d.count() as u64)
            .map_err(|e| Failure::io(&what("read_dir"), &e))
    } else {
        // Non-blocking, so that a FIFO or a terminal cannot hang the probe.
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .and_then(|f| {
                let mut buf = Vec::new();
                f.take(4096).read_to_end(&mut buf).map(|n| n as u64)
            })
            .map_err(|e| Failure::io(&what("read"), &e))
    };
    let write = if is_dir {
        let sub = path.join(WRITE_TEST_NAME);
        fs::create_dir(&sub)
            .map(|()| {
                let _ = fs::remove_dir(&sub);
            })
            .map_err(|e| Failure::io(&what("mkdir in"), &e))
    } else {
        fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map(drop)
            .map_err(|e| Failure::io(&what("open for writing"), &e))
    };
    PathReport {
        lstat,
        stat,
        link,
        read,
        write,
    }
}
