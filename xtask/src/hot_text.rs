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

/// The list's header; the rest is one symbol pattern a line.
const HEADER: &str = "\
# Functions the runtime commands execute, placed together in the dist
# build's `.text.hot` (see cli/build.rs). Written by `cargo xtask hot-text`
# from a ptrace single-step trace of run, create, start, state, kill, delete
# and list; `*` stands for what differs between builds. Regenerate after a
# change that moves the hot path; a stale line only costs resident memory.
";

/// Entry point: builds the dist binary, traces the commands, writes the list.
pub fn run(out: Option<&Path>) -> Result<()> {
    ensure!(
        nix::unistd::geteuid().is_root(),
        "hot-text runs containers: run it as root"
    );
    let root = crate::ci::workspace_root();
    let berth = crate::dist::build(&root)?;
    let out = out.map_or_else(|| root.join("cli/hot-text.txt"), Path::to_path_buf);

    let base = root.join("target/hot-text");
    let bundle = base.join("bundle");
    let plain = base.join("bundle-no-seccomp");
    if !bundle.join("rootfs/bin/sh").exists() {
        berth_fixtures::bundle::create(&bundle, &["/bin/true".to_string()])?;
    }
    let spec = berth_fixtures::bundle::spec(&["/bin/true".to_string()]);
    berth_fixtures::bundle::write_config(&bundle, &spec)?;
    crate::bench_compare::without_seccomp(&bundle, &plain)?;
    // The container `create` makes must still run when `kill` comes.
    let sleeper = base.join("bundle-sleep");
    crate::bench_compare::with_args(&bundle, &sleeper, &["sleep", "100000"])?;

    let state = PathBuf::from(format!("/run/berth-hot-text-{}", std::process::id()));
    let result = trace_commands(&berth, &state, &bundle, &plain, &sleeper);
    // Whatever the trace left (a failed command), the CLI removes.
    let _ = Command::new(&berth)
        .arg("--root")
        .arg(&state)
        .args(["delete", "--force", "ht-detached"])
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(&state);
    let offsets = result?;

    let elf = std::fs::read(&berth).with_context(|| format!("reading {}", berth.display()))?;
    let segments = load_segments(&elf)?;
    let symbols = function_symbols(&berth)?;
    let mut hit = BTreeSet::new();
    let mut bytes = 0u64;
    for off in offsets {
        let Some(addr) = segments
            .iter()
            .find(|s| (s.offset..s.offset + s.size).contains(&off))
            .map(|s| off - s.offset + s.vaddr)
        else {
            continue;
        };
        let i = symbols.partition_point(|s| s.addr <= addr);
        let Some(sym) = i.checked_sub(1).map(|i| &symbols[i]) else {
            continue;
        };
        if addr >= sym.addr + sym.size.max(1) || hit.contains(&sym.name) {
            continue;
        }
        bytes += sym.size;
        // Functions LLVM merged share an address and one section, named
        // after one of them: list every name.
        let first = symbols.partition_point(|s| s.addr < sym.addr);
        for alias in symbols[first..i].iter() {
            hit.insert(alias.name.clone());
        }
    }
    let members = c_library_members()?;
    let mut patterns = BTreeSet::new();
    for name in &hit {
        match members.get(name.as_str()) {
            Some(files) => patterns.extend(files.iter().cloned()),
            None => {
                patterns.insert(pattern(name));
            }
        }
    }
    let mut text = HEADER.to_string();
    for p in &patterns {
        text.push_str(p);
        text.push('\n');
    }
    std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{} functions executed, {} KiB; {} patterns written to {}",
        hit.len(),
        bytes / 1024,
        patterns.len(),
        out.display()
    );
    Ok(())
}

