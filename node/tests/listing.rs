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

/// The slowest of `rounds` rounds of a key generation and a signature by
/// `client` with `signing` (each round's two calls), and the median.
async fn rounds_of_writes(
    client: &hsm_client::Client,
    signing: KeyId,
    rounds: usize,
) -> (std::time::Duration, std::time::Duration) {
    let mut took = Vec::new();
    for i in 0..rounds {
        let start = std::time::Instant::now();
        client
            .generate_key(
                KeySpec::Aes { bits: 256 },
                KeyAttributes {
                    label: format!("measured-{i}-{}", rand::random::<u32>()),
                    encrypt: true,
                    ..KeyAttributes::default()
                },
                false,
            )
            .await
            .expect("generate");
        client
            .sign(
                signing,
                hsm_proto::mechanism::SignMechanism::EcdsaSha256,
                b"beside the flood".to_vec(),
            )
            .await
            .expect("sign");
        took.push(start.elapsed());
    }
    took.sort();
    (took[took.len() - 1], took[took.len() / 2])
}

/// Listing is work anyone signed in may ask for as fast as it likes, and
/// it reads the state under its lock, which every write needs too. Eight
/// callers list a cluster of 2,000 keys as fast as they can (a page of
/// 1,000 each time: what a node copies at most for one listing, looking
/// at no more than `MAX_PAGE_SCAN` keys; issue 13) while another user
/// generates keys and signs: that user's slowest round stays within a
/// bound, measured beside the same rounds without the flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_listings_leaves_others_their_writes() {
    let cluster = Cluster::start(1);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN).await;
    for name in ["carol", "dave"] {
        admin
            .create_user(user(name), Role::Cu, CAROL)
            .await
            .expect("create user");
    }
    let carol = cluster.client().await;
    carol.login(user("carol"), CAROL).await.expect("login");
    let dave = cluster.client().await;
    dave.login(user("dave"), CAROL).await.expect("login");
    let made: Vec<_> = (0..16)
        .map(|t| {
            let carol = carol.clone();
            tokio::spawn(async move {
                for i in 0..125 {
                    let attributes = KeyAttributes {
                        label: format!("many-{t}-{i}"),
                        encrypt: true,
                        ..KeyAttributes::default()
                    };
                    carol
                        .generate_key(KeySpec::Aes { bits: 256 }, attributes, false)
                        .await
                        .expect("key");
                }
            })
        })
        .collect();
    for task in made {
        task.await.expect("keys made");
    }
    let signing = dave
        .generate_key(
            KeySpec::EcP256,
            KeyAttributes {
                label: "dave-signs".into(),
                sign: true,
                ..KeyAttributes::default()
            },
            false,
        )
        .await
        .expect("signing key")
        .id;
    let (calm_slowest, calm_median) = rounds_of_writes(&dave, signing, 20).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..8)
        .map(|_| {
            let carol = carol.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut listed = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (keys, _) = carol
                        .list_keys_page(KeyFilter::default(), None, u32::MAX)
                        .await
                        .expect("a page");
                    assert_eq!(keys.len(), 1000, "a full page");
                    listed += 1;
                }
                listed
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (flood_slowest, flood_median) = rounds_of_writes(&dave, signing, 20).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut listings = 0;
    for task in flood {
        listings += task.await.expect("the flood");
    }
    println!(
        "beside {listings} listings of 1,000 keys: slowest round {flood_slowest:?} \
         (median {flood_median:?}); alone: {calm_slowest:?} (median {calm_median:?})"
    );
    assert!(listings > 0);
    assert!(
        flood_slowest < std::time::Duration::from_secs(5),
        "a round took {flood_slowest:?} beside the flood ({calm_slowest:?} alone)"
    );
}
