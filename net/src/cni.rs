//! CNI: container networks made by CNI plugins, as Kubernetes nodes and
//! podman (before netavark) make them.
//!
//! A network is a configuration list (`*.conflist`, or a single plugin's
//! `*.conf`/`*.json`) in [`CniConfig::conf_dir`] whose `name` is the one
//! asked for; its plugins are programs named by their `type` in
//! [`CniConfig::bin_dirs`]. berth follows the CNI specification (results of
//! versions 0.3.x, 0.4.0 and 1.0.0):
//!
//! - ADD runs the plugins in order, each given the previous one's result
//!   (`prevResult`), with the container's network namespace, its id,
//!   `CNI_ARGS` and, for a plugin that declares the capability, the
//!   published ports (`runtimeConfig.portMappings`). A failed ADD deletes
//!   what the list made (DEL) before it reports the plugin's error.
//! - CHECK and DEL run with the cached result of ADD as `prevResult`, DEL
//!   in reverse order.
//! - As libcni does, berth keeps a cache per attachment (`cni.json` in the
//!   container's state directory): the list as it was loaded, the
//!   arguments and the result. It is written *before* ADD, so a DEL made
//!   by a later process (deleting the container, or [`Runtime::new`]
//!   recovering after a crash) gets the same configuration even if the
//!   list on disk changed or the creator died in the middle of ADD.
//! - The container's network namespace is pinned by a bind mount in its
//!   state directory (`netns`) until DEL, so DEL can remove the interface
//!   even after the container's process is gone (and a reused pid never
//!   points DEL at another process's namespace).
//!
//! Plugins run in the namespace that plays the host
//! ([`Config::host_netns`]), where `bridge`, `portmap` and `firewall` make
//! their links and rules.
//!
//! [`Runtime::new`]: berth::Runtime::new
//! [`Config::host_netns`]: crate::Settings::host_netns

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{netns, Attachment, Driver, NetworkOptions, Protocol};
use crate::error::{Error, Result};
use crate::extension::Config;
use berth::extension::HostProcess;

/// Where berth finds CNI network configurations and plugins (part of
/// [`Settings`](crate::Settings)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CniConfig {
    /// The directory of network configuration lists (`/etc/cni/net.d`).
    pub conf_dir: PathBuf,
    /// The directories searched for plugins, in order (`/usr/lib/cni`,
    /// where Debian puts them, then `/opt/cni/bin`); also the plugins'
    /// `CNI_PATH`.
    pub bin_dirs: Vec<PathBuf>,
    /// How long one plugin may run before it is killed and the command
    /// fails (60 s).
    pub timeout: Duration,
}

impl Default for CniConfig {
    fn default() -> Self {
        CniConfig {
            conf_dir: "/etc/cni/net.d".into(),
            bin_dirs: vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()],
            timeout: Duration::from_secs(60),
        }
    }
}

impl CniConfig {
    /// Configurations in `conf_dir`, plugins in `bin_dirs`, the default
    /// timeout.
    pub fn new(conf_dir: impl Into<PathBuf>, bin_dirs: Vec<PathBuf>) -> CniConfig {
        CniConfig {
            conf_dir: conf_dir.into(),
            bin_dirs,
            ..CniConfig::default()
        }
    }
}

/// The versions of the specification whose configurations and results
/// berth understands.
const VERSIONS: [&str; 4] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// The cache in the container's state directory.
const CACHE_FILE: &str = "cni.json";
/// The bind mount that pins the container's network namespace.
const NETNS_FILE: &str = "netns";

/// What ADD was given and returned, as libcni caches it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cache {
    kind: String,
    container_id: String,
    /// The configuration list as loaded (a single configuration made a
    /// list of one).
    config: Value,
    if_name: String,
    cni_args: Vec<(String, String)>,
    /// `runtimeConfig` values by capability (`portMappings`).
    capability_args: Map<String, Value>,
    bin_dirs: Vec<PathBuf>,
    timeout: Duration,
    /// The pinned namespace, once there is one.
    netns: Option<PathBuf>,
    host_netns: Option<PathBuf>,
    hostname: String,
    /// The result of ADD, once it succeeded.
    result: Option<Value>,
    /// The process that attaches, to tell an abandoned creation from one
    /// in progress.
    creator_pid: i32,
    creator_start: u64,
}

