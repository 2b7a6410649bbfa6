//! The cluster domain key: wraps key material, travels sealed to joining
//! nodes, and keys session-token MACs.

use std::fmt;
use std::path::Path;

use hsm_proto::{ClusterId, KeyId, NodeId, MAX_KEY_BLOB_LEN};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::keyfile::{self, KeyFileKind};
use super::seal::{self, NONCE_LEN, OVERHEAD, TAG_LEN};
use super::SecretsError;

/// Context of the subkey that wraps key material.
const WRAP_CONTEXT: &str = "hsm-cluster key material wrap v1";
/// Associated-data prefix of wrapped material (followed by the key id).
const WRAP_AAD: &[u8] = b"hsm-cluster key material v1\0";
/// Context of the subkey the backup key of each backup is wrapped under.
const BACKUP_WRAP_CONTEXT: &str = "hsm-cluster backup key wrap v1";
/// Context of the subkey that MACs session tokens.
const SESSION_CONTEXT: &str = "hsm-cluster session tokens v1";
/// Context of the transfer key derived from an X25519 exchange, and the
/// associated-data prefix of a sealed domain key.
const TRANSFER_CONTEXT: &str = "hsm-cluster domain key transfer v1";
const TRANSFER_AAD: &[u8] = b"hsm-cluster domain key transfer v1\0";
/// Format version of [`SealedDomainKey`].
const TRANSFER_VERSION: u8 = 1;

/// The domain key file, sealed under the node storage key.
const FILE: KeyFileKind = KeyFileKind {
    name: "domain key",
    magic: *b"HSMDOMK\0",
    seal_context: "hsm-node domain key file v1",
    check_context: "hsm-node domain key file key check v1",
    payload_len: 32,
};

/// Longest key material [`DomainKey::wrap_material`] takes: wrapped, it must
/// fit [`MAX_KEY_BLOB_LEN`], the most an event or key record carries.
pub const MAX_MATERIAL_LEN: usize = MAX_KEY_BLOB_LEN - OVERHEAD;

/// The cluster domain key: 32 random bytes created at cluster init.
/// Zeroized on drop; `Debug` is redacted; not `Clone` (share it behind an
/// `Arc`).
pub struct DomainKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for DomainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DomainKey(<redacted>)")
    }
}

/// The subkey of a domain key that wraps key material
/// ([`DomainKey::material_key`]). Zeroized on drop; `Debug` is redacted.
pub struct MaterialKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for MaterialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MaterialKey(<redacted>)")
    }
}

impl MaterialKey {
    /// The key from its 32 bytes (as a backup carries it).
    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> MaterialKey {
        MaterialKey(bytes)
    }

    /// Its 32 bytes, to seal into a backup.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
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
        seal::open(&self.0, &DomainKey::wrap_aad(key), wrapped).map_err(|e| SecretsError::Unwrap {
            key,
            reason: e.reason(),
        })
    }
}

/// The domain key sealed to one joining node's X25519 public key, for one
/// cluster and node id. Holds no secret in the clear.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedDomainKey {
    /// Format version, 1.
    pub version: u8,
    /// The sender's ephemeral X25519 public key.
    pub ephemeral_public: [u8; 32],
    /// AES-256-GCM-SIV nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The domain key encrypted, with its tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for SealedDomainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedDomainKey")
            .field("version", &self.version)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

impl DomainKey {
    /// A fresh random domain key, from the operating system's generator.
    pub fn generate() -> DomainKey {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        DomainKey(k)
    }

    fn derive(&self, context: &'static str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(blake3::derive_key(context, self.0.as_ref()))
    }

