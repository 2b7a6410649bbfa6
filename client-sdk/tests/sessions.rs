//! Sessions, read-your-writes and the typed methods against fake nodes
//! that speak the real protocol over QUIC.

mod common;

use common::{cluster, config, Pki, PASSWORD};
use hsm_client::hsm_proto::client::Operation;
use hsm_client::hsm_proto::mechanism::SignMechanism;
use hsm_client::hsm_proto::{KeyId, Role, Username};
use hsm_client::{Client, ClientOptions, ErrorKind, Secret};

fn alice() -> Username {
    Username::new("alice").expect("name")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_keeps_the_token_for_later_calls_and_logout_drops_it() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a"]);
    let client = Client::connect(config(&pki, &[nodes[0].client_node()]), Default::default())
        .await
        .expect("connect");

    let e = client
        .sign(KeyId(1), SignMechanism::Ed25519, b"m".as_slice())
        .await
        .expect_err("anonymous");
    assert_eq!(e.kind(), Some(ErrorKind::Unauthenticated));

    let session = client.login(alice(), PASSWORD).await.expect("login");
    assert_eq!((session.username, session.role), (alice(), Role::Cu));
    assert!(client.is_logged_in());
    let signature = client
        .sign(KeyId(1), SignMechanism::Ed25519, b"abc".as_slice())
        .await
        .expect("sign");
    assert_eq!(signature, b"cba");

    // A failed login keeps the session it had.
    let e = client.login(alice(), "wrong").await.expect_err("refused");
    assert_eq!(e.kind(), Some(ErrorKind::LoginFailed));
    assert!(client.is_logged_in());

    let seen = nodes[0].seen();
    let token = Secret::from("token-for-alice");
    for r in &seen {
        match r.op {
            // Logins never carry a session.
            Operation::Login { .. } => assert_eq!(r.session, None),
            Operation::Sign { .. } if r.session.is_some() => {
                assert_eq!(r.session.as_ref(), Some(&token))
            }
            _ => {}
        }
    }

    client.logout().await.expect("logout");
    assert!(!client.is_logged_in());
    let logout = nodes[0].seen().pop().expect("the logout");
    assert!(matches!(logout.op, Operation::Logout { everywhere: false }));
    assert_eq!(logout.session.as_ref(), Some(&token));
    let e = client
        .sign(KeyId(1), SignMechanism::Ed25519, b"m".as_slice())
        .await
        .expect_err("logged out");
    assert_eq!(e.kind(), Some(ErrorKind::Unauthenticated));
    // The client's Debug shows no token.
    assert!(!format!("{client:?}").contains("token-for"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_the_highest_applied_index_seen() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a", "b"]);
    let cfg = config(&pki, &[nodes[0].client_node(), nodes[1].client_node()]);
    let client = Client::connect(cfg, ClientOptions::default().zone("a"))
        .await
        .expect("connect");
    assert_eq!(client.applied_index(), 1);
    nodes[0].set_applied(7);
    client.random(1).await.expect("random");
    nodes[0].set_applied(2);
    client.random(1).await.expect("random");
    client.random(1).await.expect("random");
    let min: Vec<u64> = nodes[0].seen().iter().map(|r| r.min_index).collect();
    assert_eq!(min, vec![1, 7, 7]);
    assert_eq!(client.applied_index(), 7);
    // An index learned elsewhere raises it too; a lower one does not.
    client.observe_index(40);
    client.observe_index(5);
    client.random(1).await.expect("random");
    assert_eq!(nodes[0].seen().last().map(|r| r.min_index), Some(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_many_returns_one_result_per_message_in_order() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a", "b"]);
    let cfg = config(&pki, &[nodes[0].client_node(), nodes[1].client_node()]);
    let client = Client::connect(cfg, ClientOptions::default().max_in_flight(8))
        .await
        .expect("connect");
    client.login(alice(), PASSWORD).await.expect("login");
    // 200 messages, one of them empty (which the fake node refuses alone).
    let mut messages: Vec<Vec<u8>> = (0..200u32).map(|i| i.to_be_bytes().to_vec()).collect();
    messages[70] = Vec::new();
    let results = client
        .sign_many(KeyId(1), SignMechanism::Ed25519, messages.clone())
        .await;
    assert_eq!(results.len(), messages.len());
    for (i, (m, r)) in messages.iter().zip(results).enumerate() {
        if i == 70 {
            assert!(
                matches!(&r, Err(e) if e.kind() == Some(hsm_client::ErrorKind::InvalidInput)),
                "{r:?}"
            );
            continue;
        }
        let mut expected = m.clone();
        expected.reverse();
        assert_eq!(r.expect("signed"), expected);
    }
    // In requests of at most SIGN_MANY_CHUNK messages, each with its own id.
    let requests: Vec<_> = nodes
        .iter()
        .flat_map(|n| n.seen())
        .filter_map(|r| match r.op {
            Operation::SignMany { messages, .. } => Some((r.request_id, messages.len())),
            _ => None,
        })
        .collect();
    assert_eq!(
        requests.iter().map(|(_, n)| n).sum::<usize>(),
        messages.len()
    );
    assert!(requests
        .iter()
        .all(|(_, n)| *n <= hsm_client::SIGN_MANY_CHUNK));
    let mut ids: Vec<_> = requests.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 200usize.div_ceil(hsm_client::SIGN_MANY_CHUNK));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_of_the_wrong_type_is_a_protocol_error() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a"]);
    let cfg = config(&pki, &[nodes[0].client_node()]);
    let client = Client::connect(cfg, ClientOptions::default())
        .await
        .expect("connect");
    client.delete_key(KeyId(3)).await.expect("deleted");
    // The fake node answers a digest with `Done`.
    match client
        .digest(
            hsm_client::mechanism::DigestAlgorithm::Sha256,
            b"x".as_slice(),
        )
        .await
    {
        Err(hsm_client::Error::Protocol(m)) => {
            assert_eq!(m, "expected a digest reply to digest, got done")
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    // An operation it does not serve is refused with a kind.
    let e = client.list_users().await.expect_err("unsupported");
    assert_eq!(e.kind(), Some(ErrorKind::InvalidInput));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_is_loaded_from_a_path() {
    let pki = Pki::new();
    let (nodes, _view) = cluster(&pki, &["a"]);
    let cfg = config(&pki, &[nodes[0].client_node()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, toml::to_string(&cfg).expect("toml")).expect("write");
    let client = Client::connect_file(&path).await.expect("connect");
    assert_eq!(client.cluster_info().await.expect("info").members.len(), 1);
}
