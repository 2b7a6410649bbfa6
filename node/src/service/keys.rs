//! Key management: create (generate, import, unwrap, derive), look up,
//! list, export public halves, wrap, share, change and delete; and the
//! cache of loaded keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hsm_crypto::{KeyMaterial, LoadedKey, PublicKey, WrapMechanism};
use hsm_proto::client::{
    ClientError, ErrorKind, KeyFilter, KeyInfo, Reply, Secret, MAX_PAGE, MAX_PAGE_SCAN,
};
use hsm_proto::{
    Actor, EventBody, KeyAttribute, KeyAttributes, KeyId, KeyOrigin, KeyProvenance, KeySpec,
    RequestId, Username,
};
use hsm_state::authz;
use hsm_state::policy::{self, KeyUse};
use hsm_state::Key;

use super::crypto_ops::run;
use super::{blocking, Caller, Ctx, DeriveRequest, Outcome, Service, UnwrapRequest};
use crate::secrets::DomainKey;

/// Loaded (unwrapped and parsed) keys, so a hot key is not unwrapped and
/// parsed on every operation. Bounded; an entry is used only while the key's
/// wrapped material and type are unchanged (a deleted and re-created id
/// never reuses a stale entry: the same material wraps alike under one id
/// and generation, so the type is checked too).
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
            Some((hash, loaded)) if *hash == fingerprint(key) && loaded.spec() == key.spec => {
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
        entries.insert(key.id, (fingerprint(key), loaded));
    }
}

/// What a cached copy must match: the sealed material and the public key.
/// The sealed material alone does not tell apart two public keys alone
/// under one id (each seals the same empty material under the same id and
/// generation), and an id comes back when its request id is used again.
fn fingerprint(key: &Key) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update(&(key.wrapped_material.len() as u64).to_le_bytes());
    h.update(&key.wrapped_material);
    h.update(&key.public_key);
    h.finalize()
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

/// A key's metadata as `caller` may see it: the share list only for its
/// owner and crypto officers (a user it is shared with sees itself).
pub(crate) fn key_info(caller: &Caller, key: &Key) -> KeyInfo {
    let shared_with = if authz::sees_share_list(&caller.username, caller.role, key) {
        key.shared_with.iter().cloned().collect()
    } else {
        vec![caller.username.clone()]
    };
    KeyInfo {
        id: key.id,
        spec: key.spec,
        owner: key.owner.clone(),
        shared_with,
        attributes: key.attributes.clone(),
        provenance: key.provenance,
        public_key: key.public_key.clone(),
        created_ms: key.created_ms,
        certificate: key.certificate.clone(),
    }
}

pub(crate) fn crypto_err(e: hsm_crypto::CryptoError) -> ClientError {
    use hsm_crypto::CryptoError as C;
    match e {
        C::Internal(_) => ClientError::internal(e.to_string()),
        _ => ClientError::invalid(e.to_string()),
    }
}

/// Refuses a use of `key` its attributes do not allow (the key policy).
pub(crate) fn allow_use(key: &Key, use_: KeyUse) -> Result<(), ClientError> {
    policy::check_use(key, use_).map_err(ClientError::from)
}

/// Refuses a new key the key policy refuses.
fn check_new_key(
    spec: KeySpec,
    attributes: &KeyAttributes,
    provenance: &KeyProvenance,
) -> Result<(), ClientError> {
    policy::check_new_key(spec, attributes, provenance).map_err(ClientError::from)
}

impl Service {
    pub(super) async fn generate_key(
        &self,
        ctx: &Ctx,
        spec: KeySpec,
        attributes: KeyAttributes,
        unique_label: bool,
    ) -> Outcome {
        let provenance = KeyProvenance::generated(&attributes);
        check_new_key(spec, &attributes, &provenance)?;
        let material = self.generate_material(spec).await?;
        self.create_key(ctx, material, attributes, provenance, unique_label)
            .await
    }

    /// New material of `spec`, pairs checked pairwise (a failure puts the
    /// node's cryptography out of service).
    pub(super) async fn generate_material(
        &self,
        spec: KeySpec,
    ) -> Result<KeyMaterial, ClientError> {
        let corrupt = self.corrupt_key_pairs;
        // Only RSA takes long enough to leave the async worker for.
        let inline = !matches!(spec, KeySpec::Rsa { .. });
        match run(inline, move || {
            KeyMaterial::generate_corrupting(spec, corrupt)
        })
        .await?
        {
            Ok(material) => Ok(material),
            Err(e @ hsm_crypto::CryptoError::PairwiseInconsistent(_)) => {
                // FIPS 140-3: a failed conditional self-test puts the
                // module in its error state.
                self.fail_crypto(e.to_string());
                Err(ClientError::unavailable(format!(
                    "node {} serves no cryptography: {e}; another node may",
                    self.node
                )))
            }
            Err(e) => Err(crypto_err(e)),
        }
    }

