use std::collections::BTreeSet;

use super::VARS;
use crate::config::tests::{addr, full, parse, vars, FULL, MINIMAL};
use crate::config::{ConfigError, RESERVED_ENV_VARS};

#[test]
fn every_setting_can_be_overridden_from_the_environment() {
    let mut config = parse(MINIMAL);
    config
        .apply_env(vars(&[
            ("HSM_NODE_NODE_ID", "7"),
            ("HSM_NODE_ZONE", "eu-west-1a"),
            ("HSM_NODE_LISTEN", "[::]:7500"),
            ("HSM_NODE_ADVERTISE", "hsm-7.example.net:7500"),
            ("HSM_NODE_DATA_DIR", "/srv/hsm"),
            ("HSM_NODE_UNSEAL_STORAGE_KEY_FILE", "/run/keys/storage.key"),
            ("HSM_NODE_TLS_CA_CERT", "/etc/hsm/ca.pem"),
            ("HSM_NODE_TLS_NODE_CERT", "/etc/hsm/node-7.pem"),
            ("HSM_NODE_TLS_NODE_KEY", "/etc/hsm/node-7.key"),
            ("HSM_NODE_RAFT_HEARTBEAT_INTERVAL_MS", "100"),
            ("HSM_NODE_RAFT_ELECTION_TIMEOUT_MIN_MS", "500"),
            ("HSM_NODE_RAFT_ELECTION_TIMEOUT_MAX_MS", "900"),
            ("HSM_NODE_RAFT_SNAPSHOT_EVERY_LOGS", "20000"),
            ("HSM_NODE_RAFT_LOGS_KEPT_AFTER_SNAPSHOT", "5000"),
            ("HSM_NODE_RAFT_MAX_FRAME_BYTES", "8388608"),
            ("HSM_NODE_SESSIONS_LIFETIME_S", "600"),
            ("HSM_NODE_LOG_LEVEL", "info,hsm_node=debug"),
            ("HSM_NODE_LOG_FORMAT", "json"),
            ("HSM_NODE_LIMITS_MAX_CLIENT_FRAME_BYTES", "2097152"),
            ("HSM_NODE_LIMITS_MAX_IN_FLIGHT_PER_CONNECTION", "64"),
            ("HSM_NODE_LIMITS_MAX_CONNECTIONS", "1000"),
            ("HSM_NODE_LIMITS_MAX_CONNECTIONS_PER_ADDRESS", "10"),
            ("HSM_NODE_LIMITS_MAX_PASSWORD_CHECKS_PER_ADDRESS", "2"),
            ("HSM_NODE_BACKUP_DESTINATION", "s3://hsm-backups/prod"),
            (
                "HSM_NODE_BACKUP_RECOVERY_KEYS",
                "/etc/hsm/recovery-a.pub, /etc/hsm/recovery-b.pub",
            ),
            ("HSM_NODE_BACKUP_INTERVAL_S", "3600"),
            ("HSM_NODE_BACKUP_KEEP_LAST", "48"),
            ("HSM_NODE_BACKUP_MAX_AGE_S", "604800"),
            ("HSM_NODE_BACKUP_AUDIT_INTERVAL_S", "30"),
            ("HSM_NODE_BACKUP_KEY_USE_INTERVAL_S", "120"),
            ("HSM_NODE_METRICS_LISTEN", "127.0.0.1:9464"),
        ]))
        .expect("applies");
    assert_eq!(config, full());
}

#[test]
fn the_environment_overrides_the_file_and_ignores_other_variables() {
    let mut config = parse(FULL);
    config
        .apply_env(vars(&[
            ("PATH", "/usr/bin"),
            ("HSM_NODE_CONFIG", "/etc/hsm/node.toml"),
            ("hsm_node_listen", "not read: names are case-sensitive"),
            ("HSM_NODE_RAFT_HEARTBEAT_INTERVAL_MS", "200"),
        ]))
        .expect("applies");
    assert_eq!(config.raft.heartbeat_interval_ms, 200);
    assert_eq!(config.listen, addr("[::]:7500"));
}

#[test]
fn an_unknown_hsm_node_variable_is_an_error_and_changes_nothing() {
    let mut config = parse(MINIMAL);
    let err = config
        .apply_env(vars(&[
            ("HSM_NODE_ZONE", "b"),
            ("HSM_NODE_LISTN", "127.0.0.1:7400"),
        ]))
        .expect_err("refused");
    assert!(matches!(&err, ConfigError::UnknownEnv { name } if name == "HSM_NODE_LISTN"));
    assert!(err
        .to_string()
        .starts_with("unknown environment variable HSM_NODE_LISTN"));
    assert_eq!(config, parse(MINIMAL), "the earlier override was not kept");
}

#[test]
fn an_env_value_that_does_not_parse_names_the_variable_and_what_was_expected() {
    let cases = [
        ("HSM_NODE_NODE_ID", "seven", "an unsigned integer"),
        ("HSM_NODE_NODE_ID", "-1", "an unsigned integer"),
        ("HSM_NODE_LISTEN", "localhost:7400", "a socket address"),
        (
            "HSM_NODE_RAFT_HEARTBEAT_INTERVAL_MS",
            "250ms",
            "an unsigned integer",
        ),
        ("HSM_NODE_LOG_FORMAT", "JSON", "text or json"),
        (
            "HSM_NODE_LIMITS_MAX_IN_FLIGHT_PER_CONNECTION",
            "5000000000",
            "32-bit",
        ),
        ("HSM_NODE_DATA_DIR", "", "a path"),
        ("HSM_NODE_LOG_LEVEL", "", "a tracing filter directive"),
    ];
    for (name, value, expected) in cases {
        let mut config = parse(MINIMAL);
        let err = config
            .apply_env(vars(&[(name, value)]))
            .expect_err("refused");
        assert!(matches!(&err, ConfigError::EnvValue { name: n, .. } if n == name));
        let message = err.to_string();
        assert!(message.starts_with(&format!("environment variable {name}: expected ")));
        assert!(message.contains(expected), "{message}");
        assert!(message.ends_with(&format!("found {value:?}")), "{message}");
    }
}

#[test]
fn the_env_table_covers_every_setting_and_nothing_else() {
    let mut table = toml::Table::try_from(full()).expect("serializes");
    let mut names = BTreeSet::new();
    for (key, value) in std::mem::take(&mut table) {
        match value {
            toml::Value::Table(section) => {
                for field in section.keys() {
                    names.insert(format!("HSM_NODE_{key}_{field}").to_uppercase());
                }
            }
            _ => {
                names.insert(format!("HSM_NODE_{key}").to_uppercase());
            }
        }
    }
    let vars: BTreeSet<String> = VARS.iter().map(|v| v.name.to_owned()).collect();
    assert_eq!(vars, names);
}

#[test]
fn the_docs_describe_every_setting_and_variable() {
    let docs = include_str!("../../../../docs/node-config.md");
    for var in VARS
        .iter()
        .map(|v| v.name)
        .chain(RESERVED_ENV_VARS.iter().copied())
    {
        assert!(
            docs.contains(&format!("`{var}`")),
            "docs/node-config.md lacks {var}"
        );
    }
    let table = toml::Table::try_from(full()).expect("serializes");
    for (key, value) in &table {
        if let toml::Value::Table(section) = value {
            assert!(docs.contains(&format!("`[{key}]`")), "docs lack [{key}]");
            for field in section.keys() {
                assert!(
                    docs.contains(&format!("`{field}`")),
                    "docs lack {key}.{field}"
                );
            }
        } else {
            assert!(docs.contains(&format!("`{key}`")), "docs lack {key}");
        }
    }
}