impl Cache {
    fn load(dir: &Path) -> Result<Option<Cache>> {
        let p = dir.join(CACHE_FILE);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Network {
                    network: p.display().to_string(),
                    reason: format!("corrupt CNI cache: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", p, e)),
        }
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Network {
            network: self.name().to_string(),
            reason: e.to_string(),
        })?;
        Ok(berth::extension::write_atomic(
            &dir.join(CACHE_FILE),
            &json,
        )?)
    }

    fn name(&self) -> &str {
        self.config["name"].as_str().unwrap_or_default()
    }

    fn version(&self) -> &str {
        self.config["cniVersion"].as_str().unwrap_or_default()
    }

    fn plugins(&self) -> &[Value] {
        self.config["plugins"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// Whether the container in `dir` is (being) attached to a CNI network.
pub(super) fn is_attached(dir: &Path) -> bool {
    dir.join(CACHE_FILE).exists()
}

/// Before the container's process exists: loads and checks network
/// `name`, and records the attachment (without a result) in `dir`.
pub(super) fn prepare(
    config: &Config,
    dir: &Path,
    id: &str,
    hostname: &str,
    name: &str,
    opts: &NetworkOptions,
) -> Result<()> {
    let list = load_list(&config.cni.conf_dir, name)?;
    for p in list["plugins"].as_array().into_iter().flatten() {
        let ty = p["type"].as_str().unwrap_or_default();
        find_plugin(&config.cni.bin_dirs, name, ty)?;
    }
    let mut caps = Map::new();
    if !opts.publish.is_empty() {
        let ports: Vec<Value> = opts
            .publish
            .iter()
            .map(|p| {
                let mut m = json!({
                    "hostPort": p.host_port,
                    "containerPort": p.container_port,
                    "protocol": match p.protocol { Protocol::Tcp => "tcp", Protocol::Udp => "udp" },
                });
                if let Some(ip) = p.host_ip {
                    m["hostIP"] = json!(ip.to_string());
                }
                m
            })
            .collect();
        caps.insert("portMappings".into(), Value::Array(ports));
    }
    let mut cni_args = vec![("IgnoreUnknown".to_string(), "1".to_string())];
    cni_args.extend(opts.cni_args.iter().cloned());
    for (k, v) in &cni_args {
        if k.is_empty() || [k, v].iter().any(|s| s.contains([';', '=', '\0'])) {
            return Err(Error::invalid_option(
                "network.cni_args",
                format!("{k:?}={v:?}: keys and values may not hold ';', '=' or NUL"),
            ));
        }
    }
    let (creator_pid, creator_start) = super::ipam::me();
    Cache {
        kind: "berthCniCacheV1".into(),
        container_id: id.to_string(),
        config: list,
        if_name: "eth0".into(),
        cni_args,
        capability_args: caps,
        bin_dirs: config.cni.bin_dirs.clone(),
        timeout: config.cni.timeout,
        netns: None,
        host_netns: config.host_netns.clone(),
        hostname: hostname.to_string(),
        result: None,
        creator_pid,
        creator_start,
    }
    .save(dir)
}

/// Once the container's process `pid` exists: pins its network namespace
/// and runs ADD. On failure, what the plugins made is deleted again.
pub(super) async fn attach(dir: &Path, pid: i32) -> Result<()> {
    let mut cache = Cache::load(dir)?.ok_or_else(|| Error::Network {
        network: dir.display().to_string(),
        reason: "the CNI attachment is gone".into(),
    })?;
    cache.netns = Some(pin(dir, pid)?);
    // Recorded before ADD: a DEL after a crash in the middle of ADD finds
    // the namespace.
    cache.save(dir)?;
    let c = cache.clone();
    let added = netns::run(cache.host_netns.clone(), move || add(&c)).await;
    let done = added.and_then(|result| {
        cache.result = Some(result);
        cache.save(dir)?;
        let att = attachment(&cache)?;
        att.save(dir)?;
        let ips: Vec<IpAddr> = addresses(&cache).into_iter().map(|a| a.0).collect();
        super::files::update_hosts(dir, &cache.hostname, &ips)
    });
    if let Err(e) = done {
        if let Err(del) = release(dir).await {
            tracing::warn!(error = %del, "could not undo a failed CNI ADD");
            let _ = unpin(dir);
            let _ = std::fs::remove_file(dir.join(CACHE_FILE));
        }
        return Err(e);
    }
    Ok(())
}

/// Runs CHECK on the container's network: the plugins verify that what
/// ADD made is still there.
pub(super) async fn check(dir: &Path) -> Result<()> {
    let cache = Cache::load(dir)?
        .ok_or_else(|| Error::Unsupported("CHECK: the container is on no CNI network".into()))?;
    if cache.version().starts_with("0.3") {
        return Err(Error::Unsupported(format!(
            "CHECK: network {} has cniVersion {}; CHECK needs 0.4.0 or later",
            cache.name(),
            cache.version()
        )));
    }
    if cache.config["disableCheck"].as_bool() == Some(true) {
        return Ok(());
    }
    let Some(result) = cache.result.clone() else {
        return Err(Error::Network {
            network: cache.name().to_string(),
            reason: "CHECK before ADD finished".into(),
        });
    };
    netns::run(cache.host_netns.clone(), move || {
        for p in cache.plugins() {
            invoke(&cache, p, "CHECK", Some(&result))?;
        }
        Ok(())
    })
    .await
}

/// Runs DEL (with the cached configuration and result) and removes the
/// pin and the cache. `false` if the container is on no CNI network.
/// On failure the cache stays, so a later delete or recovery tries again.
pub(super) async fn release(dir: &Path) -> Result<bool> {
    let Some(cache) = Cache::load(dir)? else {
        return Ok(false);
    };
    if cache.netns.is_none() {
        // ADD never started (it follows the pin): nothing to delete.
    } else if cache.host_netns.as_ref().is_some_and(|p| !p.exists()) {
        // The namespace that played the host is gone, and with it every
        // link and rule the plugins made there. DEL is not run elsewhere
        // (it would touch this process's own namespace); what plugins keep
        // on disk, such as host-local's leases, stays.
        tracing::warn!(
            network = cache.name(),
            "the host namespace of a CNI network is gone; DEL skipped"
        );
    } else {
        netns::run(cache.host_netns.clone(), move || del(&cache)).await?;
    }
    unpin(dir)?;
    let _ = std::fs::remove_file(dir.join(super::ATTACHMENT_FILE));
    match std::fs::remove_file(dir.join(CACHE_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("remove", dir.join(CACHE_FILE), e))
        }
        _ => Ok(true),
    }
}

/// Runs DEL for the CNI attachments under `root` whose container is gone:
/// its process dead and its creator too (a creation abandoned by a
/// crashed process, or a container that exited and was never deleted).
pub(super) async fn recover(root: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let dir = e.path();
        let Some(id) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Ok(Some(cache)) = Cache::load(&dir) else {
            continue;
        };
        let alive = berth::extension::container_process(&dir).is_some_and(|p| p.is_alive())
            || HostProcess::new(cache.creator_pid, cache.creator_start).is_alive();
        if alive {
            continue;
        }
        tracing::info!(
            id,
            network = cache.name(),
            "deleting the CNI network of a gone container"
        );
        if let Err(e) = release(&dir).await {
            tracing::warn!(id, error = %e, "could not delete the CNI network of a gone container");
        }
    }
    Ok(())
}

