//! Project automation for berth, run as `cargo xtask <command>` (the alias
//! lives in `.cargo/config.toml`).

mod bench_compare;
mod bundle;
mod ci;
mod fuzz;
mod rootfs;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// berth's project automation.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about, version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the small test rootfs (static busybox, or host binaries) in DIR.
    Rootfs {
        /// Directory to build the rootfs in (created if missing).
        dir: PathBuf,
    },
    /// Make an OCI bundle: DIR/rootfs and a runc-like DIR/config.json.
    Bundle {
        /// Bundle directory (created if missing).
        dir: PathBuf,
        /// The container's command; `sh` when none is given.
        #[arg(last = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// Time `run` of /bin/true with berth, crun and runc, interleaved, with
    /// peak RSS; writes JSON and an SVG chart to target/bench-compare/.
    BenchCompare {
        /// Measured runs per runtime.
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// A previous results JSON to compare with.
        #[arg(long, value_name = "JSON")]
        compare: Option<PathBuf>,
        /// Use the existing target/release/berth instead of building it.
        #[arg(long)]
        skip_build: bool,
        /// Another berth binary (e.g. built before a change) to time in the
        /// same interleaving, as `berth-baseline`.
        #[arg(long, value_name = "BERTH")]
        baseline: Option<PathBuf>,
    },
    /// Run the CI checks of .ci/run (fmt, clippy, tests), without installing packages.
    Ci,
    /// Run the cargo-fuzz targets of fuzz/ (all in turn, or TARGET) on the
    /// stable toolchain (RUSTC_BOOTSTRAP=1), seeding each corpus from
    /// fuzz/seeds/; installs cargo-fuzz if missing.
    Fuzz {
        /// The target to run (a file of fuzz/fuzz_targets/); all when omitted.
        target: Option<String>,
        /// How long to fuzz each target, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// More libFuzzer flags (after `--`), e.g. `-jobs=2`.
        #[arg(last = true, value_name = "LIBFUZZER_ARGS")]
        libfuzzer_args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Rootfs { dir } => rootfs::run(&dir),
        Command::Bundle { dir, cmd } => bundle::run(&dir, &cmd),
        Command::BenchCompare {
            runs,
            compare,
            skip_build,
            baseline,
        } => bench_compare::run(runs, compare.as_deref(), skip_build, baseline.as_deref()),
        Command::Ci => ci::run(),
        Command::Fuzz {
            target,
            seconds,
            libfuzzer_args,
        } => fuzz::run(target.as_deref(), seconds, &libfuzzer_args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bundle_takes_a_command_after_double_dash() {
        let cli = Cli::try_parse_from(["xtask", "bundle", "b", "--", "echo", "-n", "hi"]).unwrap();
        match cli.command {
            Command::Bundle { dir, cmd } => {
                assert_eq!(dir, PathBuf::from("b"));
                assert_eq!(cmd, ["echo", "-n", "hi"]);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["xtask", "bundle", "b"]).unwrap();
        assert!(matches!(cli.command, Command::Bundle { cmd, .. } if cmd.is_empty()));
    }
}
