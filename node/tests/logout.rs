//! Logout ends a session on every node (issue 13). Before, the SDK's
//! `logout` only forgot the token in the client: a copy of it (a leaked
//! log line, a core dump, a stolen config) kept working on every node until
//! it expired, and `hsm logout` did nothing. Real `hsm-node` processes on
//! loopback; the requests go to chosen nodes without the SDK, as an
//! attacker holding a copied token would send them.

mod procs;

use hsm_proto::client::{ErrorKind, Operation, Reply, Secret};
use hsm_proto::Role;
use procs::{user, Cluster};

const ADMIN_PW: &str = "admin-password-1";
const ALICE_PW: &str = "alice-password-1";

/// A token for alice, from a login at node `i`.
async fn alice_token(cluster: &Cluster, i: u64) -> Secret {
    let login = Operation::Login {
        username: user("alice"),
        password: ALICE_PW.into(),
    };
    match cluster.ask(i, None, login).await.result {
        Ok(Reply::LoggedIn { token, .. }) => token,
        other => panic!("alice's login: {other:?}"),
    }
}

/// Whether `token` works on node `i` (it draws random bytes).
async fn works_on(cluster: &Cluster, i: u64, token: &Secret) -> Result<(), ErrorKind> {
    let response = cluster
        .ask(i, Some(token), Operation::Random { len: 8 })
        .await;
    response.result.map(|_| ()).map_err(|e| e.kind)
}

async fn logout(cluster: &Cluster, i: u64, token: &Secret, everywhere: bool) {
    let response = cluster
        .ask(i, Some(token), Operation::Logout { everywhere })
        .await;
    assert!(
        matches!(response.result, Ok(Reply::Done)),
        "{:?}",
        response.result
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copied_token_works_on_no_node_once_its_session_logged_out() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN_PW).await;
    admin
        .create_user(user("alice"), Role::Cu, ALICE_PW)
        .await
        .expect("create alice");

    let copied = alice_token(&cluster, 1).await;
    let other = alice_token(&cluster, 2).await;
    for i in 1..=3 {
        assert_eq!(works_on(&cluster, i, &copied).await, Ok(()), "node {i}");
    }

    // alice logs out through node 2; the copy is refused at once, on every
    // node (each serves only after catching up with the leader).
    logout(&cluster, 2, &copied, false).await;
    for i in 1..=3 {
        assert_eq!(
            works_on(&cluster, i, &copied).await,
            Err(ErrorKind::Unauthenticated),
            "node {i}"
        );
    }
    // Her other session goes on: a worker's logout ends only its own.
    for i in 1..=3 {
        assert_eq!(works_on(&cluster, i, &other).await, Ok(()), "node {i}");
    }

    // A logout everywhere ends every session issued before it, and none
    // after.
    let third = alice_token(&cluster, 3).await;
    logout(&cluster, 1, &third, true).await;
    for i in 1..=3 {
        for token in [&other, &third] {
            assert_eq!(
                works_on(&cluster, i, token).await,
                Err(ErrorKind::Unauthenticated),
                "node {i}"
            );
        }
    }
    let fresh = alice_token(&cluster, 2).await;
    for i in 1..=3 {
        assert_eq!(works_on(&cluster, i, &fresh).await, Ok(()), "node {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sdk_logs_out_and_in_again() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN_PW).await;
    let info = admin.cluster_info().await.expect("info");
    assert!(info.activated);
    admin.logout().await.expect("logout");
    assert!(!admin.is_logged_in());
    // Logging out when not logged in is nothing to do.
    admin.logout().await.expect("logout again");
    admin
        .login(user("admin"), ADMIN_PW)
        .await
        .expect("log in again");
    admin.list_users().await.expect("works again");
}