/// The configuration list named `name` in `conf_dir`: the first file (in
/// name order) ending in `.conflist`, `.conf` or `.json` whose `name` it
/// is, checked.
fn load_list(conf_dir: &Path, name: &str) -> Result<Value> {
    let bad = |reason: String| Error::Network {
        network: name.to_string(),
        reason,
    };
    let entries = std::fs::read_dir(conf_dir).map_err(|e| {
        bad(format!(
            "CNI configuration directory {}: {e}",
            conf_dir.display()
        ))
    })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "conflist" || x == "conf" || x == "json")
        })
        .collect();
    files.sort();
    for f in files {
        let Ok(text) = std::fs::read(&f) else {
            continue;
        };
        // Files that are not JSON objects are other networks' problem.
        let Ok(Value::Object(mut v)) = serde_json::from_slice::<Value>(&text) else {
            continue;
        };
        if v.get("name").and_then(Value::as_str) != Some(name) {
            continue;
        }
        let list = if v.contains_key("plugins") {
            Value::Object(v)
        } else {
            // A single plugin's configuration: a list of one.
            let version = v.get("cniVersion").cloned().unwrap_or(Value::Null);
            v.remove("cniVersion");
            v.remove("name");
            json!({ "cniVersion": version, "name": name, "plugins": [v] })
        };
        check_list(&list).map_err(|r| bad(format!("{}: {r}", f.display())))?;
        return Ok(list);
    }
    Err(bad(format!(
        "no CNI configuration named {name:?} in {}",
        conf_dir.display()
    )))
}

