//! Parsing key material into ready-to-use library objects, and generating
//! new keys.

use crate::encoding::{self, Algorithm};
use crate::error::{CryptoError, Result};
use crate::keys::{KeyMaterial, PublicKey};
use crate::mechanism::{DeriveMechanism, SignMechanism};
use aws_lc_rs::encoding::{AsBigEndian, AsDer, Curve25519SeedBin, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use aws_lc_rs::{aead, agreement, digest, rsa};
use hsm_proto::KeySpec;
use std::fmt;
use zeroize::Zeroizing;

/// An elliptic curve used for ECDSA (and, except secp256k1, ECDH).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
    Secp256k1,
}

impl Curve {
    pub(crate) fn of(spec: KeySpec) -> Option<Curve> {
        match spec {
            KeySpec::EcP256 => Some(Curve::P256),
            KeySpec::EcP384 => Some(Curve::P384),
            KeySpec::EcSecp256k1 => Some(Curve::Secp256k1),
            _ => None,
        }
    }

    /// The signing algorithm whose hash matches the curve's order length;
    /// see `sign::ecdsa_digest` for the other pairings.
    pub(crate) fn signing(self) -> &'static signature::EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            Curve::Secp256k1 => &signature::ECDSA_P256K1_SHA256_ASN1_SIGNING,
        }
    }

    /// The verification counterpart of [`Curve::signing`].
    pub(crate) fn verifying(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1,
            Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1,
            Curve::Secp256k1 => &signature::ECDSA_P256K1_SHA256_ASN1,
        }
    }

    /// The hash whose output is as long as the curve order.
    pub(crate) fn native_digest(self) -> &'static digest::Algorithm {
        match self {
            Curve::P256 | Curve::Secp256k1 => &digest::SHA256,
            Curve::P384 => &digest::SHA384,
        }
    }

    /// The ECDH algorithm, where the library has one.
    pub(crate) fn agreement(self) -> Option<&'static agreement::Algorithm> {
        match self {
            Curve::P256 => Some(&agreement::ECDH_P256),
            Curve::P384 => Some(&agreement::ECDH_P384),
            Curve::Secp256k1 => None,
        }
    }
}

/// The parsed form of a key, ready for operations.
pub(crate) enum Inner {
    Aes(aead::LessSafeKey),
    /// HMAC keys are built per operation from the material (one per hash).
    Secret,
    Rsa {
        pair: rsa::KeyPair,
        decrypt: rsa::OaepPrivateDecryptingKey,
    },
    Ec {
        curve: Curve,
        pair: EcdsaKeyPair,
    },
    Ed25519(Ed25519KeyPair),
    X25519(agreement::PrivateKey),
    /// A public key alone: the material's public key is all there is.
    Public,
}

/// Key material parsed and checked, ready for any number of operations.
///
/// Holds the canonical [`KeyMaterial`] and the crypto library's objects
/// built from it, so repeated operations skip parsing (and RSA's key
/// check). Library objects live in AWS-LC allocations, which AWS-LC
/// overwrites when it frees them; the material is zeroized on drop.
/// `Debug` shows only the spec.
pub struct LoadedKey {
    pub(crate) material: KeyMaterial,
    pub(crate) inner: Inner,
}

impl fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedKey")
            .field("spec", &self.material.spec())
            .finish_non_exhaustive()
    }
}

fn internal(step: &'static str) -> impl Fn(aws_lc_rs::error::Unspecified) -> CryptoError {
    move |_| CryptoError::Internal(step)
}

fn zeroizing(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(bytes.to_vec())
}

fn aes_algorithm(len: usize) -> Option<&'static aead::Algorithm> {
    match len {
        16 => Some(&aead::AES_128_GCM),
        24 => Some(&aead::AES_192_GCM),
        32 => Some(&aead::AES_256_GCM),
        _ => None,
    }
}

fn check_spec(spec: KeySpec) -> Result<()> {
    if spec.is_valid() {
        Ok(())
    } else {
        Err(CryptoError::UnsupportedKeySpec(spec))
    }
}

impl LoadedKey {
    /// Generates a new key of `spec` with the library's DRBG.
    ///
    /// # Errors
    /// [`CryptoError::UnsupportedKeySpec`] for a size the cluster does not
    /// support; [`CryptoError::Internal`] if the library fails.
    pub fn generate(spec: KeySpec) -> Result<Self> {
        Self::generate_corrupting(spec, false)
    }

