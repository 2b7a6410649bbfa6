//! TLS offload: a rustls server whose private key stays in the HSM
//! (feature `rustls`).
//!
//! [`HsmSigningKey`] implements [`rustls::sign::SigningKey`] for a key pair
//! in the HSM: during each handshake rustls asks it to choose one of the
//! signature schemes the client offered, and the chosen
//! [`Signer`]'s `sign` sends the handshake transcript to the HSM, which
//! signs it. The private key never leaves the cluster.
//!
//! | key in the HSM | schemes, in order of preference |
//! |---|---|
//! | RSA 2048/3072/4096 | RSA-PSS SHA-512/384/256, then PKCS#1 v1.5 SHA-512/384/256 |
//! | EC P-256 | ECDSA P-256 SHA-256 |
//! | EC P-384 | ECDSA P-384 SHA-384 |
//! | Ed25519 | Ed25519 |
//!
//! (TLS 1.3 allows only the PSS, ECDSA and Ed25519 schemes; rustls offers
//! the key only those there. An ECDSA key signs with the hash its curve
//! names, which is what TLS 1.3 requires.)
//!
//! rustls calls signers synchronously; the bridge to the async
//! [`Client`] is a [`BlockingSigner`], with its requirement: make the key
//! on a multi-thread tokio runtime, and run TLS on threads outside it or on
//! its worker threads, not on a current-thread runtime (where signing
//! fails the handshake with [`RemoteKeyError::CurrentThreadRuntime`]
//! instead of deadlocking).
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use hsm_client::offload::{server_config, HsmSigningKey};
//! use hsm_client::{Client, KeyId};
//!
//! # async fn run(client: Client, key: KeyId, chain_pem: &str)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! // `key` is an EC P-256 pair in the HSM with the `sign` attribute;
//! // `chain_pem` is its certificate (then any intermediates), PEM.
//! let key = HsmSigningKey::new(&client, key).await?;
//! let config: Arc<rustls::ServerConfig> = Arc::new(server_config(chain_pem, key)?);
//! // Accept TCP connections and run rustls::ServerConnection::new(config.clone())
//! // over each, on threads outside the runtime or under spawn_blocking.
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use hsm_proto::client::KeyInfo;
use hsm_proto::mechanism::SignMechanism;
use hsm_proto::{KeyId, KeySpec};
use rustls::crypto::CryptoProvider;
use rustls::server::ResolvesServerCert;
use rustls::sign::{CertifiedKey, Signer, SigningKey, SingleCertAndKey};
use rustls::{OtherError, SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};

use crate::blocking::{BlockingSigner, RemoteKeyError};
use crate::client::Client;

const RSA_SCHEMES: &[(SignatureScheme, SignMechanism)] = &[
    (SignatureScheme::RSA_PSS_SHA512, SignMechanism::RsaPssSha512),
    (SignatureScheme::RSA_PSS_SHA384, SignMechanism::RsaPssSha384),
    (SignatureScheme::RSA_PSS_SHA256, SignMechanism::RsaPssSha256),
    (
        SignatureScheme::RSA_PKCS1_SHA512,
        SignMechanism::RsaPkcs1v15Sha512,
    ),
    (
        SignatureScheme::RSA_PKCS1_SHA384,
        SignMechanism::RsaPkcs1v15Sha384,
    ),
    (
        SignatureScheme::RSA_PKCS1_SHA256,
        SignMechanism::RsaPkcs1v15Sha256,
    ),
];
const P256_SCHEMES: &[(SignatureScheme, SignMechanism)] = &[(
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignMechanism::EcdsaSha256,
)];
const P384_SCHEMES: &[(SignatureScheme, SignMechanism)] = &[(
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignMechanism::EcdsaSha384,
)];
const ED25519_SCHEMES: &[(SignatureScheme, SignMechanism)] =
    &[(SignatureScheme::ED25519, SignMechanism::Ed25519)];

/// What the TLS layer may do with a key of `spec`.
fn schemes_for(
    spec: KeySpec,
) -> Option<(
    SignatureAlgorithm,
    &'static [(SignatureScheme, SignMechanism)],
)> {
    match spec {
        KeySpec::Rsa { .. } => Some((SignatureAlgorithm::RSA, RSA_SCHEMES)),
        KeySpec::EcP256 => Some((SignatureAlgorithm::ECDSA, P256_SCHEMES)),
        KeySpec::EcP384 => Some((SignatureAlgorithm::ECDSA, P384_SCHEMES)),
        KeySpec::Ed25519 => Some((SignatureAlgorithm::ED25519, ED25519_SCHEMES)),
        _ => None,
    }
}

