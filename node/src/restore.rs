//! `hsm-node restore`: a new cluster from a backup and a recovery key.
//!
//! The new cluster has a new cluster id, a new domain key and a first
//! member with a new identity; it keeps the backup's users (with their
//! passwords) and keys. Steps, every check before anything is written:
//!
//! 1. read the backup: manifest signature, every chunk's hash and
//!    authentication, the backup key opened with the recovery key
//!    (hsm-backup refuses anything that does not check out, naming the
//!    object);
//! 2. split the payload ([`crate::backup::decode_payload`]) and decode the
//!    snapshot, which checks the state digest its header names;
//! 3. refuse a node id the backed-up cluster used (a member or retired);
//! 4. unwrap every key's material with the backup's material key and wrap
//!    it again under the new domain key;
//! 5. prepare the node (storage key, identity, certificate), then write the
//!    new state ([`hsm_state::State::restored_as`]) as the node's store, at
//!    the backup's log position, with this node as the only voter.
//!
//! The restored state's digest before step 4 equals the backed-up
//! cluster's digest at the backup's index: restoring the same backup twice
//! reports the same `backup_digest`. Other nodes join the new cluster as
//! usual (`hsm-node prepare`, `hsm node add`, `hsm-node start --join`).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use ed25519_dalek::VerifyingKey;
use hsm_backup::{Destination, Opener, Progress, RecoveryKey};
use hsm_proto::{BackupId, ClusterId, KeyId, NodeRecord};
use hsm_raft_store::StorageKey;
use hsm_state::{RestoreTarget, StateDigest};
use openraft::{BasicNode, CommittedLeaderId, LogId};
use rand::RngCore;

use crate::backup::decode_payload;
use crate::config::NodeConfig;
use crate::runtime::{file_key, prepare};
use crate::secrets::DomainKey;
use crate::transport::ClusterCa;

/// What [`restore_cluster`] made.
#[derive(Debug, Clone)]
pub struct RestoredCluster {
    /// The new cluster's id.
    pub cluster_id: ClusterId,
    /// Its first member.
    pub first_node: NodeRecord,
    /// The backup restored.
    pub backup: BackupId,
    /// The cluster the backup came from.
    pub from_cluster: ClusterId,
    /// The log index of the backed-up state (the new cluster continues
    /// after it).
    pub applied_index: u64,
    /// The term of that entry.
    pub term: u64,
    /// When the backup was taken, ms since the Unix epoch.
    pub created_ms: u64,
    /// The node that wrote and signed the backup, and its public key.
    pub writer: (hsm_proto::NodeId, [u8; 32]),
    /// Digest of the state as backed up (equal to the source cluster's at
    /// that index, and the same on every restore of this backup).
    pub backup_digest: StateDigest,
    /// Digest of the new cluster's first state.
    pub digest: StateDigest,
    /// Users restored.
    pub users: usize,
    /// Keys restored.
    pub keys: usize,
}

