//! Faults and membership with real `hsm-node` processes on loopback: the
//! leader killed while clients write and sign, a node that missed enough
//! writes to need a snapshot, a node added (and removed) while the
//! cluster serves, and a node joining through a leader newer than the
//! snapshot it sends.

mod procs;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hsm_client::{Client, ClientOptions};
use hsm_proto::client::{ErrorKind, KeyFilter};
use hsm_proto::mechanism::SignMechanism;
use hsm_proto::{KeyAttributes, KeyId, KeySpec, NodeRecord, Role};
use procs::{user, Cluster};

fn signing() -> KeyAttributes {
    KeyAttributes {
        sign: true,
        verify: true,
        ..KeyAttributes::default()
    }
}

/// Activates the cluster and returns (admin, alice) clients; alice is a
/// crypto user with one Ed25519 signing key.
async fn setup(cluster: &Cluster) -> (Client, Client, KeyId) {
    let admin = cluster.activate("admin-password-1").await;
    admin
        .create_user(user("alice"), Role::Cu, "alice-password-1")
        .await
        .expect("create alice");
    let alice = cluster.client().await;
    alice
        .login(user("alice"), "alice-password-1")
        .await
        .expect("login");
    let key = alice
        .generate_key(KeySpec::Ed25519, signing(), false)
        .await
        .expect("key");
    (admin, alice, key.id)
}

