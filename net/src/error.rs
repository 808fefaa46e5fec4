//! The error type of `berth-net`.

use std::io;
use std::path::PathBuf;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in a container's network. Every variant leaves
/// nothing of the container's network behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A network option is invalid: `option` names it (`network.publish`,
    /// `network.address`). Nothing was done.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option, as berth-net names it.
        option: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The spec cannot be given a network (it joins another network
    /// namespace, say). `field` is the JSON path of the value.
    #[error("invalid spec: {field}: {reason}")]
    InvalidSpec {
        /// JSON path of the offending field, as in `config.json`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A network setting conflicts with what exists, or a network
    /// operation failed (no free address, a refused rule).
    #[error("network {network}: {reason}")]
    Network {
        /// The network (or berth's nftables table) concerned.
        network: String,
        /// What went wrong.
        reason: String,
    },

    /// A CNI plugin failed (or ran out of time). `message` and `details`
    /// are the plugin's own, from the error it printed as JSON (its
    /// standard error when it printed none). What the plugins of the list
    /// had made was deleted again.
    #[error("network {network}: CNI plugin {plugin} failed on {command}: {message}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
    Cni {
        /// The CNI network (the conflist's `name`).
        network: String,
        /// The plugin (its `type`).
        plugin: String,
        /// `ADD`, `CHECK` or `DEL`.
        command: &'static str,
        /// The plugin's error code (CNI's well-known codes are below 100),
        /// `None` when it printed no error object or timed out.
        code: Option<u32>,
        /// The plugin's `msg`.
        message: String,
        /// The plugin's `details`.
        details: String,
    },

    /// A network's subnet overlaps an address already in use on the host.
    /// Nothing was changed.
    #[error("network {network}: subnet {subnet} overlaps {other}")]
    SubnetOverlap {
        /// The network whose subnet was refused.
        network: String,
        /// Its subnet.
        subnet: String,
        /// What it overlaps (an address on an interface, another network).
        other: String,
    },

    /// A host port asked for with `--publish` is taken, by another
    /// container or by a socket of the host. Nothing was changed.
    #[error("port {host_ip}:{port}/{protocol} is taken: {by}")]
    PortTaken {
        /// The host address (`0.0.0.0` for every address).
        host_ip: std::net::Ipv4Addr,
        /// The host port.
        port: u16,
        /// `tcp` or `udp`.
        protocol: &'static str,
        /// Who holds it.
        by: String,
    },

    /// A network names an interface the host does not have (a macvlan
    /// parent). `field` is the option that named it.
    #[error("{field}: no interface {name:?} on the host")]
    UnknownInterface {
        /// The option naming the interface.
        field: &'static str,
        /// The interface name.
        name: String,
    },

    /// An address asked for is not a host address of the network's subnet.
    #[error("network {network}: address {address} is not a host address of {subnet}")]
    AddressOutsideSubnet {
        /// The address asked for.
        address: std::net::Ipv4Addr,
        /// The network's subnet.
        subnet: String,
        /// The network.
        network: String,
    },

    /// The operation needs something the container or host lacks (CHECK on
    /// a network older than CNI 0.4.0, say).
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// A host-side operation failed: `op` says what was being done.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What berth-net was doing.
        op: &'static str,
        /// The path it was working on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A system call (or netlink request) failed.
    #[error("{op}: {source}")]
    Sys {
        /// The system call or operation.
        op: &'static str,
        /// The errno.
        #[source]
        source: io::Error,
    },

    /// The runtime refused or failed (the container's state, say).
    #[error(transparent)]
    Runtime(berth::Error),
}

impl Error {
    pub(crate) fn invalid_option(option: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidOption {
            option: option.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_spec(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidSpec {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(op: &'static str, source: impl Into<io::Error>) -> Self {
        Error::Sys {
            op,
            source: source.into(),
        }
    }

    /// The errno behind this error, when the kernel refused something.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } | Error::Sys { source, .. } => source.raw_os_error(),
            Error::Runtime(e) => e.errno(),
            _ => None,
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::sys("system call", io::Error::from(e))
    }
}

/// The runtime's error, or this crate's own when the runtime reports one
/// of its extension hooks (a [`berth::Error::Extension`] of this crate).
impl From<berth::Error> for Error {
    fn from(e: berth::Error) -> Self {
        match e {
            berth::Error::Extension { name, source } if name == crate::EXTENSION_NAME => {
                match source.downcast::<Error>() {
                    Ok(own) => *own,
                    Err(source) => Error::Runtime(berth::Error::Extension { name, source }),
                }
            }
            e => Error::Runtime(e),
        }
    }
}

/// The error of an [`Extension`](berth::extension::Extension) hook: the
/// runtime's own errors pass through as they are, the network's are
/// [`berth::Error::Extension`] (downcast its source to [`Error`]).
impl From<Error> for berth::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Runtime(e) => e,
            e => berth::Error::extension(crate::EXTENSION_NAME, e),
        }
    }
}
