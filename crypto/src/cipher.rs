//! Encryption and decryption: AES-GCM and RSA-OAEP (SHA-256).

use crate::error::{CryptoError, Result};
use crate::keys::PublicKey;
use crate::loaded::{Inner, LoadedKey};
use crate::mechanism::EncryptMechanism;
use aws_lc_rs::{aead, rsa};
use hsm_proto::KeySpec;
use zeroize::{Zeroize as _, Zeroizing};

/// Length of the AES-GCM IV the HSM chooses and puts first in its output.
pub const AES_GCM_IV_LEN: usize = 12;
/// Length of the AES-GCM tag at the end of the output.
pub const AES_GCM_TAG_LEN: usize = 16;

const OAEP: &rsa::OaepAlgorithm = &rsa::OAEP_SHA256_MGF1SHA256;

fn mismatch(mechanism: EncryptMechanism, spec: KeySpec) -> CryptoError {
    CryptoError::MechanismMismatch {
        mechanism: mechanism.name(),
        spec,
    }
}

/// AES-GCM with a fresh random IV: `iv || ciphertext || tag`.
pub(crate) fn aes_gcm_seal(
    key: &aead::LessSafeKey,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>> {
    let mut iv = [0u8; AES_GCM_IV_LEN];
    aws_lc_rs::rand::fill(&mut iv).map_err(|_| CryptoError::Internal("random"))?;
    aes_gcm_seal_with_iv(key, iv, plaintext, aad)
}

fn aes_gcm_seal_with_iv(
    key: &aead::LessSafeKey,
    iv: [u8; AES_GCM_IV_LEN],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(AES_GCM_IV_LEN + plaintext.len() + AES_GCM_TAG_LEN);
    out.extend_from_slice(&iv);
    out.extend_from_slice(plaintext);
    let sealed = match out.get_mut(AES_GCM_IV_LEN..) {
        Some(body) => key.seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(iv),
            aead::Aad::from(aad),
            body,
        ),
        None => Err(aws_lc_rs::error::Unspecified),
    };
    match sealed {
        Ok(tag) => {
            out.extend_from_slice(tag.as_ref());
            Ok(out)
        }
        Err(_) => {
            out.zeroize();
            Err(CryptoError::Internal("aes-gcm seal"))
        }
    }
}

