//! In-process fake nodes that speak the real client protocol: QUIC with TLS
//! 1.3 under a CA generated here, the SDK's client protocol versions
//! (ALPN `hsm-client/N`) unless told otherwise, one length-prefixed
//! request and response per stream. Each node can be told to misbehave in
//! the ways a real node or network does.

#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hsm_client::hsm_proto::client::{
    ClientConfig, ClientError, ClientNode, ClusterStatus, ErrorKind, MemberInfo, Operation, Reply,
    Request, Response, Secret,
};
use hsm_client::hsm_proto::{codec, ClusterId, NodeId, Role};
use quinn::crypto::rustls::QuicServerConfig;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The id of the fake cluster.
pub const CLUSTER_ID: ClusterId = ClusterId([0x42; 16]);
/// The password every fake user has.
pub const PASSWORD: &str = "correct horse";

/// A cluster CA that issues node certificates as `hsm-node` does.
pub struct Pki {
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, "hsm cluster CA test");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        Pki {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server configuration for node `id` with SANs `hsm-node` and
    /// `n<id>.hsm-node`, and the pin of its key.
    pub fn server_config(&self, id: u64) -> (quinn::ServerConfig, [u8; 32]) {
        self.server_config_speaking(id, hsm_client::alpn_protocols())
    }

    /// [`Pki::server_config`] offering the ALPN names `alpns` only.
    pub fn server_config_speaking(
        &self,
        id: u64,
        alpns: Vec<Vec<u8>>,
    ) -> (quinn::ServerConfig, [u8; 32]) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("hsm node {id}"));
        params.subject_alt_names = vec![
            SanType::DnsName(hsm_client::SERVER_NAME.try_into().expect("dns name")),
            SanType::DnsName(
                hsm_client::server_name(NodeId(id))
                    .try_into()
                    .expect("dns name"),
            ),
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let pin = hsm_client::key_pin_of_cert(cert.der()).expect("pin");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls13")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("cert");
        tls.alpn_protocols = alpns;
        let quic = QuicServerConfig::try_from(tls).expect("quic");
        (quinn::ServerConfig::with_crypto(Arc::new(quic)), pin)
    }
}

/// What a fake node does with a request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answers like a node would (see [`answer`]).
    Serve,
    /// Answers after a pause.
    SlowServe(Duration),
    /// Closes each connection before reading anything.
    CloseConnections,
    /// Reads and records the request, then closes the connection unanswered.
    ReadThenClose,
    /// Answers every request with this error.
    Fail(ClientError),
    /// Reads the request and never answers.
    Hang,
    /// Answers with a frame header announcing more than 64 MiB.
    Oversized,
}

/// What every fake node reports about the cluster.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub cluster_id: ClusterId,
    pub members: Vec<MemberInfo>,
    pub leader: Option<NodeId>,
}

pub type SharedView = Arc<Mutex<ClusterView>>;

pub fn view() -> SharedView {
    Arc::new(Mutex::new(ClusterView {
        cluster_id: CLUSTER_ID,
        members: Vec::new(),
        leader: None,
    }))
}

struct Shared {
    id: u64,
    behaviour: Mutex<Behaviour>,
    seen: Mutex<Vec<Request>>,
    applied: AtomicU64,
    connections: Mutex<Vec<quinn::Connection>>,
    accepted: AtomicUsize,
    active: AtomicUsize,
    most_active: AtomicUsize,
    view: SharedView,
}

/// One fake node on a local UDP port.
pub struct FakeNode {
    pub id: u64,
    pub addr: SocketAddr,
    pub zone: String,
    /// The pin of its TLS key.
    pub pin: [u8; 32],
    shared: Arc<Shared>,
    endpoint: quinn::Endpoint,
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"stopped");
    }
}

impl FakeNode {
    /// Starts node `id` in `zone` with a certificate from `pki`.
    pub fn start(pki: &Pki, id: u64, zone: &str, view: &SharedView) -> FakeNode {
        FakeNode::start_speaking(pki, id, zone, view, hsm_client::alpn_protocols())
    }

