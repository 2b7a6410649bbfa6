//! The node's configuration: what `hsm-node start --config node.toml` reads.
//!
//! Loading is three steps, in this order: parse the TOML file
//! ([`NodeConfig::load`], [`NodeConfig::from_toml_str`]), apply the
//! `HSM_NODE_<SECTION>_<FIELD>` environment overrides
//! ([`NodeConfig::apply_env`]), then [`NodeConfig::validate`].
//! [`NodeConfig::from_env_and_file`] does all three with the process
//! environment. `docs/node-config.md` describes every setting.
//!
//! Defaults that derive from other settings (`advertise` from `listen`, the
//! storage key and TLS paths from `data_dir`) are stored as `None` and
//! resolved by accessors ([`NodeConfig::advertise_addr`],
//! [`NodeConfig::storage_key_file`], ...), so an environment override of
//! `listen` or `data_dir` moves them too.
//!
//! Invariants: an unknown key in the file or an unknown `HSM_NODE_*`
//! variable is an error, never ignored; [`NodeConfig::example`] parses back
//! to the configuration it describes.

mod env;
mod error;
mod example;
mod validate;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use hsm_proto::NodeId;
use serde::{Deserialize, Serialize};

pub use env::RESERVED_ENV_VARS;
pub use error::ConfigError;

/// UDP port of the default `listen` address (QUIC, Raft and clients).
pub const DEFAULT_PORT: u16 = 7400;
/// Snapshot chunk size given to openraft: each chunk travels in one Raft
/// frame, so [`RaftSettings::max_frame_bytes`] must exceed it.
pub const SNAPSHOT_CHUNK_BYTES: usize = 3 * 1024 * 1024;
/// How long sending one snapshot chunk (and installing the snapshot, for
/// the last) may take, in milliseconds.
pub const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 10_000;
/// Smallest accepted [`RaftSettings::max_frame_bytes`]: a snapshot chunk
/// plus room for the rest of the request.
pub const MIN_RAFT_FRAME_BYTES: usize = SNAPSHOT_CHUNK_BYTES + 1024 * 1024;
/// Smallest accepted [`LimitSettings::max_client_frame_bytes`]: room for a
/// key import with the largest key blob and its attributes.
pub const MIN_CLIENT_FRAME_BYTES: usize = 64 * 1024;
/// Largest accepted frame limit, Raft or client: the codec decodes nothing
/// larger.
pub const MAX_FRAME_BYTES: usize = hsm_proto::codec::MAX_DECODE_BYTES;

/// Everything a node reads at start. Field names are the TOML keys; every
/// section is optional and every field has a default except `node_id` and
/// `data_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's Raft id: unique in the cluster, never reused.
    /// Required; 1 to 2^63-1.
    pub node_id: u64,
    /// Placement label (rack, room or site) of this node, up to 64 ASCII
    /// letters, digits, `-`, `_` or `.`. Default `default`.
    #[serde(default = "default_zone")]
    pub zone: String,
    /// UDP address the node's QUIC endpoint binds, for Raft and clients
    /// alike. Default `0.0.0.0:7400`.
    #[serde(default = "default_listen", deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// `host:port` other members and clients reach this node at. `None`:
    /// derived from `listen`, which must then name a specific address and
    /// port (see [`NodeConfig::advertise_addr`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// Directory of the node's Raft log, state, key files and (by default)
    /// its storage key and certificates. Required. Relative paths here and
    /// below are relative to the working directory.
    pub data_dir: PathBuf,
    /// `[unseal]`: where the node storage key comes from.
    #[serde(default)]
    pub unseal: UnsealSettings,
    /// `[tls]`: the cluster CA and this node's certificate and key.
    #[serde(default)]
    pub tls: TlsSettings,
    /// `[raft]`: consensus timing, snapshots and the Raft frame limit.
    #[serde(default)]
    pub raft: RaftSettings,
    /// `[sessions]`: client session tokens.
    #[serde(default)]
    pub sessions: SessionSettings,
    /// `[log]`: what is logged and how.
    #[serde(default)]
    pub log: LogSettings,
    /// `[limits]`: limits on connections and on client traffic.
    #[serde(default)]
    pub limits: LimitSettings,
    /// `[backup]`: where backups go, how often, and how long they are kept.
    #[serde(default)]
    pub backup: BackupSettings,
    /// `[metrics]`: the Prometheus and health endpoint.
    #[serde(default)]
    pub metrics: MetricsSettings,
}