/// Signs in a loop until `stop`, counting successes and failures.
fn spawn_signer(
    client: Client,
    key: KeyId,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            match client
                .sign(key, SignMechanism::Ed25519, b"still serving".to_vec())
                .await
            {
                Ok(_) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => failed.lock().expect("lock").push(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_loses_no_acknowledged_write_and_crypto_keeps_serving() {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let (_admin, alice, key) = setup(&cluster).await;

    let stop = Arc::new(AtomicBool::new(false));
    let signed = Arc::new(AtomicU64::new(0));
    let sign_failures = Arc::new(Mutex::new(Vec::new()));
    let signer = spawn_signer(
        alice.clone(),
        key,
        stop.clone(),
        signed.clone(),
        sign_failures.clone(),
    );

    // Four writers create keys; every acknowledged id is recorded with the
    // time it was acknowledged.
    let acked: Arc<Mutex<Vec<(KeyId, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let write_failures = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let client = cluster.client().await;
        client
            .login(user("alice"), "alice-password-1")
            .await
            .expect("login");
        let (stop, acked, failures) = (stop.clone(), acked.clone(), write_failures.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let attributes = KeyAttributes {
                    label: format!("w{w}-{i}"),
                    ..signing()
                };
                match client
                    .generate_key(KeySpec::Aes { bits: 128 }, attributes, false)
                    .await
                {
                    Ok(k) => acked.lock().expect("lock").push((k.id, Instant::now())),
                    Err(e) => failures.lock().expect("lock").push(e.to_string()),
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let leader = cluster.leader().await;
    let before = acked.lock().expect("lock").len();
    assert!(before > 0, "writes were acknowledged before the kill");
    let killed_at = Instant::now();
    cluster.kill(leader);

    // A new leader takes writes within a few seconds.
    let deadline = killed_at + Duration::from_secs(20);
    let resumed = loop {
        let after_kill = acked
            .lock()
            .expect("lock")
            .iter()
            .find(|(_, t)| *t > killed_at + Duration::from_millis(100))
            .map(|(_, t)| *t);
        if let Some(t) = after_kill {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "no write after the kill:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let gap = resumed - killed_at;
    assert!(
        gap < Duration::from_secs(8),
        "writes resumed only after {gap:?}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    signer.await.expect("signer");

    // Crypto never failed while the leader died.
    let failures = sign_failures.lock().expect("lock").clone();
    assert!(
        failures.is_empty(),
        "{} of {} sign calls failed: {:?}",
        failures.len(),
        signed.load(Ordering::Relaxed) + failures.len() as u64,
        &failures[..failures.len().min(5)]
    );
    assert!(signed.load(Ordering::Relaxed) > 50);

    // Every acknowledged key is on both survivors.
    let acked: Vec<KeyId> = acked
        .lock()
        .expect("lock")
        .iter()
        .map(|(k, _)| *k)
        .collect();
    let index = alice.applied_index();
    for node in (1..=3).filter(|n| *n != leader) {
        let keys = cluster
            .key_ids_on(node, "alice", "alice-password-1", index)
            .await;
        let missing: Vec<&KeyId> = acked.iter().filter(|k| !keys.contains(k)).collect();
        assert!(
            missing.is_empty(),
            "node {node} lacks {} acknowledged keys",
            missing.len()
        );
    }

    // The old leader comes back and catches up.
    cluster.start_node(leader);
    cluster.wait_ready().await;
    let c = cluster.client_of(leader).await;
    c.observe_index(alice.applied_index());
    c.login(user("alice"), "alice-password-1")
        .await
        .expect("login");
    let n = c.list_keys(KeyFilter::default()).await.expect("list").len();
    assert!(n > acked.len(), "restarted node has {n} keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_missed_many_writes_catches_up_from_a_snapshot() {
    // Snapshot every 20 entries and keep no log behind it, so a node that
    // was away for 150 writes can only catch up from a snapshot.
    let mut cluster = Cluster::start_with_env(
        3,
        &[
            ("HSM_NODE_RAFT_SNAPSHOT_EVERY_LOGS", "20"),
            ("HSM_NODE_RAFT_LOGS_KEPT_AFTER_SNAPSHOT", "0"),
        ],
    );
    cluster.wait_ready().await;
    let (_admin, alice, _) = setup(&cluster).await;
    let leader = cluster.leader().await;
    let away = (1..=3).find(|n| *n != leader).expect("a follower");
    cluster.kill(away);

    let mut created = Vec::new();
    for i in 0..150 {
        let k = alice
            .generate_key(
                KeySpec::Aes { bits: 128 },
                KeyAttributes {
                    label: format!("missed-{i}"),
                    ..signing()
                },
                false,
            )
            .await
            .expect("write while a node is away");
        created.push(k.id);
    }
    cluster.start_node(away);
    cluster.wait_ready().await;

    let c = cluster.client_of(away).await;
    c.observe_index(alice.applied_index());
    c.login(user("alice"), "alice-password-1")
        .await
        .expect("login on the returning node");
    let keys: std::collections::BTreeSet<KeyId> = c
        .list_keys(KeyFilter::default())
        .await
        .expect("list")
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert!(created.iter().all(|k| keys.contains(k)), "keys missing");
    let log = std::fs::read_to_string(cluster.log_file(away)).expect("log");
    assert!(
        log.contains("installed snapshot"),
        "node {away} caught up without a snapshot:\n{log}\n{}",
        cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_added_while_serving_gets_every_key_and_can_sign() {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let (admin, alice, key) = setup(&cluster).await;
    for i in 0..20 {
        alice
            .generate_key(
                KeySpec::EcP256,
                KeyAttributes {
                    label: format!("before-{i}"),
                    ..signing()
                },
                false,
            )
            .await
            .expect("key");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let signed = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let signer = spawn_signer(
        alice.clone(),
        key,
        stop.clone(),
        signed.clone(),
        failures.clone(),
    );

    // The operator prepares node 4 with the cluster CA; it waits for
    // approval; a crypto officer approves it.
    // First with the pin of another member than the one at the address it
    // joins through: it must talk to nobody there, even once approved.
    let record: NodeRecord = cluster.prepare_node(4, "zone-d");
    let first = cluster.member_address(1);
    let wrong_pin = hex::encode(cluster.member_pin(2));
    cluster.start_node_with(4, &["--join", &first, "--join-pin", &wrong_pin]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let info = alice.cluster_info().await.expect("info");
    assert_eq!(info.members.len(), 3, "not a member before approval");
    admin.add_node(record.clone()).await.expect("approve");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let config4 = hsm_node::config::NodeConfig::load(cluster.config_file(4)).expect("config");
    assert!(
        !config4.domain_key_file().exists(),
        "node 4 took the domain key from a member whose key is not the pinned one"
    );
    let log4 = std::fs::read_to_string(cluster.log_file(4)).expect("log");
    assert!(log4.contains("--join-pin"), "{log4}");
    cluster.kill(4);
    let right_pin = hex::encode(cluster.member_pin(1));
    cluster.start_node_with(4, &["--join", &first, "--join-pin", &right_pin]);

    // It becomes a voter and serves every key.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = cluster.client_of(4).await.cluster_info().await;
        if let Ok(info) = info {
            if info.members.len() == 4 && info.members.iter().all(|m| m.voter) {
                assert!(info.members.iter().any(|m| m.zone == "zone-d"));
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node 4 never became a voter:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let four = cluster.client_of(4).await;
    four.observe_index(alice.applied_index());
    four.login(user("alice"), "alice-password-1")
        .await
        .expect("login on node 4");
    let on_four = four.list_keys(KeyFilter::default()).await.expect("list");
    let on_one = alice.list_keys(KeyFilter::default()).await.expect("list");
    assert_eq!(on_four, on_one);
    for k in &on_four {
        let sig = four
            .sign(
                k.id,
                if k.spec == KeySpec::Ed25519 {
                    SignMechanism::Ed25519
                } else {
                    SignMechanism::EcdsaSha256
                },
                b"from node 4".to_vec(),
            )
            .await
            .expect("node 4 signs");
        let mechanism = if k.spec == KeySpec::Ed25519 {
            SignMechanism::Ed25519
        } else {
            SignMechanism::EcdsaSha256
        };
        assert!(alice
            .verify(k.id, mechanism, b"from node 4".to_vec(), sig)
            .await
            .expect("verify"));
    }
    stop.store(true, Ordering::Relaxed);
    signer.await.expect("signer");
    let failures = failures.lock().expect("lock").clone();
    assert!(
        failures.is_empty(),
        "sign calls failed while a node joined: {failures:?}"
    );

    // Removing it: Raft membership follows.
    admin.remove_node(record.id).await.expect("remove");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = cluster
            .client_of(1)
            .await
            .cluster_info()
            .await
            .expect("info");
        if info.members.len() == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 4 still a member:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The SDK keeps serving from the remaining nodes.
    let c = cluster
        .client_with(ClientOptions::default().deadline(Duration::from_secs(10)))
        .await;
    c.login(user("alice"), "alice-password-1")
        .await
        .expect("login");
    c.sign(key, SignMechanism::Ed25519, b"after".to_vec())
        .await
        .expect("sign after removal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_from_the_others_stops_serving_until_it_hears_from_them() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let (_admin, _alice, key) = setup(&cluster).await;
    let one = cluster.client_of(1).await;
    one.login(user("alice"), "alice-password-1")
        .await
        .expect("login");
    one.sign(key, SignMechanism::Ed25519, b"before".to_vec())
        .await
        .expect("served while connected");

    // Freeze the other two: node 1 can no longer learn of revocations. As a
    // follower it serves nothing from then on; as the leader only within
    // its lease, which ends before the others could elect a new leader
    // (these clusters' minimum election timeout is 500 ms).
    let leader = cluster.leader().await;
    cluster.signal(2, "STOP");
    cluster.signal(3, "STOP");
    let frozen_at = Instant::now();
    let election_timeout_min = Duration::from_millis(500);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let invoked = Instant::now();
        match one
            .with_deadline(Duration::from_millis(500))
            .sign(key, SignMechanism::Ed25519, b"cut off".to_vec())
            .await
        {
            Ok(_) => assert!(
                leader == 1 && invoked < frozen_at + election_timeout_min,
                "node 1 (leader: node {leader}) served {:?} after the others froze",
                invoked - frozen_at
            ),
            // At first it waits for an answer in vain; once it has not
            // heard from the others for a while, it refuses at once.
            Err(refused) if refused.to_string().contains("may be out of date") => break,
            Err(refused) => assert!(
                Instant::now() < deadline,
                "node 1 never said it is out of date: {refused}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    cluster.signal(2, "CONT");
    cluster.signal(3, "CONT");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match one
            .sign(key, SignMechanism::Ed25519, b"again".to_vec())
            .await
        {
            Ok(_) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "node 1 never served again: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_carrying_an_index_waits_until_that_node_has_applied_it() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let (_admin, alice, _) = setup(&cluster).await;
    let leader = cluster.leader().await;
    let behind = (1..=3).find(|n| *n != leader).expect("a follower");

    // The follower is frozen while a key is created: it cannot have it.
    cluster.signal(behind, "STOP");
    let key = alice
        .generate_key(KeySpec::Aes { bits: 128 }, signing(), false)
        .await
        .expect("written by the majority");
    let written_at = alice.applied_index();
    assert!(written_at > 0);
    cluster.signal(behind, "CONT");

    // Asked with the write's index, the follower answers only once it has
    // caught up, and then has the key.
    let reader = cluster.client_of(behind).await;
    reader.observe_index(written_at);
    reader
        .login(user("alice"), "alice-password-1")
        .await
        .expect("login");
    let got = reader.get_key(key.id).await.expect("read your write");
    assert_eq!(got.id, key.id);
    assert!(reader.applied_index() >= written_at);

    // An index the cluster has not reached is refused at once (no client
    // can have seen it), not served from an older state and not waited
    // for.
    let ahead = cluster
        .client_of(behind)
        .await
        .with_deadline(Duration::from_secs(3));
    ahead
        .login(user("alice"), "alice-password-1")
        .await
        .expect("login");
    ahead.observe_index(written_at + 1_000_000);
    let err = ahead.get_key(key.id).await.expect_err("not served");
    assert_eq!(err.kind(), Some(ErrorKind::InvalidInput), "{err}");
    assert!(err.to_string().contains("past everything"), "{err}");
}

/// Logs `name` in on a client pinned to node `i`.
async fn signed_in_at(cluster: &Cluster, i: u64, name: &str, password: &str) -> Client {
    let c = cluster.client_of(i).await;
    c.login(user(name), password).await.expect("login");
    c
}

/// Asserts that `result` is a refused session, not a served request.
fn assert_refused_session<T: std::fmt::Debug>(result: hsm_client::Result<T>, what: &str) {
    let e = result.expect_err(what);
    assert_eq!(e.kind(), Some(ErrorKind::Unauthenticated), "{what}: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_that_missed_a_revocation_serves_nothing_from_before_it() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let (_admin, _alice, key) = setup(&cluster).await;
    let leader = cluster.leader().await;
    let behind = (1..=3).find(|n| *n != leader).expect("a follower");
    let admin = signed_in_at(&cluster, leader, "admin", "admin-password-1").await;
    let stale = signed_in_at(&cluster, behind, "alice", "alice-password-1").await;
    stale
        .sign(key, SignMechanism::Ed25519, b"before".to_vec())
        .await
        .expect("served before the revocation");

    // An officer resets Alice's password while her session's node is
    // paused; it wakes up with its contact to the leader still recent but
    // without the change.
    cluster.signal(behind, "STOP");
    admin
        .change_password(user("alice"), "alice-password-2")
        .await
        .expect("changed by the majority");
    cluster.signal(behind, "CONT");
    assert_refused_session(
        stale
            .sign(key, SignMechanism::Ed25519, b"after".to_vec())
            .await,
        "a session from before a password change, at a node that had not heard of it",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_leader_that_wakes_up_serves_nothing_revoked_by_its_successor() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let (_admin, _alice, key) = setup(&cluster).await;
    let old = cluster.leader().await;
    let other = (1..=3).find(|n| *n != old).expect("another node");
    let stale = signed_in_at(&cluster, old, "alice", "alice-password-1").await;
    stale
        .sign(key, SignMechanism::Ed25519, b"before".to_vec())
        .await
        .expect("served before the revocation");

    // The leader is paused; the others elect a successor, through which an
    // officer resets Alice's password. Woken well inside two election timeouts, the old leader still
    // believes it leads.
    cluster.signal(old, "STOP");
    let paused_at = Instant::now();
    let admin = signed_in_at(&cluster, other, "admin", "admin-password-1").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match admin
            .change_password(user("alice"), "alice-password-2")
            .await
        {
            Ok(()) => break,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no successor changed the password: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    cluster.signal(old, "CONT");
    let asleep = paused_at.elapsed();
    assert_refused_session(
        stale
            .sign(key, SignMechanism::Ed25519, b"after".to_vec())
            .await,
        &format!("a session from before a password change, at a leader paused for {asleep:?}"),
    );
}

/// The leader as the running nodes other than `paused` see it: one that
/// is not `paused`, reported by one of them.
async fn leader_besides(cluster: &Cluster, running: &[u64], paused: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let options = ClientOptions::default()
        .deadline(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(1));
    loop {
        for &i in running.iter().filter(|i| **i != paused) {
            let Ok(c) = cluster.try_client_of_with(i, options.clone()).await else {
                continue;
            };
            if let Ok(Some(l)) = c.cluster_info().await.map(|s| s.leader) {
                if l.0 != paused {
                    return l.0;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no new leader:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Pauses whoever leads, in turn (among `running`), until node `target`
/// wins an election. The tests call it where the members running besides
/// a paused leader are just a quorum, so every one's vote is needed and a target whose elections were
/// hastened (`Cluster::hasten_elections`) wins within a round or two: its
/// term is the highest, and no one else can win without its vote.
async fn make_leader(cluster: &Cluster, running: &[u64], target: u64) {
    let mut leaders = vec![cluster.leader().await];
    for _ in 0..10 {
        let leader = *leaders.last().expect("one");
        if leader == target {
            return;
        }
        cluster.signal(leader, "STOP");
        let next = leader_besides(cluster, running, leader).await;
        cluster.signal(leader, "CONT");
        leaders.push(next);
    }
    panic!(
        "node {target} never won an election; leaders in turn: {leaders:?}\n{}",
        cluster.logs()
    );
}

/// Waits (at most 40 s) until node `i` has applied `index` and logs alice
/// in; `stuck` says what it means if it never does.
async fn serves_alice_after(cluster: &Cluster, i: u64, index: u64, stuck: &str) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let caught_up = async {
            let node = cluster.try_client_of(i).await?;
            node.observe_index(index);
            node.login(user("alice"), "alice-password-1").await
        };
        if caught_up.await.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "{stuck}:\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Found by the chaos harness (two four-minute stalls in a long run): a
/// member added after the snapshot its leader holds becomes leader, and a
/// node joins through it. The new node installs that snapshot, which does
/// not list the leader, and must still take the leader's entries: the
/// roster it was handed when it joined is newer than the snapshot. Before
/// the fix it refused every append from the leader ("a node that may not
/// send it") until another member happened to win an election.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_joining_from_a_snapshot_older_than_its_leader_follows_that_leader() {
    // A snapshot every 100 entries and no log kept behind it: a joining
    // node starts from the leader's snapshot.
    let mut cluster = Cluster::start_with_env(
        3,
        &[
            ("HSM_NODE_RAFT_SNAPSHOT_EVERY_LOGS", "100"),
            ("HSM_NODE_RAFT_LOGS_KEPT_AFTER_SNAPSHOT", "0"),
        ],
    );
    cluster.wait_ready().await;
    let (admin, alice, _) = setup(&cluster).await;
    for i in 0..110 {
        alice
            .generate_key(
                KeySpec::Aes { bits: 128 },
                KeyAttributes {
                    label: format!("before-{i}"),
                    ..signing()
                },
                false,
            )
            .await
            .expect("write");
    }

    // Node 4 joins from a snapshot that predates it.
    let record = cluster.prepare_node(4, "zone-d");
    cluster.hasten_elections(4);
    admin.add_node(record).await.expect("approve node 4");
    let pin = hex::encode(cluster.member_pin(1));
    let first = cluster.member_address(1);
    cluster.start_node_with(4, &["--join", &first, "--join-pin", &pin]);
    cluster.wait_ready().await;
    let log4 = std::fs::read_to_string(cluster.log_file(4)).expect("log");
    assert!(log4.contains("installed snapshot"), "{log4}");

    // Node 4 leads.
    make_leader(&cluster, &[1, 2, 3, 4], 4).await;

    // Node 5 joins through node 4; the snapshot node 4 sends it does not
    // list node 4, the roster node 4 hands it does.
    let record = cluster.prepare_node(5, "zone-e");
    admin.add_node(record).await.expect("approve node 5");
    let pin = hex::encode(cluster.member_pin(4));
    let four = cluster.member_address(4);
    cluster.start_node_with(5, &["--join", &four, "--join-pin", &pin]);
    serves_alice_after(
        &cluster,
        5,
        admin.applied_index(),
        "node 5 never took node 4's entries",
    )
    .await;
    let log5 = std::fs::read_to_string(cluster.log_file(5)).expect("log");
    assert!(log5.contains("installed snapshot"), "{log5}");
    assert!(!log5.contains("may not send it"), "{log5}");
}

/// A member away (stopped) while a node is added and then elected comes
/// back to a leader its replica does not list. It learns of that leader
/// from a member it knows (the roster a joining node is handed) and
/// follows it. Before, it refused every append from the new leader ("a
/// node that may not send it") and served nothing fresh until a member it
/// knew won an election, which nothing made happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_away_while_its_leader_was_added_follows_that_leader_when_back() {
    let mut cluster = Cluster::start(5);
    cluster.wait_ready().await;
    let (admin, alice, _) = setup(&cluster).await;

    // Node 5 is away while node 6 joins and wins an election.
    cluster.kill(5);
    let record = cluster.prepare_node(6, "zone-f");
    cluster.hasten_elections(6);
    admin.add_node(record).await.expect("approve node 6");
    let pin = hex::encode(cluster.member_pin(1));
    let first = cluster.member_address(1);
    cluster.start_node_with(6, &["--join", &first, "--join-pin", &pin]);
    cluster.wait_ready().await;
    // A learner never wins an election: wait until node 6 votes (on a
    // loaded machine its catch-up and promotion take a while).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let members = admin.cluster_info().await.map(|s| s.members);
        if members.is_ok_and(|m| m.iter().any(|m| m.id.0 == 6 && m.voter)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 6 never became a voter:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    make_leader(&cluster, &[1, 2, 3, 4, 6], 6).await;
    let six = cluster.client_of(6).await;
    six.login(user("admin"), "admin-password-1")
        .await
        .expect("admin at node 6");
    let term = six.cluster_info().await.expect("info").term;
    for i in 0..3 {
        alice
            .generate_key(
                KeySpec::Aes { bits: 128 },
                KeyAttributes {
                    label: format!("while-away-{i}"),
                    ..signing()
                },
                false,
            )
            .await
            .expect("write");
    }

    // Each member make_leader paused may still hold an append of its old
    // term queued for node 5: openraft keeps a deposed leader's replication
    // streams, and one sends what it holds once its 500 ms backoff is over.
    // That append lists node 6, so node 5 would take it from a member it
    // knows before node 6 ever called, and never ask for a roster. Let those
    // appends go out while node 5 is still away: node 6 calls it first.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Node 5 comes back and catches up with node 6 as its leader.
    cluster.start_node(5);
    serves_alice_after(
        &cluster,
        5,
        alice.applied_index(),
        "node 5 never took node 6's entries",
    )
    .await;
    let info = six.cluster_info().await.expect("info");
    assert_eq!(
        (info.leader, info.term),
        (Some(hsm_proto::NodeId(6)), term),
        "another election let node 5 in: the test did not show it follows node 6"
    );
    let log5 = std::fs::read_to_string(cluster.log_file(5)).expect("log");
    assert!(
        log5.contains("took a newer roster"),
        "node 5 learnt of node 6 without asking for a roster:\n{log5}"
    );
}
