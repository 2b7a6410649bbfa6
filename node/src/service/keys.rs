//! Key management: create (generate, import, unwrap, derive), look up,
//! list, export public halves, wrap, share, change and delete; and the
//! cache of loaded keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hsm_crypto::{KeyMaterial, LoadedKey, PublicKey};
use hsm_proto::client::{ClientError, ErrorKind, KeyFilter, KeyInfo, Operation, Reply, Secret};
use hsm_proto::{EventBody, KeyAttributes, KeyFlag, KeyId, KeySpec, RequestId};
use hsm_state::authz;
use hsm_state::Key;

use super::{blocking, Caller, Ctx, Outcome, Service};
use crate::secrets::DomainKey;

/// Loaded (unwrapped and parsed) keys, so a hot key is not unwrapped and
/// parsed on every operation. Bounded; an entry is used only while the key's
/// wrapped material is unchanged (a deleted and re-created id never reuses
/// a stale entry).
pub struct KeyCache {
    capacity: usize,
    entries: Mutex<HashMap<KeyId, (blake3::Hash, Arc<LoadedKey>)>>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    /// A cache of at most `capacity` keys (0 disables it).
    pub fn new(capacity: usize) -> KeyCache {
        KeyCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &Key) -> Option<Arc<LoadedKey>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(&key.id) {
            Some((hash, loaded)) if *hash == blake3::hash(&key.wrapped_material) => {
                Some(loaded.clone())
            }
            _ => None,
        }
    }

    /// Drops a key's loaded copy (its plaintext is freed once no operation
    /// uses it).
    pub fn evict(&self, id: KeyId) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(&id);
    }

    fn put(&self, key: &Key, loaded: Arc<LoadedKey>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key.id) {
            // Evict an arbitrary entry: cheap, and no worse than LRU for a
            // uniform working set larger than the cache.
            if let Some(victim) = entries.keys().next().copied() {
                entries.remove(&victim);
            }
        }
        entries.insert(key.id, (blake3::hash(&key.wrapped_material), loaded));
    }
}

/// The id of the key a write creates, derived from its request id, so a
/// retried request (rebuilt on any node) names the same key.
pub(crate) fn key_id_for(request_id: RequestId) -> KeyId {
    let h = blake3::derive_key("hsm-cluster key id v1", &request_id.0);
    let mut id = [0u8; 8];
    id.copy_from_slice(&h[..8]);
    // Keep ids positive when shown as signed integers (PKCS#11 handles).
    KeyId(u64::from_be_bytes(id) >> 1)
}

pub(crate) fn key_info(key: &Key) -> KeyInfo {
    KeyInfo {
        id: key.id,
        spec: key.spec,
        owner: key.owner.clone(),
        shared_with: key.shared_with.iter().cloned().collect(),
        attributes: key.attributes.clone(),
        public_key: key.public_key.clone(),
        created_ms: key.created_ms,
    }
}

fn crypto_err(e: hsm_crypto::CryptoError) -> ClientError {
    use hsm_crypto::CryptoError as C;
    match e {
        C::Internal(_) => ClientError::internal(e.to_string()),
        _ => ClientError::invalid(e.to_string()),
    }
}

/// Refuses an operation the key's attributes do not allow.
pub(crate) fn require(key: &Key, flag: KeyFlag, what: &str) -> Result<(), ClientError> {
    if key.attributes.flag(flag) {
        Ok(())
    } else {
        Err(ClientError::denied(format!(
            "key {} does not allow {what} (its {} attribute is false)",
            key.id,
            flag.name()
        )))
    }
}

fn check_new_key(spec: KeySpec, attributes: &KeyAttributes) -> Result<(), ClientError> {
    if !spec.is_valid() {
        return Err(ClientError::invalid(format!(
            "unsupported key type or size {spec}"
        )));
    }
    if !attributes.is_within_limits() {
        return Err(ClientError::invalid(format!(
            "label at most {} bytes and id at most {} bytes",
            hsm_proto::MAX_LABEL_LEN,
            hsm_proto::MAX_KEY_ATTR_ID_LEN
        )));
    }
    if attributes.trusted {
        return Err(ClientError::denied(
            "only a crypto officer may mark a key trusted, after it exists",
        ));
    }
    Ok(())
}

