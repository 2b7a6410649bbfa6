//! rustls and quinn configuration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use hsm_proto::protocol::{self, Version};

use super::pki::NodeCert;
use super::TransportError;

/// What an accepted or made connection speaks: the protocol its ALPN
/// names, at the version both ends agreed on (`hsm_proto::protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaks {
    /// Node-to-node Raft traffic (mutual TLS), `hsm-raft/N`.
    Raft(Version),
    /// Client traffic (server-authenticated TLS), `hsm-client/N`.
    Client(Version),
}

/// The ALPN names of every Raft protocol version this build speaks,
/// newest first.
pub fn raft_alpns() -> Vec<Vec<u8>> {
    protocol::alpn_names(protocol::RAFT_ALPN_PREFIX, protocol::RAFT)
}

/// The ALPN names of every client protocol version this build speaks,
/// newest first.
pub fn client_alpns() -> Vec<Vec<u8>> {
    protocol::alpn_names(protocol::CLIENT_ALPN_PREFIX, protocol::CLIENT)
}
/// The DNS name every node certificate carries; clients and nodes connect
/// with it as the server name.
pub const SERVER_NAME: &str = "hsm-node";

/// Keep-alive on every connection, so a peer that vanished (a crash, a cut
/// link) is noticed within [`IDLE_TIMEOUT`] rather than never.
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// Idle time after which a connection counts as lost.
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);

fn tls_err(e: impl std::fmt::Display) -> TransportError {
    TransportError::Tls(e.to_string())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, TransportError> {
    let mut roots = RootCertStore::empty();
    let mut found = false;
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| TransportError::Certificate(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| TransportError::Certificate(e.to_string()))?;
        found = true;
    }
    if !found {
        return Err(TransportError::Certificate(
            "no certificate in the CA file".into(),
        ));
    }
    Ok(Arc::new(roots))
}

fn chain_and_key(
    node: &NodeCert,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TransportError> {
    let chain = CertificateDer::pem_slice_iter(node.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TransportError::Certificate(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(node.key_pem.as_bytes())
        .map_err(|e| TransportError::Certificate(e.to_string()))?;
    Ok((chain, key))
}

fn transport() -> Arc<quinn::TransportConfig> {
    transport_with_streams(None)
}

fn transport_with_streams(max_streams: Option<u32>) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    if let Some(n) = max_streams {
        t.max_concurrent_bidi_streams(n.into());
        t.max_concurrent_uni_streams(0u32.into());
    }
    t.keep_alive_interval(Some(KEEP_ALIVE));
    // 10 s fits in a VarInt, so this conversion cannot fail.
    t.max_idle_timeout(IDLE_TIMEOUT.try_into().ok());
    Arc::new(t)
}

/// Server side of a node: its certificate, every version of both
/// protocols it speaks (the newest a peer also offers is chosen), and
/// client certificates verified against the cluster CA when presented
/// (required for Raft, which the accept loop enforces with
/// [`peer_is_cluster_member`]).
///
/// # Errors
/// If the CA or node certificate does not parse or fit.
pub fn server_tls(ca_pem: &str, node: &NodeCert) -> Result<quinn::ServerConfig, TransportError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .allow_unauthenticated()
        .build()
        .map_err(tls_err)?;
    let (chain, key) = chain_and_key(node)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(tls_err)?;
    tls.alpn_protocols = raft_alpns().into_iter().chain(client_alpns()).collect();
    let quic = QuicServerConfig::try_from(tls).map_err(tls_err)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    server.transport_config(transport());
    Ok(server)
}

/// `server` with at most `max_streams` requests in progress per
/// connection: a peer that opens more waits (QUIC flow control) instead of
/// being served.
pub fn with_stream_limit(mut server: quinn::ServerConfig, max_streams: u32) -> quinn::ServerConfig {
    server.transport_config(transport_with_streams(Some(max_streams)));
    server
}

/// Client side of a node talking Raft to its peers: presents its
/// certificate and trusts only the cluster CA.
///
/// # Errors
/// If the CA or node certificate does not parse or fit.
pub fn node_client_tls(
    ca_pem: &str,
    node: &NodeCert,
) -> Result<quinn::ClientConfig, TransportError> {
    node_client_tls_offering(ca_pem, node, raft_alpns())
}

/// [`node_client_tls`] offering the ALPN names `alpns` instead of this
/// build's Raft protocol versions: how another build connects (tests of
/// version negotiation).
///
/// # Errors
/// If the CA or node certificate does not parse or fit.
pub fn node_client_tls_offering(
    ca_pem: &str,
    node: &NodeCert,
    alpns: Vec<Vec<u8>>,
) -> Result<quinn::ClientConfig, TransportError> {
    let (chain, key) = chain_and_key(node)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(chain, key)
        .map_err(tls_err)?;
    tls.alpn_protocols = alpns;
    client_from(tls)
}

/// Client side of the SDK and CLI: trusts only the cluster CA, presents no
/// certificate.
///
/// # Errors
/// If the CA certificate does not parse.
pub fn client_tls(ca_pem: &str) -> Result<quinn::ClientConfig, TransportError> {
    client_tls_offering(ca_pem, client_alpns())
}

/// [`client_tls`] offering the ALPN names `alpns` instead of this build's
/// client protocol versions: how another build's client connects (tests
/// of version negotiation).
///
/// # Errors
/// If the CA certificate does not parse.
pub fn client_tls_offering(
    ca_pem: &str,
    alpns: Vec<Vec<u8>>,
) -> Result<quinn::ClientConfig, TransportError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_root_certificates(roots(ca_pem)?)
        .with_no_client_auth();
    tls.alpn_protocols = alpns;
    client_from(tls)
}

