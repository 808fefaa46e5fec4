//! Shared helpers of the integration tests: a runtime with its own state
//! root, unique ids, specs on the shared busybox rootfs, and a one-call
//! "run and capture".
#![allow(dead_code)]

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use berth::oci_spec::runtime::Spec;
use berth::{Bundle, Config, Container, CreateOptions, ExecOptions, ExitStatus, Runtime, Stdio};
use tokio::io::AsyncReadExt;

/// A state root and cgroup parent of its own.
pub fn config() -> Config {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "berth-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    {
        let mut config = Config::default();
        config.root = PathBuf::from("/run").join(&name);
        config.cgroup_parent = name;
        config
    }
}

/// A runtime of the test's own. When the test ends without a panic, it
/// checks that every container was deleted (no state, no cgroup left) and
/// removes the state root.
pub struct TestRuntime(Runtime);

impl std::ops::Deref for TestRuntime {
    type Target = Runtime;
    fn deref(&self) -> &Runtime {
        &self.0
    }
}

impl Drop for TestRuntime {
    fn drop(&mut self) {
        let c = self.0.config();
        let mut left: Vec<_> = std::fs::read_dir(&c.root)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        // The network lock and state directory (see berth-net): it
        // may stay, but without a network in use.
        let nets: Vec<_> = std::fs::read_dir(c.root.join("network/nets"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        left.retain(|n| n != "network");
        if std::thread::panicking() {
            // Keep what `berth delete --force` needs to clean up, but stop
            // what runs: a failed test must not leave a busy loop behind.
            let _ = berth_fixtures::leaks::kill_processes_in(&c.cgroup_parent);
            return;
        }
        let _ = std::fs::remove_dir_all(c.root.join("network"));
        let _ = std::fs::remove_dir(&c.root);
        assert!(left.is_empty(), "containers left behind: {left:?}");
        assert!(nets.is_empty(), "networks left in use: {nets:?}");
        let cgroups = berth_fixtures::leaks::Snapshot::take(&c.root, &c.cgroup_parent)
            .unwrap()
            .cgroups;
        assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
    }
}

pub async fn runtime() -> TestRuntime {
    runtime_with(config()).await
}

/// A runtime with a [`config`] the test adjusted.
pub async fn runtime_with(config: Config) -> TestRuntime {
    berth_fixtures::require_root();
    TestRuntime(Runtime::new(config).await.expect("runtime"))
}

/// A fresh id, unique in this process and across parallel test binaries.
pub fn id(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn rootfs() -> PathBuf {
    berth_fixtures::rootfs::shared().expect("shared rootfs")
}

/// A runc-like default spec on the shared (read-only) rootfs running
/// `sh -c script`.
pub fn spec(script: &str) -> Spec {
    let mut spec = berth_fixtures::bundle::spec(&["sh".into(), "-c".into(), script.into()]);
    let mut root = spec.root().clone().unwrap();
    root.set_path(rootfs());
    spec.set_root(Some(root));
    spec
}

pub fn bundle(spec: Spec) -> Bundle {
    Bundle::new(std::env::temp_dir(), spec).unwrap()
}

/// What a finished container printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Creates, starts, waits for and deletes a container, capturing its
/// output.
pub async fn run(rt: &Runtime, name: &str, spec: Spec) -> berth::Result<Output> {
    let ctr = create_piped(rt, name, spec).await?;
    ctr.start().await?;
    finish(ctr).await
}

pub async fn create_piped(rt: &Runtime, name: &str, spec: Spec) -> berth::Result<Container> {
    create_piped_with_fds(rt, name, spec, Vec::new()).await
}

/// [`create_piped`], passing `fds` to the container (at 3, 4, …).
pub async fn create_piped_with_fds(
    rt: &Runtime,
    name: &str,
    spec: Spec,
    fds: Vec<OwnedFd>,
) -> berth::Result<Container> {
    let mut opts = CreateOptions::default();
    opts.stdin = Stdio::Null;
    opts.stdout = Stdio::Piped;
    opts.stderr = Stdio::Piped;
    opts.pass_fds = fds;
    rt.create_with(&id(name), bundle(spec), opts).await
}

/// A started container running `sleep 100`, for `exec` into it.
pub async fn sleeping(rt: &Runtime, name: &str) -> Container {
    let ctr = rt
        .create(&id(name), bundle(spec("sleep 100")))
        .await
        .unwrap();
    ctr.start().await.unwrap();
    ctr
}

/// Runs [`fds_report`] in the running `ctr` as an `exec` process given
/// `fds`, and returns what it printed (asserting it exited 0).
pub async fn exec_fds_report(ctr: &Container, fds: Vec<OwnedFd>) -> String {
    let n = fds.len();
    let mut process = ctr.spec().await.unwrap().process().clone().unwrap();
    process.set_args(Some(vec!["sh".into(), "-c".into(), fds_report(n)]));
    let mut exec_options = ExecOptions::default();
    exec_options.stdin = Stdio::Null;
    exec_options.stdout = Stdio::Piped;
    exec_options.stderr = Stdio::Inherit;
    exec_options.pass_fds = fds;
    let p = ctr.exec(&process, exec_options).await.unwrap();
    let mut stdout = String::new();
    p.take_stdout()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    assert_eq!(p.wait().await.unwrap(), ExitStatus::Exited(0));
    stdout
}

/// Collects output, waits and deletes.
pub async fn finish(ctr: Container) -> berth::Result<Output> {
    let mut out = ctr.take_stdout().unwrap();
    let mut err = ctr.take_stderr().unwrap();
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let (a, b) = tokio::join!(
        out.read_to_string(&mut stdout),
        err.read_to_string(&mut stderr)
    );
    a.unwrap();
    b.unwrap();
    let status = ctr.wait().await?;
    ctr.delete().await?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Runs `script` in a default container and returns its stdout, asserting
/// it exited 0.
pub async fn sh(rt: &Runtime, script: &str) -> String {
    let out = run(rt, "sh", spec(script)).await.expect("run");
    assert!(out.status.success(), "{script:?} failed: {:?}", out);
    out.stdout
}

/// Prints the content of descriptors 3..3+n, one per line, then every
/// other descriptor the shell has (but its own listing's).
pub fn fds_report(n: usize) -> String {
    let last = 2 + n;
    format!(
        "for i in $(seq 3 {last}); do read line <&$i; echo \"$i $line\"; done; \
         for f in /proc/self/fd/*; do n=${{f##*/}}; \
           [ $n -gt {last} ] && [ -e $f ] && echo \"extra $n $(readlink $f)\"; done; true"
    )
}

/// `n` files holding `file <i>`, opened in order (the lowest free numbers).
pub fn numbered_files(n: usize) -> (tempfile::TempDir, Vec<OwnedFd>) {
    let dir = tempfile::tempdir().unwrap();
    let fds = (0..n)
        .map(|i| {
            let path = dir.path().join(i.to_string());
            std::fs::File::create(&path)
                .unwrap()
                .write_all(format!("file {i}\n").as_bytes())
                .unwrap();
            OwnedFd::from(std::fs::File::open(&path).unwrap())
        })
        .collect();
    (dir, fds)
}

/// What [`fds_report`] prints when descriptor `3 + slot` holds file
/// `order[slot]` and nothing else is open.
pub fn expected_fds(order: &[usize]) -> String {
    order
        .iter()
        .enumerate()
        .map(|(slot, i)| format!("{} file {i}\n", slot + 3))
        .collect()
}
