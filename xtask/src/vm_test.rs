//! `cargo xtask vm-test`: berth's integration and conformance tests inside
//! QEMU guests, across kernel series × cgroup modes.
//!
//! 1. Kernels: the newest Debian kernel of each series, from the cache
//!    (`target/vm-cache`, see `berth_vm_tests::kernels`), fetched when missing.
//! 2. Test binaries: `cargo test --no-run` of the sdk integration tests and the
//!    conformance tests (plus the `berth` and `berth-probe` binaries), stripped
//!    of debug info, with the shared libraries `ldd` lists.
//! 3. Initramfs: a base per kernel (busybox-static with every applet, the
//!    modules in load order; cached) and one uncompressed per-run archive
//!    appended to it: the binaries at their host paths (tests have
//!    `CARGO_BIN_EXE_*` and `CARGO_MANIFEST_DIR` paths compiled in), the test
//!    rootfs fixture where `berth_fixtures::rootfs::shared()` looks for it
//!    (`CARGO_TARGET_DIR` is set in the guest), and the `/init` of
//!    `berth_vm_tests::guest`.
//! 4. Cells: `--jobs` guests at a time, each reporting through markers on its
//!    second serial port (`berth_vm_tests::results`); the verdict comes from
//!    the markers only.
//! 5. The matrix: kernel × mode → passed / FAILED / not applicable, with
//!    counts and wall time, then every failed test's output. Fails (non-zero
//!    exit) when a cell failed.

use anyhow::{bail, Context, Result};
use berth_vm_tests::guest::{self, InitConfig, Suite};
use berth_vm_tests::initramfs::{self, Attr, CpioWriter};
use berth_vm_tests::kernels::{self, Kernel};
use berth_vm_tests::modules::{ModuleTree, GUEST_MODULES};
use berth_vm_tests::qemu::{Boot, QEMU};
use berth_vm_tests::results::{CellResult, Verdict};
use berth_vm_tests::{matrix, Cell, CgroupMode, KernelSeries};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The test binaries the guests run: `(package, test target)`. The cli tests
/// are left out: they drive berth through podman and containerd, which the
/// guests do not have.
pub const SUITES: &[(&str, &str)] = &[
    ("berth", "lifecycle"),
    ("berth", "resources"),
    ("berth", "invalid"),
    ("berth", "leaks"),
    ("berth", "spawner"),
    ("berth-conformance", "probe"),
    ("berth-conformance", "conformance"),
];

/// The guest's self-check (`vm-tests/tests/guest.rs`), run first.
const GUEST_SUITE: (&str, &str) = ("berth-vm-tests", "guest");

/// Binaries the guests carry besides the tests: `(package, bin)`. Cargo
/// builds a package's binaries for its integration tests.
const BINS: &[(&str, &str)] = &[("berth-cli", "berth"), ("berth-conformance", "berth-probe")];

/// The test target whose build brings the `berth` binary (not run in the
/// guests: it drives berth through podman and containerd).
const BINS_FROM: (&str, &str) = ("berth-cli", "cli");

/// The v1 controllers berth's cgroup code and its tests use. A v1 guest whose
/// kernel cannot mount one of them (Debian's 6.12+ kernels have no v1 `memory`
/// and `cpuset`) reports the cell not applicable.
const V1_REQUIRED: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer",
];

/// Bump when the base archive's layout changes.
const BASE_FORMAT: u32 = 1;

/// What `cargo xtask vm-test` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Kernel series to boot.
    pub kernels: Vec<KernelSeries>,
    /// cgroup modes to set up.
    pub modes: Vec<CgroupMode>,
    /// Guests run at the same time.
    pub jobs: usize,
    /// A libtest filter passed to every test binary.
    pub filter: Option<String>,
    /// libtest `--test-threads` in the guest (default: its CPUs).
    pub test_threads: Option<u32>,
    /// Guest CPUs.
    pub cpus: u32,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Per-cell timeout.
    pub timeout: Duration,
    /// `PROPTEST_CASES` in the guest.
    pub proptest_cases: u32,
    /// More environment for the test binaries.
    pub guest_env: Vec<(String, String)>,
    /// Look for newer kernels even when the cache has one of each series.
    pub refresh: bool,
    /// Make the guest's `vm-tests/guest` suite fail on purpose with this
    /// message (`BERTH_VM_INJECT_FAILURE`).
    pub inject_failure: Option<String>,
    /// Run each cell without (`false`) and/or with (`true`) berth's syscall
    /// fallbacks forced (`BERTH_FORCE_FALLBACK=all` in the guest).
    pub fallbacks: Vec<bool>,
}