/// A TLS private key that stays in the HSM. See the [module
/// documentation](self).
pub struct HsmSigningKey {
    signer: BlockingSigner,
    spec: KeySpec,
    algorithm: SignatureAlgorithm,
    schemes: &'static [(SignatureScheme, SignMechanism)],
    public_key: Vec<u8>,
}

impl fmt::Debug for HsmSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HsmSigningKey")
            .field("key", &self.signer.key())
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl HsmSigningKey {
    /// Looks `key` up in the HSM and makes a TLS signing key of it, on the
    /// current (multi-thread) runtime.
    ///
    /// # Errors
    /// [`RemoteKeyError::Client`] if the lookup fails; as
    /// [`HsmSigningKey::from_key_info`].
    pub async fn new(client: &Client, key: KeyId) -> Result<HsmSigningKey, RemoteKeyError> {
        let info = client.get_key(key).await?;
        HsmSigningKey::from_key_info(BlockingSigner::new(client.clone(), key)?, &info)
    }

    /// A TLS signing key from a signer and the key's metadata (as
    /// [`Client::get_key`] or [`Client::generate_key`] return it).
    ///
    /// # Errors
    /// [`RemoteKeyError::UnsuitableKey`] if `info` is another key than the
    /// signer's, its type cannot sign TLS handshakes (only RSA, P-256,
    /// P-384 and Ed25519 can), it lacks the `sign` attribute, or has no
    /// public key.
    pub fn from_key_info(
        signer: BlockingSigner,
        info: &KeyInfo,
    ) -> Result<HsmSigningKey, RemoteKeyError> {
        let unsuitable = |reason: String| RemoteKeyError::UnsuitableKey {
            key: info.id,
            spec: info.spec,
            purpose: "tls",
            reason,
        };
        if info.id != signer.key() {
            return Err(unsuitable(format!(
                "the signer is for key {}",
                signer.key()
            )));
        }
        let (algorithm, schemes) = schemes_for(info.spec).ok_or_else(|| {
            unsuitable("only rsa, p-256, p-384 and ed25519 keys sign tls handshakes".into())
        })?;
        if !info.attributes.sign {
            return Err(unsuitable("the key lacks the sign attribute".into()));
        }
        if info.public_key.is_empty() {
            return Err(unsuitable("the key has no public key".into()));
        }
        Ok(HsmSigningKey {
            signer,
            spec: info.spec,
            algorithm,
            schemes,
            public_key: info.public_key.clone(),
        })
    }

    /// The key in the HSM.
    pub fn key(&self) -> KeyId {
        self.signer.key()
    }

    /// Its type and size.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// Its public key, SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key
    }

    /// The schemes it can sign with, most preferred first.
    pub fn schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.iter().map(|(s, _)| *s).collect()
    }
}

impl SigningKey for HsmSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let (scheme, mechanism) = self
            .schemes
            .iter()
            .find(|(scheme, _)| offered.contains(scheme))?;
        Some(Box::new(HsmSigner {
            signer: self.signer.clone(),
            scheme: *scheme,
            mechanism: *mechanism,
        }))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.public_key.as_slice()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }
}

/// One handshake's signer: the scheme chosen and the HSM mechanism for it.
struct HsmSigner {
    signer: BlockingSigner,
    scheme: SignatureScheme,
    mechanism: SignMechanism,
}

impl fmt::Debug for HsmSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HsmSigner")
            .field("key", &self.signer.key())
            .field("scheme", &self.scheme)
            .finish()
    }
}

impl Signer for HsmSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.signer.sign(self.mechanism, message).map_err(|e| {
            tracing::warn!(key = %self.signer.key(), scheme = ?self.scheme, error = %e,
                "hsm signing for a tls handshake failed");
            rustls::Error::Other(OtherError(Arc::new(e)))
        })
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

/// Parses a PEM certificate chain: the end-entity certificate first.
///
/// # Errors
/// [`RemoteKeyError::Certificate`] if the text holds no certificate or a
/// certificate block does not decode.
pub fn parse_chain(chain_pem: &str) -> Result<Vec<CertificateDer<'static>>, RemoteKeyError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RemoteKeyError::Certificate(format!("invalid pem: {e}")))?;
    if chain.is_empty() {
        return Err(RemoteKeyError::Certificate(
            "expected at least one certificate in the pem text, found none".into(),
        ));
    }
    Ok(chain)
}

