//! The domain key generations a node holds, kept in step with the
//! replicated state.
//!
//! A node starts with the generation in its domain key file (from init,
//! restore or its join). A rotation records the new generation in the state
//! sealed to every member; the keyring opens this node's copy with its
//! agreement key the first time the state asks for that generation, and
//! forgets generations the state retired.
//!
//! Invariant: a key is handed out only if its check value is the one the
//! state records for its generation, so a node never serves with a domain
//! key that is not this cluster's (a wrong file, a key handed over by an
//! impostor).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use hsm_proto::NodeId;
use hsm_state::State;
use x25519_dalek::StaticSecret;

use super::{DomainKey, SecretsError};

/// One held generation and its check value.
struct Held {
    key: Arc<DomainKey>,
    check: [u8; 32],
}

/// The domain key generations this node holds.
pub struct Keyring {
    node: NodeId,
    agreement: StaticSecret,
    held: RwLock<BTreeMap<u32, Held>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let generations: Vec<u32> = self.read().keys().copied().collect();
        f.debug_struct("Keyring")
            .field("node", &self.node)
            .field("generations", &generations)
            .finish_non_exhaustive()
    }
}

fn missing(generation: u32, reason: &'static str) -> SecretsError {
    SecretsError::DomainGeneration { generation, reason }
}

impl Keyring {
    /// A keyring for member `node` holding `key`, which opens later
    /// generations sealed to `agreement` (this node's X25519 secret).
    pub fn new(node: NodeId, agreement: StaticSecret, key: Arc<DomainKey>) -> Keyring {
        let ring = Keyring {
            node,
            agreement,
            held: RwLock::new(BTreeMap::new()),
        };
        ring.insert(key);
        ring
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u32, Held>> {
        self.held
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn insert(&self, key: Arc<DomainKey>) -> Arc<DomainKey> {
        let check = key.check();
        self.held
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                key.generation(),
                Held {
                    key: key.clone(),
                    check,
                },
            );
        key
    }

    /// Generation `generation` of the domain key, as `state` records it.
    ///
    /// # Errors
    /// [`SecretsError::DomainGeneration`] if the state has no cluster or
    /// does not use that generation, or this node holds another key for it
    /// (the check values differ), or it holds none and the state has no
    /// copy sealed to it; [`SecretsError::Transfer`] if that copy does not
    /// open.
    pub fn get(&self, state: &State, generation: u32) -> Result<Arc<DomainKey>, SecretsError> {
        let cluster = state
            .cluster()
            .ok_or_else(|| missing(generation, "the cluster is not initialized yet"))?;
        let recorded = cluster
            .domain
            .generations
            .get(&generation)
            .ok_or_else(|| missing(generation, "the cluster does not use it"))?;
        if let Some(held) = self.read().get(&generation) {
            return if held.check == recorded.check {
                Ok(held.key.clone())
            } else {
                Err(missing(
                    generation,
                    "this node's key is not the one the cluster records (its check value differs)",
                ))
            };
        }
        let sealed = recorded
            .sealed
            .get(&self.node)
            .ok_or_else(|| missing(generation, "it was not sealed to this node"))?;
        let key = DomainKey::open_sealed(
            sealed,
            &self.agreement,
            cluster.cluster_id,
            self.node,
            generation,
        )?;
        if key.check() != recorded.check {
            return Err(missing(
                generation,
                "the key sealed to this node is not the one the cluster records",
            ));
        }
        self.forget_retired(state);
        tracing::info!(generation, "opened a new domain key generation");
        Ok(self.insert(Arc::new(key)))
    }

    /// The generation new material, sessions and backups use in `state`.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn current(&self, state: &State) -> Result<Arc<DomainKey>, SecretsError> {
        let generation = state.cluster().map_or(0, |c| c.domain.current);
        self.get(state, generation)
    }

    /// The generation new secrets use in `state` (`hsm_state::domain::
    /// for_new_secrets`): sessions are issued and checked, key material
    /// and backup keys wrapped, and joining nodes handed the key only under
    /// it, never between a member's removal and its rotation.
    ///
    /// # Errors
    /// [`SecretsError::DomainGeneration`] in that window; otherwise as
    /// [`get`](Self::get).
    pub fn for_new_secrets(&self, state: &State) -> Result<Arc<DomainKey>, SecretsError> {
        let domain = state
            .cluster()
            .map(|c| &c.domain)
            .ok_or_else(|| missing(0, "the cluster is not initialized yet"))?;
        let generation = hsm_state::domain::for_new_secrets(domain).map_err(|_| {
            missing(
                domain.current,
                "the domain key is being rotated after a member's removal; try again in a moment",
            )
        })?;
        self.get(state, generation)
    }

    /// Every generation `state` uses, oldest first.
    ///
    /// # Errors
    /// As [`get`](Self::get), for the first that fails.
    pub fn in_use(&self, state: &State) -> Result<Vec<Arc<DomainKey>>, SecretsError> {
        let Some(cluster) = state.cluster() else {
            return Err(missing(0, "the cluster is not initialized yet"));
        };
        cluster
            .domain
            .generations
            .keys()
            .map(|g| self.get(state, *g))
            .collect()
    }

    /// Drops the keys of generations `state` no longer uses (older than
    /// its current one), so a retired key does not stay in memory.
    pub fn forget_retired(&self, state: &State) {
        let Some(domain) = state.cluster().map(|c| &c.domain) else {
            return;
        };
        let mut held = self
            .held
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.retain(|g, _| *g >= domain.current || domain.generations.contains_key(g));
    }

    /// The generations held now, for logs and tests.
    pub fn held(&self) -> Vec<u32> {
        self.read().keys().copied().collect()
    }
}
