//! AES-256-GCM-SIV sealing of chunks and wrapping of the backup key, in
//! `hsm_seal`'s formats.
//!
//! Chunk object: `version(1) || nonce(12) || ciphertext || tag(16)`
//! (`hsm_seal`'s framed format, sealed in place), with
//! associated data `"hsm-backup chunk v1\0" || backup id(16) || cluster
//! id(16) || chunk number(u32 BE) || chunk count(u32 BE)`.
//!
//! A wrapped backup key: `nonce(12)`, `ciphertext || tag (48)`, under
//! - the domain wrap key `blake3::derive_key("hsm-backup backup key wrap v1
//!   (domain key)", domain key)`, or
//! - a recovery wrap key `blake3::derive_key("hsm-backup backup key wrap v1
//!   (recovery key)", X25519 shared secret || ephemeral public || recipient
//!   public)` (`hsm_seal::recipient`),
//!
//! with associated data `"hsm-backup wrapped key v1\0" || manifest binding
//! (32) || kind(1: 1 domain, 2 recovery) || recipient fingerprint (32, zero
//! for the domain key)`. The binding hashes every manifest field except the
//! wrapped keys, so a wrapped key opens only with the manifest it was made
//! for.

use hsm_seal::recipient::{self, RecipientError};
use hsm_seal::SealKey;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::keys::{BackupDomainKey, Fingerprint, RecoveryKey, RecoveryPublicKey};
use hsm_proto::BackupId;

/// Length of a nonce.
pub(crate) const NONCE_LEN: usize = hsm_seal::NONCE_LEN;
/// Length of an authentication tag.
pub(crate) const TAG_LEN: usize = hsm_seal::TAG_LEN;
/// Bytes before a chunk's ciphertext.
pub(crate) const CHUNK_HEADER_LEN: usize = hsm_seal::HEADER_LEN;
/// Bytes a chunk object has beyond its plaintext: version, nonce and tag.
pub const CHUNK_OVERHEAD: usize = hsm_seal::OVERHEAD;
/// Length of a wrapped backup key's ciphertext (key and tag).
pub(crate) const WRAPPED_LEN: usize = 32 + TAG_LEN;

const CHUNK_AAD: &[u8] = b"hsm-backup chunk v1\0";
const WRAP_AAD: &[u8] = b"hsm-backup wrapped key v1\0";
const DOMAIN_WRAP_CONTEXT: &str = "hsm-backup backup key wrap v1 (domain key)";
const RECOVERY_WRAP_CONTEXT: &str = "hsm-backup backup key wrap v1 (recovery key)";
const KIND_DOMAIN: u8 = 1;
const KIND_RECOVERY: u8 = 2;

/// The ephemeral key that seals one backup's chunks. Zeroized on drop.
pub(crate) struct BackupKey(Zeroizing<[u8; 32]>);

impl BackupKey {
    pub(crate) fn generate() -> BackupKey {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        BackupKey(k)
    }

    fn cipher(&self) -> SealKey {
        SealKey::new(&self.0)
    }
}

/// Where a chunk sits: the associated data of its sealing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkPosition {
    pub(crate) backup: BackupId,
    pub(crate) cluster: [u8; 16],
    pub(crate) index: u32,
    pub(crate) count: u32,
}

impl ChunkPosition {
    fn aad(&self) -> [u8; CHUNK_AAD.len() + 40] {
        let mut aad = [0u8; CHUNK_AAD.len() + 40];
        let (prefix, rest) = aad.split_at_mut(CHUNK_AAD.len());
        prefix.copy_from_slice(CHUNK_AAD);
        rest[..16].copy_from_slice(&self.backup.0);
        rest[16..32].copy_from_slice(&self.cluster);
        rest[32..36].copy_from_slice(&self.index.to_be_bytes());
        rest[36..].copy_from_slice(&self.count.to_be_bytes());
        aad
    }
}

/// A buffer laid out for [`seal_chunk`]: header room, `plain_len` zero
/// bytes to read the plaintext into, and capacity for the tag, so sealing
/// never reallocates (which would leave a plaintext copy behind).
pub(crate) fn chunk_buffer(plain_len: usize) -> Zeroizing<Vec<u8>> {
    let mut buf = Vec::with_capacity(plain_len + CHUNK_OVERHEAD);
    buf.resize(CHUNK_HEADER_LEN + plain_len, 0);
    Zeroizing::new(buf)
}

