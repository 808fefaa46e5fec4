//! OCI hooks: run with the container's state on stdin, each within its
//! timeout.

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use oci_spec::runtime::Hook;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

/// Where a hook runs, and the environment of a hook without `env` of its
/// own: as in runc, the runtime's own for the hooks it runs itself, and the
/// container process's for those runc's init runs in the container.
#[derive(Debug)]
pub(crate) enum Where {
    /// In berth's own namespaces (`prestart`, `createRuntime`, `poststart`,
    /// `poststop`), with berth's environment.
    Runtime,
    /// In the container's namespaces (`createContainer`, `startContainer`):
    /// `pid` is the container's, whose `/proc/<pid>/ns/*` are entered, and
    /// `env` the container process's environment (`process.env`).
    Container { pid: i32, env: Vec<String> },
}

/// The container process's environment, for [`Where::Container`].
pub(crate) fn process_env(spec: &oci_spec::runtime::Spec) -> Vec<String> {
    spec.process()
        .as_ref()
        .and_then(|p| p.env().clone())
        .unwrap_or_default()
}

/// Runs `hooks` in order; the first failure stops the list.
pub(crate) async fn run(
    kind: &'static str,
    hooks: &[Hook],
    state: &[u8],
    place: &Where,
) -> Result<()> {
    for hook in hooks {
        run_one(kind, hook, state, place).await?;
    }
    Ok(())
}

/// Runs `hooks` and only logs failures, as the spec asks for `poststop`.
pub(crate) async fn run_logged(kind: &'static str, hooks: &[Hook], state: &[u8]) {
    for hook in hooks {
        if let Err(e) = run_one(kind, hook, state, &Where::Runtime).await {
            tracing::warn!(error = %e, "{kind} hook failed");
        }
    }
}

async fn run_one(kind: &'static str, hook: &Hook, state: &[u8], place: &Where) -> Result<()> {
    let path = hook.path().clone();
    let fail = |reason: String| Error::Hook {
        kind,
        path: path.clone(),
        reason,
    };
    let mut cmd = tokio::process::Command::new(&path);
    let args = hook.args().as_deref().unwrap_or_default();
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    // `"env": []` is an empty environment; no `env` at all is the default
    // of where the hook runs.
    let env = match (hook.env(), place) {
        (Some(env), _) | (None, Where::Container { env, .. }) => Some(env),
        (None, Where::Runtime) => None,
    };
    if let Some(env) = env {
        cmd.env_clear()
            .envs(env.iter().filter_map(|e| e.split_once('=')));
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Where::Container { pid, .. } = place {
        let mut fds: Vec<(OwnedFd, libc::c_int)> = Vec::new();
        // The mount namespace last: after it, /proc is the container's.
        for (name, flag) in [
            ("user", libc::CLONE_NEWUSER),
            ("ipc", libc::CLONE_NEWIPC),
            ("uts", libc::CLONE_NEWUTS),
            ("net", libc::CLONE_NEWNET),
            ("cgroup", libc::CLONE_NEWCGROUP),
            ("mnt", libc::CLONE_NEWNS),
        ] {
            let path = format!("/proc/{pid}/ns/{name}");
            let theirs = std::fs::metadata(&path);
            let ours = std::fs::metadata(format!("/proc/self/ns/{name}"));
            use std::os::unix::fs::MetadataExt;
            // Entering the namespace we are already in is refused for user
            // namespaces and pointless for the rest.
            if let (Ok(t), Ok(o)) = (&theirs, &ours) {
                if t.ino() == o.ino() && t.dev() == o.dev() {
                    continue;
                }
            }
            let f = std::fs::File::open(&path).map_err(|e| fail(format!("open {path}: {e}")))?;
            fds.push((f.into(), flag));
        }
        crate::exec::enter_namespaces(&mut cmd, fds);
    }
    let mut child = cmd.spawn().map_err(|e| fail(format!("spawn: {e}")))?;
    let mut stdin = child.stdin.take();
    // The timeout covers the whole hook: a hook that never reads its
    // stdin cannot hold the caller past it.
    let run = async {
        if let Some(mut stdin) = stdin.take() {
            // A hook that does not read its stdin (and exits) is fine.
            let _ = stdin.write_all(state).await;
        }
        child.wait().await
    };
    let status = match hook.timeout() {
        Some(secs) if secs <= 0 => return Err(fail(format!("timeout {secs} must be positive"))),
        Some(secs) => match tokio::time::timeout(Duration::from_secs(secs as u64), run).await {
            Ok(r) => r,
            Err(_) => {
                let _ = child.kill().await;
                return Err(fail(format!("timed out after {secs}s")));
            }
        },
        None => run.await,
    }
    .map_err(|e| fail(format!("wait: {e}")))?;
    if !status.success() {
        return Err(fail(format!("exited with {status}")));
    }
    Ok(())
}
