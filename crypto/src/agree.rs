//! Key agreement: ECDH (X25519, P-256, P-384) followed by a key derivation
//! that turns the shared secret into a new symmetric key.

use crate::error::{CryptoError, Result};
use crate::keys::{KeyMaterial, PublicKey};
use crate::loaded::{Inner, LoadedKey};
use crate::mechanism::DeriveMechanism;
use aws_lc_rs::{agreement, digest, hkdf};
use hsm_proto::KeySpec;
use zeroize::Zeroizing;

/// The BLAKE3 key-derivation context string of
/// [`DeriveMechanism::EcdhBlake3`]. Fixed forever: changing it changes
/// every derived key.
pub const BLAKE3_DERIVE_CONTEXT: &str = "hsm-cluster ecdh-blake3 derived key v1";

/// Longest context accepted by [`LoadedKey::derive`], in bytes.
pub const MAX_DERIVE_CONTEXT_LEN: usize = 1024;

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn kdf(mechanism: DeriveMechanism, secret: &[u8], context: &[u8], out: &mut [u8]) -> Result<()> {
    match mechanism {
        DeriveMechanism::EcdhHkdfSha256 => {
            let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(secret);
            let info = [context];
            let okm = prk
                .expand(&info, Len(out.len()))
                .map_err(|_| CryptoError::Internal("hkdf expand"))?;
            okm.fill(out)
                .map_err(|_| CryptoError::Internal("hkdf fill"))
        }
        DeriveMechanism::EcdhBlake3 => {
            let context_len = u64::try_from(context.len())
                .map_err(|_| CryptoError::Internal("blake3 context length"))?;
            let mut hasher = blake3::Hasher::new_derive_key(BLAKE3_DERIVE_CONTEXT);
            hasher.update(&context_len.to_le_bytes());
            hasher.update(context);
            hasher.update(secret);
            hasher.finalize_xof().fill(out);
            Ok(())
        }
        DeriveMechanism::EcdhRaw => {
            if !context.is_empty() {
                return Err(CryptoError::BadLength {
                    what: "derive context",
                    len: context.len(),
                    allowed: "empty for ecdh-raw",
                });
            }
            let head = secret.get(..out.len()).ok_or(CryptoError::BadLength {
                what: "derived key",
                len: out.len(),
                allowed: "at most the shared secret's length for ecdh-raw",
            })?;
            out.copy_from_slice(head);
            Ok(())
        }
        DeriveMechanism::EcdhX963Sha256 => {
            let mut counter: u32 = 1;
            for block in out.chunks_mut(digest::SHA256_OUTPUT_LEN) {
                let mut ctx = digest::Context::new(&digest::SHA256);
                ctx.update(secret);
                ctx.update(&counter.to_be_bytes());
                ctx.update(context);
                let d = ctx.finish();
                let part = d
                    .as_ref()
                    .get(..block.len())
                    .ok_or(CryptoError::Internal("x9.63 block"))?;
                block.copy_from_slice(part);
                counter = counter.wrapping_add(1);
            }
            Ok(())
        }
    }
}

impl LoadedKey {
    /// Agrees a secret with `peer` (a public key of the same type as this
    /// key) and derives from it a new key of `spec` (AES or generic
    /// secret), binding the caller's `context` (see [`DeriveMechanism`] for
    /// exactly how). Both sides derive the same key from the same context.
    ///
    /// # Errors
    /// [`CryptoError::MechanismMismatch`] for a key that cannot do ECDH
    /// (symmetric, RSA, Ed25519, secp256k1); [`CryptoError::PeerKeyMismatch`]
    /// if the peer key is another type; [`CryptoError::UnsupportedKeySpec`]
    /// if `spec` is not a valid AES or generic secret spec;
    /// [`CryptoError::BadLength`] for a context over
    /// [`MAX_DERIVE_CONTEXT_LEN`]; [`CryptoError::BadKey`] if the agreement
    /// fails (for example a low-order X25519 point).
    pub fn derive(
        &self,
        mechanism: DeriveMechanism,
        peer: &PublicKey,
        context: &[u8],
        spec: KeySpec,
    ) -> Result<KeyMaterial> {
        let mismatch = || CryptoError::MechanismMismatch {
            mechanism: mechanism.name(),
            spec: self.spec(),
        };
        let out_len = match spec {
            KeySpec::Aes { bits } if spec.is_valid() => usize::from(bits / 8),
            KeySpec::GenericSecret { bytes } if spec.is_valid() => usize::from(bytes),
            _ => return Err(CryptoError::UnsupportedKeySpec(spec)),
        };
        if context.len() > MAX_DERIVE_CONTEXT_LEN {
            return Err(CryptoError::BadLength {
                what: "derive context",
                len: context.len(),
                allowed: "at most 1024",
            });
        }
        let parsed;
        let private = match &self.inner {
            Inner::X25519(key) => key,
            Inner::Ec { curve, .. } => {
                let alg = curve.agreement().ok_or_else(mismatch)?;
                parsed = agreement::PrivateKey::from_private_key_der(alg, self.material.secret())
                    .map_err(|_| CryptoError::BadKey("ec private key rejected for ecdh"))?;
                &parsed
            }
            _ => return Err(mismatch()),
        };
        if peer.spec() != self.spec() {
            return Err(CryptoError::PeerKeyMismatch {
                expected: self.spec(),
                peer: peer.spec(),
            });
        }
        let peer_key = agreement::UnparsedPublicKey::new(private.algorithm(), peer.der());
        let mut out = Zeroizing::new(vec![0u8; out_len]);
        agreement::agree(
            private,
            peer_key,
            CryptoError::BadKey("key agreement failed"),
            |secret| kdf(mechanism, secret, context, &mut out),
        )?;
        KeyMaterial::import(spec, &out)
    }
}
