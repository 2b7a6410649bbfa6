//! The client port under bad input: an oversized frame header, bytes that
//! do not decode, a stream that never sends. Each gets an error answer on
//! its own stream (or is dropped) and the connection keeps serving.

mod procs;

use hsm_node::transport::{client_endpoint, client_tls, read_frame, write_frame, SERVER_NAME};
use hsm_proto::client::{ClientConfig, ErrorKind, Operation, Request, Response};
use hsm_proto::{codec, RequestId};
use procs::Cluster;

async fn ask(conn: &quinn::Connection, frame: &[u8]) -> Response {
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    send.write_all(frame).await.expect("write");
    let _ = send.finish();
    let bytes = read_frame(&mut recv, 1 << 20).await.expect("an answer");
    codec::decode("response", &bytes).expect("a response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_client_frames_get_an_error_and_the_connection_keeps_serving() {
    let cluster = Cluster::start(1);
    cluster.wait_ready().await;
    let text = std::fs::read_to_string(cluster.client_config()).expect("config");
    let config: ClientConfig = toml::from_str(&text).expect("parse");
    let addr: std::net::SocketAddr = config.nodes[0].address.parse().expect("addr");
    let endpoint =
        client_endpoint(addr, client_tls(&config.ca_cert_pem).expect("tls")).expect("endpoint");
    let conn = endpoint
        .connect(addr, SERVER_NAME)
        .expect("connect")
        .await
        .expect("handshake");

    // A header announcing 512 MiB: refused before anything is allocated.
    let r = ask(&conn, &(512u32 << 20).to_be_bytes()).await;
    let e = r.result.expect_err("refused");
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.message.contains("frame"), "{e}");

    // A well-framed payload that is not a request.
    let mut garbage = 5u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xff, 1, 2, 3, 4]);
    let e = ask(&conn, &garbage).await.result.expect_err("refused");
    assert_eq!(e.kind, ErrorKind::InvalidInput);

    // A frame cut short.
    let mut short = 100u32.to_be_bytes().to_vec();
    short.extend_from_slice(&[0; 10]);
    let e = ask(&conn, &short).await.result.expect_err("refused");
    assert_eq!(e.kind, ErrorKind::InvalidInput);

    // The same connection still serves a real request.
    let request = Request {
        session: None,
        request_id: RequestId([1; 16]),
        min_index: 0,
        op: Operation::ClusterInfo,
    };
    let bytes = codec::encode("request", &request).expect("encode");
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    write_frame(&mut send, &bytes).await.expect("write");
    let bytes = read_frame(&mut recv, 1 << 20).await.expect("answer");
    let response: Response = codec::decode("response", &bytes).expect("decode");
    let reply = response.result.expect("served");
    assert!(matches!(reply, hsm_proto::client::Reply::ClusterInfo(_)));

    // Without a session, anything but login and cluster info is refused.
    let request = Request {
        op: Operation::Random { len: 8 },
        ..request
    };
    let bytes = codec::encode("request", &request).expect("encode");
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    write_frame(&mut send, &bytes).await.expect("write");
    let bytes = read_frame(&mut recv, 1 << 20).await.expect("answer");
    let response: Response = codec::decode("response", &bytes).expect("decode");
    assert_eq!(
        response.result.expect_err("refused").kind,
        ErrorKind::Unauthenticated
    );
}
