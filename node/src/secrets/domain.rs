//! The cluster domain key: wraps key material, travels sealed to joining
//! nodes (and, at rotation, to every member through the log), and keys
//! session-token MACs.
//!
//! A domain key has a generation (0 at cluster init, one more at each
//! rotation, see `hsm_state::domain`); the generation is bound into what it
//! wraps and seals, so material or a sealed key is never taken for another
//! generation's.

use std::fmt;
use std::path::Path;

use hsm_proto::{ClusterId, KeyId, NodeId, SealedDomainKey, MAX_KEY_BLOB_LEN};
use rand::RngCore;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::keyfile::{self, KeyFileKind};
use super::SecretsError;
use hsm_seal::recipient::{self, RecipientError};
use hsm_seal::{OVERHEAD, TAG_LEN};

/// Context of the subkey that wraps key material.
const WRAP_CONTEXT: &str = "hsm-cluster key material wrap v1";
/// Associated-data prefix of wrapped material (followed by the key id and
/// the generation).
const WRAP_AAD: &[u8] = b"hsm-cluster key material v2\0";
/// Context of the subkey the backup key of each backup is wrapped under.
const BACKUP_WRAP_CONTEXT: &str = "hsm-cluster backup key wrap v1";
/// Context of the subkey that MACs session tokens.
const SESSION_CONTEXT: &str = "hsm-cluster session tokens v1";
/// Context of the check value the replicated state records for each
/// generation.
const CHECK_CONTEXT: &str = "hsm-cluster domain key check v1";
/// Context of the key a sealed domain key is sealed under (see
/// `hsm_seal::recipient`), and the associated-data prefix of a sealed domain
/// key (followed by the cluster id, node id and generation).
const TRANSFER_CONTEXT: &str = "hsm-cluster domain key transfer v1";
const TRANSFER_AAD: &[u8] = b"hsm-cluster domain key transfer v2\0";
/// Format version of [`SealedDomainKey`].
const TRANSFER_VERSION: u8 = 1;

/// The domain key file, sealed under the node storage key.
const FILE: KeyFileKind = KeyFileKind {
    name: "domain key",
    magic: *b"HSMDOMK2",
    seal_context: "hsm-node domain key file v2",
    check_context: "hsm-node domain key file key check v2",
    // The generation (u32, big-endian), then the key.
    payload_len: 36,
};

/// Longest key material [`DomainKey::wrap_material`] takes: wrapped, it must
/// fit [`MAX_KEY_BLOB_LEN`], the most an event or key record carries.
pub const MAX_MATERIAL_LEN: usize = MAX_KEY_BLOB_LEN - OVERHEAD;

/// One generation of the cluster domain key: 32 random bytes, created at
/// cluster init (generation 0) and at each rotation. Zeroized on drop;
/// `Debug` shows only the generation; not `Clone` (share it behind an
/// `Arc`).
pub struct DomainKey {
    generation: u32,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for DomainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DomainKey(generation {}, <redacted>)", self.generation)
    }
}

/// The subkey of one domain key generation that wraps key material
/// ([`DomainKey::material_key`]). Zeroized on drop; `Debug` is redacted.
pub struct MaterialKey {
    generation: u32,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for MaterialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MaterialKey(generation {}, <redacted>)", self.generation)
    }
}

impl MaterialKey {
    /// The key of `generation` from its 32 bytes (as a backup carries it).
    pub fn from_bytes(generation: u32, bytes: Zeroizing<[u8; 32]>) -> MaterialKey {
        MaterialKey {
            generation,
            key: bytes,
        }
    }

    /// Its generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Its 32 bytes, to seal into a backup.
    pub fn expose(&self) -> &[u8; 32] {
        &self.key
    }

    /// Unwraps material wrapped for key `key` under the domain key this
    /// subkey came from.
    ///
    /// # Errors
    /// [`SecretsError::Unwrap`] if `wrapped` is truncated, of an unknown
    /// version, changed, wrapped for another key id, or under another domain
    /// key.
    pub fn unwrap_material(
        &self,
        key: KeyId,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        hsm_seal::open(
            &self.key,
            &DomainKey::wrap_aad(key, self.generation),
            wrapped,
        )
        .map_err(|e| SecretsError::Unwrap {
            key,
            reason: e.reason(),
        })
    }
}

impl DomainKey {
    /// A fresh random key of `generation`, from the operating system's
    /// generator.
    pub fn generate(generation: u32) -> DomainKey {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        DomainKey { generation, key }
    }

