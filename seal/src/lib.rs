//! The one home of the cluster's sealing formats.
//!
//! - [`SealKey`]: AES-256-GCM-SIV under a 32-byte key, with a random
//!   96-bit nonce (or one the caller draws from what the value is for,
//!   [`SealKey::seal_with_nonce`]). Its framed format, [`SealKey::seal`]
//!   and [`SealKey::open`] (and the same in place, for large buffers), is
//!
//!   ```text
//!   version (1, = 1) || nonce (12) || ciphertext || tag (16)
//!   ```
//!
//!   used for store values (raft-store), node key files and wrapped key
//!   material (node), backup chunks (backup) and client envelope blobs
//!   (client SDK). Formats that keep the nonce apart call
//!   [`SealKey::encrypt`] and [`SealKey::decrypt`].
//! - [`recipient`]: sealing to an X25519 public key (an ephemeral exchange,
//!   a blake3 key derivation under the caller's context, then
//!   [`SealKey::encrypt`]), used to hand the domain key to a member and to
//!   wrap a backup key for a recovery key.
//!
//! GCM-SIV stays safe if a random nonce ever repeats (it then only shows
//! that two equal plaintexts were sealed). Every caller binds what a sealed
//! value is for (its record, key id, position, recipient) in the associated
//! data, under a context string of its own.
//!
//! Invariants: no IO; keys and plaintext only in zeroizing types (the
//! cipher's round keys zeroize on drop); `Debug` never shows key bytes;
//! input from outside is length-checked first and fails as a value, never
//! a panic.

#![forbid(unsafe_code)]

pub mod recipient;

use std::fmt;

use aes_gcm_siv::aead::{Aead, AeadInPlace, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use rand::RngCore;
use zeroize::Zeroizing;

/// Format version of a framed sealed value.
pub const VERSION: u8 = 1;
/// Length of the nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the authentication tag.
pub const TAG_LEN: usize = 16;
/// Length of a framed value's header: version and nonce.
pub const HEADER_LEN: usize = 1 + NONCE_LEN;
/// Bytes a framed sealed value has beyond its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Longest plaintext sealed at once. AES-GCM-SIV itself allows 2^36 bytes;
/// the largest callers seal backup chunks of a few MiB.
pub const MAX_PLAINTEXT: usize = 1 << 30;

/// The plaintext is longer than [`MAX_PLAINTEXT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "longer than the {MAX_PLAINTEXT} bytes sealed at once")
    }
}

impl std::error::Error for TooLong {}

/// Why a sealed value did not open. No variant carries bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than its header and tag.
    TooShort,
    /// Unknown version byte.
    UnknownVersion,
    /// Wrong key, wrong associated data, or changed bytes.
    Authentication,
}

