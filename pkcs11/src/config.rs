//! Where the module finds its clusters.
//!
//! In order: the module config named by `HSM_PKCS11_CONFIG` (TOML, one
//! `[[slot]]` per cluster); else the cluster client config named by
//! `HSM_CLUSTER` (one slot); else the module config at
//! [`DEFAULT_CONFIG_PATH`]. Each slot names a cluster's client config file
//! (as `hsm-node init` or `hsm-node dev` writes it) and may give the
//! token a label.
//!
//! ```toml
//! [[slot]]
//! cluster = "/etc/hsm-cluster/client.toml"
//! label = "payments"     # optional; default "hsm <first 8 of the cluster id>"
//! ```

use std::path::{Path, PathBuf};

use hsm_proto::client::ClientConfig;
use serde::Deserialize;

/// The environment variable naming the module's config file.
pub const MODULE_CONFIG_ENV: &str = "HSM_PKCS11_CONFIG";
/// The module config read when neither variable is set.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/hsm-cluster/pkcs11.toml";

/// The module config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    slot: Vec<SlotFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotFile {
    cluster: PathBuf,
    label: Option<String>,
}

/// One slot: a cluster and its token's label.
#[derive(Debug, Clone)]
pub struct SlotConfig {
    /// The cluster's client config.
    pub cluster: ClientConfig,
    /// The token label (at most 32 bytes).
    pub label: String,
}

/// Most slots (clusters) one module serves.
pub const MAX_SLOTS: usize = 16;

/// The slots, from the environment and files as the module doc says.
///
/// # Errors
/// A message naming the file and what is wrong with it.
pub fn load() -> Result<Vec<SlotConfig>, String> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(path) = var(MODULE_CONFIG_ENV) {
        return module_file(Path::new(&path));
    }
    if let Some(path) = var(hsm_client::CONFIG_ENV) {
        return Ok(vec![slot(Path::new(&path), None)?]);
    }
    module_file(Path::new(DEFAULT_CONFIG_PATH))
}

fn module_file(path: &Path) -> Result<Vec<SlotConfig>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the PKCS#11 module config {}: {e} (set {MODULE_CONFIG_ENV} or {})",
            path.display(),
            hsm_client::CONFIG_ENV
        )
    })?;
    let file: File = toml::from_str(&text)
        .map_err(|e| format!("{}: not a PKCS#11 module config: {e}", path.display()))?;
    if file.slot.is_empty() || file.slot.len() > MAX_SLOTS {
        return Err(format!(
            "{}: expected 1 to {MAX_SLOTS} [[slot]] tables, found {}",
            path.display(),
            file.slot.len()
        ));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    file.slot
        .into_iter()
        .map(|s| slot(&base.join(&s.cluster), s.label))
        .collect()
}

fn slot(cluster: &Path, label: Option<String>) -> Result<SlotConfig, String> {
    let config = hsm_client::load_config(cluster).map_err(|e| e.to_string())?;
    let label = label.unwrap_or_else(|| {
        format!(
            "hsm {}",
            config.cluster_id.get(..8).unwrap_or(&config.cluster_id)
        )
    });
    if label.len() > 32 {
        return Err(format!("token label {label:?} is longer than 32 bytes"));
    }
    Ok(SlotConfig {
        cluster: config,
        label,
    })
}
