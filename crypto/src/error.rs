//! The one error type of the crate.

use hsm_proto::KeySpec;

/// Why a key generation or cryptographic operation failed.
///
/// Messages are lowercase and never contain key bytes, plaintext or
/// intermediate secrets: at most a key spec, a mechanism name and lengths.
///
/// A signature or MAC that does not verify is **not** an error: `verify`
/// returns `Ok(false)`. Errors mean the request itself was wrong (mechanism
/// for another key type, malformed key, input of an impossible length) or, for
/// decryption and unwrapping, that the ciphertext did not authenticate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The key spec names a size the cluster does not support.
    #[error("unsupported key type or size {0}")]
    UnsupportedKeySpec(KeySpec),

    /// The mechanism cannot be used with this type of key (for example ECDSA
    /// with an RSA key, or HMAC with an AES key).
    #[error("mechanism {mechanism} cannot be used with a {spec} key")]
    MechanismMismatch {
        /// The mechanism's stable name (see the mechanism enums' `name`).
        mechanism: &'static str,
        /// The spec of the key it was asked of.
        spec: KeySpec,
    },

    /// Imported or unwrapped key material is of another type or size than
    /// the spec the caller gave.
    #[error("key material is not a {expected} key{}", found_suffix(.found))]
    KeySpecMismatch {
        /// The spec the caller asked for.
        expected: KeySpec,
        /// What the material is, when it could be recognised.
        found: Option<KeySpec>,
    },

    /// Key material (private or public) could not be parsed or failed its
    /// consistency checks.
    #[error("malformed key: {0}")]
    BadKey(&'static str),

    /// An input has a length the operation cannot accept.
    #[error("bad input length: {what} is {len} bytes, {allowed}")]
    BadLength {
        /// Which input.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// What would have been accepted, in words (e.g. "at most 190").
        allowed: &'static str,
    },

    /// The two keys of a key agreement are not of the same type.
    #[error("peer public key is a {peer} key, expected {expected}")]
    PeerKeyMismatch {
        /// The spec of our private key.
        expected: KeySpec,
        /// The spec of the peer's public key.
        peer: KeySpec,
    },

    /// Decryption failed: wrong key, tampered ciphertext, tag or associated
    /// data. Deliberately says nothing more.
    #[error("decryption failed")]
    DecryptFailed,

    /// Unwrapping failed: wrong key or tampered wrapped material.
    /// Deliberately says nothing more.
    #[error("unwrap failed")]
    UnwrapFailed,

    /// What was given to unwrap is not a wrapped key in this cluster's
    /// format (data, or a key wrapped by something else).
    #[error("not a wrapped key: unwrap takes only what wrap produced")]
    NotAWrappedKey,

    /// The wrapped key was made with another mechanism than the one named.
    #[error("the key was wrapped with {0}")]
    WrappedWithOther(&'static str),

    /// An RSA-OAEP label that the wrapped-key format reserves.
    #[error(
        "rsa-oaep labels beginning with \"hsm-cluster wrapped key\" are reserved for wrapped keys"
    )]
    ReservedLabel,

    /// A new key pair failed its pairwise consistency test (FIPS 140-3): the
    /// module must stop serving cryptography.
    #[error("the pairwise consistency test of a new {0} key failed")]
    PairwiseInconsistent(KeySpec),

    /// The underlying crypto library refused an operation that the checks
    /// before it had accepted. Not expected to happen; names the step.
    #[error("crypto library failure in {0}")]
    Internal(&'static str),
}

fn found_suffix(found: &Option<KeySpec>) -> String {
    match found {
        Some(spec) => format!(" (found {spec})"),
        None => String::new(),
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;