/// The backup to restore: `id`, or, given `trusted` writer keys, the newest
/// complete backup at `dest` that one of them signed, dated no more than a
/// day after `now_ms`, when every backup there is of one cluster. Without
/// `id` or `trusted` keys there is no default: a forged manifest could be
/// the newest.
///
/// # Errors
/// If neither `id` nor `trusted` is given, `dest` cannot be listed, holds
/// no readable backup by a trusted writer, or holds backups of several
/// clusters (then the operator names one).
pub async fn choose_backup(
    dest: &Destination,
    id: Option<BackupId>,
    trusted: Option<&[VerifyingKey]>,
    now_ms: u64,
) -> Result<BackupId> {
    if let Some(id) = id {
        return Ok(id);
    }
    if trusted.is_none() {
        // Anyone who can write to the destination can seal a complete
        // backup to the recovery public key and date it newest: without
        // knowing whose backups to trust, there is no safe default.
        bail!(
            "{} holds backups and none is named: name the one to restore (its id at the end of \
             --backup, or --id; hsm backup list shows them), or pass --trusted-writer-key with \
             your members' keys to restore the newest they signed",
            dest.url()
        );
    }
    let latest_ms = now_ms.saturating_add(24 * 3_600_000);
    let mut listed = hsm_backup::list_backups(dest).await?;
    listed.retain(|b| {
        b.details.as_ref().is_some_and(|d| {
            d.created_at_ms <= latest_ms
                && trusted
                    .is_none_or(|keys| keys.iter().any(|k| k.as_bytes() == &d.writer_public_key))
        })
    });
    let clusters: std::collections::BTreeSet<ClusterId> = listed
        .iter()
        .filter_map(|b| b.details.as_ref().map(|d| d.cluster_id))
        .collect();
    if clusters.len() > 1 {
        bail!(
            "{} holds backups of {} clusters; name the one to restore with --id (hsm backup list shows ids)",
            dest.url(),
            clusters.len()
        );
    }
    listed
        .iter()
        .find(|b| b.details.is_some())
        .map(|b| b.id)
        .ok_or_else(|| {
            anyhow!(
                "{} holds no complete backup{}",
                dest.url(),
                if trusted.is_some() {
                    " signed by a --trusted-writer-key"
                } else {
                    ""
                }
            )
        })
}

/// Builds the first member of a new cluster from backup `id` at `dest`,
/// opened with `recovery`, in the (empty) data directory of `config`, with
/// a certificate from `ca`. With `trusted` writer keys, a backup signed by
/// any other key is refused. On failure, nothing it wrote is left.
///
/// # Errors
/// If the backup does not check out (the error names the object), its
/// payload or state does not decode, the node id was used by the backed-up
/// cluster, a key does not re-wrap, or the node's files cannot be written.
pub async fn restore_cluster(
    config: &NodeConfig,
    ca: &ClusterCa,
    dest: &Destination,
    id: BackupId,
    recovery: &RecoveryKey,
    trusted: Option<&[VerifyingKey]>,
    progress: &dyn Progress,
) -> Result<RestoredCluster> {
    config.validate()?;
    if config.identity_file().exists() || config.store_dir().exists() {
        bail!(
            "{} holds a node already; restore into an empty data directory",
            config.data_dir.display()
        );
    }
    let restored =
        hsm_backup::restore_backup(dest, id, Opener::RecoveryKey(recovery), trusted, progress)
            .await
            .with_context(|| format!("cannot restore backup {id}"))?;
    let manifest = &restored.manifest;
    let (material, snapshot) = decode_payload(&restored.snapshot)?;
    let state = hsm_raft_store::decode_snapshot(snapshot)
        .with_context(|| format!("backup {id} holds a state that does not decode"))?;
    hsm_state::protocol::check_state(&state)
        .with_context(|| format!("backup {id} was taken by a newer build"))?;
    let backup_digest = state.digest();
    let Some(old) = state.cluster() else {
        bail!("backup {id} holds a state that was never initialized");
    };
    if old.cluster_id != manifest.cluster_id {
        bail!(
            "backup {id}: its manifest names cluster {} but the state is cluster {}",
            manifest.cluster_id,
            old.cluster_id
        );
    }
    let me = config.id();
    if state.node(me).is_some() || old.retired_nodes.contains(&me) {
        bail!(
            "node id {} was used by the backed-up cluster; give the new node an id it never had",
            me.0
        );
    }

    let domain = DomainKey::generate(0);
    // Every key's material, its latest version and the older ones it
    // keeps, by key and the material as the backup holds it.
    let mut rewrapped: Rewrapped = BTreeMap::new();
    let older = state.keys().flat_map(|key| {
        state
            .key_versions(key.id)
            .into_iter()
            .flat_map(|v| v.older.values())
            .map(|o| (key.id, o.domain_generation, &o.wrapped_material))
    });
    let latest = state
        .keys()
        .map(|key| (key.id, key.domain_generation, &key.wrapped_material));
    for (key, generation, wrapped) in latest.chain(older) {
        let opener = material.get(&generation).with_context(|| {
            format!(
                "backup {id}: key {key} is wrapped under domain key generation {generation}, which the backup does not carry"
            )
        })?;
        let plain = opener
            .unwrap_material(key, wrapped)
            .with_context(|| format!("backup {id}: key {key} does not open"))?;
        rewrapped.insert((key, wrapped.clone()), domain.wrap_material(key, &plain)?);
    }
    drop(material);

    // Everything checked: write the node, and remove what was written if
    // a step fails, so the operator can run restore again.
    let files = node_files(config);
    let existed: Vec<bool> = files.iter().map(|f| f.exists()).collect();
    let data_dir_existed = config.data_dir.exists();
    let written = write_node(config, ca, &state, &domain, &rewrapped, manifest);
    let (record, cluster_id, new_state) = match written {
        Ok(w) => w,
        Err(e) => {
            for (file, existed) in files.iter().zip(existed) {
                if !existed {
                    let _ = std::fs::remove_file(file);
                }
            }
            let _ = std::fs::remove_dir_all(config.store_dir());
            let _ = std::fs::remove_dir(config.data_dir.join("tls"));
            if !data_dir_existed {
                let _ = std::fs::remove_dir(&config.data_dir);
            }
            return Err(e);
        }
    };
    tracing::info!(
        backup_id = %id,
        cluster = %cluster_id,
        applied_index = manifest.applied_index,
        "restored a backup into a new cluster"
    );
    Ok(RestoredCluster {
        cluster_id,
        first_node: record,
        backup: id,
        from_cluster: manifest.cluster_id,
        applied_index: manifest.applied_index,
        term: manifest.term,
        created_ms: manifest.created_at_ms,
        writer: (manifest.writer_node_id, manifest.writer_public_key),
        backup_digest,
        digest: new_state.digest(),
        users: new_state.users().count(),
        keys: new_state.key_count(),
    })
}

