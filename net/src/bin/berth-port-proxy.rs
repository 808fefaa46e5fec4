//! `berth-port-proxy port-proxy SPEC`: the userland proxy that berth-net
//! starts for published ports on `[::1]` (see `Settings::port_proxy`), for
//! programs that embed berth-net without the `berth` binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match &args[..] {
        [sub, spec] if sub == "port-proxy" => berth_net::port_proxy_main(spec),
        _ => {
            eprintln!("usage: berth-port-proxy port-proxy SPEC (started by berth-net)");
            ExitCode::from(2)
        }
    }
}
