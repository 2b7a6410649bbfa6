//! Signatures and MACs: RSA PKCS#1 v1.5 and PSS, ECDSA, Ed25519, HMAC;
//! the RSA and ECDSA ones also over a hash the caller computed, and RSA
//! PKCS#1 v1.5 padding over the caller's bytes.

use crate::error::{CryptoError, Result};
use crate::keys::PublicKey;
use crate::loaded::{Curve, Inner, LoadedKey};
use crate::mechanism::SignMechanism;
use aws_lc_rs::signature::{self, RsaEncoding, VerificationAlgorithm};
use aws_lc_rs::{digest, hmac, rand::SystemRandom};
use hsm_proto::KeySpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha384 => hmac::HMAC_SHA384,
            Hash::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    RsaPkcs1(Hash),
    RsaPss(Hash),
    Ecdsa(Hash),
    Ed25519,
    Hmac(Hash),
    /// ECDSA over a hash the caller computed.
    EcdsaPrehashed,
    /// PKCS#1 v1.5 padding over the caller's bytes.
    RsaPkcs1Raw,
    /// PSS over a hash the caller computed.
    RsaPssPrehashed(Hash),
}

fn kind(mechanism: SignMechanism) -> Kind {
    use SignMechanism as M;
    match mechanism {
        M::RsaPkcs1v15Sha256 => Kind::RsaPkcs1(Hash::Sha256),
        M::RsaPkcs1v15Sha384 => Kind::RsaPkcs1(Hash::Sha384),
        M::RsaPkcs1v15Sha512 => Kind::RsaPkcs1(Hash::Sha512),
        M::RsaPssSha256 => Kind::RsaPss(Hash::Sha256),
        M::RsaPssSha384 => Kind::RsaPss(Hash::Sha384),
        M::RsaPssSha512 => Kind::RsaPss(Hash::Sha512),
        M::EcdsaSha256 => Kind::Ecdsa(Hash::Sha256),
        M::EcdsaSha384 => Kind::Ecdsa(Hash::Sha384),
        M::Ed25519 => Kind::Ed25519,
        M::HmacSha256 => Kind::Hmac(Hash::Sha256),
        M::HmacSha384 => Kind::Hmac(Hash::Sha384),
        M::HmacSha512 => Kind::Hmac(Hash::Sha512),
        M::EcdsaPrehashed => Kind::EcdsaPrehashed,
        M::RsaPkcs1v15Raw => Kind::RsaPkcs1Raw,
        M::RsaPssSha256Prehashed => Kind::RsaPssPrehashed(Hash::Sha256),
        M::RsaPssSha384Prehashed => Kind::RsaPssPrehashed(Hash::Sha384),
        M::RsaPssSha512Prehashed => Kind::RsaPssPrehashed(Hash::Sha512),
    }
}

