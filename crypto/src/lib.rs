//! Key generation and every cryptographic operation the HSM serves, as a
//! pure library: no IO, no network, no async, no global state beyond the
//! crypto library's DRBG.
//!
//! The node calls it with plaintext key material it has just unwrapped in
//! memory. The flow is:
//!
//! 1. [`generate`] or [`import`] a [`KeyMaterial`]: the key's spec, its
//!    secret in a canonical encoding (raw bytes for AES and generic secrets,
//!    PKCS#8 v1 DER for private keys) and, for pairs, its [`PublicKey`]
//!    (SubjectPublicKeyInfo DER, exportable as PEM). The node wraps the
//!    secret and stores it.
//! 2. [`LoadedKey::load`] parses material once into the crypto library's
//!    objects; the node may cache loaded keys.
//! 3. Operations are methods on [`LoadedKey`] (`sign`, `verify`, `encrypt`,
//!    `decrypt`, `wrap_key`, `unwrap_key`, `derive`) and on [`PublicKey`] (`verify`,
//!    `encrypt`, `wrap_key`), each taking a mechanism enum from [`mechanism`];
//!    [`digest()`] and [`random_bytes`] need no key.
//!
//! The cryptography is AWS-LC (through `aws-lc-rs`), except AES-192 key wrap
//! with padding, which AWS-LC's Rust API lacks and RustCrypto's `aes-kw`
//! does, and BLAKE3. See `docs/crypto.md` for the choice.
//!
//! # Invariants
//!
//! - Every mechanism is checked against the key type before use; a
//!   mismatch is [`CryptoError::MechanismMismatch`], never a panic or a
//!   library error.
//! - Nothing reachable from caller input panics; every failure is a
//!   [`CryptoError`] value. Signatures that do not verify are `Ok(false)`.
//! - Secrets are held in zeroizing buffers (or AWS-LC allocations, which
//!   AWS-LC overwrites on free); `Debug` of [`KeyMaterial`] and
//!   [`LoadedKey`] never shows them; no error message contains key bytes.
//! - Wrapped keys are in one format of this crate's (`wrap`), apart from
//!   data encryption: a wrapped key never decrypts as data, data never
//!   unwraps as a key, and the key's carried attributes are bound to it.
//! - Imported and unwrapped material is parsed, checked against the spec
//!   the caller gave, and re-encoded canonically.
#![deny(unsafe_code)]

mod agree;
mod cipher;
mod digest;
mod encoding;
mod error;
mod keys;
mod loaded;
#[allow(unsafe_code)]
mod rsa_raw;
pub mod self_test;
mod sign;
mod wrap;

pub use agree::{BLAKE3_DERIVE_CONTEXT, MAX_DERIVE_CONTEXT_LEN};
pub use cipher::{AES_GCM_IV_LEN, AES_GCM_TAG_LEN};
pub use digest::{digest, random_bytes, MAX_RANDOM_LEN};
pub use error::{CryptoError, Result};
pub use hsm_proto::{mechanism, KeySpec};
pub use keys::{generate, import, KeyMaterial, PublicKey};
pub use loaded::LoadedKey;
pub use mechanism::{
    DeriveMechanism, DigestAlgorithm, EncryptMechanism, SignMechanism, WrapMechanism,
};
pub use wrap::{
    wrapping_subkey, WrappedKey, RESERVED_OAEP_LABEL_PREFIX, WRAPPED_KEY_MAGIC, WRAPPED_KEY_VERSION,
};