fn client_from(tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, TransportError> {
    let quic = QuicClientConfig::try_from(tls).map_err(tls_err)?;
    let mut client = quinn::ClientConfig::new(Arc::new(quic));
    client.transport_config(transport());
    Ok(client)
}

/// A QUIC endpoint that accepts connections on `addr`.
///
/// # Errors
/// If the socket cannot be bound.
pub fn server_endpoint(
    addr: SocketAddr,
    config: quinn::ServerConfig,
) -> Result<quinn::Endpoint, TransportError> {
    quinn::Endpoint::server(config, addr).map_err(|e| TransportError::Endpoint {
        addr,
        reason: e.to_string(),
    })
}

/// A QUIC endpoint that only makes connections, on an ephemeral port of
/// the same address family as `like`.
///
/// # Errors
/// If the socket cannot be bound.
pub fn client_endpoint(
    like: SocketAddr,
    config: quinn::ClientConfig,
) -> Result<quinn::Endpoint, TransportError> {
    let addr: SocketAddr = if like.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let mut endpoint = quinn::Endpoint::client(addr).map_err(|e| TransportError::Endpoint {
        addr,
        reason: e.to_string(),
    })?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

/// What the connection speaks, by the ALPN name it agreed on; `None` for
/// none or a name this build does not know.
pub fn negotiated(conn: &quinn::Connection) -> Option<Speaks> {
    let alpn = conn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol)?;
    protocol::alpn_version(protocol::RAFT_ALPN_PREFIX, &alpn)
        .map(Speaks::Raft)
        .or_else(|| protocol::alpn_version(protocol::CLIENT_ALPN_PREFIX, &alpn).map(Speaks::Client))
}

/// Whether the peer of an accepted connection agreed on a Raft protocol
/// version and presented a certificate that the cluster CA verified.
pub fn peer_is_cluster_member(conn: &quinn::Connection) -> bool {
    let alpn_is_raft = matches!(negotiated(conn), Some(Speaks::Raft(_)));
    let has_cert = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .is_some_and(|certs| !certs.is_empty());
    alpn_is_raft && has_cert
}

/// Who is at the other end of a member connection: the node id its
/// certificate names and the pin of the certificate's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The node id in the certificate's `n<id>.hsm-node` name.
    pub node: hsm_proto::NodeId,
    /// blake3 of the certificate's SubjectPublicKeyInfo ([`key_pin_of_cert`]).
    pub key_pin: [u8; 32],
}

/// The pin of a certificate's key: blake3 of its SubjectPublicKeyInfo DER.
/// A member record pins its node's TLS key with it, so a certificate the
/// same CA issued to anyone else for the same node id is told apart.
pub fn key_pin_of_cert(der: &[u8]) -> Option<[u8; 32]> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(*blake3::hash(cert.public_key().raw).as_bytes())
}

/// The key pin of the first certificate in `pem`.
///
/// # Errors
/// If `pem` holds no certificate that parses.
pub fn key_pin_of_pem(pem: &str) -> Result<[u8; 32], TransportError> {
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| TransportError::Certificate("no certificate in the PEM".into()))?
        .map_err(|e| TransportError::Certificate(e.to_string()))?;
    key_pin_of_cert(der.as_ref())
        .ok_or_else(|| TransportError::Certificate("the certificate does not parse".into()))
}

/// The identity of a connection's peer (client certificate of an accepted
/// member connection, or server certificate of one this node made), for a
/// certificate the cluster CA verified. `None` if there is no certificate
/// or it names no node.
pub fn peer_identity(conn: &quinn::Connection) -> Option<PeerIdentity> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    let der = certs.first()?.as_ref();
    Some(PeerIdentity {
        node: node_id_of_cert(der)?,
        key_pin: key_pin_of_cert(der)?,
    })
}

/// The node id a cluster member's certificate names (its `n<id>.hsm-node`
/// DNS name, which [`ClusterCa::issue_node`](super::ClusterCa::issue_node)
/// writes), for a connection whose certificate the cluster CA verified.
/// `None` if the peer presented no certificate or it names no node.
pub fn peer_node_id(conn: &quinn::Connection) -> Option<hsm_proto::NodeId> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    node_id_of_cert(certs.first()?.as_ref())
}

/// The node id in a DER certificate's `n<id>.hsm-node` DNS name.
pub fn node_id_of_cert(der: &[u8]) -> Option<hsm_proto::NodeId> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let suffix = format!(".{SERVER_NAME}");
    san.value.general_names.iter().find_map(|name| match name {
        GeneralName::DNSName(dns) => dns
            .strip_prefix('n')
            .and_then(|rest| rest.strip_suffix(suffix.as_str()))
            .and_then(|id| id.parse::<u64>().ok())
            .map(hsm_proto::NodeId),
        _ => None,
    })
}
