//! Environment overrides: `HSM_NODE_<SECTION>_<FIELD>` in upper case, or
//! `HSM_NODE_<FIELD>` for top-level settings. An `HSM_NODE_*` variable that
//! names no setting is an error, so a typo cannot be silently ignored.

use std::path::PathBuf;
use std::str::FromStr;

use super::{ConfigError, LogFormat, NodeConfig};

/// Prefix of every variable read here.
pub(super) const PREFIX: &str = "HSM_NODE_";

/// `HSM_NODE_*` variables that are not settings and are ignored here:
/// `HSM_NODE_CONFIG` is the configuration file's path, read by the command
/// line.
pub const RESERVED_ENV_VARS: &[&str] = &["HSM_NODE_CONFIG"];

/// One overridable setting.
pub(super) struct Var {
    /// The variable.
    pub(super) name: &'static str,
    /// What its value must be, for the error message.
    expected: &'static str,
    /// Sets the value; `None` if it does not parse.
    set: fn(&mut NodeConfig, &str) -> Option<()>,
}

const PATH: &str = "a path";
const INTEGER: &str = "an unsigned integer";

/// Every overridable setting; `tests` checks that this covers every field.
pub(super) static VARS: &[Var] = &[
    Var {
        name: "HSM_NODE_NODE_ID",
        expected: INTEGER,
        set: |c, v| parsed(v).map(|n| c.node_id = n),
    },
    Var {
        name: "HSM_NODE_ZONE",
        expected: "a zone name",
        set: |c, v| {
            c.zone = v.to_owned();
            Some(())
        },
    },
    Var {
        name: "HSM_NODE_LISTEN",
        expected: "a socket address such as 0.0.0.0:7400 or [::]:7400",
        set: |c, v| parsed(v).map(|a| c.listen = a),
    },
    Var {
        name: "HSM_NODE_ADVERTISE",
        expected: "host:port",
        set: |c, v| {
            c.advertise = Some(v.to_owned());
            Some(())
        },
    },
    Var {
        name: "HSM_NODE_DATA_DIR",
        expected: PATH,
        set: |c, v| {
            c.data_dir = PathBuf::from(v);
            Some(())
        },
    },
    Var {
        name: "HSM_NODE_UNSEAL_STORAGE_KEY_FILE",
        expected: PATH,
        set: |c, v| {
            c.unseal.storage_key_file = Some(PathBuf::from(v));
            Some(())
        },
    },
    Var {
        name: "HSM_NODE_TLS_CA_CERT",
        expected: PATH,
        set: |c, v| {
            c.tls.ca_cert = Some(PathBuf::from(v));
            Some(())
        },
    },
    Var {
        name: "HSM_NODE_TLS_NODE_CERT",
        expected: PATH,
        set: |c, v| {
            c.tls.node_cert = Some(PathBuf::from(v));
            Some(())
        },
    },
    Var {
        name: "HSM_NODE_TLS_NODE_KEY",
        expected: PATH,
        set: |c, v| {
            c.tls.node_key = Some(PathBuf::from(v));
            Some(())
        },
    },
    Var {
        name: "HSM_NODE_RAFT_HEARTBEAT_INTERVAL_MS",
        expected: INTEGER,
        set: |c, v| parsed(v).map(|n| c.raft.heartbeat_interval_ms = n),
    },
    Var {
        name: "HSM_NODE_RAFT_ELECTION_TIMEOUT_MIN_MS",
        expected: INTEGER,
        set: |c, v| parsed(v).map(|n| c.raft.election_timeout_min_ms = n),
    },
    Var {
        name: "HSM_NODE_RAFT_ELECTION_TIMEOUT_MAX_MS",
        expected: INTEGER,
        set: |c, v| parsed(v).map(|n| c.raft.election_timeout_max_ms = n),
    },
    Var {
        name: "HSM_NODE_RAFT_SNAPSHOT_EVERY_LOGS",
        expected: INTEGER,
        set: |c, v| parsed(v).map(|n| c.raft.snapshot_every_logs = n),
    },
    Var {
        name: "HSM_NODE_RAFT_LOGS_KEPT_AFTER_SNAPSHOT",
        expected: INTEGER,
        set: |c, v| parsed(v).map(|n| c.raft.logs_kept_after_snapshot = n),
    },
    Var {
        name: "HSM_NODE_RAFT_MAX_FRAME_BYTES",
        expected: INTEGER,
        set: |c, v| parsed(v).map(|n| c.raft.max_frame_bytes = n),
    },
    Var {
        name: "HSM_NODE_SESSIONS_LIFETIME_S",
        expected: INTEGER,
        set: |c, v| parsed(v).map(|n| c.sessions.lifetime_s = n),
    },
    Var {
        name: "HSM_NODE_LOG_LEVEL",
        expected: "a tracing filter directive such as info",
        set: |c, v| {
            c.log.level = v.to_owned();
            Some(())
        },
    },
    Var {
        name: "HSM_NODE_LOG_FORMAT",
        expected: "text or json",
        set: |c, v| {
            c.log.format = match v {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return None,
            };
            Some(())
        },
    },
    Var {
        name: "HSM_NODE_LIMITS_MAX_CLIENT_FRAME_BYTES",
        expected: INTEGER,
        set: |c, v| parsed(v).map(|n| c.limits.max_client_frame_bytes = n),
    },
    Var {
        name: "HSM_NODE_LIMITS_MAX_IN_FLIGHT_PER_CONNECTION",
        expected: "an unsigned 32-bit integer",
        set: |c, v| parsed(v).map(|n| c.limits.max_in_flight_per_connection = n),
    },
    Var {
        name: "HSM_NODE_LIMITS_MAX_CONNECTIONS",
        expected: "an unsigned 32-bit integer",
        set: |c, v| parsed(v).map(|n| c.limits.max_connections = n),
    },
    Var {
        name: "HSM_NODE_LIMITS_MAX_CONNECTIONS_PER_ADDRESS",
        expected: "an unsigned 32-bit integer",
        set: |c, v| parsed(v).map(|n| c.limits.max_connections_per_address = n),
    },
    Var {
        name: "HSM_NODE_LIMITS_MAX_PASSWORD_CHECKS_PER_ADDRESS",
        expected: "an unsigned 32-bit integer",
        set: |c, v| parsed(v).map(|n| c.limits.max_password_checks_per_address = n),
    },
    Var {
        name: "HSM_NODE_METRICS_LISTEN",
        expected: "a socket address such as 127.0.0.1:9464",
        set: |c, v| parsed(v).map(|a| c.metrics.listen = Some(a)),
    },
    Var {
        name: "HSM_NODE_BACKUP_DESTINATION",
        expected: "a URL such as file:///var/backups/hsm or s3://bucket/prefix",
        set: |c, v| {
            c.backup.destination = Some(v.to_owned());
            Some(())
        },
    },
    Var {
        name: "HSM_NODE_BACKUP_RECOVERY_KEYS",
        expected: "paths separated by commas",
        set: |c, v| {
            c.backup.recovery_keys = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect();
            Some(())
        },
    },
    Var {
        name: "HSM_NODE_BACKUP_INTERVAL_S",
        expected: INTEGER,
        set: |c, v| parsed(v).map(|n| c.backup.interval_s = n),
    },
    Var {
        name: "HSM_NODE_BACKUP_KEEP_LAST",
        expected: "an unsigned 32-bit integer",
        set: |c, v| parsed(v).map(|n| c.backup.keep_last = n),
    },
    Var {
        name: "HSM_NODE_BACKUP_MAX_AGE_S",
        expected: INTEGER,
        set: |c, v| parsed(v).map(|n| c.backup.max_age_s = n),
    },
    Var {
        name: "HSM_NODE_BACKUP_AUDIT_INTERVAL_S",
        expected: INTEGER,
        set: |c, v| parsed(v).map(|n| c.backup.audit_interval_s = n),
    },
    Var {
        name: "HSM_NODE_BACKUP_KEY_USE_INTERVAL_S",
        expected: INTEGER,
        set: |c, v| parsed(v).map(|n| c.backup.key_use_interval_s = n),
    },
];