impl OpenError {
    /// A lowercase description for error messages.
    pub fn reason(self) -> &'static str {
        match self {
            OpenError::TooShort => "too short to be sealed",
            OpenError::UnknownVersion => "unknown format version",
            OpenError::Authentication => "authentication failed",
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for OpenError {}

/// A fresh random nonce from the operating system's generator.
pub fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

/// An AES-256-GCM-SIV key, prepared once (the round keys zeroize on drop).
/// `Debug` is redacted.
#[derive(Clone)]
pub struct SealKey {
    cipher: Aes256GcmSiv,
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

impl SealKey {
    /// The key from its 32 bytes.
    pub fn new(key: &[u8; 32]) -> SealKey {
        SealKey {
            cipher: Aes256GcmSiv::new(key.into()),
        }
    }

    /// Encrypts `plaintext` with `nonce`; returns `ciphertext || tag`.
    ///
    /// # Errors
    /// [`TooLong`] above [`MAX_PLAINTEXT`].
    pub fn encrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, TooLong> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(TooLong);
        }
        self.cipher
            .encrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            // Fails only above 2^36 bytes, excluded above.
            .map_err(|_| TooLong)
    }

    /// Decrypts `ciphertext || tag` made by [`encrypt`](Self::encrypt).
    ///
    /// # Errors
    /// [`OpenError::TooShort`] without a whole tag,
    /// [`OpenError::Authentication`] otherwise.
    pub fn decrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        if ciphertext.len() < TAG_LEN {
            return Err(OpenError::TooShort);
        }
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Authentication)
    }

    /// Seals `plaintext` as `version || nonce || ciphertext || tag` with a
    /// fresh random nonce.
    ///
    /// # Errors
    /// [`TooLong`] above [`MAX_PLAINTEXT`].
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, TooLong> {
        self.seal_with_nonce(&random_nonce(), aad, plaintext)
    }

    /// Seals `plaintext` as [`seal`](Self::seal) does, under the caller's
    /// `nonce`: the same key, nonce, associated data and plaintext give the
    /// same bytes, so a value sealed again can be recognised. For callers
    /// that draw the nonce from what the associated data binds: where a
    /// nonce is used for two plaintexts, GCM-SIV shows only whether they
    /// are equal.
    ///
    /// # Errors
    /// [`TooLong`] above [`MAX_PLAINTEXT`].
    pub fn seal_with_nonce(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, TooLong> {
        let ct = self.encrypt(nonce, aad, plaintext)?;
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens what [`seal`](Self::seal) made.
    ///
    /// # Errors
    /// [`OpenError`] says why not.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let (nonce, ct) = split(sealed)?;
        self.decrypt(&nonce, aad, ct)
    }

    /// Seals in place: `buf` holds [`HEADER_LEN`] bytes of room, then the
    /// plaintext, and should have capacity for [`TAG_LEN`] more (then it
    /// never reallocates, which would leave a plaintext copy behind). It
    /// becomes the framed sealed value.
    ///
    /// # Errors
    /// [`TooLong`] above [`MAX_PLAINTEXT`], or if `buf` is shorter than
    /// the header; `buf` is then unchanged.
    pub fn seal_in_place(&self, aad: &[u8], buf: &mut Vec<u8>) -> Result<(), TooLong> {
        if buf.len() < HEADER_LEN || buf.len() - HEADER_LEN > MAX_PLAINTEXT {
            return Err(TooLong);
        }
        let nonce = random_nonce();
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut buf[HEADER_LEN..])
            .map_err(|_| TooLong)?;
        buf[0] = VERSION;
        buf[1..HEADER_LEN].copy_from_slice(&nonce);
        buf.extend_from_slice(&tag);
        Ok(())
    }

    /// Opens a framed sealed value in place; on success returns the
    /// plaintext, `sealed[HEADER_LEN..sealed.len() - TAG_LEN]`.
    ///
    /// # Errors
    /// [`OpenError`] says why not; the bytes are then unspecified.
    pub fn open_in_place<'a>(
        &self,
        aad: &[u8],
        sealed: &'a mut [u8],
    ) -> Result<&'a [u8], OpenError> {
        let (nonce, _) = split(sealed)?;
        let (_, rest) = sealed.split_at_mut(HEADER_LEN);
        let (ct, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        self.cipher
            .decrypt_in_place_detached(Nonce::from_slice(&nonce), aad, ct, Tag::from_slice(tag))
            .map_err(|_| OpenError::Authentication)?;
        Ok(ct)
    }
}

/// The nonce and the `ciphertext || tag` of a framed sealed value, after
/// the length and version checks.
fn split(sealed: &[u8]) -> Result<([u8; NONCE_LEN], &[u8]), OpenError> {
    if sealed.len() < OVERHEAD {
        return Err(OpenError::TooShort);
    }
    let (header, ct) = sealed.split_at(HEADER_LEN);
    if header[0] != VERSION {
        return Err(OpenError::UnknownVersion);
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&header[1..]);
    Ok((nonce, ct))
}

/// Seals with a key given as bytes (see [`SealKey::seal`]).
///
/// # Errors
/// As [`SealKey::seal`].
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, TooLong> {
    SealKey::new(key).seal(aad, plaintext)
}

/// Opens with a key given as bytes (see [`SealKey::open`]).
///
/// # Errors
/// As [`SealKey::open`].
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    SealKey::new(key).open(aad, sealed)
}

#[cfg(test)]
mod tests;