/// One guest to boot: a cell, with or without the fallbacks forced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Run {
    cell: Cell,
    fallbacks: bool,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.cell)?;
        if self.fallbacks {
            f.write_str("+fallbacks")?;
        }
        Ok(())
    }
}

/// Runs the matrix and prints it; an error when a cell failed.
pub fn run(opts: &Options) -> Result<()> {
    let started = Instant::now();
    check_qemu()?;
    let mut fallbacks = opts.fallbacks.clone();
    fallbacks.dedup();
    let runs: Vec<Run> = matrix(&opts.kernels, &opts.modes)
        .into_iter()
        .flat_map(|cell| fallbacks.iter().map(move |&f| Run { cell, fallbacks: f }))
        .collect();
    if runs.is_empty() {
        bail!("no cells: give at least one --kernel and one --cgroup");
    }
    let root = workspace_root();
    let target = target_dir(&root);
    let work = target.join("vm-test");
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    println!("--- kernels");
    let kernels = kernels(&opts.kernels, opts.refresh)?;
    for k in kernels.values() {
        println!("{}: {} ({})", k.series, k.release, k.version);
    }

    println!("--- building the test binaries");
    let built = build(&root)?;
    let rootfs = berth_fixtures::rootfs::shared().context("building the test rootfs fixture")?;

    println!("--- initramfs");
    let t = Instant::now();
    let run_cpio = work.join("run.cpio");
    let init = InitConfig {
        modules: Vec::new(), // per kernel, below
        suites: built.suites.clone(),
        test_threads: opts.test_threads.or(Some(opts.cpus)),
        filter: opts.filter.clone(),
        env: guest_env(opts, &target),
        v1_required: V1_REQUIRED.iter().map(|s| s.to_string()).collect(),
    };
    let run_size = write_run_archive(&run_cpio, &work, &built, &rootfs, &root)?;
    let mut initrds = BTreeMap::new();
    for (series, kernel) in &kernels {
        let (base, modules) = base_archive(&work, kernel)?;
        let cell_init = InitConfig {
            modules,
            ..init.clone()
        };
        let init_cpio = work.join(format!("init-{}.cpio", kernel.release));
        let mut w = CpioWriter::new(std::io::BufWriter::new(fs::File::create(&init_cpio)?));
        w.file(
            "init",
            Attr::mode(0o755),
            guest::init_script(&cell_init).as_bytes(),
        )?;
        w.finish()?.flush()?;
        let initrd = work.join(format!("initrd-{}", kernel.release));
        initramfs::concat(&[&base, &run_cpio, &init_cpio], &initrd)?;
        initrds.insert(*series, (kernel.ensure_vmlinux()?, initrd));
    }
    println!(
        "per-run archive {:.1} MB ({} suites, {} files of libraries), made in {:.1?}",
        run_size as f64 / 1e6,
        built.suites.len(),
        built.libraries.len(),
        t.elapsed()
    );

    println!(
        "--- {} cell(s), {} at a time, {} CPU(s) and {} MiB each",
        runs.len(),
        opts.jobs.max(1),
        opts.cpus,
        opts.memory_mib
    );
    let queue = Mutex::new(VecDeque::from(runs.clone()));
    let done: Mutex<Vec<(Run, CellOutcome)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.clamp(1, runs.len()) {
            s.spawn(|| loop {
                let Some(run) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                let (image, initrd) = &initrds[&run.cell.kernel];
                let outcome = run_cell(opts, &work, run, image, initrd);
                println!("{}", outcome.line(run));
                done.lock().unwrap().push((run, outcome));
            });
        }
    });
    let mut done = done.into_inner().unwrap();
    done.sort_by_key(|(c, _)| *c);
    print_report(&done);
    println!("total wall time {}", fmt_duration(started.elapsed()));
    let failed: Vec<String> = done
        .iter()
        .filter(|(_, o)| matches!(o.verdict, Verdict::Failed(_)))
        .map(|(r, _)| r.to_string())
        .collect();
    if !failed.is_empty() {
        bail!("vm-test: cell(s) failed: {}", failed.join(", "));
    }
    Ok(())
}