/// The certificate chain (PEM, end-entity first) and the HSM key as one
/// rustls [`CertifiedKey`], after checking that the end-entity certificate
/// certifies this key.
///
/// # Errors
/// [`RemoteKeyError::Certificate`] if the chain does not parse or its
/// first certificate is for another public key.
pub fn certified_key(chain_pem: &str, key: HsmSigningKey) -> Result<CertifiedKey, RemoteKeyError> {
    let id = key.key();
    let certified = CertifiedKey::new(parse_chain(chain_pem)?, Arc::new(key));
    certified.keys_match().map_err(|e| {
        RemoteKeyError::Certificate(format!(
            "the end-entity certificate does not certify key {id}: {e}"
        ))
    })?;
    Ok(certified)
}

/// A server certificate resolver that always presents `chain_pem` with the
/// HSM key, for [`rustls::ConfigBuilder::with_cert_resolver`].
///
/// # Errors
/// As [`certified_key`].
pub fn cert_resolver(
    chain_pem: &str,
    key: HsmSigningKey,
) -> Result<Arc<dyn ResolvesServerCert>, RemoteKeyError> {
    Ok(Arc::new(SingleCertAndKey::from(certified_key(
        chain_pem, key,
    )?)))
}

/// A rustls server configuration (TLS 1.2 and 1.3, the ring provider, no
/// client authentication) presenting `chain_pem` with the HSM key. Set
/// `alpn_protocols` and the like on the result.
///
/// # Errors
/// As [`certified_key`].
pub fn server_config(
    chain_pem: &str,
    key: HsmSigningKey,
) -> Result<rustls::ServerConfig, RemoteKeyError> {
    server_config_with_provider(
        Arc::new(rustls::crypto::ring::default_provider()),
        chain_pem,
        key,
    )
}

/// As [`server_config`], with another crypto provider (for the ciphers and
/// key exchange; signing stays in the HSM).
///
/// # Errors
/// As [`certified_key`]; [`RemoteKeyError::TlsConfig`] if the provider
/// supports no default protocol version.
pub fn server_config_with_provider(
    provider: Arc<CryptoProvider>,
    chain_pem: &str,
    key: HsmSigningKey,
) -> Result<rustls::ServerConfig, RemoteKeyError> {
    let resolver = cert_resolver(chain_pem, key)?;
    Ok(rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RemoteKeyError::TlsConfig(format!("crypto provider: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(resolver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tls_key_type_offers_schemes_only_of_its_kind() {
        for (spec, algorithm) in [
            (KeySpec::Rsa { bits: 2048 }, SignatureAlgorithm::RSA),
            (KeySpec::EcP256, SignatureAlgorithm::ECDSA),
            (KeySpec::EcP384, SignatureAlgorithm::ECDSA),
            (KeySpec::Ed25519, SignatureAlgorithm::ED25519),
        ] {
            let (alg, schemes) = schemes_for(spec).expect("tls key");
            assert_eq!(alg, algorithm);
            assert!(!schemes.is_empty());
            for (scheme, _) in schemes {
                let kind = match scheme {
                    SignatureScheme::RSA_PSS_SHA256
                    | SignatureScheme::RSA_PSS_SHA384
                    | SignatureScheme::RSA_PSS_SHA512
                    | SignatureScheme::RSA_PKCS1_SHA256
                    | SignatureScheme::RSA_PKCS1_SHA384
                    | SignatureScheme::RSA_PKCS1_SHA512 => SignatureAlgorithm::RSA,
                    SignatureScheme::ECDSA_NISTP256_SHA256
                    | SignatureScheme::ECDSA_NISTP384_SHA384 => SignatureAlgorithm::ECDSA,
                    SignatureScheme::ED25519 => SignatureAlgorithm::ED25519,
                    other => panic!("unexpected scheme {other:?}"),
                };
                assert_eq!(kind, algorithm, "{spec:?} {scheme:?}");
            }
        }
        for spec in [
            KeySpec::Aes { bits: 256 },
            KeySpec::GenericSecret { bytes: 32 },
            KeySpec::EcSecp256k1,
            KeySpec::X25519,
        ] {
            assert!(schemes_for(spec).is_none(), "{spec:?}");
        }
    }

    #[test]
    fn a_chain_without_certificates_is_refused() {
        assert!(matches!(
            parse_chain("no pem here"),
            Err(RemoteKeyError::Certificate(_))
        ));
        assert!(matches!(
            parse_chain("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
            Err(RemoteKeyError::Certificate(_))
        ));
    }
}