    /// [`FakeNode::start`] for a node that offers the ALPN names `alpns`
    /// only (another build's protocol versions).
    pub fn start_speaking(
        pki: &Pki,
        id: u64,
        zone: &str,
        view: &SharedView,
        alpns: Vec<Vec<u8>>,
    ) -> FakeNode {
        let (server, pin) = pki.server_config_speaking(id, alpns);
        let endpoint = quinn::Endpoint::server(server, "127.0.0.1:0".parse().expect("addr"))
            .expect("endpoint");
        let addr = endpoint.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            id,
            behaviour: Mutex::new(Behaviour::Serve),
            seen: Mutex::new(Vec::new()),
            applied: AtomicU64::new(1),
            connections: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            most_active: AtomicUsize::new(0),
            view: view.clone(),
        });
        tokio::spawn(accept_loop(endpoint.clone(), shared.clone()));
        FakeNode {
            id,
            addr,
            zone: zone.to_string(),
            pin,
            shared,
            endpoint,
        }
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().expect("lock") = behaviour;
    }

    pub fn set_applied(&self, index: u64) {
        self.shared.applied.store(index, Ordering::SeqCst);
    }

    /// Requests received, except the client's `ClusterInfo` refreshes.
    pub fn seen(&self) -> Vec<Request> {
        self.shared
            .seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| !matches!(r.op, Operation::ClusterInfo))
            .cloned()
            .collect()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// The most requests this node had in progress at once.
    pub fn most_active(&self) -> usize {
        self.shared.most_active.load(Ordering::SeqCst)
    }

    /// Closes every open connection from the node's side.
    pub fn kick(&self) {
        for c in self.shared.connections.lock().expect("lock").drain(..) {
            c.close(0u32.into(), b"kicked");
        }
    }

    pub fn member(&self) -> MemberInfo {
        MemberInfo {
            id: NodeId(self.id),
            address: self.addr.to_string(),
            zone: self.zone.clone(),
            voter: true,
            transport_key: self.pin,
        }
    }

    pub fn client_node(&self) -> ClientNode {
        ClientNode {
            id: self.id,
            address: self.addr.to_string(),
            zone: self.zone.clone(),
            transport_key: self.pin,
        }
    }
}

/// Fake nodes `1..=zones.len()`, one per zone given, all members of one
/// view.
pub fn cluster(pki: &Pki, zones: &[&str]) -> (Vec<FakeNode>, SharedView) {
    let view = view();
    let nodes: Vec<FakeNode> = zones
        .iter()
        .enumerate()
        .map(|(i, zone)| FakeNode::start(pki, i as u64 + 1, zone, &view))
        .collect();
    view.lock().expect("lock").members = nodes.iter().map(FakeNode::member).collect();
    (nodes, view)
}

/// A client config naming `nodes` and trusting `pki`.
pub fn config(pki: &Pki, nodes: &[ClientNode]) -> ClientConfig {
    ClientConfig {
        cluster_id: CLUSTER_ID.to_string(),
        ca_cert_pem: pki.ca_pem.clone(),
        zone: None,
        nodes: nodes.to_vec(),
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            shared.accepted.fetch_add(1, Ordering::SeqCst);
            if matches!(behaviour(&shared), Behaviour::CloseConnections) {
                conn.close(0u32.into(), b"closing");
                return;
            }
            shared.connections.lock().expect("lock").push(conn.clone());
            while let Ok((send, recv)) = conn.accept_bi().await {
                tokio::spawn(serve_stream(conn.clone(), send, recv, shared.clone()));
            }
        });
    }
}

fn behaviour(shared: &Shared) -> Behaviour {
    shared.behaviour.lock().expect("lock").clone()
}

