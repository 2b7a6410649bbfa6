//! Load balancing, failover and deadlines against fake nodes that speak
//! the real protocol over QUIC.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, config, Behaviour, FakeNode, Pki};
use hsm_client::hsm_proto::client::{ClientError, ErrorKind, Operation};
use hsm_client::hsm_proto::{NodeId, Role, Username};
use hsm_client::{Client, ClientOptions, Error};

fn alice() -> Username {
    Username::new("alice").expect("name")
}

fn random_ops(seen: &[hsm_client::hsm_proto::client::Request]) -> usize {
    seen.iter()
        .filter(|r| matches!(r.op, Operation::Random { .. }))
        .count()
}

/// Options that prefer zone `a` (node 1 in these tests).
fn prefer_a() -> ClientOptions {
    ClientOptions::default()
        .zone("a")
        .deadline(Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_fail_over_when_a_node_closes_its_connections() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a", "b"]);
    let cfg = config(&pki, &[nodes[0].client_node(), nodes[1].client_node()]);
    let client = Client::connect(cfg, prefer_a()).await.expect("connect");
    assert_eq!(client.random(4).await.expect("random"), vec![1; 4]);

    nodes[0].set(Behaviour::CloseConnections);
    nodes[0].kick();
    assert_eq!(client.random(4).await.expect("random"), vec![2; 4]);
    assert_eq!(random_ops(&nodes[1].seen()), 1);
    let known = client.nodes();
    assert!(!known[0].up && known[1].up, "{known:?}");
    // While node 1 is down, calls go straight to node 2.
    assert_eq!(client.random(4).await.expect("random"), vec![2; 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_off_on_one_node_is_retried_on_another_with_the_same_request_id() {
    let pki = Pki::new();
    let (nodes, view) = cluster(&pki, &["a", "b"]);
    view.lock().expect("lock").leader = Some(NodeId(1));
    let cfg = config(&pki, &[nodes[0].client_node(), nodes[1].client_node()]);
    let client = Client::connect(cfg, ClientOptions::default())
        .await
        .expect("connect");
    assert_eq!(client.leader(), Some(NodeId(1)));

    nodes[0].set(Behaviour::ReadThenClose);
    client
        .create_user(alice(), Role::Cu, "initial password")
        .await
        .expect("created");
    let on_1 = nodes[0].seen();
    let on_2 = nodes[1].seen();
    assert_eq!(on_1.len(), 1, "the leader got the write first");
    assert_eq!(on_2.len(), 1, "then the other node");
    assert!(matches!(on_2[0].op, Operation::CreateUser { .. }));
    assert_eq!(on_1[0].request_id, on_2[0].request_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_to_the_leader() {
    let pki = Pki::new();
    let (nodes, view) = cluster(&pki, &["a", "b"]);
    view.lock().expect("lock").leader = Some(NodeId(2));
    let cfg = config(&pki, &[nodes[0].client_node(), nodes[1].client_node()]);
    let client = Client::connect(cfg, prefer_a()).await.expect("connect");
    for _ in 0..5 {
        client
            .create_user(alice(), Role::Cu, "initial password")
            .await
            .expect("created");
    }
    assert_eq!(nodes[0].seen().len(), 0);
    assert_eq!(nodes[1].seen().len(), 5);
    // Reads still prefer the caller's zone.
    assert_eq!(client.random(1).await.expect("random"), vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_answers_are_retried_elsewhere() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a", "b"]);
    let cfg = config(&pki, &[nodes[0].client_node(), nodes[1].client_node()]);
    let client = Client::connect(cfg, prefer_a()).await.expect("connect");
    nodes[0].set(Behaviour::Fail(ClientError::unavailable("catching up")));
    assert_eq!(client.random(2).await.expect("random"), vec![2; 2]);
    assert_eq!(random_ops(&nodes[0].seen()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_returned_at_once() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a", "b"]);
    let cfg = config(&pki, &[nodes[0].client_node(), nodes[1].client_node()]);
    let client = Client::connect(cfg, prefer_a()).await.expect("connect");
    nodes[0].set(Behaviour::Fail(ClientError::denied("not yours")));
    let e = client.random(2).await.expect_err("refused");
    assert_eq!(e.kind(), Some(ErrorKind::PermissionDenied), "{e}");
    assert_eq!(random_ops(&nodes[1].seen()), 0);
    // A refusal says nothing about the node's health.
    assert!(client.nodes()[0].up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_node_fails_the_error_lists_each_address_and_reason() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a", "b"]);
    for n in &nodes {
        n.set(Behaviour::CloseConnections);
    }
    let cfg = config(&pki, &[nodes[0].client_node(), nodes[1].client_node()]);
    let deadline = Duration::from_millis(800);
    let client = Client::new(cfg, ClientOptions::default().deadline(deadline)).expect("client");
    let started = Instant::now();
    let e = client.random(2).await.expect_err("nothing serves");
    assert!(started.elapsed() < deadline + Duration::from_millis(500));
    let Error::Unavailable { tried } = &e else {
        panic!("expected unavailable, got {e:?}");
    };
    let mut addresses: Vec<&str> = tried.iter().map(|(a, _)| a.as_str()).collect();
    addresses.sort_unstable();
    let mut expected = vec![nodes[0].addr.to_string(), nodes[1].addr.to_string()];
    expected.sort_unstable();
    assert_eq!(addresses, expected);
    assert!(tried.iter().all(|(_, reason)| !reason.is_empty()), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_answers_the_handshake_is_skipped() {
    let pki = Pki::new();
    let (nodes, view) = cluster(&pki, &["b"]);
    // A UDP socket that swallows every packet.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let silent_node = hsm_client::ClientNode {
        id: 9,
        address: silent.local_addr().expect("addr").to_string(),
        zone: "a".into(),
        transport_key: [9; 32],
    };
    view.lock()
        .expect("lock")
        .members
        .push(hsm_client::MemberInfo {
            id: NodeId(9),
            address: silent_node.address.clone(),
            zone: "a".into(),
            voter: true,
            transport_key: [9; 32],
        });
    let cfg = config(&pki, &[silent_node, nodes[0].client_node()]);
    let options = prefer_a().connect_timeout(Duration::from_millis(300));
    let client = Client::new(cfg, options).expect("client");
    assert_eq!(client.random(1).await.expect("random"), vec![1]);
    // The call went on to node 1 while the handshake with the silent node
    // was still under way; when that runs out, the node is marked down.
    let silent_up = || {
        client
            .nodes()
            .iter()
            .find(|n| n.id == NodeId(9))
            .map(|n| n.up)
    };
    let due = Instant::now() + Duration::from_secs(5);
    while silent_up() != Some(false) && Instant::now() < due {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(silent_up(), Some(false));
}

/// `n` members of `zone` (ids 10 on) that never answer a handshake:
/// sockets that swallow every packet, as a zone cut off. Returns the
/// sockets (keep them) and the members as a config lists them.
fn silent_zone(
    view: &common::SharedView,
    n: usize,
    zone: &str,
) -> (Vec<std::net::UdpSocket>, Vec<hsm_client::ClientNode>) {
    let sockets: Vec<std::net::UdpSocket> = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let mut listed = Vec::new();
    for (i, socket) in sockets.iter().enumerate() {
        let node = hsm_client::ClientNode {
            id: 10 + i as u64,
            address: socket.local_addr().expect("addr").to_string(),
            zone: zone.into(),
            transport_key: [9; 32],
        };
        view.lock()
            .expect("lock")
            .members
            .push(hsm_client::MemberInfo {
                id: NodeId(node.id),
                address: node.address.clone(),
                zone: zone.into(),
                voter: true,
                transport_key: [9; 32],
            });
        listed.push(node);
    }
    (sockets, listed)
}

/// A zone cut off from the client (its nodes never answer a handshake)
/// with more nodes in it than the deadline has connect timeouts: the
/// client, in that zone and knowing none of them is down, still reaches
/// the node of another zone in time. (Before, it tried the silent nodes
/// one by one, each for the whole connect timeout: a fresh process in a
/// cut-off zone of a large cluster, such as `hsm` in `hsm-chaos deploy
/// --nodes 28`, failed every call.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_zone_does_not_hold_a_call_for_a_connect_timeout_per_node() {
    let pki = Pki::new();
    let (nodes, view) = cluster(&pki, &["b"]);
    let (_silent, mut listed) = silent_zone(&view, 6, "a");
    listed.push(nodes[0].client_node());
    let cfg = config(&pki, &listed);
    // Six silent nodes at 2 s each would take 12 s.
    let options = ClientOptions::default()
        .zone("a")
        .connect_timeout(Duration::from_secs(2))
        .deadline(Duration::from_secs(5));
    for _ in 0..3 {
        // A new client each time, as each `hsm` command is.
        let client = Client::new(cfg.clone(), options.clone()).expect("client");
        assert_eq!(client.random(1).await.expect("random"), vec![1]);
    }
}

/// Calls cancelled while their connects race, and calls that win a race,
/// leave nothing counted in flight once the losing handshakes end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedged_connects_leave_nothing_in_flight() {
    let pki = Pki::new();
    let (nodes, view) = cluster(&pki, &["b"]);
    let (_silent, mut listed) = silent_zone(&view, 3, "a");
    listed.push(nodes[0].client_node());
    let options = ClientOptions::default()
        .zone("a")
        .connect_timeout(Duration::from_millis(800))
        .deadline(Duration::from_secs(5));
    // Cancelled while the first connects race.
    let client = Client::new(config(&pki, &listed), options.clone()).expect("client");
    let cut = tokio::time::timeout(Duration::from_millis(300), client.random(1)).await;
    assert!(cut.is_err(), "the call should still be connecting: {cut:?}");
    // Won by node 1 while silent nodes were still being connected to.
    let client2 = Client::new(config(&pki, &listed), options).expect("client");
    assert_eq!(client2.random(1).await.expect("random"), vec![1]);
    // Once every handshake has run out, nothing is in flight, and each
    // silent node's handshake counted as its failure.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for c in [&client, &client2] {
        let stats = c.stats();
        assert!(stats.iter().all(|s| s.in_flight == 0), "{stats:?}");
    }
    let stats = client2.stats();
    let silent_failed: Vec<u64> = stats
        .iter()
        .filter(|s| s.id.0 >= 10)
        .map(|s| s.failed)
        .collect();
    assert!(
        silent_failed.len() == 3 && silent_failed.iter().all(|&f| f >= 1),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_node_costs_one_attempt_timeout() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a", "b"]);
    let cfg = config(&pki, &[nodes[0].client_node(), nodes[1].client_node()]);
    let options = prefer_a().attempt_timeout(Duration::from_millis(300));
    let client = Client::connect(cfg, options).await.expect("connect");
    nodes[0].set(Behaviour::Hang);
    let started = Instant::now();
    assert_eq!(client.random(1).await.expect("random"), vec![2]);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(random_ops(&nodes[0].seen()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_runs_out_of_time_reports_the_deadline() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a"]);
    let cfg = config(&pki, &[nodes[0].client_node()]);
    let client = Client::connect(cfg, ClientOptions::default())
        .await
        .expect("connect");
    nodes[0].set(Behaviour::Hang);
    let e = client
        .with_deadline(Duration::from_millis(300))
        .random(1)
        .await
        .expect_err("hangs");
    assert_eq!(e, Error::DeadlineExceeded);
    assert!(e.is_transient());
    // The handle it came from keeps its own deadline.
    assert_eq!(client.deadline(), Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_response_is_refused_as_a_protocol_error() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a"]);
    let cfg = config(&pki, &[nodes[0].client_node()]);
    let client = Client::connect(cfg, ClientOptions::default())
        .await
        .expect("connect");
    nodes[0].set(Behaviour::Oversized);
    match client.random(1).await {
        Err(Error::Protocol(m)) => assert!(m.contains("exceeds"), "{m}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_from_another_ca_is_not_trusted() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let (nodes, _view) = cluster(&stranger, &["a"]);
    let cfg = config(&pki, &[nodes[0].client_node()]);
    let options = ClientOptions::default().deadline(Duration::from_millis(500));
    let e = Client::connect(cfg, options).await.expect_err("untrusted");
    let Error::Unavailable { tried } = &e else {
        panic!("expected unavailable, got {e:?}");
    };
    assert!(
        tried[0].1.contains("certificate") || tried[0].1.contains("UnknownIssuer"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_another_id_is_refused() {
    let pki = Pki::new();
    let (nodes, view) = cluster(&pki, &["a"]);
    view.lock().expect("lock").cluster_id = hsm_client::hsm_proto::ClusterId([7; 16]);
    let cfg = config(&pki, &[nodes[0].client_node()]);
    match Client::connect(cfg, ClientOptions::default()).await {
        Err(Error::Config(m)) => assert!(m.contains("07070707"), "{m}"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_is_learned_and_followed() {
    let pki = Pki::new();
    let (nodes, view) = cluster(&pki, &["a", "b"]);
    // The config knows only node 1; the cluster reports both.
    let cfg = config(&pki, &[nodes[0].client_node()]);
    let client = Client::connect(cfg, prefer_a()).await.expect("connect");
    let ids: Vec<u64> = client.nodes().iter().map(|n| n.id.0).collect();
    assert_eq!(ids, vec![1, 2]);

    nodes[0].set(Behaviour::CloseConnections);
    nodes[0].kick();
    assert_eq!(client.random(1).await.expect("random"), vec![2]);

    // Node 1 leaves, node 3 joins and leads.
    let third = FakeNode::start(&pki, 3, "c", &view);
    {
        let mut v = view.lock().expect("lock");
        v.members = vec![nodes[1].member(), third.member()];
        v.leader = Some(NodeId(3));
    }
    let status = client.cluster_info().await.expect("status");
    assert_eq!(status.members.len(), 2);
    let ids: Vec<u64> = client.nodes().iter().map(|n| n.id.0).collect();
    assert_eq!(ids, vec![2, 3]);
    assert_eq!(client.leader(), Some(NodeId(3)));
    client
        .create_user(alice(), Role::Cu, "initial password")
        .await
        .expect("created");
    assert_eq!(third.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_and_made_again_when_closed() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a"]);
    let cfg = config(&pki, &[nodes[0].client_node()]);
    let client = Client::connect(cfg, ClientOptions::default())
        .await
        .expect("connect");
    for _ in 0..10 {
        client.random(1).await.expect("random");
    }
    assert_eq!(nodes[0].accepted(), 1);
    nodes[0].kick();
    client.random(1).await.expect("random after reconnect");
    assert_eq!(nodes[0].accepted(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_stay_within_the_bound() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a"]);
    let cfg = config(&pki, &[nodes[0].client_node()]);
    let client = Client::connect(cfg, ClientOptions::default().max_in_flight(3))
        .await
        .expect("connect");
    nodes[0].set(Behaviour::SlowServe(Duration::from_millis(20)));
    let ops = (0..30).map(|_| Operation::Random { len: 1 });
    let results = client.call_many(ops).await;
    assert_eq!(results.len(), 30);
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let most = nodes[0].most_active();
    assert!((2..=3).contains(&most), "{most} in flight at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_spread_over_the_nodes() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a", "b"]);
    let cfg = config(&pki, &[nodes[0].client_node(), nodes[1].client_node()]);
    let client = Client::connect(cfg, ClientOptions::default())
        .await
        .expect("connect");
    for n in &nodes {
        n.set(Behaviour::SlowServe(Duration::from_millis(20)));
    }
    let ops = (0..40).map(|_| Operation::Random { len: 1 });
    let results = client.call_many(ops).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let (on_1, on_2) = (random_ops(&nodes[0].seen()), random_ops(&nodes[1].seen()));
    assert_eq!(on_1 + on_2, 40);
    assert!(on_1 >= 10 && on_2 >= 10, "{on_1} and {on_2}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_for_an_in_flight_slot_is_bounded_by_its_deadline() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a"]);
    let cfg = config(&pki, &[nodes[0].client_node()]);
    let client = Client::connect(cfg, ClientOptions::default().max_in_flight(1))
        .await
        .expect("connect");
    nodes[0].set(Behaviour::Hang);
    let holder = client.clone();
    let hung = tokio::spawn(async move { holder.random(1).await });
    // Wait until the first call holds the only slot.
    let started = Instant::now();
    while nodes[0].seen().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(5), "never sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let e = client
        .with_deadline(Duration::from_millis(200))
        .random(1)
        .await
        .expect_err("no slot");
    assert_eq!(e, Error::DeadlineExceeded);
    assert_eq!(nodes[0].seen().len(), 1);
    hung.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_leaves_nothing_in_flight() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a"]);
    let cfg = config(&pki, &[nodes[0].client_node()]);
    let client = Client::connect(cfg, ClientOptions::default())
        .await
        .expect("connect");
    nodes[0].set(Behaviour::Hang);
    let cut = tokio::time::timeout(Duration::from_millis(200), client.random(1)).await;
    assert!(cut.is_err());
    let known = client.nodes();
    assert_eq!((known[0].in_flight, known[0].up), (0, true), "{known:?}");
    nodes[0].set(Behaviour::Serve);
    assert_eq!(client.random(1).await.expect("random"), vec![1]);
}

/// A node of a build that speaks only client protocol versions this SDK
/// does not: the handshake fails and the SDK says why; calls go to the
/// nodes it can speak with. A node that speaks a newer version too serves
/// this SDK in the version they share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_speaks_no_client_protocol_version_of_this_sdk_is_named_as_such() {
    let pki = Pki::new();
    let view = common::view();
    let newer_only =
        FakeNode::start_speaking(&pki, 1, "a", &view, vec![b"hsm-client/999".to_vec()]);
    let mut both = hsm_client::alpn_protocols();
    both.insert(0, b"hsm-client/999".to_vec());
    let newer_and_ours = FakeNode::start_speaking(&pki, 2, "b", &view, both);
    view.lock().expect("lock").members = vec![newer_only.member(), newer_and_ours.member()];

    let options = ClientOptions::default().deadline(Duration::from_secs(5));
    let alone = config(&pki, &[newer_only.client_node()]);
    let refused = Client::connect(alone, options.clone())
        .await
        .expect_err("no version in common");
    assert!(
        refused.to_string().contains(&format!(
            "the node speaks none of the client protocol versions this client speaks ({}): \
             upgrade the client or the node",
            hsm_proto::protocol::describe(&hsm_proto::protocol::CLIENT)
        )),
        "{refused}"
    );

    let cfg = config(
        &pki,
        &[newer_only.client_node(), newer_and_ours.client_node()],
    );
    let client = Client::connect(cfg, options.zone("a"))
        .await
        .expect("connect");
    for _ in 0..4 {
        assert_eq!(client.random(4).await.expect("random"), vec![2; 4]);
    }
    assert_eq!(newer_only.accepted(), 0);
}

/// An operation of a newer client protocol version (moving leadership, 2)
/// is never sent to a node whose connection agreed on an older one (a
/// node of an earlier build, which would not understand it): the SDK says
/// why and sends it to a node that speaks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_goes_only_to_nodes_that_speak_its_version() {
    let pki = Pki::new();
    let view = common::view();
    let old = FakeNode::start_speaking(&pki, 1, "a", &view, vec![b"hsm-client/1".to_vec()]);
    view.lock().expect("lock").members = vec![old.member()];
    let options = ClientOptions::default().deadline(Duration::from_secs(3));
    let client = Client::connect(config(&pki, &[old.client_node()]), options.clone())
        .await
        .expect("connect");
    // Version 1 operations are served.
    assert_eq!(client.random(4).await.expect("random"), vec![1; 4]);
    let refused = client
        .transfer_leadership(None)
        .await
        .expect_err("node 1 speaks only version 1");
    assert!(
        refused.to_string().contains(
            "it speaks client protocol 1, and transfer-leadership needs 2: upgrade the node"
        ),
        "{refused}"
    );
    assert!(
        old.seen()
            .iter()
            .all(|r| !matches!(r.op, Operation::TransferLeadership { .. })),
        "sent to a node that does not speak it"
    );

    // With a node that speaks it too, the operation goes there (and the
    // version-1 node is not counted as down: it still serves reads).
    let new = FakeNode::start(&pki, 2, "b", &view);
    view.lock().expect("lock").members = vec![old.member(), new.member()];
    let both = config(&pki, &[old.client_node(), new.client_node()]);
    let client = Client::connect(both, options.zone("a"))
        .await
        .expect("connect");
    assert_eq!(
        client
            .transfer_leadership(Some(NodeId(7)))
            .await
            .expect("moved"),
        NodeId(7)
    );
    assert!(new
        .seen()
        .iter()
        .any(|r| matches!(r.op, Operation::TransferLeadership { .. })));
    assert!(old
        .seen()
        .iter()
        .all(|r| !matches!(r.op, Operation::TransferLeadership { .. })));
    assert_eq!(client.random(4).await.expect("random"), vec![1; 4]);
}