/// Seals the plaintext in `buf[CHUNK_HEADER_LEN..]` in place, turning `buf`
/// into the chunk object.
pub(crate) fn seal_chunk(key: &BackupKey, pos: &ChunkPosition, buf: &mut Vec<u8>) {
    key.cipher()
        .seal_in_place(&pos.aad(), buf)
        // Fails only above hsm_seal::MAX_PLAINTEXT; chunks are at most
        // MAX_CHUNK_BYTES, and chunk_buffer leaves the header room.
        .unwrap_or_else(|_| unreachable!("a chunk within the sealing limit"));
}

/// Opens a chunk object in place; on success the plaintext is
/// `obj[CHUNK_HEADER_LEN..obj.len() - TAG_LEN]`.
pub(crate) fn open_chunk(key: &BackupKey, pos: &ChunkPosition, obj: &mut [u8]) -> Result<(), ()> {
    key.cipher()
        .open_in_place(&pos.aad(), obj)
        .map(|_| ())
        .map_err(|_| ())
}

fn wrap_aad(binding: &[u8; 32], kind: u8, fingerprint: &[u8; 32]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD.len() + 65);
    aad.extend_from_slice(WRAP_AAD);
    aad.extend_from_slice(binding);
    aad.push(kind);
    aad.extend_from_slice(fingerprint);
    aad
}

fn wrap(wrap_key: &[u8; 32], aad: &[u8], key: &BackupKey) -> ([u8; NONCE_LEN], Vec<u8>) {
    let nonce = hsm_seal::random_nonce();
    let ciphertext = SealKey::new(wrap_key)
        .encrypt(&nonce, aad, key.0.as_ref())
        .unwrap_or_else(|_| unreachable!("32 bytes are within the sealing limit"));
    (nonce, ciphertext)
}

fn unwrap(
    wrap_key: &[u8; 32],
    aad: &[u8],
    nonce: &[u8; NONCE_LEN],
    ciphertext: &[u8],
) -> Result<BackupKey, &'static str> {
    if ciphertext.len() != WRAPPED_LEN {
        return Err("wrong wrapped key length");
    }
    let plain = SealKey::new(wrap_key)
        .decrypt(nonce, aad, ciphertext)
        .map_err(|_| "authentication failed: another key, or a changed manifest")?;
    backup_key(&plain)
}

fn backup_key(plain: &[u8]) -> Result<BackupKey, &'static str> {
    let mut key = Zeroizing::new([0u8; 32]);
    if plain.len() != key.len() {
        return Err("wrong wrapped key length");
    }
    key.copy_from_slice(plain);
    Ok(BackupKey(key))
}

/// Wraps the backup key under the domain key.
pub(crate) fn wrap_for_domain(
    domain: &BackupDomainKey,
    binding: &[u8; 32],
    key: &BackupKey,
) -> ([u8; NONCE_LEN], Vec<u8>) {
    let aad = wrap_aad(binding, KIND_DOMAIN, &[0; 32]);
    wrap(&domain.derive(DOMAIN_WRAP_CONTEXT), &aad, key)
}

/// Opens a backup key wrapped by [`wrap_for_domain`].
pub(crate) fn unwrap_with_domain(
    domain: &BackupDomainKey,
    binding: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    ciphertext: &[u8],
) -> Result<BackupKey, &'static str> {
    let aad = wrap_aad(binding, KIND_DOMAIN, &[0; 32]);
    unwrap(&domain.derive(DOMAIN_WRAP_CONTEXT), &aad, nonce, ciphertext)
}

/// A backup key wrapped for one recovery key.
pub(crate) struct RecoveryWrap {
    pub(crate) fingerprint: Fingerprint,
    pub(crate) ephemeral_public: [u8; 32],
    pub(crate) nonce: [u8; NONCE_LEN],
    pub(crate) ciphertext: Vec<u8>,
}

