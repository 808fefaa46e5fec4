//! `cargo xtask hot-text`: which functions the runtime commands execute,
//! written to `cli/hot-text.txt` for the dist build to lay out together.
//!
//! The kernel maps an executable's code 64 KiB at a time (fault-around), so
//! a command that runs 1.3 MB of functions scattered over an 8 MB `.text`
//! keeps ~5 MB of it resident. Placed together they take ~1.3 MB.
//!
//! The set is exact, not sampled: each command runs under `ptrace`, one
//! instruction at a time in every thread and child, and each instruction
//! address inside the `berth` binary is mapped to its function through the
//! ELF symbol table. Names are written with what changes from one build to
//! the next (v0 crate disambiguators and back-references) as `*`, so the
//! list survives edits; a function it misses is still linked, only not in
//! the hot section.

use anyhow::{bail, ensure, Context, Result};
use nix::sys::ptrace;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The list's header; the rest is one symbol pattern a line.
const HEADER: &str = "\
# Functions the runtime commands execute, placed together in the dist
# build's `.text.hot` (see cli/build.rs). Written by `cargo xtask hot-text`
# from a ptrace single-step trace of run, create, start, state, kill, delete,
# list and a detached run's shim; `*` stands for what differs between
# builds. Regenerate after a change that moves the hot path; a stale line
# only costs resident memory.
";

/// Entry point: builds the dist binary, traces the commands, writes the
/// list; with `relayout`, lays out the units of the last trace again.
pub fn run(out: Option<&Path>, relayout: bool) -> Result<()> {
    let root = crate::ci::workspace_root();
    let out = out.map_or_else(|| root.join("cli/hot-text.txt"), Path::to_path_buf);
    let base = root.join("target/hot-text");
    let saved = base.join("units.tsv");
    let units = if relayout {
        let text = std::fs::read_to_string(&saved)
            .with_context(|| format!("reading {} (run a trace first)", saved.display()))?;
        units_from_tsv(&text)?
    } else {
        let units = traced_units(&root, &base)?;
        std::fs::write(&saved, units_to_tsv(&units))
            .with_context(|| format!("writing {}", saved.display()))?;
        units
    };
    write_list(&units, &out)
}

/// Builds the dist binary and traces the commands: which commands run each
/// pattern, and its size.
fn traced_units(root: &Path, base: &Path) -> Result<HashMap<String, Unit>> {
    ensure!(
        nix::unistd::geteuid().is_root(),
        "hot-text runs containers: run it as root"
    );
    let berth = crate::dist::build(root)?;
    let bundle = base.join("bundle");
    let plain = base.join("bundle-no-seccomp");
    if !bundle.join("rootfs/bin/sh").exists() {
        berth_fixtures::bundle::create(&bundle, &["/bin/true".to_string()])?;
    }
    // A traced command's container exits once the gate opens (see
    // `trace`): a real `run` waits for its container, and so must the
    // traced one, though the tracer slows it down ~1,000 times.
    let wait = format!("until [ -e /{GATE} ]; do sleep 0.02; done");
    let spec = berth_fixtures::bundle::spec(&["sh".into(), "-c".into(), wait.clone()]);
    berth_fixtures::bundle::write_config(&bundle, &spec)?;
    crate::bench_compare::without_seccomp(&bundle, &plain)?;
    // The container `create` makes must still run when `kill` comes.
    let sleeper = base.join("bundle-sleep");
    crate::bench_compare::with_args(&bundle, &sleeper, &["sleep", "100000"])?;
    // Output for the shim to log first.
    let talker = base.join("bundle-talker");
    let talk = format!("echo hot-text; {wait}");
    crate::bench_compare::with_args(&bundle, &talker, &["sh", "-c", &talk])?;
    let bundles = Bundles {
        gate: bundle.join("rootfs").join(GATE),
        seccomp: bundle,
        plain,
        sleeper,
        talker,
        log: base.join("shim.log"),
    };

    let state = PathBuf::from(format!("/run/berth-hot-text-{}", std::process::id()));
    let result = trace_commands(&berth, &state, &bundles);
    // Whatever the trace left (a failed command), the CLI removes.
    for id in ["ht-detached", "ht-shim"] {
        let _ = Command::new(&berth)
            .arg("--root")
            .arg(&state)
            .args(["delete", "--force", id])
            .stderr(Stdio::null())
            .status();
    }
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_file(&bundles.log);
    let _ = std::fs::remove_file(&bundles.gate);
    let traces = result?;

    let elf = std::fs::read(&berth).with_context(|| format!("reading {}", berth.display()))?;
    let segments = load_segments(&elf)?;
    let symbols = function_symbols(&berth)?;
    let members = c_library_members()?;
    // Each pattern: what runs it (bit i: COMMANDS[i], then the shim).
    let mut units: HashMap<String, Unit> = HashMap::new();
    for (bit, offsets) in traces.iter().enumerate() {
        for i in functions_executed(offsets, &segments, &symbols) {
            // Functions LLVM merged share an address and one section, named
            // after one of them: every name is listed.
            let first = symbols.partition_point(|s| s.addr < symbols[i].addr);
            for alias in &symbols[first..=i] {
                for name in unit_names(&alias.name, &members) {
                    units.entry(name).or_default().commands |= 1 << bit;
                }
            }
        }
    }
    size_units(&mut units, &symbols, &members);
    Ok(units)
}

