//! The SDK against real three-node clusters: crypto calls from one client
//! spread over every node (and stay in the caller's zone while it is up),
//! not one call fails while a follower or the leader is killed under many
//! concurrent callers, and a write sent again with the same request id
//! (to other nodes, concurrently, or by the SDK after an attempt on a
//! frozen node timed out) is applied exactly once.
//!
//! Which node served a call is observed through [`Client::stats`]: the
//! client counts, per node, the attempts that node answered.

mod procs;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hsm_client::{Client, ClientOptions, Error, NodeStats};
use hsm_proto::client::{ClientConfig, ErrorKind, KeyFilter, Operation, Reply};
use hsm_proto::mechanism::SignMechanism;
use hsm_proto::{KeyId, KeySpec, NodeId, RequestId, Role};
use procs::{signing, user, Cluster};

const ADMIN_PASSWORD: &str = "admin-password-1";
const ALICE_PASSWORD: &str = "alice-password-1";

/// Activates the cluster and creates alice, a crypto user with one Ed25519
/// signing key; returns (admin, alice, key).
async fn setup(cluster: &Cluster) -> (Client, Client, KeyId) {
    cluster
        .with_alice(ADMIN_PASSWORD, ALICE_PASSWORD, "load")
        .await
}

/// `client` logged in as alice.
async fn as_alice(client: Client) -> Client {
    client
        .login(user("alice"), ALICE_PASSWORD)
        .await
        .expect("login as alice");
    client
}

/// A client of only the nodes `ids` of `cluster` (it does not follow the
/// membership), with `options`; nothing is sent yet.
fn client_of_nodes(cluster: &Cluster, ids: &[u64], options: ClientOptions) -> Client {
    let text = std::fs::read_to_string(cluster.client_config()).expect("client config");
    let mut config: ClientConfig = toml::from_str(&text).expect("parse client config");
    config.nodes.retain(|n| ids.contains(&n.id));
    assert_eq!(config.nodes.len(), ids.len(), "nodes {ids:?} in the config");
    Client::new(config, options.follow_membership(false)).expect("client")
}

/// Node `node`'s entry in `stats`.
fn stats_of(stats: &[NodeStats], node: u64) -> NodeStats {
    stats
        .iter()
        .find(|s| s.id == NodeId(node))
        .cloned()
        .unwrap_or_else(|| panic!("node {node} not in {stats:?}"))
}

/// Attempts each node answered since `before` was taken.
fn served_since(before: &[NodeStats], client: &Client) -> BTreeMap<u64, u64> {
    client
        .stats()
        .iter()
        .map(|now| {
            let then = before
                .iter()
                .find(|b| b.id == now.id)
                .map_or(0, |b| b.completed);
            (now.id.0, now.completed - then)
        })
        .collect()
}

/// Waits until `done` holds, polling; fails with the nodes' logs after
/// `limit`.
async fn wait_until(
    cluster: &Cluster,
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The zone of node `id` as the cluster reports it.
async fn zone_of(client: &Client, id: u64) -> String {
    let info = client.cluster_info().await.expect("info");
    info.members
        .iter()
        .find(|m| m.id == NodeId(id))
        .map(|m| m.zone.clone())
        .expect("member")
}

/// Failed attempts on any node since `before` was taken.
fn failed_since(before: &[NodeStats], client: &Client) -> u64 {
    let then: u64 = before.iter().map(|b| b.failed).sum();
    let now: u64 = client.stats().iter().map(|s| s.failed).sum();
    now - then
}

/// Signs `calls` messages through `client`, `max_in_flight` at a time;
/// every call must succeed. Returns the calls each node served, and
/// whether every attempt was answered (none failed and was retried).
async fn sign_round(client: &Client, key: KeyId, calls: u64) -> (BTreeMap<u64, u64>, bool) {
    let before = client.stats();
    // One call per message (not `sign_many`, which batches them): the
    // shares are of calls.
    let ops = (0..calls).map(|i| Operation::Sign {
        key,
        mechanism: SignMechanism::Ed25519,
        message: i.to_be_bytes().to_vec(),
    });
    let results = client.call_many(ops).await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(Error::to_string))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {calls} signs failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let clean = failed_since(&before, client) == 0;
    (served_since(&before, client), clean)
}

