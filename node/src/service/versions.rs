//! Key versions (rotate, minimum decryption version, trim) and the
//! versioned batch operations: encrypt, decrypt, sign and verify many
//! items in one request, and data keys. Which version may do what is
//! decided in `hsm_state::versions`; this shell loads the material and
//! runs the algorithms.

use std::collections::BTreeMap;
use std::sync::Arc;

use hsm_crypto::{EncryptMechanism, LoadedKey, SignMechanism};
use hsm_proto::client::{
    ByteBuf, ClientError, DecryptItem, EncryptItem, Reply, Secret, VerifyItem, MAX_BATCH,
    MAX_SIGN_MANY_RSA,
};
use hsm_proto::{Actor, EventBody, KeyId, KeySpec};
use hsm_state::authz;
use hsm_state::policy::KeyUse;
use hsm_state::versions::VersionUse;
use hsm_state::Key;

use super::crypto_ops::{each, quick, INLINE_MAX_MESSAGES};
use super::keys::{allow_use, crypto_err, crypto_error};
use super::{Caller, Ctx, Outcome, Service};

/// The event that rotates `key` (also, with zeroes, what a retry of one
/// is recognised by: the state's fingerprint leaves the rest out).
fn rotation(
    key: KeyId,
    version: u32,
    domain_generation: u32,
    wrapped_material: Vec<u8>,
    public_key: Vec<u8>,
) -> EventBody {
    EventBody::KeyRotated {
        key,
        version,
        domain_generation,
        wrapped_material,
        public_key,
    }
}

/// Refuses a batch larger than a request may carry: [`MAX_BATCH`] items,
/// [`MAX_SIGN_MANY_RSA`] for RSA private-key work.
fn check_batch(len: usize, spec: KeySpec, private: bool) -> Result<(), ClientError> {
    let most = if private && matches!(spec, KeySpec::Rsa { .. }) {
        MAX_SIGN_MANY_RSA
    } else {
        MAX_BATCH
    };
    if len > most {
        return Err(ClientError::invalid(format!(
            "{len} items in one request; at most {most} with this key"
        )));
    }
    Ok(())
}

impl Service {
    /// The key `caller` may use, as the version `use_` reaches (the state
    /// decides which versions may be used for what).
    fn key_version(
        &self,
        caller: &Caller,
        id: KeyId,
        use_: VersionUse,
    ) -> Result<(u32, Key), ClientError> {
        self.state(|s| {
            let key = s
                .key(id)
                .filter(|k| authz::can_use_key(&caller.username, k))
                .ok_or_else(|| ClientError::not_found(format!("no key {id}")))?;
            let (version, key) = s.key_at_version(key, use_)?;
            Ok((version, key.into_owned()))
        })
    }

    /// Loads a version: the latest through the cache, older ones not.
    async fn load_version(&self, key: &Key, latest: bool) -> Result<Arc<LoadedKey>, ClientError> {
        if latest {
            self.loaded(key).await
        } else {
            self.opened(key).await
        }
    }

    /// For each item's version, the loaded key or why it may not be used;
    /// each distinct version is looked up and loaded once, after the
    /// batch's size is checked.
    async fn versions_for(
        &self,
        caller: &Caller,
        id: KeyId,
        use_: KeyUse,
        asked: &[Option<u32>],
    ) -> Result<(KeySpec, Vec<Result<Arc<LoadedKey>, ClientError>>), ClientError> {
        let (latest, key) = self.key_version(caller, id, VersionUse::Make)?;
        allow_use(&key, use_)?;
        check_batch(asked.len(), key.spec, use_ == KeyUse::Decrypt)?;
        let mut loaded: BTreeMap<Option<u32>, Result<Arc<LoadedKey>, ClientError>> =
            BTreeMap::new();
        let mut out = Vec::new();
        for &version in asked {
            if let std::collections::btree_map::Entry::Vacant(slot) = loaded.entry(version) {
                let found = match self.key_version(caller, id, VersionUse::Check(version)) {
                    Ok((v, k)) => self.load_version(&k, v == latest).await,
                    Err(e) => Err(e),
                };
                slot.insert(found);
            }
            if let Some(found) = loaded.get(&version) {
                out.push(found.clone());
            }
        }
        Ok((key.spec, out))
    }