/// Sets the size of each of `units` to that of all the code the linker
/// places for it, not only what the trace saw run: every function its
/// pattern matches (instances whose names differ only where `*` stands)
/// and the whole of a C library member. Code at one address counts once.
fn size_units(
    units: &mut HashMap<String, Unit>,
    symbols: &[Symbol],
    members: &HashMap<String, Vec<String>>,
) {
    let mut placed = HashSet::new();
    for unit in units.values_mut() {
        unit.size = 0;
    }
    for sym in symbols {
        for name in unit_names(&sym.name, members) {
            if let Some(unit) = units.get_mut(&name) {
                if placed.insert(sym.addr) {
                    unit.size += sym.size;
                }
            }
        }
    }
}

/// The list's names for the function `symbol`: the C library members that
/// define it, or its pattern.
fn unit_names(symbol: &str, members: &HashMap<String, Vec<String>>) -> Vec<String> {
    match members.get(symbol) {
        Some(files) => files.clone(),
        None => vec![pattern(symbol)],
    }
}

/// `units` as lines of pattern, commands (a number) and size, tab-separated.
fn units_to_tsv(units: &HashMap<String, Unit>) -> String {
    let mut names: Vec<&String> = units.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|n| format!("{n}\t{}\t{}\n", units[n].commands, units[n].size))
        .collect()
}

/// The units [`units_to_tsv`] wrote.
fn units_from_tsv(text: &str) -> Result<HashMap<String, Unit>> {
    text.lines()
        .map(|line| {
            let mut fields = line.split('\t');
            let (Some(name), Some(commands), Some(size), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                bail!("not a unit line: {line:?}");
            };
            let unit = Unit {
                commands: commands.parse()?,
                size: size.parse()?,
            };
            Ok((name.to_string(), unit))
        })
        .collect()
}

/// Lays out `units` and writes the list to `out`, with how many windows
/// each command touches.
fn write_list(units: &HashMap<String, Unit>, out: &Path) -> Result<()> {
    let ordered = layout(units);
    let text = list_text(&ordered, units);
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    let bytes: u64 = units.values().map(|u| u.size).sum();
    println!(
        "{} patterns, {} KiB, written to {}",
        units.len(),
        bytes / 1024,
        out.display()
    );
    let laid_out: Vec<Unit> = ordered.iter().map(|n| units[n]).collect();
    for bit in 0..RUNNERS {
        println!(
            "{}: {} of {} windows of 64 KiB",
            runner_name(bit),
            windows(&laid_out, 1 << bit),
            windows(&laid_out, Commands::MAX)
        );
    }
    Ok(())
}

/// The bundle a traced command takes with `--bundle`.
#[derive(Clone, Copy)]
enum BundleArg {
    None,
    /// A wait for the gate, with the fixtures' seccomp profile.
    Seccomp,
    /// The same without a profile.
    Plain,
    /// `sleep`, so that the container still runs when `kill` comes.
    Sleeper,
    /// A line of output, then a wait: what a detached container's shim
    /// logs and waits for.
    Talker,
}

/// The file whose creation in the rootfs lets the traced containers exit.
const GATE: &str = "ht-gate";

/// How long every traced task must have been blocked before the gate
/// opens. A task being single-stepped stops every few microseconds.
const GATE_AFTER: Duration = Duration::from_secs(1);

/// The bundles of [`BundleArg`], where the shim's log goes, and the gate.
struct Bundles {
    gate: PathBuf,
    seccomp: PathBuf,
    plain: PathBuf,
    sleeper: PathBuf,
    talker: PathBuf,
    log: PathBuf,
}

/// One command the list is traced from.
struct Traced {
    name: &'static str,
    args: &'static [&'static str],
    bundle: BundleArg,
    /// Output captured to a log file: the command leaves a `berth shim`
    /// process in charge of the container, which is traced too, until it
    /// exits with the container.
    detached_with_log: bool,
}