    /// [`LoadedKey::generate`], with the pairwise consistency test's check
    /// made to fail when `corrupt` (a test's way to show what a failure
    /// does, as [`crate::self_test::run_corrupting`] for known answers).
    ///
    /// # Errors
    /// As [`LoadedKey::generate`]; [`CryptoError::PairwiseInconsistent`]
    /// when a key pair fails the test.
    pub fn generate_corrupting(spec: KeySpec, corrupt: bool) -> Result<Self> {
        let key = Self::make(spec)?;
        key.pairwise_consistent(corrupt)?;
        Ok(key)
    }

    /// FIPS 140-3's pairwise consistency test of a new key pair: a
    /// signature made with its private half verifies with its public half
    /// (RSA, ECDSA, Ed25519); an X25519 agreement with a fresh peer gives
    /// both sides one secret. Symmetric keys have nothing to test.
    /// `corrupt` checks against another message (or secret), so a key
    /// pair fails.
    fn pairwise_consistent(&self, corrupt: bool) -> Result<()> {
        const MESSAGE: &[u8] = b"hsm-cluster pairwise consistency test";
        const OTHER: &[u8] = b"hsm-cluster pairwise consistency tesT";
        let checked = if corrupt { OTHER } else { MESSAGE };
        let spec = self.spec();
        let failed = || CryptoError::PairwiseInconsistent(spec);
        let mechanism = match spec {
            KeySpec::Rsa { .. } => SignMechanism::RsaPssSha256,
            KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::EcSecp256k1 => SignMechanism::EcdsaSha256,
            KeySpec::Ed25519 => SignMechanism::Ed25519,
            KeySpec::X25519 => {
                let peer = Self::make(KeySpec::X25519)?;
                let (ours, theirs) = (
                    self.public_key().ok_or_else(failed)?,
                    peer.public_key().ok_or_else(failed)?,
                );
                let out = KeySpec::GenericSecret { bytes: 32 };
                let a = self.derive(DeriveMechanism::EcdhBlake3, theirs, MESSAGE, out)?;
                let b = peer.derive(DeriveMechanism::EcdhBlake3, ours, checked, out)?;
                return if a.secret() == b.secret() {
                    Ok(())
                } else {
                    Err(failed())
                };
            }
            KeySpec::Aes { .. } | KeySpec::GenericSecret { .. } => return Ok(()),
        };
        let public = self.public_key().ok_or_else(failed)?;
        let signature = self.sign(mechanism, MESSAGE)?;
        if public.verify(mechanism, checked, &signature)? {
            Ok(())
        } else {
            Err(failed())
        }
    }

    /// A new key of `spec`, not yet tested.
    fn make(spec: KeySpec) -> Result<Self> {
        check_spec(spec)?;
        match spec {
            KeySpec::Aes { bits } => {
                let mut key = Zeroizing::new(vec![0u8; usize::from(bits / 8)]);
                aws_lc_rs::rand::fill(&mut key).map_err(internal("random"))?;
                Self::parse(spec, &key)
            }
            KeySpec::GenericSecret { bytes } => {
                let mut key = Zeroizing::new(vec![0u8; usize::from(bytes)]);
                aws_lc_rs::rand::fill(&mut key).map_err(internal("random"))?;
                Self::parse(spec, &key)
            }
            KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::EcSecp256k1 => {
                let curve = Curve::of(spec).ok_or(CryptoError::UnsupportedKeySpec(spec))?;
                let pair =
                    EcdsaKeyPair::generate(curve.signing()).map_err(internal("ec keygen"))?;
                Self::from_ec(spec, curve, pair)
            }
            KeySpec::Ed25519 => {
                let pair = Ed25519KeyPair::generate().map_err(internal("ed25519 keygen"))?;
                Self::from_ed25519(pair)
            }
            KeySpec::X25519 => {
                let key = agreement::PrivateKey::generate(&agreement::X25519)
                    .map_err(internal("x25519 keygen"))?;
                Self::from_x25519(key)
            }
            KeySpec::Rsa { bits } => {
                let size = match bits {
                    2048 => rsa::KeySize::Rsa2048,
                    3072 => rsa::KeySize::Rsa3072,
                    _ => rsa::KeySize::Rsa4096,
                };
                let pair = rsa::KeyPair::generate(size).map_err(internal("rsa keygen"))?;
                let der: Pkcs8V1Der<'static> = pair.as_der().map_err(internal("rsa pkcs8"))?;
                Self::from_rsa(spec, pair, zeroizing(der.as_ref()))
            }
        }
    }