/// Key material re-wrapped under the new cluster's domain key, by key and
/// the material as the backup holds it (a key's versions each have their
/// own).
type Rewrapped = BTreeMap<(KeyId, Vec<u8>), Vec<u8>>;

/// Prepares the node and writes its domain key and store.
fn write_node(
    config: &NodeConfig,
    ca: &ClusterCa,
    state: &hsm_state::State,
    domain: &DomainKey,
    rewrapped: &Rewrapped,
    manifest: &hsm_backup::Manifest,
) -> Result<(NodeRecord, ClusterId, hsm_state::State)> {
    let me = config.id();
    let record = prepare(config, ca)?.record;
    let mut cluster = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut cluster);
    let cluster_id = ClusterId(cluster);
    let new_state = state.restored_as(
        RestoreTarget {
            cluster_id,
            first_node: record.clone(),
            domain_check: domain.check(),
        },
        |key, _generation, old| {
            rewrapped
                .get(&(key, old.to_vec()))
                .cloned()
                .ok_or_else(|| format!("key {key} was not re-wrapped"))
        },
    )?;
    let storage = StorageKey::load_file(&config.storage_key_file())?;
    domain.save(&config.domain_key_file(), &file_key(&storage))?;
    let log_id = LogId::new(
        CommittedLeaderId::new(manifest.term, me),
        manifest.applied_index,
    );
    let mut nodes = BTreeMap::new();
    nodes.insert(
        me,
        BasicNode {
            addr: record.address.clone(),
        },
    );
    hsm_raft_store::create_restored(&config.store_dir(), &storage, &new_state, log_id, nodes)
        .with_context(|| {
            format!(
                "cannot create the store in {}",
                config.store_dir().display()
            )
        })?;
    Ok((record, cluster_id, new_state))
}

/// The files [`write_node`] (and `prepare`) create.
fn node_files(config: &NodeConfig) -> Vec<std::path::PathBuf> {
    vec![
        config.identity_file(),
        config.domain_key_file(),
        config.storage_key_file(),
        config.ca_cert(),
        config.node_cert(),
        config.node_key(),
    ]
}
