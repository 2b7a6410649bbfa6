//! Configuration errors. Each message names the setting (its TOML key, as
//! `section.field`, or the environment variable), what was expected and
//! what was found.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A configuration that cannot be read or is not acceptable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The TOML is invalid, has an unknown or missing key, or a value of
    /// the wrong type. The message names the key and its line.
    #[error("invalid {origin}: {source}")]
    Parse {
        /// `config file <path>`, or `config` for text.
        origin: String,
        /// What the TOML parser reported.
        source: toml::de::Error,
    },
    /// An `HSM_NODE_*` variable that names no setting (a typo, or a setting
    /// this version does not have).
    #[error(
        "unknown environment variable {name}: no node setting has this name \
         (expected HSM_NODE_<SECTION>_<FIELD>, see docs/node-config.md)"
    )]
    UnknownEnv {
        /// The variable.
        name: String,
    },
    /// An `HSM_NODE_*` variable whose value does not parse.
    #[error("environment variable {name}: expected {expected}, found {found:?}")]
    EnvValue {
        /// The variable.
        name: String,
        /// What its value must be.
        expected: &'static str,
        /// The value found.
        found: String,
    },
    /// An `HSM_NODE_*` variable whose name or value is not valid Unicode.
    #[error("environment variable {name}: expected valid unicode, found other bytes")]
    EnvNotUnicode {
        /// The variable, with invalid bytes replaced.
        name: String,
    },
    /// A number outside its accepted range.
    #[error("{field}: expected a value from {min} to {max}, found {found}")]
    OutOfRange {
        /// The setting, as `section.field`.
        field: &'static str,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
        /// The value found.
        found: u64,
    },
    /// The Raft timeouts are not ordered as Raft needs them.
    #[error(
        "raft timeouts: expected 0 < heartbeat_interval_ms < election_timeout_min_ms < \
         election_timeout_max_ms, found {heartbeat_interval_ms}, {election_timeout_min_ms} \
         and {election_timeout_max_ms}"
    )]
    RaftTimeouts {
        /// `raft.heartbeat_interval_ms`.
        heartbeat_interval_ms: u64,
        /// `raft.election_timeout_min_ms`.
        election_timeout_min_ms: u64,
        /// `raft.election_timeout_max_ms`.
        election_timeout_max_ms: u64,
    },
    /// `advertise` is unset and cannot be derived from `listen`.
    #[error(
        "advertise: expected the host:port other members and clients reach this node at, \
         found none; it is required because listen ({listen}) is a wildcard address or port 0"
    )]
    AdvertiseRequired {
        /// The `listen` address.
        listen: SocketAddr,
    },
    /// A setting whose value has the wrong form (an empty path, a zone
    /// with spaces, an advertise address without a port, ...).
    #[error("{field}: expected {expected}, found {found:?}")]
    Invalid {
        /// The setting, as `section.field`.
        field: &'static str,
        /// What its value must be.
        expected: &'static str,
        /// The value found.
        found: String,
    },
    /// A path that is not valid Unicode cannot be written into a TOML file.
    #[error("{field}: expected a path that is valid unicode, found {}", path.display())]
    NotUnicode {
        /// The setting.
        field: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// openraft refused the Raft settings.
    #[error("raft: openraft refused the settings: {0}")]
    Raft(#[source] Box<openraft::ConfigError>),
}
