//! `config_structured`: the input bytes are choices that build a spec
//! (namespaces, mounts with random destinations, types and options,
//! rlimits, capability names, sysctls, id maps, devices, masked and
//! read-only paths, user, cwd) over runc's default spec. Most choices are
//! valid values, with odd ones mixed in, so that the fuzzer spends its time
//! in the compiler rather than in the JSON parser. Whatever `oci_spec`
//! accepts is compiled: never a panic, and the invariants of
//! `common::check_result`.

use serde_json::{json, Map, Value};

use super::common::{compile_json, default_spec_json, Choices, FSTYPES, MOUNT_OPTIONS, WORDS};

/// OCI namespace types (and one unknown).
const NAMESPACES: &[&str] = &[
    "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time", "net",
];

/// OCI rlimit types.
const RLIMITS: &[&str] = &[
    "RLIMIT_AS",
    "RLIMIT_CORE",
    "RLIMIT_CPU",
    "RLIMIT_DATA",
    "RLIMIT_FSIZE",
    "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_NOFILE",
    "RLIMIT_NPROC",
    "RLIMIT_RSS",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
    "RLIMIT_SIGPENDING",
    "RLIMIT_STACK",
];

/// Capability names (and odd ones).
const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SYS_CHROOT",
    "CAP_MKNOD",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
    "CAP_SYS_ADMIN",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_PERFMON",
    "CAP_AUDIT_READ",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_MAC_ADMIN",
    "CAP_SYS_RESOURCE",
];

/// Sysctl keys (namespaced, not namespaced, odd).
const SYSCTLS: &[&str] = &[
    "net.ipv4.ip_forward",
    "kernel.shmmni",
    "kernel.msgmax",
    "fs.mqueue.queues_max",
    "kernel.hostname",
    "kernel.domainname",
    "vm.swappiness",
    "net.core.somaxconn",
    "kernel.sem",
    "net.ipv4.ping_group_range",
    "kernel/shmmax",
    "../x",
    "net..x",
];

/// Device types.
const DEVICE_TYPES: &[&str] = &["c", "b", "u", "p", "a", "x"];

/// Checks one input.
pub fn check(data: &[u8]) {
    let mut c = Choices::new(data);
    compile_json(build(&mut c));
}

fn list(c: &mut Choices, max: usize, mut item: impl FnMut(&mut Choices) -> Value) -> Value {
    let n = c.below(max + 1);
    Value::Array((0..n).map(|_| item(c)).collect())
}

fn mapping(c: &mut Choices) -> Value {
    json!({
        "containerID": c.u32(),
        "hostID": c.u32(),
        "size": c.u32(),
    })
}

/// A mount with a random destination, type, source and options.
pub fn mount(c: &mut Choices) -> Value {
    let mut m = Map::new();
    m.insert("destination".into(), c.path(WORDS).into());
    if c.below(4) != 0 {
        m.insert("type".into(), c.word(FSTYPES).into());
    }
    if c.below(4) != 0 {
        m.insert("source".into(), c.path(WORDS).into());
    }
    if c.below(4) != 0 {
        m.insert(
            "options".into(),
            list(c, 6, |c| c.word(MOUNT_OPTIONS).into()),
        );
    }
    if c.below(8) == 0 {
        m.insert("uidMappings".into(), list(c, 2, mapping));
        m.insert("gidMappings".into(), list(c, 2, mapping));
    }
    Value::Object(m)
}

