//! What every fuzz target of berth checks, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and the stable seed test
//! (`conformance/tests/fuzz_seeds.rs`), which both include this file with
//! `#[path]`.
//!
//! Dependencies: `berth` (and its `oci_spec` re-export), `serde_json`.

use std::path::{Component, Path};

use berth::host::Host;
use berth::oci_spec::runtime::Spec;
use berth::plan::{InRoot, Options, Plan, Step};

/// The rootfs every fuzzed spec is compiled against: it must exist, and
/// only its symlinks are read (the plan compiler never writes).
pub const ROOTFS: &str = "/";

/// Checks what must hold of any result of the plan compiler: on `Ok`, the
/// steps end with `Exec` and every path a step mounts or creates inside the
/// rootfs is absolute without `..`; on `Err`, the message is not empty.
pub fn check_result(result: berth::Result<Plan>) {
    match result {
        Ok(plan) => check_plan(&plan),
        Err(e) => assert!(!e.to_string().is_empty(), "empty error message: {e:?}"),
    }
}

/// The invariants of a compiled plan.
pub fn check_plan(plan: &Plan) {
    assert!(
        matches!(plan.steps.last(), Some(Step::Exec)),
        "plan does not end with Exec: {:?}",
        plan.steps.last()
    );
    for step in &plan.steps {
        match step {
            Step::Mount(m) => check_in_root(&m.target),
            Step::Remount { target, .. } => check_in_root(target),
            Step::MountSetattr { target, .. } => check_in_root(target),
            Step::Device(d) => check_in_root(&d.target),
            Step::Symlink { link, .. } => check_in_root(link),
            _ => {}
        }
    }
}

fn check_in_root(p: &InRoot) {
    assert!(p.path.is_absolute(), "target not absolute: {:?}", p.path);
    assert!(
        !p.path.components().any(|c| c == Component::ParentDir),
        "target has `..`: {:?}",
        p.path
    );
}

/// Points the spec's root at [`ROOTFS`] and compiles it for this host.
pub fn compile_spec(mut spec: Spec) {
    if let Some(root) = spec.root_mut() {
        root.set_path(ROOTFS.into());
    }
    check_result(berth::plan::compile(
        &spec,
        Path::new(ROOTFS),
        Host::get(),
        &Options::default(),
    ));
}

/// Compiles a spec given as JSON, if it parses.
pub fn compile_json(value: serde_json::Value) {
    if let Ok(spec) = serde_json::from_value::<Spec>(value) {
        compile_spec(spec);
    }
}

/// runc's default spec (`berth spec`), as JSON, to mutate.
pub fn default_spec_json() -> serde_json::Value {
    serde_json::to_value(Spec::default()).expect("the default spec serializes")
}

/// Takes fuzzer bytes as a stream of choices (an `arbitrary::Unstructured`
/// in miniature, so that the stable seed test needs no extra crate): once
/// the input is used up, every choice is 0.
#[derive(Debug)]
pub struct Choices<'a> {
    data: &'a [u8],
}

impl<'a> Choices<'a> {
    /// Choices from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Choices { data }
    }

    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// One byte.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// A bool.
    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A number in `0..n` (`n` > 0), small numbers for short inputs.
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    /// A `u32`, with a bias to edge values.
    pub fn u32(&mut self) -> u32 {
        match self.below(8) {
            0 => 0,
            1 => u32::MAX,
            2 => 65534,
            3 => u32::from(self.byte()),
            _ => u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()]),
        }
    }

    /// A `u64`, with a bias to edge values.
    pub fn u64(&mut self) -> u64 {
        match self.below(8) {
            0 => 0,
            1 => u64::MAX,
            2 => u64::from(u32::MAX),
            3 => u64::from(self.byte()),
            _ => u64::from(self.u32()) << 32 | u64::from(self.u32()),
        }
    }

    /// An `i64` (sign and magnitude).
    pub fn i64(&mut self) -> i64 {
        let v = self.u64() as i64;
        if self.flag() {
            v.wrapping_neg()
        } else {
            v
        }
    }

    /// A string of up to 63 bytes taken verbatim (lossily as UTF-8).
    pub fn raw(&mut self) -> String {
        let n = (self.below(64)).min(self.data.len());
        let (s, rest) = self.data.split_at(n);
        self.data = rest;
        String::from_utf8_lossy(s).into_owned()
    }

    /// One of `words`, or (one time in four) a raw string.
    pub fn word(&mut self, words: &[&str]) -> String {
        if self.below(4) == 0 {
            self.raw()
        } else {
            words[self.below(words.len())].to_string()
        }
    }

    /// A path-like string: components from `words`, `.`, `..`, `//`, raw
    /// bytes.
    pub fn path(&mut self, words: &[&str]) -> String {
        let mut s = String::new();
        if self.below(8) != 0 {
            s.push('/');
        }
        for _ in 0..self.below(5) {
            match self.below(8) {
                0 => s.push_str(".."),
                1 => s.push('.'),
                2 => s.push_str(&self.raw()),
                3 => {}
                _ => s.push_str(&self.word(words)),
            }
            s.push('/');
        }
        if self.flag() {
            s.pop();
        }
        s
    }
}

/// Path components the generated paths are made of.
pub const WORDS: &[&str] = &[
    "proc", "sys", "dev", "tmp", "etc", "run", "var", "bin", "usr", "lib", "shm", "pts", "mqueue",
    "null", "zero", "self", "fd", "cgroup", "fs", "kernel", "x", "lib64", "sbin", "root",
];

/// Mount types.
pub const FSTYPES: &[&str] = &[
    "bind", "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "none", "overlay",
    "rbind", "ext4", "",
];

/// Mount options: every one berth knows, and some it does not.
pub const MOUNT_OPTIONS: &[&str] = &[
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "bind",
    "rbind",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
    "nosymfollow",
    "symfollow",
    "recursive",
    "rro",
    "rrw",
    "rnosuid",
    "rnoexec",
    "rnodev",
    "rnoatime",
    "rstrictatime",
    "rnodiratime",
    "rrelatime",
    "rnosymfollow",
    "ratime",
    "rsuid",
    "idmap",
    "ridmap",
    "tmpcopyup",
    "mode=755",
    "mode=1777",
    "size=65536k",
    "newinstance",
    "ptmxmode=0666",
    "gid=5",
    "uid=0",
    "mode=620",
    "lowerdir=/a",
    "x-foo",
    "=",
    ",",
    "",
];
