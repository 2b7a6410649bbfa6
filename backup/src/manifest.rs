//! The manifest: what a backup holds and how to open it, signed by the node
//! that wrote it.
//!
//! Manifest object: `"HSMBKMF1" || body || signature(64)`, where `body` is
//! the canonical encoding ([`hsm_proto::codec`]) of [`Manifest`] and the
//! signature is the writer's ed25519 signature over
//! `"hsm-backup manifest v1\0" || body`.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hsm_proto::{codec, ClusterId, NodeId};
use serde::{Deserialize, Serialize};

use crate::crypto::{NONCE_LEN, WRAPPED_LEN};
use crate::error::BackupError;
use crate::keys::Fingerprint;
use hsm_proto::BackupId;

/// The manifest format this crate writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// First bytes of a manifest object.
pub(crate) const MAGIC: &[u8; 8] = b"HSMBKMF1";
/// Domain separation of the manifest signature.
const SIGN_CONTEXT: &[u8] = b"hsm-backup manifest v1\0";
/// Context of the binding hash the wrapped keys are tied to.
const BINDING_CONTEXT: &str = "hsm-backup manifest binding v1";
/// Length of an ed25519 signature.
const SIGNATURE_LEN: usize = 64;
/// Most chunks one backup may have (chunk objects are numbered with six
/// digits).
pub const MAX_CHUNKS: u64 = 999_999;
/// Smallest chunk size.
pub const MIN_CHUNK_BYTES: u32 = 1024;
/// Largest chunk size.
pub const MAX_CHUNK_BYTES: u32 = 256 * 1024 * 1024;
/// Most backup keys wrapped in one manifest (the domain key and recovery
/// keys).
pub const MAX_WRAPPED_KEYS: usize = 64;
/// Largest manifest object read.
pub(crate) const MAX_MANIFEST_BYTES: u64 =
    (codec::MAX_DECODE_BYTES + MAGIC.len() + SIGNATURE_LEN) as u64;

/// One chunk as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    /// Plaintext bytes in the chunk; the object is
    /// [`CHUNK_OVERHEAD`](crate::CHUNK_OVERHEAD) bytes longer.
    pub plain_bytes: u32,
    /// blake3 hash of the whole chunk object (as stored, encrypted).
    pub object_hash: [u8; 32],
}

/// The backup key, wrapped for one opener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WrappedKey {
    /// Under a key derived from the cluster domain key.
    DomainKey {
        /// AES-256-GCM-SIV nonce.
        nonce: [u8; NONCE_LEN],
        /// The backup key encrypted, with its tag (48 bytes).
        ciphertext: Vec<u8>,
    },
    /// For a recovery X25519 public key.
    RecoveryKey {
        /// The recipient's fingerprint.
        fingerprint: [u8; 32],
        /// The writer's ephemeral X25519 public key.
        ephemeral_public: [u8; 32],
        /// AES-256-GCM-SIV nonce.
        nonce: [u8; NONCE_LEN],
        /// The backup key encrypted, with its tag (48 bytes).
        ciphertext: Vec<u8>,
    },
}

/// Everything a backup records about itself. Signed by the writer; holds no
/// secret in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`].
    pub format_version: u16,
    /// This backup's id (also the name of its folder).
    pub backup_id: BackupId,
    /// The cluster the state belongs to.
    pub cluster_id: ClusterId,
    /// The applied log index of the state.
    pub applied_index: u64,
    /// The term of that log entry.
    pub term: u64,
    /// When the backup was taken, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The node that wrote and signed the backup.
    pub writer_node_id: NodeId,
    /// That node's ed25519 public key.
    pub writer_public_key: [u8; 32],
    /// Plaintext bytes per chunk (the last may be shorter).
    pub chunk_bytes: u32,
    /// Plaintext bytes in all (the snapshot's length).
    pub total_plain_bytes: u64,
    /// The chunks, in order: `chunk-000000` first.
    pub chunks: Vec<ChunkEntry>,
    /// The backup key wrapped for each opener.
    pub wrapped_keys: Vec<WrappedKey>,
}

impl Manifest {
    /// The writer's public key.
    ///
    /// # Errors
    /// [`BackupError::ManifestDamaged`] if the bytes are not a valid ed25519
    /// point (named `object`).
    pub fn writer_key(&self, object: &str) -> Result<VerifyingKey, BackupError> {
        VerifyingKey::from_bytes(&self.writer_public_key).map_err(|_| {
            BackupError::ManifestDamaged {
                object: object.to_string(),
                reason: "the writer public key is not a valid ed25519 key".into(),
            }
        })
    }

    /// Bytes of all chunk objects together.
    pub fn stored_bytes(&self) -> u64 {
        self.chunks
            .iter()
            .map(|c| u64::from(c.plain_bytes) + crate::crypto::CHUNK_OVERHEAD as u64)
            .sum()
    }