    pub(super) fn key_versions(&self, ctx: &Ctx, key: KeyId) -> Outcome {
        let k = self.usable_key(&ctx.caller, key)?;
        Ok(Reply::KeyVersions(self.state(|s| s.key_versions_info(&k))))
    }

    /// The key's versions after a change to them.
    fn versions_reply(&self, key: KeyId) -> Outcome {
        self.state(|s| s.key(key).map(|k| s.key_versions_info(k)))
            .map(Reply::KeyVersions)
            .ok_or_else(|| ClientError::not_found(format!("key {key} was deleted already")))
    }

    /// New material of the key's type, generated here, as its next version.
    pub(super) async fn rotate_key(&self, ctx: &Ctx, key: KeyId) -> Outcome {
        let spec = match self.owned_key(&ctx.caller, key) {
            Ok(k) => k.spec,
            Err(e) => {
                // A copy of this very rotation that applied meanwhile (and
                // only that: the request id alone proves nothing) is
                // answered as it was, to a caller that may still see it.
                let actor = Actor::User(ctx.caller.username.clone());
                let this = rotation(key, 0, 0, Vec::new(), Vec::new());
                if self.state(|s| s.outcome_of(ctx.request_id, &actor, &this)) == Some(Ok(())) {
                    self.usable_key(&ctx.caller, key)?;
                    return self.versions_reply(key);
                }
                return Err(e);
            }
        };
        // What the state would refuse anyway, before a key is generated.
        let version = self.state(|s| {
            let k = s
                .key(key)
                .ok_or_else(|| ClientError::not_found(format!("no key {key}")))?;
            s.next_version(k).map_err(ClientError::from)
        });
        let version = match version {
            Ok(v) => v,
            Err(e) if !self.remembered(ctx.request_id) => return Err(e),
            // A retry: the write answers with the first outcome.
            Err(_) => 0,
        };
        let material = self.generate_material(spec).await?;
        let public_key = material
            .public_key()
            .map(|p| p.der().to_vec())
            .unwrap_or_default();
        let domain = self.domain_key(None)?;
        let wrapped_material = domain
            .wrap_material(key, material.secret())
            .map_err(|e| ClientError::internal(e.to_string()))?;
        drop(material);
        let body = rotation(
            key,
            version,
            domain.generation(),
            wrapped_material,
            public_key,
        );
        self.write(ctx, body).await?;
        self.cache.evict(key);
        self.versions_reply(key)
    }

    pub(super) async fn set_min_decryption_version(
        &self,
        ctx: &Ctx,
        key: KeyId,
        version: u32,
    ) -> Outcome {
        self.unless_retry(ctx.request_id, self.owned_key(&ctx.caller, key))?;
        self.write(ctx, EventBody::KeyMinDecryptionSet { key, version })
            .await?;
        self.versions_reply(key)
    }

    pub(super) async fn trim_key_versions(&self, ctx: &Ctx, key: KeyId, below: u32) -> Outcome {
        self.unless_retry(ctx.request_id, self.owned_key(&ctx.caller, key))?;
        self.write(ctx, EventBody::KeyVersionsTrimmed { key, below })
            .await?;
        self.versions_reply(key)
    }

    pub(super) async fn encrypt_batch(
        &self,
        ctx: &Ctx,
        key: KeyId,
        mechanism: EncryptMechanism,
        items: Vec<EncryptItem>,
    ) -> Outcome {
        let (version, k) = self.key_version(&ctx.caller, key, VersionUse::Make)?;
        allow_use(&k, KeyUse::Encrypt)?;
        check_batch(items.len(), k.spec, false)?;
        let loaded = self.loaded(&k).await?;
        let total: usize = items
            .iter()
            .map(|i| i.plaintext.expose().len() + i.aad.len())
            .sum();
        let inline = quick(k.spec, false, total) && items.len() <= INLINE_MAX_MESSAGES;
        let results = each(inline, items, move |item| {
            loaded
                .encrypt(mechanism, item.plaintext.expose(), &item.aad)
                .map(ByteBuf::from)
                .map_err(crypto_error)
        })
        .await?;
        Ok(Reply::Encrypted { version, results })
    }

