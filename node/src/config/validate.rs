//! The rules a configuration must meet before a node starts with it.

use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;

use super::{
    ConfigError, NodeConfig, MAX_FRAME_BYTES, MIN_CLIENT_FRAME_BYTES, MIN_RAFT_FRAME_BYTES,
};

/// Longest zone name.
const MAX_ZONE_LEN: usize = 64;
/// Shortest and longest session lifetime, in seconds.
const SESSION_LIFETIME_S: (u64, u64) = (60, 86_400);
/// Most requests in flight on one client connection.
const MAX_IN_FLIGHT: u64 = 65_536;
/// Bounds of `limits.max_connections` (and of its per-address share).
const MIN_CONNECTIONS: u64 = 16;
const MAX_CONNECTIONS: u64 = 1_000_000;
/// Longest interval between periodic backups: a year.
const MAX_BACKUP_INTERVAL_S: u64 = 366 * 86_400;
/// Most backups retention may be told to keep.
const MAX_KEEP_LAST: u64 = 100_000;
/// Largest node id: TOML integers are signed 64-bit, and a node id must be
/// writable into a config file.
const MAX_NODE_ID: u64 = i64::MAX as u64;

impl NodeConfig {
    /// Checks every rule, after defaults and environment overrides are
    /// applied. `docs/node-config.md` lists the rules with each setting.
    ///
    /// # Errors
    /// The first rule broken, as a [`ConfigError`] naming the setting, what
    /// was expected and what was found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        range("node_id", self.node_id, 1, MAX_NODE_ID)?;
        self.validate_zone()?;
        non_empty_path("data_dir", &self.data_dir)?;
        match &self.advertise {
            Some(advertise) => check_advertise(advertise)?,
            None => {
                self.advertise_addr()?;
            }
        }
        let paths = [
            ("unseal.storage_key_file", &self.unseal.storage_key_file),
            ("tls.ca_cert", &self.tls.ca_cert),
            ("tls.node_cert", &self.tls.node_cert),
            ("tls.node_key", &self.tls.node_key),
        ];
        for (field, path) in paths {
            if let Some(path) = path {
                non_empty_path(field, path)?;
            }
        }
        self.validate_raft()?;
        let (min, max) = SESSION_LIFETIME_S;
        range("sessions.lifetime_s", self.sessions.lifetime_s, min, max)?;
        if self.log.level.trim().is_empty() {
            return Err(invalid(
                "log.level",
                "a tracing filter directive such as info",
                &self.log.level,
            ));
        }
        range_usize(
            "limits.max_client_frame_bytes",
            self.limits.max_client_frame_bytes,
            MIN_CLIENT_FRAME_BYTES,
            MAX_FRAME_BYTES,
        )?;
        range(
            "limits.max_in_flight_per_connection",
            u64::from(self.limits.max_in_flight_per_connection),
            1,
            MAX_IN_FLIGHT,
        )?;
        range(
            "limits.max_connections",
            u64::from(self.limits.max_connections),
            MIN_CONNECTIONS,
            MAX_CONNECTIONS,
        )?;
        range(
            "limits.max_connections_per_address",
            u64::from(self.limits.max_connections_per_address),
            1,
            MAX_CONNECTIONS,
        )?;
        range(
            "limits.max_password_checks_per_address",
            u64::from(self.limits.max_password_checks_per_address),
            1,
            MAX_IN_FLIGHT,
        )?;
        self.validate_backup()
    }

    fn validate_backup(&self) -> Result<(), ConfigError> {
        let b = &self.backup;
        range("backup.keep_last", u64::from(b.keep_last), 1, MAX_KEEP_LAST)?;
        range("backup.interval_s", b.interval_s, 0, MAX_BACKUP_INTERVAL_S)?;
        range("backup.audit_interval_s", b.audit_interval_s, 1, 3600)?;
        range("backup.key_use_interval_s", b.key_use_interval_s, 1, 3600)?;
        for path in &b.recovery_keys {
            non_empty_path("backup.recovery_keys", path)?;
        }
        let Some(url) = &b.destination else {
            return Ok(());
        };
        let well_formed = url
            .strip_prefix("file:///")
            .is_some_and(|rest| !rest.trim_matches('/').is_empty())
            || url
                .strip_prefix("s3://")
                .is_some_and(|rest| !rest.split('/').next().unwrap_or("").is_empty());
        if !well_formed {
            return Err(invalid(
                "backup.destination",
                "file:///absolute/dir or s3://bucket[/prefix]",
                url,
            ));
        }
        if b.recovery_keys.is_empty() {
            return Err(invalid(
                "backup.recovery_keys",
                "at least one recovery public key file when backup.destination is set \
                 (without one, a backup opens only inside the cluster it came from)",
                "[]",
            ));
        }
        Ok(())
    }

    fn validate_zone(&self) -> Result<(), ConfigError> {
        let ok = !self.zone.is_empty()
            && self.zone.len() <= MAX_ZONE_LEN
            && self
                .zone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(())
        } else {
            Err(invalid(
                "zone",
                "1 to 64 ASCII letters, digits, '-', '_' or '.'",
                &self.zone,
            ))
        }
    }

    fn validate_raft(&self) -> Result<(), ConfigError> {
        let r = &self.raft;
        let ordered = 0 < r.heartbeat_interval_ms
            && r.heartbeat_interval_ms < r.election_timeout_min_ms
            && r.election_timeout_min_ms < r.election_timeout_max_ms;
        if !ordered {
            return Err(ConfigError::RaftTimeouts {
                heartbeat_interval_ms: r.heartbeat_interval_ms,
                election_timeout_min_ms: r.election_timeout_min_ms,
                election_timeout_max_ms: r.election_timeout_max_ms,
            });
        }
        range(
            "raft.snapshot_every_logs",
            r.snapshot_every_logs,
            1,
            u64::MAX,
        )?;
        range_usize(
            "raft.max_frame_bytes",
            r.max_frame_bytes,
            MIN_RAFT_FRAME_BYTES,
            MAX_FRAME_BYTES,
        )
    }
}