fn check_qemu() -> Result<()> {
    let ok = Command::new(QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!("{QEMU} not found: install qemu-system-x86 (scripts/install-deps.sh does)");
    }
    Ok(())
}

/// The newest cached kernel of each series; the missing ones (all with
/// `refresh`) are looked up in Debian's package lists and fetched.
fn kernels(series: &[KernelSeries], refresh: bool) -> Result<BTreeMap<KernelSeries, Kernel>> {
    let cache = berth_vm_tests::default_cache_dir();
    let mut out = BTreeMap::new();
    let mut missing = Vec::new();
    for &s in series {
        match kernels::cached(&cache, s)? {
            Some(k) if !refresh => {
                out.insert(s, k);
            }
            _ => missing.push(s),
        }
    }
    if !missing.is_empty() {
        println!(
            "fetching {} into {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            cache.display()
        );
        let max_age = if refresh {
            Duration::ZERO
        } else {
            Duration::from_secs(24 * 3600)
        };
        for k in kernels::ensure(&cache, &missing, max_age)? {
            out.insert(k.series, k);
        }
    }
    Ok(out)
}

/// What the build produced.
#[derive(Debug, Default)]
struct Built {
    /// The test binaries, by suite name and host path.
    suites: Vec<Suite>,
    /// Every executable to carry (tests and bins), at its host path.
    executables: Vec<PathBuf>,
    /// Their shared libraries and ELF interpreter.
    libraries: BTreeSet<PathBuf>,
}

/// One `cargo test --no-run --workspace` for the guest's self-check,
/// [`SUITES`] and [`BINS_FROM`] (whose build brings [`BINS`]). `--workspace`
/// unifies features as `cargo test --workspace` does, so after that (CI's
/// previous step) nothing is compiled again.
fn build(root: &Path) -> Result<Built> {
    let mut built = Built::default();
    let mut args: Vec<String> = ["test", "--no-run", "--workspace"]
        .map(String::from)
        .to_vec();
    let targets = std::iter::once(&GUEST_SUITE)
        .chain(SUITES)
        .chain(std::iter::once(&BINS_FROM));
    for (_, t) in targets {
        args.extend(["--test".into(), t.to_string()]);
    }
    let artifacts = cargo_executables(root, &args)?;
    let find = |package: &str, target: &str, test: bool| {
        artifacts
            .iter()
            .find(|a| a.package == package && a.target == target && a.is_test == test)
            .map(|a| a.path.clone())
            .with_context(|| format!("cargo built no {package}/{target} (test: {test})"))
    };
    // The guest's self-check first, unfiltered: it runs its ignored tests.
    let (package, target) = GUEST_SUITE;
    let path = find(package, target, true)?;
    built.suites.push(Suite {
        name: "vm-tests/guest".into(),
        path: path_str(&path),
        args: vec!["--ignored".into()],
        filtered: false,
    });
    built.executables.push(path);
    for (package, target) in SUITES {
        let path = find(package, target, true)?;
        built.suites.push(Suite {
            name: format!(
                "{}/{target}",
                package.trim_start_matches("berth-").replace("berth", "sdk")
            ),
            path: path_str(&path),
            args: Vec::new(),
            filtered: true,
        });
        built.executables.push(path);
    }
    for (package, bin) in BINS {
        built.executables.push(find(package, bin, false)?);
    }
    for exe in &built.executables {
        let libs = berth_fixtures::rootfs::shared_libraries(exe)
            .with_context(|| format!("finding the libraries of {}", exe.display()))?;
        built.libraries.extend(libs);
    }
    Ok(built)
}

/// An executable cargo reported.
#[derive(Debug)]
struct Artifact {
    package: String,
    target: String,
    is_test: bool,
    path: PathBuf,
}

/// Runs cargo with `--message-format=json` and returns the executables it
/// reported (its human messages go to our stderr).
fn cargo_executables(root: &Path, args: &[String]) -> Result<Vec<Artifact>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(&cargo)
        .current_dir(root)
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    let mut out = Vec::new();
    let stdout = child.stdout.take().context("cargo's stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(exe) = msg["executable"].as_str() else {
            continue;
        };
        // package_id is "path+file:///.../sdk#berth@0.1.0" or similar: the
        // package name is in the manifest path's crate name field instead.
        let package = msg["package_id"]
            .as_str()
            .and_then(package_name)
            .unwrap_or_default();
        let kinds = &msg["target"]["kind"];
        out.push(Artifact {
            package,
            target: msg["target"]["name"].as_str().unwrap_or_default().into(),
            is_test: msg["profile"]["test"].as_bool().unwrap_or(false)
                || kinds
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "test")),
            path: PathBuf::from(exe),
        });
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo {} failed: {status}", args.join(" "));
    }
    Ok(out)
}

