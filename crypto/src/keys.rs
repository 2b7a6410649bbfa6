//! Key material as the node stores it, and public keys.

use crate::encoding::{self, Algorithm};
use crate::error::{CryptoError, Result};
use crate::loaded::{Curve, LoadedKey};
use aws_lc_rs::{agreement, rsa, signature};
use hsm_proto::KeySpec;
use std::fmt;
use zeroize::Zeroizing;

/// A key's secret material in its canonical encoding, with its public half.
///
/// The secret is the raw key bytes for AES and generic secrets, and PKCS#8
/// v1 DER for private keys (X25519 as RFC 8410 writes it). It lives in a
/// zeroizing buffer; `Debug` shows only the spec and the public key. This
/// is what the node wraps under the domain key and stores.
///
/// Build one with [`KeyMaterial::generate`] or [`KeyMaterial::import`]
/// (never from unchecked bytes); use it through [`LoadedKey`].
#[derive(Clone)]
pub struct KeyMaterial {
    spec: KeySpec,
    secret: Zeroizing<Vec<u8>>,
    public: Option<PublicKey>,
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("spec", &self.spec)
            .field("secret", &"[redacted]")
            .field("public", &self.public)
            .finish()
    }
}

/// Compares the secrets in constant time (for equal lengths).
impl PartialEq for KeyMaterial {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
            && self.public == other.public
            && aws_lc_rs::constant_time::verify_slices_are_equal(&self.secret, &other.secret)
                .is_ok()
    }
}

impl Eq for KeyMaterial {}

impl KeyMaterial {
    pub(crate) fn new(
        spec: KeySpec,
        secret: Zeroizing<Vec<u8>>,
        public: Option<PublicKey>,
    ) -> Self {
        Self {
            spec,
            secret,
            public,
        }
    }

    /// Generates a new key of `spec`.
    ///
    /// # Errors
    /// [`CryptoError::UnsupportedKeySpec`] for a size the cluster does not
    /// support; [`CryptoError::Internal`] if the library fails.
    pub fn generate(spec: KeySpec) -> Result<Self> {
        LoadedKey::generate(spec).map(LoadedKey::into_material)
    }

    /// [`KeyMaterial::generate`], with the pairwise consistency test made
    /// to fail when `corrupt` ([`LoadedKey::generate_corrupting`]).
    ///
    /// # Errors
    /// As [`KeyMaterial::generate`]; [`CryptoError::PairwiseInconsistent`]
    /// when a key pair fails the test.
    pub fn generate_corrupting(spec: KeySpec, corrupt: bool) -> Result<Self> {
        LoadedKey::generate_corrupting(spec, corrupt).map(LoadedKey::into_material)
    }

    /// Imports plaintext material as a key of `spec`: raw bytes for AES and
    /// generic secrets (exactly the spec's length), unencrypted PKCS#8 DER
    /// (v1 or v2) for private keys. The result is re-encoded canonically.
    ///
    /// # Errors
    /// [`CryptoError::UnsupportedKeySpec`], [`CryptoError::KeySpecMismatch`]
    /// when the material is another type or size, [`CryptoError::BadKey`]
    /// when it does not parse or is inconsistent.
    pub fn import(spec: KeySpec, material: &[u8]) -> Result<Self> {
        LoadedKey::parse(spec, material).map(LoadedKey::into_material)
    }

    /// The key's type and size.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// A public key alone, from SubjectPublicKeyInfo DER (the spec is read
    /// from it): no secret, so it verifies, encrypts and wraps (RSA) and
    /// nothing more ([`LoadedKey::parse_public`]).
    ///
    /// # Errors
    /// As [`PublicKey::from_der`].
    pub fn import_public(der: &[u8]) -> Result<Self> {
        LoadedKey::parse_public(der).map(LoadedKey::into_material)
    }

    /// Whether this is a public key alone (no secret).
    pub fn is_public_only(&self) -> bool {
        self.secret.is_empty() && self.public.is_some()
    }

    /// The secret bytes in their canonical encoding (empty for a public
    /// key alone). Handle with care: this is plaintext key material.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The public half of a key pair; `None` for symmetric keys.
    pub fn public_key(&self) -> Option<&PublicKey> {
        self.public.as_ref()
    }
}

