//! Rolling restarts and upgrades as an operator runs them (the operator
//! guide's §6 "Restarts (rolling)" and "Upgrades"): each node in turn is
//! stopped with SIGTERM (`systemctl stop`), kept down longer than an
//! election takes (as a host being upgraded is), started again (on the new
//! build, for an upgrade), and waited for until its `/health/ready` says it
//! is in touch with the leader and caught up; followers first, the leader
//! last. Many callers sign and generate keys through one SDK client all
//! the while: not one call fails, and every key whose generation was
//! acknowledged is on every node afterwards. A leader of this build hands
//! leadership over before its process ends (`hsm_node::handoff`). The
//! slowest call is printed.
//!
//! Moving leadership on command (`hsm node transfer-leader`) and before
//! removing the leader are tested under the same load.
//!
//! The upgrade test needs an earlier build and is run by
//! `./x upgrade-test [--from REV]`, not by `cargo test`.

mod procs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hsm_client::Client;
use hsm_proto::client::ErrorKind;
use hsm_proto::mechanism::SignMechanism;
use hsm_proto::{KeyId, KeySpec, NodeId};
use procs::cli::Hsm;
use procs::{http_get, signing, Cluster};

const ADMIN_PASSWORD: &str = "admin-password-1";
const ALICE_PASSWORD: &str = "alice-password-1";
/// How long each node stays stopped.
const DOWN_FOR: Duration = Duration::from_millis(2_000);

/// Callers that sign and callers that generate keys, through one client,
/// until stopped; every failure is kept, with when it happened.
struct Load {
    stop: Arc<AtomicBool>,
    signed: Arc<AtomicU64>,
    generated: Arc<Mutex<Vec<KeyId>>>,
    failures: Arc<Mutex<Vec<String>>>,
    slowest_ms: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: &Client, key: KeyId, signers: usize, writers: usize) -> Load {
        let load = Load {
            stop: Arc::new(AtomicBool::new(false)),
            signed: Arc::new(AtomicU64::new(0)),
            generated: Arc::new(Mutex::new(Vec::new())),
            failures: Arc::new(Mutex::new(Vec::new())),
            slowest_ms: Arc::new(AtomicU64::new(0)),
            tasks: Vec::new(),
        };
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..signers + writers {
            let client = client.clone();
            let (stop, signed, generated, failures, slowest) = (
                load.stop.clone(),
                load.signed.clone(),
                load.generated.clone(),
                load.failures.clone(),
                load.slowest_ms.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let call = Instant::now();
                    let result = if c < signers {
                        let message = format!("caller {c} message {i}").into_bytes();
                        client
                            .sign(key, SignMechanism::Ed25519, message)
                            .await
                            .map(|_| {
                                signed.fetch_add(1, Ordering::Relaxed);
                            })
                    } else {
                        client
                            .generate_key(KeySpec::Ed25519, signing(&format!("w{c}-{i}")), false)
                            .await
                            .map(|k| generated.lock().expect("lock").push(k.id))
                    };
                    let took = u64::try_from(call.elapsed().as_millis()).unwrap_or(u64::MAX);
                    slowest.fetch_max(took, Ordering::Relaxed);
                    if let Err(e) = result {
                        failures.lock().expect("lock").push(format!(
                            "at {:?}, caller {c} ({}): {e}",
                            started.elapsed(),
                            if c < signers { "sign" } else { "generate" }
                        ));
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }));
        }
        Load { tasks, ..load }
    }

    /// (signatures, acknowledged key generations) so far.
    fn progress(&self) -> (u64, usize) {
        (
            self.signed.load(Ordering::Relaxed),
            self.generated.lock().expect("lock").len(),
        )
    }

    /// Stops every caller; returns (signatures, generated keys, failures,
    /// the slowest call in ms).
    async fn stop(self) -> (u64, Vec<KeyId>, Vec<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("caller");
        }
        let generated = self.generated.lock().expect("lock").clone();
        let failures = self.failures.lock().expect("lock").clone();
        (
            self.signed.load(Ordering::Relaxed),
            generated,
            failures,
            self.slowest_ms.load(Ordering::Relaxed),
        )
    }
}