    /// Plaintext material the caller has: the key is marked as known
    /// outside the cluster, so it never protects a sensitive key unless a
    /// crypto officer trusts it.
    pub(super) async fn import_key(
        &self,
        ctx: &Ctx,
        spec: KeySpec,
        attributes: KeyAttributes,
        material: Secret,
        unique_label: bool,
    ) -> Outcome {
        let provenance = KeyProvenance::known_outside(KeyOrigin::Imported);
        check_new_key(spec, &attributes, &provenance)?;
        let material = blocking(move || KeyMaterial::import(spec, material.expose()))
            .await?
            .map_err(crypto_err)?;
        self.create_key(ctx, material, attributes, provenance, unique_label)
            .await
    }

    /// A public key alone: the cluster holds no private half, and the
    /// key policy keeps it to verification, encryption and wrapping.
    pub(super) async fn import_public_key(
        &self,
        ctx: &Ctx,
        public_key: Vec<u8>,
        attributes: KeyAttributes,
        unique_label: bool,
    ) -> Outcome {
        let provenance = KeyProvenance::known_outside(KeyOrigin::PublicImported);
        let material = KeyMaterial::import_public(&public_key).map_err(crypto_err)?;
        check_new_key(material.spec(), &attributes, &provenance)?;
        self.create_key(ctx, material, attributes, provenance, unique_label)
            .await
    }

    pub(super) async fn unwrap_key(&self, ctx: &Ctx, request: UnwrapRequest) -> Outcome {
        let UnwrapRequest {
            wrapping_key,
            mechanism,
            wrapped,
            spec,
            attributes: template,
            unique_label,
        } = request;
        let unwrapping = self.usable_key(&ctx.caller, wrapping_key)?;
        allow_use(&unwrapping, KeyUse::Unwrap)?;
        let loaded = self.loaded(&unwrapping).await?;
        let (carried, material) = blocking(move || loaded.unwrap_key(mechanism, &wrapped))
            .await?
            .map_err(|e| match e {
                hsm_crypto::CryptoError::UnwrapFailed => {
                    ClientError::invalid("unwrap failed: wrong unwrapping key or damaged input")
                }
                other => crypto_err(other),
            })?;
        let public_wrap = mechanism == WrapMechanism::RsaOaepSha256;
        let spec = spec.unwrap_or(carried.spec);
        let (attributes, provenance) =
            policy::unwrapped(&carried, &unwrapping, public_wrap, spec, &template)?;
        check_new_key(material.spec(), &attributes, &provenance)?;
        self.create_key(ctx, material, attributes, provenance, unique_label)
            .await
    }

    /// A key agreed with a peer: the peer can derive it too, so it is
    /// marked as known outside the cluster.
    pub(super) async fn derive_key(&self, ctx: &Ctx, request: DeriveRequest) -> Outcome {
        let DeriveRequest {
            key,
            mechanism,
            peer_public_key,
            context,
            spec,
            attributes,
            unique_label,
        } = request;
        let provenance = KeyProvenance::known_outside(KeyOrigin::Derived);
        check_new_key(spec, &attributes, &provenance)?;
        let base = self.usable_key(&ctx.caller, key)?;
        allow_use(&base, KeyUse::Derive)?;
        let peer = PublicKey::from_der(&peer_public_key).map_err(crypto_err)?;
        let loaded = self.loaded(&base).await?;
        let material = blocking(move || loaded.derive(mechanism, &peer, &context, spec))
            .await?
            .map_err(crypto_err)?;
        self.create_key(ctx, material, attributes, provenance, unique_label)
            .await
    }

    pub(super) fn get_key(&self, ctx: &Ctx, key: KeyId) -> Outcome {
        self.visible_key(&ctx.caller, key)
            .map(|k| Reply::Key(key_info(&ctx.caller, &k)))
    }

