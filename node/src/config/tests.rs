use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::*;

pub(super) const MINIMAL: &str = "node_id = 3\ndata_dir = \"/var/lib/hsm\"\n";

pub(super) const FULL: &str = r#"
node_id = 7
zone = "eu-west-1a"
listen = "[::]:7500"
advertise = "hsm-7.example.net:7500"
data_dir = "/srv/hsm"

[unseal]
storage_key_file = "/run/keys/storage.key"

[tls]
ca_cert = "/etc/hsm/ca.pem"
node_cert = "/etc/hsm/node-7.pem"
node_key = "/etc/hsm/node-7.key"

[raft]
heartbeat_interval_ms = 100
election_timeout_min_ms = 500
election_timeout_max_ms = 900
snapshot_every_logs = 20000
logs_kept_after_snapshot = 5000
max_frame_bytes = 8388608

[sessions]
lifetime_s = 600

[log]
level = "info,hsm_node=debug"
format = "json"

[limits]
max_client_frame_bytes = 2097152
max_in_flight_per_connection = 64
max_connections = 1000
max_connections_per_address = 10
max_password_checks_per_address = 2

[backup]
destination = "s3://hsm-backups/prod"
recovery_keys = ["/etc/hsm/recovery-a.pub", "/etc/hsm/recovery-b.pub"]
interval_s = 3600
keep_last = 48
max_age_s = 604800
audit_interval_s = 30
key_use_interval_s = 120

[metrics]
listen = "127.0.0.1:9464"
"#;

pub(super) fn parse(text: &str) -> NodeConfig {
    NodeConfig::from_toml_str(text).expect("parses")
}

pub(super) fn parse_err(text: &str) -> String {
    NodeConfig::from_toml_str(text)
        .expect_err("refused")
        .to_string()
}

pub(super) fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// A valid configuration (listen on a specific address) to break one rule at a time.
pub(super) fn valid() -> NodeConfig {
    let mut config = NodeConfig::new(1, "/var/lib/hsm");
    config.listen = addr("10.0.0.1:7400");
    config.validate().expect("valid");
    config
}

pub(super) fn full() -> NodeConfig {
    NodeConfig {
        node_id: 7,
        zone: "eu-west-1a".to_owned(),
        listen: addr("[::]:7500"),
        advertise: Some("hsm-7.example.net:7500".to_owned()),
        data_dir: "/srv/hsm".into(),
        unseal: UnsealSettings {
            storage_key_file: Some("/run/keys/storage.key".into()),
        },
        tls: TlsSettings {
            ca_cert: Some("/etc/hsm/ca.pem".into()),
            node_cert: Some("/etc/hsm/node-7.pem".into()),
            node_key: Some("/etc/hsm/node-7.key".into()),
        },
        raft: RaftSettings {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 900,
            snapshot_every_logs: 20_000,
            logs_kept_after_snapshot: 5000,
            max_frame_bytes: 8 * 1024 * 1024,
        },
        sessions: SessionSettings { lifetime_s: 600 },
        log: LogSettings {
            level: "info,hsm_node=debug".to_owned(),
            format: LogFormat::Json,
        },
        limits: LimitSettings {
            max_client_frame_bytes: 2 * 1024 * 1024,
            max_in_flight_per_connection: 64,
            max_connections: 1000,
            max_connections_per_address: 10,
            max_password_checks_per_address: 2,
        },
        backup: BackupSettings {
            destination: Some("s3://hsm-backups/prod".to_owned()),
            recovery_keys: vec![
                "/etc/hsm/recovery-a.pub".into(),
                "/etc/hsm/recovery-b.pub".into(),
            ],
            interval_s: 3600,
            keep_last: 48,
            max_age_s: 604_800,
            audit_interval_s: 30,
            key_use_interval_s: 120,
        },
        metrics: MetricsSettings {
            listen: Some(addr("127.0.0.1:9464")),
        },
    }
}

// ---- the file ----