/// The DER prefix of a PKCS#1 `DigestInfo` for each hash (RFC 8017
/// §9.2, note 1), followed by the hash itself.
const DIGEST_INFO_PREFIXES: [(Hash, [u8; 19]); 3] = [
    (
        Hash::Sha256,
        [
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
    ),
    (
        Hash::Sha384,
        [
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
    ),
    (
        Hash::Sha512,
        [
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    ),
];

/// The hash a `DigestInfo` of SHA-256, SHA-384 or SHA-512 carries, as a
/// digest of its algorithm; `None` for any other input.
fn digest_info(input: &[u8]) -> Option<(Hash, digest::Digest)> {
    DIGEST_INFO_PREFIXES.iter().find_map(|(hash, prefix)| {
        let value = input.strip_prefix(&prefix[..])?;
        let digest = prehashed(*hash, value).ok()?;
        Some((*hash, digest))
    })
}

/// A caller's hash as a digest of `hash`, refused unless it is that long.
fn prehashed(hash: Hash, value: &[u8]) -> Result<digest::Digest> {
    let allowed = match hash {
        Hash::Sha256 => "32 (sha-256)",
        Hash::Sha384 => "48 (sha-384)",
        Hash::Sha512 => "64 (sha-512)",
    };
    if value.len() != hash.digest().output_len() {
        return Err(CryptoError::BadLength {
            what: "hash",
            len: value.len(),
            allowed,
        });
    }
    digest::Digest::import_less_safe(value, hash.digest())
        .map_err(|_| CryptoError::Internal("import hash"))
}

/// The RSA encoding and caller's digest for a prehashed RSA kind; `None`
/// for raw PKCS#1 v1.5 over bytes that are not a SHA-2 DigestInfo (signed
/// by [`crate::rsa_raw`]).
fn rsa_prehashed(kind: Kind, input: &[u8]) -> Result<Option<(Kind, digest::Digest)>> {
    Ok(match kind {
        Kind::RsaPkcs1Raw => {
            digest_info(input).map(|(hash, digest)| (Kind::RsaPkcs1(hash), digest))
        }
        Kind::RsaPssPrehashed(hash) => Some((Kind::RsaPss(hash), prehashed(hash, input)?)),
        _ => None,
    })
}

fn rsa_signing(kind: Kind) -> Option<&'static dyn RsaEncoding> {
    Some(match kind {
        Kind::RsaPkcs1(Hash::Sha256) => &signature::RSA_PKCS1_SHA256,
        Kind::RsaPkcs1(Hash::Sha384) => &signature::RSA_PKCS1_SHA384,
        Kind::RsaPkcs1(Hash::Sha512) => &signature::RSA_PKCS1_SHA512,
        Kind::RsaPss(Hash::Sha256) => &signature::RSA_PSS_SHA256,
        Kind::RsaPss(Hash::Sha384) => &signature::RSA_PSS_SHA384,
        Kind::RsaPss(Hash::Sha512) => &signature::RSA_PSS_SHA512,
        _ => return None,
    })
}

fn rsa_verifying(kind: Kind) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match kind {
        Kind::RsaPkcs1(Hash::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
        Kind::RsaPkcs1(Hash::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
        Kind::RsaPkcs1(Hash::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
        Kind::RsaPss(Hash::Sha256) => &signature::RSA_PSS_2048_8192_SHA256,
        Kind::RsaPss(Hash::Sha384) => &signature::RSA_PSS_2048_8192_SHA384,
        Kind::RsaPss(Hash::Sha512) => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn mismatch(mechanism: SignMechanism, spec: KeySpec) -> CryptoError {
    CryptoError::MechanismMismatch {
        mechanism: mechanism.name(),
        spec,
    }
}

/// The value ECDSA signs for `hash` of `message` on `curve`, as a digest of
/// the curve's native hash: FIPS 186-4 §6.4 uses the leftmost bits of the
/// hash, as many as the order has, so a longer hash is truncated and a
/// shorter one is the same integer when zero-padded on the left. All three
/// curves have orders of exactly 256 or 384 bits. `None` when `hash` is the
/// native one (sign the message directly).
fn ecdsa_digest(curve: Curve, hash: Hash, message: &[u8]) -> Result<Option<digest::Digest>> {
    if hash.digest() == curve.native_digest() {
        return Ok(None);
    }
    let computed = digest::digest(hash.digest(), message);
    ecdsa_value(curve, computed.as_ref()).map(Some)
}

/// Shortest and longest caller's hash ECDSA takes: SHA-1 to SHA-512.
const ECDSA_HASH_LEN: std::ops::RangeInclusive<usize> = 20..=64;

/// A caller's hash for [`SignMechanism::EcdsaPrehashed`], as
/// [`ecdsa_value`] makes it, refused outside [`ECDSA_HASH_LEN`].
fn ecdsa_prehashed(curve: Curve, hash: &[u8]) -> Result<digest::Digest> {
    if !ECDSA_HASH_LEN.contains(&hash.len()) {
        return Err(CryptoError::BadLength {
            what: "hash",
            len: hash.len(),
            allowed: "20 to 64",
        });
    }
    ecdsa_value(curve, hash)
}

/// `computed` (a hash of any length) as the value ECDSA signs on `curve`,
/// in a digest of the curve's native hash (see [`ecdsa_digest`]).
fn ecdsa_value(curve: Curve, computed: &[u8]) -> Result<digest::Digest> {
    let native = curve.native_digest();
    let n = native.output_len();
    let internal = || CryptoError::Internal("ecdsa hash");
    let mut buf = [0u8; digest::MAX_OUTPUT_LEN];
    let value = buf.get_mut(..n).ok_or_else(internal)?;
    match computed.get(..n) {
        // Longer hash: its leftmost n bytes.
        Some(head) => value.copy_from_slice(head),
        // Shorter hash: the same integer in n bytes.
        None => {
            let start = n.checked_sub(computed.len()).ok_or_else(internal)?;
            value
                .get_mut(start..)
                .ok_or_else(internal)?
                .copy_from_slice(computed);
        }
    }
    digest::Digest::import_less_safe(value, native).map_err(|_| CryptoError::Internal("ecdsa hash"))
}

impl LoadedKey {
    /// Signs `message` (or computes its MAC) with this key.
    ///
    /// Signatures are deterministic for PKCS#1 v1.5, Ed25519 and HMAC, and
    /// randomised for PSS and ECDSA. ECDSA signatures are DER.
    ///
    /// # Errors
    /// [`CryptoError::MechanismMismatch`] if the mechanism does not apply
    /// to this key type (see [`SignMechanism`]); [`CryptoError::Internal`]
    /// if the library fails.
    pub fn sign(&self, mechanism: SignMechanism, message: &[u8]) -> Result<Vec<u8>> {
        let kind = kind(mechanism);
        let failed = |_| CryptoError::Internal("sign");
        match (&self.inner, kind) {
            (Inner::Rsa { pair, .. }, Kind::RsaPkcs1(_) | Kind::RsaPss(_)) => {
                let encoding = rsa_signing(kind).ok_or(mismatch(mechanism, self.spec()))?;
                let mut out = vec![0u8; pair.public_modulus_len()];
                pair.sign(encoding, &SystemRandom::new(), message, &mut out)
                    .map_err(failed)?;
                Ok(out)
            }
            (Inner::Rsa { pair, .. }, Kind::RsaPkcs1Raw | Kind::RsaPssPrehashed(_)) => {
                let Some((padded, digest)) = rsa_prehashed(kind, message)? else {
                    return crate::rsa_raw::sign(self.material.secret(), message);
                };
                let encoding = rsa_signing(padded).ok_or(mismatch(mechanism, self.spec()))?;
                let mut out = vec![0u8; pair.public_modulus_len()];
                pair.sign_digest(encoding, &digest, &mut out)
                    .map_err(failed)?;
                Ok(out)
            }
            (Inner::Ec { curve, pair }, Kind::EcdsaPrehashed) => {
                let digest = ecdsa_prehashed(*curve, message)?;
                Ok(pair.sign_digest(&digest).map_err(failed)?.as_ref().to_vec())
            }
            (Inner::Ec { curve, pair }, Kind::Ecdsa(hash)) => {
                let sig = match ecdsa_digest(*curve, hash, message)? {
                    None => pair.sign(&SystemRandom::new(), message),
                    Some(digest) => pair.sign_digest(&digest),
                }
                .map_err(failed)?;
                Ok(sig.as_ref().to_vec())
            }
            (Inner::Ed25519(pair), Kind::Ed25519) => {
                Ok(pair.try_sign(message).map_err(failed)?.as_ref().to_vec())
            }
            (Inner::Secret, Kind::Hmac(hash)) => {
                let key = hmac::Key::new(hash.hmac(), self.material.secret());
                Ok(hmac::sign(&key, message).as_ref().to_vec())
            }
            _ => Err(mismatch(mechanism, self.spec())),
        }
    }

    /// Checks a signature or MAC made with this key (or its public half).
    ///
    /// Returns `Ok(false)` for a signature that does not verify, including
    /// one of the wrong length or malformed DER. HMAC tags are compared in
    /// constant time.
    ///
    /// # Errors
    /// [`CryptoError::MechanismMismatch`] if the mechanism does not apply
    /// to this key type.
    pub fn verify(&self, mechanism: SignMechanism, message: &[u8], sig: &[u8]) -> Result<bool> {
        match (&self.inner, kind(mechanism)) {
            (Inner::Secret, Kind::Hmac(hash)) => {
                let key = hmac::Key::new(hash.hmac(), self.material.secret());
                Ok(hmac::verify(&key, message, sig).is_ok())
            }
            _ => match self.public_key() {
                Some(public) => public.verify(mechanism, message, sig),
                None => Err(mismatch(mechanism, self.spec())),
            },
        }
    }
}

impl PublicKey {
    /// Checks a signature made by the private half of this key.
    ///
    /// Returns `Ok(false)` for a signature that does not verify, including
    /// one of the wrong length or malformed DER.
    ///
    /// # Errors
    /// [`CryptoError::MechanismMismatch`] if the mechanism does not apply
    /// to this key type (HMAC never applies to a public key).
    pub fn verify(&self, mechanism: SignMechanism, message: &[u8], sig: &[u8]) -> Result<bool> {
        let kind = kind(mechanism);
        let der = self.der();
        let ok = match (self.spec(), kind) {
            (KeySpec::Rsa { .. }, Kind::RsaPkcs1(_) | Kind::RsaPss(_)) => {
                let alg = rsa_verifying(kind).ok_or(mismatch(mechanism, self.spec()))?;
                signature::UnparsedPublicKey::new(alg, der)
                    .verify(message, sig)
                    .is_ok()
            }
            (KeySpec::Rsa { .. }, Kind::RsaPkcs1Raw | Kind::RsaPssPrehashed(_)) => {
                let Some((padded, digest)) = rsa_prehashed(kind, message)? else {
                    return crate::rsa_raw::verify(der, message, sig);
                };
                let alg = rsa_verifying(padded).ok_or(mismatch(mechanism, self.spec()))?;
                signature::UnparsedPublicKey::new(alg, der)
                    .verify_digest(&digest, sig)
                    .is_ok()
            }
            (KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::EcSecp256k1, Kind::EcdsaPrehashed) => {
                let curve = Curve::of(self.spec()).ok_or(mismatch(mechanism, self.spec()))?;
                let digest = ecdsa_prehashed(curve, message)?;
                signature::UnparsedPublicKey::new(curve.verifying(), der)
                    .verify_digest(&digest, sig)
                    .is_ok()
            }
            (KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::EcSecp256k1, Kind::Ecdsa(hash)) => {
                let curve = Curve::of(self.spec()).ok_or(mismatch(mechanism, self.spec()))?;
                let key = signature::UnparsedPublicKey::new(curve.verifying(), der);
                match ecdsa_digest(curve, hash, message)? {
                    None => key.verify(message, sig).is_ok(),
                    Some(digest) => key.verify_digest(&digest, sig).is_ok(),
                }
            }
            (KeySpec::Ed25519, Kind::Ed25519) => {
                signature::UnparsedPublicKey::new(&signature::ED25519, der)
                    .verify(message, sig)
                    .is_ok()
            }
            _ => return Err(mismatch(mechanism, self.spec())),
        };
        Ok(ok)
    }
}