/// `[metrics]`: the metrics and health endpoint (`crate::metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// TCP address of the plain-HTTP endpoint serving `/metrics`,
    /// `/health/live` and `/health/ready`. `None` (the default): no
    /// endpoint. It carries counts only, but give it a loopback or
    /// management-network address.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_socket_addr"
    )]
    pub listen: Option<SocketAddr>,
}

/// `[unseal]`: the source of the node storage key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsealSettings {
    /// The 32-byte storage key file (mode 0600). `None`:
    /// `<data_dir>/storage.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_key_file: Option<PathBuf>,
}

/// `[tls]`: PEM files for the QUIC transport. `None` means the file of
/// that name under `<data_dir>/tls/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The cluster CA certificate. `None`: `<data_dir>/tls/ca.pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// This node's certificate. `None`: `<data_dir>/tls/node.pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_cert: Option<PathBuf>,
    /// This node's certificate key. `None`: `<data_dir>/tls/node.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_key: Option<PathBuf>,
}

/// `[raft]`: consensus settings, passed to openraft by
/// [`NodeConfig::raft_config`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSettings {
    /// How often the leader sends heartbeats, in milliseconds. Default 250.
    pub heartbeat_interval_ms: u64,
    /// Shortest election timeout in milliseconds; must exceed the heartbeat
    /// interval. Default 1000.
    pub election_timeout_min_ms: u64,
    /// Longest election timeout in milliseconds; must exceed the minimum.
    /// Default 2000.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many log entries since the last one.
    /// Default 5000.
    pub snapshot_every_logs: u64,
    /// Log entries kept behind a snapshot when the log is purged, so a
    /// follower that lags slightly catches up without a snapshot. Default
    /// 1000.
    pub logs_kept_after_snapshot: u64,
    /// Largest Raft message accepted from a peer, in bytes: 4 MiB to
    /// 64 MiB. Default 32 MiB.
    pub max_frame_bytes: usize,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat_interval_ms: 250,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            snapshot_every_logs: 5000,
            logs_kept_after_snapshot: 1000,
            max_frame_bytes: crate::raft::MAX_RAFT_FRAME_BYTES,
        }
    }
}

/// `[sessions]`: client session tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// How long a session token is valid after login, in seconds: 60 to
    /// 86400. Default 3600.
    pub lifetime_s: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings { lifetime_s: 3600 }
    }
}

/// `[log]`: logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A tracing-subscriber `EnvFilter` directive such as `info` or
    /// `info,hsm_node=debug`. Stored as given; the logger parses it.
    /// Default `info`.
    pub level: String,
    /// Output format. Default `text`.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (`text`).
    #[default]
    Text,
    /// One JSON object per line (`json`).
    Json,
}

impl LogFormat {
    /// The name used in the file and the environment: `text` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// `[limits]`: per-connection limits on client traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Largest client request accepted, in bytes: 64 KiB to 64 MiB.
    /// Default 1 MiB.
    pub max_client_frame_bytes: usize,
    /// Most requests one client connection may have in progress at once:
    /// 1 to 65536. Default 256.
    pub max_in_flight_per_connection: u32,
    /// Most connections (clients' and members', handshakes included) the
    /// node holds at once: 16 to 1000000. Default 4096.
    pub max_connections: u32,
    /// Most of them from one IP address: 1 to 1000000. Default 256.
    pub max_connections_per_address: u32,
    /// Most requests that check or hash a password (logins, password
    /// changes, new users) one IP address may have in progress on the
    /// node at once, waiting or running; more are refused at once, so one
    /// address cannot queue ahead of everyone's logins: 1 to 65536.
    /// Default 4.
    pub max_password_checks_per_address: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_client_frame_bytes: 1024 * 1024,
            max_in_flight_per_connection: 256,
            max_connections: 4096,
            max_connections_per_address: 256,
            max_password_checks_per_address: 4,
        }
    }
}

