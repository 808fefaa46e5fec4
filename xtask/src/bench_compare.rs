//! `cargo xtask bench-compare [--runs N] [--compare PREV.json]`: berth, crun
//! and runc side by side, each running `/bin/true` from the same busybox
//! bundle (create + start + wait + delete through `run`).
//!
//! The runs are interleaved (berth crun runc berth crun runc …) so that
//! machine noise hits all alike. Each run is one runtime process spawned
//! directly by this one; its wall time is measured from the spawn to the
//! reap. Its peak RSS is measured in separate runs under GNU `time -f %M`
//! (up to 30, interleaved too): the `ru_maxrss` of a child of this process
//! is never below this process's own peak (~6 MiB), because `execve`
//! records the old address space's peak in the process's `maxrss`, and a
//! spawned child's old address space is (a copy of) this one's. A small
//! program in between, as `time` is, removes that floor. crun refuses
//! hybrid cgroup hosts, so on those it runs in
//! a private mount namespace without the cgroup2 mount (set up in the forked
//! child before `execve`; the cost of that set-up is measured and shown).
//!
//! Results go to `target/bench-compare/`: `results-<unix time>.json` and
//! `latest.json`, and `chart.svg` (time and RSS per runtime).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

/// The runtimes compared, in the interleaving order.
const RUNTIMES: [&str; 3] = ["berth", "crun", "runc"];
/// Untimed runs of each runtime before the measured ones.
const WARM_UP: usize = 3;

/// Statistics of one runtime over all runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// The runtime's name.
    pub runtime: String,
    /// Its `--version` first line.
    pub version: String,
    /// Per-container wall time, milliseconds.
    pub median_ms: f64,
    /// Fastest run, milliseconds.
    pub min_ms: f64,
    /// Slowest run, milliseconds.
    pub max_ms: f64,
    /// Median peak RSS of the runtime process (and its reaped children),
    /// KiB, from the runs under GNU `time`.
    pub rss_kib: u64,
    /// The largest peak RSS seen, KiB.
    pub rss_max_kib: u64,
    /// Median CPU time (user + system) of the runtime and its reaped
    /// children (the container's process included), milliseconds: less
    /// sensitive to a busy machine than wall time.
    #[serde(default)]
    pub cpu_ms: f64,
}

/// One bench-compare run, as written to JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Seconds since the epoch.
    pub timestamp: u64,
    /// Measured runs per runtime.
    pub runs: usize,
    /// The 1-minute load average before and after.
    pub load_before: f64,
    /// The 1-minute load average after.
    pub load_after: f64,
    /// Median cost of crun's hybrid-host workaround (unshare + umount in the
    /// forked child), measured around `/bin/true`, in milliseconds; 0 when
    /// not needed.
    pub crun_workaround_ms: f64,
    /// Per runtime.
    pub summaries: Vec<Summary>,
    /// berth's median over crun's.
    pub berth_over_crun: f64,
    /// berth's median over runc's.
    pub berth_over_runc: f64,
}