/// What runs code of the list: each of [`COMMANDS`], then the shim that
/// the detached run leaves ([`SHIM`]).
const RUNNERS: usize = COMMANDS.len() + 1;

/// The bit of the detached run's shim, traced with that run but counted
/// apart: it lives as long as its container.
const SHIM: usize = COMMANDS.len();

/// The bit [`layout`] does not rank: the detached run's own command.
const UNRANKED: usize = COMMANDS.len() - 1;

/// A set of [`RUNNERS`]: bit `i` stands for `COMMANDS[i]`, bit [`SHIM`]
/// for the shim.
type Commands = u16;

/// The name of [`RUNNERS`]' bit `bit`.
fn runner_name(bit: usize) -> &'static str {
    match bit {
        SHIM => "its shim",
        _ => COMMANDS.get(bit).map_or("?", |traced| traced.name),
    }
}

const fn traced(name: &'static str, args: &'static [&'static str], bundle: BundleArg) -> Traced {
    Traced {
        name,
        args,
        bundle,
        detached_with_log: false,
    }
}

/// The commands traced, in the order of their bits in [`Unit::commands`].
const COMMANDS: [Traced; 9] = [
    traced("run (seccomp)", &["run", "ht-run"], BundleArg::Seccomp),
    traced(
        "run (no seccomp)",
        &["run", "ht-run-plain"],
        BundleArg::Plain,
    ),
    traced("create", &["create", "ht-detached"], BundleArg::Sleeper),
    traced("state", &["state", "ht-detached"], BundleArg::None),
    traced("list", &["list"], BundleArg::None),
    traced("start", &["start", "ht-detached"], BundleArg::None),
    traced("kill", &["kill", "ht-detached", "KILL"], BundleArg::None),
    traced("delete", &["delete", "ht-detached"], BundleArg::None),
    Traced {
        name: "run -d with a log",
        args: &["run", "-d", "ht-shim"],
        bundle: BundleArg::Talker,
        detached_with_log: true,
    },
];

/// What the list places: one pattern's commands and code size.
#[derive(Debug, Default, Clone, Copy)]
struct Unit {
    /// The commands that run it.
    commands: Commands,
    size: u64,
}

/// The indices in `symbols` of the functions whose code `offsets` (file
/// offsets of the binary) fall in.
fn functions_executed(
    offsets: &HashSet<u64>,
    segments: &[Segment],
    symbols: &[Symbol],
) -> BTreeSet<usize> {
    let mut hit = BTreeSet::new();
    for &off in offsets {
        let Some(addr) = segments
            .iter()
            .find(|s| (s.offset..s.offset + s.size).contains(&off))
            .map(|s| off - s.offset + s.vaddr)
        else {
            continue;
        };
        let i = symbols.partition_point(|s| s.addr <= addr);
        if let Some(i) = i.checked_sub(1) {
            if addr < symbols[i].addr + symbols[i].size.max(1) {
                hit.insert(i);
            }
        }
    }
    hit
}

/// The patterns in the order that keeps each command's code in the fewest
/// 64 KiB windows: grouped by the set of commands that run them, the
/// groups in binary-reflected Gray code order of those sets (so that most
/// commands' groups are adjacent), under whichever ranking of the
/// ranked [`RUNNERS`] touches the fewest of their windows in all. Within a
/// group, by name.
///
/// The detached run's own command ([`UNRANKED`]) ranks last: it runs most
/// of the list whatever the order, and ranked among the others it would
/// cut the groups of the short commands that clients run for every
/// operation wherever its bit falls. Last, it splits each of their groups
/// into two adjacent halves, so their windows are those of a layout
/// without it. Its shim is ranked: it stays as long as its container.
fn layout(units: &HashMap<String, Unit>) -> Vec<String> {
    let mut groups: Vec<Unit> = Vec::new();
    for unit in units.values() {
        match groups.iter_mut().find(|g| g.commands == unit.commands) {
            Some(g) => g.size += unit.size,
            None => groups.push(*unit),
        }
    }
    let mut best: Option<(usize, Vec<Unit>)> = None;
    let ranked: Vec<usize> = (0..RUNNERS).filter(|&bit| bit != UNRANKED).collect();
    for order in permutations(ranked.len()) {
        let mut ranking: Vec<usize> = order.iter().map(|&i| ranked[i]).collect();
        ranking.push(UNRANKED);
        let key = |c: Commands| {
            let ranked = ranking
                .iter()
                .enumerate()
                .filter(|(_, &bit)| c & (1 << bit) != 0)
                .fold(0, |k: Commands, (rank, _)| {
                    k | ((1 << (Commands::BITS - 1)) >> rank)
                });
            // The position of `ranked` in the reflected Gray code sequence.
            let mut pos = ranked;
            let mut shift = ranked >> 1;
            while shift != 0 {
                pos ^= shift;
                shift >>= 1;
            }
            std::cmp::Reverse(pos)
        };
        let mut candidate = groups.clone();
        candidate.sort_by_key(|g| key(g.commands));
        let cost: usize = ranked
            .iter()
            .map(|&bit| windows(&candidate, 1 << bit))
            .sum();
        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
            best = Some((cost, candidate));
        }
    }
    let mut names: Vec<&String> = units.keys().collect();
    names.sort();
    best.unwrap_or_default()
        .1
        .iter()
        .flat_map(|g| {
            names
                .iter()
                .filter(|n| units[**n].commands == g.commands)
                .map(|n| (*n).clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every order of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(at, n - 1);
            out.push(p);
        }
    }
    out
}

/// How many 64 KiB windows the units run by any of `commands` touch when
/// `units` are laid out in order.
fn windows(units: &[Unit], commands: Commands) -> usize {
    const WINDOW: u64 = 64 * 1024;
    let mut at = 0u64;
    let mut touched = BTreeSet::new();
    for unit in units {
        if unit.commands & commands != 0 && unit.size > 0 {
            touched.extend(at / WINDOW..=(at + unit.size - 1) / WINDOW);
        }
        at += unit.size;
    }
    touched.len()
}

/// The list file: the header, then the patterns in `order`, each group
/// under a comment naming the commands that run it.
fn list_text(order: &[String], units: &HashMap<String, Unit>) -> String {
    let mut text = HEADER.to_string();
    let mut group = None;
    for name in order {
        let commands = units[name].commands;
        if group != Some(commands) {
            let names: Vec<&str> = (0..RUNNERS)
                .filter(|bit| commands & (1 << bit) != 0)
                .map(runner_name)
                .collect();
            text.push_str(&format!("# {}\n", names.join(", ")));
            group = Some(commands);
        }
        text.push_str(name);
        text.push('\n');
    }
    text
}

/// Runs each of [`COMMANDS`] under the tracer; returns the binary's file
/// offsets each of [`RUNNERS`] executed.
fn trace_commands(berth: &Path, state: &Path, bundles: &Bundles) -> Result<Vec<HashSet<u64>>> {
    let mut traces = Vec::new();
    let mut shim = HashSet::new();
    for traced in &COMMANDS {
        let mut cmd = Command::new(berth);
        cmd.arg("--root").arg(state).args(traced.args);
        let bundle = match traced.bundle {
            BundleArg::Seccomp => Some(&bundles.seccomp),
            BundleArg::Plain => Some(&bundles.plain),
            BundleArg::Sleeper => Some(&bundles.sleeper),
            BundleArg::Talker => Some(&bundles.talker),
            BundleArg::None => None,
        };
        if let Some(b) = bundle {
            cmd.arg("--bundle").arg(b);
        }
        if traced.detached_with_log {
            cmd.arg("--log-path").arg(&bundles.log);
        }
        let what = traced.name;
        let _ = std::fs::remove_file(&bundles.gate);
        let (offsets, n) = trace(&mut cmd, berth, &bundles.gate, traced.detached_with_log)
            .with_context(|| format!("tracing {what}"))?;
        println!(
            "{what}: {n} instructions, {} distinct ({} in a shim)",
            offsets.command.len(),
            offsets.shim.len()
        );
        traces.push(offsets.command);
        shim.extend(offsets.shim);
    }
    traces.push(shim);
    Ok(traces)
}

/// The file offsets of the traced binary that one traced command executed.
#[derive(Default)]
struct Executed {
    /// In the command's own process and its children.
    command: HashSet<u64>,
    /// In a `berth shim` it started, and in that shim's children.
    shim: HashSet<u64>,
}

/// What the tracer knows of one task since its last `execve`.
struct Task {
    /// The binary's executable mappings in it.
    maps: Vec<Mapping>,
    /// It is (a thread or child of) a `berth shim`.
    shim: bool,
}

impl Task {
    fn of(pid: Pid, binary: &Path) -> Task {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        Task {
            maps: binary_mappings(pid, binary),
            shim: is_shim(&cmdline),
        }
    }
}

/// Whether `cmdline` (`/proc/<pid>/cmdline`) is a shim's: the SDK starts
/// it as `<binary> shim --request <file>`.
fn is_shim(cmdline: &[u8]) -> bool {
    cmdline.split(|&b| b == 0).nth(1) == Some(b"shim")
}

/// One executable mapping of the traced binary in a task.
#[derive(Clone, Copy)]
struct Mapping {
    start: u64,
    end: u64,
    offset: u64,
}

/// Runs `cmd` single-stepping it, its threads and its children until it
/// exits; returns the distinct file offsets of `binary` executed (by the
/// command, and by a shim it started) and the number of steps. Children that exec something else are detached, and
/// so is what is left once the command exits (a created container's
/// init), unless `descendants`: then the tasks still running `binary` (a
/// shim) are traced until they exit too.
///
/// Once every traced task has been blocked for [`GATE_AFTER`] (the
/// command parked, waiting for its container), `gate` is created: the
/// containers of the gated bundles then exit.
fn trace(
    cmd: &mut Command,
    binary: &Path,
    gate: &Path,
    descendants: bool,
) -> Result<(Executed, u64)> {
    let binary = std::fs::canonicalize(binary)?;
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    // SAFETY: the closure runs in the forked child before execve and makes
    // one system call, allocating nothing.
    unsafe {
        cmd.pre_exec(|| ptrace::traceme().map_err(std::io::Error::from));
    }
    let child = cmd.spawn()?;
    let root = Pid::from_raw(child.id() as i32);
    // The first stop is the SIGTRAP after the traced execve.
    match waitpid(root, None)? {
        WaitStatus::Stopped(_, nix::sys::signal::SIGTRAP) => {}
        other => bail!("unexpected first stop: {other:?}"),
    }
    ptrace::setoptions(
        root,
        ptrace::Options::PTRACE_O_TRACECLONE
            | ptrace::Options::PTRACE_O_TRACEFORK
            | ptrace::Options::PTRACE_O_TRACEVFORK
            | ptrace::Options::PTRACE_O_TRACEEXEC
            | ptrace::Options::PTRACE_O_EXITKILL,
    )?;
    let mut tasks: HashMap<Pid, Task> = HashMap::new();
    let mut seen = Executed::default();
    let mut steps = 0u64;
    let mut live = 1usize;
    let mut root_status = None;
    let opener = GateOpener::new(gate);
    ptrace::step(root, None)?;
    while live > 0 {
        let status = match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(s) => s,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ECHILD) => break,
            Err(e) => return Err(e.into()),
        };
        opener.stopped();
        let (pid, signal) = match status {
            WaitStatus::Exited(pid, code) => {
                live -= 1;
                if pid == root {
                    root_status = Some(code);
                }
                continue;
            }
            WaitStatus::Signaled(pid, sig, _) => {
                live -= 1;
                if pid == root {
                    root_status = Some(128 + sig as i32);
                }
                continue;
            }
            WaitStatus::PtraceEvent(pid, _, event) => {
                if event == libc::PTRACE_EVENT_CLONE
                    || event == libc::PTRACE_EVENT_FORK
                    || event == libc::PTRACE_EVENT_VFORK
                {
                    live += 1;
                } else if event == libc::PTRACE_EVENT_EXEC {
                    tasks.remove(&pid);
                    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
                    if pid != root && exe.as_deref() != Some(binary.as_path()) {
                        // A container's process: no berth code runs in it now.
                        let _ = ptrace::detach(pid, None);
                        live -= 1;
                        continue;
                    }
                }
                (pid, None)
            }
            WaitStatus::Stopped(pid, sig) => {
                let pass = match sig {
                    nix::sys::signal::SIGTRAP | nix::sys::signal::SIGSTOP => None,
                    other => Some(other),
                };
                (pid, pass)
            }
            _ => continue,
        };
        if root_status.is_some() && !descendants {
            // The command is done; what it left running goes on untraced.
            let _ = ptrace::detach(pid, signal);
            live -= 1;
            continue;
        }
        if signal.is_none() {
            if let Ok(regs) = ptrace::getregs(pid) {
                steps += 1;
                let task = tasks.entry(pid).or_insert_with(|| Task::of(pid, &binary));
                let at = regs.rip;
                if let Some(m) = task.maps.iter().find(|m| (m.start..m.end).contains(&at)) {
                    let into = match task.shim {
                        true => &mut seen.shim,
                        false => &mut seen.command,
                    };
                    into.insert(at - m.start + m.offset);
                }
            }
        }
        if ptrace::step(pid, signal).is_err() {
            // Gone between the stop and the step (killed): its exit is
            // reported, or it was not ours to count.
            continue;
        }
    }
    drop(opener);
    let _ = child.wait_with_output();
    match root_status {
        Some(0) => Ok((seen, steps)),
        other => bail!("the command exited with {other:?}"),
    }
}

