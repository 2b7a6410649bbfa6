//! Wrapping one key's material under another: AES key wrap with padding
//! (RFC 5649), AES-GCM, RSA-OAEP (SHA-256), in this cluster's wrapped-key
//! format.
//!
//! # The wrapped-key format (version 1)
//!
//! ```text
//! "hsmw" || 0x01 || mechanism (1 byte) || header length (u16 BE) || header || body
//! ```
//!
//! The header is the canonical encoding (`hsm_proto::codec`) of the
//! [`CarriedAttributes`]: the wrapped key's type, usages, one-way
//! attributes and provenance. Everything before the body is bound to the
//! body, so unwrap restores those attributes or fails:
//!
//! - **aes-key-wrap-pad**: RFC 5649 under the *wrapping subkey* of the
//!   AES key (below), over `blake3(prefix) || material`, where `prefix`
//!   is everything before the body;
//! - **aes-gcm**: AES-GCM under the wrapping subkey, `iv || ciphertext ||
//!   tag`, with `prefix` as associated data;
//! - **rsa-oaep-sha256**: RSA-OAEP (SHA-256, MGF1-SHA-256) of the material
//!   to the RSA public key with the OAEP label
//!   `"hsm-cluster wrapped key v1" || blake3(prefix)`.
//!
//! The wrapping subkey of an AES key `K` is
//! `blake3::derive_key("hsm-cluster wrapping subkey v1", K)` cut to the
//! length of `K` ([`wrapping_subkey`]). Data encryption uses `K` itself,
//! so a wrapped key never decrypts as data and data never unwraps as a key
//! under the same AES key; for RSA the OAEP labels that begin with
//! [`RESERVED_OAEP_LABEL_PREFIX`] are refused by `encrypt` and `decrypt`.
//! Anyone holding the wrapping key's material can open the format with
//! standard tools (`docs/crypto.md`).

use crate::cipher::{aes_gcm_open, aes_gcm_seal, oaep_decrypt, oaep_encrypt};
use crate::error::{CryptoError, Result};
use crate::keys::{KeyMaterial, PublicKey};
use crate::loaded::{Inner, LoadedKey};
use crate::mechanism::WrapMechanism;
use aws_lc_rs::key_wrap::{self, KeyWrapPadded as _};
use hsm_proto::CarriedAttributes;
use hsm_proto::{KeySpec, MAX_KEY_BLOB_LEN};
use zeroize::Zeroizing;

/// RFC 5649 works on 8-byte semiblocks and adds one.
const SEMIBLOCK: usize = 8;

fn mismatch(mechanism: WrapMechanism, spec: KeySpec) -> CryptoError {
    CryptoError::MechanismMismatch {
        mechanism: mechanism.name(),
        spec,
    }
}

/// AWS-LC's key-wrap key for a 128- or 256-bit KEK (the callers match on
/// the length first).
fn aws_kek(kek: &[u8]) -> std::result::Result<key_wrap::AesKek, aws_lc_rs::error::Unspecified> {
    let cipher = if kek.len() == 16 {
        &key_wrap::AES_128
    } else {
        &key_wrap::AES_256
    };
    key_wrap::AesKek::new(cipher, kek)
}

pub(crate) fn kwp_wrap(kek: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let failed = CryptoError::Internal("aes key wrap");
    let mut out = vec![0u8; data.len().div_ceil(SEMIBLOCK) * SEMIBLOCK + SEMIBLOCK];
    let len = match kek.len() {
        16 | 32 => {
            let kek = aws_kek(kek).map_err(|_| failed.clone())?;
            kek.wrap_with_padding(data, &mut out)
                .map_err(|_| failed)?
                .len()
        }
        24 => {
            // AWS-LC's Rust API has no AES-192 key wrap: RustCrypto's aes-kw.
            let kek = aes_kw::KekAes192::try_from(kek).map_err(|_| failed.clone())?;
            kek.wrap_with_padding(data, &mut out).map_err(|_| failed)?;
            out.len()
        }
        _ => return Err(failed),
    };
    out.truncate(len);
    Ok(out)
}

