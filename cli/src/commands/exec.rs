//! `exec`: a process in a running container.

use std::path::PathBuf;

use berth::oci_spec::runtime::{Capabilities, Capability, Process};
use berth::{ExecOptions, Stdio};

use super::{runtime, send_console, write_pid_file, Outcome};
use crate::cli::{Exec, Global};

pub async fn exec(g: &Global, e: Exec) -> Outcome {
    let ctr = runtime(g).await?.get(&e.id).await?;
    let process = match &e.process {
        Some(path) => serde_json::from_slice::<Process>(&std::fs::read(path)?)
            .map_err(|err| format!("{}: {err}", path.display()))?,
        None => from_flags(ctr.spec()?.process().clone().unwrap_or_default(), &e)?,
    };
    let terminal = process.terminal().unwrap_or(false);
    let p = ctr
        .exec(
            &process,
            ExecOptions {
                stdin: Stdio::Inherit,
                stdout: Stdio::Inherit,
                stderr: Stdio::Inherit,
                preserve_fds: e.preserve_fds,
            },
        )
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
        env.extend(e.env.iter().cloned());
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
        let mut caps = p.capabilities().clone().unwrap_or_default();
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
            caps.set_inheritable(add(caps.inheritable()));
        }
        p.set_capabilities(Some(caps));
    }
    if e.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}
