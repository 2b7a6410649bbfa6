//! `NodeConfig::from_env_and_file` against the real process environment.
//! One test only: it changes this test binary's environment.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use hsm_node::config::{ConfigError, NodeConfig};

#[test]
fn start_reads_the_file_then_the_process_environment_then_validates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.toml");
    let listen = "127.0.0.1:7401".parse().expect("addr");
    let example = NodeConfig::example(4, &dir.path().join("data"), listen).expect("example");
    std::fs::write(&path, example).expect("write");

    std::env::set_var("HSM_NODE_RAFT_HEARTBEAT_INTERVAL_MS", "100");
    let config = NodeConfig::from_env_and_file(&path).expect("valid");
    assert_eq!(config.node_id, 4);
    assert_eq!(config.raft.heartbeat_interval_ms, 100);
    assert_eq!(config.advertise_addr().expect("derived"), "127.0.0.1:7401");

    std::env::set_var("HSM_NODE_RAFT_HEARTBEAT_INTERVAL_MS", "1000");
    let err = NodeConfig::from_env_and_file(&path).expect_err("fails validation");
    assert!(matches!(err, ConfigError::RaftTimeouts { .. }), "{err}");
    std::env::remove_var("HSM_NODE_RAFT_HEARTBEAT_INTERVAL_MS");

    std::env::set_var("HSM_NODE_LOG_LEVEL", OsStr::from_bytes(b"debug\xff"));
    let err = NodeConfig::from_env_and_file(&path).expect_err("not unicode");
    assert!(
        matches!(&err, ConfigError::EnvNotUnicode { name } if name == "HSM_NODE_LOG_LEVEL"),
        "{err}"
    );
    std::env::remove_var("HSM_NODE_LOG_LEVEL");

    NodeConfig::from_env_and_file(&path).expect("valid again");
}
