//! Three Raft members in one process, each with its own sealed RocksDB
//! store, talking over real QUIC with mutual TLS on loopback.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use hsm_node::raft::{QuicNetwork, Raft};
use hsm_node::server::spawn_accept_loop;
use hsm_node::transport::{
    client_endpoint, client_tls, node_client_tls, server_endpoint, server_tls, ClusterCa,
    SERVER_NAME,
};
use hsm_proto::{Actor, ClusterId, Event, EventBody, EventHash, NodeId, NodeRecord, RequestId};
use hsm_raft_store::{create, StateMachineStore, StorageKey};
use openraft::BasicNode;

struct Member {
    raft: Raft,
    sm: StateMachineStore,
    _dir: tempfile::TempDir,
    _acceptor: tokio::task::JoinHandle<()>,
}

async fn start(id: u64, ca: &ClusterCa) -> (Member, String) {
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
    let raft = Raft::new(
        NodeId(id),
        Arc::new(config.validate().expect("config")),
        QuicNetwork::new(client),
        log,
        sm.clone(),
    )
    .await
    .expect("raft");
    let acceptor = spawn_accept_loop(server, raft.clone());
    (
        Member {
            raft,
            sm,
            _dir: dir,
            _acceptor: acceptor,
        },
        addr.to_string(),
    )
}

async fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_elect_a_leader_and_replicate_a_signed_event() {
    let ca = ClusterCa::generate("raft-test").expect("ca");
    let mut members = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    for id in 1..=3u64 {
        let (m, addr) = start(id, &ca).await;
        nodes.insert(NodeId(id), BasicNode { addr });
        members.insert(id, m);
    }
    members[&1]
        .raft
        .initialize(nodes)
        .await
        .expect("initialize");
    let leader = wait_for("a leader", Duration::from_secs(10), || {
        members[&1].raft.metrics().borrow().current_leader
    })
    .await;

    let key = SigningKey::from_bytes(&[7; 32]);
    let event = Event {
        request_id: RequestId([1; 16]),
        timestamp_ms: 1,
        actor: Actor::Node(leader),
        prev_hash: EventHash::GENESIS,
        body: EventBody::ClusterInitialized {
            cluster_id: ClusterId([2; 16]),
            first_node: NodeRecord {
                id: leader,
                signing_key: key.verifying_key().to_bytes(),
                agreement_key: [0; 32],
                zone: "a".into(),
                address: "127.0.0.1:1".into(),
            },
            admin_password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        },
    };
    let signed = hsm_state::sign_event(event, leader, &key);
    let reply = members[&leader.0]
        .raft
        .client_write(signed)
        .await
        .expect("write");
    assert_eq!(reply.data.result, Ok(()));
    let index = reply.log_id.index;

    for (id, m) in &members {
        wait_for(
            &format!("node {id} to apply"),
            Duration::from_secs(10),
            || (*m.sm.applied_index().borrow() >= index).then_some(()),
        )
        .await;
    }
    let digests: Vec<_> = members.values().map(|m| m.sm.digest()).collect();
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "replicas differ: {digests:?}"
    );
    assert!(members[&3].sm.read(|a| a.state.cluster().is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_is_not_from_a_member_is_closed_unread() {
    let ca = ClusterCa::generate("raft-test").expect("ca");
    let (_member, addr) = start(1, &ca).await;
    let addr: std::net::SocketAddr = addr.parse().expect("addr");
    // A client of the cluster (trusts the CA, has no node certificate).
    let endpoint = client_endpoint(addr, client_tls(ca.cert_pem()).expect("tls")).expect("ep");
    let conn = endpoint
        .connect(addr, SERVER_NAME)
        .expect("connect")
        .await
        .expect("tls handshake completes");
    let reason = conn.closed().await;
    match reason {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, hsm_node::server::CLOSE_NOT_MEMBER.into());
        }
        other => panic!("expected an application close, got {other}"),
    }
}