/// Checks that `advertise` is `host:port` others can connect to: a DNS
/// name, an IPv4 address or a bracketed IPv6 address, not a wildcard
/// address, and a port from 1 to 65535.
fn check_advertise(advertise: &str) -> Result<(), ConfigError> {
    let bad = |expected| invalid("advertise", expected, advertise);
    let Some((host, port)) = advertise.rsplit_once(':') else {
        return Err(bad("host:port, with a port"));
    };
    match port.parse::<u16>() {
        Ok(port) if port != 0 => {}
        _ => return Err(bad("host:port with a port from 1 to 65535")),
    }
    let ip = if let Some(inner) = host.strip_prefix('[') {
        let v6 = inner
            .strip_suffix(']')
            .and_then(|s| s.parse::<Ipv6Addr>().ok());
        let Some(v6) = v6 else {
            return Err(bad(
                "host:port with a bracketed IPv6 address such as [fd00::1]:7400",
            ));
        };
        Some(IpAddr::V6(v6))
    } else {
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .split('.')
                .all(|label| !label.is_empty() && label.len() <= 63)
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !name_ok {
            return Err(bad(
                "host:port with a DNS name, an IPv4 address or a bracketed IPv6 address",
            ));
        }
        host.parse::<IpAddr>().ok()
    };
    if ip.is_some_and(|ip| ip.is_unspecified()) {
        return Err(bad(
            "host:port with an address others can reach, not a wildcard",
        ));
    }
    Ok(())
}

fn non_empty_path(field: &'static str, path: &Path) -> Result<(), ConfigError> {
    if path.as_os_str().is_empty() {
        Err(invalid(field, "a path", ""))
    } else {
        Ok(())
    }
}

fn range(field: &'static str, found: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&found) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            field,
            min,
            max,
            found,
        })
    }
}

fn range_usize(
    field: &'static str,
    found: usize,
    min: usize,
    max: usize,
) -> Result<(), ConfigError> {
    let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    range(field, wide(found), wide(min), wide(max))
}

fn invalid(field: &'static str, expected: &'static str, found: &str) -> ConfigError {
    ConfigError::Invalid {
        field,
        expected,
        found: found.to_owned(),
    }
}