fn parsed<T: FromStr>(value: &str) -> Option<T> {
    value.parse().ok()
}

impl NodeConfig {
    /// Applies `HSM_NODE_*` overrides from `vars` (name, value pairs, as
    /// `std::env::vars()` yields them); other variables and
    /// [`RESERVED_ENV_VARS`] are ignored. Either every override applies or,
    /// on error, none does. Does not validate.
    ///
    /// # Errors
    /// [`ConfigError::UnknownEnv`] for an `HSM_NODE_*` variable that names
    /// no setting; [`ConfigError::EnvValue`] for a value that is empty or
    /// does not parse.
    pub fn apply_env<I>(&mut self, vars: I) -> Result<(), ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut next = self.clone();
        for (name, value) in vars {
            if !name.starts_with(PREFIX) || RESERVED_ENV_VARS.contains(&name.as_str()) {
                continue;
            }
            let Some(var) = VARS.iter().find(|var| var.name == name) else {
                return Err(ConfigError::UnknownEnv { name });
            };
            if value.is_empty() || (var.set)(&mut next, &value).is_none() {
                return Err(ConfigError::EnvValue {
                    name,
                    expected: var.expected,
                    found: value,
                });
            }
        }
        *self = next;
        Ok(())
    }
}

/// The process's `HSM_NODE_*` variables. Unlike `std::env::vars`, does not
/// panic on a variable that is not Unicode: one of ours is an error, any
/// other is skipped.
pub(super) fn process_vars() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let lossy = name.to_string_lossy().into_owned();
        if !lossy.starts_with(PREFIX) {
            continue;
        }
        match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => vars.push((name, value)),
            _ => return Err(ConfigError::EnvNotUnicode { name: lossy }),
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests;
