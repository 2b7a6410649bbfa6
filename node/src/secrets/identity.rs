//! A node's long-term keys: ed25519 to sign events, X25519 to receive the
//! domain key.

use std::fmt;
use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::keyfile::{self, KeyFileKind};
use super::{hex, SecretsError};

/// The node identity file, sealed under the node storage key. Its secret is
/// the ed25519 seed followed by the X25519 secret.
const FILE: KeyFileKind = KeyFileKind {
    name: "node identity",
    magic: *b"HSMNODE\0",
    seal_context: "hsm-node identity file v1",
    check_context: "hsm-node identity file key check v1",
    payload_len: 64,
};

/// A node's secret keys. Both zeroize on drop; `Debug` shows only the
/// public halves; not `Clone`.
pub struct NodeIdentity {
    signing: SigningKey,
    agreement: StaticSecret,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("verifying_key", &hex(&self.verifying_key_bytes()))
            .field("agreement_public", &hex(self.agreement_public().as_bytes()))
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// Fresh random keys, from the operating system's generator.
    pub fn generate() -> NodeIdentity {
        let mut rng = rand::rngs::OsRng;
        NodeIdentity {
            signing: SigningKey::generate(&mut rng),
            agreement: StaticSecret::random_from_rng(rng),
        }
    }

    /// The key that signs this node's events (for `hsm_state::sign_event`).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The public key that verifies this node's events.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The verifying key's 32 bytes, as `NodeRecord` carries them.
    pub fn verifying_key_bytes(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The X25519 secret that opens a domain key sealed to this node
    /// (for [`DomainKey::open_sealed`](super::DomainKey::open_sealed)).
    pub fn agreement_secret(&self) -> &StaticSecret {
        &self.agreement
    }

    /// The X25519 public key a domain key is sealed to.
    pub fn agreement_public(&self) -> PublicKey {
        PublicKey::from(&self.agreement)
    }

    /// Saves the identity in a new file sealed under the node storage key
    /// (mode 0600; file and directory synced).
    ///
    /// # Errors
    /// [`SecretsError::KeyFile`] if the file exists or cannot be written and
    /// synced; nothing is left behind on failure.
    pub fn save(&self, path: &Path, storage_key: &[u8; 32]) -> Result<(), SecretsError> {
        let mut payload = Zeroizing::new([0u8; 64]);
        payload[..32].copy_from_slice(self.signing.as_bytes());
        payload[32..].copy_from_slice(Zeroizing::new(self.agreement.to_bytes()).as_ref());
        keyfile::save(&FILE, path, storage_key, payload.as_ref())
    }

    /// Loads an identity file written by [`save`](Self::save).
    ///
    /// # Errors
    /// [`SecretsError::KeyFile`] if the file is missing, readable by group or
    /// others, of the wrong size or kind, sealed under another storage key,
    /// or damaged.
    pub fn load(path: &Path, storage_key: &[u8; 32]) -> Result<NodeIdentity, SecretsError> {
        let payload = keyfile::load(&FILE, path, storage_key)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        let mut agreement = Zeroizing::new([0u8; 32]);
        if payload.len() != 64 {
            return Err(keyfile::damaged(&FILE, path));
        }
        seed.copy_from_slice(&payload[..32]);
        agreement.copy_from_slice(&payload[32..]);
        Ok(NodeIdentity {
            signing: SigningKey::from_bytes(&seed),
            agreement: StaticSecret::from(*agreement),
        })
    }
}

#[cfg(test)]
mod tests;
