//! The cluster CA and node certificates.

use std::net::IpAddr;

use hsm_proto::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use zeroize::Zeroizing;

use super::tls::SERVER_NAME;
use super::TransportError;

fn cert_err(e: rcgen::Error) -> TransportError {
    TransportError::Certificate(e.to_string())
}

/// The cluster's certificate authority: signs every node certificate, and
/// clients trust it to recognise the cluster's nodes.
pub struct ClusterCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

/// A node's TLS certificate and private key, both PEM.
pub struct NodeCert {
    /// Certificate, signed by the cluster CA.
    pub cert_pem: String,
    /// PKCS#8 private key.
    pub key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCert").finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// A new self-signed CA (ECDSA P-256) named after the cluster.
    ///
    /// # Errors
    /// If key generation or signing fails.
    pub fn generate(cluster_name: &str) -> Result<ClusterCa, TransportError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, format!("hsm cluster CA {cluster_name}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(cert_err)?;
        let cert = params.self_signed(&key).map_err(cert_err)?;
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its certificate and private key.
    ///
    /// # Errors
    /// If either does not parse or they do not belong together.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCa, TransportError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| {
            TransportError::Certificate(format!(
                "cannot read the CA key ({e}); it must be an unencrypted PKCS#8 PEM \
                 (BEGIN PRIVATE KEY): convert with `openssl pkcs8 -topk8 -nocrypt`"
            ))
        })?;
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| {
                TransportError::Certificate(format!("cannot read the CA certificate: {e}"))
            })
            .map(|c: rustls_pki_types::CertificateDer<'static>| c)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| {
            TransportError::Certificate(format!("cannot parse the CA certificate: {e}"))
        })?;
        if parsed.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
        {
            return Err(TransportError::Certificate(
                "the CA key does not belong to the CA certificate".into(),
            ));
        }
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(cert_err)?;
        Ok(ClusterCa {
            cert_pem: cert_pem.to_string(),
            issuer,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM. Handle as a secret.
    pub fn key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.issuer.key().serialize_pem())
    }

    /// Issues a certificate for node `node`, valid for the common cluster
    /// name [`SERVER_NAME`], `n<id>.<SERVER_NAME>`, and `hosts` (names or IP
    /// addresses it is reached at). Usable as server and client certificate.
    ///
    /// # Errors
    /// If a host name is invalid or signing fails.
    pub fn issue_node(&self, node: NodeId, hosts: &[String]) -> Result<NodeCert, TransportError> {
        self.issue(node, hosts, KeyPair::generate().map_err(cert_err)?)
    }

    /// [`ClusterCa::issue_node`] for the key the node has (`key_pem`), so
    /// the pin its member record holds stays the same: a new certificate
    /// from this CA (a new CA's, during a CA rotation) for the same key.
    ///
    /// # Errors
    /// If the key does not parse, a host name is invalid or signing fails.
    pub fn reissue_node(
        &self,
        node: NodeId,
        hosts: &[String],
        key_pem: &str,
    ) -> Result<NodeCert, TransportError> {
        self.issue(node, hosts, KeyPair::from_pem(key_pem).map_err(cert_err)?)
    }

    fn issue(
        &self,
        node: NodeId,
        hosts: &[String],
        key: KeyPair,
    ) -> Result<NodeCert, TransportError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("hsm node {}", node.0));
        let mut sans = vec![
            SanType::DnsName(SERVER_NAME.try_into().map_err(cert_err)?),
            SanType::DnsName(
                format!("n{}.{SERVER_NAME}", node.0)
                    .try_into()
                    .map_err(cert_err)?,
            ),
        ];
        for host in hosts {
            sans.push(match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(host.clone().try_into().map_err(cert_err)?),
            });
        }
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).map_err(cert_err)?;
        Ok(NodeCert {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }
}
