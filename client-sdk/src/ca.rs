//! A small certificate authority whose signing key stays in the HSM
//! (feature `rcgen`).
//!
//! [`HsmCaKey`] implements rcgen's [`SigningKey`] and [`PublicKeyData`]
//! for a key pair in the HSM, so rcgen builds certificates, CSRs and CRLs
//! while each signature is made by the HSM:
//! `CertificateParams::self_signed(&ca_key)` for the CA certificate,
//! `params.signed_by(&subject_key, &Issuer::new(ca_params, &ca_key))` or
//! `csr.signed_by(&issuer)` for what it issues.
//!
//! | key in the HSM | certificate signature algorithm |
//! |---|---|
//! | EC P-256 | ecdsa-with-SHA256 |
//! | EC P-384 | ecdsa-with-SHA384 |
//! | Ed25519 | Ed25519 |
//! | RSA 2048/3072/4096 | sha256WithRSAEncryption (PKCS#1 v1.5); SHA-384 or SHA-512 with [`HsmCaKey::with_rsa_hash`] |
//!
//! An `HsmCaKey` also serves as the subject key of a certificate for
//! another key in the HSM (a TLS server key, say): rcgen then only reads
//! its public half.
//!
//! rcgen signs synchronously; the bridge to the async [`Client`] is a
//! [`BlockingSigner`], with its requirement (a multi-thread tokio runtime;
//! not called on a current-thread runtime's thread). A failed HSM call
//! becomes [`rcgen::Error::RemoteKeyError`], and the cause is logged.
//!
//! # Example
//!
//! ```no_run
//! use hsm_client::ca::HsmCaKey;
//! use hsm_client::{Client, KeyId};
//! use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
//!
//! # async fn run(client: Client, ca_key: KeyId) -> Result<(), Box<dyn std::error::Error>> {
//! let ca_key = HsmCaKey::new(&client, ca_key).await?;
//! let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
//! ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
//! // rcgen calls the HSM synchronously: off the async threads.
//! let (ca_pem, leaf_pem) = tokio::task::spawn_blocking(move || {
//!     let ca_cert = ca_params.self_signed(&ca_key)?;
//!     let issuer = Issuer::new(ca_params, &ca_key);
//!     let leaf_key = KeyPair::generate()?; // or another HsmCaKey
//!     let leaf = CertificateParams::new(vec!["db.example".to_string()])?
//!         .signed_by(&leaf_key, &issuer)?;
//!     Ok::<_, rcgen::Error>((ca_cert.pem(), leaf.pem()))
//! })
//! .await??;
//! # Ok(())
//! # }
//! ```

use std::fmt;

use hsm_proto::client::KeyInfo;
use hsm_proto::mechanism::{DigestAlgorithm, SignMechanism};
use hsm_proto::{KeyId, KeySpec};
use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey, SubjectPublicKeyInfo};

use crate::blocking::{BlockingSigner, RemoteKeyError};
use crate::client::Client;

/// A certificate-signing key that stays in the HSM. See the [module
/// documentation](self).
#[derive(Clone)]
pub struct HsmCaKey {
    signer: BlockingSigner,
    spec: KeySpec,
    algorithm: &'static SignatureAlgorithm,
    mechanism: SignMechanism,
    /// SubjectPublicKeyInfo DER, as the HSM gave it.
    spki: Vec<u8>,
    /// The subjectPublicKey bits inside it (what rcgen calls the DER
    /// bytes of the key).
    public_key: Vec<u8>,
}