/// Runs each command under the tracer; returns the union of the binary's
/// file offsets executed.
fn trace_commands(
    berth: &Path,
    state: &Path,
    bundle: &Path,
    plain: &Path,
    sleeper: &Path,
) -> Result<HashSet<u64>> {
    let cli = |args: &[&str], bundle: Option<&Path>| {
        let mut cmd = Command::new(berth);
        cmd.arg("--root").arg(state).args(args);
        if let Some(b) = bundle {
            cmd.arg("--bundle").arg(b);
        }
        cmd
    };
    let mut all = HashSet::new();
    let steps: Vec<(&str, Command)> = vec![
        ("run (seccomp)", {
            let mut c = cli(&["run"], Some(bundle));
            c.arg("ht-run");
            c
        }),
        ("run (no seccomp)", {
            let mut c = cli(&["run"], Some(plain));
            c.arg("ht-run-plain");
            c
        }),
        ("create", {
            let mut c = cli(&["create"], Some(sleeper));
            c.arg("ht-detached");
            c
        }),
        ("state", cli(&["state", "ht-detached"], None)),
        ("list", cli(&["list"], None)),
        ("start", cli(&["start", "ht-detached"], None)),
        ("kill", cli(&["kill", "ht-detached", "KILL"], None)),
        ("delete", cli(&["delete", "ht-detached"], None)),
    ];
    for (what, mut cmd) in steps {
        let (offsets, n) = trace(&mut cmd, berth).with_context(|| format!("tracing {what}"))?;
        println!("{what}: {n} instructions, {} distinct", offsets.len());
        all.extend(offsets);
    }
    Ok(all)
}

/// One executable mapping of the traced binary in a task.
#[derive(Clone, Copy)]
struct Mapping {
    start: u64,
    end: u64,
    offset: u64,
}

/// Runs `cmd` single-stepping it, its threads and its children until it
/// exits; returns the distinct file offsets of `binary` executed and the
/// number of steps. Children that exec something else, and any left once
/// the command exits (a created container's init), are detached.
fn trace(cmd: &mut Command, binary: &Path) -> Result<(HashSet<u64>, u64)> {
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
    let mut maps: HashMap<Pid, Vec<Mapping>> = HashMap::new();
    let mut seen = HashSet::new();
    let mut steps = 0u64;
    let mut live = 1usize;
    let mut root_status = None;
    ptrace::step(root, None)?;
    while live > 0 {
        let status = match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(s) => s,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ECHILD) => break,
            Err(e) => return Err(e.into()),
        };
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
                    maps.remove(&pid);
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
        if root_status.is_some() {
            // The command is done; what it left running goes on untraced.
            let _ = ptrace::detach(pid, signal);
            live -= 1;
            continue;
        }
        if signal.is_none() {
            if let Ok(regs) = ptrace::getregs(pid) {
                steps += 1;
                let m = maps
                    .entry(pid)
                    .or_insert_with(|| binary_mappings(pid, &binary));
                if let Some(m) = m.iter().find(|m| (m.start..m.end).contains(&regs.rip)) {
                    seen.insert(regs.rip - m.start + m.offset);
                }
            }
        }
        if ptrace::step(pid, signal).is_err() {
            // Gone between the stop and the step (killed): its exit is
            // reported, or it was not ours to count.
            continue;
        }
    }
    let _ = child.wait_with_output();
    match root_status {
        Some(0) => Ok((seen, steps)),
        other => bail!("the command exited with {other:?}"),
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
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !Path::new(&path).is_absolute() {
            continue;
        }
        let Ok(out) = Command::new("nm")
            .args(["-A", "--defined-only"])
            .arg(&path)
            .output()
        else {
            continue;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [location, kind, name] = f.as_slice() else {
                continue;
            };
            if !matches!(*kind, "T" | "t" | "W" | "w" | "i") {
                continue;
            }
            // `archive:member:address`
            if let Some(member) = location.rsplit(':').nth(1) {
                let entry = format!("{lib}:{member}");
                let files = members.entry((*name).to_string()).or_default();
                if !files.contains(&entry) {
                    files.push(entry);
                }
            }
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::{pattern, HEADER};

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
