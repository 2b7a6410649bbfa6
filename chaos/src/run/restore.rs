//! Backups during faults, restored at the end: the run asks for a backup
//! while some faults are in force ([`BACKUP_EVERY`]), and once its cluster
//! has stopped it restores the newest acknowledged one into a new
//! one-node cluster (`hsm-node restore`, as an operator would after losing
//! every member), starts it on the first node's host and lists its keys
//! for the backup checker (`check::backup`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::net::Net;
use super::probe;

/// Every this many faults, a backup is asked for while the fault is in
/// force.
pub const BACKUP_EVERY: usize = 4;

/// The restored node's id: one no member of the run ever had.
const RESTORED_ID: u64 = 1_000_000;

/// Restores the backup at `location` (one backup's URL) of the cluster in
/// `cluster_dir` into `DIR/restored`, starts it in host `host` and returns
/// the labels of its keys, as its crypto officer lists them.
///
/// # Errors
/// If the restore fails, the node does not start or does not answer.
pub fn restore_and_list(
    net: &Net,
    hsm_node: &Path,
    hsm_chaos: &Path,
    cluster_dir: &Path,
    out: &Path,
    location: &str,
) -> Result<BTreeSet<String>> {
    let dir = out.join("restored");
    std::fs::create_dir_all(&dir)?;
    let first =
        hsm_node::config::NodeConfig::load(hsm_node::local::node_config_path(cluster_dir, 1))?;
    let mut config = first.clone();
    config.node_id = RESTORED_ID;
    config.data_dir = dir.join(format!("node{RESTORED_ID}"));
    config.backup.destination = None;
    config.backup.recovery_keys = Vec::new();
    let config_file = dir.join("node.toml");
    std::fs::write(&config_file, toml::to_string(&config)?)?;
    let client_config: PathBuf = dir.join("client.toml");
    let restored = std::process::Command::new(hsm_node)
        .arg("restore")
        .arg("--config")
        .arg(&config_file)
        .arg("--backup")
        .arg(location)
        .arg("--recovery-key")
        .arg(hsm_node::local::recovery_key_path(cluster_dir))
        .arg("--ca-dir")
        .arg(dir.join("ca"))
        .arg("--client-config")
        .arg(&client_config)
        .env("HSM_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .context("cannot run hsm-node restore")?;
    std::fs::write(
        dir.join("restore.log"),
        [&restored.stdout[..], &restored.stderr[..]].concat(),
    )?;
    if !restored.status.success() {
        bail!(
            "hsm-node restore failed: {}",
            String::from_utf8_lossy(&restored.stderr).trim()
        );
    }
    // The restored node runs on the first node's host (its address is in
    // the new client config), the run's own nodes stopped.
    let host = net.host("n1")?;
    let log = std::fs::File::create(dir.join("node.log"))?;
    let mut node = Net::command(host, hsm_node)
        .arg("start")
        .arg("--config")
        .arg(&config_file)
        .env("HSM_LOG", "info,openraft=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start the restored node")?;
    let client_host = net.host("c1")?;
    let listed = probe::run_in(
        client_host,
        hsm_chaos,
        &client_config,
        &["labels", "--timeout-s", "60"],
    );
    let _ = node.kill();
    let _ = node.wait();
    // Let the node's RocksDB lock go before anything reads its files.
    std::thread::sleep(Duration::from_millis(100));
    let labels: Vec<String> = serde_json::from_str(listed?.trim()).context("the restored keys")?;
    Ok(labels.into_iter().collect())
}
