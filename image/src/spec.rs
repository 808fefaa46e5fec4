//! The runtime spec of a container made from an image: entrypoint, cmd,
//! env, working dir and user from the image config, over a runc-like
//! default spec, with the caller's overrides on top.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{Root, Spec, User};
use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::error::{Error, Result};

/// What a caller changes of an image's defaults, as `docker run` does.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ImageOverrides {
    /// Replaces the image's `Cmd` (the arguments after the entrypoint).
    pub cmd: Option<Vec<String>>,
    /// Replaces the image's `Entrypoint` (an empty list removes it).
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE` entries added to (or replacing those of) the image's env.
    pub env: Vec<String>,
    /// Replaces the image's working directory.
    pub workdir: Option<String>,
    /// Replaces the image's user (`uid[:gid]` or `name[:group]`).
    pub user: Option<String>,
    /// The container's hostname (default: `berth`).
    pub hostname: Option<String>,
    /// Allocate a terminal for the process.
    pub terminal: bool,
}

/// The annotation listing the image's exposed ports (comma-separated).
pub const EXPOSED_PORTS_ANNOTATION: &str = "org.berth.image.exposedPorts";

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Builds the spec for `config` with its rootfs at `rootfs` (mounted).
pub fn build(
    config: &ImageConfiguration,
    reference: &str,
    rootfs: &Path,
    o: &ImageOverrides,
) -> Result<Spec> {
    build_in(config, reference, rootfs, &[rootfs.to_path_buf()], o)
}

/// [`build`], with user and group names looked up in the first of `dirs`
/// that has the file (a rootless snapshot's layers, top first: its rootfs
/// is mounted only in the container). A file deleted by a higher layer is
/// still read from a lower one.
pub(crate) fn build_in(
    config: &ImageConfiguration,
    reference: &str,
    rootfs: &Path,
    dirs: &[PathBuf],
    o: &ImageOverrides,
) -> Result<Spec> {
    let empty = oci_spec::image::Config::default();
    let c = config.config().as_ref().unwrap_or(&empty);
    let entrypoint = o
        .entrypoint
        .clone()
        .or_else(|| c.entrypoint().clone())
        .unwrap_or_default();
    let cmd = match (&o.cmd, &o.entrypoint) {
        (Some(cmd), _) => cmd.clone(),
        // A new entrypoint drops the image's cmd, as docker does.
        (None, Some(_)) => Vec::new(),
        (None, None) => c.cmd().clone().unwrap_or_default(),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::image(
            format!("{reference} config.Entrypoint/Cmd"),
            "the image names no command and none was given",
        ));
    }
    let mut env: Vec<String> = c.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    for e in &o.env {
        let key = e.split('=').next().unwrap_or(e);
        if key.is_empty() || !e.contains('=') {
            return Err(Error::invalid(
                "process.env",
                format!("{e:?} is not KEY=VALUE"),
            ));
        }
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    let cwd = o
        .workdir
        .clone()
        .or_else(|| c.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(Error::invalid(
            "process.cwd",
            format!("{cwd:?} is not absolute"),
        ));
    }
    let user_spec = o
        .user
        .clone()
        .or_else(|| c.user().clone())
        .unwrap_or_default();
    let user = resolve_user(dirs, &user_spec)?;

    let mut spec = Spec::default();
    spec.set_hostname(Some(o.hostname.clone().unwrap_or_else(|| "berth".into())));
    let mut root = Root::default();
    root.set_path(rootfs.to_path_buf());
    root.set_readonly(Some(false));
    spec.set_root(Some(root));
    if let Some(p) = spec.process_mut() {
        p.set_args(Some(args));
        p.set_env(Some(env));
        p.set_cwd(cwd.into());
        p.set_user(user);
        p.set_terminal(Some(o.terminal));
    }
    let mut annotations = spec.annotations().clone().unwrap_or_default();
    annotations.insert(
        oci_spec::image::ANNOTATION_REF_NAME.to_string(),
        reference.to_string(),
    );
    if let Some(ports) = c.exposed_ports() {
        annotations.insert(EXPOSED_PORTS_ANNOTATION.to_string(), ports.join(","));
    }
    spec.set_annotations(Some(annotations));
    Ok(spec)
}

/// `uid[:gid]` or names looked up in the image's `/etc/passwd` and
/// `/etc/group`, read with the rootfs as root (a symlink cannot lead out).
fn resolve_user(dirs: &[PathBuf], s: &str) -> Result<User> {
    let find = |file: &str, pred: &dyn Fn(&[&str]) -> bool| {
        dirs.iter().find_map(|d| lookup(d, file, pred))
    };
    let mut user = User::default();
    if s.is_empty() {
        return Ok(user);
    }
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let bad = |reason: String| Error::invalid("process.user", reason);
    let (uid, primary) = match u.parse::<u32>() {
        Ok(uid) => (
            uid,
            find("etc/passwd", &|f| f[2] == u).and_then(|f| f[3].parse().ok()),
        ),
        Err(_) => {
            let f = find("etc/passwd", &|f| f[0] == u)
                .ok_or_else(|| bad(format!("user {u:?} is not in the image's /etc/passwd")))?;
            let uid = f[2]
                .parse()
                .map_err(|_| bad(format!("bad uid for {u:?}")))?;
            (uid, f[3].parse().ok())
        }
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => find("etc/group", &|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| bad(format!("group {g:?} is not in the image's /etc/group")))?,
        },
        None => primary.unwrap_or(0),
    };
    user.set_uid(uid);
    user.set_gid(gid);
    Ok(user)
}

/// The first line of a colon-separated file in the rootfs (with at least
/// four fields) matching `pred`.
fn lookup(rootfs: &Path, file: &str, pred: &dyn Fn(&[&str]) -> bool) -> Option<Vec<String>> {
    let root: OwnedFd = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let fd = rustix::fs::openat2(
        &root,
        file,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(1 << 20)
        .read_to_string(&mut text)
        .ok()?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .find(|f| pred(f))
        .map(|f| f.iter().map(|s| s.to_string()).collect())
}

/// Puts the container in a user namespace of its own with `mappings` (a
/// rootless snapshot's: its files belong to those ids).
pub(crate) fn in_user_namespace(spec: &mut Spec, mappings: &berth::rootless::IdMappings) {
    use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    if !namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User)
    {
        let mut user = LinuxNamespace::default();
        user.set_typ(LinuxNamespaceType::User);
        namespaces.push(user);
    }
    linux.set_namespaces(Some(namespaces));
    linux.set_uid_mappings(Some(mappings.uid.clone()));
    linux.set_gid_mappings(Some(mappings.gid.clone()));
    spec.set_linux(Some(linux));
}