    /// Fingerprints of the recovery keys the backup key is wrapped for.
    pub fn recovery_fingerprints(&self) -> Vec<Fingerprint> {
        self.wrapped_keys
            .iter()
            .filter_map(|w| match w {
                WrappedKey::RecoveryKey { fingerprint, .. } => Some(Fingerprint(*fingerprint)),
                WrappedKey::DomainKey { .. } => None,
            })
            .collect()
    }

    /// Whether the backup key is wrapped under the domain key.
    pub fn has_domain_key_wrap(&self) -> bool {
        self.wrapped_keys
            .iter()
            .any(|w| matches!(w, WrappedKey::DomainKey { .. }))
    }

    /// The hash every wrapped key is bound to: all fields but the wrapped
    /// keys, canonically encoded, hashed with blake3 under its own context.
    pub(crate) fn binding(&self) -> Result<[u8; 32], codec::CodecError> {
        let mut core = self.clone();
        core.wrapped_keys.clear();
        let bytes = codec::encode("backup manifest", &core)?;
        Ok(blake3::Hasher::new_derive_key(BINDING_CONTEXT)
            .update(&bytes)
            .finalize()
            .into())
    }

    /// The number of chunks a snapshot of `len` bytes takes.
    pub(crate) fn chunk_count(len: u64, chunk_bytes: u32) -> u64 {
        len.div_ceil(u64::from(chunk_bytes))
    }

    /// Checks that the fields agree with each other: version, chunk sizes
    /// against the total, wrapped key lengths.
    fn check_structure(&self) -> Result<(), String> {
        if self.format_version != FORMAT_VERSION {
            return Err(format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                self.format_version
            ));
        }
        if !(MIN_CHUNK_BYTES..=MAX_CHUNK_BYTES).contains(&self.chunk_bytes) {
            return Err(format!("chunk size {} out of range", self.chunk_bytes));
        }
        let expected = Self::chunk_count(self.total_plain_bytes, self.chunk_bytes);
        if expected > MAX_CHUNKS || self.chunks.len() as u64 != expected {
            return Err(format!(
                "{} chunks listed for {} bytes in chunks of {}",
                self.chunks.len(),
                self.total_plain_bytes,
                self.chunk_bytes
            ));
        }
        let mut sum = 0u64;
        for (i, c) in self.chunks.iter().enumerate() {
            let last = i + 1 == self.chunks.len();
            if (!last && c.plain_bytes != self.chunk_bytes)
                || (last && (c.plain_bytes == 0 || c.plain_bytes > self.chunk_bytes))
            {
                return Err(format!(
                    "chunk {i} has an impossible size {}",
                    c.plain_bytes
                ));
            }
            sum += u64::from(c.plain_bytes);
        }
        if sum != self.total_plain_bytes {
            return Err(format!(
                "chunk sizes add up to {sum}, not {}",
                self.total_plain_bytes
            ));
        }
        if self.wrapped_keys.is_empty() || self.wrapped_keys.len() > MAX_WRAPPED_KEYS {
            return Err(format!("{} wrapped keys", self.wrapped_keys.len()));
        }
        let domain_wraps = self
            .wrapped_keys
            .iter()
            .filter(|w| matches!(w, WrappedKey::DomainKey { .. }))
            .count();
        if domain_wraps > 1 {
            return Err("more than one key wrapped under the domain key".into());
        }
        for w in &self.wrapped_keys {
            let (WrappedKey::DomainKey { ciphertext, .. }
            | WrappedKey::RecoveryKey { ciphertext, .. }) = w;
            if ciphertext.len() != WRAPPED_LEN {
                return Err(format!(
                    "a wrapped key is {} bytes, not {WRAPPED_LEN}",
                    ciphertext.len()
                ));
            }
        }
        Ok(())
    }
}