pub(crate) fn kwp_unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if wrapped.len() < 2 * SEMIBLOCK || wrapped.len() % SEMIBLOCK != 0 {
        return Err(CryptoError::BadLength {
            what: "aes key wrap input",
            len: wrapped.len(),
            allowed: "a multiple of 8, at least 16",
        });
    }
    let mut out = Zeroizing::new(vec![0u8; wrapped.len() - SEMIBLOCK]);
    let len = match kek.len() {
        16 | 32 => {
            let kek = aws_kek(kek).map_err(|_| CryptoError::Internal("aes key wrap"))?;
            kek.unwrap_with_padding(wrapped, &mut out)
                .map_err(|_| CryptoError::UnwrapFailed)?
                .len()
        }
        24 => {
            let kek = aes_kw::KekAes192::try_from(kek)
                .map_err(|_| CryptoError::Internal("aes key wrap"))?;
            kek.unwrap_with_padding(wrapped, &mut out)
                .map_err(|_| CryptoError::UnwrapFailed)?
                .len()
        }
        _ => return Err(CryptoError::Internal("aes key wrap")),
    };
    out.truncate(len);
    Ok(out)
}

/// The first bytes of every wrapped key.
pub const WRAPPED_KEY_MAGIC: &[u8; 4] = b"hsmw";
/// The format version this build writes and reads.
pub const WRAPPED_KEY_VERSION: u8 = 1;
/// OAEP labels beginning with this are the wrapped-key format's own:
/// `encrypt` and `decrypt` refuse them.
pub const RESERVED_OAEP_LABEL_PREFIX: &[u8] = b"hsm-cluster wrapped key";
const OAEP_LABEL: &[u8] = b"hsm-cluster wrapped key v1";
const SUBKEY_CONTEXT: &str = "hsm-cluster wrapping subkey v1";
/// Longest header accepted (a few dozen bytes in practice).
const MAX_HEADER_LEN: usize = 1024;

fn mechanism_byte(mechanism: WrapMechanism) -> u8 {
    match mechanism {
        WrapMechanism::AesKeyWrapPad => 1,
        WrapMechanism::AesGcm => 2,
        WrapMechanism::RsaOaepSha256 => 3,
    }
}

fn mechanism_of(byte: u8) -> Option<WrapMechanism> {
    WrapMechanism::ALL
        .iter()
        .copied()
        .find(|m| mechanism_byte(*m) == byte)
}

/// The wrapping subkey of the AES key `kek`: what the wrapped-key format
/// encrypts under, so that wrapping and data encryption never share a key.
pub fn wrapping_subkey(kek: &[u8]) -> Zeroizing<Vec<u8>> {
    let full = Zeroizing::new(blake3::derive_key(SUBKEY_CONTEXT, kek));
    let len = kek.len().min(full.len());
    Zeroizing::new(full[..len].to_vec())
}

/// A wrapped key taken apart (not yet opened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey<'a> {
    /// The mechanism it was wrapped with.
    pub mechanism: WrapMechanism,
    /// What it carries besides the material.
    pub carried: CarriedAttributes,
    /// Everything before the body (magic, version, mechanism, header).
    pub prefix: &'a [u8],
    /// The encrypted part.
    pub body: &'a [u8],
}

impl<'a> WrappedKey<'a> {
    /// Takes a wrapped key apart.
    ///
    /// # Errors
    /// [`CryptoError::NotAWrappedKey`] when `blob` is not in the format
    /// (data, or a key wrapped by something else).
    pub fn parse(blob: &'a [u8]) -> Result<WrappedKey<'a>> {
        let not = CryptoError::NotAWrappedKey;
        let rest = blob.strip_prefix(WRAPPED_KEY_MAGIC).ok_or(not.clone())?;
        let (&version, rest) = rest.split_first().ok_or(not.clone())?;
        if version != WRAPPED_KEY_VERSION {
            return Err(not);
        }
        let (&mech, rest) = rest.split_first().ok_or(not.clone())?;
        let mechanism = mechanism_of(mech).ok_or(not.clone())?;
        let (len, rest) = rest.split_at_checked(2).ok_or(not.clone())?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len > MAX_HEADER_LEN {
            return Err(not);
        }
        let (header, body) = rest.split_at_checked(len).ok_or(not.clone())?;
        let carried: CarriedAttributes =
            hsm_proto::codec::decode("wrapped key header", header).map_err(|_| not.clone())?;
        let prefix_len = blob.len() - body.len();
        Ok(WrappedKey {
            mechanism,
            carried,
            prefix: &blob[..prefix_len],
            body,
        })
    }
}

/// `magic || version || mechanism || len || header`.
fn prefix(mechanism: WrapMechanism, carried: &CarriedAttributes) -> Result<Vec<u8>> {
    let header = hsm_proto::codec::encode("wrapped key header", carried)
        .map_err(|_| CryptoError::Internal("wrapped key header"))?;
    let len = u16::try_from(header.len())
        .ok()
        .filter(|l| usize::from(*l) <= MAX_HEADER_LEN)
        .ok_or(CryptoError::Internal("wrapped key header"))?;
    let mut out = Vec::with_capacity(8 + header.len());
    out.extend_from_slice(WRAPPED_KEY_MAGIC);
    out.push(WRAPPED_KEY_VERSION);
    out.push(mechanism_byte(mechanism));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&header);
    Ok(out)
}