/// The calls each node served in the first of up to five rounds of
/// `calls` signs in which no attempt failed. A node that fails an attempt
/// (on a loaded machine, one that answers `unavailable` for a moment) is
/// set aside for a second, as it should be, which skews that round's
/// shares: such rounds say nothing about how healthy nodes share the load.
async fn clean_round(client: &Client, key: KeyId, calls: u64) -> BTreeMap<u64, u64> {
    for _ in 0..5 {
        let (served, clean) = sign_round(client, key, calls).await;
        if clean {
            return served;
        }
        println!(
            "a round saw failed attempts, not counted: {served:?} {:?}",
            client.stats()
        );
    }
    panic!("every round saw failed attempts: {:?}", client.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_crypto_calls_through_one_client_reach_every_node_in_fair_shares() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let (_admin, _alice, key) = setup(&cluster).await;
    let client = as_alice(
        cluster
            .client_with(ClientOptions::default().max_in_flight(16))
            .await,
    )
    .await;

    // Fair is a third each; two choices on outstanding requests keeps it
    // close, and a loose floor keeps a slow machine from failing it.
    const CALLS: u64 = 600;
    let served = clean_round(&client, key, CALLS).await;
    let total: u64 = served.values().sum();
    assert!(total >= CALLS, "{served:?}");
    for (node, n) in &served {
        assert!(
            *n * 100 >= CALLS * 15,
            "node {node} served {n} of {CALLS} calls: {served:?} {:?}",
            client.stats()
        );
    }
    println!("calls served per node: {served:?}");

    let message = b"fair".to_vec();
    let signature = client
        .sign(key, SignMechanism::Ed25519, message.clone())
        .await
        .expect("sign");
    assert!(client
        .verify(key, SignMechanism::Ed25519, message, signature)
        .await
        .expect("verify"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_stay_in_the_callers_zone_while_its_node_is_up_and_move_when_it_dies() {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let (_admin, alice, key) = setup(&cluster).await;
    assert_eq!(zone_of(&alice, 2).await, "zone-b");
    let client = as_alice(
        cluster
            .client_with(ClientOptions::default().zone("zone-b").max_in_flight(8))
            .await,
    )
    .await;

    // Node 2 up: it serves every call.
    let served = clean_round(&client, key, 100).await;
    assert_eq!(served.values().sum::<u64>(), served[&2], "{served:?}");
    assert!(served[&2] >= 100, "{served:?}");

    // Node 2 killed: the other zones serve, and no call fails.
    cluster.kill(2);
    let (served, _) = sign_round(&client, key, 100).await;
    assert_eq!(served[&2], 0, "{served:?}");
    assert!(served[&1] + served[&3] >= 100, "{served:?}");
    assert!(
        stats_of(&client.stats(), 2).failed > 0,
        "the client never noticed node 2 died: {:?}",
        client.stats()
    );

    // Node 2 back: once the client probes it, calls return to it.
    cluster.start_node(2);
    cluster.wait_ready().await;
    let back = stats_of(&client.stats(), 2).completed;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats_of(&client.stats(), 2).completed == back {
        assert!(
            Instant::now() < deadline,
            "node 2 never served again: {:?}\n{}",
            client.stats(),
            cluster.logs()
        );
        sign_round(&client, key, 8).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let served = clean_round(&client, key, 50).await;
    assert_eq!(served.values().sum::<u64>(), served[&2], "{served:?}");
}

/// Many callers signing in a loop through clones of one client.
struct Signers {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Signers {
    fn start(client: &Client, key: KeyId, callers: usize) -> Signers {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..callers)
            .map(|c| {
                let (client, stop, ok, failures) =
                    (client.clone(), stop.clone(), ok.clone(), failures.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let message = format!("caller {c} message {i}").into_bytes();
                        match client.sign(key, SignMechanism::Ed25519, message).await {
                            Ok(_) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => failures.lock().expect("lock").push(e.to_string()),
                        }
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Signers {
            stop,
            ok,
            failures,
            tasks,
        }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops every caller; returns (signed, failures).
    async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("signer");
        }
        let failures = self.failures.lock().expect("lock").clone();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

/// Which node a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Follower,
    Leader,
}

/// Eight callers sign through one client while `victim` is SIGKILLed and
/// later restarted: not one call fails, the survivors serve meanwhile, and
/// the restarted node serves again.
async fn crypto_never_fails_while_a_node_is_killed(victim: Which) {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let (_admin, _alice, key) = setup(&cluster).await;
    let client = as_alice(cluster.client().await).await;
    let signers = Signers::start(&client, key, 8);

    // Warm: every node serves this client.
    let before = client.stats();
    wait_until(
        &cluster,
        "every node served a call",
        Duration::from_secs(30),
        || served_since(&before, &client).values().all(|n| *n > 0),
    )
    .await;
    let leader = cluster.leader().await;
    let killed = match victim {
        Which::Leader => leader,
        Which::Follower => (1..=3).find(|n| *n != leader).expect("a follower"),
    };
    let at_kill = client.stats();
    let ok_at_kill = signers.ok();
    cluster.kill(killed);

    // The client notices, and the survivors keep serving.
    wait_until(
        &cluster,
        &format!("the client set node {killed} aside and 200 more calls were served"),
        Duration::from_secs(60),
        || {
            stats_of(&client.stats(), killed).failed > stats_of(&at_kill, killed).failed
                && signers.ok() >= ok_at_kill + 200
        },
    )
    .await;
    let served = served_since(&at_kill, &client);
    let survivors: u64 = (1..=3).filter(|n| *n != killed).map(|n| served[&n]).sum();
    assert!(survivors > 0, "{served:?}");
    if victim == Which::Leader {
        let new_leader = cluster.leader().await;
        assert_ne!(new_leader, killed);
    }

    // Restarted, it serves this client again.
    cluster.start_node(killed);
    cluster.wait_ready().await;
    let back = stats_of(&client.stats(), killed).completed;
    wait_until(
        &cluster,
        &format!("node {killed} served again after its restart"),
        Duration::from_secs(60),
        || stats_of(&client.stats(), killed).completed > back,
    )
    .await;

    let (signed, failures) = signers.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {} sign calls failed while node {killed} ({victim:?}) was killed: {:?}",
        failures.len(),
        signed + failures.len() as u64,
        &failures[..failures.len().min(5)]
    );
    assert!(signed > ok_at_kill, "no call served after the kill");
    println!(
        "{signed} calls, {} after the kill of node {killed} ({victim:?}); {:?}",
        signed - ok_at_kill,
        client.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_callers_see_no_failed_crypto_call_while_a_follower_is_killed_and_restarted() {
    crypto_never_fails_while_a_node_is_killed(Which::Follower).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_callers_see_no_failed_crypto_call_while_the_leader_is_killed_and_restarted() {
    crypto_never_fails_while_a_node_is_killed(Which::Leader).await;
}

/// Sends `op` under `id` from every client at once, three times each, then
/// once more from each in turn; returns every answer.
async fn send_everywhere(
    clients: &[Client],
    id: RequestId,
    op: &Operation,
) -> Vec<Result<Reply, Error>> {
    let mut running = tokio::task::JoinSet::new();
    for c in clients {
        for _ in 0..3 {
            let (c, op) = (c.clone(), op.clone());
            running.spawn(async move { c.call_with_request_id(id, op).await });
        }
    }
    let mut answers = Vec::new();
    while let Some(done) = running.join_next().await {
        answers.push(done.expect("call task"));
    }
    for c in clients {
        answers.push(c.call_with_request_id(id, op.clone()).await);
    }
    answers
}

/// Alice's keys labelled `label`, as the node `alice` talks to sees them
/// once it has applied `index`.
async fn keys_labelled(alice: &Client, index: u64, label: &str) -> Vec<KeyId> {
    alice.observe_index(index);
    let filter = KeyFilter {
        label: Some(label.into()),
        ..KeyFilter::default()
    };
    let keys = alice.list_keys(filter).await.expect("list keys");
    keys.into_iter().map(|k| k.id).collect()
}

/// A cluster with alice and admin signed in through the whole cluster and
/// through each node alone: `alices[0]`/`admins[0]` are whole-cluster
/// clients, `alices[i]`/`admins[i]` talk to node `i` only.
struct Retries {
    cluster: Cluster,
    alices: Vec<Client>,
    admins: Vec<Client>,
}

impl Retries {
    async fn start() -> Retries {
        let cluster = Cluster::start(3);
        cluster.wait_ready().await;
        let (admin, alice, _) = setup(&cluster).await;
        let mut alices = vec![alice];
        let mut admins = vec![admin];
        for i in 1..=3 {
            alices.push(as_alice(cluster.client_of(i).await).await);
            let a = cluster.client_of(i).await;
            a.login(user("admin"), ADMIN_PASSWORD).await.expect("login");
            admins.push(a);
        }
        Retries {
            cluster,
            alices,
            admins,
        }
    }

    /// The highest index any of the clients saw applied.
    fn index(&self) -> u64 {
        self.alices
            .iter()
            .chain(&self.admins)
            .map(Client::applied_index)
            .max()
            .unwrap_or(0)
    }

    /// Makes every client read what any of them wrote.
    fn share_index(&self) {
        let index = self.index();
        for c in self.alices.iter().chain(&self.admins) {
            c.observe_index(index);
        }
    }

    /// A fresh Ed25519 key of alice's, known to every client.
    async fn key(&self, label: &str) -> KeyId {
        let key = self.alices[0]
            .generate_key(KeySpec::Ed25519, signing(label), false)
            .await
            .expect("key")
            .id;
        self.share_index();
        key
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_generation_and_a_share_sent_again_with_one_request_id_apply_once() {
    let r = Retries::start().await;
    let alice = &r.alices[0];

    // A key: 16 answers, all naming one key. (Had it applied twice, the
    // second would be refused: its id, derived from the request id, exists.)
    let id = RequestId(rand::random());
    let generate = Operation::GenerateKey {
        spec: KeySpec::Ed25519,
        attributes: signing("applied-once"),
        unique_label: false,
    };
    let mut named = Vec::new();
    for a in send_everywhere(&r.alices, id, &generate).await {
        match a {
            Ok(Reply::Key(k)) => named.push(k.id),
            other => panic!("a retry was not answered with the key: {other:?}"),
        }
    }
    let key = named[0];
    assert!(named.iter().all(|k| *k == key), "{named:?}");
    let at = r.index();
    for (node, on_node) in r.alices.iter().enumerate().skip(1) {
        assert_eq!(
            keys_labelled(on_node, at, "applied-once").await,
            vec![key],
            "node {node}"
        );
    }

    // A share: every answer is done (a second would be "already shared").
    r.admins[0]
        .create_user(user("bob"), Role::Cu, "bob-password-1")
        .await
        .expect("create bob");
    r.share_index();
    let id = RequestId(rand::random());
    let share = Operation::ShareKey {
        key,
        with: user("bob"),
    };
    for a in send_everywhere(&r.alices, id, &share).await {
        assert_eq!(a, Ok(Reply::Done));
    }
    let info = alice.get_key(key).await.expect("key");
    assert_eq!(info.shared_with, vec![user("bob")]);
    let bob = r.cluster.client().await;
    bob.observe_index(r.index());
    bob.login(user("bob"), "bob-password-1")
        .await
        .expect("bob logs in");
    let signature = bob
        .sign(key, SignMechanism::Ed25519, b"shared".to_vec())
        .await
        .expect("bob signs with the shared key");
    assert!(alice
        .verify(key, SignMechanism::Ed25519, b"shared".to_vec(), signature)
        .await
        .expect("verify"));

    // Another request under a used id (the share's) is refused, not
    // answered as a retry.
    let other = Operation::GenerateKey {
        spec: KeySpec::Ed25519,
        attributes: signing("another"),
        unique_label: false,
    };
    let refused = alice.call_with_request_id(id, other).await;
    assert_eq!(
        refused.as_ref().err().and_then(Error::kind),
        Some(ErrorKind::Conflict),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_creation_sent_again_with_one_request_id_applies_once_and_every_answer_is_done() {
    let r = Retries::start().await;
    let id = RequestId(rand::random());
    let create = Operation::CreateUser {
        username: user("bob"),
        role: Role::Cu,
        password: "bob-password-1".into(),
    };
    let answers = send_everywhere(&r.admins, id, &create).await;
    let users = r.admins[0].list_users().await.expect("users");
    assert_eq!(
        users.iter().filter(|u| u.username == user("bob")).count(),
        1,
        "{users:?}"
    );
    let bob = r.cluster.client().await;
    bob.observe_index(r.index());
    bob.login(user("bob"), "bob-password-1")
        .await
        .expect("bob logs in");
    // A retry of a creation that applied is the same write: "done", not
    // "exists already".
    let wrong: Vec<_> = answers.iter().filter(|a| **a != Ok(Reply::Done)).collect();
    assert!(
        wrong.is_empty(),
        "{} of {} answers to one creation were not done: {:?}",
        wrong.len(),
        answers.len(),
        wrong
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_deletion_sent_again_with_one_request_id_applies_once_and_every_answer_is_done() {
    let r = Retries::start().await;
    let key = r.key("deleted-once").await;
    let id = RequestId(rand::random());
    let answers = send_everywhere(&r.alices, id, &Operation::DeleteKey { key }).await;
    let at = r.index();
    for (node, on_node) in r.alices.iter().enumerate().skip(1) {
        assert!(
            keys_labelled(on_node, at, "deleted-once").await.is_empty(),
            "node {node}"
        );
    }
    // A retry of a deletion that applied is the same write: "done", not
    // "no such key".
    let wrong: Vec<_> = answers.iter().filter(|a| **a != Ok(Reply::Done)).collect();
    assert!(
        wrong.is_empty(),
        "{} of {} answers to one deletion were not done: {:?}",
        wrong.len(),
        answers.len(),
        wrong
    );
}

/// A write whose first attempt goes to a frozen node: the attempt times
/// out, the SDK retries it on another node with the same request id, and
/// once the frozen node resumes (and handles the attempt it was sent) the
/// write is still applied exactly once.
async fn a_write_first_sent_to_a_frozen_node_applies_once(frozen: Which) {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let (_admin, alice, _) = setup(&cluster).await;
    let leader = cluster.leader().await;
    let options = ClientOptions::default()
        .attempt_timeout(Duration::from_secs(1))
        .deadline(Duration::from_secs(60));
    let (stopped, client) = match frozen {
        Which::Leader => {
            // Writes go to the leader first.
            let client = as_alice(cluster.client_with(options).await).await;
            client.cluster_info().await.expect("info");
            assert_eq!(client.leader(), Some(NodeId(leader)));
            (leader, client)
        }
        Which::Follower => {
            // A client of the two followers in the zone of one of them:
            // with the leader not among its nodes, writes go to that one
            // first.
            let followers: Vec<u64> = (1..=3).filter(|n| *n != leader).collect();
            let first = followers[0];
            let zone = zone_of(&alice, first).await;
            let client = client_of_nodes(&cluster, &followers, options.zone(zone));
            let before = client.stats();
            let client = as_alice(client).await;
            let served = served_since(&before, &client);
            assert_eq!(
                served.values().sum::<u64>(),
                served[&first],
                "the login did not go to node {first} first: {served:?}"
            );
            (first, client)
        }
    };
    let on_node: Vec<Client> = {
        let mut v = Vec::new();
        for i in 1..=3 {
            v.push(as_alice(cluster.client_of(i).await).await);
        }
        v
    };

    let before = client.stats();
    cluster.signal(stopped, "STOP");
    let id = RequestId(rand::random());
    let label = "through-a-frozen-node";
    let generate = Operation::GenerateKey {
        spec: KeySpec::Ed25519,
        attributes: signing(label),
        unique_label: false,
    };
    let key = match client.call_with_request_id(id, generate.clone()).await {
        Ok(Reply::Key(k)) => k.id,
        other => panic!(
            "the write was not served while node {stopped} was frozen: {other:?}\n{}",
            cluster.logs()
        ),
    };
    let failed_there =
        stats_of(&client.stats(), stopped).failed - stats_of(&before, stopped).failed;
    assert!(
        failed_there > 0,
        "no attempt timed out on the frozen node {stopped}: {:?}",
        client.stats()
    );
    assert_eq!(served_since(&before, &client)[&stopped], 0);

    // The node resumes (and handles whatever attempt it received while
    // frozen); the write sent to it once more names the same key.
    cluster.signal(stopped, "CONT");
    cluster.wait_ready().await;
    let resumed = &on_node[usize::try_from(stopped - 1).expect("index")];
    resumed.observe_index(client.applied_index());
    match resumed.call_with_request_id(id, generate).await {
        Ok(Reply::Key(k)) => assert_eq!(k.id, key),
        other => panic!("the retry on node {stopped} was not answered with the key: {other:?}"),
    }

    // For a while after, every node holds exactly that one key.
    let watch_until = Instant::now() + Duration::from_secs(2);
    loop {
        let at = std::iter::once(&client)
            .chain(&on_node)
            .map(Client::applied_index)
            .max()
            .unwrap_or(0);
        for (i, c) in on_node.iter().enumerate() {
            assert_eq!(
                keys_labelled(c, at, label).await,
                vec![key],
                "node {}",
                i + 1
            );
        }
        if Instant::now() >= watch_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_first_sent_to_a_frozen_follower_is_retried_elsewhere_and_applies_once() {
    a_write_first_sent_to_a_frozen_node_applies_once(Which::Follower).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_first_sent_to_a_frozen_leader_is_retried_elsewhere_and_applies_once() {
    a_write_first_sent_to_a_frozen_node_applies_once(Which::Leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_every_node_frozen_a_call_fails_at_its_deadline_naming_every_address() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let (_admin, _alice, key) = setup(&cluster).await;
    let deadline = Duration::from_secs(3);
    let options = ClientOptions::default()
        .deadline(deadline)
        .attempt_timeout(Duration::from_millis(500));
    let client = as_alice(cluster.client_with(options).await).await;
    let sign = |client: Client| async move {
        client
            .sign(key, SignMechanism::Ed25519, b"frozen".to_vec())
            .await
    };
    sign(client.clone()).await.expect("sign");

    for i in 1..=3 {
        cluster.signal(i, "STOP");
    }
    let started = Instant::now();
    let result = sign(client.clone()).await;
    let elapsed = started.elapsed();
    for i in 1..=3 {
        cluster.signal(i, "CONT");
    }
    let every: std::collections::BTreeSet<String> =
        client.stats().into_iter().map(|s| s.address).collect();
    assert_eq!(every.len(), 3);
    match &result {
        Err(Error::Unavailable { tried }) => {
            let tried: std::collections::BTreeSet<String> =
                tried.iter().map(|(a, _)| a.clone()).collect();
            assert_eq!(tried, every, "{result:?}");
        }
        other => panic!("expected unavailable naming every node, got {other:?}"),
    }
    // Only a hang fails this: the bound is far above the deadline.
    assert!(
        elapsed < deadline + Duration::from_secs(15),
        "the call returned after {elapsed:?}"
    );
    println!(
        "{}",
        result.err().map(|e| e.to_string()).unwrap_or_default()
    );

    // The nodes back, the same client serves again.
    cluster.wait_ready().await;
    sign(client.with_deadline(Duration::from_secs(30)))
        .await
        .expect("sign once the nodes resumed");
}
