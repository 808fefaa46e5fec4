//! The command line, as runc spells it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// berth: run OCI containers (runc-compatible).
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    about,
    disable_version_flag = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// runc's global flags, given before the command as runc takes them
/// (`berth --root DIR state ID`). Not repeated on every subcommand (clap's
/// `global`): that copied each of them into all 28 subcommands at every
/// call, ~140 KiB of heap.
#[derive(Debug, Args)]
pub struct Global {
    /// Root directory for container state [default: /run/berth, or
    /// $XDG_RUNTIME_DIR/berth without root].
    #[arg(long, env = "BERTH_ROOT")]
    pub root: Option<PathBuf>,
    /// Also write errors to this file.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Format of the --log file.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Verbose logging (accepted for compatibility).
    #[arg(long)]
    pub debug: bool,
    /// Use systemd to manage cgroups (not supported: berth writes cgroupfs).
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (accepted for compatibility).
    #[arg(long = "rootless", id = "global_rootless")]
    pub rootless: Option<String>,
    /// Path to criu (accepted for compatibility; checkpointing is not
    /// supported).
    #[arg(long)]
    pub criu: Option<PathBuf>,
    /// Print the version.
    #[arg(short = 'v', long = "version", global = false)]
    pub version: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Each subcommand's arguments are defined only when it is the one run (or
/// its help is shown): defining all of them for every call (clap's default)
/// took ~300 KiB of heap, most of what `state` or `kill` touched.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Create a container: set it up and leave it waiting for `start`.
    Create(Create),
    /// Start a created container.
    Start(Id),
    /// Create and start a container; without --detach, wait for it and exit
    /// with its exit code.
    Run(Run),
    /// Print the state of a container as JSON.
    State(Id),
    /// List containers.
    List(List),
    /// Send a signal to a container's init (or, with --all, every process).
    Kill(Kill),
    /// Delete a container (with --force, kill it first).
    Delete(Delete),
    /// Run a process in a running container.
    Exec(Exec),
    /// List the processes of a container.
    Ps(Ps),
    /// Freeze every process of a container.
    Pause(Id),
    /// Thaw a paused container.
    Resume(Id),
    /// Change a running container's resource limits.
    Update(Update),
    /// Print a container's events as JSON lines (OOM kills, pause,
    /// resume, exit) until it exits; with --stats one usage sample, with
    /// --interval also a sample at that interval.
    Events(Events),
    /// Print the captured output of a container (see --log-path).
    Logs(Logs),
    /// Stop a container: its stop signal, then SIGKILL to all its processes
    /// after a grace period.
    Stop(Stop),
    /// Print what this runtime supports (the OCI features document).
    Features,
    /// Write a starter config.json.
    Spec(SpecCmd),
    /// Print the version.
    Version,
    /// Pull an image from a registry into the store under --root.
    Pull(Pull),
    /// Push a stored image to the registry its reference names.
    Push(Pull),
    /// List the images in the store.
    Images(Images),
    /// Remove image tags, then the content no image or container uses.
    Rmi(Rmi),
    /// Make a container's changes a new image.
    Commit(Commit),
    /// Import an image from an OCI image layout directory.
    Import(Import),
    /// Checkpoint a running container (not supported: fails at once).
    Checkpoint(Unsupported),
    /// Restore a container from a checkpoint (not supported: fails at once).
    Restore(Unsupported),
    /// Supervise a detached container for the SDK (internal).
    #[command(hide = true)]
    Shim(Shim),
    /// Serve published ports of a dual-stack network on [::1] (internal:
    /// started by berth-net, a process of its own).
    #[command(name = "port-proxy", hide = true)]
    PortProxy(PortProxy),
}

#[derive(Debug, Args)]
pub struct Shim {
    /// The SDK's request file.
    #[arg(long)]
    pub request: PathBuf,
}

#[derive(Debug, Args)]
pub struct PortProxy {
    /// What to serve, as berth-net gives it.
    pub spec: String,
}

