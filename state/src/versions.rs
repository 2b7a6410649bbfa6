//! Key versions: a rotated key keeps its id, owner, shares and attributes
//! and gets new material as its next version. The [`Key`] record always
//! holds the latest version (so everything that signs, encrypts, wraps or
//! exports uses it, PKCS#11 too); the versions before it live in a
//! [`KeyVersions`] record beside it, for decryption and verification at or
//! above the key's minimum decryption version, until trimmed.
//!
//! Invariants (kept by `apply`, checked at load): a key without a
//! [`KeyVersions`] record is at version 1 with minimum 1; with one,
//! `oldest <= min_decryption <= latest`, every kept older version is below
//! `latest`, and at most [`MAX_KEY_VERSIONS`] versions are kept.

use std::borrow::Cow;
use std::collections::BTreeMap;

use hsm_proto::client::KeyVersionsInfo;
use hsm_proto::{KeyId, KeyUses, Rejection, VersionDefect, MAX_KEY_USES};
use serde::{Deserialize, Serialize};

use crate::records::Key;
use crate::State;

/// Most versions a key keeps at once (the latest included); a rotation
/// past it is refused until old ones are trimmed.
pub const MAX_KEY_VERSIONS: u32 = 64;

/// A key's versions beyond its first: stored as its own record, so keys
/// never rotated carry nothing new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVersions {
    /// The key.
    pub key: KeyId,
    /// The latest version (the [`Key`] record's material).
    pub latest: u32,
    /// When the latest version was made (leader time).
    pub latest_created_ms: u64,
    /// The oldest version that may decrypt and verify.
    pub min_decryption: u32,
    /// The versions before the latest still kept, by version.
    pub older: BTreeMap<u32, OlderVersion>,
}

/// One version before the latest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OlderVersion {
    /// The domain key generation its material is wrapped under.
    pub domain_generation: u32,
    /// Its material sealed under the cluster domain key.
    #[serde(with = "serde_bytes")]
    pub wrapped_material: Vec<u8>,
    /// Its public half (pairs); empty for secret keys.
    #[serde(with = "serde_bytes")]
    pub public_key: Vec<u8>,
    /// When it was made (leader time).
    pub created_ms: u64,
}

impl KeyVersions {
    /// The record of a key about to get its second version.
    pub(crate) fn first(key: &Key) -> KeyVersions {
        KeyVersions {
            key: key.id,
            latest: 1,
            latest_created_ms: key.created_ms,
            min_decryption: 1,
            older: BTreeMap::new(),
        }
    }

    /// The oldest version kept.
    pub fn oldest(&self) -> u32 {
        self.older.keys().next().copied().unwrap_or(self.latest)
    }

    /// Versions kept, the latest included.
    pub fn kept(&self) -> u32 {
        u32::try_from(self.older.len()).map_or(u32::MAX, |n| n.saturating_add(1))
    }

    /// Whether the record is one `apply` could have made.
    pub(crate) fn is_consistent(&self) -> bool {
        self.latest >= 2
            && self.oldest() <= self.min_decryption
            && self.min_decryption <= self.latest
            && self.older.keys().all(|v| *v >= 1 && *v < self.latest)
            && self.kept() <= MAX_KEY_VERSIONS
    }
}

/// What a caller does with a version: make something new (always the
/// latest), or check something old (any version kept at or above the
/// minimum decryption version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionUse {
    /// Sign, encrypt, make a data key: the latest version.
    Make,
    /// Decrypt or verify what `version` made (`None`: the latest).
    Check(Option<u32>),
}

impl State {
    /// A key's versions record, if it was ever rotated.
    pub fn key_versions(&self, id: KeyId) -> Option<&KeyVersions> {
        self.versions.get(&id)
    }

    /// The latest version of `key` (1 for a key never rotated).
    pub fn latest_version(&self, id: KeyId) -> u32 {
        self.versions.get(&id).map_or(1, |v| v.latest)
    }