async fn serve_stream(
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    shared: Arc<Shared>,
) {
    if matches!(behaviour(&shared), Behaviour::CloseConnections) {
        conn.close(0u32.into(), b"closing");
        return;
    }
    let mut header = [0u8; 4];
    if recv.read_exact(&mut header).await.is_err() {
        return;
    }
    let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
    if recv.read_exact(&mut payload).await.is_err() {
        return;
    }
    let Ok(request) = codec::decode::<Request>("request", &payload) else {
        return;
    };
    shared.seen.lock().expect("lock").push(request.clone());
    let active = shared.active.fetch_add(1, Ordering::SeqCst) + 1;
    shared.most_active.fetch_max(active, Ordering::SeqCst);
    let result = match behaviour(&shared) {
        Behaviour::Serve => answer(&shared, &request),
        Behaviour::SlowServe(pause) => {
            tokio::time::sleep(pause).await;
            answer(&shared, &request)
        }
        Behaviour::CloseConnections | Behaviour::ReadThenClose => {
            conn.close(0u32.into(), b"closing");
            shared.active.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        Behaviour::Fail(e) => Err(e),
        Behaviour::Hang => {
            conn.closed().await;
            shared.active.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        Behaviour::Oversized => {
            let len = hsm_client::MAX_RESPONSE_BYTES as u32 + 1;
            let _ = send.write_all(&len.to_be_bytes()).await;
            let _ = send.write_all(&[0u8; 1024]).await;
            let _ = send.finish();
            let _ = send.stopped().await;
            shared.active.fetch_sub(1, Ordering::SeqCst);
            return;
        }
    };
    shared.active.fetch_sub(1, Ordering::SeqCst);
    let response = Response {
        applied_index: shared.applied.load(Ordering::SeqCst),
        result,
    };
    let bytes = codec::encode("response", &response).expect("encode");
    let _ = send.write_all(&(bytes.len() as u32).to_be_bytes()).await;
    let _ = send.write_all(&bytes).await;
    let _ = send.finish();
    let _ = send.stopped().await;
}

/// What a healthy fake node answers.
fn answer(shared: &Shared, request: &Request) -> Result<Reply, ClientError> {
    let view = shared.view.lock().expect("lock").clone();
    match &request.op {
        Operation::ClusterInfo => Ok(Reply::ClusterInfo(ClusterStatus {
            cluster_id: Some(view.cluster_id),
            activated: true,
            answered_by: NodeId(shared.id),
            leader: view.leader,
            term: 1,
            members: view.members,
            keys: 0,
            users: 1,
            domain_key: None,
        })),
        Operation::Login { username, password } => {
            if password.expose_str() == Some(PASSWORD) {
                Ok(Reply::LoggedIn {
                    token: Secret::from(format!("token-for-{username}").as_str()),
                    username: username.clone(),
                    role: Role::Cu,
                    expires_ms: 1_000,
                })
            } else {
                Err(ClientError::new(ErrorKind::LoginFailed, "wrong password"))
            }
        }
        Operation::Sign { message, .. } => {
            if request.session.is_none() {
                return Err(ClientError::new(ErrorKind::Unauthenticated, "log in first"));
            }
            Ok(Reply::Signature(message.iter().rev().copied().collect()))
        }
        // Each message reversed; an empty one refused on its own.
        Operation::SignMany { messages, .. } => {
            if request.session.is_none() {
                return Err(ClientError::new(ErrorKind::Unauthenticated, "log in first"));
            }
            Ok(Reply::Signatures(
                messages
                    .iter()
                    .map(|m| {
                        if m.is_empty() {
                            Err(ClientError::invalid("empty message"))
                        } else {
                            Ok(m.iter().rev().copied().collect::<Vec<u8>>().into())
                        }
                    })
                    .collect(),
            ))
        }
        Operation::Random { len } => Ok(Reply::Random(vec![shared.id as u8; *len as usize])),
        Operation::CreateUser { .. } | Operation::DeleteKey { .. } | Operation::Logout { .. } => {
            Ok(Reply::Done)
        }
        // As a leader that moved leadership to the lowest other member.
        Operation::TransferLeadership { to } => Ok(Reply::LeadershipMoved {
            leader: to.unwrap_or(NodeId(shared.id + 1)),
        }),
        // Deliberately the wrong reply, as a node of another version might.
        Operation::Digest { .. } => Ok(Reply::Done),
        other => Err(ClientError::invalid(format!(
            "the fake node does not serve {}",
            other.name()
        ))),
    }
}