/// Entry point.
///
/// `baseline` is another berth binary (e.g. a build from before a change)
/// timed in the same interleaving, as `berth-baseline`. With `no_seccomp`
/// the bundle has no seccomp profile.
pub fn run(
    runs: usize,
    compare: Option<&Path>,
    skip_build: bool,
    baseline: Option<&Path>,
    no_seccomp: bool,
) -> Result<()> {
    ensure!(runs >= 1, "--runs must be at least 1");
    ensure!(
        nix::unistd::geteuid().is_root(),
        "bench-compare runs containers: run it as root"
    );
    let root = crate::ci::workspace_root();
    let out_dir = root.join("target/bench-compare");
    std::fs::create_dir_all(&out_dir)?;

    let berth = if skip_build {
        root.join("target/dist/berth")
    } else {
        crate::dist::build(&root)?
    };
    ensure!(
        berth.exists(),
        "{} is missing: run `cargo xtask dist`",
        berth.display()
    );
    ensure_tools(&root)?;

    println!("--- preparing the bundle");
    let bundle = out_dir.join("bundle");
    if !bundle.join("rootfs/bin/sh").exists() {
        berth_fixtures::bundle::create(&bundle, &["/bin/true".to_string()])?;
    }
    let mut spec = berth_fixtures::bundle::spec(&["/bin/true".to_string()]);
    if no_seccomp {
        if let Some(mut linux) = spec.linux().clone() {
            linux.set_seccomp(None);
            spec.set_linux(Some(linux));
        }
    }
    berth_fixtures::bundle::write_config(&bundle, &spec)?;
    println!(
        "--- seccomp profile: {}",
        if no_seccomp {
            "none"
        } else {
            "the fixtures' (Docker-like)"
        }
    );
    let exit7 = out_dir.join("bundle-exit7");
    with_args(&bundle, &exit7, &["sh", "-c", "exit 7"])?;

    let tag = format!("bc{}", std::process::id());
    let state_base = PathBuf::from(format!("/run/berth-bench-compare-{}", std::process::id()));
    let hybrid = Path::new("/sys/fs/cgroup/unified").is_dir()
        && nix::sys::statfs::statfs("/sys/fs/cgroup/unified")
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    let mut runners: Vec<Runner> = RUNTIMES
        .iter()
        .map(|name| Runner {
            name,
            binary: match *name {
                "berth" => berth.clone(),
                other => which(other).unwrap_or_else(|| PathBuf::from(other)),
            },
            root: state_base.join(name),
            hide_cgroup2: hybrid && *name == "crun",
        })
        .collect();
    if let Some(b) = baseline {
        ensure!(b.is_file(), "--baseline {} is not a file", b.display());
        runners.push(Runner {
            name: "berth-baseline",
            binary: b.to_path_buf(),
            root: state_base.join("berth-baseline"),
            hide_cgroup2: false,
        });
    }
    for r in &runners {
        std::fs::create_dir_all(&r.root)?;
    }
    let result = measure(&runners, &bundle, &exit7, &tag, runs, hybrid);
    let clean = check_clean(&runners, &tag);
    let _ = std::fs::remove_dir_all(&state_base);
    let report = result?;
    clean?;

    print_report(&report);
    if let Some(prev) = compare {
        let text =
            std::fs::read_to_string(prev).with_context(|| format!("reading {}", prev.display()))?;
        let prev: Report =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", prev.display()))?;
        print_comparison(&prev, &report);
    }
    let json = serde_json::to_string_pretty(&report)? + "\n";
    let file = out_dir.join(format!("results-{}.json", report.timestamp));
    std::fs::write(&file, &json)?;
    std::fs::write(out_dir.join("latest.json"), &json)?;
    let svg = out_dir.join("chart.svg");
    std::fs::write(&svg, chart(&report))?;
    println!(
        "\nwrote {}, latest.json and {}",
        file.display(),
        svg.display()
    );
    Ok(())
}

/// One runtime under test.
struct Runner {
    name: &'static str,
    binary: PathBuf,
    /// Its own state root (`--root`).
    root: PathBuf,
    /// Run it in a private mount namespace without `/sys/fs/cgroup/unified`.
    hide_cgroup2: bool,
}

/// The outcome of one runtime process.
struct Outcome {
    wall: Duration,
    cpu: Duration,
    code: i32,
    stderr: String,
}

impl Runner {
    fn command(&self, bundle: &Path, id: &str) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(id);
        cmd
    }

    fn version(&self) -> String {
        Command::new(&self.binary)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Runs one container `id` from `bundle` and waits for the runtime.
    fn run(&self, bundle: &Path, id: &str) -> Result<Outcome> {
        let mut cmd = self.command(bundle, id);
        spawn_measured(&mut cmd, self.hide_cgroup2)
    }
}