/// Wraps the backup key for a recovery public key: an ephemeral X25519
/// exchange, then [`RECOVERY_WRAP_CONTEXT`] and AES-256-GCM-SIV
/// (`hsm_seal::recipient`). `None` if the recipient is a low-order point.
pub(crate) fn wrap_for_recovery(
    recipient: &RecoveryPublicKey,
    binding: &[u8; 32],
    key: &BackupKey,
) -> Option<RecoveryWrap> {
    let fingerprint = recipient.fingerprint();
    let aad = wrap_aad(binding, KIND_RECOVERY, &fingerprint.0);
    let sealed = recipient::seal_to(
        recipient.x25519(),
        RECOVERY_WRAP_CONTEXT,
        &aad,
        key.0.as_ref(),
    )
    .ok()?;
    Some(RecoveryWrap {
        fingerprint,
        ephemeral_public: sealed.ephemeral_public,
        nonce: sealed.nonce,
        ciphertext: sealed.ciphertext,
    })
}

/// Opens a backup key wrapped by [`wrap_for_recovery`].
pub(crate) fn unwrap_with_recovery(
    recovery: &RecoveryKey,
    binding: &[u8; 32],
    ephemeral_public: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    ciphertext: &[u8],
) -> Result<BackupKey, &'static str> {
    if ciphertext.len() != WRAPPED_LEN {
        return Err("wrong wrapped key length");
    }
    let aad = wrap_aad(
        binding,
        KIND_RECOVERY,
        &recovery.public_key().fingerprint().0,
    );
    let sealed = recipient::Sealed {
        ephemeral_public: *ephemeral_public,
        nonce: *nonce,
        ciphertext: ciphertext.to_vec(),
    };
    let plain = recipient::open_from(recovery.secret(), RECOVERY_WRAP_CONTEXT, &aad, &sealed)
        .map_err(|e| match e {
            RecipientError::WeakEphemeral => "the ephemeral key is a low-order point",
            _ => "authentication failed: another key, or a changed manifest",
        })?;
    backup_key(&plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(index: u32) -> ChunkPosition {
        ChunkPosition {
            backup: BackupId([7; 16]),
            cluster: [9; 16],
            index,
            count: 3,
        }
    }

    #[test]
    fn chunks_open_only_at_their_own_position_and_under_their_key() {
        let key = BackupKey::generate();
        let mut buf = chunk_buffer(1000);
        buf[CHUNK_HEADER_LEN..].fill(0x5a);
        let cap = buf.capacity();
        seal_chunk(&key, &pos(1), &mut buf);
        assert_eq!(buf.capacity(), cap, "sealing reallocated");
        assert_eq!(buf.len(), 1000 + CHUNK_OVERHEAD);

        let mut ok = buf.to_vec();
        open_chunk(&key, &pos(1), &mut ok).expect("opens");
        assert!(ok[CHUNK_HEADER_LEN..ok.len() - TAG_LEN]
            .iter()
            .all(|&b| b == 0x5a));
        for other in [pos(0), pos(2), ChunkPosition { count: 4, ..pos(1) }] {
            assert!(open_chunk(&key, &other, &mut buf.to_vec()).is_err());
        }
        assert!(open_chunk(&BackupKey::generate(), &pos(1), &mut buf.to_vec()).is_err());
    }

    #[test]
    fn wrapped_keys_open_only_with_their_key_and_binding() {
        let key = BackupKey::generate();
        let domain = BackupDomainKey::new(Zeroizing::new([3; 32]));
        let (nonce, ct) = wrap_for_domain(&domain, &[1; 32], &key);
        let opened = unwrap_with_domain(&domain, &[1; 32], &nonce, &ct).expect("opens");
        assert_eq!(*opened.0, *key.0);
        assert!(unwrap_with_domain(&domain, &[2; 32], &nonce, &ct).is_err());
        let other = BackupDomainKey::new(Zeroizing::new([4; 32]));
        assert!(unwrap_with_domain(&other, &[1; 32], &nonce, &ct).is_err());

        let recovery = RecoveryKey::generate();
        let w = wrap_for_recovery(&recovery.public_key(), &[1; 32], &key).expect("wraps");
        let opened = unwrap_with_recovery(
            &recovery,
            &[1; 32],
            &w.ephemeral_public,
            &w.nonce,
            &w.ciphertext,
        )
        .expect("opens");
        assert_eq!(*opened.0, *key.0);
        assert!(unwrap_with_recovery(
            &RecoveryKey::generate(),
            &[1; 32],
            &w.ephemeral_public,
            &w.nonce,
            &w.ciphertext
        )
        .is_err());
        assert!(
            wrap_for_recovery(&RecoveryPublicKey::from_bytes([0; 32]), &[1; 32], &key).is_none()
        );
    }
}