/// The package name in a cargo package id: `path+file:///w/sdk#berth@0.1.0`
/// → `berth`, `path+file:///w/sdk#0.1.0` → `sdk` (the name is the dir's).
fn package_name(id: &str) -> Option<String> {
    let (url, frag) = id.rsplit_once('#')?;
    match frag.split_once('@') {
        Some((name, _)) => Some(name.to_string()),
        None => url.rsplit('/').next().map(str::to_string),
    }
}

/// The guest's environment for the test binaries.
fn guest_env(opts: &Options, target: &Path) -> Vec<(String, String)> {
    let mut env = vec![
        ("HOME".into(), "/root".into()),
        ("TMPDIR".into(), "/tmp".into()),
        ("RUST_BACKTRACE".into(), "0".into()),
        // berth_fixtures::rootfs::shared() finds the fixture under it.
        (
            "CARGO_TARGET_DIR".into(),
            target.to_string_lossy().into_owned(),
        ),
        ("PROPTEST_CASES".into(), opts.proptest_cases.to_string()),
    ];
    if let Some(m) = &opts.inject_failure {
        env.push(("BERTH_VM_INJECT_FAILURE".into(), m.clone()));
    }
    env.extend(opts.guest_env.iter().cloned());
    env
}

/// A stand-in for glibc's `ldd` (a bash script): berth-fixtures runs `ldd` to
/// copy binaries into rootfs copies; the loader lists what it would load.
const LDD: &str = "#!/bin/sh\n\
    [ $# -eq 1 ] || { echo 'usage: ldd FILE' >&2; exit 1; }\n\
    LD_TRACE_LOADED_OBJECTS=1 exec /lib64/ld-linux-x86-64.so.2 \"$1\"\n";

