//! Three Raft members in one process, each with its own sealed RocksDB
//! store, talking over real QUIC with mutual TLS on loopback.

mod common;

use std::time::Duration;

use common::*;
use hsm_node::transport::{client_endpoint, client_tls, ClusterCa, SERVER_NAME};
use hsm_proto::{Actor, ClusterId, Event, EventBody, EventHash, RequestId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_elect_a_leader_and_replicate_a_signed_event() {
    let ca = ClusterCa::generate("raft-test").expect("ca");
    let (members, leader) = start_cluster(3, &ca).await;

    let l = &members[&leader];
    let event = Event {
        request_id: RequestId([1; 16]),
        timestamp_ms: 1,
        actor: Actor::Node(leader),
        prev_hash: EventHash::GENESIS,
        body: EventBody::ClusterInitialized {
            cluster_id: ClusterId([2; 16]),
            first_node: l.record(),
            other_nodes: vec![],
            admin_password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        },
    };
    let signed = hsm_state::sign_event(event, leader, &l.signing);
    let reply = l.raft.client_write(signed).await.expect("write");
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
    assert!(members[&hsm_proto::NodeId(3)]
        .sm
        .read(|a| a.state.cluster().is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_is_not_from_a_member_is_closed_unread() {
    let ca = ClusterCa::generate("raft-test").expect("ca");
    let member = start(1, &ca).await;
    let addr: std::net::SocketAddr = member.addr.parse().expect("addr");
    // A client of the cluster (trusts the CA, has no node certificate).
    let endpoint = client_endpoint(addr, client_tls(ca.cert_pem()).expect("tls")).expect("ep");
    let conn = endpoint
        .connect(addr, SERVER_NAME)
        .expect("connect")
        .await
        .expect("tls handshake completes");
    match conn.closed().await {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, hsm_node::server::CLOSE_NOT_MEMBER.into());
        }
        other => panic!("expected an application close, got {other}"),
    }
}