/// A command berth does not implement: takes runc's flags and arguments,
/// whatever they are, so that it fails with its own error rather than a
/// usage message.
#[derive(Debug, Args)]
pub struct Unsupported {
    /// runc's flags and the container id (ignored).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Id {
    /// The container id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CreateFlags {
    /// The bundle directory (config.json and the rootfs).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket to send the pseudo-terminal master to.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Write the container's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a session keyring (berth never does).
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many extra descriptors (3, 4, ...) to the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// The network to join: none, host, bridge[=NAME], macvlan=PARENT,
    /// overlay=NAME, cni=NAME (a CNI configuration in --cni-conf-dir) or
    /// slirp4netns (user-mode networking, without root).
    /// Without it, the spec's namespaces decide.
    #[arg(long, value_name = "MODE")]
    pub network: Option<berth_net::Network>,
    /// Publish a container port on the host (bridge, overlay, CNI and
    /// slirp4netns networks; repeatable):
    /// [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp].
    #[arg(short = 'p', long, value_name = "PORTS")]
    pub publish: Vec<berth_net::PortMapping>,
    /// A fixed address on the bridge network instead of the next free one.
    #[arg(long)]
    pub ip: Option<std::net::Ipv4Addr>,
    /// The subnet of the bridge network named by --network (default
    /// 10.89.0.0/16 for berth0); its bridge interface has the network's name.
    #[arg(long)]
    pub subnet: Option<berth_net::Ipv4Net>,
    /// With --subnet: makes the network dual-stack with this IPv6 subnet
    /// (each container gets the address at its IPv4 offset).
    #[arg(long, requires = "subnet")]
    pub subnet6: Option<berth_net::Ipv6Net>,
    /// A JSON file listing bridge and overlay networks (berth's
    /// `BridgeNetwork`: name, bridge, subnet, and optionally range,
    /// subnet6 and vxlan {vni, local, peers, port}); they add to or replace
    /// berth0.
    #[arg(long, value_name = "FILE")]
    pub network_config: Option<PathBuf>,
    /// The network namespace (a file such as /run/netns/NAME) that plays
    /// the host for bridges, veths and NAT; default: berth's own.
    #[arg(long, value_name = "PATH")]
    pub host_netns: Option<PathBuf>,
    /// Where --network cni=NAME finds its configuration list (a file of
    /// the directory whose "name" is NAME).
    #[arg(long, value_name = "DIR", default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// Where CNI plugins are found (repeatable; default /usr/lib/cni and
    /// /opt/cni/bin).
    #[arg(long, value_name = "DIR")]
    pub cni_bin_dir: Vec<PathBuf>,
    /// Make the container from this stored image (see `berth pull`)
    /// instead of a bundle: its rootfs is an overlay of the image's
    /// layers and its process comes from the image config.
    #[arg(long, conflicts_with = "bundle")]
    pub image: Option<String>,
    /// With --image: extra environment (NAME=VALUE), repeatable.
    #[arg(short, long, requires = "image")]
    pub env: Vec<String>,
    /// With --image: the working directory.
    #[arg(short = 'w', long, requires = "image")]
    pub workdir: Option<String>,
    /// With --image: the user (uid[:gid] or name[:group]).
    #[arg(short, long, requires = "image")]
    pub user: Option<String>,
    /// With --image: replace the image's entrypoint.
    #[arg(long, requires = "image")]
    pub entrypoint: Option<String>,
    /// With --image: allocate a pseudo-terminal.
    #[arg(short, long, requires = "image")]
    pub tty: bool,
    /// Capture the container's stdout and stderr in this file (the CRI log
    /// format, rotated; read with `berth logs`): a berth shim then parents
    /// the container and drains its output. `run -d` does this by default,
    /// into container.log in the state directory, when berth's own stdout
    /// and stderr are a terminal (nothing else would ever read them).
    #[arg(long, value_name = "FILE")]
    pub log_path: Option<PathBuf>,
    /// With captured output: the most bytes one log file holds before it is
    /// rotated (a number, or with k, m or g) [default: 10m].
    #[arg(long, value_name = "SIZE")]
    pub log_max_size: Option<String>,
    /// With captured output: how many log files are kept, the live one
    /// included [default: 5].
    #[arg(long, value_name = "N")]
    pub log_max_files: Option<u32>,
}