/// Waits until node `i`'s `/health/ready` at `addr` answers 200; fails
/// with its log after a minute.
async fn wait_healthy(cluster: &Cluster, i: u64, addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = tokio::task::spawn_blocking(move || http_get(addr, "/health/ready"))
            .await
            .expect("join");
        if matches!(answer, Ok((200, _))) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {i} not ready a minute after its restart ({answer:?}):\n{}",
            cluster.log_tail(i)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Raft protocol version node `i`'s metrics at `addr` say the cluster
/// runs (`None` from a build without the metric, or without an answer).
async fn raft_protocol(addr: SocketAddr) -> Option<u64> {
    let (_, body) = tokio::task::spawn_blocking(move || http_get(addr, "/metrics"))
        .await
        .expect("join")
        .ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix("hsm_raft_protocol "))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until every node's metrics say the cluster runs Raft protocol
/// `version`; fails with the logs after 30 s.
async fn wait_for_protocol(cluster: &Cluster, health: &[SocketAddr], version: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = Vec::new();
        for addr in health {
            seen.push(raft_protocol(*addr).await);
        }
        if seen.iter().all(|v| *v == Some(version)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes never all ran Raft protocol {version}: {seen:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the load made `more` signatures and key generations past
/// `since`; fails with the nodes' logs after a minute.
async fn wait_for_progress(cluster: &Cluster, load: &Load, since: (u64, usize), what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = load.progress();
        if now.0 >= since.0 + 50 && now.1 >= since.1 + 5 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no progress {what}: {since:?} then {now:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A 3-node cluster of `node_bin`'s processes (this build's unless
/// given), each with its health endpoint (returned, by node), activated,
/// with alice, a crypto user, logged in through the returned client and
/// owning one signing key.
async fn cluster_with_alice(node_bin: &Path) -> (Cluster, Vec<SocketAddr>, Client, KeyId) {
    let health: Vec<SocketAddr> = (0..3)
        .map(|_| {
            (
                [127, 0, 0, 1],
                hsm_node::local::free_ports(1).expect("port"),
            )
                .into()
        })
        .collect();
    let cluster = Cluster::start_built_by(node_bin, 3, &[], |i| {
        vec![(
            "HSM_NODE_METRICS_LISTEN".to_owned(),
            health[usize::try_from(i - 1).expect("small")].to_string(),
        )]
    });
    cluster.wait_ready().await;
    let (_admin, alice, key) = cluster
        .with_alice(ADMIN_PASSWORD, ALICE_PASSWORD, "load")
        .await;
    (cluster, health, alice, key)
}

/// Restarts every node of `cluster` in turn, followers first and the
/// leader last, as the module describes, while `load` runs; with
/// `new_bin`, each node starts again on that build (an upgrade). When the
/// stopping leader is expected to hand over (`hand_over`), a new leader
/// must be known the moment its process is gone.
async fn roll(
    cluster: &mut Cluster,
    health: &[SocketAddr],
    load: &Load,
    new_bin: Option<&Path>,
    hand_over: bool,
) {
    let leader = cluster.leader().await;
    let order: Vec<u64> = (1..=3).filter(|n| *n != leader).chain([leader]).collect();
    for i in order {
        let before = load.progress();
        let at = Instant::now();
        let status = cluster.stop(i);
        assert!(
            status.success(),
            "node {i} did not stop cleanly on SIGTERM ({status}):\n{}",
            cluster.log_tail(i)
        );
        if i == leader && hand_over {
            // It handed leadership over before it stopped: a new leader
            // is known the moment its process is gone, not a lease and an
            // election later.
            let mut known = Vec::new();
            for other in (1..=3).filter(|n| *n != i) {
                let info = cluster.client_of(other).await.cluster_info().await;
                known.push((other, info.ok().and_then(|s| s.leader).map(|l| l.0)));
            }
            assert!(
                known.iter().any(|(_, l)| l.is_some_and(|l| l != i)),
                "no member knew a new leader when the leader's process ended: {known:?}\n{}",
                cluster.logs()
            );
        }
        // Down longer than an election takes (at most 2 s here), as a
        // host being upgraded is: without a hand-over the others elect a
        // new leader meanwhile, and calls wait for that instead of failing.
        tokio::time::sleep(DOWN_FOR).await;
        if i == leader {
            let new_leader = cluster.leader().await;
            assert_ne!(new_leader, leader, "no new leader while {leader} was down");
        }
        if let Some(bin) = new_bin {
            cluster.set_node_bin(i, bin);
        }
        cluster.start_node(i);
        // As the operator guide says: the next node only once this one
        // is ready (in touch with the leader and caught up with it).
        wait_healthy(cluster, i, health[usize::try_from(i - 1).expect("small")]).await;
        wait_for_progress(cluster, load, before, &format!("after node {i}'s restart")).await;
        if new_bin.is_some() && i != leader {
            // A member of the earlier build remains (the leader, last):
            // the cluster keeps the rules that build follows.
            let addr = health[usize::try_from(i - 1).expect("small")];
            assert_eq!(
                raft_protocol(addr).await,
                Some(1),
                "node {i}, upgraded while a member of the earlier build remains"
            );
        }
        println!(
            "node {i} restarted (leader was {leader}, now {}) in {:?}",
            cluster.leader().await,
            at.elapsed()
        );
    }
}

/// Stops `load` and checks that no call failed and every key whose
/// generation was acknowledged is on every node; returns (signatures,
/// keys, slowest call in ms).
async fn no_call_failed_and_no_key_lost(
    cluster: &Cluster,
    alice: &Client,
    load: Load,
) -> (u64, Vec<KeyId>, u64) {
    let (signed, generated, failures, slowest_ms) = load.stop().await;
    assert!(
        failures.is_empty(),
        "{} calls failed ({signed} signatures and {} keys acknowledged), the first: {:#?}\n{}",
        failures.len(),
        generated.len(),
        &failures[..failures.len().min(8)],
        cluster.logs()
    );
    let index = alice.applied_index();
    for i in 1..=3 {
        let on_node = cluster.key_ids_on(i, "alice", ALICE_PASSWORD, index).await;
        let missing: Vec<&KeyId> = generated.iter().filter(|k| !on_node.contains(k)).collect();
        assert!(
            missing.is_empty(),
            "node {i} lacks {} of {} acknowledged keys: {missing:?}",
            missing.len(),
            generated.len()
        );
    }
    (signed, generated, slowest_ms)
}

fn this_build() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hsm-node"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_fails_no_call_and_loses_no_acknowledged_write() {
    let (mut cluster, health, alice, key) = cluster_with_alice(&this_build()).await;
    let load = Load::start(&alice, key, 6, 2);
    wait_for_progress(&cluster, &load, (0, 0), "before the restarts").await;
    roll(&mut cluster, &health, &load, None, true).await;
    let (signed, generated, slowest_ms) =
        no_call_failed_and_no_key_lost(&cluster, &alice, load).await;
    println!(
        "rolling restart: {signed} signatures and {} key generations, none failed; \
         slowest call {slowest_ms} ms",
        generated.len()
    );
}

/// A rolling upgrade from an earlier build (`./x upgrade-test` builds it
/// and names its directory in `HSM_UPGRADE_FROM`): that build creates
/// and runs the cluster, keys are made on it, then each node in turn
/// starts again on this build, under the same load as above. The mixed
/// cluster serves between the steps; not one call fails; every key is on
/// every node; the key made before the upgrade still signs; and the
/// earlier build's `hsm` still works against the upgraded cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs an earlier build: ./x upgrade-test"]
async fn a_rolling_upgrade_from_an_earlier_build_fails_no_call() {
    let from = PathBuf::from(
        std::env::var_os("HSM_UPGRADE_FROM")
            .expect("HSM_UPGRADE_FROM: the earlier build's directory (./x upgrade-test sets it)"),
    );
    let (old_node, old_hsm) = (from.join("hsm-node"), from.join("hsm"));
    assert!(
        old_node.is_file() && old_hsm.is_file(),
        "no hsm-node and hsm in {}",
        from.display()
    );
    let (mut cluster, health, alice, key) = cluster_with_alice(&old_node).await;
    let before = alice
        .sign(
            key,
            SignMechanism::Ed25519,
            b"signed before the upgrade".to_vec(),
        )
        .await
        .expect("sign on the earlier build");

    let load = Load::start(&alice, key, 6, 2);
    wait_for_progress(&cluster, &load, (0, 0), "before the upgrade").await;
    // The leader, last, still runs the earlier build when it stops.
    roll(&mut cluster, &health, &load, Some(&this_build()), false).await;
    let (signed, generated, slowest_ms) =
        no_call_failed_and_no_key_lost(&cluster, &alice, load).await;

    // The key made on the earlier build signs alike on this one (Ed25519
    // signatures are deterministic).
    let after = alice
        .sign(
            key,
            SignMechanism::Ed25519,
            b"signed before the upgrade".to_vec(),
        )
        .await
        .expect("sign after the upgrade");
    assert_eq!(
        before, after,
        "the same key and message sign alike after the upgrade"
    );
    // Every member speaks this build's Raft protocol now: the leader
    // raises the cluster's, one version at a time, to the newest.
    let newest = u64::from(*hsm_proto::protocol::RAFT.end());
    wait_for_protocol(&cluster, &health, newest).await;
    // Going back to the earlier build on one member is refused: it cannot
    // read a state recorded under a newer protocol, and stops instead of
    // serving; this build takes it back.
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    assert!(cluster.stop(follower).success());
    cluster.set_node_bin(follower, &old_node);
    cluster.start_node(follower);
    let exited = cluster.wait_exit(follower, Duration::from_secs(30));
    assert!(
        exited.is_some_and(|s| !s.success()),
        "the earlier build ran on a store of Raft protocol {newest} ({exited:?}):\n{}",
        cluster.log_tail(follower)
    );
    // It cannot even read the record of the version (builds before
    // versioning know no such record).
    assert!(
        cluster.log_tail(follower).contains("does not decode"),
        "{}",
        cluster.log_tail(follower)
    );
    cluster.set_node_bin(follower, &this_build());
    cluster.start_node(follower);
    wait_healthy(
        &cluster,
        follower,
        health[usize::try_from(follower - 1).expect("small")],
    )
    .await;
    // The earlier `hsm` (an application not upgraded yet) against the
    // upgraded cluster.
    let hsm = Hsm {
        config: cluster.client_config(),
        dir: cluster.path().to_path_buf(),
    };
    let listed = hsm
        .run_by(
            &old_hsm,
            Some(("alice", ALICE_PASSWORD)),
            &["key", "list"],
            &[],
        )
        .ok();
    assert_eq!(
        listed["total_key_count"].as_u64(),
        Some(generated.len() as u64 + 1),
        "{listed}"
    );
    println!(
        "rolling upgrade from {}: {signed} signatures and {} key generations, none failed; \
         slowest call {slowest_ms} ms",
        from.display(),
        generated.len()
    );
}

/// `hsm node transfer-leader` as an operator runs it, under the load
/// above: leadership moves to the member named, then (none named) to
/// another caught-up voter, while the former leader keeps running as a
/// follower, and not one call fails. A crypto user may not move it, and a
/// node that does not vote cannot lead. Removing the leader then moves
/// leadership first, so the removal goes through (a member cannot sign
/// its own removal).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leadership_moves_on_command_without_a_failed_call() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let (admin, alice, key) = cluster
        .with_alice(ADMIN_PASSWORD, ALICE_PASSWORD, "transfer")
        .await;
    // `hsm` is built (if it is not yet) before the load starts.
    let hsm = Hsm {
        config: cluster.client_config(),
        dir: cluster.path().to_path_buf(),
    };
    procs::cli::hsm_bin();
    let load = Load::start(&alice, key, 6, 2);
    wait_for_progress(&cluster, &load, (0, 0), "before the transfers").await;

    // To a member named, through the CLI.
    let first = cluster.leader().await;
    let to = (1..=3).find(|i| *i != first).expect("a follower");
    let moved = hsm
        .run(
            Some(("admin", ADMIN_PASSWORD)),
            &["node", "transfer-leader", "--to", &to.to_string()],
            &[],
        )
        .ok();
    assert_eq!(moved["leader"].as_u64(), Some(to), "{moved}");
    leads(&cluster, to).await;
    let before = load.progress();
    wait_for_progress(&cluster, &load, before, "after the first transfer").await;

    // To any caught-up voter, through the SDK.
    let next = admin.transfer_leadership(None).await.expect("transfer").0;
    assert_ne!(next, to);
    leads(&cluster, next).await;
    let before = load.progress();
    wait_for_progress(&cluster, &load, before, "after the second transfer").await;

    let by_user = alice
        .transfer_leadership(None)
        .await
        .expect_err("a crypto user may not move leadership");
    assert_eq!(
        by_user.kind(),
        Some(ErrorKind::PermissionDenied),
        "{by_user}"
    );
    let to_stranger = admin
        .transfer_leadership(Some(NodeId(9)))
        .await
        .expect_err("node 9 is no voter");
    assert_eq!(
        to_stranger.kind(),
        Some(ErrorKind::InvalidInput),
        "{to_stranger}"
    );

    let (signed, generated, slowest_ms) =
        no_call_failed_and_no_key_lost(&cluster, &alice, load).await;
    println!(
        "two leadership transfers: {signed} signatures and {} key generations, none failed; \
         slowest call {slowest_ms} ms",
        generated.len()
    );

    // Removing the leader: it hands leadership over, then its successor
    // records the removal.
    let leader = cluster.leader().await;
    admin
        .remove_node(NodeId(leader))
        .await
        .expect("the leader is removed");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut views = Vec::new();
        for i in (1..=3).filter(|i| *i != leader) {
            let info = cluster.client_of(i).await.cluster_info().await;
            views.push(info.ok().map(|s| {
                (
                    s.leader.map(|l| l.0),
                    s.members.iter().map(|m| m.id.0).collect::<Vec<_>>(),
                )
            }));
        }
        let settled = views.iter().all(|v| {
            v.as_ref().is_some_and(|(l, members)| {
                l.is_some_and(|l| l != leader) && !members.contains(&leader)
            })
        });
        if settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the others never settled without {leader}: {views:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A removed member leads no more, though it may still vote in Raft
    // for a moment (the removal ended every session: log in again). The
    // same client logs in again at once: the removed node, still running,
    // is neither taken for the leader nor waits out the request's
    // deadline (it answered "no leader known" after 10 s, leaving the
    // client no time for another node).
    let relogin = Instant::now();
    if let Err(e) = admin.login(procs::user("admin"), ADMIN_PASSWORD).await {
        panic!("the client that removed the leader cannot log in again: {e}");
    }
    assert!(
        relogin.elapsed() < Duration::from_secs(5),
        "logging in again took {:?}",
        relogin.elapsed()
    );
    let to_removed = admin
        .transfer_leadership(Some(NodeId(leader)))
        .await
        .expect_err("a removed member cannot lead");
    assert_eq!(
        to_removed.kind(),
        Some(ErrorKind::InvalidInput),
        "{to_removed}"
    );
}

/// Waits until every running node names `leader` as the leader (a node
/// learns it with the new leader's first message); fails after 10 s.
async fn leads(cluster: &Cluster, leader: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut views = Vec::new();
        for i in 1..=3 {
            let info = cluster.client_of(i).await.cluster_info().await;
            views.push(info.ok().and_then(|s| s.leader).map(|l| l.0));
        }
        if views.iter().all(|l| *l == Some(leader)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not every node follows {leader}: {views:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Node `i`'s CA file.
fn ca_file(cluster: &Cluster, i: u64) -> PathBuf {
    let text = std::fs::read_to_string(cluster.config_file(i)).expect("config");
    hsm_node::config::NodeConfig::from_toml_str(&text)
        .expect("parse")
        .ca_cert()
}

/// Puts `pem` (one CA certificate, or a bundle) into every node's CA file
/// and the client config, as an operator distributes a CA file.
fn distribute_ca(cluster: &Cluster, pem: &str) {
    for i in 1..=3 {
        std::fs::write(ca_file(cluster, i), pem).expect("write CA file");
    }
    let path = cluster.client_config();
    let text = std::fs::read_to_string(&path).expect("client config");
    let mut config: hsm_proto::client::ClientConfig = toml::from_str(&text).expect("parse");
    config.ca_cert_pem = pem.to_owned();
    std::fs::write(&path, toml::to_string(&config).expect("toml")).expect("write");
}

/// Rotating the cluster CA with an overlap, as the operator guide's
/// "Rotating the CA" does it, under the load above: a new CA joins the old
/// one in every CA file (and the clients'), each node gets a certificate
/// from the new CA for the key it has (`hsm-node renew-cert`, so no member
/// record changes), then the old CA leaves the CA files; each step is a
/// rolling restart. Not one call fails. Afterwards a client that trusts
/// only the old CA can reach no node, and one that trusts the new CA works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_ca_is_rotated_with_an_overlap_and_no_failed_call() {
    let (mut cluster, health, _, key) = cluster_with_alice(&this_build()).await;
    let old_ca = std::fs::read_to_string(ca_file(&cluster, 1)).expect("old CA");
    let new_ca = hsm_node::transport::ClusterCa::generate("rotated").expect("new CA");
    let (new_ca_pem, new_ca_key) = (
        cluster.path().join("new-ca.pem"),
        cluster.path().join("new-ca.key"),
    );
    std::fs::write(&new_ca_pem, new_ca.cert_pem()).expect("write");
    hsm_node::runtime::write_private(&new_ca_key, new_ca.key_pem().as_bytes()).expect("write");

    let configs: Vec<PathBuf> = (1..=3).map(|i| cluster.config_file(i)).collect();
    let renew = |i: u64| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hsm-node"))
            .arg("renew-cert")
            .arg("--config")
            .arg(&configs[usize::try_from(i - 1).expect("small")])
            .arg("--ca-cert")
            .arg(&new_ca_pem)
            .arg("--ca-key")
            .arg(&new_ca_key)
            .output()
            .expect("run hsm-node renew-cert")
    };
    // Renewing before the new CA is trusted would cut the node off: refused.
    let early = renew(1);
    assert!(
        !early.status.success()
            && String::from_utf8_lossy(&early.stderr).contains("the new CA is not in"),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );

    // 1. Both CAs trusted everywhere (clients too: the load's client is
    // made with the bundle).
    distribute_ca(&cluster, &format!("{old_ca}{}", new_ca.cert_pem()));
    let alice = cluster.client().await;
    alice
        .login(procs::user("alice"), ALICE_PASSWORD)
        .await
        .expect("login");
    let load = Load::start(&alice, key, 6, 2);
    wait_for_progress(&cluster, &load, (0, 0), "before the CA rotation").await;
    roll(&mut cluster, &health, &load, None, true).await;

    // 2. Each node's certificate from the new CA, for its own key.
    for i in 1..=3 {
        let out = renew(i);
        assert!(
            out.status.success(),
            "renew-cert on node {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    roll(&mut cluster, &health, &load, None, true).await;

    // 3. The old CA leaves every CA file.
    distribute_ca(&cluster, new_ca.cert_pem());
    roll(&mut cluster, &health, &load, None, true).await;
    let (signed, generated, slowest_ms) =
        no_call_failed_and_no_key_lost(&cluster, &alice, load).await;
    println!(
        "CA rotation: {signed} signatures and {} key generations, none failed; \
         slowest call {slowest_ms} ms",
        generated.len()
    );

    // Only the new CA opens the cluster now.
    let text = std::fs::read_to_string(cluster.client_config()).expect("client config");
    let mut old_only: hsm_proto::client::ClientConfig = toml::from_str(&text).expect("parse");
    old_only.ca_cert_pem = old_ca;
    let options = hsm_client::ClientOptions::default().deadline(Duration::from_secs(3));
    assert!(
        Client::connect(old_only, options).await.is_err(),
        "a client trusting only the old CA reached the cluster"
    );
    let fresh = cluster.client().await;
    fresh
        .login(procs::user("alice"), ALICE_PASSWORD)
        .await
        .expect("login with the new CA");
    fresh
        .sign(key, SignMechanism::Ed25519, b"after the rotation".to_vec())
        .await
        .expect("sign");
}
