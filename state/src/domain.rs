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
//! where a killed one left it. A rotation after a member's removal comes
//! first, even while an earlier rotation is still re-wrapping (the removed
//! member holds the current generation); an officer's rotation otherwise
//! waits until the previous one retired its old generations. Between a
//! removal and its rotation, no new key material is accepted (it would be
//! wrapped under a generation the removed member holds).
//!
//! Invariant: every key's `domain_generation` is a generation in use, and
//! the current generation is in use.

use std::collections::{BTreeMap, BTreeSet};

use hsm_proto::{DomainKeyError, KeyId, NodeId, Rejection, SealedDomainKey};

use crate::records::DomainKeys;
use crate::state::State;

/// Most keys one `KeyMaterialRewrapped` event carries.
pub const MAX_REWRAP_KEYS: usize = 64;

/// Most domain key generations in use at once (rotations after removals
/// stack while earlier ones re-wrap; a cluster has at most 28 members).
pub const MAX_LIVE_GENERATIONS: usize = 32;

/// Length of the ciphertext of a sealed domain key (32-byte key and a
/// 16-byte tag).
const SEALED_CIPHERTEXT_LEN: usize = 48;

/// What the leader should do next about domain key generations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainWork {
    /// Re-wrap these keys' material under the current generation.
    Rewrap(Vec<KeyId>),
    /// Re-wrap these older key versions' material under the current
    /// generation (once every key's latest version is done).
    RewrapVersions(Vec<(KeyId, u32)>),
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
/// use, unless a member was removed since the current generation was made;
/// [`DomainKeyError::TooManyGenerations`] at [`MAX_LIVE_GENERATIONS`];
/// [`DomainKeyError::WrongGeneration`] unless `generation` is the current
/// one plus one; [`DomainKeyError::MembersChanged`] unless `sealed` names
/// exactly `members`; [`DomainKeyError::MalformedSealedKey`] for a sealed
/// key of another version or size.
pub fn check_rotation(
    domain: &DomainKeys,
    members: &BTreeSet<NodeId>,
    generation: u32,
    sealed: &BTreeMap<NodeId, SealedDomainKey>,
) -> Result<(), Rejection> {
    if !domain.settled() && !domain.rotation_due {
        return Err(refuse(DomainKeyError::RotationInProgress));
    }
    if domain.generations.len() >= MAX_LIVE_GENERATIONS {
        return Err(refuse(DomainKeyError::TooManyGenerations(
            domain.generations.len(),
        )));
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

/// Checks a re-wrap under `generation` of the material `slots` name (keys,
/// or key versions).
///
/// # Errors
/// [`DomainKeyError::NotCurrent`] unless `generation` is current;
/// [`DomainKeyError::TooManyKeys`] for more than [`MAX_REWRAP_KEYS`] slots
/// or one named twice.
pub fn check_rewrap<T: Ord>(
    domain: &DomainKeys,
    generation: u32,
    slots: impl ExactSizeIterator<Item = T>,
) -> Result<(), Rejection> {
    if generation != domain.current {
        return Err(refuse(DomainKeyError::NotCurrent(domain.current)));
    }
    let count = slots.len();
    let distinct: BTreeSet<T> = slots.collect();
    if count > MAX_REWRAP_KEYS || distinct.len() != count {
        return Err(refuse(DomainKeyError::TooManyKeys {
            max: MAX_REWRAP_KEYS,
        }));
    }
    Ok(())
}

/// Checks that new key material may be recorded wrapped under
/// `generation`: no removal is waiting for its rotation, and the
/// generation is the current one (an older one may be known to a member
/// removed since, which may still receive log entries until its removal
/// commits in Raft).
///
/// # Errors
/// [`DomainKeyError::RotationDue`] between a removal and its rotation;
/// [`DomainKeyError::NotCurrent`] for any other generation. Both are
/// [transient](is_transient).
pub fn check_new_material(domain: &DomainKeys, generation: u32) -> Result<(), Rejection> {
    if generation == for_new_secrets(domain)? {
        Ok(())
    } else {
        Err(refuse(DomainKeyError::NotCurrent(domain.current)))
    }
}

/// The generation new secrets use (key material, session tokens, backup
/// keys, a joining node's hand-off): the current one, except between a
/// member's removal and the rotation it makes due, when the removed member
/// still holds it.
///
/// # Errors
/// [`DomainKeyError::RotationDue`] in that window.
pub fn for_new_secrets(domain: &DomainKeys) -> Result<u32, Rejection> {
    if domain.rotation_due {
        Err(refuse(DomainKeyError::RotationDue))
    } else {
        Ok(domain.current)
    }
}

/// Whether a refusal only says "not now" because of a rotation in
/// progress. Such a refusal is not remembered under its request id, so a
/// retry of the same request is decided again instead of getting the same
/// refusal until its deadline.
pub fn is_transient(rejection: &Rejection) -> bool {
    matches!(
        rejection,
        Rejection::DomainKey(DomainKeyError::RotationDue | DomainKeyError::NotCurrent(_))
    )
}

/// Checks that a generation may be retired: in use, not current, and no
/// key's material uses it (`keys` of them do).
///
/// # Errors
/// [`DomainKeyError::StillInUse`] for the current generation or one that
/// wraps some key's material; [`DomainKeyError::NotLive`] for one not in
/// use.
pub fn check_retire(domain: &DomainKeys, generation: u32, keys: usize) -> Result<(), Rejection> {
    if generation == domain.current || keys > 0 {
        return Err(refuse(DomainKeyError::StillInUse { generation, keys }));
    }
    if !domain.generations.contains_key(&generation) {
        return Err(refuse(DomainKeyError::NotLive(generation)));
    }
    Ok(())
}

/// Whether an X25519 public key is usable to seal to: not one of the
/// low-order points, whose shared secret with anyone is known. (A
/// low-order point times any clamped scalar is the identity.)
pub fn is_usable_agreement_key(key: &[u8; 32]) -> bool {
    let probe = x25519_dalek::StaticSecret::from([0x5a; 32]);
    probe
        .diffie_hellman(&x25519_dalek::PublicKey::from(*key))
        .was_contributory()
}

impl State {
    /// The next step of domain key upkeep for the leader, if any, with at
    /// most `batch` keys to re-wrap, leaving out the keys in `skip` (ones
    /// the leader failed to re-wrap): rotate first if a member was removed
    /// (even while an earlier rotation re-wraps), then re-wrap keys of older
    /// generations, then retire the older generations no key uses. `None`
    /// before init and when nothing is due.
    pub fn domain_work(&self, batch: usize, skip: &BTreeSet<KeyId>) -> Option<DomainWork> {
        let domain = &self.meta.cluster.as_ref()?.domain;
        if domain.rotation_due && domain.generations.len() < MAX_LIVE_GENERATIONS {
            return Some(DomainWork::Rotate);
        }
        if domain.settled() {
            return None;
        }
        let stale: Vec<KeyId> = self
            .keys
            .values()
            .filter(|k| k.domain_generation != domain.current && !skip.contains(&k.id))
            .map(|k| k.id)
            .take(batch.clamp(1, MAX_REWRAP_KEYS))
            .collect();
        if !stale.is_empty() {
            return Some(DomainWork::Rewrap(stale));
        }
        let stale_versions: Vec<(KeyId, u32)> = self
            .older_versions()
            .filter(|(k, _, o)| o.domain_generation != domain.current && !skip.contains(k))
            .map(|(k, v, _)| (k, v))
            .take(batch.clamp(1, MAX_REWRAP_KEYS))
            .collect();
        if !stale_versions.is_empty() {
            return Some(DomainWork::RewrapVersions(stale_versions));
        }
        let used = self.generations_used();
        domain
            .generations
            .keys()
            .find(|g| **g != domain.current && !used.contains(g))
            .map(|g| DomainWork::Retire(*g))
    }

    /// How many keys' material (latest or older versions) is wrapped
    /// under a generation other than the current one (0 when no rotation
    /// is in progress).
    pub fn keys_to_rewrap(&self) -> usize {
        let Some(current) = self.meta.cluster.as_ref().map(|c| c.domain.current) else {
            return 0;
        };
        self.keys
            .values()
            .filter(|k| k.domain_generation != current)
            .count()
            + self
                .older_versions()
                .filter(|(_, _, o)| o.domain_generation != current)
                .count()
    }

    /// Materials (latest and older key versions) wrapped under
    /// `generation`.
    pub(crate) fn materials_under(&self, generation: u32) -> usize {
        self.keys
            .values()
            .filter(|k| k.domain_generation == generation)
            .count()
            + self
                .older_versions()
                .filter(|(_, _, o)| o.domain_generation == generation)
                .count()
    }

    /// The generations some key material (latest or older version) is
    /// wrapped under.
    fn generations_used(&self) -> BTreeSet<u32> {
        self.keys
            .values()
            .map(|k| k.domain_generation)
            .chain(self.older_versions().map(|(_, _, o)| o.domain_generation))
            .collect()
    }
}
