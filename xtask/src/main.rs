//! Project automation for berth, run as `cargo xtask <command>` (the alias
//! lives in `.cargo/config.toml`).

mod bundle;
mod ci;
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
    /// Run the CI checks of .ci/run (fmt, clippy, tests), without installing packages.
    Ci,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Rootfs { dir } => rootfs::run(&dir),
        Command::Bundle { dir, cmd } => bundle::run(&dir, &cmd),
        Command::Ci => ci::run(),
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