/// The per-run archive: executables (stripped of debug info) and their
/// libraries, the rootfs fixture and the conformance regressions, each at its
/// host path, plus `/bin/ldd`. Returns its size.
fn write_run_archive(
    out: &Path,
    work: &Path,
    built: &Built,
    rootfs: &Path,
    root: &Path,
) -> Result<u64> {
    let stage = work.join("stripped");
    fs::create_dir_all(&stage)?;
    let mut w = CpioWriter::new(std::io::BufWriter::new(fs::File::create(out)?));
    for exe in &built.executables {
        let small = stage.join(exe.file_name().context("executable name")?);
        let stripped = Command::new("objcopy")
            .arg("--strip-debug")
            .arg(exe)
            .arg(&small)
            .status()
            .is_ok_and(|s| s.success());
        let from = if stripped { &small } else { exe };
        w.host_file(&path_str(exe), Attr::mode(0o755), from)?;
    }
    for lib in &built.libraries {
        w.host_file(&path_str(lib), Attr::mode(0o755), lib)?;
    }
    w.host_tree(&path_str(rootfs), rootfs)?;
    let regressions = root.join("conformance/proptest-regressions");
    w.host_tree(&path_str(&regressions), &regressions)?;
    w.file("bin/ldd", Attr::mode(0o755), LDD.as_bytes())?;
    let size = w.position();
    w.finish()?.flush()?;
    Ok(size)
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The cached base archive of `kernel` (busybox with every applet in `/bin`,
/// the guest modules, device nodes) and the modules' load order.
fn base_archive(work: &Path, kernel: &Kernel) -> Result<(PathBuf, Vec<String>)> {
    let busybox = berth_fixtures::rootfs::static_busybox()
        .context("no static busybox: install busybox-static (scripts/install-deps.sh does)")?;
    let tree = ModuleTree::open(&kernel.modules_dir)?;
    let plan = tree.resolve(GUEST_MODULES)?;
    let names: Vec<String> = plan.modules.iter().map(|m| m.name.clone()).collect();
    let meta = fs::metadata(&busybox)?;
    let key = fnv(&format!(
        "{BASE_FORMAT} {} {} {:?} {} {names:?}",
        busybox.display(),
        meta.len(),
        meta.modified().ok(),
        kernel.release
    ));
    let dir = work.join("base");
    fs::create_dir_all(&dir)?;
    let base = dir.join(format!("base-{}-{key:016x}.cpio.gz", kernel.release));
    if base.is_file() {
        return Ok((base, names));
    }
    let applets = Command::new(&busybox)
        .arg("--list")
        .output()
        .with_context(|| format!("{} --list", busybox.display()))?;
    let partial = base.with_extension("partial");
    let gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(fs::File::create(&partial)?),
        flate2::Compression::fast(),
    );
    let mut w = CpioWriter::new(gz);
    for d in ["proc", "sys", "dev", "tmp", "run", "root", "etc", "newroot"] {
        w.dir(d, Attr::mode(0o755))?;
    }
    w.dir("sys/fs/cgroup", Attr::mode(0o755))?;
    w.char_device("dev/console", Attr::mode(0o600), 5, 1)?;
    w.char_device("dev/null", Attr::mode(0o666), 1, 3)?;
    w.host_file("bin/busybox", Attr::mode(0o755), &busybox)?;
    for applet in String::from_utf8_lossy(&applets.stdout).split_whitespace() {
        if applet != "busybox" {
            w.symlink(&format!("bin/{applet}"), "busybox")?;
        }
    }
    w.symlink("sbin", "bin")?;
    w.file(
        "etc/passwd",
        Attr::mode(0o644),
        b"root:x:0:0:root:/root:/bin/sh\n",
    )?;
    w.file("etc/group", Attr::mode(0o644), b"root:x:0:\n")?;
    for m in &plan.modules {
        w.file(
            &format!("{}/{}.ko", guest::MODULES_DIR, m.name),
            Attr::mode(0o644),
            &tree.read(&m.name)?,
        )?;
    }
    w.finish()?.finish()?.flush()?;
    fs::rename(&partial, &base)?;
    Ok((base, names))
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// How one cell went.
#[derive(Debug)]
struct CellOutcome {
    verdict: Verdict,
    result: CellResult,
    wall: Duration,
    console_log: PathBuf,
    results_log: PathBuf,
    /// An error before or around the boot (QEMU would not start...).
    error: Option<String>,
}

impl CellOutcome {
    fn line(&self, cell: Run) -> String {
        let (p, f, i) = self.result.counts();
        format!(
            "{cell}: {} ({p} passed, {f} failed, {i} ignored) in {}",
            self.verdict,
            fmt_duration(self.wall)
        )
    }
}

fn run_cell(opts: &Options, work: &Path, run: Run, image: &Path, initrd: &Path) -> CellOutcome {
    let cell = run.cell;
    let name = format!("{}-{}", cell.kernel, cell.cgroup);
    let dir = work.join("cells").join(if run.fallbacks {
        format!("{name}-fallbacks")
    } else {
        name
    });
    let mut append = format!("{}={}", guest::MODE_PARAM, cell.cgroup);
    if run.fallbacks {
        let _ = write!(append, " {}=all", guest::FALLBACK_PARAM);
    }
    let console_log = dir.join("console.log");
    let results_log = dir.join("results.log");
    let boot = Boot {
        kernel: image.to_path_buf(),
        initrd: initrd.to_path_buf(),
        append,
        memory_mib: opts.memory_mib,
        cpus: opts.cpus,
        console_log: console_log.clone(),
        results_log: results_log.clone(),
        timeout: opts.timeout,
    };
    let started = Instant::now();
    let ran = fs::create_dir_all(&dir)
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            let _ = fs::remove_file(&results_log);
            Ok(boot.run()?)
        });
    let text = fs::read_to_string(&results_log).unwrap_or_default();
    let result = CellResult::parse(&text);
    let mut verdict = result.verdict();
    let mut error = None;
    match ran {
        Err(e) => {
            error = Some(format!("{e:#}"));
            verdict = Verdict::Failed(vec![format!("booting: {e:#}")]);
        }
        Ok(b) if b.timed_out => {
            let why = format!("killed at the timeout ({})", fmt_duration(opts.timeout));
            match &mut verdict {
                Verdict::Failed(r) => r.push(why),
                _ => verdict = Verdict::Failed(vec![why]),
            }
        }
        Ok(_) => {}
    }
    // The guest echoes the fallbacks it exported: a cell asked to force them
    // must not pass without.
    let forced = result
        .begin
        .as_deref()
        .is_some_and(|b| b.split_whitespace().any(|f| f == "fallback=all"));
    if result.begin.is_some() && forced != run.fallbacks {
        let why = format!(
            "the guest's fallback setting is not the one asked for: {:?}",
            result.begin
        );
        match &mut verdict {
            Verdict::Failed(r) => r.push(why),
            _ => verdict = Verdict::Failed(vec![why]),
        }
    }
    CellOutcome {
        verdict,
        result,
        wall: started.elapsed(),
        console_log,
        results_log,
        error,
    }
}

