//! Power-on self-tests (issue 13): a node runs every algorithm it serves
//! against a known answer before it serves any. One whose test fails keeps
//! its place in the cluster (logins, Raft) but refuses every cryptographic
//! operation, saying which test failed; clients are served by the others.
//! The failure is made with the debug build's `HSM_SELF_TEST_CORRUPT`,
//! which changes one known answer.

mod procs;

use std::time::{Duration, Instant};

use hsm_proto::client::{ErrorKind, Operation, Reply, Secret};
use hsm_proto::mechanism::SignMechanism;
use hsm_proto::{KeyAttributes, KeySpec, Role};
use procs::{user, Cluster};

const ADMIN: &str = "admin-password-self-tests";
const CAROL: &str = "carol-password-self-tests";

fn sign_attrs() -> KeyAttributes {
    KeyAttributes {
        label: "release".to_owned(),
        sign: true,
        verify: true,
        ..KeyAttributes::default()
    }
}

/// A 3-node cluster with crypto user carol, whose node 3 has started
/// again with `HSM_SELF_TEST_CORRUPT=corrupt`; and carol's session on
/// node 3 (logins are no cryptography: a node in its error state serves
/// them).
async fn with_node_3_corrupted(corrupt: &str) -> (Cluster, Secret) {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN).await;
    admin
        .create_user(user("carol"), Role::Cu, CAROL)
        .await
        .expect("create carol");
    cluster.kill(3);
    cluster.start_node_with_env(3, &[("HSM_SELF_TEST_CORRUPT", corrupt)]);
    let login = Operation::Login {
        username: user("carol"),
        password: Secret::new(CAROL.as_bytes().to_vec()),
    };
    let session = match cluster.ask(3, None, login).await.result {
        Ok(Reply::LoggedIn { token, .. }) => token,
        other => panic!("no login on node 3: {other:?}"),
    };
    (cluster, session)
}

/// Each of `ops` is refused by node 3 at once as unavailable, saying
/// `why` and that the node serves no cryptography.
async fn refused_on_node_3(cluster: &Cluster, session: &Secret, ops: Vec<Operation>, why: &str) {
    for op in ops {
        let e = cluster
            .ask_once(3, Some(session), op)
            .await
            .result
            .expect_err("refused on node 3");
        assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
        assert!(
            e.message.contains(why) && e.message.contains("serves no cryptography"),
            "{e}"
        );
    }
}

/// Through the cluster, carol gets a `spec` key and signatures with it
/// from the other nodes.
async fn the_others_serve(cluster: &Cluster, spec: KeySpec, mechanism: SignMechanism) {
    let carol = cluster.client().await;
    carol.login(user("carol"), CAROL).await.expect("login");
    let key = carol
        .generate_key(spec, sign_attrs(), false)
        .await
        .expect("a key from the others");
    for _ in 0..10 {
        carol
            .sign(key.id, mechanism, b"release 1.0".to_vec())
            .await
            .expect("signed by the others");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_self_test_fails_serves_no_cryptography_and_says_why() {
    // Node 3 starts again with a wrong known answer for AES-GCM; carol
    // logs in there (node 3 may still be catching up).
    let (cluster, session) = with_node_3_corrupted("aes-256-gcm").await;
    let dir = cluster.path().to_owned();
    let log =
        |i: u64| std::fs::read_to_string(dir.join(format!("node{i}.log"))).unwrap_or_default();
    assert!(log(1).contains("power-on self-tests passed"), "{}", log(1));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log(3).contains("power-on self-test failed") {
        assert!(Instant::now() < deadline, "no failure logged:\n{}", log(3));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(log(3).contains("aes-256-gcm"), "{}", log(3));

    // On node 3 alone, every cryptographic operation is refused at once,
    // with the reason.
    let ops = vec![
        Operation::GenerateKey {
            spec: KeySpec::Ed25519,
            attributes: sign_attrs(),
            unique_label: false,
        },
        Operation::Random { len: 16 },
    ];
    refused_on_node_3(
        &cluster,
        &session,
        ops,
        "power-on self-test aes-256-gcm failed",
    )
    .await;

    // Through the cluster, carol is served by the other two.
    the_others_serve(&cluster, KeySpec::Ed25519, SignMechanism::Ed25519).await;
}

/// FIPS 140-3's conditional self-test: every key pair a node generates
/// passes a pairwise consistency test before it is used, and a pair that
/// fails puts the node in its error state, as a failed power-on test does:
/// it serves no cryptography from then on (until it restarts), says why,
/// and the cluster serves from the others. Before, only that one request
/// failed and the node went on generating keys. The failure is made with
/// the debug build's `HSM_SELF_TEST_CORRUPT=generated-key-pairs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_pair_that_fails_its_pairwise_test_stops_the_nodes_cryptography() {
    let (cluster, session) = with_node_3_corrupted("generated-key-pairs").await;
    // Its power-on tests passed: it serves cryptography, a symmetric key
    // (no pair to test) included.
    let random = cluster
        .ask_once(3, Some(&session), Operation::Random { len: 16 })
        .await;
    assert!(random.result.is_ok(), "{random:?}");
    let aes = Operation::GenerateKey {
        spec: KeySpec::Aes { bits: 256 },
        attributes: KeyAttributes {
            label: "data".to_owned(),
            encrypt: true,
            decrypt: true,
            ..KeyAttributes::default()
        },
        unique_label: false,
    };
    let made = cluster.ask(3, Some(&session), aes).await;
    assert!(made.result.is_ok(), "{made:?}");

    // A key pair fails its test: refused, and nothing cryptographic after.
    let pair = Operation::GenerateKey {
        spec: KeySpec::EcP256,
        attributes: sign_attrs(),
        unique_label: false,
    };
    let ops = vec![pair, Operation::Random { len: 16 }];
    refused_on_node_3(
        &cluster,
        &session,
        ops,
        "pairwise consistency test of a new",
    )
    .await;
    let log = std::fs::read_to_string(cluster.log_file(3)).unwrap_or_default();
    assert!(
        log.contains("serves no cryptography until it restarts"),
        "{log}"
    );

    // The others serve.
    the_others_serve(&cluster, KeySpec::EcP256, SignMechanism::EcdsaSha256).await;
}
