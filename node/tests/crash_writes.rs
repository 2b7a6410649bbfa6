//! The write path under crashes, with real `hsm-node` processes: many
//! writers at once (so the leader puts many writes in each log entry and
//! syncs them together), and nodes killed with SIGKILL at random moments
//! of that stream, leader and followers, again and again. Every write a
//! client saw acknowledged must be on every node afterwards.

mod procs;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hsm_proto::{KeyAttributes, KeyId, KeySpec, Role};
use procs::{user, Cluster};
use rand::{Rng, SeedableRng};

/// Writers at once: enough for entries of many writes.
const WRITERS: usize = 24;
/// Kills, each followed by a restart of the killed node.
const KILLS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_killed_at_random_moments_of_group_committed_writes_lose_no_acknowledged_write() {
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate("admin-password-1").await;
    admin
        .create_user(user("alice"), Role::Cu, "alice-password-1")
        .await
        .expect("create alice");

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<KeyId>>> = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = cluster.client().await;
        client
            .login(user("alice"), "alice-password-1")
            .await
            .expect("login");
        let (stop, acked) = (stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let attributes = KeyAttributes {
                    label: format!("w{w}-{i}"),
                    encrypt: true,
                    decrypt: true,
                    ..KeyAttributes::default()
                };
                // A failed write (its node killed, no leader yet) may or
                // may not be applied: only acknowledged ones are checked.
                if let Ok(k) = client
                    .generate_key(KeySpec::Aes { bits: 128 }, attributes, false)
                    .await
                {
                    acked.lock().expect("lock").push(k.id);
                }
                i += 1;
            }
            client
        }));
    }

    for _ in 0..KILLS {
        // Writes flow again (after the last restart) before each kill.
        let flowing = acked.lock().expect("lock").len() + WRITERS;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while acked.lock().expect("lock").len() < flowing {
            assert!(
                std::time::Instant::now() < deadline,
                "writes did not resume:\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..500))).await;
        let victim = rng.gen_range(1..=3);
        let mut views = Vec::new();
        for node in 1..=3 {
            if let Ok(c) = cluster.try_client_of(node).await {
                if let Ok(info) = c.cluster_info().await {
                    views.push((node, info.leader.map(|l| l.0)));
                }
            }
        }
        let before = acked.lock().expect("lock").len();
        cluster.kill(victim);
        println!("killed node {victim} (leader as each node sees it: {views:?}) after {before} acknowledged writes");
        // Back within the election timeout (a leader resumes) or after it
        // (the others elect a new one).
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..3500))).await;
        cluster.start_node(victim);
        cluster.wait_ready().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut last_index = 0;
    for w in writers {
        let client = w.await.expect("writer");
        last_index = last_index.max(client.applied_index());
    }
    let acked: Vec<KeyId> = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > WRITERS * KILLS,
        "only {} writes were acknowledged:\n{}",
        acked.len(),
        cluster.logs()
    );

    for node in 1..=3 {
        let keys = cluster
            .key_ids_on(node, "alice", "alice-password-1", last_index)
            .await;
        let missing = acked.iter().filter(|k| !keys.contains(k)).count();
        assert_eq!(
            missing,
            0,
            "node {node} lacks {missing} of {} acknowledged keys (seed {seed}):\n{}",
            acked.len(),
            cluster.logs()
        );
    }
}