    /// Parses and checks `material` (raw bytes for AES and generic secrets,
    /// PKCS#8 DER v1 or v2 for private keys) as a key of `spec`. The
    /// material of the result is re-encoded canonically (PKCS#8 v1 as the
    /// library writes it) and carries the public key.
    ///
    /// # Errors
    /// [`CryptoError::UnsupportedKeySpec`] for an unsupported size;
    /// [`CryptoError::KeySpecMismatch`] if the material is of another type
    /// or size; [`CryptoError::BadKey`] if it does not parse or fails the
    /// library's consistency checks.
    pub fn parse(spec: KeySpec, material: &[u8]) -> Result<Self> {
        check_spec(spec)?;
        let mismatch = |found| CryptoError::KeySpecMismatch {
            expected: spec,
            found,
        };
        match spec {
            KeySpec::Aes { bits } => {
                if material.len() != usize::from(bits / 8) {
                    return Err(mismatch(None));
                }
                let alg = aes_algorithm(material.len()).ok_or(mismatch(None))?;
                let key = aead::UnboundKey::new(alg, material).map_err(internal("aes key"))?;
                Ok(Self {
                    material: KeyMaterial::new(spec, zeroizing(material), None),
                    inner: Inner::Aes(aead::LessSafeKey::new(key)),
                })
            }
            KeySpec::GenericSecret { bytes } => {
                if material.len() != usize::from(bytes) {
                    return Err(mismatch(None));
                }
                Ok(Self {
                    material: KeyMaterial::new(spec, zeroizing(material), None),
                    inner: Inner::Secret,
                })
            }
            _ => Self::parse_pkcs8(spec, material),
        }
    }

    fn parse_pkcs8(spec: KeySpec, der: &[u8]) -> Result<Self> {
        let (algorithm, info) = encoding::inspect_pkcs8(der)?;
        let mismatch = |found| CryptoError::KeySpecMismatch {
            expected: spec,
            found,
        };
        let rsa_spec = |pair: &rsa::KeyPair| {
            u16::try_from(pair.public_modulus_len() * 8)
                .ok()
                .map(|bits| KeySpec::Rsa { bits })
        };
        let found = match algorithm {
            Algorithm::Rsa => {
                let pair = rsa::KeyPair::from_pkcs8(der)
                    .map_err(|_| CryptoError::BadKey("rsa private key rejected"))?;
                let found = rsa_spec(&pair);
                if found != Some(spec) {
                    return Err(mismatch(found));
                }
                let canonical: Pkcs8V1Der<'static> =
                    pair.as_der().map_err(internal("rsa pkcs8"))?;
                return Self::from_rsa(spec, pair, zeroizing(canonical.as_ref()));
            }
            Algorithm::EcP256 => KeySpec::EcP256,
            Algorithm::EcP384 => KeySpec::EcP384,
            Algorithm::EcSecp256k1 => KeySpec::EcSecp256k1,
            Algorithm::Ed25519 => KeySpec::Ed25519,
            Algorithm::X25519 => KeySpec::X25519,
        };
        if found != spec {
            return Err(mismatch(Some(found)));
        }
        if let Some(curve) = Curve::of(spec) {
            let pair = EcdsaKeyPair::from_pkcs8(curve.signing(), der)
                .map_err(|_| CryptoError::BadKey("ec private key rejected"))?;
            return Self::from_ec(spec, curve, pair);
        }
        if spec == KeySpec::Ed25519 {
            let pair = Ed25519KeyPair::from_pkcs8(der)
                .map_err(|_| CryptoError::BadKey("ed25519 private key rejected"))?;
            return Self::from_ed25519(pair);
        }
        // X25519: the library has no PKCS#8 parser for it.
        let scalar = encoding::x25519_private_from_pkcs8_field(info.private_key)?;
        let key = agreement::PrivateKey::from_private_key(&agreement::X25519, scalar)
            .map_err(|_| CryptoError::BadKey("x25519 private key rejected"))?;
        let loaded = Self::from_x25519(key)?;
        if let Some(public) = info.public_key {
            let ours = loaded.material.public_key().and_then(PublicKey::raw_x25519);
            if ours != Some(public) {
                return Err(CryptoError::BadKey("x25519 public key does not match"));
            }
        }
        Ok(loaded)
    }