/// Creates a gate file once no traced task has stopped for
/// [`GATE_AFTER`]; stops watching when dropped.
struct GateOpener {
    start: Instant,
    /// When a traced task last stopped, in ms since `start`.
    last_stop: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl GateOpener {
    fn new(gate: &Path) -> GateOpener {
        let start = Instant::now();
        let last_stop = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (last_stop, done, gate) = (last_stop.clone(), done.clone(), gate.to_path_buf());
            std::thread::spawn(move || {
                while !done.load(Relaxed) {
                    std::thread::sleep(GATE_AFTER / 10);
                    // A stop may be stored after `elapsed` was read.
                    let idle = (start.elapsed().as_millis() as u64)
                        .saturating_sub(last_stop.load(Relaxed));
                    if idle >= GATE_AFTER.as_millis() as u64 {
                        let _ = std::fs::write(&gate, b"");
                        return;
                    }
                }
            })
        };
        GateOpener {
            start,
            last_stop,
            done,
            watcher: Some(watcher),
        }
    }

    /// A traced task stopped now.
    fn stopped(&self) {
        self.last_stop
            .store(self.start.elapsed().as_millis() as u64, Relaxed);
    }
}

impl Drop for GateOpener {
    fn drop(&mut self) {
        self.done.store(true, Relaxed);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}

/// The executable mappings of `binary` in task `pid`.
fn binary_mappings(pid: Pid, binary: &Path) -> Vec<Mapping> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let range = f.next()?;
            let perms = f.next()?;
            let offset = u64::from_str_radix(f.next()?, 16).ok()?;
            let path = f.nth(2)?;
            if !perms.contains('x') || Path::new(path) != binary {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                offset,
            })
        })
        .collect()
}

