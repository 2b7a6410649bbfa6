//! TLS 1.3 over QUIC to the nodes: trust only the cluster CA, present no
//! certificate, offer every client protocol version this SDK speaks
//! ([`alpn_protocols`]).

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use rustls::RootCertStore;

use hsm_proto::protocol;

use crate::config::ca_certificates;
use crate::error::{Error, Result};

/// The ALPN names of the client protocol versions this SDK speaks
/// (`hsm-client/N`, newest first): the node picks the newest it speaks too.
pub fn alpn_protocols() -> Vec<Vec<u8>> {
    protocol::alpn_names(protocol::CLIENT_ALPN_PREFIX, protocol::CLIENT)
}

/// The client protocol version `conn` agreed on (`None` if it names
/// none this SDK knows).
pub(crate) fn agreed_version(conn: &quinn::Connection) -> Option<protocol::Version> {
    let alpn = conn
        .handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol?;
    protocol::alpn_version(protocol::CLIENT_ALPN_PREFIX, &alpn)
}

/// What a failed handshake means, in words: a node that speaks none of
/// this SDK's client protocol versions (TLS's `no_application_protocol`
/// alert) is named as such.
pub(crate) fn handshake_failure(e: &quinn::ConnectionError) -> String {
    const NO_APPLICATION_PROTOCOL: u8 = 120;
    match e {
        quinn::ConnectionError::ConnectionClosed(c)
            if c.error_code == quinn::TransportErrorCode::crypto(NO_APPLICATION_PROTOCOL) =>
        {
            format!(
                "the node speaks none of the client protocol versions this client speaks ({}): \
                 upgrade the client or the node",
                protocol::describe(&protocol::CLIENT)
            )
        }
        other => format!("handshake failed: {other}"),
    }
}
/// The DNS name every node certificate carries; node `n` also carries
/// `n<n>.hsm-node` ([`server_name`]), which the client connects with.
pub const SERVER_NAME: &str = "hsm-node";

/// The server name of node `node`'s certificate: `n<id>.hsm-node`.
pub fn server_name(node: hsm_proto::NodeId) -> String {
    format!("n{}.{SERVER_NAME}", node.0)
}

/// The pin of a certificate's key: blake3 of its SubjectPublicKeyInfo DER,
/// as a member record's `transport_key` holds it. `None` if the
/// certificate does not parse.
pub fn key_pin_of_cert(der: &rustls_pki_types::CertificateDer<'_>) -> Option<[u8; 32]> {
    let cert = webpki::EndEntityCert::try_from(der).ok()?;
    Some(*blake3::hash(cert.subject_public_key_info().as_ref()).as_bytes())
}

/// QUIC keep-alive: a connection to a node that vanished without a word
/// (a crash, a cut cable) is noticed within [`IDLE_TIMEOUT`], and calls in
/// flight on it are retried elsewhere.
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// Idle time after which a connection counts as lost (the lower of this
/// and the node's own timeout applies).
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);

fn tls_err(e: impl std::fmt::Display) -> Error {
    Error::Config(format!("tls: {e}"))
}

/// The quinn client configuration for a cluster whose CA certificate is
/// `ca_pem`.
pub(crate) fn client_config(ca_pem: &str) -> Result<quinn::ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in ca_certificates(ca_pem)? {
        roots
            .add(cert)
            .map_err(|e| Error::Config(format!("ca_cert_pem: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = alpn_protocols();
    let quic = QuicClientConfig::try_from(tls).map_err(tls_err)?;
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    // 10 s fits in a VarInt, so the conversion cannot fail.
    transport.max_idle_timeout(IDLE_TIMEOUT.try_into().ok());
    let mut client = quinn::ClientConfig::new(Arc::new(quic));
    client.transport_config(Arc::new(transport));
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_that_is_not_a_certificate_is_a_config_error() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(client_config(pem), Err(Error::Config(_))));
        assert!(matches!(client_config(""), Err(Error::Config(_))));
    }
}