/// Opens `iv || ciphertext || tag`.
pub(crate) fn aes_gcm_open(
    key: &aead::LessSafeKey,
    data: &[u8],
    aad: &[u8],
    failed: CryptoError,
) -> Result<Zeroizing<Vec<u8>>> {
    if data.len() < AES_GCM_IV_LEN + AES_GCM_TAG_LEN {
        return Err(CryptoError::BadLength {
            what: "aes-gcm ciphertext",
            len: data.len(),
            allowed: "at least 28 (iv and tag)",
        });
    }
    let (iv, body) = data.split_at(AES_GCM_IV_LEN);
    let iv: [u8; AES_GCM_IV_LEN] = iv.try_into().map_err(|_| failed.clone())?;
    let mut buf = Zeroizing::new(body.to_vec());
    let len = key
        .open_in_place(
            aead::Nonce::assume_unique_for_key(iv),
            aead::Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| failed)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// Refuses the OAEP labels the wrapped-key format reserves, so data never
/// unwraps as a key and a wrapped key never decrypts as data.
fn check_label(label: &[u8]) -> Result<()> {
    if label.starts_with(crate::wrap::RESERVED_OAEP_LABEL_PREFIX) {
        Err(CryptoError::ReservedLabel)
    } else {
        Ok(())
    }
}

/// RSA-OAEP (SHA-256) encryption to an RSA public key.
pub(crate) fn oaep_encrypt(public: &PublicKey, plaintext: &[u8], label: &[u8]) -> Result<Vec<u8>> {
    let key = rsa::PublicEncryptingKey::from_der(public.der())
        .map_err(|_| CryptoError::BadKey("rsa public key rejected"))?;
    let key = rsa::OaepPublicEncryptingKey::new(key).map_err(|_| CryptoError::Internal("oaep"))?;
    let max = key.max_plaintext_size(OAEP);
    if plaintext.len() > max {
        return Err(CryptoError::BadLength {
            what: "rsa-oaep plaintext",
            len: plaintext.len(),
            allowed: "at most the modulus length less 66",
        });
    }
    let mut out = vec![0u8; key.ciphertext_size()];
    let label = (!label.is_empty()).then_some(label);
    let len = key
        .encrypt(OAEP, plaintext, &mut out, label)
        .map_err(|_| CryptoError::Internal("rsa-oaep encrypt"))?
        .len();
    out.truncate(len);
    Ok(out)
}

/// RSA-OAEP (SHA-256) decryption.
pub(crate) fn oaep_decrypt(
    key: &rsa::OaepPrivateDecryptingKey,
    ciphertext: &[u8],
    label: &[u8],
    failed: CryptoError,
) -> Result<Zeroizing<Vec<u8>>> {
    if ciphertext.len() != key.key_size_bytes() {
        return Err(CryptoError::BadLength {
            what: "rsa-oaep ciphertext",
            len: ciphertext.len(),
            allowed: "exactly the modulus length",
        });
    }
    let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
    let label = (!label.is_empty()).then_some(label);
    let len = key
        .decrypt(OAEP, ciphertext, &mut out, label)
        .map_err(|_| failed)?
        .len();
    out.truncate(len);
    Ok(out)
}

impl LoadedKey {
    /// Encrypts `plaintext`, authenticating `aad` (AES-GCM) or using it as
    /// the OAEP label (RSA-OAEP; empty means no label).
    ///
    /// AES-GCM output is `iv (12) || ciphertext || tag (16)` with an IV from
    /// the library's DRBG; callers should not exceed 2^32 encryptions under
    /// one key (NIST SP 800-38D's limit for random IVs).
    ///
    /// # Errors
    /// [`CryptoError::MechanismMismatch`] if the mechanism does not apply
    /// to this key type; [`CryptoError::BadLength`] for an RSA-OAEP
    /// plaintext longer than the key allows.
    pub fn encrypt(
        &self,
        mechanism: EncryptMechanism,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        match (&self.inner, mechanism) {
            (Inner::Aes(key), EncryptMechanism::AesGcm) => aes_gcm_seal(key, plaintext, aad),
            (Inner::Rsa { .. } | Inner::Public, EncryptMechanism::RsaOaepSha256) => {
                match self.public_key() {
                    Some(public) => public.encrypt(EncryptMechanism::RsaOaepSha256, plaintext, aad),
                    None => Err(CryptoError::Internal("rsa key without public key")),
                }
            }
            _ => Err(mismatch(mechanism, self.spec())),
        }
    }

    /// AES-GCM under this key with the given IV, for the power-on
    /// known-answer test only (serving always draws a random IV).
    pub(crate) fn aes_gcm_seal_with_iv(
        &self,
        iv: [u8; AES_GCM_IV_LEN],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        match &self.inner {
            Inner::Aes(key) => aes_gcm_seal_with_iv(key, iv, plaintext, aad),
            _ => Err(mismatch(EncryptMechanism::AesGcm, self.spec())),
        }
    }

    /// Decrypts what [`LoadedKey::encrypt`] (or any standard implementation
    /// of the mechanism) produced, with the same `aad`.
    ///
    /// # Errors
    /// [`CryptoError::DecryptFailed`] for a wrong key, tampered data or
    /// different `aad`; [`CryptoError::BadLength`] for input too short to be
    /// AES-GCM output or not one RSA block; [`CryptoError::MechanismMismatch`]
    /// if the mechanism does not apply to this key type.
    pub fn decrypt(
        &self,
        mechanism: EncryptMechanism,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let failed = CryptoError::DecryptFailed;
        match (&self.inner, mechanism) {
            (Inner::Aes(key), EncryptMechanism::AesGcm) => {
                aes_gcm_open(key, ciphertext, aad, failed)
            }
            (Inner::Rsa { decrypt, .. }, EncryptMechanism::RsaOaepSha256) => {
                check_label(aad)?;
                oaep_decrypt(decrypt, ciphertext, aad, failed)
            }
            _ => Err(mismatch(mechanism, self.spec())),
        }
    }
}

impl PublicKey {
    /// Encrypts to this public key: RSA-OAEP only, `label` as the OAEP
    /// label (empty means none).
    ///
    /// # Errors
    /// [`CryptoError::MechanismMismatch`] for any other mechanism or key
    /// type; [`CryptoError::BadLength`] for a plaintext longer than the key
    /// allows.
    pub fn encrypt(
        &self,
        mechanism: EncryptMechanism,
        plaintext: &[u8],
        label: &[u8],
    ) -> Result<Vec<u8>> {
        match (self.spec(), mechanism) {
            (KeySpec::Rsa { .. }, EncryptMechanism::RsaOaepSha256) => {
                check_label(label)?;
                oaep_encrypt(self, plaintext, label)
            }
            _ => Err(mismatch(mechanism, self.spec())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Test case 16 of the GCM specification (AES-256, associated data).
    #[test]
    fn seal_with_a_known_iv_matches_the_gcm_spec() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let key = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &key).unwrap());
        let iv: [u8; 12] = hex("cafebabefacedbaddecaf888").try_into().unwrap();
        let plaintext = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let out = aes_gcm_seal_with_iv(&key, iv, &plaintext, &aad).unwrap();
        let expected = [
            hex("cafebabefacedbaddecaf888"),
            hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"),
            hex("76fc6ece0f4e1768cddf8853bb2d551b"),
        ]
        .concat();
        assert_eq!(out, expected);
        let back = aes_gcm_open(&key, &out, &aad, CryptoError::DecryptFailed).unwrap();
        assert_eq!(back.as_slice(), plaintext.as_slice());
    }
}