/// The matrix, then the details of each failed or not applicable cell.
fn print_report(done: &[(Run, CellOutcome)]) {
    let mut columns: Vec<(CgroupMode, bool)> = done
        .iter()
        .map(|(r, _)| (r.cell.cgroup, r.fallbacks))
        .collect();
    columns.sort();
    columns.dedup();
    println!("\n=== vm-test matrix (tests passed/failed/ignored, wall time)");
    let mut header = format!("{:<8}", "kernel");
    for (m, f) in &columns {
        let name = format!("cgroup {m}{}", if *f { " + fallbacks" } else { "" });
        let _ = write!(header, " | {name:<30}");
    }
    println!("{header} | release");
    println!("{}", "-".repeat(header.len() + 20));
    let mut kernels: Vec<KernelSeries> = done.iter().map(|(r, _)| r.cell.kernel).collect();
    kernels.dedup();
    for k in kernels {
        let release = done
            .iter()
            .find(|(r, _)| r.cell.kernel == k)
            .and_then(|(_, o)| o.result.begin.as_deref())
            .and_then(|b| b.split_whitespace().next())
            .and_then(|r| r.strip_prefix("release="))
            .unwrap_or("?");
        let mut row = format!("{:<8}", k.as_str());
        for (m, f) in &columns {
            let run = done
                .iter()
                .find(|(r, _)| r.cell.kernel == k && r.cell.cgroup == *m && r.fallbacks == *f);
            let text = match run {
                None => "-".to_string(),
                Some((_, o)) => {
                    let (p, fl, i) = o.result.counts();
                    let what = match &o.verdict {
                        Verdict::NotApplicable(_) => "not applicable".to_string(),
                        v => format!("{v} {p}/{fl}/{i}"),
                    };
                    format!("{what} ({})", fmt_duration(o.wall))
                }
            };
            let _ = write!(row, " | {text:<30}");
        }
        println!("{row} | {release}");
    }
    for (run, o) in done {
        match &o.verdict {
            Verdict::Passed => {}
            Verdict::NotApplicable(why) => println!("\n{run} not applicable: {why}"),
            Verdict::Failed(reasons) => print_failure(*run, o, reasons),
        }
    }
}

/// Why a cell failed, every failed test's output, and the end of the
/// console when the guest did not get to its end.
fn print_failure(run: Run, o: &CellOutcome, reasons: &[String]) {
    println!("\n=== {run} FAILED");
    for r in reasons {
        println!("  - {r}");
    }
    if let Some(e) = &o.error {
        println!("  error: {e}");
    }
    for s in &o.result.suites {
        for t in &s.failed {
            println!("\n--- {run} {} :: {} output:", s.name, t.name);
            println!("{}", t.output.trim_end());
        }
        if !s.ok() && !s.other_output.is_empty() {
            println!("\n--- {run} {} other output (last 40 lines):", s.name);
            let skip = s.other_output.len().saturating_sub(40);
            for l in &s.other_output[skip..] {
                println!("{l}");
            }
        }
    }
    if !o.result.ended {
        println!(
            "\n--- {run} console (last 30 lines of {}):",
            o.console_log.display()
        );
        let text = fs::read_to_string(&o.console_log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for l in &lines[lines.len().saturating_sub(30)..] {
            println!("{}", l.trim_end_matches('\r'));
        }
    }
    println!("(full results: {})", o.results_log.display());
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_from_cargo_ids() {
        assert_eq!(
            package_name("path+file:///w/sdk#berth@0.1.0").as_deref(),
            Some("berth")
        );
        assert_eq!(
            package_name("path+file:///w/conformance#berth-conformance@0.1.0").as_deref(),
            Some("berth-conformance")
        );
        assert_eq!(
            package_name("path+file:///w/xtask#0.1.0").as_deref(),
            Some("xtask")
        );
    }

    #[test]
    fn durations_read_as_minutes_and_seconds() {
        assert_eq!(fmt_duration(Duration::from_secs(125)), "2m05s");
        assert_eq!(fmt_duration(Duration::from_millis(900)), "0m00s");
    }
}