#[test]
fn a_config_with_only_required_fields_gets_every_default() {
    let config = parse(MINIMAL);
    assert_eq!(config, NodeConfig::new(3, "/var/lib/hsm"));
    assert_eq!(config.id(), hsm_proto::NodeId(3));
    assert_eq!(config.zone, "default");
    assert_eq!(config.listen, addr("0.0.0.0:7400"));
    assert_eq!(config.advertise, None);
    let dir = Path::new("/var/lib/hsm");
    assert_eq!(config.storage_key_file(), dir.join("storage.key"));
    assert_eq!(config.ca_cert(), dir.join("tls/ca.pem"));
    assert_eq!(config.node_cert(), dir.join("tls/node.pem"));
    assert_eq!(config.node_key(), dir.join("tls/node.key"));
    let raft = &config.raft;
    assert_eq!(raft.heartbeat_interval_ms, 250);
    assert_eq!(raft.election_timeout_min_ms, 1000);
    assert_eq!(raft.election_timeout_max_ms, 2000);
    assert_eq!(raft.snapshot_every_logs, 5000);
    assert_eq!(raft.max_frame_bytes, 32 * 1024 * 1024);
    assert_eq!(config.sessions.lifetime_s, 3600);
    assert_eq!(config.log.level, "info");
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.limits.max_client_frame_bytes, 1024 * 1024);
    assert_eq!(config.limits.max_in_flight_per_connection, 256);
    assert_eq!(config.limits.max_connections, 4096);
    assert_eq!(config.limits.max_connections_per_address, 256);
    assert_eq!(config.limits.max_password_checks_per_address, 4);
}

#[test]
fn every_field_of_a_full_config_is_read() {
    let config = parse(FULL);
    assert_eq!(config, full());
    config.validate().expect("valid");
    assert_eq!(
        config.advertise_addr().expect("set"),
        "hsm-7.example.net:7500"
    );
    assert_eq!(
        config.storage_key_file(),
        Path::new("/run/keys/storage.key")
    );
    assert_eq!(config.ca_cert(), Path::new("/etc/hsm/ca.pem"));
    assert_eq!(config.node_cert(), Path::new("/etc/hsm/node-7.pem"));
    assert_eq!(config.node_key(), Path::new("/etc/hsm/node-7.key"));
}

#[test]
fn a_full_config_round_trips_through_toml() {
    let text = toml::to_string(&full()).expect("serializes");
    assert_eq!(parse(&text), full());
}

#[test]
fn an_unknown_field_is_an_error_naming_it() {
    let top = parse_err(&format!("{MINIMAL}listn = \"127.0.0.1:7400\"\n"));
    assert!(top.contains("unknown field `listn`"), "{top}");
    let in_section = parse_err(&format!("{MINIMAL}[raft]\nheartbeat_ms = 100\n"));
    assert!(
        in_section.contains("unknown field `heartbeat_ms`"),
        "{in_section}"
    );
    let section = parse_err(&format!("{MINIMAL}[rafts]\n"));
    assert!(section.contains("unknown field `rafts`"), "{section}");
}

#[test]
fn a_missing_required_field_is_an_error_naming_it() {
    let no_id = parse_err("data_dir = \"/d\"\n");
    assert!(no_id.contains("missing field `node_id`"), "{no_id}");
    let no_dir = parse_err("node_id = 1\n");
    assert!(no_dir.contains("missing field `data_dir`"), "{no_dir}");
}

#[test]
fn a_value_of_the_wrong_form_is_an_error_showing_its_line() {
    let listen = parse_err(&format!("{MINIMAL}listen = \"localhost\"\n"));
    assert!(listen.starts_with("invalid config: "), "{listen}");
    assert!(listen.contains("listen = \"localhost\""), "{listen}");
    assert!(
        listen.contains("expected a socket address such as 0.0.0.0:7400"),
        "{listen}"
    );
    assert!(listen.contains("found \"localhost\""), "{listen}");
    let format = parse_err(&format!("{MINIMAL}[log]\nformat = \"xml\"\n"));
    assert!(format.contains("unknown variant `xml`"), "{format}");
    let negative = parse_err("node_id = -1\ndata_dir = \"/d\"\n");
    assert!(negative.contains("node_id"), "{negative}");
}

#[test]
fn load_reads_a_file_and_names_a_missing_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.toml");
    std::fs::write(&path, FULL).expect("write");
    assert_eq!(NodeConfig::load(&path).expect("loads"), full());
    std::fs::write(&path, "node_id = \n").expect("write");
    let bad = NodeConfig::load(&path).expect_err("refused").to_string();
    assert!(
        bad.starts_with(&format!("invalid config file {}", path.display())),
        "{bad}"
    );
    let missing = dir.path().join("missing.toml");
    let err = NodeConfig::load(&missing).expect_err("refused");
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("missing.toml"), "{err}");
}

// ---- derived defaults ----

