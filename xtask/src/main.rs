//! Project automation for berth, run as `cargo xtask <command>` (the alias
//! lives in `.cargo/config.toml`).

mod bench_compare;
mod bundle;
mod ci;
mod dist;
mod floor;
mod fuzz;
mod hot_text;
mod public_api;
mod rootfs;
mod vm_test;

use berth_vm_tests::{CgroupMode, KernelSeries};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

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
        /// Use the existing target/dist/berth instead of building it.
        #[arg(long)]
        skip_build: bool,
        /// Another berth binary (e.g. built before a change) to time in the
        /// same interleaving, as `berth-baseline`.
        #[arg(long, value_name = "BERTH")]
        baseline: Option<PathBuf>,
        /// Run the bundle without its seccomp profile (the default is the
        /// fixtures' Docker-like profile).
        #[arg(long)]
        no_seccomp: bool,
    },
    /// The kernel's own cost of the benches' container lifecycle: a C
    /// program making the same syscalls, with no runtime
    /// (benches/floor/lifecycle_floor.c). Root.
    Floor {
        /// Lifecycles at a time, each on a thread of its own.
        #[arg(long, default_value_t = 1)]
        in_flight: usize,
        /// Lifecycles measured, after a warm-up of `in_flight`.
        #[arg(long, default_value_t = 2000)]
        count: usize,
    },
    /// Build the runtime binary as shipped: static, with the functions the
    /// runtime commands execute placed together (cli/hot-text.txt), into
    /// target/dist/berth.
    Dist,
    /// Trace the runtime commands one instruction at a time and write the
    /// functions they execute to cli/hot-text.txt (root; ~45 minutes).
    HotText {
        /// Where to write the list instead.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Lay out again what the last trace found (target/hot-text/units.tsv)
        /// instead of tracing.
        #[arg(long)]
        relayout: bool,
    },
    /// Print the public surface of a published crate (berth, berth-net,
    /// berth-image), one item a line, as the public-API snapshot test sees
    /// it.
    PublicApi {
        /// The crate.
        #[arg(default_value = "berth")]
        krate: String,
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
    /// Run the sdk integration tests and the conformance tests inside QEMU
    /// guests (TCG), for each kernel series × cgroup mode, and print the
    /// matrix. Fails when a cell fails. Needs qemu-system-x86 and
    /// busybox-static (scripts/install-deps.sh); fetches missing kernels.
    VmTest(VmTestArgs),
}

#[derive(Debug, clap::Args)]
struct VmTestArgs {
    /// Kernel series to boot (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "5.10,6.1,6.12,7.3")]
    kernel: Vec<KernelSeries>,
    /// cgroup modes the guest's init sets up (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "v1,v2")]
    cgroup: Vec<CgroupMode>,
    /// Guests to run at the same time.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Run only the tests whose name contains TEST (libtest's filter).
    #[arg(long, value_name = "TEST")]
    filter: Option<String>,
    /// libtest --test-threads in the guest (default: the guest's CPUs).
    #[arg(long)]
    test_threads: Option<u32>,
    /// CPUs per guest.
    #[arg(long, default_value_t = 2)]
    cpus: u32,
    /// Memory per guest, in MiB.
    #[arg(long, default_value_t = 2048)]
    memory: u32,
    /// Kill a guest after this many seconds (its cell fails).
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// PROPTEST_CASES for the conformance properties in the guest.
    #[arg(long, default_value_t = 32)]
    proptest_cases: u32,
    /// More environment for the test binaries in the guest, e.g.
    /// `--guest-env BERTH_CONFORMANCE_SABOTAGE=hostname` (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    guest_env: Vec<(String, String)>,
    /// Look for newer kernels in Debian's package lists even if the cache
    /// has one of each series.
    #[arg(long)]
    refresh: bool,
    /// Force berth's fallbacks for kernels without clone3 (so also without
    /// CLONE_INTO_CGROUP) and openat2: `off`, `on`, or `both` (each cell twice).
    #[arg(long, value_enum, default_value_t = Fallbacks::Off)]
    fallbacks: Fallbacks,
    /// Make a test in every guest fail on purpose with MESSAGE, to see a
    /// failing cell: non-zero exit, the test's output after the matrix.
    #[arg(long, value_name = "MESSAGE", num_args = 0..=1, default_missing_value = "asked for with --inject-failure")]
    inject_failure: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Fallbacks {
    Off,
    On,
    Both,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        // The chain of causes, without the backtrace anyhow would add under
        // RUST_BACKTRACE=1: every error here says what failed.
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Rootfs { dir } => rootfs::run(&dir),
        Command::Bundle { dir, cmd } => bundle::run(&dir, &cmd),
        Command::BenchCompare {
            runs,
            compare,
            skip_build,
            baseline,
            no_seccomp,
        } => bench_compare::run(
            runs,
            compare.as_deref(),
            skip_build,
            baseline.as_deref(),
            no_seccomp,
        ),
        Command::Ci => ci::run(),
        Command::Floor { in_flight, count } => floor::run(in_flight, count),
        Command::Dist => dist::build(&ci::workspace_root()).map(drop),
        Command::HotText { out, relayout } => hot_text::run(out.as_deref(), relayout),
        Command::PublicApi { krate } => {
            let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .ok_or_else(|| anyhow::anyhow!("no workspace"))?;
            print!("{}", public_api::surface(workspace, &krate)?);
            Ok(())
        }
        Command::Fuzz {
            target,
            seconds,
            libfuzzer_args,
        } => fuzz::run(target.as_deref(), seconds, &libfuzzer_args),
        Command::VmTest(a) => vm_test::run(&vm_test::Options {
            kernels: a.kernel,
            modes: a.cgroup,
            jobs: a.jobs,
            filter: a.filter,
            test_threads: a.test_threads,
            cpus: a.cpus,
            memory_mib: a.memory,
            timeout: Duration::from_secs(a.timeout),
            proptest_cases: a.proptest_cases,
            guest_env: a.guest_env,
            refresh: a.refresh,
            inject_failure: a.inject_failure,
            fallbacks: match a.fallbacks {
                Fallbacks::Off => vec![false],
                Fallbacks::On => vec![true],
                Fallbacks::Both => vec![false, true],
            },
        }),
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