    /// The subkey that wraps key material: all a backup needs to carry for
    /// its keys to be restored, and nothing more (it neither signs sessions
    /// nor opens domain key transfers).
    pub fn material_key(&self) -> MaterialKey {
        MaterialKey(self.derive(WRAP_CONTEXT))
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

    fn wrap_aad(key: KeyId) -> [u8; WRAP_AAD.len() + 8] {
        let mut aad = [0u8; WRAP_AAD.len() + 8];
        aad[..WRAP_AAD.len()].copy_from_slice(WRAP_AAD);
        aad[WRAP_AAD.len()..].copy_from_slice(&key.0.to_be_bytes());
        aad
    }

    /// Wraps key material for key `key`, as `EventBody::KeyCreated` carries
    /// it: `version(1) || nonce(12) || AES-256-GCM-SIV ciphertext || tag`,
    /// with the key id as associated data. Each call uses a fresh nonce.
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
        seal::seal(&self.derive(WRAP_CONTEXT), &Self::wrap_aad(key), plaintext)
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

    fn transfer_key(
        shared: &[u8; 32],
        ephemeral: &PublicKey,
        recipient: &PublicKey,
    ) -> Zeroizing<[u8; 32]> {
        let mut ikm = Zeroizing::new([0u8; 96]);
        ikm[..32].copy_from_slice(shared);
        ikm[32..64].copy_from_slice(ephemeral.as_bytes());
        ikm[64..].copy_from_slice(recipient.as_bytes());
        Zeroizing::new(blake3::derive_key(TRANSFER_CONTEXT, ikm.as_ref()))
    }

    fn transfer_aad(cluster: ClusterId, node: NodeId) -> [u8; TRANSFER_AAD.len() + 16 + 8] {
        let mut aad = [0u8; TRANSFER_AAD.len() + 16 + 8];
        let (prefix, rest) = aad.split_at_mut(TRANSFER_AAD.len());
        prefix.copy_from_slice(TRANSFER_AAD);
        rest[..16].copy_from_slice(&cluster.0);
        rest[16..].copy_from_slice(&node.0.to_be_bytes());
        aad
    }

    /// Seals the domain key to a joining node's X25519 public key: an
    /// ephemeral X25519 exchange, a blake3-derived transfer key (over the
    /// shared secret and both public keys), and AES-256-GCM-SIV with the
    /// cluster id and node id as associated data.
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
        let ephemeral = EphemeralSecret::random_from_rng(rand::rngs::OsRng);
        let ephemeral_public = PublicKey::from(&ephemeral);
        let shared = ephemeral.diffie_hellman(recipient);
        if !shared.was_contributory() {
            return Err(SecretsError::WeakPublicKey {
                node,
                which: "recipient",
            });
        }
        let key = Self::transfer_key(shared.as_bytes(), &ephemeral_public, recipient);
        let nonce = seal::random_nonce();
        let ciphertext = seal::encrypt(
            &key,
            &nonce,
            &Self::transfer_aad(cluster, node),
            self.0.as_ref(),
        )
        // 32 bytes are far below the cipher's limit.
        .map_err(|_| SecretsError::Transfer {
            node,
            reason: "encryption failed",
        })?;
        Ok(SealedDomainKey {
            version: TRANSFER_VERSION,
            ephemeral_public: ephemeral_public.to_bytes(),
            nonce,
            ciphertext,
        })
    }

    /// Opens a domain key sealed with [`seal_for_node`](Self::seal_for_node)
    /// to this node's agreement key, for this cluster and node id.
    ///
    /// # Errors
    /// [`SecretsError::Transfer`] if the sealed key is of an unknown
    /// version or length, changed, sealed to another key, or bound to another
    /// cluster or node id; [`SecretsError::WeakPublicKey`] if its ephemeral
    /// key is of low order.
    pub fn open_sealed(
        sealed: &SealedDomainKey,
        my_secret: &StaticSecret,
        cluster: ClusterId,
        node: NodeId,
    ) -> Result<DomainKey, SecretsError> {
        let fail = |reason| SecretsError::Transfer { node, reason };
        if sealed.version != TRANSFER_VERSION {
            return Err(fail("unknown format version"));
        }
        if sealed.ciphertext.len() != 32 + TAG_LEN {
            return Err(fail("wrong ciphertext length"));
        }
        let ephemeral = PublicKey::from(sealed.ephemeral_public);
        let shared = my_secret.diffie_hellman(&ephemeral);
        if !shared.was_contributory() {
            return Err(SecretsError::WeakPublicKey {
                node,
                which: "ephemeral",
            });
        }
        let key = Self::transfer_key(shared.as_bytes(), &ephemeral, &PublicKey::from(my_secret));
        let plain = seal::decrypt(
            &key,
            &sealed.nonce,
            &Self::transfer_aad(cluster, node),
            &sealed.ciphertext,
        )
        .map_err(|e| fail(e.reason()))?;
        Self::from_slice(&plain).ok_or_else(|| fail("wrong key length"))
    }

    /// The raw key, for tests that check it is not shown or stored.
    #[cfg(test)]
    pub(super) fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn from_slice(bytes: &[u8]) -> Option<DomainKey> {
        let mut k = Zeroizing::new([0u8; 32]);
        if bytes.len() != k.len() {
            return None;
        }
        k.copy_from_slice(bytes);
        Some(DomainKey(k))
    }

    /// Saves the domain key in a new file sealed under the node storage key
    /// (mode 0600; file and directory synced).
    ///
    /// # Errors
    /// [`SecretsError::KeyFile`] if the file exists or cannot be written and
    /// synced; nothing is left behind on failure.
    pub fn save(&self, path: &Path, storage_key: &[u8; 32]) -> Result<(), SecretsError> {
        keyfile::save(&FILE, path, storage_key, self.0.as_ref())
    }

    /// Loads a domain key file written by [`save`](Self::save).
    ///
    /// # Errors
    /// [`SecretsError::KeyFile`] if the file is missing, readable by group or
    /// others, of the wrong size or kind, sealed under another storage key,
    /// or damaged.
    pub fn load(path: &Path, storage_key: &[u8; 32]) -> Result<DomainKey, SecretsError> {
        let payload = keyfile::load(&FILE, path, storage_key)?;
        Self::from_slice(&payload).ok_or_else(|| keyfile::damaged(&FILE, path))
    }
}

#[cfg(test)]
mod tests;
