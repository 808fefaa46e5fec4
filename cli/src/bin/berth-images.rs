//! `berth-images`: every `berth` command, image ones included (`berth`
//! runs it for those; see the `berth_cli` crate).

fn main() -> std::process::ExitCode {
    berth_cli::main::<berth_cli::InProcess>()
}