impl Service {
    pub(super) async fn key_or_crypto(&self, ctx: &Ctx, op: Operation) -> Outcome {
        use Operation as O;
        match op {
            O::GenerateKey {
                spec,
                attributes,
                unique_label,
            } => {
                check_new_key(spec, &attributes)?;
                let material = blocking(move || KeyMaterial::generate(spec))
                    .await?
                    .map_err(crypto_err)?;
                self.create_key(ctx, material, attributes, unique_label)
                    .await
            }
            O::ImportKey {
                spec,
                attributes,
                material,
                unique_label,
            } => {
                check_new_key(spec, &attributes)?;
                if attributes.sensitive {
                    return Err(ClientError::invalid(
                        "plaintext import is only for keys marked not sensitive; import sensitive keys wrapped (unwrap-key)",
                    ));
                }
                let material = blocking(move || KeyMaterial::import(spec, material.expose()))
                    .await?
                    .map_err(crypto_err)?;
                self.create_key(ctx, material, attributes, unique_label)
                    .await
            }
            O::UnwrapKey {
                wrapping_key,
                mechanism,
                wrapped,
                spec,
                attributes,
                unique_label,
            } => {
                check_new_key(spec, &attributes)?;
                let unwrapping = self.usable_key(&ctx.caller, wrapping_key)?;
                require(&unwrapping, KeyFlag::Unwrap, "unwrapping")?;
                // What a trusted key unwraps may have been wrapped because
                // it must only ever be wrapped by trusted keys: the copy
                // keeps that rule.
                let mut attributes = attributes;
                if unwrapping.attributes.trusted {
                    attributes.wrap_with_trusted = true;
                }
                let loaded = self.loaded(&unwrapping).await?;
                let material = blocking(move || loaded.unwrap_key(mechanism, &wrapped, spec))
                    .await?
                    .map_err(|e| match e {
                        hsm_crypto::CryptoError::UnwrapFailed => ClientError::invalid(
                            "unwrap failed: wrong unwrapping key or damaged input",
                        ),
                        other => crypto_err(other),
                    })?;
                self.create_key(ctx, material, attributes, unique_label)
                    .await
            }
            O::DeriveKey {
                key,
                mechanism,
                peer_public_key,
                context,
                spec,
                attributes,
                unique_label,
            } => {
                check_new_key(spec, &attributes)?;
                let base = self.usable_key(&ctx.caller, key)?;
                require(&base, KeyFlag::Derive, "key derivation")?;
                let peer = PublicKey::from_der(&peer_public_key).map_err(crypto_err)?;
                let loaded = self.loaded(&base).await?;
                let material = blocking(move || loaded.derive(mechanism, &peer, &context, spec))
                    .await?
                    .map_err(crypto_err)?;
                self.create_key(ctx, material, attributes, unique_label)
                    .await
            }
            O::GetKey { key } => self
                .visible_key(&ctx.caller, key)
                .map(|k| Reply::Key(key_info(&k))),
            O::ListKeys { filter } => Ok(self.list_keys(&ctx.caller, &filter)),
            O::ExportPublicKey { key } => {
                let k = self.usable_key(&ctx.caller, key)?;
                if k.public_key.is_empty() {
                    return Err(ClientError::invalid(format!(
                        "key {key} is a secret key and has no public half"
                    )));
                }
                let public = PublicKey::from_der(&k.public_key).map_err(crypto_err)?;
                Ok(Reply::PublicKey {
                    pem: public.to_pem(),
                    der: k.public_key,
                })
            }
            O::WrapKey {
                wrapping_key,
                key,
                mechanism,
            } => self.wrap_key(ctx, wrapping_key, key, mechanism).await,
            O::ShareKey { key, with } => {
                self.unless_retry(ctx.request_id, self.owned_key(&ctx.caller, key))?;
                self.write(ctx, EventBody::KeyShared { key, with }).await?;
                Ok(Reply::Done)
            }
            O::UnshareKey { key, with } => {
                self.unless_retry(ctx.request_id, self.owned_key(&ctx.caller, key))?;
                self.write(ctx, EventBody::KeyUnshared { key, with })
                    .await?;
                Ok(Reply::Done)
            }
            O::SetKeyAttribute { key, attribute } => {
                self.write(ctx, EventBody::KeyAttributeSet { key, attribute })
                    .await?;
                Ok(Reply::Done)
            }
            O::DeleteKey { key } => {
                self.unless_retry(ctx.request_id, self.owned_key(&ctx.caller, key))?;
                self.write(ctx, EventBody::KeyDeleted { key }).await?;
                self.cache.evict(key);
                Ok(Reply::Done)
            }
            op => self.crypto(ctx, op).await,
        }
    }

    /// Wraps new material under the domain key and records the key; answers
    /// with the key as stored (for a retried request, the first attempt's).
    async fn create_key(
        &self,
        ctx: &Ctx,
        material: KeyMaterial,
        attributes: KeyAttributes,
        unique_label: bool,
    ) -> Outcome {
        let id = key_id_for(ctx.request_id);
        if material.secret().len() > crate::secrets::MAX_MATERIAL_LEN {
            return Err(ClientError::invalid("key material too large"));
        }
        let wrapped_material = self
            .domain
            .wrap_material(id, material.secret())
            .map_err(|e| ClientError::internal(e.to_string()))?;
        let public_key = material
            .public_key()
            .map(|p| p.der().to_vec())
            .unwrap_or_default();
        let spec = material.spec();
        drop(material);
        self.write(
            ctx,
            EventBody::KeyCreated {
                key: id,
                spec,
                attributes,
                wrapped_material,
                public_key,
                unique_label,
            },
        )
        .await?;
        let key = self
            .state(|s| s.key(id).cloned())
            .ok_or_else(|| ClientError::not_found(format!("key {id} was deleted already")))?;
        Ok(Reply::Key(key_info(&key)))
    }

