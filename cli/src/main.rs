//! `berth`: the runtime commands; image commands run in `berth-images`
//! (see the `berth_cli` crate).

fn main() -> std::process::ExitCode {
    berth_cli::main::<berth_cli::Delegated>()
}
