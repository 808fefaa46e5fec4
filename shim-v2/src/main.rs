//! `containerd-shim-berth-v2`: a containerd shim v2 (the task API of
//! containerd 1.6) that runs containers through the berth SDK in its own
//! process, with no runtime binary to fork per operation.
//!
//! containerd starts it as `io.containerd.berth.v2` (the binary on its
//! `PATH`). Each task's exit comes from the SDK's exit future, OOM kills
//! from its event stream, and `Stats` from its cgroup sampler.

mod containers;
mod error;
mod events;
mod io;
mod metrics;
mod options;
mod service;
mod shim;

/// The runtime name containerd knows the shim by.
const RUNTIME_ID: &str = "io.containerd.berth.v2";

fn main() {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{RUNTIME_ID}: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    // The SDK reaps its own children (through pidfds): the shim library
    // must neither reap nor make the shim a subreaper.
    let config = containerd_shim::Config {
        no_reaper: true,
        no_sub_reaper: true,
        ..Default::default()
    };
    runtime.block_on(containerd_shim::asynchronous::run::<shim::BerthShim>(
        RUNTIME_ID,
        Some(config),
    ));
    // Blocking threads may still wait on a FIFO nobody will open.
    std::process::exit(0);
}
