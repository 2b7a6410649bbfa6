//! How a member's Raft calls treat a peer that answers late and one that
//! says nothing, over real QUIC on loopback.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::*;
use crate::transport::{
    client_endpoint, key_pin_of_pem, node_client_tls, server_endpoint, server_tls, ClusterCa,
};

/// A peer that answers every request after `delay` ms.
async fn answer_after(endpoint: quinn::Endpoint, delay: Arc<AtomicU64>) {
    while let Some(incoming) = endpoint.accept().await {
        let delay = delay.clone();
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                let delay = delay.clone();
                tokio::spawn(async move {
                    if read_frame(&mut recv, MAX_RAFT_FRAME_BYTES).await.is_err() {
                        return;
                    }
                    let ms = delay.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    let reply = RaftReply::BadRequest(format!("answered after {ms} ms"));
                    let bytes = codec::encode("raft reply", &reply).expect("encode");
                    let _ = write_frame(&mut send, &bytes).await;
                    let _ = send.finish();
                });
            }
        });
    }
}

/// A network for node 1 and the address of node 2, which answers after
/// `delay`; node 2's pin.
fn pair(delay: Arc<AtomicU64>) -> (QuicNetwork, SocketAddr, [u8; 32]) {
    let ca = ClusterCa::generate("network test").expect("ca");
    let two = ca.issue_node(NodeId(2), &[]).expect("cert");
    let one = ca.issue_node(NodeId(1), &[]).expect("cert");
    let server = server_endpoint(
        (std::net::Ipv4Addr::LOCALHOST, 0).into(),
        server_tls(ca.cert_pem(), &two).expect("server tls"),
    )
    .expect("server");
    let addr = server.local_addr().expect("addr");
    tokio::spawn(answer_after(server, delay));
    let client = client_endpoint(
        addr,
        node_client_tls(ca.cert_pem(), &one).expect("client tls"),
    )
    .expect("client");
    let pin = key_pin_of_pem(&two.cert_pem).expect("pin");
    (QuicNetwork::new(client), addr, pin)
}

#[tokio::test]
async fn a_peer_that_answers_late_keeps_its_connection_until_it_is_late_too_often() {
    let delay = Arc::new(AtomicU64::new(0));
    let (network, addr, pin) = pair(delay.clone());
    let peer = network.peer(
        NodeId(2),
        &addr.to_string(),
        Expect::Pinned(pin),
        network.conns.clone(),
    );
    // Connected without a deadline; then a soft deadline of 600 ms against
    // answers 5 s late (the acknowledgement of each request comes within
    // milliseconds).
    let answer = peer.call(&RaftRpc::ReadIndex).await;
    assert!(
        matches!(answer, Ok(RaftReply::BadRequest(_))),
        "a prompt answer"
    );
    let connection = peer.cached().expect("the connection is cached").stable_id();
    let option = RPCOption::new(Duration::from_millis(800));
    delay.store(5_000, Ordering::SeqCst);
    for late in 1..=MAX_LATE_IN_A_ROW {
        match peer.call_within(&RaftRpc::ReadIndex, &option).await {
            // A network error, after which openraft sends again at once; an
            // `Unreachable` would make it back off.
            Err(CallError::Network(m)) => assert!(m.contains("alive"), "{m}"),
            Err(CallError::Unreachable(m)) => panic!("late answer {late} taken for gone: {m}"),
            Ok(_) => panic!("answered within the deadline"),
        }
        assert_eq!(
            peer.cached().map(|c| c.stable_id()),
            Some(connection),
            "late answer {late} dropped the live connection"
        );
    }
    // One more: a peer that keeps answering late is backed off from.
    match peer.call_within(&RaftRpc::ReadIndex, &option).await {
        Err(CallError::Unreachable(m)) => assert!(m.contains("did not answer"), "{m}"),
        Err(CallError::Network(m)) => panic!("late for good, still taken for alive: {m}"),
        Ok(_) => panic!("answered within the deadline"),
    }
    assert!(peer.cached().is_none(), "the connection was kept");

    // A prompt answer (on a new connection) clears the count.
    delay.store(0, Ordering::SeqCst);
    let answer = peer.call(&RaftRpc::ReadIndex).await;
    assert!(
        matches!(answer, Ok(RaftReply::BadRequest(_))),
        "served again"
    );
    assert_eq!(peer.late.load(Ordering::SeqCst), 0);
}

/// A relay between a client and `server` that forwards datagrams both ways
/// until `cut` is set, then drops them all: a peer gone silent (a crash, a
/// cut cable) behind a connection that worked. Returns its address.
async fn relay(server: SocketAddr, cut: Arc<AtomicBool>) -> SocketAddr {
    let front = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let back = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    back.connect(server).await.expect("connect");
    let addr = front.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut client = None;
        let (mut a, mut b) = (vec![0u8; 65_536], vec![0u8; 65_536]);
        loop {
            tokio::select! {
                Ok((n, from)) = front.recv_from(&mut a) => {
                    client = Some(from);
                    if !cut.load(Ordering::SeqCst) {
                        let _ = back.send(&a[..n]).await;
                    }
                }
                Ok(n) = back.recv(&mut b) => {
                    if let (Some(to), false) = (client, cut.load(Ordering::SeqCst)) {
                        let _ = front.send_to(&b[..n], to).await;
                    }
                }
            }
        }
    });
    addr
}

#[tokio::test]
async fn a_peer_gone_silent_is_unreachable_and_its_connection_dropped() {
    let (network, server, pin) = pair(Arc::new(AtomicU64::new(0)));
    let cut = Arc::new(AtomicBool::new(false));
    let addr = relay(server, cut.clone()).await;
    let peer = network.peer(
        NodeId(2),
        &addr.to_string(),
        Expect::Pinned(pin),
        network.conns.clone(),
    );
    let answer = peer.call(&RaftRpc::ReadIndex).await;
    assert!(
        matches!(answer, Ok(RaftReply::BadRequest(_))),
        "through the relay"
    );
    assert!(peer.cached().is_some());

    cut.store(true, Ordering::SeqCst);
    let option = RPCOption::new(Duration::from_millis(400));
    match peer.call_within(&RaftRpc::ReadIndex, &option).await {
        Err(CallError::Unreachable(m)) => assert!(m.contains("did not answer"), "{m}"),
        Err(CallError::Network(m)) => panic!("a silent peer taken for alive: {m}"),
        Ok(_) => panic!("a cut peer answered"),
    }
    assert!(peer.cached().is_none(), "the dead connection is kept");
}

#[tokio::test]
async fn a_peer_that_never_answered_is_unreachable_and_leaves_no_connection() {
    let (network, _, pin) = pair(Arc::new(AtomicU64::new(0)));
    // A socket that takes datagrams and never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr");
    let peer = network.peer(
        NodeId(2),
        &addr.to_string(),
        Expect::Pinned(pin),
        network.conns.clone(),
    );
    let option = RPCOption::new(Duration::from_millis(200));
    match peer.call_within(&RaftRpc::ReadIndex, &option).await {
        Err(CallError::Unreachable(m)) => assert!(m.contains("did not answer"), "{m}"),
        Err(CallError::Network(m)) => panic!("a silent peer taken for alive: {m}"),
        Ok(_) => panic!("a silent socket answered"),
    }
    assert!(peer.cached().is_none(), "a connection to nobody is cached");
}