    /// Its generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    fn derive(&self, context: &'static str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(blake3::derive_key(context, self.key.as_ref()))
    }

    /// Its check value, as the replicated state records it for its
    /// generation: a subkey used for nothing else, so it tells which key a
    /// member holds without revealing it.
    pub fn check(&self) -> [u8; 32] {
        blake3::derive_key(CHECK_CONTEXT, self.key.as_ref())
    }

    /// The subkey that wraps key material: all a backup needs to carry for
    /// its keys to be restored, and nothing more (it neither signs sessions
    /// nor opens domain key transfers).
    pub fn material_key(&self) -> MaterialKey {
        MaterialKey {
            generation: self.generation,
            key: self.derive(WRAP_CONTEXT),
        }
    }

    /// The subkey each backup's key is wrapped under, so any member can
    /// open the cluster's backups.
    pub fn backup_wrap_key(&self) -> Zeroizing<[u8; 32]> {
        self.derive(BACKUP_WRAP_CONTEXT)
    }

    /// The key that MACs session tokens.
    pub(super) fn session_mac_key(&self) -> Zeroizing<[u8; 32]> {
        self.derive(SESSION_CONTEXT)
    }

    fn wrap_aad(key: KeyId, generation: u32) -> [u8; WRAP_AAD.len() + 12] {
        let mut aad = [0u8; WRAP_AAD.len() + 12];
        let (prefix, rest) = aad.split_at_mut(WRAP_AAD.len());
        prefix.copy_from_slice(WRAP_AAD);
        rest[..8].copy_from_slice(&key.0.to_be_bytes());
        rest[8..].copy_from_slice(&generation.to_be_bytes());
        aad
    }

    /// Wraps key material for key `key`, as `EventBody::KeyCreated` carries
    /// it: `version(1) || nonce(12) || AES-256-GCM-SIV ciphertext || tag`,
    /// with the key id and this key's generation as associated data. The
    /// nonce is the key id and the generation too, so the same material
    /// wraps to the same bytes for a key id under a generation: a request
    /// sent again under its id (whose key id it is) is recognised as the
    /// same by what it carries, and other material under a used id as
    /// another request (`hsm_state` fingerprints). A nonce does wrap other
    /// material at times: each attempt of a generated key draws its own,
    /// other material sent under a used id is refused but stays in the
    /// log, and an id may come back once its request is forgotten.
    /// GCM-SIV shows of two wraps under one nonce only whether their
    /// plaintexts are equal, to whoever reads the log (sealed under the
    /// storage key).
    ///
    /// # Errors
    /// [`SecretsError::MaterialTooLong`] if `plaintext` is longer than
    /// [`MAX_MATERIAL_LEN`].
    pub fn wrap_material(&self, key: KeyId, plaintext: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let too_long = || SecretsError::MaterialTooLong {
            key,
            len: plaintext.len(),
            max: MAX_MATERIAL_LEN,
        };
        if plaintext.len() > MAX_MATERIAL_LEN {
            return Err(too_long());
        }
        let mut nonce = [0u8; hsm_seal::NONCE_LEN];
        nonce[..8].copy_from_slice(&key.0.to_be_bytes());
        nonce[8..].copy_from_slice(&self.generation.to_be_bytes());
        hsm_seal::SealKey::new(&self.derive(WRAP_CONTEXT))
            .seal_with_nonce(&nonce, &Self::wrap_aad(key, self.generation), plaintext)
            .map_err(|_| too_long())
    }

    /// Unwraps material that [`wrap_material`](Self::wrap_material) made for
    /// the same key id under the same domain key.
    ///
    /// # Errors
    /// [`SecretsError::Unwrap`] if `wrapped` is truncated, of an unknown
    /// version, changed, wrapped for another key id, or under another domain
    /// key.
    pub fn unwrap_material(
        &self,
        key: KeyId,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        self.material_key().unwrap_material(key, wrapped)
    }

    fn transfer_aad(
        cluster: ClusterId,
        node: NodeId,
        generation: u32,
    ) -> [u8; TRANSFER_AAD.len() + 16 + 8 + 4] {
        let mut aad = [0u8; TRANSFER_AAD.len() + 16 + 8 + 4];
        let (prefix, rest) = aad.split_at_mut(TRANSFER_AAD.len());
        prefix.copy_from_slice(TRANSFER_AAD);
        rest[..16].copy_from_slice(&cluster.0);
        rest[16..24].copy_from_slice(&node.0.to_be_bytes());
        rest[24..].copy_from_slice(&generation.to_be_bytes());
        aad
    }

    /// Seals the domain key to a member's X25519 public key: an ephemeral
    /// X25519 exchange, a blake3-derived transfer key (over the shared
    /// secret and both public keys), and AES-256-GCM-SIV with the cluster
    /// id, node id and generation as associated data.
    ///
    /// # Errors
    /// [`SecretsError::WeakPublicKey`] if `recipient` is a low-order point
    /// (the shared secret would be known to anyone).
    pub fn seal_for_node(
        &self,
        recipient: &PublicKey,
        cluster: ClusterId,
        node: NodeId,
    ) -> Result<SealedDomainKey, SecretsError> {
        let sealed = recipient::seal_to(
            recipient,
            TRANSFER_CONTEXT,
            &Self::transfer_aad(cluster, node, self.generation),
            self.key.as_ref(),
        )
        .map_err(|e| match e {
            RecipientError::WeakRecipient => SecretsError::WeakPublicKey {
                node,
                which: "recipient",
            },
            other => SecretsError::Transfer {
                node,
                reason: other.reason(),
            },
        })?;
        Ok(SealedDomainKey {
            version: TRANSFER_VERSION,
            ephemeral_public: sealed.ephemeral_public,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
        })
    }

    /// Opens generation `generation` of the domain key, sealed with
    /// [`seal_for_node`](Self::seal_for_node) to this node's agreement key,
    /// for this cluster and node id.
    ///
    /// # Errors
    /// [`SecretsError::Transfer`] if the sealed key is of an unknown
    /// version or length, changed, sealed to another key, or bound to another
    /// cluster, node id or generation; [`SecretsError::WeakPublicKey`] if its
    /// ephemeral key is of low order.
    pub fn open_sealed(
        sealed: &SealedDomainKey,
        my_secret: &StaticSecret,
        cluster: ClusterId,
        node: NodeId,
        generation: u32,
    ) -> Result<DomainKey, SecretsError> {
        let fail = |reason| SecretsError::Transfer { node, reason };
        if sealed.version != TRANSFER_VERSION {
            return Err(fail("unknown format version"));
        }
        if sealed.ciphertext.len() != 32 + TAG_LEN {
            return Err(fail("wrong ciphertext length"));
        }
        let plain = recipient::open_from(
            my_secret,
            TRANSFER_CONTEXT,
            &Self::transfer_aad(cluster, node, generation),
            &recipient::Sealed {
                ephemeral_public: sealed.ephemeral_public,
                nonce: sealed.nonce,
                ciphertext: sealed.ciphertext.clone(),
            },
        )
        .map_err(|e| match e {
            RecipientError::WeakEphemeral => SecretsError::WeakPublicKey {
                node,
                which: "ephemeral",
            },
            other => fail(other.reason()),
        })?;
        Self::from_slice(generation, &plain).ok_or_else(|| fail("wrong key length"))
    }

    /// The raw key, for tests that check it is not shown or stored.
    #[cfg(test)]
    pub(super) fn expose(&self) -> &[u8; 32] {
        &self.key
    }

    fn from_slice(generation: u32, bytes: &[u8]) -> Option<DomainKey> {
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != key.len() {
            return None;
        }
        key.copy_from_slice(bytes);
        Some(DomainKey { generation, key })
    }

    /// Saves the domain key and its generation in a new file sealed under
    /// the node storage key (mode 0600; file and directory synced).
    ///
    /// # Errors
    /// [`SecretsError::KeyFile`] if the file exists or cannot be written and
    /// synced; nothing is left behind on failure.
    pub fn save(&self, path: &Path, storage_key: &[u8; 32]) -> Result<(), SecretsError> {
        let mut payload = Zeroizing::new([0u8; 36]);
        payload[..4].copy_from_slice(&self.generation.to_be_bytes());
        payload[4..].copy_from_slice(self.key.as_ref());
        keyfile::save(&FILE, path, storage_key, payload.as_ref())
    }

    /// Loads a domain key file written by [`save`](Self::save).
    ///
    /// # Errors
    /// [`SecretsError::KeyFile`] if the file is missing, readable by group or
    /// others, of the wrong size or kind, sealed under another storage key,
    /// or damaged.
    pub fn load(path: &Path, storage_key: &[u8; 32]) -> Result<DomainKey, SecretsError> {
        let payload = keyfile::load(&FILE, path, storage_key)?;
        if payload.len() != FILE.payload_len {
            return Err(keyfile::damaged(&FILE, path));
        }
        let (generation, key) = payload.split_at(4);
        let generation = u32::from_be_bytes(
            generation
                .try_into()
                .map_err(|_| keyfile::damaged(&FILE, path))?,
        );
        Self::from_slice(generation, key).ok_or_else(|| keyfile::damaged(&FILE, path))
    }
}

#[cfg(test)]
mod tests;