fn check_list(list: &Value) -> std::result::Result<(), String> {
    let version = list["cniVersion"].as_str().unwrap_or_default();
    if !VERSIONS.contains(&version) {
        return Err(format!(
            "cniVersion {:?} is not one of {}",
            list["cniVersion"],
            VERSIONS.join(", ")
        ));
    }
    let plugins = list["plugins"]
        .as_array()
        .filter(|p| !p.is_empty())
        .ok_or("plugins is not a list of plugin configurations")?;
    for (i, p) in plugins.iter().enumerate() {
        let ty = p["type"]
            .as_str()
            .ok_or(format!("plugins[{i}] has no type"))?;
        if ty.is_empty() || ty.contains('/') || ty == "." || ty == ".." {
            return Err(format!("plugins[{i}].type {ty:?} is not a plugin name"));
        }
    }
    Ok(())
}

fn find_plugin(bin_dirs: &[PathBuf], network: &str, ty: &str) -> Result<PathBuf> {
    bin_dirs
        .iter()
        .map(|d| d.join(ty))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Network {
            network: network.to_string(),
            reason: format!(
                "no CNI plugin {ty:?} in {}",
                bin_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ),
        })
}

/// ADD, plugin by plugin; on a failure, DEL for the whole list.
fn add(cache: &Cache) -> Result<Value> {
    let mut prev: Option<Value> = None;
    for p in cache.plugins() {
        match invoke(cache, p, "ADD", prev.as_ref()) {
            Ok(r) => prev = r,
            Err(e) => {
                // What the list made so far (and what a plugin may have
                // half made) goes, as a caller of libcni would delete it.
                let mut c = cache.clone();
                c.result = prev;
                if let Err(d) = del(&c) {
                    tracing::warn!(error = %d, "DEL after a failed ADD failed too");
                }
                return Err(e);
            }
        }
    }
    prev.ok_or_else(|| Error::Network {
        network: cache.name().to_string(),
        reason: "the plugins returned no result".into(),
    })
}