/// A public key: its spec and SubjectPublicKeyInfo DER (RFC 5280), which
/// is what OpenSSL reads and writes as "PUBLIC KEY".
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    spec: KeySpec,
    der: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("spec", &self.spec)
            .field("der_len", &self.der.len())
            .finish()
    }
}

impl PublicKey {
    pub(crate) fn new(spec: KeySpec, der: &[u8]) -> Self {
        Self {
            spec,
            der: der.to_vec(),
        }
    }

    /// Parses and checks a SubjectPublicKeyInfo DER document; the spec is
    /// read from it.
    ///
    /// # Errors
    /// [`CryptoError::BadKey`] if it does not parse, names an algorithm or
    /// curve the cluster does not support, or is not a valid point or RSA
    /// key; [`CryptoError::UnsupportedKeySpec`] for an RSA modulus other
    /// than 2048, 3072 or 4096 bits; [`CryptoError::BadLength`] for a
    /// document over 64 KiB.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let (algorithm, key) = encoding::inspect_spki(der)?;
        let bad = |what| move |_| CryptoError::BadKey(what);
        let spec = match algorithm {
            Algorithm::Rsa => {
                let public = rsa::PublicEncryptingKey::from_der(der)
                    .map_err(bad("rsa public key rejected"))?;
                let bits = u16::try_from(public.key_size_bits())
                    .map_err(|_| CryptoError::BadKey("rsa public key too large"))?;
                let spec = KeySpec::Rsa { bits };
                if !spec.is_valid() {
                    return Err(CryptoError::UnsupportedKeySpec(spec));
                }
                spec
            }
            Algorithm::EcP256 | Algorithm::EcP384 | Algorithm::EcSecp256k1 => {
                let spec = match algorithm {
                    Algorithm::EcP256 => KeySpec::EcP256,
                    Algorithm::EcP384 => KeySpec::EcP384,
                    _ => KeySpec::EcSecp256k1,
                };
                let curve = Curve::of(spec).ok_or(CryptoError::UnsupportedKeySpec(spec))?;
                signature::UnparsedPublicKey::new(curve.verifying(), der)
                    .parse()
                    .map_err(bad("ec public key rejected"))?;
                spec
            }
            Algorithm::Ed25519 => {
                signature::UnparsedPublicKey::new(&signature::ED25519, der)
                    .parse()
                    .map_err(bad("ed25519 public key rejected"))?;
                KeySpec::Ed25519
            }
            Algorithm::X25519 => {
                if key.len() != encoding::X25519_KEY_LEN {
                    return Err(CryptoError::BadKey("x25519 public key is not 32 bytes"));
                }
                agreement::ParsedPublicKey::try_from(agreement::UnparsedPublicKey::new(
                    &agreement::X25519,
                    key,
                ))
                .map_err(bad("x25519 public key rejected"))?;
                KeySpec::X25519
            }
        };
        Ok(Self::new(spec, der))
    }

    /// Parses a PEM "PUBLIC KEY" block (the first one in `text`).
    ///
    /// # Errors
    /// [`CryptoError::BadKey`] if there is no such block or its base64 is
    /// bad; otherwise as [`PublicKey::from_der`].
    pub fn from_pem(text: &str) -> Result<Self> {
        Self::from_der(&encoding::public_key_from_pem(text)?)
    }

    /// The key's type and size.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// SubjectPublicKeyInfo DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// PEM ("-----BEGIN PUBLIC KEY-----"), 64 base64 characters a line.
    pub fn to_pem(&self) -> String {
        encoding::public_key_pem(&self.der)
    }

    /// The raw 32-byte key of an X25519 public key.
    pub(crate) fn raw_x25519(&self) -> Option<&[u8]> {
        if self.spec != KeySpec::X25519 {
            return None;
        }
        encoding::inspect_spki(&self.der).ok().map(|(_, key)| key)
    }
}

/// Generates a new key of `spec`; see [`KeyMaterial::generate`].
///
/// # Errors
/// As [`KeyMaterial::generate`].
pub fn generate(spec: KeySpec) -> Result<KeyMaterial> {
    KeyMaterial::generate(spec)
}

/// Imports plaintext key material; see [`KeyMaterial::import`].
///
/// # Errors
/// As [`KeyMaterial::import`].
pub fn import(spec: KeySpec, material: &[u8]) -> Result<KeyMaterial> {
    KeyMaterial::import(spec, material)
}
