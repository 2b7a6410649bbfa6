//! A commented configuration file, as `init` and `dev` write it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::{ConfigError, NodeConfig, DEFAULT_PORT};

impl NodeConfig {
    /// A commented TOML configuration for a node: `node_id`, `listen` and
    /// `data_dir` are set, every other setting is shown commented out with
    /// its default. It parses back to `NodeConfig::new(node_id, data_dir)`
    /// with `listen` set. When `listen` is a wildcard address or port 0,
    /// `advertise` is required and the file does not validate until it is
    /// set.
    ///
    /// # Errors
    /// [`ConfigError::NotUnicode`] if `data_dir` is not valid Unicode
    /// (TOML strings are Unicode).
    pub fn example(
        node_id: u64,
        data_dir: &Path,
        listen: SocketAddr,
    ) -> Result<String, ConfigError> {
        let dir = data_dir.to_str().ok_or_else(|| ConfigError::NotUnicode {
            field: "data_dir",
            path: data_dir.to_path_buf(),
        })?;
        let config = NodeConfig {
            listen,
            ..NodeConfig::new(node_id, dir)
        };
        let advertise = match config.advertise_addr() {
            Ok(derived) => format!(
                "# Derived from listen; set it when others reach this node by another name.\n\
                 # advertise = {}",
                quote(&derived)
            ),
            Err(_) => {
                let port = if listen.port() == 0 {
                    DEFAULT_PORT
                } else {
                    listen.port()
                };
                format!(
                    "# Required here: listen is a wildcard address or port 0. Set it to the\n\
                     # DNS name or address others reach this node at.\n\
                     # advertise = \"<host>:{port}\""
                )
            }
        };
        let (raft, sessions, log, limits) =
            (&config.raft, &config.sessions, &config.log, &config.limits);
        Ok(format!(
            r#"# hsm-node configuration; docs/node-config.md describes every setting.
# Commented-out settings show their defaults. Any setting can be overridden
# by an environment variable HSM_NODE_<SECTION>_<FIELD>, for example
# HSM_NODE_LISTEN or HSM_NODE_RAFT_HEARTBEAT_INTERVAL_MS.

# This node's Raft id: unique in the cluster, never reused.
node_id = {node_id}
# Placement label (rack, room or site) of this node.
# zone = {zone}
# UDP address of the QUIC endpoint, for Raft and clients alike.
listen = {listen}
# The host:port other members and clients use to reach this node.
{advertise}
# The node's Raft log, state and key files.
data_dir = {data_dir}

[unseal]
# The 32-byte node storage key file (mode 0600).
# storage_key_file = {storage_key_file}

[tls]
# The cluster CA certificate, this node's certificate and its key (PEM).
# ca_cert = {ca_cert}
# node_cert = {node_cert}
# node_key = {node_key}

[raft]
# Leader heartbeat interval; election timeouts are drawn between min and max.
# heartbeat_interval_ms = {heartbeat}
# election_timeout_min_ms = {election_min}
# election_timeout_max_ms = {election_max}
# Build a snapshot after this many log entries.
# snapshot_every_logs = {snapshot_every_logs}
# Log entries kept behind a snapshot for followers that lag slightly.
# logs_kept_after_snapshot = {logs_kept_after_snapshot}
# Largest Raft message accepted from a peer, in bytes.
# max_frame_bytes = {max_frame_bytes}

[sessions]
# Session token lifetime in seconds (60 to 86400).
# lifetime_s = {lifetime_s}

[log]
# A tracing filter directive, such as "info" or "info,hsm_node=debug".
# level = {level}
# "text" or "json".
# format = {format}

[limits]
# Largest client request, in bytes, and requests in flight per connection.
# max_client_frame_bytes = {max_client_frame_bytes}
# max_in_flight_per_connection = {max_in_flight}
# Connections held at once (handshakes included), in all and from one IP
# address.
# max_connections = {max_connections}
# max_connections_per_address = {max_connections_per_address}
# Requests checking or hashing a password (logins, password changes) in
# progress at once from one IP address; more are refused at once.
# max_password_checks_per_address = {max_password_checks_per_address}

[backup]
# Where sealed backups go: "file:///absolute/dir" or "s3://bucket/prefix"
# (AWS_* environment variables give S3 credentials, region and endpoint).
# Unset: no backups. Give every member the same section.
# destination = "file:///var/backups/hsm"
# Recovery public key files; a backup is sealed to each (required with a
# destination). Keep the private keys offline: one restores a backup alone.
# recovery_keys = ["/etc/hsm/recovery.pub"]
# Seconds between periodic backups (taken by the leader); 0: on demand only.
# interval_s = {interval_s}
# Retention: keep the newest keep_last; delete those older than max_age_s
# (0: no age limit). The newest and keep-forever backups are always kept.
# keep_last = {keep_last}
# max_age_s = {max_age_s}
# Seconds between the leader's copies of new events into the audit archive
# beside the backups (the trail outlives the Raft log there; hsm audit).
# audit_interval_s = {audit_interval_s}
# Seconds between each node's writes of its key use counts (who used which
# key how, how often; never the data) into the event trail.
# key_use_interval_s = {key_use_interval_s}

[metrics]
# Plain-HTTP endpoint for Prometheus (/metrics) and health checks
# (/health/live, /health/ready). Unset: none. Counts only, no secrets; use
# a loopback or management address.
# listen = "127.0.0.1:9464"
"#,
            zone = quote(&config.zone),
            listen = quote(&listen.to_string()),
            data_dir = quote(dir),
            storage_key_file = quote_path(config.storage_key_file()),
            ca_cert = quote_path(config.ca_cert()),
            node_cert = quote_path(config.node_cert()),
            node_key = quote_path(config.node_key()),
            heartbeat = raft.heartbeat_interval_ms,
            election_min = raft.election_timeout_min_ms,
            election_max = raft.election_timeout_max_ms,
            snapshot_every_logs = raft.snapshot_every_logs,
            logs_kept_after_snapshot = raft.logs_kept_after_snapshot,
            max_frame_bytes = raft.max_frame_bytes,
            lifetime_s = sessions.lifetime_s,
            level = quote(&log.level),
            format = quote(log.format.as_str()),
            max_client_frame_bytes = limits.max_client_frame_bytes,
            max_in_flight = limits.max_in_flight_per_connection,
            max_connections = limits.max_connections,
            max_connections_per_address = limits.max_connections_per_address,
            max_password_checks_per_address = limits.max_password_checks_per_address,
            interval_s = config.backup.interval_s,
            keep_last = config.backup.keep_last,
            max_age_s = config.backup.max_age_s,
            audit_interval_s = config.backup.audit_interval_s,
            key_use_interval_s = config.backup.key_use_interval_s,
        ))
    }
}

/// `s` as a TOML basic string, escaped as needed.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A path under a Unicode `data_dir`, so itself Unicode.
fn quote_path(path: PathBuf) -> String {
    quote(&path.to_string_lossy())
}

#[cfg(test)]
mod tests;
