//! The common `main` of both binaries.

use std::process::ExitCode;

use clap::Parser;

use crate::{cli, commands, log};

/// Parses the command line and runs the command, with the image commands
/// as `I` has them.
pub fn main<I: commands::Images>() -> ExitCode {
    // The image store's helper unshares a user namespace: it must start
    // with one thread, and takes its own arguments.
    if I::IN_PROCESS {
        let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if raw.get(1).is_some_and(|a| a == berth_image::HELPER_COMMAND) {
            return berth_image::helper_main(&raw[2..]);
        }
    }
    let args = cli::Cli::parse();
    // The port proxy forks: it must start with one thread, and before
    // anything is opened.
    if let Some(cli::Command::PortProxy(p)) = &args.command {
        return berth_net::port_proxy_main(&p.spec);
    }
    if !I::IN_PROCESS && commands::needs_images(&args) {
        return commands::exec_images(&args);
    }
    // The shim runs its own (single-threaded) async runtime.
    if let Some(cli::Command::Shim(s)) = &args.command {
        // What a detached container may ask of extensions: the same as
        // `create` offers (a request carries the settings).
        let extensions: Vec<std::sync::Arc<dyn berth::extension::Extension>> = vec![
            std::sync::Arc::new(berth_net::Networks::default()),
            std::sync::Arc::new(berth_image::Snapshots::default()),
        ];
        let code = berth::shim::run_shim(&s.request, extensions);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let preserve = match &args.command {
        Some(cli::Command::Create(c)) => c.flags.preserve_fds,
        Some(cli::Command::Run(r)) => r.flags.preserve_fds,
        Some(cli::Command::Exec(e)) => e.preserve_fds,
        _ => 0,
    };
    reserve_preserved_fds(preserve);
    // Ours from here on, before the async runtime opens anything.
    let preserved = berth::take_preserved_fds(preserve);
    let logger = log::Logger::new(&args.global);
    // One thread: a command drives one container at a time, and worker
    // threads only add start-up time, wake-ups between threads and memory.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            logger.error(&format!("starting the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let preserved = match preserved {
        Ok(fds) => fds,
        Err(e) => {
            logger.error(&format!("--preserve-fds {preserve}: {e}"));
            return ExitCode::FAILURE;
        }
    };
    // The same thread makes berth's blocking calls: the pool's threads
    // would only add their start-up, stacks, malloc arenas and wake-ups.
    match rt.block_on(berth::blocking::on_caller(commands::run::<I>(
        args, preserved,
    ))) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            logger.error(&e.to_string());
            ExitCode::FAILURE
        }
    }
}

/// Fills the gaps the caller left in `3..3+n` with `/dev/null` before this
/// process opens anything, so that none of its own descriptors (the async
/// runtime's, the exec FIFO, sockets) can take one of those numbers and be
/// handed to the container with `--preserve-fds`.
fn reserve_preserved_fds(n: u32) {
    for fd in 3..3 + n.min(65_536) {
        if std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok() {
            continue;
        }
        // The lowest free number: this gap, as every lower one is taken.
        match std::fs::File::open("/dev/null") {
            Ok(null) => std::mem::forget(null),
            Err(_) => return,
        }
    }
}