    /// `key` as one of its versions is: the record itself for the latest,
    /// else a copy carrying that version's material and public key (and
    /// no certificate), with the version's number. The one place that
    /// decides which versions may be used for what.
    ///
    /// # Errors
    /// [`VersionDefect::NotKept`] for a version the key does not keep (or
    /// never had); [`VersionDefect::BelowMinimum`] for one below the
    /// minimum decryption version.
    pub fn key_at_version<'a>(
        &self,
        key: &'a Key,
        use_: VersionUse,
    ) -> Result<(u32, Cow<'a, Key>), Rejection> {
        let versions = self.versions.get(&key.id);
        let latest = versions.map_or(1, |v| v.latest);
        let asked = match use_ {
            VersionUse::Make | VersionUse::Check(None) => return Ok((latest, Cow::Borrowed(key))),
            VersionUse::Check(Some(v)) => v,
        };
        let refuse = |defect| Err(Rejection::KeyVersionRefused(key.id, defect));
        let oldest = versions.map_or(1, KeyVersions::oldest);
        let min = versions.map_or(1, |v| v.min_decryption);
        if asked == latest {
            return Ok((latest, Cow::Borrowed(key)));
        }
        let older = versions.and_then(|v| v.older.get(&asked));
        let Some(older) = older.filter(|_| asked < latest) else {
            return refuse(VersionDefect::NotKept {
                version: asked,
                oldest,
                latest,
            });
        };
        if asked < min {
            return refuse(VersionDefect::BelowMinimum {
                version: asked,
                min,
            });
        }
        Ok((
            asked,
            Cow::Owned(Key {
                domain_generation: older.domain_generation,
                wrapped_material: older.wrapped_material.clone(),
                public_key: older.public_key.clone(),
                created_ms: older.created_ms,
                certificate: Vec::new(),
                ..key.clone()
            }),
        ))
    }

    /// The version a rotation of `key` would make now.
    ///
    /// # Errors
    /// [`VersionDefect::PublicOnly`] for a public key alone;
    /// [`VersionDefect::TooMany`] when it keeps [`MAX_KEY_VERSIONS`]
    /// versions; [`VersionDefect::NotNext`] when there is no next number.
    pub fn next_version(&self, key: &Key) -> Result<u32, Rejection> {
        let refuse = |defect| Err(Rejection::KeyVersionRefused(key.id, defect));
        if key.provenance.public_only() {
            return refuse(VersionDefect::PublicOnly);
        }
        let versions = self.versions.get(&key.id);
        let latest = versions.map_or(1, |v| v.latest);
        if versions.map_or(1, KeyVersions::kept) >= MAX_KEY_VERSIONS {
            return refuse(VersionDefect::TooMany {
                max: MAX_KEY_VERSIONS,
            });
        }
        match latest.checked_add(1) {
            Some(next) => Ok(next),
            None => refuse(VersionDefect::NotNext { latest }),
        }
    }

    /// A key's versions as clients see them.
    pub fn key_versions_info(&self, key: &Key) -> KeyVersionsInfo {
        match self.versions.get(&key.id) {
            None => KeyVersionsInfo {
                key: key.id,
                latest: 1,
                min_decryption: 1,
                versions: vec![(1, key.created_ms)],
            },
            Some(v) => KeyVersionsInfo {
                key: key.id,
                latest: v.latest,
                min_decryption: v.min_decryption,
                versions: v
                    .older
                    .iter()
                    .map(|(n, o)| (*n, o.created_ms))
                    .chain(std::iter::once((v.latest, v.latest_created_ms)))
                    .collect(),
            },
        }
    }

    /// Every older version's (key, version, generation), for domain key
    /// upkeep.
    pub(crate) fn older_versions(&self) -> impl Iterator<Item = (KeyId, u32, &OlderVersion)> {
        self.versions
            .values()
            .flat_map(|v| v.older.iter().map(move |(n, o)| (v.key, *n, o)))
    }
}

/// Checks a member's key use counts (`EventBody::KeyUsesCounted`): at most
/// [`MAX_KEY_USES`], each from 1, in strictly increasing (key, user, kind)
/// order (so each is counted once, and two replicas read one order).
///
/// # Errors
/// [`Rejection::KeyUsesMalformed`] otherwise.
pub fn check_key_uses(uses: &[KeyUses]) -> Result<(), Rejection> {
    let ordered = uses
        .windows(2)
        .all(|w| (&w[0].key, &w[0].user, w[0].kind) < (&w[1].key, &w[1].user, w[1].kind));
    if uses.is_empty() || uses.len() > MAX_KEY_USES || !ordered || uses.iter().any(|u| u.count == 0)
    {
        return Err(Rejection::KeyUsesMalformed { max: MAX_KEY_USES });
    }
    Ok(())
}
