//! Conformance: generated specs run the probe in real containers, and what
//! the kernel shows it must be what the spec says (the oracle); generated
//! invalid specs must be refused, quickly, leaving nothing behind.
//!
//! Needs root. `PROPTEST_CASES` sets the number of cases (64 by default).
//! A failure is shrunk to a minimal spec, printed as `config.json` and
//! written to `conformance/proptest-regressions/` next to proptest's seed
//! files (which replay the failure first on the next run).
//!
//! `BERTH_CONFORMANCE_AVOID` (comma-separated, or `all`) steers the
//! generated specs around known berth bugs (see
//! `berth_conformance::strategies::Avoid`), to look for other ones;
//! `BERTH_CONFORMANCE_SABOTAGE` breaks one part of every spec berth is
//! given, to see the property fail and shrink (see [`sabotage`]).
//!
//! The two tests share this process's descriptors and children, which the
//! leak checks count, so they run one at a time (a lock).

use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use berth::oci_spec::runtime::Spec;
use berth::{Bundle, Config, Container, CreateOptions, ExitStatus, Runtime, Stdio};
use berth_conformance::oracle::{self, Host};
use berth_conformance::report::Report;
use berth_conformance::strategies::{self, Avoid, Context, InvalidCase, Refusal};
use berth_fixtures::leaks::Snapshot;
use proptest::test_runner::{
    Config as ProptestConfig, FileFailurePersistence, TestCaseError, TestError, TestRunner,
};
use tokio::io::AsyncReadExt;

/// Where the probe is installed in the rootfs.
const PROBE: &str = "/probe";
/// How long one valid case (create, start, wait, delete) may take.
const CASE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long berth may take to refuse an invalid spec.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Cases per property when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 256;

static SERIAL: Mutex<()> = Mutex::new(());

fn tokio_rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn proptest_config(persistence: &'static str) -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(persistence))),
        // Each shrink step starts a container: bound the time (so that a
        // failing run still ends within CI's budget) more than the steps.
        max_shrink_time: 45_000,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

/// A private copy of the shared rootfs with the probe in it, a directory
/// bind mounts can use, and a runtime with a state root and cgroup parent
/// of its own.
struct Fixture {
    dir: tempfile::TempDir,
    rootfs: PathBuf,
    bind_source: PathBuf,
    rt: Runtime,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        berth_fixtures::require_root();
        let dir = tempfile::Builder::new()
            .prefix("berth-conformance-")
            .tempdir()
            .expect("tempdir");
        // A user namespace's root (an unmapped id on the host) must be
        // able to reach the rootfs.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let rootfs = dir.path().join("rootfs");
        let shared = berth_fixtures::rootfs::shared().expect("shared rootfs");
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(&shared)
            .arg(&rootfs)
            .status()
            .expect("cp -a");
        assert!(status.success(), "cp -a {} failed", shared.display());
        berth_fixtures::rootfs::install_binary(
            &rootfs,
            Path::new(env!("CARGO_BIN_EXE_berth-probe")),
            Path::new(PROBE),
        )
        .expect("installing the probe");
        let bind_source = dir.path().join("bind-source");
        std::fs::create_dir(&bind_source).unwrap();
        std::fs::write(bind_source.join(strategies::BIND_SOURCE_FILE), "hello\n").unwrap();
        let unique = format!("berth-conformance-{name}-{}", std::process::id());
        let config = {
            let mut config = Config::default();
            config.root = PathBuf::from("/run").join(&unique);
            config.cgroup_parent = unique;
            config
        };
        let rt = tokio_rt().block_on(Runtime::new(config)).expect("runtime");
        Fixture {
            dir,
            rootfs,
            bind_source,
            rt,
        }
    }

    fn context(&self, sidecar: Option<u32>) -> Context {
        let avoid = std::env::var("BERTH_CONFORMANCE_AVOID").unwrap_or_default();
        Context {
            rootfs: self.rootfs.clone(),
            probe: PROBE.into(),
            sidecar,
            bind_source: Some(self.bind_source.clone()),
            host: Host::cached().clone(),
            avoid: Avoid::parse_list(&avoid).expect("BERTH_CONFORMANCE_AVOID"),
        }
    }

    fn snapshot(&self) -> Snapshot {
        let c = self.rt.config();
        Snapshot::take(&c.root, &c.cgroup_parent).expect("leak snapshot")
    }

    fn bundle(&self, spec: Spec) -> berth::Result<Bundle> {
        Bundle::new(self.dir.path(), spec)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.rt.config().root);
    }
}