/// Spawns `cmd` (stdin and stdout on /dev/null, stderr piped) and reaps it
/// with `wait4`, returning the wall time from spawn to reap and the CPU
/// time. With `hide_cgroup2`, the child first enters a private mount
/// namespace and unmounts `/sys/fs/cgroup/unified` (crun's hybrid-host
/// workaround).
fn spawn_measured(cmd: &mut Command, hide_cgroup2: bool) -> Result<Outcome> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if hide_cgroup2 {
        // SAFETY: the closure runs in the forked child before execve and
        // makes only system calls (nix passes these short paths through a
        // stack buffer, without allocating).
        unsafe {
            cmd.pre_exec(|| {
                use nix::mount::{mount, umount2, MntFlags, MsFlags};
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )?;
                umount2("/sys/fs/cgroup/unified", MntFlags::MNT_DETACH)?;
                Ok(())
            });
        }
    }
    let t0 = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data the kernel fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with valid pointers to locals. std has
    // no wrapper that reports rusage; the `Child` is not waited on after this.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = t0.elapsed();
    ensure!(reaped == pid, "wait4: {}", std::io::Error::last_os_error());
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Outcome {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        code,
        stderr,
    })
}

fn measure(
    runners: &[Runner],
    bundle: &Path,
    exit7: &Path,
    tag: &str,
    runs: usize,
    hybrid: bool,
) -> Result<Report> {
    let load_before = loadavg();
    println!("--- checking that each runtime really runs the container");
    for r in runners {
        let id = format!("{tag}-{}-exit7", r.name);
        let out = r.run(exit7, &id)?;
        ensure!(
            out.code == 7,
            "{} run of `exit 7` exited {}: {}",
            r.name,
            out.code,
            out.stderr.trim()
        );
    }
    println!("--- warming up ({WARM_UP} runs each)");
    for i in 0..WARM_UP {
        for r in runners {
            one(r, bundle, &format!("{tag}-{}-w{i}", r.name))?;
        }
    }
    println!("--- {runs} interleaved runs each");
    let mut times: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut rss: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut cpu: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for i in 0..runs {
        for r in runners {
            let out = one(r, bundle, &format!("{tag}-{}-{i}", r.name))?;
            times
                .entry(r.name)
                .or_default()
                .push(out.wall.as_secs_f64() * 1e3);
            cpu.entry(r.name)
                .or_default()
                .push(out.cpu.as_secs_f64() * 1e3);
        }
    }
    let rss_runs = runs.min(30);
    println!("--- {rss_runs} interleaved runs each under GNU time (peak RSS)");
    for i in 0..rss_runs {
        for r in runners {
            let id = format!("{tag}-{}-rss{i}", r.name);
            let kib = gnu_time_rss(r, bundle, &id)
                .with_context(|| format!("{} run {id} under GNU time failed", r.name))?;
            rss.entry(r.name).or_default().push(kib);
        }
    }
    let crun_workaround_ms = if hybrid { workaround_cost()? } else { 0.0 };
    let mut summaries = Vec::new();
    for r in runners {
        let t = &times[r.name];
        let m = &rss[r.name];
        summaries.push(Summary {
            runtime: r.name.to_string(),
            version: r.version(),
            median_ms: median_f(t),
            min_ms: t.iter().copied().fold(f64::INFINITY, f64::min),
            max_ms: t.iter().copied().fold(0.0, f64::max),
            rss_kib: median_u(m),
            rss_max_kib: m.iter().copied().max().unwrap_or(0),
            cpu_ms: median_f(&cpu[r.name]),
        });
    }
    let med = |name: &str| {
        summaries
            .iter()
            .find(|s| s.runtime == name)
            .map_or(f64::NAN, |s| s.median_ms)
    };
    Ok(Report {
        timestamp: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
        runs,
        load_before,
        load_after: loadavg(),
        crun_workaround_ms,
        berth_over_crun: med("berth") / med("crun"),
        berth_over_runc: med("berth") / med("runc"),
        summaries,
    })
}