/// `[backup]`: sealed backups to object storage. Every member should have
/// the same section: the leader takes the periodic backups, and any member
/// may serve `hsm backup` requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupSettings {
    /// Where backups are written: `file:///absolute/dir` or
    /// `s3://bucket/prefix` (credentials, region and endpoint from the AWS
    /// environment variables). `None`: no backups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Recovery public key files (`hsm-backup-recovery-public-v1 <hex>`):
    /// each backup's key is wrapped for every one, and the matching private
    /// key alone restores it into a new cluster. At least one is required
    /// with a destination.
    pub recovery_keys: Vec<PathBuf>,
    /// Seconds between periodic backups; 0 takes backups only on demand.
    /// Default 86400 (daily).
    pub interval_s: u64,
    /// Retention: how many of the newest backups to keep (1 to 100000).
    /// Default 30.
    pub keep_last: u32,
    /// Retention: delete backups older than this many seconds (the newest
    /// is always kept); 0 keeps them regardless of age. Default 0.
    pub max_age_s: u64,
    /// Seconds between the leader's copies of new events into the audit
    /// archive beside the backups (1 to 3600). Default 10.
    pub audit_interval_s: u64,
    /// Seconds between each node's writes of its key use counts (what
    /// users did with which key, how often) into the event trail (1 to
    /// 3600). Default 60. Kept with or without a destination.
    pub key_use_interval_s: u64,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            destination: None,
            recovery_keys: Vec::new(),
            interval_s: 86_400,
            keep_last: 30,
            max_age_s: 0,
            audit_interval_s: 10,
            key_use_interval_s: 60,
        }
    }
}

fn default_zone() -> String {
    "default".to_owned()
}

/// A socket address, with an error that says what was expected.
fn socket_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "expected a socket address such as 0.0.0.0:7400 or [::]:7400, found {text:?}"
        ))
    })
}

fn optional_socket_addr<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    socket_addr(d).map(Some)
}

fn default_listen() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_PORT)
}