fn piped() -> CreateOptions {
    {
        let mut create_options = CreateOptions::default();
        create_options.stdin = Stdio::Null;
        create_options.stdout = Stdio::Piped;
        create_options.stderr = Stdio::Piped;
        create_options
    }
}

/// What a finished container printed and how it ended.
#[derive(Debug)]
struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

async fn finish(ctr: &Container) -> berth::Result<Outcome> {
    let mut out = ctr.take_stdout().expect("piped stdout");
    let mut err = ctr.take_stderr().expect("piped stderr");
    ctr.start().await?;
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let (a, b) = tokio::join!(
        out.read_to_string(&mut stdout),
        err.read_to_string(&mut stderr)
    );
    if let Err(e) = a.and(b) {
        stderr.push_str(&format!("\n(reading the container's output: {e})"));
    }
    let status = ctr.wait().await?;
    Ok(Outcome {
        status,
        stdout,
        stderr,
    })
}

/// Creates, starts, waits for and deletes a container; deletes it by
/// force when anything fails or takes longer than [`CASE_TIMEOUT`].
async fn run(fx: &Fixture, id: &str, spec: Spec) -> Result<Outcome, String> {
    let work = async {
        let ctr = fx.rt.create_with(id, fx.bundle(spec)?, piped()).await?;
        let outcome = finish(&ctr).await;
        match outcome {
            Ok(o) => {
                ctr.delete().await?;
                Ok(o)
            }
            Err(e) => {
                let _ = ctr.force_delete().await;
                Err(e)
            }
        }
    };
    match tokio::time::timeout(CASE_TIMEOUT, work).await {
        Ok(r) => r.map_err(|e: berth::Error| format!("{e} ({e:?})")),
        Err(_) => {
            delete_leftover(fx, id).await;
            Err(format!("no result within {CASE_TIMEOUT:?}"))
        }
    }
}

/// Deletes container `id` if it exists (after a timeout dropped the
/// future that owned it).
async fn delete_leftover(fx: &Fixture, id: &str) {
    // An abandoned create finishes in a task of its own and deletes what
    // it made: give it a moment.
    for _ in 0..50 {
        match fx.rt.get(id).await {
            Ok(ctr) => {
                let _ = ctr.force_delete().await;
                return;
            }
            Err(_) if !fx.rt.config().root.join(id).exists() => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// What `BERTH_CONFORMANCE_SABOTAGE` breaks in the spec berth is given
/// (the oracle still judges the original): a check that the property test
/// notices a runtime that ignores part of the spec, and shrinks to it.
/// Names: `rlimits`, `capabilities`, `umask`, `masked-paths`,
/// `readonly-paths`, `sysctl`, `hostname`, `mount-options`.
fn sabotage(mut spec: Spec) -> Spec {
    let Ok(what) = std::env::var("BERTH_CONFORMANCE_SABOTAGE") else {
        return spec;
    };
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut process = spec.process().clone().unwrap_or_default();
    match what.as_str() {
        "rlimits" => {
            process.set_rlimits(None);
        }
        "capabilities" => {
            process.set_capabilities(None);
        }
        "umask" => {
            let mut u = process.user().clone();
            u.set_umask(None);
            process.set_user(u);
        }
        "masked-paths" => {
            linux.set_masked_paths(None);
        }
        "readonly-paths" => {
            linux.set_readonly_paths(None);
        }
        "sysctl" => {
            linux.set_sysctl(None);
        }
        "hostname" => {
            spec.set_hostname(None);
        }
        "mount-options" => {
            let mounts = spec.mounts().clone().unwrap_or_default();
            spec.set_mounts(Some(
                mounts
                    .into_iter()
                    .map(|mut m| {
                        if m.destination().starts_with("/run/") {
                            m.set_options(None);
                        }
                        m
                    })
                    .collect(),
            ));
        }
        other => panic!("unknown BERTH_CONFORMANCE_SABOTAGE {other:?}"),
    }
    spec.set_linux(Some(linux));
    spec.set_process(Some(process));
    spec
}

fn config_json(spec: &Spec) -> String {
    serde_json::to_string_pretty(spec).unwrap_or_else(|e| format!("(unserializable: {e})"))
}

/// Writes the minimal failing spec to `proptest-regressions/` and returns
/// the path.
fn keep_failure(test: &str, spec: &Spec) -> PathBuf {
    let json = config_json(spec);
    let mut h = DefaultHasher::new();
    json.hash(&mut h);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("proptest-regressions");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{test}-{:016x}.config.json", h.finish()));
    let _ = std::fs::write(&path, json + "\n");
    path
}

fn report_failure<T>(test: &str, result: Result<(), TestError<T>>, spec_of: impl Fn(&T) -> Spec) {
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, value)) => {
            let spec = spec_of(&value);
            let path = keep_failure(test, &spec);
            panic!(
                "{test}: minimal failing spec (kept in {}):\n\
                 --- config.json ---\n{}\n--- end ---\n{reason}",
                path.display(),
                config_json(&spec),
            );
        }
        Err(TestError::Abort(reason)) => panic!("{test}: aborted: {reason}"),
    }
}

