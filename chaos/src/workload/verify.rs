//! Checks the cluster's signatures with libraries other than the one the
//! nodes sign with (aws-lc-rs): ed25519-dalek for Ed25519, ring for ECDSA
//! P-256 with SHA-256.

use anyhow::bail;
use ed25519_dalek::VerifyingKey;
use hsm_client::mechanism::SignMechanism;
use hsm_client::KeySpec;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};

/// SubjectPublicKeyInfo DER of an Ed25519 key, before its 32 bytes
/// (RFC 8410: algorithm 1.3.101.112, no parameters).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// SubjectPublicKeyInfo DER of a P-256 key, before its uncompressed point
/// (RFC 5480: id-ecPublicKey, named curve prime256v1).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The public half of a key the workload signs with.
#[derive(Debug, Clone)]
pub(crate) enum PublicKey {
    /// An Ed25519 key.
    Ed25519(VerifyingKey),
    /// A P-256 key: its uncompressed point.
    P256(Vec<u8>),
}

impl PublicKey {
    /// The key of type `spec` in SubjectPublicKeyInfo DER.
    ///
    /// # Errors
    /// `der` is not such a key.
    pub(crate) fn from_spki(spec: KeySpec, der: &[u8]) -> anyhow::Result<PublicKey> {
        match spec {
            KeySpec::Ed25519 => {
                let raw = der
                    .strip_prefix(&ED25519_SPKI_PREFIX)
                    .and_then(|raw| <[u8; 32]>::try_from(raw).ok());
                let Some(raw) = raw else {
                    bail!(
                        "expected an Ed25519 public key, got {} bytes of DER",
                        der.len()
                    );
                };
                Ok(PublicKey::Ed25519(VerifyingKey::from_bytes(&raw)?))
            }
            KeySpec::EcP256 => match der.strip_prefix(&P256_SPKI_PREFIX) {
                Some(point) if point.len() == 65 && point[0] == 0x04 => {
                    Ok(PublicKey::P256(point.to_vec()))
                }
                _ => bail!(
                    "expected a P-256 public key (uncompressed), got {} bytes of DER",
                    der.len()
                ),
            },
            other => bail!("the workload signs with Ed25519 and P-256 keys only, not {other}"),
        }
    }

    /// The mechanism the workload signs with.
    pub(crate) fn mechanism(&self) -> SignMechanism {
        match self {
            PublicKey::Ed25519(_) => SignMechanism::Ed25519,
            PublicKey::P256(_) => SignMechanism::EcdsaSha256,
        }
    }

    /// Whether `signature` (for ECDSA: DER) is this key's over `message`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| key.verify_strict(message, &s).is_ok()),
            PublicKey::P256(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    fn spki(prefix: &[u8], raw: &[u8]) -> Vec<u8> {
        [prefix, raw].concat()
    }

    #[test]
    fn ed25519_signatures_verify_and_altered_ones_do_not() {
        let signer = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let der = spki(&ED25519_SPKI_PREFIX, signer.verifying_key().as_bytes());
        let key = PublicKey::from_spki(KeySpec::Ed25519, &der).expect("key");
        assert_eq!(key.mechanism(), SignMechanism::Ed25519);
        let mut signature = signer.sign(b"message").to_bytes().to_vec();
        assert!(key.verifies(b"message", &signature));
        assert!(!key.verifies(b"messagE", &signature));
        signature[0] ^= 1;
        assert!(!key.verifies(b"message", &signature));
        assert!(!key.verifies(b"message", &signature[..10]));
    }

    #[test]
    fn p256_signatures_verify_and_altered_ones_do_not() {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("generate");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .expect("pair");
        let der = spki(&P256_SPKI_PREFIX, pair.public_key().as_ref());
        let key = PublicKey::from_spki(KeySpec::EcP256, &der).expect("key");
        assert_eq!(key.mechanism(), SignMechanism::EcdsaSha256);
        let signature = pair.sign(&rng, b"message").expect("sign");
        let mut signature = signature.as_ref().to_vec();
        assert!(key.verifies(b"message", &signature));
        assert!(!key.verifies(b"messagE", &signature));
        let last = signature.len() - 1;
        signature[last] ^= 1;
        assert!(!key.verifies(b"message", &signature));
    }

    #[test]
    fn other_key_types_and_malformed_keys_are_refused() {
        let ed = spki(&ED25519_SPKI_PREFIX, &[9; 32]);
        assert!(PublicKey::from_spki(KeySpec::EcP256, &ed).is_err());
        assert!(PublicKey::from_spki(KeySpec::Ed25519, &ed[..40]).is_err());
        assert!(PublicKey::from_spki(KeySpec::EcP384, &ed).is_err());
        let compressed = spki(&P256_SPKI_PREFIX, &[2; 65]);
        assert!(PublicKey::from_spki(KeySpec::EcP256, &compressed).is_err());
    }
}