impl fmt::Debug for HsmCaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HsmCaKey")
            .field("key", &self.signer.key())
            .field("spec", &self.spec)
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl HsmCaKey {
    /// Looks `key` up in the HSM and makes a certificate-signing key of
    /// it, on the current (multi-thread) runtime.
    ///
    /// # Errors
    /// [`RemoteKeyError::Client`] if the lookup fails; as
    /// [`HsmCaKey::from_key_info`].
    pub async fn new(client: &Client, key: KeyId) -> Result<HsmCaKey, RemoteKeyError> {
        let info = client.get_key(key).await?;
        HsmCaKey::from_key_info(BlockingSigner::new(client.clone(), key)?, &info)
    }

    /// A certificate-signing key from a signer and the key's metadata (as
    /// [`Client::get_key`] or [`Client::generate_key`] return it).
    ///
    /// # Errors
    /// [`RemoteKeyError::UnsuitableKey`] if `info` is another key than the
    /// signer's, or its type cannot sign certificates (only P-256, P-384,
    /// Ed25519 and RSA can); [`RemoteKeyError::Certificate`] if its public
    /// key does not parse.
    pub fn from_key_info(
        signer: BlockingSigner,
        info: &KeyInfo,
    ) -> Result<HsmCaKey, RemoteKeyError> {
        let unsuitable = |reason: String| RemoteKeyError::UnsuitableKey {
            key: info.id,
            spec: info.spec,
            purpose: "certificates",
            reason,
        };
        if info.id != signer.key() {
            return Err(unsuitable(format!(
                "the signer is for key {}",
                signer.key()
            )));
        }
        let (algorithm, mechanism) = match info.spec {
            KeySpec::EcP256 => (&rcgen::PKCS_ECDSA_P256_SHA256, SignMechanism::EcdsaSha256),
            KeySpec::EcP384 => (&rcgen::PKCS_ECDSA_P384_SHA384, SignMechanism::EcdsaSha384),
            KeySpec::Ed25519 => (&rcgen::PKCS_ED25519, SignMechanism::Ed25519),
            KeySpec::Rsa { .. } => (&rcgen::PKCS_RSA_SHA256, SignMechanism::RsaPkcs1v15Sha256),
            _ => {
                return Err(unsuitable(
                    "only p-256, p-384, ed25519 and rsa keys sign certificates".into(),
                ))
            }
        };
        let parsed = SubjectPublicKeyInfo::from_der(&info.public_key).map_err(|e| {
            RemoteKeyError::Certificate(format!("public key of key {}: {e}", info.id))
        })?;
        // rcgen names an RSA key by one of its RSA algorithms; the key
        // type is what must agree.
        let same_type = match info.spec {
            KeySpec::Rsa { .. } => [
                &rcgen::PKCS_RSA_SHA256,
                &rcgen::PKCS_RSA_SHA384,
                &rcgen::PKCS_RSA_SHA512,
            ]
            .contains(&parsed.algorithm()),
            _ => parsed.algorithm() == algorithm,
        };
        if !same_type {
            return Err(RemoteKeyError::Certificate(format!(
                "public key of key {} is not of its type {:?}",
                info.id, info.spec
            )));
        }
        Ok(HsmCaKey {
            signer,
            spec: info.spec,
            algorithm,
            mechanism,
            spki: info.public_key.clone(),
            public_key: parsed.der_bytes().to_vec(),
        })
    }

    /// For an RSA key: sign certificates with PKCS#1 v1.5 and `hash`
    /// (SHA-256, SHA-384 or SHA-512) instead of SHA-256.
    ///
    /// # Errors
    /// [`RemoteKeyError::UnsuitableKey`] for a key that is not RSA, or a
    /// hash other than those three.
    pub fn with_rsa_hash(mut self, hash: DigestAlgorithm) -> Result<HsmCaKey, RemoteKeyError> {
        let choice = match (self.spec, hash) {
            (KeySpec::Rsa { .. }, DigestAlgorithm::Sha256) => {
                Some((&rcgen::PKCS_RSA_SHA256, SignMechanism::RsaPkcs1v15Sha256))
            }
            (KeySpec::Rsa { .. }, DigestAlgorithm::Sha384) => {
                Some((&rcgen::PKCS_RSA_SHA384, SignMechanism::RsaPkcs1v15Sha384))
            }
            (KeySpec::Rsa { .. }, DigestAlgorithm::Sha512) => {
                Some((&rcgen::PKCS_RSA_SHA512, SignMechanism::RsaPkcs1v15Sha512))
            }
            _ => None,
        };
        let (algorithm, mechanism) = choice.ok_or_else(|| RemoteKeyError::UnsuitableKey {
            key: self.key(),
            spec: self.spec,
            purpose: "certificates",
            reason: format!("{hash} is an rsa pkcs#1 hash choice only (sha256, sha384, sha512)"),
        })?;
        self.algorithm = algorithm;
        self.mechanism = mechanism;
        Ok(self)
    }

    /// The key in the HSM.
    pub fn key(&self) -> KeyId {
        self.signer.key()
    }

    /// Its type and size.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The HSM mechanism each certificate signature uses.
    pub fn mechanism(&self) -> SignMechanism {
        self.mechanism
    }

    /// Its public key, SubjectPublicKeyInfo DER as the HSM gave it.
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki
    }
}

impl PublicKeyData for HsmCaKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public_key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

impl SigningKey for HsmCaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.signer.sign(self.mechanism, msg).map_err(|e| {
            tracing::warn!(key = %self.signer.key(), mechanism = %self.mechanism, error = %e,
                "hsm signing for a certificate failed");
            rcgen::Error::RemoteKeyError
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_key_bits_come_out_of_every_supported_spki() {
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            let pair = rcgen::KeyPair::generate_for(alg).expect("key");
            let parsed =
                SubjectPublicKeyInfo::from_der(&pair.subject_public_key_info()).expect("parses");
            assert_eq!(parsed.der_bytes(), pair.public_key_raw());
            assert_eq!(parsed.algorithm(), alg);
        }
    }
}