/// A `PT_LOAD` segment: where its file bytes land in memory.
struct Segment {
    offset: u64,
    vaddr: u64,
    size: u64,
}

/// The loadable segments of a 64-bit little-endian ELF file.
fn load_segments(elf: &[u8]) -> Result<Vec<Segment>> {
    ensure!(
        elf.len() > 64 && &elf[..4] == b"\x7fELF" && elf[4] == 2 && elf[5] == 1,
        "not a 64-bit little-endian ELF file"
    );
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap_or_default());
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    ensure!(
        phoff + phentsize * phnum <= elf.len(),
        "program headers out of bounds"
    );
    Ok((0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&h| u32::from_le_bytes([elf[h], elf[h + 1], elf[h + 2], elf[h + 3]]) == 1)
        .map(|h| Segment {
            offset: u64_at(h + 8),
            vaddr: u64_at(h + 16),
            size: u64_at(h + 32),
        })
        .collect())
}

/// A function symbol.
struct Symbol {
    addr: u64,
    size: u64,
    name: String,
}

/// The binary's function symbols, by address (from `nm`, which every
/// machine with a C toolchain has).
fn function_symbols(binary: &Path) -> Result<Vec<Symbol>> {
    let out = Command::new("nm")
        .args(["--defined-only", "-S"])
        .arg(binary)
        .output()
        .context("running nm")?;
    ensure!(out.status.success(), "nm failed");
    let mut symbols: Vec<Symbol> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [addr, size, kind, name] if matches!(*kind, "t" | "T" | "w" | "W") => {
                    Some(Symbol {
                        addr: u64::from_str_radix(addr, 16).ok()?,
                        size: u64::from_str_radix(size, 16).ok()?,
                        name: (*name).to_string(),
                    })
                }
                _ => None,
            }
        })
        .collect();
    symbols.sort_by_key(|s| s.addr);
    Ok(symbols)
}