    /// A key the caller may see: usable by it, or any key for a crypto
    /// officer (metadata only).
    fn visible_key(&self, caller: &Caller, id: KeyId) -> Result<Key, ClientError> {
        self.state(|s| {
            s.key(id)
                .filter(|k| {
                    caller.role == hsm_proto::Role::Co || authz::can_use_key(&caller.username, k)
                })
                .cloned()
        })
        .ok_or_else(|| ClientError::not_found(format!("no key {id}")))
    }

    /// A key the caller owns. Keys it may only use are "not the owner";
    /// keys it cannot see are "not found".
    fn owned_key(&self, caller: &Caller, id: KeyId) -> Result<Key, ClientError> {
        let key = self.usable_key(caller, id)?;
        if authz::can_manage_key(&caller.username, &key) {
            Ok(key)
        } else {
            Err(ClientError::denied(format!(
                "only the owner of key {id} ({}) may manage it",
                key.owner
            )))
        }
    }

    fn list_keys(&self, caller: &Caller, filter: &KeyFilter) -> Reply {
        let all = caller.role == hsm_proto::Role::Co;
        Reply::Keys(self.state(|s| {
            s.keys()
                .filter(|k| all || authz::can_use_key(&caller.username, k))
                .map(key_info)
                .filter(|k| filter.matches(k))
                .collect()
        }))
    }

    async fn wrap_key(
        &self,
        ctx: &Ctx,
        wrapping_key: KeyId,
        key: KeyId,
        mechanism: hsm_crypto::WrapMechanism,
    ) -> Outcome {
        let wrapping = self.usable_key(&ctx.caller, wrapping_key)?;
        require(&wrapping, KeyFlag::Wrap, "wrapping")?;
        // AES-GCM and RSA-OAEP wrapping produce exactly what encryption
        // does: a key that may also decrypt would turn any wrapped key
        // into plaintext. (AES key wrap output is no ciphertext `decrypt`
        // accepts.)
        if wrapping.attributes.decrypt && mechanism != hsm_crypto::WrapMechanism::AesKeyWrapPad {
            return Err(ClientError::denied(format!(
                "key {wrapping_key} may also decrypt, so it may only wrap with {}",
                hsm_crypto::WrapMechanism::AesKeyWrapPad
            )));
        }
        let target = self.owned_key(&ctx.caller, key)?;
        require(&target, KeyFlag::Extractable, "export")?;
        if target.attributes.wrap_with_trusted && !wrapping.attributes.trusted {
            return Err(ClientError::denied(format!(
                "key {key} may only be wrapped by a trusted key, and key {wrapping_key} is not trusted"
            )));
        }
        let wrapper = self.loaded(&wrapping).await?;
        let target = self.loaded(&target).await?;
        let wrapped = blocking(move || wrapper.wrap_key(mechanism, target.material()))
            .await?
            .map_err(crypto_err)?;
        Ok(Reply::Wrapped(wrapped))
    }

    /// The key unwrapped from the domain key and parsed, from the cache if
    /// it is there.
    pub(crate) async fn loaded(&self, key: &Key) -> Result<Arc<LoadedKey>, ClientError> {
        if let Some(hit) = self.cache.get(key) {
            return Ok(hit);
        }
        let domain: Arc<DomainKey> = self.domain.clone();
        let (id, spec, wrapped) = (key.id, key.spec, key.wrapped_material.clone());
        let loaded = blocking(move || {
            let plain = domain.unwrap_material(id, &wrapped).map_err(|e| {
                ClientError::internal(format!("key {id} cannot be opened on this node: {e}"))
            })?;
            LoadedKey::parse(spec, &plain)
                .map_err(|e| ClientError::internal(format!("key {id} is damaged: {e}")))
        })
        .await??;
        let loaded = Arc::new(loaded);
        self.cache.put(key, loaded.clone());
        Ok(loaded)
    }
}

/// Plaintext from a decryption, kept zeroizing on its way out.
pub(crate) fn plaintext_reply(bytes: zeroize::Zeroizing<Vec<u8>>) -> Reply {
    Reply::Plaintext(Secret::new(bytes.to_vec()))
}

/// Maps a verification or decryption failure that is the caller's input,
/// not ours.
pub(crate) fn crypto_error(e: hsm_crypto::CryptoError) -> ClientError {
    if matches!(e, hsm_crypto::CryptoError::DecryptFailed) {
        return ClientError::new(
            ErrorKind::InvalidInput,
            "decryption failed: wrong key, associated data or damaged ciphertext",
        );
    }
    crypto_err(e)
}
