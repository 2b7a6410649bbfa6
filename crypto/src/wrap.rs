//! Wrapping one key's material under another: AES key wrap with padding
//! (RFC 5649), AES-GCM, RSA-OAEP (SHA-256).

use crate::cipher::{aes_gcm_open, aes_gcm_seal, oaep_decrypt, oaep_encrypt};
use crate::error::{CryptoError, Result};
use crate::keys::{KeyMaterial, PublicKey};
use crate::loaded::{Inner, LoadedKey};
use crate::mechanism::WrapMechanism;
use aws_lc_rs::key_wrap::{self, KeyWrapPadded as _};
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

fn kwp_wrap(kek: &[u8], data: &[u8]) -> Result<Vec<u8>> {
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

fn kwp_unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
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

impl LoadedKey {
    /// Wraps `target`'s canonical material (raw bytes or PKCS#8 DER) under
    /// this key.
    ///
    /// # Errors
    /// [`CryptoError::MechanismMismatch`] if the mechanism does not apply
    /// to this key type; [`CryptoError::BadLength`] if the material does
    /// not fit one RSA-OAEP block.
    pub fn wrap_key(&self, mechanism: WrapMechanism, target: &KeyMaterial) -> Result<Vec<u8>> {
        match (&self.inner, mechanism) {
            (Inner::Aes(_), WrapMechanism::AesKeyWrapPad) => {
                kwp_wrap(self.material.secret(), target.secret())
            }
            (Inner::Aes(key), WrapMechanism::AesGcm) => aes_gcm_seal(key, target.secret(), b""),
            (Inner::Rsa { .. }, WrapMechanism::RsaOaepSha256) => match self.public_key() {
                Some(public) => public.wrap_key(mechanism, target),
                None => Err(CryptoError::Internal("rsa key without public key")),
            },
            _ => Err(mismatch(mechanism, self.spec())),
        }
    }

    /// Unwraps material wrapped under this key and imports it as a key of
    /// `spec`, with the same checks as [`KeyMaterial::import`].
    ///
    /// # Errors
    /// [`CryptoError::UnwrapFailed`] for a wrong key or tampered input;
    /// [`CryptoError::BadLength`] for input of an impossible length;
    /// [`CryptoError::MechanismMismatch`] if the mechanism does not apply
    /// to this key type; the errors of [`KeyMaterial::import`] if what was
    /// unwrapped is not a key of `spec`.
    pub fn unwrap_key(
        &self,
        mechanism: WrapMechanism,
        wrapped: &[u8],
        spec: KeySpec,
    ) -> Result<KeyMaterial> {
        let limit = MAX_KEY_BLOB_LEN + 64;
        if wrapped.len() > limit {
            return Err(CryptoError::BadLength {
                what: "wrapped key",
                len: wrapped.len(),
                allowed: "at most 16448",
            });
        }
        let failed = CryptoError::UnwrapFailed;
        let plain = match (&self.inner, mechanism) {
            (Inner::Aes(_), WrapMechanism::AesKeyWrapPad) => {
                kwp_unwrap(self.material.secret(), wrapped)?
            }
            (Inner::Aes(key), WrapMechanism::AesGcm) => aes_gcm_open(key, wrapped, b"", failed)?,
            (Inner::Rsa { decrypt, .. }, WrapMechanism::RsaOaepSha256) => {
                oaep_decrypt(decrypt, wrapped, b"", failed)?
            }
            _ => return Err(mismatch(mechanism, self.spec())),
        };
        KeyMaterial::import(spec, &plain)
    }
}

impl PublicKey {
    /// Wraps `target`'s material to this public key: RSA-OAEP only, no
    /// label.
    ///
    /// # Errors
    /// [`CryptoError::MechanismMismatch`] for any other mechanism or key
    /// type; [`CryptoError::BadLength`] if the material does not fit one
    /// block (private keys never do).
    pub fn wrap_key(&self, mechanism: WrapMechanism, target: &KeyMaterial) -> Result<Vec<u8>> {
        match (self.spec(), mechanism) {
            (KeySpec::Rsa { .. }, WrapMechanism::RsaOaepSha256) => {
                oaep_encrypt(self, target.secret(), b"")
            }
            _ => Err(mismatch(mechanism, self.spec())),
        }
    }
}
