//! A request id names one request. A client retries a write under the same
//! id, through any node, and gets the first attempt's outcome; the same id
//! with another password an officer sets is another request and is refused
//! (issue 13: before, it was answered with the first outcome as if applied,
//! and the first password silently stayed).

mod procs;

use hsm_proto::client::{ErrorKind, Operation, Reply, Response, Secret};
use hsm_proto::{RequestId, Role};
use procs::{user, Cluster};

const ADMIN: &str = "admin-password-ids";

async fn login(cluster: &Cluster, node: u64, name: &str, password: &str) -> Response {
    let op = Operation::Login {
        username: user(name),
        password: Secret::new(password.as_bytes().to_vec()),
    };
    cluster.ask(node, None, op).await
}

async fn session(cluster: &Cluster, node: u64, name: &str, password: &str) -> Secret {
    match login(cluster, node, name, password).await.result {
        Ok(Reply::LoggedIn { token, .. }) => token,
        other => panic!("{name} cannot log in: {other:?}"),
    }
}

fn secret(text: &str) -> Secret {
    Secret::new(text.as_bytes().to_vec())
}

fn refused_as_reused(r: &Response) -> bool {
    matches!(&r.result, Err(e) if e.kind == ErrorKind::Conflict && e.message.contains("request id"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_request_id_with_another_password_is_refused() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    drop(cluster.activate(ADMIN).await);
    let admin = session(&cluster, 1, "admin", ADMIN).await;
    let id = || RequestId(rand::random());

    // A new user: the retry through another node is the same request; the
    // same id with another password is not, and changes nothing.
    let create = |password: &str| Operation::CreateUser {
        username: user("carol"),
        role: Role::Cu,
        password: secret(password),
    };
    let request = id();
    let first = cluster
        .ask_as(1, Some(&admin), request, create("carol-password-1"))
        .await;
    assert!(first.result.is_ok(), "{first:?}");
    let retry = cluster
        .ask_as(2, Some(&admin), request, create("carol-password-1"))
        .await;
    assert!(retry.result.is_ok(), "the retry: {retry:?}");
    let other = cluster
        .ask_as(2, Some(&admin), request, create("carol-password-2"))
        .await;
    assert!(refused_as_reused(&other), "{other:?}");
    assert!(login(&cluster, 3, "carol", "carol-password-2")
        .await
        .result
        .is_err());
    drop(session(&cluster, 3, "carol", "carol-password-1").await);

    // An officer's reset of her password, the same way.
    let reset = |password: &str| Operation::ChangePassword {
        username: user("carol"),
        new_password: secret(password),
    };
    let request = id();
    let first = cluster
        .ask_as(1, Some(&admin), request, reset("carol-password-3"))
        .await;
    assert!(first.result.is_ok(), "{first:?}");
    let retry = cluster
        .ask_as(3, Some(&admin), request, reset("carol-password-3"))
        .await;
    assert!(retry.result.is_ok(), "the retry: {retry:?}");
    let other = cluster
        .ask_as(3, Some(&admin), request, reset("carol-password-4"))
        .await;
    assert!(refused_as_reused(&other), "{other:?}");
    let carol = session(&cluster, 2, "carol", "carol-password-3").await;

    // Her own change: a retry is answered with the first outcome whatever
    // new password it carries, and sets nothing (refusing another one
    // would answer guesses at the password set, without a lockout).
    let own = |new: &str| Operation::ChangeOwnPassword {
        current_password: secret("carol-password-3"),
        new_password: secret(new),
    };
    let request = id();
    let first = cluster
        .ask_as(2, Some(&carol), request, own("carol-password-5"))
        .await;
    assert!(first.result.is_ok(), "{first:?}");
    let carol = session(&cluster, 1, "carol", "carol-password-5").await;
    let retry = cluster
        .ask_as(1, Some(&carol), request, own("carol-password-6"))
        .await;
    assert!(retry.result.is_ok(), "the retry: {retry:?}");
    assert!(login(&cluster, 3, "carol", "carol-password-6")
        .await
        .result
        .is_err());
    drop(session(&cluster, 3, "carol", "carol-password-5").await);
}
