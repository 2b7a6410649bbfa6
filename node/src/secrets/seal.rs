//! AES-256-GCM-SIV with a random nonce, in the one format the secrets module
//! uses for wrapped material and key files: `version(1) || nonce(12) ||
//! ciphertext || tag(16)`. GCM-SIV stays safe if a random nonce ever repeats
//! (it then only shows that two equal plaintexts were sealed).

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

/// Format version of a sealed value.
pub(super) const VERSION: u8 = 1;
/// Length of the random nonce.
pub(super) const NONCE_LEN: usize = 12;
/// Length of the authentication tag.
pub(super) const TAG_LEN: usize = 16;
/// Bytes a sealed value has beyond its plaintext.
pub(super) const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
/// Longest plaintext [`seal`] takes. AES-GCM-SIV itself allows 2^36 bytes;
/// every caller seals keys of at most kilobytes.
pub(super) const MAX_PLAINTEXT: usize = 1024 * 1024;

/// The plaintext was longer than [`MAX_PLAINTEXT`].
#[derive(Debug)]
pub(super) struct TooLong;

/// Why a sealed value did not open. No variant carries bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpenFailure {
    /// Shorter than a version, nonce and tag.
    TooShort,
    /// Unknown version byte.
    UnknownVersion,
    /// Wrong key, wrong associated data, or changed bytes.
    Authentication,
}

impl OpenFailure {
    /// A lowercase description for error messages.
    pub(super) fn reason(self) -> &'static str {
        match self {
            OpenFailure::TooShort => "too short to be sealed",
            OpenFailure::UnknownVersion => "unknown format version",
            OpenFailure::Authentication => "authentication failed",
        }
    }
}

/// Fills a fresh random nonce.
pub(super) fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

/// Encrypts `plaintext` under `key` with `nonce`; returns ciphertext || tag.
pub(super) fn encrypt(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, TooLong> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(TooLong);
    }
    Aes256GcmSiv::new(key.into())
        .encrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // Fails only for inputs over 2^36 bytes, excluded above.
        .map_err(|_| TooLong)
}

/// Decrypts ciphertext || tag under `key` with `nonce`.
pub(super) fn decrypt(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenFailure> {
    if ciphertext.len() < TAG_LEN {
        return Err(OpenFailure::TooShort);
    }
    Aes256GcmSiv::new(key.into())
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| OpenFailure::Authentication)
}

/// Seals `plaintext` as `version || nonce || ciphertext || tag`.
pub(super) fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, TooLong> {
    let nonce = random_nonce();
    let ct = encrypt(key, &nonce, aad, plaintext)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens what [`seal`] made.
pub(super) fn open(
    key: &[u8; 32],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenFailure> {
    if sealed.len() < OVERHEAD {
        return Err(OpenFailure::TooShort);
    }
    let (version, rest) = sealed.split_at(1);
    if version != [VERSION] {
        return Err(OpenFailure::UnknownVersion);
    }
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenFailure::TooShort)?;
    decrypt(key, nonce, aad, ct)
}