impl NodeConfig {
    /// A configuration with every default: what a file holding only
    /// `node_id` and `data_dir` gives.
    pub fn new(node_id: u64, data_dir: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            node_id,
            zone: default_zone(),
            listen: default_listen(),
            advertise: None,
            data_dir: data_dir.into(),
            unseal: UnsealSettings::default(),
            tls: TlsSettings::default(),
            raft: RaftSettings::default(),
            sessions: SessionSettings::default(),
            log: LogSettings::default(),
            limits: LimitSettings::default(),
            backup: BackupSettings::default(),
            metrics: MetricsSettings::default(),
        }
    }

    /// Parses a configuration from TOML text, filling in defaults. Does not
    /// validate: apply the environment, then call [`NodeConfig::validate`].
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for invalid TOML, an unknown or missing key,
    /// or a value of the wrong type; the message names the key and line.
    pub fn from_toml_str(text: &str) -> Result<NodeConfig, ConfigError> {
        parse(text, "config".to_owned())
    }

    /// Reads and parses the configuration file at `path`, like
    /// [`NodeConfig::from_toml_str`]. Does not validate.
    ///
    /// # Errors
    /// [`ConfigError::Read`] if the file cannot be read,
    /// [`ConfigError::Parse`] as for [`NodeConfig::from_toml_str`].
    pub fn load(path: impl AsRef<Path>) -> Result<NodeConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        parse(&text, format!("config file {}", path.display()))
    }

    /// What `hsm-node start` uses: [`NodeConfig::load`], then
    /// [`NodeConfig::apply_env`] with the process environment, then
    /// [`NodeConfig::validate`].
    ///
    /// # Errors
    /// Any error of those three steps, or [`ConfigError::EnvNotUnicode`]
    /// for an `HSM_NODE_*` variable that is not valid Unicode.
    pub fn from_env_and_file(path: impl AsRef<Path>) -> Result<NodeConfig, ConfigError> {
        let mut config = NodeConfig::load(path)?;
        config.apply_env(env::process_vars()?)?;
        config.validate()?;
        Ok(config)
    }

    /// This node's id as the cluster's id type.
    pub fn id(&self) -> NodeId {
        NodeId(self.node_id)
    }

    /// The `host:port` other members and clients use: `advertise` if set,
    /// else `listen` when it names a specific address and port.
    ///
    /// # Errors
    /// [`ConfigError::AdvertiseRequired`] when `advertise` is unset and
    /// `listen` is a wildcard address or port 0.
    pub fn advertise_addr(&self) -> Result<String, ConfigError> {
        match &self.advertise {
            Some(advertise) => Ok(advertise.clone()),
            None if self.listen.ip().is_unspecified() || self.listen.port() == 0 => {
                Err(ConfigError::AdvertiseRequired {
                    listen: self.listen,
                })
            }
            None => Ok(self.listen.to_string()),
        }
    }

    /// The storage key file: `unseal.storage_key_file`, else
    /// `<data_dir>/storage.key`.
    pub fn storage_key_file(&self) -> PathBuf {
        self.unseal
            .storage_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("storage.key"))
    }

    /// The cluster CA certificate: `tls.ca_cert`, else
    /// `<data_dir>/tls/ca.pem`.
    pub fn ca_cert(&self) -> PathBuf {
        self.tls_file(&self.tls.ca_cert, "ca.pem")
    }

    /// This node's certificate: `tls.node_cert`, else
    /// `<data_dir>/tls/node.pem`.
    pub fn node_cert(&self) -> PathBuf {
        self.tls_file(&self.tls.node_cert, "node.pem")
    }

    /// This node's certificate key: `tls.node_key`, else
    /// `<data_dir>/tls/node.key`.
    pub fn node_key(&self) -> PathBuf {
        self.tls_file(&self.tls.node_key, "node.key")
    }

    /// The node's sealed identity (event-signing and key-agreement keys):
    /// `<data_dir>/identity.sealed`.
    pub fn identity_file(&self) -> PathBuf {
        self.data_dir.join("identity.sealed")
    }

    /// The sealed cluster domain key: `<data_dir>/domain.sealed`.
    pub fn domain_key_file(&self) -> PathBuf {
        self.data_dir.join("domain.sealed")
    }

    /// The RocksDB store of the Raft log and state: `<data_dir>/raft`.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("raft")
    }

    fn tls_file(&self, set: &Option<PathBuf>, name: &str) -> PathBuf {
        set.clone()
            .unwrap_or_else(|| self.data_dir.join("tls").join(name))
    }

    /// The openraft configuration: the `[raft]` timing and snapshot policy,
    /// `logs_kept_after_snapshot` entries kept for followers that lag slightly,
    /// and snapshot chunks of [`SNAPSHOT_CHUNK_BYTES`].
    ///
    /// # Errors
    /// [`ConfigError::Raft`] if openraft refuses the settings (which
    /// [`NodeConfig::validate`] rules out).
    pub fn raft_config(&self) -> Result<openraft::Config, ConfigError> {
        openraft::Config {
            cluster_name: "hsm-cluster".to_owned(),
            heartbeat_interval: self.raft.heartbeat_interval_ms,
            election_timeout_min: self.raft.election_timeout_min_ms,
            election_timeout_max: self.raft.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.raft.snapshot_every_logs),
            max_in_snapshot_log_to_keep: self.raft.logs_kept_after_snapshot,
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES as u64,
            // A snapshot chunk (3 MiB) and, for the last one, the install
            // (a synced RocksDB batch) must fit; openraft's 200 ms default
            // does not on a busy or distant node.
            install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(|e| ConfigError::Raft(Box::new(e)))
    }
}

fn parse(text: &str, origin: String) -> Result<NodeConfig, ConfigError> {
    toml::from_str(text).map_err(|source| ConfigError::Parse { origin, source })
}