/// DEL, in reverse order; every plugin is asked even after one fails, and
/// the first failure is returned.
fn del(cache: &Cache) -> Result<()> {
    // Results are passed to DEL from version 0.4.0 on.
    let prev = cache
        .result
        .as_ref()
        .filter(|_| !cache.version().starts_with("0.3"));
    let mut first = None;
    for p in cache.plugins().iter().rev() {
        if let Err(e) = invoke(cache, p, "DEL", prev) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Runs one plugin. Returns its result for ADD.
fn invoke(
    cache: &Cache,
    plugin: &Value,
    command: &'static str,
    prev: Option<&Value>,
) -> Result<Option<Value>> {
    let ty = plugin["type"].as_str().unwrap_or_default();
    let network = cache.name().to_string();
    let path = find_plugin(&cache.bin_dirs, &network, ty)?;
    let mut conf = plugin.as_object().cloned().unwrap_or_default();
    conf.insert("name".into(), json!(network));
    conf.insert("cniVersion".into(), json!(cache.version()));
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    let mut runtime = Map::new();
    for (cap, on) in plugin["capabilities"].as_object().into_iter().flatten() {
        if on.as_bool() == Some(true) {
            if let Some(v) = cache.capability_args.get(cap) {
                runtime.insert(cap.clone(), v.clone());
            }
        }
    }
    if !runtime.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(runtime));
    }
    let stdin = serde_json::to_vec(&conf).map_err(|e| Error::Network {
        network: network.clone(),
        reason: e.to_string(),
    })?;
    let join = |v: Vec<String>, sep: &str| v.join(sep);
    let mut cmd = Command::new(&path);
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &cache.container_id)
        .env("CNI_IFNAME", &cache.if_name)
        .env(
            "CNI_ARGS",
            join(
                cache
                    .cni_args
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
                ";",
            ),
        )
        .env(
            "CNI_PATH",
            join(
                cache
                    .bin_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect(),
                ":",
            ),
        );
    match &cache.netns {
        Some(ns) => cmd.env("CNI_NETNS", ns),
        None => cmd.env_remove("CNI_NETNS"),
    };
    let failed = |code, message: String, details: String| Error::Cni {
        network: network.clone(),
        plugin: ty.to_string(),
        command,
        code,
        message,
        details,
    };
    let Some(out) = super::command::run(cmd, &stdin, Some(cache.timeout))? else {
        return Err(failed(
            None,
            format!("did not finish within {:?}", cache.timeout),
            String::new(),
        ));
    };
    if !out.status.success() {
        return Err(match serde_json::from_slice::<Value>(&out.stdout) {
            Ok(v) if v["msg"].is_string() => failed(
                v["code"].as_u64().and_then(|c| u32::try_from(c).ok()),
                v["msg"].as_str().unwrap_or_default().to_string(),
                v["details"].as_str().unwrap_or_default().to_string(),
            ),
            _ => failed(
                None,
                format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                String::new(),
            ),
        });
    }
    if command != "ADD" {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(&out.stdout) {
        Ok(v @ Value::Object(_)) => Ok(Some(v)),
        _ => Err(failed(
            None,
            format!(
                "ADD printed no result: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            ),
            String::new(),
        )),
    }
}

/// The addresses of the result: (address, prefix, gateway), those on the
/// container's interface first.
fn addresses(cache: &Cache) -> Vec<(IpAddr, u8, Option<IpAddr>)> {
    let Some(r) = &cache.result else {
        return Vec::new();
    };
    let ifaces = r["interfaces"].as_array().cloned().unwrap_or_default();
    let mut out: Vec<(bool, IpAddr, u8, Option<IpAddr>)> = Vec::new();
    for ip in r["ips"].as_array().into_iter().flatten() {
        let Some((a, p)) = ip["address"].as_str().and_then(|s| s.split_once('/')) else {
            continue;
        };
        let (Ok(a), Ok(p)) = (a.parse::<IpAddr>(), p.parse::<u8>()) else {
            continue;
        };
        let gw = ip["gateway"].as_str().and_then(|g| g.parse().ok());
        let inside = ip["interface"]
            .as_u64()
            .and_then(|i| ifaces.get(i as usize))
            .is_some_and(|i| i["name"].as_str() == Some(cache.if_name.as_str()));
        out.push((inside, a, p, gw));
    }
    out.sort_by_key(|x| !x.0);
    out.into_iter().map(|(_, a, p, g)| (a, p, g)).collect()
}

/// The attachment as [`attachment`](crate::attachment)
/// reports it: the first IPv4 address of the result (`0.0.0.0` when it
/// has none), and the host-side interfaces the result names.
fn attachment(cache: &Cache) -> Result<Attachment> {
    let r = cache.result.as_ref().ok_or_else(|| Error::Network {
        network: cache.name().to_string(),
        reason: "no result".into(),
    })?;
    let v4 = addresses(cache).into_iter().find(|a| a.0.is_ipv4());
    let (address, prefix, gateway) = match v4 {
        Some((IpAddr::V4(a), p, g)) => (
            a,
            p,
            match g {
                Some(IpAddr::V4(g)) => g,
                _ => Ipv4Addr::UNSPECIFIED,
            },
        ),
        _ => (Ipv4Addr::UNSPECIFIED, 0, Ipv4Addr::UNSPECIFIED),
    };
    // The bridge plugin lists the bridge, the host's veth, then the
    // container's interface (which alone has a sandbox).
    let host: Vec<String> = r["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["sandbox"].as_str().unwrap_or_default().is_empty())
        .filter_map(|i| i["name"].as_str().map(str::to_owned))
        .collect();
    let (bridge, host_interface) = match &host[..] {
        [] => (String::new(), String::new()),
        [one] => (String::new(), one.clone()),
        [b, .., v] => (b.clone(), v.clone()),
    };
    let ports = cache
        .capability_args
        .get("portMappings")
        .map_or(Ok(Vec::new()), |p| {
            p.as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    Ok(super::PortMapping {
                        host_ip: m["hostIP"].as_str().and_then(|s| s.parse().ok()),
                        host_port: m["hostPort"].as_u64().unwrap_or_default() as u16,
                        container_port: m["containerPort"].as_u64().unwrap_or_default() as u16,
                        protocol: if m["protocol"] == "udp" {
                            Protocol::Udp
                        } else {
                            Protocol::Tcp
                        },
                    })
                })
                .collect::<Result<Vec<_>>>()
        })?;
    let v6 = addresses(cache).into_iter().find(|a| a.0.is_ipv6());
    let (address6, prefix6, gateway6) = match v6 {
        Some((IpAddr::V6(a), p, g)) => (
            Some(a),
            p,
            match g {
                Some(IpAddr::V6(g)) => Some(g),
                _ => None,
            },
        ),
        _ => (None, 0, None),
    };
    Ok(Attachment {
        address6,
        prefix6,
        gateway6,
        driver: Driver::Cni,
        network: cache.name().to_string(),
        interface: cache.if_name.clone(),
        address,
        prefix,
        gateway,
        bridge,
        host_interface,
        ports,
        host_netns: cache.host_netns.clone(),
    })
}

