//! Domain key generations: the rules of rotation, and what the leader does
//! next.
//!
//! The domain key wraps every key's material, keys session-token MACs and
//! wraps each backup's key. A member removed from the cluster keeps its
//! copy, so removal is followed by a rotation:
//!
//! 1. `DomainKeyRotated`: a new generation, its key sealed to each member
//!    of the moment (and to no one else), becomes current. From then on new
//!    material, sessions and backups use it; sessions under the old
//!    generation end.
//! 2. `KeyMaterialRewrapped`, in batches: the leader wraps every key's
//!    material again under the current generation.
//! 3. `DomainKeyRetired`: once no key's material uses an old generation,
//!    it is forgotten and members drop its key.
//!
//! Every step is an event, and what comes next follows from the state
//! alone ([`State::domain_work`]), so a new leader picks up a rotation
//! where a killed one left it. One rotation at a time: a new one waits
//! until the previous one retired its old generation.
//!
//! Invariant: every key's `domain_generation` is a generation in use, and
//! the current generation is in use.

use std::collections::{BTreeMap, BTreeSet};

use hsm_proto::{DomainKeyError, KeyId, NodeId, Rejection, RewrappedMaterial, SealedDomainKey};

use crate::records::DomainKeys;
use crate::state::State;

/// Most keys one `KeyMaterialRewrapped` event carries.
pub const MAX_REWRAP_KEYS: usize = 64;

/// Length of the ciphertext of a sealed domain key (32-byte key and a
/// 16-byte tag).
const SEALED_CIPHERTEXT_LEN: usize = 48;

/// What the leader should do next about domain key generations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainWork {
    /// Re-wrap these keys' material under the current generation.
    Rewrap(Vec<KeyId>),
    /// Retire this generation: no key uses it any more.
    Retire(u32),
    /// Make a new generation: a member was removed.
    Rotate,
}

fn refuse(e: DomainKeyError) -> Rejection {
    Rejection::DomainKey(e)
}

/// Checks a rotation to `generation`, sealed to the members in `sealed`,
/// against `domain` and the current `members`.
///
/// # Errors
/// [`DomainKeyError::RotationInProgress`] while an older generation is in
/// use; [`DomainKeyError::WrongGeneration`] unless `generation` is the
/// current one plus one; [`DomainKeyError::MembersChanged`] unless `sealed`
/// names exactly `members`; [`DomainKeyError::MalformedSealedKey`] for a
/// sealed key of another version or size.
pub fn check_rotation(
    domain: &DomainKeys,
    members: &BTreeSet<NodeId>,
    generation: u32,
    sealed: &BTreeMap<NodeId, SealedDomainKey>,
) -> Result<(), Rejection> {
    if !domain.settled() {
        return Err(refuse(DomainKeyError::RotationInProgress));
    }
    let expected = domain.current.saturating_add(1);
    if generation != expected || domain.current == u32::MAX {
        return Err(refuse(DomainKeyError::WrongGeneration {
            expected,
            got: generation,
        }));
    }
    if !sealed.keys().eq(members.iter()) {
        return Err(refuse(DomainKeyError::MembersChanged));
    }
    if let Some((node, _)) = sealed
        .iter()
        .find(|(_, s)| s.version != 1 || s.ciphertext.len() != SEALED_CIPHERTEXT_LEN)
    {
        return Err(refuse(DomainKeyError::MalformedSealedKey(*node)));
    }
    Ok(())
}

/// Checks a re-wrap under `generation` of `keys`.
///
/// # Errors
/// [`DomainKeyError::NotCurrent`] unless `generation` is current;
/// [`DomainKeyError::TooManyKeys`] for more than [`MAX_REWRAP_KEYS`] keys or
/// a key named twice.
pub fn check_rewrap(
    domain: &DomainKeys,
    generation: u32,
    keys: &[RewrappedMaterial],
) -> Result<(), Rejection> {
    if generation != domain.current {
        return Err(refuse(DomainKeyError::NotCurrent(domain.current)));
    }
    let distinct: BTreeSet<KeyId> = keys.iter().map(|k| k.key).collect();
    if keys.len() > MAX_REWRAP_KEYS || distinct.len() != keys.len() {
        return Err(refuse(DomainKeyError::TooManyKeys {
            max: MAX_REWRAP_KEYS,
        }));
    }
    Ok(())
}

/// Checks that new material may be wrapped under `generation`: one in use.
///
/// # Errors
/// [`DomainKeyError::NotLive`] otherwise.
pub fn check_live(domain: &DomainKeys, generation: u32) -> Result<(), Rejection> {
    if domain.generations.contains_key(&generation) {
        Ok(())
    } else {
        Err(refuse(DomainKeyError::NotLive(generation)))
    }
}

impl State {
    /// The next step of domain key upkeep for the leader, if any, with at
    /// most `batch` keys to re-wrap: re-wrap keys of older generations
    /// first, then retire those generations, then rotate if a member was
    /// removed. `None` before init and when nothing is due.
    pub fn domain_work(&self, batch: usize) -> Option<DomainWork> {
        let domain = &self.meta.cluster.as_ref()?.domain;
        if !domain.settled() {
            let stale: Vec<KeyId> = self
                .keys
                .values()
                .filter(|k| k.domain_generation != domain.current)
                .map(|k| k.id)
                .take(batch.clamp(1, MAX_REWRAP_KEYS))
                .collect();
            if !stale.is_empty() {
                return Some(DomainWork::Rewrap(stale));
            }
            let oldest = domain
                .generations
                .keys()
                .find(|g| **g != domain.current)
                .copied()?;
            return Some(DomainWork::Retire(oldest));
        }
        domain.rotation_due.then_some(DomainWork::Rotate)
    }

    /// How many keys' material is wrapped under a generation other than the
    /// current one (0 when no rotation is in progress).
    pub fn keys_to_rewrap(&self) -> usize {
        let Some(current) = self.meta.cluster.as_ref().map(|c| c.domain.current) else {
            return 0;
        };
        self.keys
            .values()
            .filter(|k| k.domain_generation != current)
            .count()
    }
}
