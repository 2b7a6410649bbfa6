use std::path::Path;

use crate::config::tests::{addr, parse};
use crate::config::{ConfigError, NodeConfig, TlsSettings};

fn uncommented(example: &str) -> String {
    example
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                }) =>
            {
                rest
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_parses_back_to_the_config_it_describes() {
    let dir = Path::new("/var/lib/hsm/node-2");
    let listen = addr("127.0.0.1:7402");
    let text = NodeConfig::example(2, dir, listen).expect("example");
    let config = parse(&text);
    let expected = NodeConfig {
        listen,
        ..NodeConfig::new(2, dir)
    };
    assert_eq!(config, expected);
    config.validate().expect("valid");
}

#[test]
fn the_example_shows_the_true_defaults() {
    let dir = Path::new("/var/lib/hsm/node-2");
    let listen = addr("127.0.0.1:7402");
    let text = uncommented(&NodeConfig::example(2, dir, listen).expect("example"));
    let config = parse(&text);
    let mut expected = NodeConfig {
        listen,
        ..NodeConfig::new(2, dir)
    };
    expected.advertise = Some("127.0.0.1:7402".to_owned());
    expected.unseal.storage_key_file = Some(expected.storage_key_file());
    expected.tls = TlsSettings {
        ca_cert: Some(expected.ca_cert()),
        node_cert: Some(expected.node_cert()),
        node_key: Some(expected.node_key()),
    };
    // Backups have no default destination: the example shows one.
    expected.backup.destination = Some("file:///var/backups/hsm".to_owned());
    expected.backup.recovery_keys = vec!["/etc/hsm/recovery.pub".into()];
    // Nor the metrics endpoint an address.
    expected.metrics.listen = Some(addr("127.0.0.1:9464"));
    assert_eq!(config, expected);
}

#[test]
fn the_example_escapes_unusual_paths() {
    let dir = Path::new("C:\\hsm \"prod\"/nœud #1");
    let text = NodeConfig::example(9, dir, addr("[fd00::9]:7400")).expect("example");
    assert_eq!(parse(&text).data_dir, dir);
    assert_eq!(
        parse(&uncommented(&text)).storage_key_file(),
        dir.join("storage.key")
    );
}

#[test]
fn an_example_on_a_wildcard_listen_address_asks_for_advertise() {
    let text = NodeConfig::example(1, Path::new("/d"), addr("0.0.0.0:7400")).expect("example");
    assert!(text.contains("# advertise = \"<host>:7400\""), "{text}");
    let config = parse(&text);
    assert_eq!(config, NodeConfig::new(1, "/d"));
    let err = config.validate().expect_err("needs advertise");
    assert!(
        matches!(err, ConfigError::AdvertiseRequired { .. }),
        "{err}"
    );
}

#[test]
fn an_example_needs_a_unicode_data_dir() {
    use std::os::unix::ffi::OsStrExt;
    let dir = Path::new(std::ffi::OsStr::from_bytes(b"/data/\xff"));
    let err = NodeConfig::example(1, dir, addr("127.0.0.1:7400")).expect_err("refused");
    assert!(
        matches!(
            err,
            ConfigError::NotUnicode {
                field: "data_dir",
                ..
            }
        ),
        "{err}"
    );
}