/// Bind-mounts the network namespace of process `pid` on `<dir>/netns`.
fn pin(dir: &Path, pid: i32) -> Result<PathBuf> {
    use nix::mount::{mount, MsFlags};
    let target = dir.join(NETNS_FILE);
    std::fs::File::create(&target).map_err(|e| Error::io("create", &target, e))?;
    let source = PathBuf::from(format!("/proc/{pid}/ns/net"));
    mount(
        Some(&source),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| Error::io("pin network namespace", &source, e.into()))?;
    Ok(target)
}

/// Undoes [`pin`]; nothing to do if it was not made.
fn unpin(dir: &Path) -> Result<()> {
    use nix::mount::{umount2, MntFlags};
    let target = dir.join(NETNS_FILE);
    match umount2(&target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(Error::io("unpin network namespace", &target, e.into())),
    }
    match std::fs::remove_file(&target) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", target, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_with(result: Value) -> Cache {
        Cache {
            kind: "t".into(),
            container_id: "c".into(),
            config: json!({"cniVersion": "0.4.0", "name": "n", "plugins": [{"type": "bridge"}]}),
            if_name: "eth0".into(),
            cni_args: Vec::new(),
            capability_args: Map::new(),
            bin_dirs: Vec::new(),
            timeout: Duration::from_secs(1),
            netns: None,
            host_netns: None,
            hostname: "h".into(),
            result: Some(result),
            creator_pid: 0,
            creator_start: 0,
        }
    }

    #[test]
    fn results_of_0_4_0_and_1_0_0_make_the_attachment() {
        // 0.4.0 has ips[].version; 1.0.0 has not. Both list the bridge,
        // the host's veth, then the container's interface.
        for version in [Some("4"), None] {
            let mut ip4 = json!({"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 2});
            let mut ip6 = json!({"address": "fd00::5/64", "gateway": "fd00::1", "interface": 2});
            if let Some(v) = version {
                ip4["version"] = json!(v);
                ip6["version"] = json!("6");
            }
            let att = attachment(&cache_with(json!({
                "interfaces": [
                    {"name": "cni0", "mac": "aa:bb:cc:dd:ee:00"},
                    {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:01"},
                    {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/run/x/netns"},
                ],
                "ips": [ip6, ip4],
            })))
            .unwrap();
            assert_eq!(att.address, Ipv4Addr::new(10, 1, 0, 5));
            assert_eq!((att.prefix, att.gateway), (24, Ipv4Addr::new(10, 1, 0, 1)));
            assert_eq!(att.address6, Some("fd00::5".parse().unwrap()));
            assert_eq!(att.prefix6, 64);
            assert_eq!(
                (att.bridge.as_str(), att.host_interface.as_str()),
                ("cni0", "veth1234")
            );
        }
        // No IPv4: the unspecified address.
        let att = attachment(&cache_with(json!({"ips": []}))).unwrap();
        assert!(att.address.is_unspecified() && att.address6.is_none());
    }

    #[test]
    fn lists_are_checked() {
        let ok = json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}]});
        assert!(check_list(&ok).is_ok());
        for bad in [
            json!({"cniVersion": "2.0.0", "name": "n", "plugins": [{"type": "bridge"}]}),
            json!({"cniVersion": "1.0.0", "name": "n", "plugins": []}),
            json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../sh"}]}),
            json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{}]}),
        ] {
            assert!(check_list(&bad).is_err(), "{bad}");
        }
    }
}