    pub(super) async fn decrypt_batch(
        &self,
        ctx: &Ctx,
        key: KeyId,
        mechanism: EncryptMechanism,
        items: Vec<DecryptItem>,
    ) -> Outcome {
        let versions: Vec<Option<u32>> = items.iter().map(|i| i.version).collect();
        let (spec, keys) = self
            .versions_for(&ctx.caller, key, KeyUse::Decrypt, &versions)
            .await?;
        let total: usize = items.iter().map(|i| i.ciphertext.len() + i.aad.len()).sum();
        let inline = quick(spec, true, total) && items.len() <= INLINE_MAX_MESSAGES;
        let results = each(
            inline,
            items.into_iter().zip(keys).collect(),
            move |(item, key)| {
                key?.decrypt(mechanism, &item.ciphertext, &item.aad)
                    .map(|plain| Secret::new(plain.to_vec()))
                    .map_err(crypto_error)
            },
        )
        .await?;
        Ok(Reply::Decrypted(results))
    }

    pub(super) async fn sign_batch(
        &self,
        ctx: &Ctx,
        key: KeyId,
        mechanism: SignMechanism,
        messages: Vec<ByteBuf>,
    ) -> Outcome {
        let (version, k) = self.key_version(&ctx.caller, key, VersionUse::Make)?;
        allow_use(&k, KeyUse::Sign)?;
        check_batch(messages.len(), k.spec, true)?;
        let loaded = self.loaded(&k).await?;
        let total: usize = messages.iter().map(|m| m.len()).sum();
        let inline = quick(k.spec, true, total) && messages.len() <= INLINE_MAX_MESSAGES;
        let results = each(inline, messages, move |m| {
            loaded
                .sign(mechanism, &m)
                .map(ByteBuf::from)
                .map_err(crypto_error)
        })
        .await?;
        Ok(Reply::Signed { version, results })
    }

    pub(super) async fn verify_batch(
        &self,
        ctx: &Ctx,
        key: KeyId,
        mechanism: SignMechanism,
        items: Vec<VerifyItem>,
    ) -> Outcome {
        let versions: Vec<Option<u32>> = items.iter().map(|i| i.version).collect();
        let (spec, keys) = self
            .versions_for(&ctx.caller, key, KeyUse::Verify, &versions)
            .await?;
        let total: usize = items.iter().map(|i| i.message.len()).sum();
        let inline = quick(spec, false, total) && items.len() <= INLINE_MAX_MESSAGES;
        let results = each(
            inline,
            items.into_iter().zip(keys).collect(),
            move |(item, key)| {
                key?.verify(mechanism, &item.message, &item.signature)
                    .map_err(crypto_error)
            },
        )
        .await?;
        Ok(Reply::Verifications(results))
    }

    /// A fresh AES key from the node's generator, encrypted with AES-GCM
    /// under the key's latest version.
    pub(super) async fn generate_data_key(
        &self,
        ctx: &Ctx,
        key: KeyId,
        bits: u16,
        aad: ByteBuf,
        plaintext: bool,
    ) -> Outcome {
        if !(KeySpec::Aes { bits }).is_valid() {
            return Err(ClientError::invalid(format!(
                "a data key is 128, 192 or 256 bits, not {bits}"
            )));
        }
        let (version, k) = self.key_version(&ctx.caller, key, VersionUse::Make)?;
        allow_use(&k, KeyUse::Encrypt)?;
        if !matches!(k.spec, KeySpec::Aes { .. }) {
            return Err(ClientError::invalid(format!(
                "key {key} is {}: data keys are encrypted under AES keys",
                k.spec
            )));
        }
        let loaded = self.loaded(&k).await?;
        let data_key = zeroize::Zeroizing::new(
            hsm_crypto::random_bytes(usize::from(bits / 8)).map_err(crypto_err)?,
        );
        let wrapped = loaded
            .encrypt(EncryptMechanism::AesGcm, &data_key, &aad)
            .map_err(crypto_error)?;
        Ok(Reply::DataKey {
            version,
            wrapped: ByteBuf::from(wrapped),
            plaintext: plaintext.then(|| Secret::new(data_key.to_vec())),
        })
    }
}