    pub(super) fn export_public_key(&self, ctx: &Ctx, key: KeyId) -> Outcome {
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

    pub(super) async fn share_key(
        &self,
        ctx: &Ctx,
        key: KeyId,
        with: Username,
        share: bool,
    ) -> Outcome {
        self.unless_retry(ctx.request_id, self.owned_key(&ctx.caller, key))?;
        let body = if share {
            EventBody::KeyShared { key, with }
        } else {
            EventBody::KeyUnshared { key, with }
        };
        self.write(ctx, body).await?;
        Ok(Reply::Done)
    }

    pub(super) async fn set_key_attribute(
        &self,
        ctx: &Ctx,
        key: KeyId,
        attribute: KeyAttribute,
    ) -> Outcome {
        if let KeyAttribute::Certificate(certificate) = &attribute {
            if !certificate.is_empty() {
                let k = self.owned_key(&ctx.caller, key)?;
                check_certifies(certificate, &k.public_key)?;
            }
        }
        self.write(ctx, EventBody::KeyAttributeSet { key, attribute })
            .await?;
        Ok(Reply::Done)
    }

    pub(super) async fn delete_key(&self, ctx: &Ctx, key: KeyId) -> Outcome {
        self.unless_retry(ctx.request_id, self.owned_key(&ctx.caller, key))?;
        self.write(ctx, EventBody::KeyDeleted { key }).await?;
        self.cache.evict(key);
        Ok(Reply::Done)
    }

    /// Wraps new material under the domain key and records the key; answers
    /// with the key as stored (for a retried request, the first attempt's).
    async fn create_key(
        &self,
        ctx: &Ctx,
        material: KeyMaterial,
        attributes: KeyAttributes,
        provenance: KeyProvenance,
        unique_label: bool,
    ) -> Outcome {
        let id = key_id_for(ctx.request_id);
        if material.secret().len() > crate::secrets::MAX_MATERIAL_LEN {
            return Err(ClientError::invalid("key material too large"));
        }
        let public_key = material
            .public_key()
            .map(|p| p.der().to_vec())
            .unwrap_or_default();
        let origin = provenance.origin;
        let event = |domain: &DomainKey| {
            let wrapped_material = domain
                .wrap_material(id, material.secret())
                .map_err(|e| ClientError::internal(e.to_string()))?;
            Ok::<_, ClientError>(EventBody::KeyCreated {
                key: id,
                spec: material.spec(),
                attributes: attributes.clone(),
                provenance,
                domain_generation: domain.generation(),
                wrapped_material,
                public_key: public_key.clone(),
                unique_label,
            })
        };
        let mut body = event(&*self.domain_key(None)?)?;
        if origin != KeyOrigin::Generated {
            // The caller's material is part of the request: the state
            // compares a copy with the key the first attempt made, which
            // wraps alike only under the key's generation. While a rotation
            // re-wraps, that may not be the current one: find it.
            let actor = Actor::User(ctx.caller.username.clone());
            let (known, generations) = self.state(|s| {
                let generations: Vec<u32> = s
                    .cluster()
                    .map(|c| c.domain.generations.keys().copied().collect())
                    .unwrap_or_default();
                (s.same_request(ctx.request_id, &actor, &body), generations)
            });
            if known == Some(false) {
                for generation in generations {
                    let Ok(domain) = self.domain_key(Some(generation)) else {
                        continue;
                    };
                    let again = event(&domain)?;
                    if self.state(|s| s.same_request(ctx.request_id, &actor, &again)) == Some(true)
                    {
                        body = again;
                        break;
                    }
                }
            }
        }
        drop(material);
        self.write(ctx, body).await?;
        let key = self
            .state(|s| s.key(id).cloned())
            .ok_or_else(|| ClientError::not_found(format!("key {id} was deleted already")))?;
        Ok(Reply::Key(key_info(&ctx.caller, &key)))
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
    pub(super) fn owned_key(&self, caller: &Caller, id: KeyId) -> Result<Key, ClientError> {
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

    /// One page of the keys `caller` may see that match `filter`, at most
    /// `limit` ([`MAX_PAGE`]) and looking at no more than
    /// [`MAX_PAGE_SCAN`] keys under the state's lock.
    pub(super) fn list_keys(
        &self,
        caller: &Caller,
        filter: &KeyFilter,
        after: Option<KeyId>,
        limit: u32,
    ) -> Reply {
        let all = caller.role == hsm_proto::Role::Co;
        let limit = limit.min(MAX_PAGE) as usize;
        let page = self.state(|s| {
            s.key_page(after, limit, MAX_PAGE_SCAN as usize, |k| {
                (all || authz::can_use_key(&caller.username, k))
                    .then(|| key_info(caller, k))
                    .filter(|k| filter.matches(k))
            })
        });
        Reply::Keys {
            keys: page.items,
            next: page.next,
        }
    }

    pub(super) async fn wrap_key(
        &self,
        ctx: &Ctx,
        wrapping_key: KeyId,
        key: KeyId,
        mechanism: WrapMechanism,
    ) -> Outcome {
        let wrapping = self.usable_key(&ctx.caller, wrapping_key)?;
        let mut target = self.owned_key(&ctx.caller, key)?;
        policy::check_wrap(&wrapping, &target)?;
        if policy::exposes(&wrapping, &target) {
            // Recorded before the material leaves, so it is never out
            // while the key still counts as never known outside.
            self.write(ctx, EventBody::KeyWrappedOut { key }).await?;
            target = self.owned_key(&ctx.caller, key)?;
        }
        let carried = policy::carried(&target);
        let wrapper = self.loaded(&wrapping).await?;
        let target = self.loaded(&target).await?;
        let wrapped = blocking(move || wrapper.wrap_key(mechanism, &carried, target.material()))
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
        let loaded = self.opened(key).await?;
        self.cache.put(key, loaded.clone());
        Ok(loaded)
    }

    /// The key unwrapped from the domain key and parsed, not cached: for
    /// a key's older versions (`hsm_state::versions`), which would
    /// otherwise push its latest version out of the cache.
    pub(crate) async fn opened(&self, key: &Key) -> Result<Arc<LoadedKey>, ClientError> {
        if key.provenance.public_only() {
            // No private half: the record's public key is the whole key.
            let loaded = LoadedKey::parse_public(&key.public_key)
                .ok()
                .filter(|l| l.spec() == key.spec)
                .ok_or_else(|| ClientError::internal(format!("key {} is damaged", key.id)))?;
            return Ok(Arc::new(loaded));
        }
        let domain: Arc<DomainKey> = self.domain_key(Some(key.domain_generation))?;
        let (id, spec, wrapped) = (key.id, key.spec, key.wrapped_material.clone());
        let loaded = blocking(move || {
            let plain = domain.unwrap_material(id, &wrapped).map_err(|e| {
                ClientError::internal(format!("key {id} cannot be opened on this node: {e}"))
            })?;
            LoadedKey::parse(spec, &plain)
                .map_err(|e| ClientError::internal(format!("key {id} is damaged: {e}")))
        })
        .await??;
        Ok(Arc::new(loaded))
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

/// Refuses a certificate that is not an X.509 certificate (DER) of
/// `public_key` (SubjectPublicKeyInfo DER).
fn check_certifies(certificate: &[u8], public_key: &[u8]) -> Result<(), ClientError> {
    use x509_parser::prelude::FromDer;
    let (rest, cert) = x509_parser::certificate::X509Certificate::from_der(certificate)
        .map_err(|_| ClientError::invalid("the certificate is not an X.509 certificate in DER"))?;
    if !rest.is_empty() {
        return Err(ClientError::invalid(
            "the certificate has bytes after its end",
        ));
    }
    if cert.public_key().raw != public_key {
        return Err(ClientError::invalid(
            "the certificate is for another public key than this key's",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_proto::{KeyAttributes, KeyProvenance, KeySpec, Username};

    fn public_only(id: u64, der: &[u8]) -> Key {
        Key {
            id: KeyId(id),
            spec: KeySpec::EcP256,
            owner: Username::new("mallory").expect("name"),
            shared_with: std::collections::BTreeSet::new(),
            attributes: KeyAttributes::default(),
            provenance: KeyProvenance::known_outside(KeyOrigin::PublicImported),
            domain_generation: 0,
            // What sealing the empty material under (id, generation) gives:
            // the same bytes for every public key alone with that id.
            wrapped_material: vec![1; 29],
            public_key: der.to_vec(),
            created_ms: 0,
            certificate: Vec::new(),
        }
    }

    /// A key id comes back when its request id is used again once the
    /// request record is forgotten: a public key alone re-imported under
    /// it must not be served from the cached copy of the one before.
    #[test]
    fn the_cache_never_serves_another_public_key_under_the_same_id() {
        let a = KeyMaterial::generate(KeySpec::EcP256).expect("a");
        let b = KeyMaterial::generate(KeySpec::EcP256).expect("b");
        let der_a = a.public_key().expect("public").der().to_vec();
        let der_b = b.public_key().expect("public").der().to_vec();
        let cache = KeyCache::new(8);
        let first = public_only(7, &der_a);
        cache.put(
            &first,
            Arc::new(LoadedKey::parse_public(&der_a).expect("load")),
        );
        assert!(cache.get(&first).is_some());
        let second = public_only(7, &der_b);
        assert!(
            cache.get(&second).is_none(),
            "the cache served the previous public key for a new one"
        );
    }
}
