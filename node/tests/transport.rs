//! TLS over QUIC between nodes and clients, on loopback.

use std::net::SocketAddr;

use hsm_node::transport::{
    client_endpoint, client_tls, negotiated, node_client_tls, peer_is_cluster_member, read_frame,
    server_endpoint, server_tls, write_frame, ClusterCa, FrameError, NodeCert, Speaks, SERVER_NAME,
};
use hsm_proto::NodeId;

const MAX: usize = 1024;

struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An echo server: on Raft connections it requires a cluster certificate;
/// each stream gets its frame back, or a one-byte error code frame
/// (1 = too large) when the frame is refused.
fn echo_server(ca: &ClusterCa, cert: &NodeCert) -> Server {
    let endpoint = server_endpoint(
        "127.0.0.1:0".parse().expect("addr"),
        server_tls(ca.cert_pem(), cert).expect("server tls"),
    )
    .expect("endpoint");
    let addr = endpoint.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                let is_client = matches!(negotiated(&conn), Some(Speaks::Client(_)));
                if !is_client && !peer_is_cluster_member(&conn) {
                    conn.close(1u32.into(), b"not a cluster member");
                    return;
                }
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        let reply = match read_frame(&mut recv, MAX).await {
                            Ok(payload) => payload,
                            Err(FrameError::TooLarge { .. }) => vec![1],
                            Err(_) => vec![2],
                        };
                        let _ = write_frame(&mut send, &reply).await;
                    });
                }
            });
        }
    });
    Server { addr, task }
}

async fn roundtrip(conn: &quinn::Connection, raw: &[u8]) -> Result<Vec<u8>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(raw).await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    read_frame(&mut recv, MAX * 2)
        .await
        .map_err(|e| e.to_string())
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

#[tokio::test]
async fn members_talk_raft_with_mutual_tls_and_frames_round_trip() {
    let ca = ClusterCa::generate("test").expect("ca");
    let server = echo_server(
        &ca,
        &ca.issue_node(NodeId(1), &["127.0.0.1".into()])
            .expect("cert"),
    );
    let me = ca.issue_node(NodeId(2), &[]).expect("cert");
    let endpoint = client_endpoint(
        server.addr,
        node_client_tls(ca.cert_pem(), &me).expect("tls"),
    )
    .expect("endpoint");
    let conn = endpoint
        .connect(server.addr, SERVER_NAME)
        .expect("connect")
        .await
        .expect("handshake");
    assert_eq!(
        roundtrip(&conn, &framed(b"append entries"))
            .await
            .expect("echo"),
        b"append entries"
    );
    // Several streams on one connection.
    for i in 0..5u8 {
        assert_eq!(
            roundtrip(&conn, &framed(&[i; 100])).await.expect("echo"),
            vec![i; 100]
        );
    }
}

#[tokio::test]
async fn a_node_with_a_certificate_from_another_ca_is_refused() {
    let ca = ClusterCa::generate("good").expect("ca");
    let server = echo_server(&ca, &ca.issue_node(NodeId(1), &[]).expect("cert"));
    let other = ClusterCa::generate("evil").expect("other ca");
    let intruder = other.issue_node(NodeId(9), &[]).expect("cert");
    // The intruder trusts the real CA (it knows the cluster's public cert)
    // but its own certificate is not from that CA.
    let endpoint = client_endpoint(
        server.addr,
        node_client_tls(ca.cert_pem(), &intruder).expect("tls"),
    )
    .expect("endpoint");
    let result = match endpoint
        .connect(server.addr, SERVER_NAME)
        .expect("connect")
        .await
    {
        Err(e) => Err(e.to_string()),
        Ok(conn) => roundtrip(&conn, &framed(b"vote")).await,
    };
    assert!(result.is_err(), "intruder got an answer: {result:?}");
}

#[tokio::test]
async fn a_client_refuses_a_server_outside_the_cluster() {
    let ca = ClusterCa::generate("good").expect("ca");
    let other = ClusterCa::generate("evil").expect("other ca");
    let server = echo_server(&other, &other.issue_node(NodeId(1), &[]).expect("cert"));
    let endpoint =
        client_endpoint(server.addr, client_tls(ca.cert_pem()).expect("tls")).expect("ep");
    let err = endpoint
        .connect(server.addr, SERVER_NAME)
        .expect("connect")
        .await
        .expect_err("server from another CA refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

/// An echo server and a connection to it from a client without a
/// certificate (as the SDK connects).
async fn client_of_echo_server() -> (Server, quinn::Endpoint, quinn::Connection) {
    let ca = ClusterCa::generate("test").expect("ca");
    let server = echo_server(&ca, &ca.issue_node(NodeId(1), &[]).expect("cert"));
    let endpoint =
        client_endpoint(server.addr, client_tls(ca.cert_pem()).expect("tls")).expect("ep");
    let conn = endpoint
        .connect(server.addr, SERVER_NAME)
        .expect("connect")
        .await
        .expect("handshake");
    (server, endpoint, conn)
}

#[tokio::test]
async fn clients_without_a_certificate_are_served_on_the_client_alpn() {
    let (_server, _endpoint, conn) = client_of_echo_server().await;
    assert_eq!(
        roundtrip(&conn, &framed(b"login"))
            .await
            .expect("client served"),
        b"login"
    );
}

#[tokio::test]
async fn oversized_and_truncated_frames_fail_that_stream_only() {
    let (_server, _endpoint, conn) = client_of_echo_server().await;
    // Announces 4 GiB - 1: refused from the header alone.
    let mut huge = u32::MAX.to_be_bytes().to_vec();
    huge.extend_from_slice(b"x");
    assert_eq!(roundtrip(&conn, &huge).await.expect("error reply"), vec![1]);
    // Announces 100 bytes, sends 3.
    let mut short = 100u32.to_be_bytes().to_vec();
    short.extend_from_slice(b"abc");
    assert_eq!(
        roundtrip(&conn, &short).await.expect("error reply"),
        vec![2]
    );
    // Only a partial header.
    assert_eq!(
        roundtrip(&conn, &[0, 0]).await.expect("error reply"),
        vec![2]
    );
    // The connection still works.
    assert_eq!(
        roundtrip(&conn, &framed(b"still here"))
            .await
            .expect("echo"),
        b"still here"
    );
}

#[test]
fn a_ca_round_trips_through_pem_and_keeps_issuing() {
    let ca = ClusterCa::generate("test").expect("ca");
    let again = ClusterCa::from_pem(ca.cert_pem(), &ca.key_pem()).expect("reload");
    assert_eq!(again.cert_pem(), ca.cert_pem());
    let cert = again
        .issue_node(NodeId(3), &["localhost".into(), "::1".into()])
        .expect("issue");
    assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(
        format!("{cert:?}").find("PRIVATE").is_none(),
        "debug is redacted"
    );
}

#[test]
fn a_ca_key_that_does_not_belong_to_the_certificate_is_refused() {
    let ours = ClusterCa::generate("ours").expect("ca");
    let other = ClusterCa::generate("other").expect("ca");
    ClusterCa::from_pem(ours.cert_pem(), &ours.key_pem()).expect("the matching pair loads");
    let err = ClusterCa::from_pem(ours.cert_pem(), &other.key_pem()).expect_err("mismatch");
    assert!(err.to_string().contains("does not belong"), "{err}");
    let err = ClusterCa::from_pem(
        ours.cert_pem(),
        "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
    )
    .expect_err("not pkcs8");
    assert!(err.to_string().contains("PKCS#8"), "{err}");
}