/// This process's `oom_score_adj` (containers must not change it).
fn own_oom_score_adj() -> String {
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unreadable ({e})"))
}

/// Fails a case that changes this process's own `oom_score_adj`, and puts
/// the value back (an unprivileged process may lower it again down to the
/// lowest value a privileged one set), so that shrinking goes on from a
/// clean caller. If it cannot be put back, every later container would
/// inherit it and judging more cases would blame innocent specs: they are
/// rejected then (and the failure is not shrunk).
#[derive(Default)]
struct CallerGuard {
    poisoned: RefCell<Option<String>>,
}

impl CallerGuard {
    fn run<T>(&self, case: impl FnOnce() -> T) -> Result<T, TestCaseError> {
        if let Some(why) = self.poisoned.borrow().as_ref() {
            return Err(TestCaseError::reject(format!(
                "after an earlier case: {why}"
            )));
        }
        let before = own_oom_score_adj();
        let out = case();
        let after = own_oom_score_adj();
        if after == before {
            return Ok(out);
        }
        let mut why = format!(
            "this spec changed the oom_score_adj of the calling process (the test) \
             from {before} to {after}"
        );
        match std::fs::write("/proc/self/oom_score_adj", &before) {
            Ok(()) => why.push_str(" (the test put it back)"),
            Err(e) => {
                why.push_str(&format!(
                    ", and it cannot be put back ({e}): every later container inherits it"
                ));
                *self.poisoned.borrow_mut() = Some(why.clone());
            }
        }
        Err(TestCaseError::fail(why))
    }
}

fn leak_check(fx: &Fixture, before: &Snapshot) -> Result<(), TestCaseError> {
    let leaks = fx.snapshot().leaks_since(before);
    if leaks.is_empty() {
        Ok(())
    } else {
        Err(TestCaseError::fail(format!(
            "left behind:\n{}",
            leaks.join("\n")
        )))
    }
}

/// Every generated valid spec runs the probe, and its report matches the
/// oracle.
#[test]
fn generated_specs_show_the_kernel_what_they_say() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let fx = Fixture::new("valid");
    let rt = tokio_rt();

    // Warm up what is made once per process (tokio's drivers, the host
    // probe) before the first snapshot, with the plain default spec.
    let base = strategies::base_spec(&fx.context(None));
    let warm = rt
        .block_on(run(&fx, "warm-up", base.clone()))
        .expect("warm-up");
    assert!(warm.status.success(), "warm-up: {warm:?}");
    let report = Report::parse(&warm.stdout).expect("warm-up report");
    let mismatches = oracle::check(&base, &report);
    assert!(
        mismatches.is_empty(),
        "the default spec does not conform:\n{}",
        mismatches.join("\n")
    );
    let initial = fx.snapshot();

    // A long-running container whose namespaces specs may join.
    let mut sidecar_spec = base.clone();
    sidecar_spec
        .process_mut()
        .as_mut()
        .unwrap()
        .set_args(Some(vec!["sleep".into(), "1000000".into()]));
    let sidecar = rt.block_on(async {
        let ctr = fx
            .rt
            .create_with("sidecar", fx.bundle(sidecar_spec).unwrap(), piped())
            .await
            .expect("sidecar");
        ctr.start().await.expect("starting the sidecar");
        ctr
    });
    let ctx = fx.context(Some(sidecar.pid() as u32));
    let baseline = fx.snapshot();

    let n = AtomicUsize::new(0);
    let guard = CallerGuard::default();
    let started = Instant::now();
    let mut runner = TestRunner::new(proptest_config(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proptest-regressions/valid-specs.txt"
    )));
    let result = runner.run(&strategies::valid_spec(&ctx), |spec| {
        let id = format!("case-{}", n.fetch_add(1, Ordering::Relaxed));
        let outcome = guard.run(|| rt.block_on(run(&fx, &id, sabotage(spec.clone()))))?;
        leak_check(&fx, &baseline)?;
        let o = outcome.map_err(|e| TestCaseError::fail(format!("the container failed: {e}")))?;
        if !o.status.success() {
            return Err(TestCaseError::fail(format!(
                "the probe ended with {:?}; stderr: {}",
                o.status, o.stderr
            )));
        }
        let report = Report::parse(&o.stdout).map_err(TestCaseError::fail)?;
        let mismatches = oracle::check(&spec, &report);
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(TestCaseError::fail(format!(
                "{} mismatch(es) between the spec and what the kernel shows:\n  {}",
                mismatches.len(),
                mismatches.join("\n  ")
            )))
        }
    });
    let elapsed = started.elapsed();
    let runs = n.load(Ordering::Relaxed);

    rt.block_on(sidecar.force_delete())
        .expect("deleting the sidecar");
    drop(sidecar);
    eprintln!(
        "valid specs: {runs} containers (cases and shrink steps) in {elapsed:.1?}, {:.0?} each",
        elapsed / runs.max(1) as u32
    );
    report_failure("valid-specs", result, Spec::clone);
    let leaks = fx.snapshot().leaks_since(&initial);
    assert!(leaks.is_empty(), "left behind:\n{}", leaks.join("\n"));
}