    fn from_rsa(spec: KeySpec, pair: rsa::KeyPair, pkcs8: Zeroizing<Vec<u8>>) -> Result<Self> {
        let public: PublicKeyX509Der<'static> = pair
            .public_key()
            .as_der()
            .map_err(internal("rsa public key"))?;
        let decrypt = rsa::PrivateDecryptingKey::from_pkcs8(&pkcs8)
            .map_err(|_| CryptoError::BadKey("rsa private key rejected"))?;
        let decrypt =
            rsa::OaepPrivateDecryptingKey::new(decrypt).map_err(internal("rsa oaep key"))?;
        Ok(Self {
            material: KeyMaterial::new(spec, pkcs8, Some(PublicKey::new(spec, public.as_ref()))),
            inner: Inner::Rsa { pair, decrypt },
        })
    }

    fn from_ec(spec: KeySpec, curve: Curve, pair: EcdsaKeyPair) -> Result<Self> {
        let pkcs8 = pair.to_pkcs8v1().map_err(internal("ec pkcs8"))?;
        let public: PublicKeyX509Der<'static> = pair
            .public_key()
            .as_der()
            .map_err(internal("ec public key"))?;
        Ok(Self {
            material: KeyMaterial::new(
                spec,
                zeroizing(pkcs8.as_ref()),
                Some(PublicKey::new(spec, public.as_ref())),
            ),
            inner: Inner::Ec { curve, pair },
        })
    }

    fn from_ed25519(pair: Ed25519KeyPair) -> Result<Self> {
        let spec = KeySpec::Ed25519;
        let pkcs8 = pair.to_pkcs8v1().map_err(internal("ed25519 pkcs8"))?;
        let public: PublicKeyX509Der<'static> = pair
            .public_key()
            .as_der()
            .map_err(internal("ed25519 public key"))?;
        Ok(Self {
            material: KeyMaterial::new(
                spec,
                zeroizing(pkcs8.as_ref()),
                Some(PublicKey::new(spec, public.as_ref())),
            ),
            inner: Inner::Ed25519(pair),
        })
    }

    fn from_x25519(key: agreement::PrivateKey) -> Result<Self> {
        let spec = KeySpec::X25519;
        let seed: Curve25519SeedBin<'static> =
            key.as_be_bytes().map_err(internal("x25519 private key"))?;
        let public = key
            .compute_public_key()
            .map_err(internal("x25519 public key"))?;
        let public = encoding::x25519_spki(public.as_ref());
        Ok(Self {
            material: KeyMaterial::new(
                spec,
                Zeroizing::new(encoding::x25519_pkcs8(seed.as_ref())),
                Some(PublicKey::new(spec, &public)),
            ),
            inner: Inner::X25519(key),
        })
    }

    /// A public key alone, from SubjectPublicKeyInfo DER: it verifies,
    /// encrypts (RSA-OAEP) and wraps (RSA-OAEP); everything that needs a
    /// private key is [`CryptoError::MechanismMismatch`].
    ///
    /// # Errors
    /// As [`PublicKey::from_der`].
    pub fn parse_public(der: &[u8]) -> Result<Self> {
        let public = PublicKey::from_der(der)?;
        Ok(Self {
            material: KeyMaterial::new(public.spec(), Zeroizing::new(Vec::new()), Some(public)),
            inner: Inner::Public,
        })
    }

    /// Loads stored material (as made by [`KeyMaterial::generate`] or
    /// [`KeyMaterial::import`]) for use, checking it again.
    ///
    /// # Errors
    /// As [`LoadedKey::parse`].
    pub fn load(material: &KeyMaterial) -> Result<Self> {
        match material.public_key() {
            Some(public) if material.is_public_only() => Self::parse_public(public.der()),
            _ => Self::parse(material.spec(), material.secret()),
        }
    }

    /// The spec of the key.
    pub fn spec(&self) -> KeySpec {
        self.material.spec()
    }

    /// The canonical material (to wrap and store).
    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }

    /// Gives up the parsed objects and keeps only the material.
    pub fn into_material(self) -> KeyMaterial {
        self.material
    }

    /// The public half of a key pair; `None` for symmetric keys.
    pub fn public_key(&self) -> Option<&PublicKey> {
        self.material.public_key()
    }
}