/// Encodes and signs a manifest into its object bytes.
///
/// # Errors
/// A manifest too large for the codec.
pub fn encode_manifest(
    manifest: &Manifest,
    signer: &SigningKey,
) -> Result<Vec<u8>, codec::CodecError> {
    let body = codec::encode("backup manifest", manifest)?;
    let mut to_sign = Vec::with_capacity(SIGN_CONTEXT.len() + body.len());
    to_sign.extend_from_slice(SIGN_CONTEXT);
    to_sign.extend_from_slice(&body);
    let signature = signer.sign(&to_sign);
    let mut out = Vec::with_capacity(MAGIC.len() + body.len() + SIGNATURE_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(&signature.to_bytes());
    Ok(out)
}

/// Decodes a manifest object, checks its structure and that its signature
/// verifies under the writer key it names, and, when `trusted` is given,
/// that this key is one of them. `object` names the object in errors.
///
/// # Errors
/// [`BackupError::ManifestDamaged`] for bytes that are no well-formed
/// manifest, [`BackupError::ManifestSignature`] for a signature that does
/// not verify, [`BackupError::UntrustedSigner`] for a writer not trusted.
pub fn decode_manifest(
    bytes: &[u8],
    object: &str,
    trusted: Option<&[VerifyingKey]>,
) -> Result<Manifest, BackupError> {
    let damaged = |reason: String| BackupError::ManifestDamaged {
        object: object.to_string(),
        reason,
    };
    if bytes.len() < MAGIC.len() + SIGNATURE_LEN {
        return Err(damaged(format!("only {} bytes", bytes.len())));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(damaged("not a backup manifest (unknown magic)".into()));
    }
    let (body, sig) = bytes[MAGIC.len()..].split_at(bytes.len() - MAGIC.len() - SIGNATURE_LEN);
    let manifest: Manifest =
        codec::decode("backup manifest", body).map_err(|e| damaged(e.to_string()))?;
    let key = manifest.writer_key(object)?;
    let sig: &[u8; SIGNATURE_LEN] = sig
        .try_into()
        .map_err(|_| damaged("short signature".into()))?;
    let mut signed = Vec::with_capacity(SIGN_CONTEXT.len() + body.len());
    signed.extend_from_slice(SIGN_CONTEXT);
    signed.extend_from_slice(body);
    key.verify_strict(&signed, &Signature::from_bytes(sig))
        .map_err(|_| BackupError::ManifestSignature {
            object: object.to_string(),
        })?;
    manifest.check_structure().map_err(damaged)?;
    if let Some(trusted) = trusted {
        if !trusted.iter().any(|t| t.as_bytes() == key.as_bytes()) {
            return Err(BackupError::UntrustedSigner {
                object: object.to_string(),
                node: manifest.writer_node_id.0,
                key: hex::encode(key.as_bytes()),
            });
        }
    }
    Ok(manifest)
}

/// Checks a signature with the non-strict verifier too, so both agree on
/// what [`encode_manifest`] makes (used in tests).
#[cfg(test)]
fn verifies_loosely(bytes: &[u8], key: &VerifyingKey) -> bool {
    let (body, sig) = bytes[MAGIC.len()..].split_at(bytes.len() - MAGIC.len() - SIGNATURE_LEN);
    let mut signed = SIGN_CONTEXT.to_vec();
    signed.extend_from_slice(body);
    let Ok(sig) = <&[u8; 64]>::try_from(sig) else {
        return false;
    };
    ed25519_dalek::Verifier::verify(key, &signed, &Signature::from_bytes(sig)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(signer: &SigningKey) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            backup_id: BackupId([1; 16]),
            cluster_id: ClusterId([2; 16]),
            applied_index: 10,
            term: 2,
            created_at_ms: 1_700_000_000_000,
            writer_node_id: NodeId(3),
            writer_public_key: signer.verifying_key().to_bytes(),
            chunk_bytes: 1024,
            total_plain_bytes: 1500,
            chunks: vec![
                ChunkEntry {
                    plain_bytes: 1024,
                    object_hash: [4; 32],
                },
                ChunkEntry {
                    plain_bytes: 476,
                    object_hash: [5; 32],
                },
            ],
            wrapped_keys: vec![WrappedKey::DomainKey {
                nonce: [6; 12],
                ciphertext: vec![7; WRAPPED_LEN],
            }],
        }
    }

    #[test]
    fn every_single_byte_change_of_a_manifest_object_is_refused() {
        let signer = SigningKey::generate(&mut rand::rngs::OsRng);
        let m = sample(&signer);
        let bytes = encode_manifest(&m, &signer).expect("encodes");
        assert!(verifies_loosely(&bytes, &signer.verifying_key()));
        assert_eq!(decode_manifest(&bytes, "m", None).expect("decodes"), m);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            let err = decode_manifest(&bad, "m", None).expect_err("changed manifest accepted");
            assert_eq!(err.object(), Some("m"), "byte {i}: {err}");
        }
        for cut in [0, 8, bytes.len() - 1] {
            assert!(decode_manifest(&bytes[..cut], "m", None).is_err());
        }
    }

    #[test]
    fn inconsistent_but_signed_manifests_are_refused() {
        let signer = SigningKey::generate(&mut rand::rngs::OsRng);
        let mut m = sample(&signer);
        m.total_plain_bytes = 1501;
        let bytes = encode_manifest(&m, &signer).expect("encodes");
        let err = decode_manifest(&bytes, "m", None).expect_err("accepted");
        assert!(err.to_string().contains("add up") || err.to_string().contains("chunks listed"));
    }

    #[test]
    fn only_trusted_signers_are_accepted_when_some_are_given() {
        let signer = SigningKey::generate(&mut rand::rngs::OsRng);
        let other = SigningKey::generate(&mut rand::rngs::OsRng);
        let bytes = encode_manifest(&sample(&signer), &signer).expect("encodes");
        assert!(decode_manifest(&bytes, "m", Some(&[signer.verifying_key()])).is_ok());
        let err =
            decode_manifest(&bytes, "m", Some(&[other.verifying_key()])).expect_err("accepted");
        assert!(matches!(err, BackupError::UntrustedSigner { .. }), "{err}");
        assert!(decode_manifest(&bytes, "m", Some(&[])).is_err());
    }
}
