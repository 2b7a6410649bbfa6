//! Turning a backed-up state into the first state of a new cluster.
//!
//! A backup holds a cluster's whole state. Restoring it must not revive the
//! old cluster: its members' certificates and signing keys still exist, and
//! its key material is sealed under the old domain key. So the restored state
//! gets a new cluster id and one new member, every old member id is retired
//! for good, and every key's material is re-wrapped by the caller under the
//! new domain key. Users, keys and the event chain carry over.

use std::collections::BTreeMap;
use std::fmt::Display;

use hsm_proto::{ClusterId, KeyId, NodeId, NodeRecord, MAX_KEY_BLOB_LEN};

use crate::records::{ClusterInfo, DomainKeys, Key, Meta, User};
use crate::state::State;

/// What a restored state becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreTarget {
    /// The new cluster's id.
    pub cluster_id: ClusterId,
    /// The new cluster's only member; it signs the new cluster's events.
    pub first_node: NodeRecord,
    /// Check value of the new cluster's domain key (its generation 0).
    pub domain_check: [u8; 32],
}

/// Why a state cannot be restored as a new cluster.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The state was never initialized, so there is nothing to restore.
    #[error("the backup's state has no cluster (it was never initialized)")]
    NotInitialized,
    /// The new member's id was a member or a retired member of the backed-up
    /// cluster; node ids are never reused, since certificates name them.
    #[error("node id {0} was used by the backed-up cluster; give the new node an id it never had")]
    NodeIdUsed(NodeId),
    /// Re-wrapping a key's material failed or gave unusable material.
    #[error("cannot re-wrap the material of key {key}: {reason}")]
    Rewrap {
        /// The key.
        key: KeyId,
        /// What went wrong.
        reason: String,
    },
}

impl State {
    /// This state as the first state of a new cluster: `target.cluster_id`
    /// replaces the cluster id, `target.first_node` is the only member, the
    /// old members join the retired ids, every key's material becomes
    /// `rewrap(key id, old domain key generation, old material)` under the
    /// new domain key (generation 0, check value `target.domain_check`),
    /// and the remembered request outcomes and logins in progress are
    /// forgotten. Creation time, activation, users, the rest of every
    /// key and the event chain (head and count) are kept. Pure: the same
    /// inputs give the same state.
    ///
    /// # Errors
    /// [`RestoreError::NotInitialized`] for a state without a cluster;
    /// [`RestoreError::NodeIdUsed`] if the new member's id is a current or
    /// retired member id; [`RestoreError::Rewrap`] naming the first key
    /// (in id order) whose `rewrap` fails or returns empty material or more
    /// than [`MAX_KEY_BLOB_LEN`] bytes.
    pub fn restored_as<E: Display>(
        &self,
        target: RestoreTarget,
        mut rewrap: impl FnMut(KeyId, u32, &[u8]) -> Result<Vec<u8>, E>,
    ) -> Result<State, RestoreError> {
        let old = self
            .meta
            .cluster
            .as_ref()
            .ok_or(RestoreError::NotInitialized)?;
        let first = target.first_node.id;
        if self.nodes.contains_key(&first) || old.retired_nodes.contains(&first) {
            return Err(RestoreError::NodeIdUsed(first));
        }

        let mut keys = BTreeMap::new();
        let mut rewrapped = |id: KeyId, generation: u32, wrapped: &[u8]| {
            let fail = |reason: String| RestoreError::Rewrap { key: id, reason };
            let material = rewrap(id, generation, wrapped).map_err(|e| fail(e.to_string()))?;
            if material.is_empty() {
                return Err(fail("the re-wrapped material is empty".into()));
            }
            if material.len() > MAX_KEY_BLOB_LEN {
                return Err(fail(format!(
                    "the re-wrapped material is {} bytes, more than {MAX_KEY_BLOB_LEN}",
                    material.len()
                )));
            }
            Ok(material)
        };
        for (&id, key) in &self.keys {
            let material = rewrapped(id, key.domain_generation, &key.wrapped_material)?;
            keys.insert(
                id,
                Key {
                    wrapped_material: material,
                    domain_generation: 0,
                    ..key.clone()
                },
            );
        }

        // A rotated key's older versions come along, re-wrapped as well.
        let mut versions = BTreeMap::new();
        for (&id, record) in &self.versions {
            let mut record = record.clone();
            for older in record.older.values_mut() {
                older.wrapped_material =
                    rewrapped(id, older.domain_generation, &older.wrapped_material)?;
                older.domain_generation = 0;
            }
            versions.insert(id, record);
        }

        let mut retired_nodes = old.retired_nodes.clone();
        retired_nodes.extend(self.nodes.keys().copied());
        let mut restored = State {
            meta: Meta {
                cluster: Some(ClusterInfo {
                    cluster_id: target.cluster_id,
                    created_ms: old.created_ms,
                    activated: old.activated,
                    retired_nodes,
                    // The old cluster's members never reach the new one.
                    retired_transport_keys: std::collections::BTreeMap::new(),
                    domain: DomainKeys::first(target.domain_check),
                }),
                head: self.meta.head,
                events: self.meta.events,
            },
            // Logins in progress in the old cluster never finish here.
            users: self
                .users
                .iter()
                .map(|(name, user)| {
                    let user = User {
                        reservations: Vec::new(),
                        ..user.clone()
                    };
                    (name.clone(), user)
                })
                .collect(),
            keys,
            nodes: BTreeMap::from([(first, target.first_node)]),
            // The rules the backed-up cluster ran, never older ones.
            protocol: self.protocol,
            // Quorum values and registered keys carry over; tokens do not
            // (their approvals name the old cluster).
            quorum: self.quorum.clone(),
            credentials: self.credentials.clone(),
            versions,
            ..State::default()
        };
        restored.rebuild_indexes();
        Ok(restored)
    }
}