/// The Rust patterns of `list` (a `cli/hot-text.txt`) that name no
/// function of `binary`: code renamed or gone since the trace, whose
/// replacement sits in cold `.text` until the list is regenerated. The C
/// library's members are not counted.
pub fn stale_patterns(list: &str, binary: &Path) -> Result<Vec<String>> {
    let present: HashSet<String> = function_symbols(binary)?
        .iter()
        .map(|s| pattern(&s.name))
        .collect();
    Ok(list
        .lines()
        .filter(|l| l.starts_with("_R") && !present.contains(*l))
        .map(str::to_owned)
        .collect())
}

/// A symbol as a pattern that matches it in later builds: in v0 names the
/// crate disambiguators (`Cs…_`) and the back-references (`B…_`, offsets
/// that move when a disambiguator's length does) become `*`. Other names
/// (the C library's) stay as they are. A `B` or `Cs` inside an identifier
/// may be taken for one too: the pattern is then a little wider, which
/// costs nothing.
pub fn pattern(name: &str) -> String {
    if !name.starts_with("_R") {
        return name.to_string();
    }
    // Local functions LTO made global carry a per-build `.llvm.<hash>`.
    let (name, llvm_suffix) = match name.find(".llvm.") {
        Some(at) => (&name[..at], true),
        None => (name, false),
    };
    let b = name.as_bytes();
    // The end of a base-62 number `[0-9a-zA-Z]*_` starting at `from`.
    let base62_end = |from: usize| {
        let run = b[from..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .count();
        (b.get(from + run) == Some(&b'_')).then_some(from + run + 1)
    };
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < b.len() {
        // Right after a length prefix an identifier starts: copy it as is.
        let starts_identifier = i > 0 && b[i - 1].is_ascii_digit();
        if !starts_identifier {
            if b[i] == b'C' && b.get(i + 1) == Some(&b's') {
                if let Some(end) = base62_end(i + 2) {
                    out.push_str("Cs*_");
                    i = end;
                    continue;
                }
            }
            if b[i] == b'B' {
                if let Some(end) = base62_end(i + 1) {
                    out.push_str("B*_");
                    i = end;
                    continue;
                }
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    if llvm_suffix {
        out.push_str(".llvm.*");
    }
    out
}

/// For each function of the static C libraries, the archive members that
/// define it, as `libc.a:memcpy.o`: their code is in sections named after
/// the file, so the member is what a linker script can place.
fn c_library_members() -> Result<HashMap<String, Vec<String>>> {
    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    for lib in ["libc.a", "libm.a"] {
        let out = Command::new("cc")
            .arg(format!("-print-file-name={lib}"))
            .output()?;
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !path.is_absolute() {
            continue;
        }
        for archive in archives(&path) {
            let Ok(out) = Command::new("nm")
                .args(["-A", "--defined-only"])
                .arg(&archive)
                .output()
            else {
                continue;
            };
            let name = archive_pattern(&archive);
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                let [location, kind, function] = f.as_slice() else {
                    continue;
                };
                if !matches!(*kind, "T" | "t" | "W" | "w" | "i") {
                    continue;
                }
                // `archive:member:address`
                if let Some(member) = location.rsplit(':').nth(1) {
                    let entry = format!("{name}:{member}");
                    let files = members.entry((*function).to_string()).or_default();
                    if !files.contains(&entry) {
                        files.push(entry);
                    }
                }
            }
        }
    }
    Ok(members)
}

/// The archives `path` stands for: itself, or those its linker script
/// names (`GROUP ( /usr/lib/…/libm-2.36.a /usr/lib/…/libmvec.a )`, as
/// glibc installs `libm.a`).
fn archives(path: &Path) -> Vec<PathBuf> {
    let Ok(head) = std::fs::read(path) else {
        return Vec::new();
    };
    if head.starts_with(b"!<arch>") {
        return vec![path.to_path_buf()];
    }
    let text = String::from_utf8_lossy(&head);
    text.split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| w.ends_with(".a"))
        .map(|w| match Path::new(w) {
            p if p.is_absolute() => p.to_path_buf(),
            p => path.parent().unwrap_or(Path::new("/")).join(p),
        })
        .filter(|p| p.is_file())
        .collect()
}

/// How the list names an archive: its file name, with a version in it as
/// `*` (`libm-2.36.a` is `libm*.a`), so that another glibc still matches.
fn archive_pattern(archive: &Path) -> String {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.split_once('-') {
        Some((stem, rest))
            if rest.starts_with(|c: char| c.is_ascii_digit()) && rest.ends_with(".a") =>
        {
            format!("{stem}*.a")
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::{
        archive_pattern, is_shim, layout, pattern, size_units, stale_patterns, windows, Symbol,
        Unit, HEADER,
    };
    use std::collections::HashMap;
    use std::path::Path;

    #[test]
    fn a_listed_function_that_no_longer_exists_is_stale() {
        // This test binary's own functions; the list's C library members
        // are never counted.
        let exe = std::env::current_exe().unwrap();
        let listed = "# a group\n_RNvCs*_5berth14no_such_function\nlibc.a:memcpy.o\n";
        let stale = stale_patterns(listed, &exe).unwrap();
        assert_eq!(stale, ["_RNvCs*_5berth14no_such_function"]);
        let present = super::function_symbols(&exe)
            .unwrap()
            .into_iter()
            .map(|s| pattern(&s.name))
            .find(|p| p.starts_with("_R"))
            .expect("this test binary has v0-mangled Rust functions");
        assert!(
            stale_patterns(&present, &exe).unwrap().is_empty(),
            "{present}"
        );
    }

    #[test]
    fn a_versioned_archive_is_named_for_any_version() {
        assert_eq!(
            archive_pattern(Path::new("/usr/lib/libm-2.36.a")),
            "libm*.a"
        );
        assert_eq!(archive_pattern(Path::new("/usr/lib/libc.a")), "libc.a");
        assert_eq!(archive_pattern(Path::new("libmvec.a")), "libmvec.a");
    }

    #[test]
    fn the_checked_in_list_names_nothing_build_specific() {
        let path = crate::ci::workspace_root().join("cli/hot-text.txt");
        let list = std::fs::read_to_string(path).unwrap();
        assert!(list.starts_with(HEADER), "the list lost its header");
        let lines: Vec<&str> = list.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(lines.len() > 100, "{} lines", lines.len());
        for line in lines {
            // A raw symbol (a crate hash, an `.llvm.` number) would match
            // only the build it came from.
            assert_eq!(pattern(line), line, "not normalized");
            assert!(
                line.starts_with("_R") || line.contains(".a:") || !line.contains('*'),
                "{line}"
            );
        }
    }

    #[test]
    fn code_one_command_runs_is_kept_out_of_the_windows_of_the_others() {
        const KIB: u64 = 1024;
        // Command 0 runs everything; command 1 only the two `shared` ones,
        // which by name would lie on either side of `b_only_0`.
        let units: HashMap<String, Unit> = [
            ("a_shared", 0b11, 30 * KIB),
            ("b_only_0", 0b01, 200 * KIB),
            ("c_shared", 0b11, 30 * KIB),
        ]
        .into_iter()
        .map(|(n, commands, size)| (n.to_string(), Unit { commands, size }))
        .collect();
        let by_name: Vec<Unit> = ["a_shared", "b_only_0", "c_shared"]
            .iter()
            .map(|n| units[*n])
            .collect();
        assert_eq!(windows(&by_name, 0b10), 3);
        let order = layout(&units);
        assert_eq!(order.len(), 3);
        let laid_out: Vec<Unit> = order.iter().map(|n| units[n]).collect();
        assert_eq!(windows(&laid_out, 0b10), 1, "{order:?}");
        assert_eq!(windows(&laid_out, 0b01), 5, "{order:?}");
    }

    #[test]
    fn a_shim_is_told_from_the_command_that_started_it() {
        assert!(is_shim(
            b"/usr/bin/berth\0shim\0--request\0/run/berth/x/shim.json\0"
        ));
        assert!(!is_shim(
            b"/usr/bin/berth\0--root\0/run/berth\0run\0-d\0shim\0"
        ));
        assert!(!is_shim(b"/usr/bin/berth\0"));
        assert!(!is_shim(b""));
    }

    #[test]
    fn a_unit_is_as_large_as_all_the_code_it_places() {
        let sym = |addr, size, name: &str| Symbol {
            addr,
            size,
            name: name.to_string(),
        };
        // Two instances of one function (crate hashes differ), an alias of
        // the first, and a C library function of member `m.o`.
        let symbols = [
            sym(0x10, 5, "_RNvCsAAA_3foo3bar"),
            sym(0x10, 5, "_RNvCsAAA_3foo3baz"),
            sym(0x20, 7, "_RNvCsBBB_3foo3bar"),
            sym(0x30, 3, "memcpy"),
        ];
        let members: HashMap<String, Vec<String>> =
            [("memcpy".to_string(), vec!["libc.a:m.o".to_string()])].into();
        let mut units: HashMap<String, Unit> = ["_RNvCs*_3foo3bar", "libc.a:m.o"]
            .into_iter()
            .map(|n| {
                (
                    n.to_string(),
                    Unit {
                        commands: 1,
                        size: 0,
                    },
                )
            })
            .collect();
        size_units(&mut units, &symbols, &members);
        assert_eq!(units["_RNvCs*_3foo3bar"].size, 12);
        assert_eq!(units["libc.a:m.o"].size, 3);
    }

    #[test]
    fn build_specific_parts_of_v0_names_become_wildcards() {
        assert_eq!(
            pattern("_RNvCsfLfy6EI15iL_7___rustc12___rust_alloc"),
            "_RNvCs*_7___rustc12___rust_alloc"
        );
        assert_eq!(
            pattern("_RINvNvMs2_NtCslNYArtu3iFV_5alloc7raw_vecINtB8_11RawVecInnerpE7reserveB1a_"),
            "_RINvNvMs2_NtCs*_5alloc7raw_vecINtB*_11RawVecInnerpE7reserveB*_"
        );
        // `B` and `Cs` inside identifiers are names, not references.
        assert_eq!(pattern("_RNvCsab_5crate6Bcd_Cs"), "_RNvCs*_5crate6Bcd_Cs");
        assert_eq!(pattern("memcpy"), "memcpy");
        assert_eq!(
            pattern("_RNvNtCsjrHSEGnQ3l9_3std7current12init_current.llvm.3643936799275306673"),
            "_RNvNtCs*_3std7current12init_current.llvm.*"
        );
    }
}
