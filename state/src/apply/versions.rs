//! The rules of key versions (`crate::versions` has the record and the
//! choice of a version for each use).

use hsm_proto::{
    EventBody, KeyChange, KeyDefect, KeyId, Rejection, RewrappedVersion, Role, Username,
    VersionDefect, MAX_KEY_BLOB_LEN,
};

use super::{allow, Rule, Tx};
use crate::authz::Action;
use crate::domain;
use crate::entity::EntityKey;
use crate::versions::{KeyVersions, OlderVersion};

impl Tx<'_> {
    /// The rules of a user's key version events; `None` for other events.
    pub(super) fn version_rules(
        &mut self,
        me: &Username,
        role: Role,
        body: &EventBody,
    ) -> Option<Rule> {
        Some(match body {
            EventBody::KeyRotated {
                key,
                version,
                domain_generation,
                wrapped_material,
                public_key,
            } => self.rotate_key(
                me,
                role,
                *key,
                *version,
                *domain_generation,
                wrapped_material,
                public_key,
            ),
            EventBody::KeyMinDecryptionSet { key, version } => {
                self.set_min_decryption(me, role, *key, *version)
            }
            EventBody::KeyVersionsTrimmed { key, below } => {
                self.trim_versions(me, role, *key, *below)
            }
            _ => return None,
        })
    }

    /// The key's versions record as it is, or as a key never rotated has
    /// it (not stored until a rotation).
    fn versions_of(&self, me: &Username, role: Role, key: KeyId) -> Result<KeyVersions, Rejection> {
        allow(role, Action::ManageKey)?;
        let k = self.managed_key(me, key, KeyChange::Versions)?;
        Ok(self
            .state
            .versions
            .get(&key)
            .cloned()
            .unwrap_or_else(|| KeyVersions::first(k)))
    }

    #[allow(clippy::too_many_arguments)]
    fn rotate_key(
        &mut self,
        me: &Username,
        role: Role,
        key: KeyId,
        version: u32,
        domain_generation: u32,
        wrapped_material: &[u8],
        public_key: &[u8],
    ) -> Rule {
        let mut versions = self.versions_of(me, role, key)?;
        let current = self.existing_key(key)?.clone();
        if version != self.state.next_version(&current)? {
            return Err(Rejection::KeyVersionRefused(
                key,
                VersionDefect::NotNext {
                    latest: versions.latest,
                },
            ));
        }
        domain::check_new_material(self.domain()?, domain_generation)?;
        if wrapped_material.len() > MAX_KEY_BLOB_LEN || public_key.len() > MAX_KEY_BLOB_LEN {
            return Err(Rejection::KeyInvalid(KeyDefect::MaterialTooLarge));
        }
        if wrapped_material.is_empty() {
            return Err(Rejection::KeyInvalid(KeyDefect::NoMaterial));
        }
        if current.spec.is_asymmetric() == public_key.is_empty() {
            return Err(Rejection::KeyInvalid(KeyDefect::PublicKeyMismatch));
        }
        versions.older.insert(
            versions.latest,
            OlderVersion {
                domain_generation: current.domain_generation,
                wrapped_material: current.wrapped_material.clone(),
                public_key: current.public_key.clone(),
                created_ms: versions.latest_created_ms,
            },
        );
        versions.latest = version;
        versions.latest_created_ms = self.now_ms;
        self.update_key(key, |k| {
            k.domain_generation = domain_generation;
            k.wrapped_material = wrapped_material.to_vec();
            k.public_key = public_key.to_vec();
            // It certified the old public key.
            k.certificate.clear();
        });
        self.put_versions(versions);
        Ok(())
    }

    fn set_min_decryption(&mut self, me: &Username, role: Role, key: KeyId, version: u32) -> Rule {
        let mut versions = self.versions_of(me, role, key)?;
        let (oldest, latest) = (versions.oldest(), versions.latest);
        if version < oldest || version > latest {
            return Err(Rejection::KeyVersionRefused(
                key,
                VersionDefect::NotKept {
                    version,
                    oldest,
                    latest,
                },
            ));
        }
        versions.min_decryption = version;
        self.put_versions(versions);
        Ok(())
    }

    fn trim_versions(&mut self, me: &Username, role: Role, key: KeyId, below: u32) -> Rule {
        let mut versions = self.versions_of(me, role, key)?;
        if below > versions.min_decryption {
            return Err(Rejection::KeyVersionRefused(
                key,
                VersionDefect::TrimAboveMinimum {
                    below,
                    min: versions.min_decryption,
                },
            ));
        }
        versions.older.retain(|v, _| *v >= below);
        self.put_versions(versions);
        Ok(())
    }

    /// The leader's re-wrap of older versions' material under the current
    /// domain key generation (the node actor was checked).
    pub(super) fn rewrap_versions(
        &mut self,
        generation: u32,
        versions: &[RewrappedVersion],
    ) -> Rule {
        domain::check_rewrap(
            self.domain()?,
            generation,
            versions.iter().map(|v| (v.key, v.version)),
        )?;
        if versions
            .iter()
            .any(|v| v.wrapped_material.is_empty() || v.wrapped_material.len() > MAX_KEY_BLOB_LEN)
        {
            return Err(Rejection::KeyInvalid(KeyDefect::MaterialSize));
        }
        // Versions trimmed or keys deleted meanwhile, and versions already
        // re-wrapped by an earlier leader's event, are skipped.
        for v in versions {
            let Some(mut record) = self.state.versions.get(&v.key).cloned() else {
                continue;
            };
            if let Some(older) = record.older.get_mut(&v.version) {
                if older.domain_generation != generation {
                    older.domain_generation = generation;
                    older.wrapped_material.clone_from(&v.wrapped_material);
                    self.put_versions(record);
                }
            }
        }
        Ok(())
    }

    /// Stores a key's versions record; a key at version 1 with minimum 1
    /// needs none.
    fn put_versions(&mut self, versions: KeyVersions) {
        let key = versions.key;
        if versions.latest <= 1 {
            return;
        }
        if self.state.versions.get(&key) != Some(&versions) {
            self.state.versions.insert(key, versions);
            self.changed.insert(EntityKey::Versions(key));
        }
    }

    /// Forgets a deleted key's versions.
    pub(super) fn forget_versions(&mut self, key: KeyId) {
        if self.state.versions.remove(&key).is_some() {
            self.changed.insert(EntityKey::Versions(key));
        }
    }
}
