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
            // Every Raft member has a member record (with its TLS key pin)
            // from the start, as `hsm-node dev` founds a cluster.
            other_nodes: members
                .values()
                .filter(|m| m.id != leader)
                .map(|m| m.record())
                .collect(),
            admin_password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            domain_check: domain().check(),
        },
    };
    let signed = hsm_state::sign_event(event, leader, &l.signing);
    let reply = l
        .raft
        .client_write(hsm_raft_store::EventBatch::one(signed))
        .await
        .expect("write");
    assert_eq!(reply.data.events.len(), 1);
    assert_eq!(reply.data.events[0].result, Ok(()));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certified_node_that_is_not_a_member_cannot_forward_writes_or_fetch_the_domain_key() {
    use hsm_node::raft::{ForwardedWrite, QuicNetwork};
    use hsm_node::transport::node_client_tls;

    let ca = ClusterCa::generate("raft-test").expect("ca");
    let (members, leader) = start_cluster(3, &ca).await;
    let l = &members[&leader];
    // A host the CA certified as node 9, never approved as a member.
    let rogue_cert = ca
        .issue_node(hsm_proto::NodeId(9), &["127.0.0.1".into()])
        .expect("cert");
    let addr: std::net::SocketAddr = l.addr.parse().expect("addr");
    let rogue = QuicNetwork::new(
        client_endpoint(
            addr,
            node_client_tls(ca.cert_pem(), &rogue_cert).expect("tls"),
        )
        .expect("endpoint"),
    );
    let write = ForwardedWrite {
        request_id: RequestId([9; 16]),
        actor: Actor::User(hsm_proto::Username::new("admin").expect("name")),
        session: None,
        body: EventBody::UserDeleted {
            username: hsm_proto::Username::new("alice").expect("name"),
        },
    };
    let answer = rogue.forward(leader, &l.addr, write).await;
    let refusal = answer.expect_err("a non-member's write is refused");
    assert!(refusal.contains("not a member"), "{refusal}");
    // Nor may it fetch the domain key for a member's id.
    let answer = rogue
        .fetch_domain_key(leader, &l.addr, l.transport_key)
        .await;
    let refusal = answer.expect_err("refused");
    assert!(refusal.contains("not a member"), "{refusal}");
}