fn oaep_label(prefix: &[u8]) -> Vec<u8> {
    let mut label = OAEP_LABEL.to_vec();
    label.extend_from_slice(blake3::hash(prefix).as_bytes());
    label
}

/// The AES-GCM key over the wrapping subkey of `kek`.
fn gcm_subkey(kek: &[u8]) -> Result<aws_lc_rs::aead::LessSafeKey> {
    let sub = wrapping_subkey(kek);
    let alg = match sub.len() {
        16 => &aws_lc_rs::aead::AES_128_GCM,
        24 => &aws_lc_rs::aead::AES_192_GCM,
        _ => &aws_lc_rs::aead::AES_256_GCM,
    };
    let key = aws_lc_rs::aead::UnboundKey::new(alg, &sub)
        .map_err(|_| CryptoError::Internal("aes-gcm subkey"))?;
    Ok(aws_lc_rs::aead::LessSafeKey::new(key))
}

impl LoadedKey {
    /// Wraps `target`'s canonical material (raw bytes or PKCS#8 DER) under
    /// this key, with `carried` bound to it (see the module documentation
    /// for the format).
    ///
    /// # Errors
    /// [`CryptoError::MechanismMismatch`] if the mechanism does not apply
    /// to this key type; [`CryptoError::KeySpecMismatch`] if `carried`
    /// names another type than `target`'s; [`CryptoError::BadLength`] if
    /// the material does not fit one RSA-OAEP block.
    pub fn wrap_key(
        &self,
        mechanism: WrapMechanism,
        carried: &CarriedAttributes,
        target: &KeyMaterial,
    ) -> Result<Vec<u8>> {
        if target.is_public_only() {
            return Err(CryptoError::BadKey(
                "a public key alone has no material to wrap",
            ));
        }
        match (&self.inner, mechanism) {
            (Inner::Aes(_), WrapMechanism::AesKeyWrapPad | WrapMechanism::AesGcm) => {}
            (Inner::Rsa { .. } | Inner::Public, WrapMechanism::RsaOaepSha256) => {
                return match self.public_key() {
                    Some(public) => public.wrap_key(mechanism, carried, target),
                    None => Err(CryptoError::Internal("rsa key without public key")),
                };
            }
            _ => return Err(mismatch(mechanism, self.spec())),
        }
        check_carried(carried, target)?;
        let mut out = prefix(mechanism, carried)?;
        let kek = self.material.secret();
        let body = if mechanism == WrapMechanism::AesKeyWrapPad {
            let mut input = Zeroizing::new(blake3::hash(&out).as_bytes().to_vec());
            input.extend_from_slice(target.secret());
            kwp_wrap(&wrapping_subkey(kek), &input)?
        } else {
            aes_gcm_seal(&gcm_subkey(kek)?, target.secret(), &out)?
        };
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a wrapped key made under this key with `mechanism`: checks
    /// that it was made with that mechanism, opens it (which authenticates
    /// the header) and imports the material as the key type the header
    /// names, with the same checks as [`KeyMaterial::import`].
    ///
    /// # Errors
    /// [`CryptoError::NotAWrappedKey`] for anything not in the format;
    /// [`CryptoError::WrappedWithOther`] for another mechanism;
    /// [`CryptoError::UnwrapFailed`] for a wrong key or tampered input;
    /// [`CryptoError::MechanismMismatch`] if the mechanism does not apply
    /// to this key type; the errors of [`KeyMaterial::import`] if what was
    /// unwrapped is not a key of the carried type.
    pub fn unwrap_key(
        &self,
        mechanism: WrapMechanism,
        blob: &[u8],
    ) -> Result<(CarriedAttributes, KeyMaterial)> {
        let limit = MAX_KEY_BLOB_LEN + 64 + MAX_HEADER_LEN;
        if blob.len() > limit {
            return Err(CryptoError::BadLength {
                what: "wrapped key",
                len: blob.len(),
                allowed: "at most 17472",
            });
        }
        match (&self.inner, mechanism) {
            (Inner::Aes(_), WrapMechanism::AesKeyWrapPad | WrapMechanism::AesGcm)
            | (Inner::Rsa { .. }, WrapMechanism::RsaOaepSha256) => {}
            _ => return Err(mismatch(mechanism, self.spec())),
        }
        let wrapped = WrappedKey::parse(blob)?;
        if wrapped.mechanism != mechanism {
            return Err(CryptoError::WrappedWithOther(wrapped.mechanism.name()));
        }
        let failed = CryptoError::UnwrapFailed;
        let plain = match (&self.inner, mechanism) {
            (Inner::Aes(_), WrapMechanism::AesKeyWrapPad) => {
                let opened = kwp_unwrap(&wrapping_subkey(self.material.secret()), wrapped.body)?;
                let digest = blake3::hash(wrapped.prefix);
                match opened.strip_prefix(digest.as_bytes()) {
                    Some(material) => Zeroizing::new(material.to_vec()),
                    None => return Err(failed),
                }
            }
            (Inner::Aes(_), _) => aes_gcm_open(
                &gcm_subkey(self.material.secret())?,
                wrapped.body,
                wrapped.prefix,
                failed,
            )?,
            (Inner::Rsa { decrypt, .. }, _) => {
                oaep_decrypt(decrypt, wrapped.body, &oaep_label(wrapped.prefix), failed)?
            }
            _ => return Err(mismatch(mechanism, self.spec())),
        };
        let material = KeyMaterial::import(wrapped.carried.spec, &plain)?;
        Ok((wrapped.carried, material))
    }
}

fn check_carried(carried: &CarriedAttributes, target: &KeyMaterial) -> Result<()> {
    if carried.spec == target.spec() {
        Ok(())
    } else {
        Err(CryptoError::KeySpecMismatch {
            expected: carried.spec,
            found: Some(target.spec()),
        })
    }
}

impl PublicKey {
    /// Wraps `target`'s material to this public key in the wrapped-key
    /// format: RSA-OAEP only.
    ///
    /// # Errors
    /// [`CryptoError::MechanismMismatch`] for any other mechanism or key
    /// type; [`CryptoError::KeySpecMismatch`] if `carried` names another
    /// type than `target`'s; [`CryptoError::BadLength`] if the material
    /// does not fit one block (private keys never do).
    pub fn wrap_key(
        &self,
        mechanism: WrapMechanism,
        carried: &CarriedAttributes,
        target: &KeyMaterial,
    ) -> Result<Vec<u8>> {
        if target.is_public_only() {
            return Err(CryptoError::BadKey(
                "a public key alone has no material to wrap",
            ));
        }
        match (self.spec(), mechanism) {
            (KeySpec::Rsa { .. }, WrapMechanism::RsaOaepSha256) => {
                check_carried(carried, target)?;
                let mut out = prefix(mechanism, carried)?;
                let body = oaep_encrypt(self, target.secret(), &oaep_label(&out))?;
                out.extend_from_slice(&body);
                Ok(out)
            }
            _ => Err(mismatch(mechanism, self.spec())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 5649's two examples (AES-192), for the key wrap under the
    /// wrapped-key format.
    #[test]
    fn key_wrap_with_padding_matches_rfc_5649() {
        let kek = unhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8");
        for (key_hex, wrapped_hex) in [
            (
                "c37b7e6492584340bed12207808941155068f738",
                "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
            ),
            ("466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"),
        ] {
            let wrapped = kwp_wrap(&kek, &unhex(key_hex)).unwrap();
            assert_eq!(wrapped, unhex(wrapped_hex));
            let back = kwp_unwrap(&kek, &wrapped).unwrap();
            assert_eq!(*back, unhex(key_hex));
        }
    }
}
