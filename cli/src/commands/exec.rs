//! `exec`: a process in a running container.

use std::path::PathBuf;

use berth::oci_spec::runtime::{Capabilities, Capability, LinuxCapabilitiesBuilder, Process};
use berth::{ExecOptions, Stdio};

use super::{runtime, send_console, write_pid_file, Outcome};
use crate::cli::{Exec, Global};

pub async fn exec(g: &Global, e: Exec, preserved: Vec<std::os::fd::OwnedFd>) -> Outcome {
    if e.detach {
        // Our parent (a shim, conmon) reaps the process, as with runc.
        berth::leave_children_to_parent();
    }
    let ctr = runtime(g).await?.get(&e.id).await?;
    let process = match &e.process {
        Some(path) => {
            let text = std::fs::read(path).map_err(|err| format!("{}: {err}", path.display()))?;
            let de = &mut serde_json::Deserializer::from_slice(&text);
            // Name the field, the line and the column that did not parse.
            serde_path_to_error::deserialize::<_, Process>(de)
                .map_err(|err| format!("{}: {}: {}", path.display(), err.path(), err.inner()))?
        }
        None => from_flags(ctr.spec().await?.process().clone().unwrap_or_default(), &e)?,
    };
    let terminal = process.terminal().unwrap_or(false);
    let p = ctr
        .exec(&process, {
            let mut exec_options = ExecOptions::default();
            exec_options.stdin = Stdio::Inherit;
            exec_options.stdout = Stdio::Inherit;
            exec_options.stderr = Stdio::Inherit;
            exec_options.pass_fds = preserved;
            exec_options
        })
        .await?;
    if let Some(path) = &e.pid_file {
        write_pid_file(path, p.pid())?;
    }
    let pty = if terminal { p.take_pty() } else { None };
    match (&e.console_socket, pty) {
        (Some(socket), Some(pty)) => send_console(socket, pty.into_fd())?,
        (None, Some(pty)) if !e.detach => {
            super::attach_terminal(pty);
        }
        _ => {}
    }
    if e.detach {
        return Ok(0);
    }
    let status = p.wait().await?;
    Ok(u8::try_from(status.code()).unwrap_or(255))
}

/// The container's own process, changed by the command line as runc does.
fn from_flags(mut p: Process, e: &Exec) -> Result<Process, Box<dyn std::error::Error>> {
    if e.command.is_empty() {
        return Err("exec needs a command (or --process)".into());
    }
    p.set_args(Some(e.command.clone()));
    p.set_terminal(Some(e.tty));
    if !e.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for var in &e.env {
            set_env(&mut env, var);
        }
        p.set_env(Some(env));
    }
    if let Some(cwd) = &e.cwd {
        p.set_cwd(PathBuf::from(cwd));
    }
    if let Some(user) = &e.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u.parse()?, g.parse()?),
            None => (user.parse()?, 0),
        };
        let mut u = p.user().clone();
        u.set_uid(uid);
        u.set_gid(gid);
        if !e.additional_gids.is_empty() {
            u.set_additional_gids(Some(e.additional_gids.clone()));
        }
        p.set_user(u);
    }
    if !e.caps.is_empty() {
        // Not oci-spec's default (which fills every set, inheritable too).
        let mut caps = match p.capabilities() {
            Some(c) => c.clone(),
            None => LinuxCapabilitiesBuilder::default()
                .bounding(Capabilities::new())
                .effective(Capabilities::new())
                .permitted(Capabilities::new())
                .inheritable(Capabilities::new())
                .ambient(Capabilities::new())
                .build()?,
        };
        for name in &e.caps {
            let cap: Capability = serde_json::from_value(serde_json::Value::String(name.clone()))
                .map_err(|_| format!("unknown capability {name:?}"))?;
            let add = |set: &Option<Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            // Not the inheritable set (nor, without it, the ambient one): a
            // capability there would survive the exec of any file that has
            // it as a file capability (CVE-2022-29162, fixed in runc 1.1.2).
        }
        p.set_capabilities(Some(caps));
    }
    if e.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

/// Sets `NAME=VALUE` in `env`: replaces the first `NAME=` entry (and drops
/// any later one) or appends it, so the command line overrides the spec as
/// in runc, where the last value of a name wins.
fn set_env(env: &mut Vec<String>, var: &str) {
    let name = var.split_once('=').map_or(var, |(n, _)| n);
    let is_it = |e: &String| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == name;
    match env.iter().position(is_it) {
        Some(i) => {
            env[i] = var.to_string();
            let mut seen = 0;
            env.retain(|e| {
                if is_it(e) {
                    seen += 1;
                    return seen == 1;
                }
                true
            });
        }
        None => env.push(var.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::set_env;

    #[test]
    fn env_flags_override_the_spec() {
        let mut env = vec![
            "PATH=/bin".to_string(),
            "A=1".into(),
            "AB=2".into(),
            "A=3".into(),
        ];
        set_env(&mut env, "A=x");
        set_env(&mut env, "C=y");
        assert_eq!(env, ["PATH=/bin", "A=x", "AB=2", "C=y"]);
    }
}