#[derive(Debug, Args)]
pub struct Create {
    #[command(flatten)]
    pub flags: CreateFlags,
    pub id: String,
    /// With --image: the command, replacing the image's cmd.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Pull {
    /// `[registry[:port]/]repository[:tag|@digest]`.
    pub reference: String,
    /// Plain HTTP and no certificate check for a non-loopback registry.
    #[arg(long)]
    pub insecure: bool,
    /// `user:password` for the registry.
    #[arg(long)]
    pub creds: Option<String>,
    /// Pull only if a cosign signature verifies with this PEM public key
    /// (repeatable: any of them).
    #[arg(long)]
    pub verify_key: Vec<PathBuf>,
    /// No progress output.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct Images {
    /// table or json.
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// Print only the references.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct Rmi {
    /// The references to remove.
    #[arg(required = true)]
    pub references: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Commit {
    /// The container.
    pub id: String,
    /// The new image's reference.
    pub reference: String,
}

#[derive(Debug, Args)]
pub struct Import {
    /// The OCI image layout directory.
    pub dir: PathBuf,
    /// The reference to tag it with.
    pub reference: String,
    /// The image's name in the layout's index.json (when it has several).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct Run {
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Return once started instead of waiting for the container.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container after it exits (do not delete it).
    #[arg(long)]
    pub keep: bool,
    pub id: String,
    /// With --image: the command, replacing the image's cmd.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct List {
    /// table or json.
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// Print only the ids.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct Kill {
    /// Signal every process of the container.
    #[arg(short, long)]
    pub all: bool,
    pub id: String,
    /// Signal name or number (default SIGTERM).
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Debug, Args)]
pub struct Delete {
    /// Kill the container if it is running.
    #[arg(short, long)]
    pub force: bool,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Exec {
    /// A process.json to run (instead of the command line).
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Unix socket to send the pseudo-terminal master to.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Write the process's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Return once the process started.
    #[arg(short, long)]
    pub detach: bool,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Extra environment (NAME=VALUE), repeatable.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// uid[:gid] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Extra groups, repeatable.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (CAP_...), repeatable.
    #[arg(short, long = "cap")]
    pub caps: Vec<String>,
    /// Set no_new_privs.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Pass this many extra descriptors (3, 4, ...) to the process.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Accepted for compatibility.
    #[arg(long)]
    pub ignore_paused: bool,
    /// Accepted for compatibility (the process goes in the container's
    /// cgroup).
    #[arg(long)]
    pub cgroup: Option<String>,
    /// Accepted for compatibility.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Accepted for compatibility.
    #[arg(long)]
    pub process_label: Option<String>,
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Ps {
    /// table or json.
    #[arg(short, long, default_value = "table")]
    pub format: String,
    pub id: String,
    /// Arguments for ps(1) in table format (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Update {
    /// A JSON file of `linux.resources` ("-" for stdin).
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes.
    #[arg(long, allow_negative_numbers = true)]
    pub memory: Option<i64>,
    /// Memory soft limit in bytes.
    #[arg(long, allow_negative_numbers = true)]
    pub memory_reservation: Option<i64>,
    /// Memory + swap limit in bytes (-1: unlimited).
    #[arg(long, allow_negative_numbers = true)]
    pub memory_swap: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// CPU CFS period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds.
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU realtime period in microseconds (v1).
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds (v1).
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// 1: schedule the container's tasks as SCHED_IDLE (cpu.idle, 5.15+).
    #[arg(long)]
    pub cpu_idle: Option<i64>,
    /// CPUs to use (0-3, 0,1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of pids.
    #[arg(long, allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Events {
    /// Print one resource usage sample and exit.
    #[arg(long)]
    pub stats: bool,
    /// Also print a usage sample at this interval (e.g. 5s, 500ms).
    #[arg(long)]
    pub interval: Option<String>,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Logs {
    /// Keep printing new lines until the container exits.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines (then, with --follow, every new one).
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Only lines since this time: RFC 3339 (2026-12-05T10:00:00Z), seconds
    /// since the epoch, or a duration ago (10m, 30s).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Prefix each line with its time (RFC 3339).
    #[arg(short, long)]
    pub timestamps: bool,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Stop {
    /// Seconds to wait after the stop signal before SIGKILL.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub time: u64,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct SpecCmd {
    /// A spec for an unprivileged user (user namespace, no network
    /// namespace).
    #[arg(long)]
    pub rootless: bool,
    /// Where to write config.json.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::{Cli, Command, LogFormat};
    use clap::{CommandFactory, Parser};

    #[test]
    fn every_subcommand_is_well_formed_once_defined() {
        // Builds the deferred subcommands too.
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_come_before_the_command_as_with_runc() {
        let cli = Cli::try_parse_from([
            "berth",
            "--root",
            "/run/x",
            "--log-format",
            "json",
            "kill",
            "c1",
            "KILL",
        ])
        .unwrap();
        assert_eq!(cli.global.root.as_deref(), Some("/run/x".as_ref()));
        assert!(matches!(cli.global.log_format, LogFormat::Json));
        let Some(Command::Kill(k)) = cli.command else {
            panic!("not kill: {:?}", cli.command);
        };
        assert_eq!((k.id.as_str(), k.signal.as_str()), ("c1", "KILL"));
        // runc refuses them after the command ("flag provided but not
        // defined"); so does berth.
        let err = Cli::try_parse_from(["berth", "kill", "--root", "/run/x", "c1"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