/// One run that must succeed.
fn one(r: &Runner, bundle: &Path, id: &str) -> Result<Outcome> {
    let out = r.run(bundle, id)?;
    if out.code != 0 {
        bail!(
            "{} run {id} exited {}: {}",
            r.name,
            out.code,
            out.stderr.trim()
        );
    }
    Ok(out)
}

/// The median extra time of crun's workaround: `/bin/true` spawned with and
/// without it, interleaved.
fn workaround_cost() -> Result<f64> {
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        without.push(spawn_measured(&mut Command::new("/bin/true"), false)?.wall);
        with.push(spawn_measured(&mut Command::new("/bin/true"), true)?.wall);
    }
    let ms =
        |v: Vec<Duration>| median_f(&v.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>());
    Ok(ms(with) - ms(without))
}

/// Peak RSS of one more run, as GNU `time -f %M` reports it.
fn gnu_time_rss(r: &Runner, bundle: &Path, id: &str) -> Option<u64> {
    let out_file = std::env::temp_dir().join(format!("{id}.time"));
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"]).arg(&out_file);
    let inner = r.command(bundle, id);
    cmd.arg(inner.get_program()).args(inner.get_args());
    let ok = spawn_measured(&mut cmd, r.hide_cgroup2).is_ok_and(|o| o.code == 0);
    let text = std::fs::read_to_string(&out_file).ok();
    let _ = std::fs::remove_file(&out_file);
    if !ok {
        return None;
    }
    text?.trim().lines().last()?.trim().parse().ok()
}

/// Fails if any runtime left state or a cgroup of this run behind.
fn check_clean(runners: &[Runner], tag: &str) -> Result<()> {
    let mut left = Vec::new();
    for r in runners {
        if let Ok(entries) = std::fs::read_dir(&r.root) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(tag) {
                    left.push(format!("{} state {}", r.name, e.path().display()));
                }
            }
        }
    }
    // Cgroups named after a container of this run, one or two levels below
    // each hierarchy root (runc and crun use /<id>, berth berth/<id>).
    let mut dirs = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        dirs.extend(entries.flatten().map(|e| e.path()));
    }
    for d in dirs {
        for sub in subdirs(&d) {
            for p in std::iter::once(sub.clone()).chain(subdirs(&sub)) {
                if p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(tag))
                {
                    left.push(format!("cgroup {}", p.display()));
                }
            }
        }
    }
    ensure!(left.is_empty(), "left behind: {}", left.join(", "));
    Ok(())
}

