//! `cargo xtask fuzz [TARGET] [--seconds N]`: runs the cargo-fuzz targets
//! of `fuzz/` on the stable toolchain.
//!
//! cargo-fuzz needs nightly-only flags (`-Zsanitizer=address`, ...); the
//! stable compiler accepts them with `RUSTC_BOOTSTRAP=1`, which this sets.
//! The working corpus `fuzz/corpus/<target>/` (not committed) is seeded
//! from the committed `fuzz/seeds/<target>/` before each run; the same
//! seeds run as an ordinary test in `conformance/tests/fuzz_seeds.rs`.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// What one run of a target printed at the end.
#[derive(Debug, Default)]
struct Stats {
    /// The last libFuzzer status line (`#N DONE cov: ... exec/s: ...`).
    last_status: Option<String>,
    /// `stat::number_of_executed_units`.
    execs: Option<u64>,
    /// `stat::average_exec_per_sec`.
    exec_per_sec: Option<u64>,
}

impl Stats {
    /// Takes what it needs from one line of libFuzzer's output.
    fn feed(&mut self, line: &str) {
        let num = |key: &str| {
            line.strip_prefix(key)
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if line.starts_with('#') && line.contains(" cov: ") {
            self.last_status = Some(line.trim().to_string());
        } else if let Some(n) = num("stat::number_of_executed_units:") {
            self.execs = Some(n);
        } else if let Some(n) = num("stat::average_exec_per_sec:") {
            self.exec_per_sec = Some(n);
        }
    }
}

/// Runs `target` (every target in turn when `None`) for `seconds` each,
/// passing `extra` on to libFuzzer.
pub fn run(target: Option<&str>, seconds: u64, extra: &[String]) -> Result<()> {
    let fuzz_dir = fuzz_dir();
    let all = targets(&fuzz_dir)?;
    let chosen: Vec<String> = match target {
        Some(t) if all.iter().any(|a| a == t) => vec![t.to_string()],
        Some(t) => bail!("no fuzz target {t:?}; the targets are: {}", all.join(", ")),
        None => all,
    };
    ensure_cargo_fuzz()?;

    let mut summary = Vec::new();
    let mut failed = Vec::new();
    for t in &chosen {
        let corpus = seed_corpus(&fuzz_dir, t)?;
        println!("--- cargo fuzz run {t} (for {seconds}s)");
        let started = Instant::now();
        let (ok, stats) = fuzz_one(&fuzz_dir, t, &corpus, seconds, extra)?;
        let secs = started.elapsed().as_secs();
        let line = format!(
            "{t}: {} after {secs}s wall, {} execs, {} exec/s; last status: {}",
            if ok { "ok" } else { "FAILED" },
            stats.execs.map_or("?".into(), |n| n.to_string()),
            stats.exec_per_sec.map_or("?".into(), |n| n.to_string()),
            stats.last_status.as_deref().unwrap_or("none"),
        );
        println!("{line}");
        summary.push(line);
        if !ok {
            failed.push(t.clone());
        }
    }
    println!("--- fuzz summary");
    for line in &summary {
        println!("{line}");
    }
    if !failed.is_empty() {
        bail!(
            "fuzz target(s) failed: {} (crash inputs are in fuzz/artifacts/)",
            failed.join(", ")
        );
    }
    Ok(())
}

/// `fuzz/`, next to this crate.
fn fuzz_dir() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).join("fuzz")
}

/// The targets: the files of `fuzz/fuzz_targets/`, sorted.
fn targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem() {
                out.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Installs cargo-fuzz unless `cargo fuzz` already runs.
fn ensure_cargo_fuzz() -> Result<()> {
    let cargo = cargo();
    let present = Command::new(&cargo)
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("--- cargo install cargo-fuzz --locked");
    let status = Command::new(&cargo)
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("running cargo install cargo-fuzz")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed: {status}");
    }
    Ok(())
}

/// Copies `fuzz/seeds/<target>/*` into the working corpus
/// `fuzz/corpus/<target>/` (created if missing; what the fuzzer found
/// there before is kept) and returns the corpus directory.
fn seed_corpus(fuzz_dir: &Path, target: &str) -> Result<PathBuf> {
    let corpus = fuzz_dir.join("corpus").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let seeds = fuzz_dir.join("seeds").join(target);
    if let Ok(entries) = std::fs::read_dir(&seeds) {
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                let to = corpus.join(entry.file_name());
                std::fs::copy(entry.path(), &to).with_context(|| {
                    format!("copying {} to {}", entry.path().display(), to.display())
                })?;
            }
        }
    }
    Ok(corpus)
}

/// Runs one target, echoing libFuzzer's output and keeping its figures.
fn fuzz_one(
    fuzz_dir: &Path,
    target: &str,
    corpus: &Path,
    seconds: u64,
    extra: &[String],
) -> Result<(bool, Stats)> {
    let mut child = Command::new(cargo())
        .current_dir(fuzz_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .arg("fuzz")
        .arg("run")
        .arg(target)
        .arg(corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo fuzz run")?;
    let mut stats = Stats::default();
    if let Some(stderr) = child.stderr.take() {
        let mut out = std::io::stderr().lock();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            stats.feed(&line);
            let _ = writeln!(out, "{line}");
        }
    }
    let status = child.wait().context("waiting for cargo fuzz run")?;
    Ok((status.success(), stats))
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_seeds() {
        let dir = fuzz_dir();
        let all = targets(&dir).unwrap();
        assert!(all.len() >= 5, "{all:?}");
        for t in all {
            let seeds = dir.join("seeds").join(&t);
            let n = std::fs::read_dir(&seeds)
                .map(|d| d.count())
                .unwrap_or_default();
            assert!(n > 0, "no seeds in {}", seeds.display());
        }
    }

    #[test]
    fn reads_libfuzzer_figures() {
        let mut s = Stats::default();
        for line in [
            "#1024\tpulse  cov: 10 ft: 20 corp: 3/30b exec/s: 512 rss: 40Mb",
            "#2048\tDONE   cov: 12 ft: 24 corp: 4/40b lim: 4 exec/s: 1024 rss: 41Mb",
            "Done 2048 runs in 2 second(s)",
            "stat::number_of_executed_units: 2048",
            "stat::average_exec_per_sec:     1024",
        ] {
            s.feed(line);
        }
        assert_eq!(s.execs, Some(2048));
        assert_eq!(s.exec_per_sec, Some(1024));
        assert!(s.last_status.unwrap().contains("DONE   cov: 12 ft: 24"));
    }
}