#[test]
fn advertise_is_derived_from_a_specific_listen_address() {
    let mut config = valid();
    assert_eq!(config.advertise_addr().expect("derived"), "10.0.0.1:7400");
    config.listen = addr("[fd00::1]:7401");
    assert_eq!(config.advertise_addr().expect("derived"), "[fd00::1]:7401");
}

#[test]
fn advertise_is_required_when_listen_is_a_wildcard_or_port_0() {
    for listen in ["0.0.0.0:7400", "[::]:7400", "10.0.0.1:0"] {
        let mut config = valid();
        config.listen = addr(listen);
        let err = config.validate().expect_err("refused");
        assert!(
            matches!(err, ConfigError::AdvertiseRequired { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("advertise: expected the host:port"),
            "{err}"
        );
        config.advertise = Some("hsm-1.example.net:7400".to_owned());
        config.validate().expect("valid with advertise");
    }
}

#[test]
fn derived_paths_follow_an_env_override_of_data_dir() {
    let mut config = parse(MINIMAL);
    config
        .apply_env(vars(&[("HSM_NODE_DATA_DIR", "/mnt/hsm")]))
        .expect("applies");
    assert_eq!(config.storage_key_file(), Path::new("/mnt/hsm/storage.key"));
    assert_eq!(config.node_key(), Path::new("/mnt/hsm/tls/node.key"));
}

// ---- validation ----

fn refused(change: impl FnOnce(&mut NodeConfig)) -> ConfigError {
    let mut config = valid();
    change(&mut config);
    config.validate().expect_err("refused")
}

fn assert_out_of_range(err: &ConfigError, field: &str, found: u64) {
    match err {
        ConfigError::OutOfRange {
            field: f, found: v, ..
        } => {
            assert_eq!((*f, *v), (field, found));
        }
        other => panic!("expected {field} out of range, got {other}"),
    }
    assert!(err
        .to_string()
        .starts_with(&format!("{field}: expected a value from ")));
}

#[test]
fn node_id_must_be_from_1_to_i64_max() {
    assert_out_of_range(&refused(|c| c.node_id = 0), "node_id", 0);
    assert_out_of_range(&refused(|c| c.node_id = u64::MAX), "node_id", u64::MAX);
}

#[test]
fn raft_timeouts_must_be_nonzero_and_ordered() {
    for (heartbeat, min, max) in [
        (0, 1000, 2000),
        (1000, 1000, 2000),
        (250, 2000, 2000),
        (250, 3000, 2000),
    ] {
        let err = refused(|c| {
            c.raft.heartbeat_interval_ms = heartbeat;
            c.raft.election_timeout_min_ms = min;
            c.raft.election_timeout_max_ms = max;
        });
        assert!(matches!(err, ConfigError::RaftTimeouts { .. }), "{err}");
        assert!(err
            .to_string()
            .starts_with("raft timeouts: expected 0 < heartbeat_interval_ms"));
        assert!(err
            .to_string()
            .ends_with(&format!("found {heartbeat}, {min} and {max}")));
    }
}

#[test]
fn snapshots_and_raft_frames_must_be_within_bounds() {
    let err = refused(|c| c.raft.snapshot_every_logs = 0);
    assert_out_of_range(&err, "raft.snapshot_every_logs", 0);
    let small = MIN_RAFT_FRAME_BYTES as u64 - 1;
    assert_out_of_range(
        &refused(|c| c.raft.max_frame_bytes = MIN_RAFT_FRAME_BYTES - 1),
        "raft.max_frame_bytes",
        small,
    );
    let big = MAX_FRAME_BYTES as u64 + 1;
    assert_out_of_range(
        &refused(|c| c.raft.max_frame_bytes = MAX_FRAME_BYTES + 1),
        "raft.max_frame_bytes",
        big,
    );
}

#[test]
fn session_lifetime_must_be_from_a_minute_to_a_day() {
    assert_out_of_range(
        &refused(|c| c.sessions.lifetime_s = 59),
        "sessions.lifetime_s",
        59,
    );
    assert_out_of_range(
        &refused(|c| c.sessions.lifetime_s = 86_401),
        "sessions.lifetime_s",
        86_401,
    );
    for ok in [60, 86_400] {
        let mut config = valid();
        config.sessions.lifetime_s = ok;
        config.validate().expect("in range");
    }
}

#[test]
fn client_limits_must_be_within_bounds() {
    let field = "limits.max_client_frame_bytes";
    assert_out_of_range(
        &refused(|c| c.limits.max_client_frame_bytes = 1024),
        field,
        1024,
    );
    let big = MAX_FRAME_BYTES + 1;
    assert_out_of_range(
        &refused(|c| c.limits.max_client_frame_bytes = big),
        field,
        big as u64,
    );
    let field = "limits.max_in_flight_per_connection";
    assert_out_of_range(
        &refused(|c| c.limits.max_in_flight_per_connection = 0),
        field,
        0,
    );
    assert_out_of_range(
        &refused(|c| c.limits.max_in_flight_per_connection = 65_537),
        field,
        65_537,
    );
    let field = "limits.max_connections";
    assert_out_of_range(&refused(|c| c.limits.max_connections = 15), field, 15);
    assert_out_of_range(
        &refused(|c| c.limits.max_connections = 1_000_001),
        field,
        1_000_001,
    );
    let field = "limits.max_connections_per_address";
    assert_out_of_range(
        &refused(|c| c.limits.max_connections_per_address = 0),
        field,
        0,
    );
    let field = "limits.max_password_checks_per_address";
    assert_out_of_range(
        &refused(|c| c.limits.max_password_checks_per_address = 0),
        field,
        0,
    );
    assert_out_of_range(
        &refused(|c| c.limits.max_password_checks_per_address = 65_537),
        field,
        65_537,
    );
}

type Change = fn(&mut NodeConfig);

#[test]
fn names_and_paths_must_not_be_empty_or_malformed() {
    let cases: [(&str, Change); 7] = [
        ("zone", |c| c.zone = String::new()),
        ("zone", |c| c.zone = "eu west".to_owned()),
        ("zone", |c| c.zone = "z".repeat(65)),
        ("data_dir", |c| c.data_dir = PathBuf::new()),
        ("unseal.storage_key_file", |c| {
            c.unseal.storage_key_file = Some(PathBuf::new())
        }),
        ("tls.node_key", |c| c.tls.node_key = Some(PathBuf::new())),
        ("log.level", |c| c.log.level = " ".to_owned()),
    ];
    for (field, change) in cases {
        let err = refused(change);
        assert!(
            matches!(&err, ConfigError::Invalid { field: f, .. } if *f == field),
            "{err}"
        );
        assert!(
            err.to_string().starts_with(&format!("{field}: expected ")),
            "{err}"
        );
    }
}

#[test]
fn advertise_must_be_a_reachable_host_and_port() {
    for bad in [
        "hsm-1.example.net",
        "hsm-1.example.net:0",
        "hsm-1.example.net:65536",
        "hsm-1.example.net:port",
        ":7400",
        "fd00::1:7400",
        "[fd00::1:7400",
        "[not-ipv6]:7400",
        "0.0.0.0:7400",
        "[::]:7400",
        "hsm 1:7400",
        "hsm..example:7400",
    ] {
        let err = refused(|c| c.advertise = Some(bad.to_owned()));
        assert!(
            matches!(
                &err,
                ConfigError::Invalid {
                    field: "advertise",
                    ..
                }
            ),
            "{bad}: {err}"
        );
        assert!(
            err.to_string().ends_with(&format!("found {bad:?}")),
            "{err}"
        );
    }
    for good in [
        "hsm-1.example.net:7400",
        "10.0.0.1:7400",
        "[fd00::1]:7400",
        "hsm1:1",
    ] {
        let mut config = valid();
        config.advertise = Some(good.to_owned());
        config.validate().expect(good);
    }
}

// ---- openraft ----

#[test]
fn the_raft_settings_reach_openraft() {
    let config = full().raft_config().expect("accepted");
    assert_eq!(config.heartbeat_interval, 100);
    assert_eq!(config.election_timeout_min, 500);
    assert_eq!(config.election_timeout_max, 900);
    assert_eq!(
        config.snapshot_policy,
        openraft::SnapshotPolicy::LogsSinceLast(20_000)
    );
    assert_eq!(config.max_in_snapshot_log_to_keep, 5000);
    assert_eq!(
        config.install_snapshot_timeout,
        crate::config::INSTALL_SNAPSHOT_TIMEOUT_MS
    );
    assert!(config.snapshot_max_chunk_size < full().raft.max_frame_bytes as u64);
    valid().raft_config().expect("defaults accepted");
}

#[test]
fn settings_openraft_refuses_are_an_error() {
    let mut config = valid();
    config.raft.heartbeat_interval_ms = config.raft.election_timeout_min_ms;
    let err = config.raft_config().expect_err("refused");
    assert!(matches!(err, ConfigError::Raft(_)), "{err}");
    assert!(err
        .to_string()
        .starts_with("raft: openraft refused the settings: "));
}