/// Whether berth's answer to an invalid spec is the expected refusal.
fn judge(refusal: berth::Error, want: Refusal) -> Result<(), String> {
    match (&refusal, want) {
        (berth::Error::InvalidSpec { field, .. }, Refusal::InvalidSpec(prefix))
            if field.starts_with(prefix) =>
        {
            Ok(())
        }
        (berth::Error::Init { kind, .. }, Refusal::Init(want)) if *kind == want => Ok(()),
        (e, want) => Err(format!("wanted {want:?}, got {e} ({e:?})")),
    }
}

/// Every generated invalid spec is refused with the expected typed error,
/// within [`REFUSAL_TIMEOUT`], leaving nothing behind.
#[test]
fn generated_invalid_specs_are_refused_and_leave_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let fx = Fixture::new("invalid");
    let rt = tokio_rt();
    let ctx = fx.context(None);
    let warm = rt
        .block_on(run(&fx, "warm-up", strategies::base_spec(&ctx)))
        .expect("warm-up");
    assert!(warm.status.success(), "warm-up: {warm:?}");
    let initial = fx.snapshot();

    let n = AtomicUsize::new(0);
    let guard = CallerGuard::default();
    let started = Instant::now();
    let mut runner = TestRunner::new(proptest_config(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proptest-regressions/invalid-specs.txt"
    )));
    let result = runner.run(&strategies::invalid_spec(&ctx), |case: InvalidCase| {
        let id = format!("invalid-{}", n.fetch_add(1, Ordering::Relaxed));
        let before = fx.snapshot();
        // The verdict is reached inside the guard, so that a container
        // that was (wrongly) created is deleted whatever the guard finds.
        let verdict = guard.run(|| {
            rt.block_on(async {
                let bundle = match fx.bundle(case.spec.clone()) {
                    Ok(b) => b,
                    Err(e) => return judge(e, case.refusal),
                };
                let create = fx.rt.create_with(&id, bundle, piped());
                match tokio::time::timeout(REFUSAL_TIMEOUT, create).await {
                    Ok(Ok(ctr)) => {
                        let _ = ctr.force_delete().await;
                        Err("accepted: the container was created".to_string())
                    }
                    Ok(Err(e)) => judge(e, case.refusal),
                    Err(_) => {
                        delete_leftover(&fx, &id).await;
                        Err(format!("no answer within {REFUSAL_TIMEOUT:?}"))
                    }
                }
            })
        })?;
        leak_check(&fx, &before)?;
        verdict.map_err(|e| TestCaseError::fail(format!("{:?}: {e}", case.mutation)))
    });
    let elapsed = started.elapsed();
    let runs = n.load(Ordering::Relaxed);
    eprintln!(
        "invalid specs: {runs} refusals (cases and shrink steps) in {elapsed:.1?}, {:.0?} each",
        elapsed / runs.max(1) as u32
    );
    report_failure("invalid-specs", result, |c: &InvalidCase| c.spec.clone());
    let leaks = fx.snapshot().leaks_since(&initial);
    assert!(leaks.is_empty(), "left behind:\n{}", leaks.join("\n"));
}
