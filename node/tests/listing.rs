//! Listings come a page at a time (issue 13): a node copies at most a
//! page of keys or users under its state lock, and looks at no more than
//! `MAX_PAGE_SCAN` keys for one page, however many the cluster holds. The
//! SDK pages through to the end. (And cluster info shows the counts to a
//! signed-in caller on a node just started.)

mod procs;

use hsm_proto::client::{KeyFilter, Operation, Reply, Secret};
use hsm_proto::{KeyAttributes, KeyId, KeySpec, Role};
use procs::{user, Cluster};

const ADMIN: &str = "admin-password-listing";
const CAROL: &str = "carol-password-listing";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_users_are_listed_a_page_at_a_time() {
    let mut cluster = Cluster::start(1);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN).await;
    admin
        .create_user(user("carol"), Role::Cu, CAROL)
        .await
        .expect("create carol");
    let carol = cluster.client().await;
    carol.login(user("carol"), CAROL).await.expect("login");
    let mut made = Vec::new();
    for i in 0..5 {
        let attributes = KeyAttributes {
            label: format!("k{i}"),
            encrypt: true,
            decrypt: true,
            ..KeyAttributes::default()
        };
        let key = carol
            .generate_key(KeySpec::Aes { bits: 256 }, attributes, false)
            .await
            .expect("key");
        made.push(key.id);
    }
    made.sort();

    // Pages of two, each starting after the last one's cursor.
    let login = Operation::Login {
        username: user("carol"),
        password: Secret::new(CAROL.as_bytes().to_vec()),
    };
    let Ok(Reply::LoggedIn { token, .. }) = cluster.ask(1, None, login).await.result else {
        panic!("no login");
    };
    let mut after: Option<KeyId> = None;
    let mut pages = Vec::new();
    loop {
        let op = Operation::ListKeys {
            filter: KeyFilter::default(),
            after,
            limit: 2,
        };
        let Ok(Reply::Keys { keys, next }) = cluster.ask(1, Some(&token), op).await.result else {
            panic!("no page");
        };
        pages.push(keys.iter().map(|k| k.id).collect::<Vec<_>>());
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(pages.concat(), made);

    // A limit past the page size gets a full page, not more.
    let op = Operation::ListKeys {
        filter: KeyFilter::default(),
        after: None,
        limit: u32::MAX,
    };
    let Ok(Reply::Keys { keys, next }) = cluster.ask(1, Some(&token), op).await.result else {
        panic!("no page");
    };
    assert_eq!((keys.len(), next), (5, None));

    // The SDK pages to the end, keys and users alike.
    let listed = carol.list_keys(KeyFilter::default()).await.expect("list");
    assert_eq!(listed.iter().map(|k| k.id).collect::<Vec<_>>(), made);
    let (first, next) = admin.list_users_page(None, 1).await.expect("page");
    assert_eq!(first.len(), 1);
    assert!(next.is_some());
    let users = admin.list_users().await.expect("users");
    let names: Vec<_> = users
        .iter()
        .map(|u| u.username.as_str().to_owned())
        .collect();
    assert_eq!(names, ["admin", "carol"]);

    // Cluster info shows a signed-in caller the counts even when it is the
    // first request a node serves after a start (it had no leader time yet
    // to judge the session by, and showed 0 keys and 0 users).
    cluster.kill(1);
    cluster.start_node(1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let anonymous = cluster.ask_once(1, None, Operation::ClusterInfo).await;
        if matches!(&anonymous.result, Ok(Reply::ClusterInfo(s)) if s.leader.is_some()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{anonymous:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let info = cluster
        .ask_once(1, Some(&token), Operation::ClusterInfo)
        .await;
    let Ok(Reply::ClusterInfo(status)) = info.result else {
        panic!("no cluster info: {info:?}");
    };
    assert_eq!((status.keys, status.users), (5, 2));
}
