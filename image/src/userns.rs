//! A store of a user without root: layers owned by the container's users.
//!
//! A layer's files belong to the users of the image (root, `www-data`,
//! 1000, …). Without root, the store cannot make them so in the host's
//! user namespace. As rootless podman does, it writes them in a user
//! namespace with the mappings the user's containers get
//! ([`berth::rootless::default_id_mappings`]): there a file chowned to
//! 1000 belongs to the host id mapped to 1000, and the container, whose
//! user namespace has the same mappings, sees it as 1000 again. Removing
//! such files needs the same namespace (they are not the user's).
//!
//! The work runs in a helper process, the program the store was given,
//! run as `PROGRAM image-helper OP ARGS…` (berth's own `berth-images` is
//! one: it calls [`helper_main`]): a new user namespace is only for a
//! process of one thread, and the SDK's caller is never one. The helper
//! unshares the namespace, says `ready`, waits while this side writes its
//! maps (with `newuidmap`/`newgidmap`), then works as root of it.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use berth::rootless::IdMappings;
use oci_spec::image::Digest;

use crate::error::{Error, Result};
use crate::unpack::{unpack_with, OverlayXattrs};

/// The subcommand the helper program is run with.
pub const HELPER_COMMAND: &str = "image-helper";

/// The record of the mappings a user's layers were written with.
const IDMAP_FILE: &str = "idmap.json";

/// How a rootless store writes and removes what is not the user's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unprivileged {
    /// The helper program.
    pub program: PathBuf,
}

impl Unprivileged {
    /// The mappings of the helper's user namespace and of the user's
    /// containers: what the layers of `store_root` were written with (the
    /// first call records them); an error if the user's subordinate ids
    /// have changed since.
    pub fn mappings(&self, store_root: &Path) -> Result<IdMappings> {
        let now = berth::rootless::default_id_mappings()?;
        let path = store_root.join(IDMAP_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let then: IdMappings = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::image(path.display().to_string(), e.to_string()))?;
                if then != now {
                    return Err(Error::Unsupported(format!(
                        "the layers in {} belong to the ids mapped by {}; this user's \
                         subordinate ids have changed since: remove the store to use them",
                        store_root.display(),
                        path.display()
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let json = serde_json::to_vec(&now).expect("serialisable");
                berth::extension::write_atomic(&path, &json)?;
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        }
        Ok(now)
    }

    /// Unpacks a layer, marking opaque directories for a `userxattr`
    /// overlay.
    pub fn unpack(
        &self,
        mappings: &IdMappings,
        blob: &Path,
        layer: &Digest,
        diff_id: &Digest,
        dest: &Path,
    ) -> Result<()> {
        self.run(
            mappings,
            &[
                OsStr::new("unpack"),
                blob.as_os_str(),
                OsStr::new(layer.as_ref()),
                OsStr::new(diff_id.as_ref()),
                dest.as_os_str(),
            ],
        )
    }

    /// Removes `dir` and everything in it; one that does not exist is
    /// removed already.
    pub fn remove_tree(&self, mappings: &IdMappings, dir: &Path) -> Result<()> {
        if std::fs::symlink_metadata(dir).is_err() {
            return Ok(());
        }
        self.run(mappings, &[OsStr::new("remove"), dir.as_os_str()])
    }

    fn run(&self, mappings: &IdMappings, args: &[&OsStr]) -> Result<()> {
        let failed = |reason: String| Error::TaskFailed {
            task: "image helper",
            reason: format!("{} {HELPER_COMMAND}: {reason}", self.program.display()),
        };
        let mut child = Command::new(&self.program)
            .arg(HELPER_COMMAND)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("start: {e}")))?;
        let stdout = child.stdout.take().expect("piped");
        let mut ready = String::new();
        let _ = BufReader::new(stdout).read_line(&mut ready);
        let mapped = if ready.trim() == "ready" {
            berth::rootless::write_id_mappings(
                i32::try_from(child.id()).unwrap_or(i32::MAX),
                mappings,
            )
            .map_err(|e| failed(format!("mapping its ids: {e}")))
        } else {
            Err(failed("it did not start".into()))
        };
        // Either way the helper goes on: it works, or (its stdin closed
        // without a go) it stops.
        if let Some(mut stdin) = child.stdin.take() {
            if mapped.is_ok() {
                let _ = stdin.write_all(b"go\n");
            }
        }
        let out = child
            .wait_with_output()
            .map_err(|e| failed(format!("wait: {e}")))?;
        mapped?;
        if !out.status.success() {
            return Err(failed(format!(
                "{} ({})",
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            )));
        }
        Ok(())
    }
}

/// The helper's side, for a program to run when its arguments are
/// `image-helper OP ARGS…` (`args` are those after `image-helper`), before
/// it starts any thread: `unpack BLOB LAYER DIFF_ID DEST` or `remove DIR`,
/// in a new user namespace whose maps the store writes.
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
///     if args.get(1).is_some_and(|a| a == berth_image::HELPER_COMMAND) {
///         return berth_image::helper_main(&args[2..]);
///     }
///     // … the program itself
/// #   std::process::ExitCode::SUCCESS
/// }
/// ```
pub fn helper_main(args: &[OsString]) -> ExitCode {
    match helper(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn helper(args: &[OsString]) -> std::result::Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
        .map_err(|e| format!("new user namespace: {e}"))?;
    println!("ready");
    let mut go = String::new();
    std::io::stdin()
        .read_line(&mut go)
        .map_err(|e| format!("waiting for the maps: {e}"))?;
    if go.trim() != "go" {
        return Err("the store did not map this namespace's ids".into());
    }
    let digest = |s: &OsString| -> std::result::Result<Digest, String> {
        s.to_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not a digest: {}", s.to_string_lossy()))
    };
    match args {
        [op, blob, layer, diff_id, dest] if op == "unpack" => unpack_with(
            Path::new(blob),
            &digest(layer)?,
            &digest(diff_id)?,
            Path::new(dest),
            OverlayXattrs::User,
        )
        .map_err(|e| e.to_string()),
        [op, dir] if op == "remove" => std::fs::remove_dir_all(dir)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| format!("remove {}: {e}", dir.to_string_lossy())),
        _ => Err(format!(
            "usage: {HELPER_COMMAND} unpack BLOB LAYER DIFF_ID DEST | remove DIR (got {args:?})"
        )),
    }
}