fn subdirs(d: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(d)
        .map(|es| {
            es.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir() && !t.is_symlink()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Writes into `dir` the config of `bundle` without its seccomp profile,
/// pointing at `bundle`'s rootfs.
pub fn without_seccomp(bundle: &Path, dir: &Path) -> Result<()> {
    derive_bundle(bundle, dir, |spec| {
        if let Some(linux) = spec.get_mut("linux").and_then(|l| l.as_object_mut()) {
            linux.remove("seccomp");
        }
    })
}

/// Writes into `dir` the config of `bundle` running `args` instead,
/// pointing at `bundle`'s rootfs.
pub fn with_args(bundle: &Path, dir: &Path, args: &[&str]) -> Result<()> {
    derive_bundle(bundle, dir, |spec| {
        spec["process"]["args"] = serde_json::json!(args);
    })
}

/// A bundle in `dir` sharing `bundle`'s rootfs, its config changed by `edit`.
fn derive_bundle(
    bundle: &Path,
    dir: &Path,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let text = std::fs::read_to_string(bundle.join("config.json"))?;
    let mut spec: serde_json::Value = serde_json::from_str(&text)?;
    edit(&mut spec);
    let rootfs = bundle.join("rootfs").canonicalize()?;
    spec["root"]["path"] = serde_json::Value::String(rootfs.display().to_string());
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&spec)?,
    )?;
    Ok(())
}

/// Installs crun, runc and GNU time (scripts/install-deps.sh) if missing.
fn ensure_tools(root: &Path) -> Result<()> {
    let missing: Vec<&str> = ["crun", "runc", "time"]
        .into_iter()
        .filter(|t| which(t).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!(
        "--- installing {} (scripts/install-deps.sh)",
        missing.join(", ")
    );
    let status = Command::new("bash")
        .arg(root.join("scripts/install-deps.sh"))
        .status()?;
    ensure!(status.success(), "scripts/install-deps.sh failed");
    for t in missing {
        ensure!(
            which(t).is_some(),
            "{t} is still missing after install-deps.sh"
        );
    }
    Ok(())
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn median_f(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn median_u(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn print_report(r: &Report) {
    println!(
        "\n{} runs each, interleaved; load average {:.2} before, {:.2} after",
        r.runs, r.load_before, r.load_after
    );
    println!("\n| runtime | median ms | min ms | max ms | CPU ms | peak RSS KiB (median / max) |");
    println!("|---|---|---|---|---|---|");
    for s in &r.summaries {
        println!(
            "| {} ({}) | {:.2} | {:.2} | {:.2} | {:.2} | {} / {} |",
            s.runtime,
            s.version,
            s.median_ms,
            s.min_ms,
            s.max_ms,
            s.cpu_ms,
            s.rss_kib,
            s.rss_max_kib,
        );
    }
    println!(
        "\nberth/crun {:.2}×   berth/runc {:.2}×",
        r.berth_over_crun, r.berth_over_runc
    );
    if let Some(b) = r.summaries.iter().find(|s| s.runtime == "berth-baseline") {
        println!(
            "berth/berth-baseline {:.2}× (RSS {} → {} KiB)",
            r.summaries[0].median_ms / b.median_ms,
            b.rss_kib,
            r.summaries[0].rss_kib
        );
    }
    if r.crun_workaround_ms != 0.0 {
        println!(
            "(crun's times include its hybrid-host workaround, which costs {:.2} ms \
             around /bin/true; berth/crun without it: {:.2}×)",
            r.crun_workaround_ms,
            r.summaries[0].median_ms / (r.summaries[1].median_ms - r.crun_workaround_ms)
        );
    }
}

fn print_comparison(prev: &Report, now: &Report) {
    println!(
        "\ncompared with the run of {} (median ms, RSS KiB):",
        prev.timestamp
    );
    for s in &now.summaries {
        let Some(p) = prev.summaries.iter().find(|p| p.runtime == s.runtime) else {
            continue;
        };
        println!(
            "  {:6} {:7.2} → {:7.2} ms ({:+.1}%)   {:6} → {:6} KiB",
            s.runtime,
            p.median_ms,
            s.median_ms,
            (s.median_ms / p.median_ms - 1.0) * 100.0,
            p.rss_kib,
            s.rss_kib
        );
    }
    println!(
        "  berth/crun {:.2}× → {:.2}×, berth/runc {:.2}× → {:.2}×",
        prev.berth_over_crun, now.berth_over_crun, prev.berth_over_runc, now.berth_over_runc
    );
}

/// A bar's value and its optional whisker (low, high) for one runtime.
type BarValue = dyn Fn(&Summary) -> (f64, Option<(f64, f64)>);

/// Two bar charts side by side: median time per container (with min–max
/// whiskers) and median peak RSS, one bar per runtime.
fn chart(r: &Report) -> String {
    const W: f64 = 760.0;
    const H: f64 = 340.0;
    const PANEL_W: f64 = 320.0;
    const PANEL_H: f64 = 220.0;
    const TOP: f64 = 70.0;
    let colors = ["#d95f02", "#1b9e77", "#7570b3", "#e7298a"];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">\
         run of /bin/true, {} interleaved runs each (berth/crun {:.2}×, berth/runc {:.2}×)</text>\n",
        W / 2.0,
        r.runs,
        r.berth_over_crun,
        r.berth_over_runc
    );
    let panels: [(&str, Box<BarValue>); 2] = [
        (
            "time per container, ms (median, min–max)",
            Box::new(|s: &Summary| (s.median_ms, Some((s.min_ms, s.max_ms)))),
        ),
        (
            "peak RSS, MiB (median)",
            Box::new(|s: &Summary| (s.rss_kib as f64 / 1024.0, None)),
        ),
    ];
    for (p, (title, value)) in panels.iter().enumerate() {
        let x0 = 50.0 + p as f64 * (PANEL_W + 60.0);
        let vals: Vec<_> = r.summaries.iter().map(value).collect();
        // Whiskers may be long: scale to the medians, and clip whiskers.
        let top = vals.iter().map(|(v, _)| *v).fold(0.0, f64::max) * 1.3;
        let y = |v: f64| TOP + PANEL_H - (v.min(top) / top) * PANEL_H;
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{title}</text>\n\
             <line x1=\"{x0}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n",
            x0 + PANEL_W / 2.0,
            TOP - 16.0,
            TOP + PANEL_H,
            x0 + PANEL_W,
            TOP + PANEL_H
        );
        let bw = PANEL_W / (vals.len() as f64 * 1.6);
        for (i, ((v, whisker), s)) in vals.iter().zip(&r.summaries).enumerate() {
            let bx = x0 + bw * 0.3 + i as f64 * bw * 1.6;
            let cx = bx + bw / 2.0;
            svg += &format!(
                "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{}\"/>\n\
                 <text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{v:.2}</text>\n\
                 <text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                y(*v),
                TOP + PANEL_H - y(*v),
                colors[i % colors.len()],
                y(*v) - 4.0 - if whisker.is_some() { 12.0 } else { 0.0 },
                TOP + PANEL_H + 16.0,
                s.runtime
            );
            if let Some((lo, hi)) = whisker {
                svg += &format!(
                    "<line x1=\"{cx:.1}\" y1=\"{:.1}\" x2=\"{cx:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n",
                    y(*lo),
                    y(*hi)
                );
            }
        }
    }
    svg += "</svg>\n";
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let s = |name: &str, ms: f64, kib: u64| Summary {
            runtime: name.into(),
            version: format!("{name} 1.0"),
            median_ms: ms,
            min_ms: ms * 0.8,
            max_ms: ms * 3.0,
            rss_kib: kib,
            rss_max_kib: kib + 10,
            cpu_ms: ms / 2.0,
        };
        Report {
            timestamp: 1,
            runs: 5,
            load_before: 0.5,
            load_after: 0.7,
            crun_workaround_ms: 0.3,
            summaries: vec![
                s("berth", 6.0, 3000),
                s("crun", 10.0, 3300),
                s("runc", 27.0, 9800),
            ],
            berth_over_crun: 0.6,
            berth_over_runc: 6.0 / 27.0,
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median_f(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_f(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median_f(&[]).is_nan());
        assert_eq!(median_u(&[5, 1, 3]), 3);
    }

    #[test]
    fn reports_round_trip_through_json() {
        let r = report();
        let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.summaries.len(), 3);
        assert_eq!(back.summaries[2].rss_kib, 9800);
        assert_eq!(back.berth_over_crun, 0.6);
    }

    #[test]
    fn the_chart_has_a_bar_per_runtime_and_panel() {
        let svg = chart(&report());
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect x=").count(), 6);
        for name in RUNTIMES {
            assert_eq!(svg.matches(&format!(">{name}</text>")).count(), 2, "{name}");
        }
        // Bars stay inside the picture.
        assert!(!svg.contains("height=\"-"));
    }
}