fn build(c: &mut Choices) -> Value {
    let mut spec = default_spec_json();
    let s = spec.as_object_mut().expect("a spec is an object");

    // The process.
    let mut process = s.get("process").cloned().unwrap_or_else(|| json!({}));
    let p = process.as_object_mut().expect("process is an object");
    if c.flag() {
        p.insert("terminal".into(), c.flag().into());
    }
    if c.flag() {
        p.insert(
            "user".into(),
            json!({
                "uid": c.u32(),
                "gid": c.u32(),
                "umask": if c.flag() { Value::from(c.u32()) } else { Value::Null },
                "additionalGids": list(c, 4, |c| c.u32().into()),
            }),
        );
    }
    if c.flag() {
        p.insert("args".into(), list(c, 3, |c| c.path(WORDS).into()));
    }
    if c.flag() {
        p.insert(
            "env".into(),
            list(c, 4, |c| {
                let k = c.word(&["PATH", "HOME", "TERM", "X", ""]);
                let v = c.path(WORDS);
                if c.below(4) == 0 {
                    k
                } else {
                    format!("{k}={v}")
                }
                .into()
            }),
        );
    }
    if c.flag() {
        p.insert("cwd".into(), c.path(WORDS).into());
    }
    if c.flag() {
        let mut caps = Map::new();
        for set in [
            "bounding",
            "effective",
            "permitted",
            "inheritable",
            "ambient",
        ] {
            if c.flag() {
                caps.insert(set.into(), list(c, 5, |c| c.word(CAPS).into()));
            }
        }
        p.insert("capabilities".into(), Value::Object(caps));
    }
    if c.flag() {
        p.insert(
            "rlimits".into(),
            list(
                c,
                4,
                |c| json!({"type": c.word(RLIMITS), "soft": c.u64(), "hard": c.u64()}),
            ),
        );
    }
    if c.flag() {
        p.insert("noNewPrivileges".into(), c.flag().into());
    }
    if c.below(4) == 0 {
        p.insert("oomScoreAdj".into(), (c.i64() % 2000).into());
    }
    s.insert("process".into(), process);

    if c.flag() {
        s.insert("hostname".into(), c.raw().into());
    }
    if c.below(4) == 0 {
        s.insert("domainname".into(), c.raw().into());
    }
    if c.flag() {
        s.insert("root".into(), json!({"path": "/", "readonly": c.flag()}));
    }

    // Mounts: keep, drop some of, or extend the default ones.
    let mut mounts = match s.get("mounts") {
        Some(Value::Array(m)) if c.flag() => m.clone(),
        _ => Vec::new(),
    };
    for _ in 0..c.below(5) {
        if !mounts.is_empty() && c.below(3) == 0 {
            let i = c.below(mounts.len());
            mounts.remove(i);
        } else {
            mounts.push(mount(c));
        }
    }
    s.insert("mounts".into(), Value::Array(mounts));

    // Linux.
    let mut linux = s.get("linux").cloned().unwrap_or_else(|| json!({}));
    let l = linux.as_object_mut().expect("linux is an object");
    if c.flag() {
        l.insert(
            "namespaces".into(),
            list(c, 8, |c| {
                let mut ns = Map::new();
                ns.insert("type".into(), c.word(NAMESPACES).into());
                if c.below(6) == 0 {
                    let path = c.word(&["/proc/self/ns/net", "/proc/1/ns/uts", "/nonexistent"]);
                    ns.insert("path".into(), path.into());
                }
                Value::Object(ns)
            }),
        );
    }
    if c.flag() {
        l.insert("uidMappings".into(), list(c, 3, mapping));
        l.insert("gidMappings".into(), list(c, 3, mapping));
    }
    if c.flag() {
        let mut sysctl = Map::new();
        for _ in 0..c.below(4) {
            let k = c.word(SYSCTLS);
            let v = c.raw();
            sysctl.insert(k, v.into());
        }
        l.insert("sysctl".into(), Value::Object(sysctl));
    }
    if c.flag() {
        l.insert(
            "devices".into(),
            list(c, 3, |c| {
                json!({
                    "type": c.word(DEVICE_TYPES),
                    "path": c.path(WORDS),
                    "major": c.i64(),
                    "minor": c.i64(),
                    "fileMode": c.u32(),
                    "uid": c.u32(),
                    "gid": c.u32(),
                })
            }),
        );
    }
    if c.flag() {
        l.insert("maskedPaths".into(), list(c, 3, |c| c.path(WORDS).into()));
    }
    if c.flag() {
        l.insert("readonlyPaths".into(), list(c, 3, |c| c.path(WORDS).into()));
    }
    if c.flag() {
        let prop = c.word(&[
            "private",
            "rprivate",
            "slave",
            "rslave",
            "shared",
            "rshared",
            "unbindable",
            "runbindable",
        ]);
        l.insert("rootfsPropagation".into(), prop.into());
    }
    s.insert("linux".into(), linux);
    spec
}
