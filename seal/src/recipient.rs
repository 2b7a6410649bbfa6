//! Sealing to an X25519 recipient: only the holder of the recipient's
//! private key opens it.
//!
//! An ephemeral X25519 key agrees a shared secret with the recipient's
//! public key; the sealing key is `blake3::derive_key(context, shared ||
//! ephemeral public || recipient public)`, so it is bound to both public
//! keys and to the caller's purpose; then [`SealKey::encrypt`] with a random
//! nonce and the caller's associated data. A low-order public key on either
//! side (whose shared secret anyone knows) is refused.

use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::{random_nonce, OpenError, SealKey, TooLong, NONCE_LEN};

/// A value sealed to one recipient. Holds no secret in the clear.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The sender's ephemeral X25519 public key.
    pub ephemeral_public: [u8; 32],
    /// The nonce.
    pub nonce: [u8; NONCE_LEN],
    /// `ciphertext || tag`.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// Why sealing to, or opening from, a recipient failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientError {
    /// The recipient's public key is of low order.
    WeakRecipient,
    /// The sealed value's ephemeral key is of low order.
    WeakEphemeral,
    /// The plaintext is too long.
    TooLong,
    /// It does not open: another recipient, context or associated data,
    /// or changed bytes.
    Open(OpenError),
}

impl RecipientError {
    /// A lowercase description for error messages.
    pub fn reason(self) -> &'static str {
        match self {
            RecipientError::WeakRecipient => "the recipient's public key is of low order",
            RecipientError::WeakEphemeral => "the ephemeral public key is of low order",
            RecipientError::TooLong => "the plaintext is too long",
            RecipientError::Open(e) => e.reason(),
        }
    }
}

impl std::fmt::Display for RecipientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for RecipientError {}

impl From<TooLong> for RecipientError {
    fn from(_: TooLong) -> RecipientError {
        RecipientError::TooLong
    }
}

fn sealing_key(
    context: &str,
    shared: &[u8; 32],
    ephemeral: &PublicKey,
    recipient: &PublicKey,
) -> SealKey {
    let mut ikm = Zeroizing::new([0u8; 96]);
    ikm[..32].copy_from_slice(shared);
    ikm[32..64].copy_from_slice(ephemeral.as_bytes());
    ikm[64..].copy_from_slice(recipient.as_bytes());
    let key = Zeroizing::new(blake3::derive_key(context, ikm.as_ref()));
    SealKey::new(&key)
}

/// Seals `plaintext` to `recipient` for `context` (a string naming the
/// purpose and version), with associated data `aad`.
///
/// # Errors
/// [`RecipientError::WeakRecipient`] for a low-order recipient key,
/// [`RecipientError::TooLong`] for a plaintext above the limit.
pub fn seal_to(
    recipient: &PublicKey,
    context: &str,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, RecipientError> {
    let ephemeral = EphemeralSecret::random_from_rng(rand::rngs::OsRng);
    let ephemeral_public = PublicKey::from(&ephemeral);
    let shared = ephemeral.diffie_hellman(recipient);
    if !shared.was_contributory() {
        return Err(RecipientError::WeakRecipient);
    }
    let key = sealing_key(context, shared.as_bytes(), &ephemeral_public, recipient);
    let nonce = random_nonce();
    let ciphertext = key.encrypt(&nonce, aad, plaintext)?;
    Ok(Sealed {
        ephemeral_public: ephemeral_public.to_bytes(),
        nonce,
        ciphertext,
    })
}

/// Opens what [`seal_to`] sealed to the public half of `secret`, for the
/// same `context` and `aad`.
///
/// # Errors
/// [`RecipientError::WeakEphemeral`] for a low-order ephemeral key,
/// [`RecipientError::Open`] if it does not open.
pub fn open_from(
    secret: &StaticSecret,
    context: &str,
    aad: &[u8],
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, RecipientError> {
    let ephemeral = PublicKey::from(sealed.ephemeral_public);
    let shared = secret.diffie_hellman(&ephemeral);
    if !shared.was_contributory() {
        return Err(RecipientError::WeakEphemeral);
    }
    let key = sealing_key(
        context,
        shared.as_bytes(),
        &ephemeral,
        &PublicKey::from(secret),
    );
    key.decrypt(&sealed.nonce, aad, &sealed.ciphertext)
        .map_err(RecipientError::Open)
}
