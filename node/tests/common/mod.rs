//! In-process cluster members with real stores and real QUIC on loopback.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use hsm_node::proposer::Proposer;
use hsm_node::raft::{DomainSource, QuicNetwork, Raft, SnapshotInbox, SnapshotSigner};
use hsm_node::secrets::{session, DomainKey, Keyring};
use hsm_node::server::{spawn_accept_loop, ConnectionLimits, Handlers};
use hsm_node::transport::{
    client_endpoint, node_client_tls, server_endpoint, server_tls, ClusterCa,
};
use hsm_node::writer::Writer;
use hsm_proto::{NodeId, NodeRecord};
use hsm_raft_store::{create, StateMachineStore, StorageKey};

pub struct Member {
    pub id: NodeId,
    pub addr: String,
    pub raft: Raft,
    pub sm: StateMachineStore,
    pub proposer: Arc<Proposer>,
    pub writer: Writer,
    pub signing: SigningKey,
    /// The pin of its TLS key.
    pub transport_key: [u8; 32],
    server: quinn::Endpoint,
    acceptor: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Member {
    /// Stops the member as a crash would look to its peers: Raft stops,
    /// the endpoint closes, nothing more is answered.
    pub async fn kill(self) {
        self.acceptor.abort();
        self.server.close(0u32.into(), b"killed");
        let _ = self.raft.shutdown().await;
    }

    pub fn record(&self) -> NodeRecord {
        NodeRecord {
            id: self.id,
            signing_key: self.signing.verifying_key().to_bytes(),
            agreement_key: x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(
                [self.id.0 as u8 + 1; 32],
            ))
            .to_bytes(),
            transport_key: self.transport_key,
            zone: format!("zone-{}", self.id.0),
            address: self.addr.clone(),
        }
    }
}

/// The domain key of the in-process members of this test binary.
pub fn domain() -> Arc<DomainKey> {
    static DOMAIN: std::sync::OnceLock<Arc<DomainKey>> = std::sync::OnceLock::new();
    DOMAIN
        .get_or_init(|| Arc::new(DomainKey::generate(0)))
        .clone()
}

/// A session token for user `name` as `member`'s replica has it, as a
/// login on any node would issue it.
pub fn session_of(member: &Member, name: &str) -> hsm_proto::client::Secret {
    let user = member
        .sm
        .read(|a| {
            a.state
                .user(&hsm_proto::Username::new(name).expect("name"))
                .cloned()
        })
        .expect("user");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let claims = session::SessionClaims {
        username: user.username.clone(),
        role: user.role,
        password_epoch: user.password_epoch,
        user_created_ms: user.created_ms,
        issued_ms: now,
        expires_ms: now + 3_600_000,
        token_id: [7; 16],
        session_epoch: user.session_epoch,
    };
    let token = session::issue(&domain(), &claims);
    hsm_proto::client::Secret::new(token.as_bytes().to_vec())
}

pub async fn start(id: u64, ca: &ClusterCa) -> Member {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, sm) = create(dir.path(), &StorageKey::generate()).expect("store");
    let cert = ca
        .issue_node(NodeId(id), &["127.0.0.1".into()])
        .expect("cert");
    let server = server_endpoint(
        "127.0.0.1:0".parse().expect("addr"),
        server_tls(ca.cert_pem(), &cert).expect("server tls"),
    )
    .expect("server endpoint");
    let addr = server.local_addr().expect("addr");
    let client = client_endpoint(addr, node_client_tls(ca.cert_pem(), &cert).expect("tls"))
        .expect("client endpoint");
    let config = openraft::Config {
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        ..Default::default()
    };
    let network = QuicNetwork::new(client);
    let signing = SigningKey::from_bytes(&[id as u8; 32]);
    network.act_as(SnapshotSigner {
        node: NodeId(id),
        key: signing.clone(),
        sm: sm.clone(),
    });
    let raft = Raft::new(
        NodeId(id),
        Arc::new(config.validate().expect("config")),
        network.clone(),
        log.clone(),
        sm.clone(),
    )
    .await
    .expect("raft");
    let proposer = Arc::new(Proposer::new(
        raft.clone(),
        log,
        sm.clone(),
        NodeId(id),
        signing.clone(),
        Arc::default(),
    ));
    let acceptor = spawn_accept_loop(
        server.clone(),
        Handlers {
            raft: raft.clone(),
            reads: hsm_node::raft::LeaderReads::new(
                raft.clone(),
                std::time::Duration::from_millis(500),
            ),
            proposer: proposer.clone(),
            domain: Some(DomainSource {
                keyring: Arc::new(Keyring::new(
                    NodeId(id),
                    x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng),
                    domain(),
                )),
                sm: sm.clone(),
            }),
            snapshots: SnapshotInbox::new(sm.clone()),
            contact: Default::default(),
            service: None,
            max_client_frame: 1 << 20,
            max_raft_frame: hsm_node::raft::MAX_RAFT_FRAME_BYTES,
            connections: ConnectionLimits {
                total: 4096,
                per_address: 256,
            },
            // No task asks members for a roster in these in-process nodes.
            strangers: Arc::default(),
        },
    );
    let writer = Writer::new(raft.clone(), proposer.clone(), network);
    Member {
        id: NodeId(id),
        addr: addr.to_string(),
        raft,
        sm,
        proposer,
        writer,
        signing,
        transport_key: hsm_node::transport::key_pin_of_pem(&cert.cert_pem).expect("pin"),
        server,
        acceptor,
        _dir: dir,
    }
}

pub async fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` members (ids 1..=n) formed into one Raft cluster; returns them with
/// the elected leader.
pub async fn start_cluster(n: u64, ca: &ClusterCa) -> (BTreeMap<NodeId, Arc<Member>>, NodeId) {
    let mut members = BTreeMap::new();
    for id in 1..=n {
        members.insert(NodeId(id), Arc::new(start(id, ca).await));
    }
    let nodes: BTreeMap<_, _> = members
        .values()
        .map(|m| {
            (
                m.id,
                openraft::BasicNode {
                    addr: m.addr.clone(),
                },
            )
        })
        .collect();
    let first = members.values().next().expect("a member").clone();
    first.raft.initialize(nodes).await.expect("initialize");
    let leader = wait_for("a leader", Duration::from_secs(10), || {
        first.raft.metrics().borrow().current_leader
    })
    .await;
    (members, leader)
}
