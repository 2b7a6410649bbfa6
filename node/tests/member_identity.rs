//! A CA is not an identity: two clusters on one CA (as `hsm-node init
//! --ca-cert` invites, with an organisation's CA), and the node of the
//! second cluster that has a member's id in its certificate.
//!
//! - Inbound: that node connects to the first cluster's leader as if it
//!   were the member and forwards a write naming `admin` as the actor (a
//!   new crypto officer), asks for a read index and for the domain key.
//!   Each is refused: the member record pins another key.
//! - Outbound: with the real followers down, a server with that
//!   certificate answers at a follower's address and acknowledges every
//!   append; the leader must not count it towards a quorum, so no write is
//!   acknowledged. A client whose config names that member sends it
//!   nothing.
//! - A genuine member (a compromised host) forwards writes in a user's
//!   name only with that user's session, and acts as a node only as
//!   itself.

mod procs;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hsm_node::config::NodeConfig;
use hsm_node::raft::{ForwardedWrite, RaftReply, RaftRpc, MAX_RAFT_FRAME_BYTES};
use hsm_node::transport::{
    client_endpoint, node_client_tls, node_client_tls_offering, read_frame, server_endpoint,
    server_tls, write_frame, NodeCert, SERVER_NAME,
};
use hsm_proto::{codec, Actor, EventBody, NodeId, RequestId, Role};
use openraft::raft::AppendEntriesResponse;
use procs::{user, Cluster};
use zeroize::Zeroizing;

const ADMIN: &str = "admin-password-identity";

/// A second cluster, with one node of id `id`, initialized with the first
/// cluster's CA (`hsm-node init --ca-cert --ca-key`); returns its node's
/// certificate and key.
fn second_cluster_on_the_same_ca(first: &Cluster, id: u64, dir: &Path) -> NodeCert {
    let mut config = NodeConfig::new(id, dir.join("b-node"));
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.advertise = Some("127.0.0.1:1".into());
    let config_file = dir.join("b-node.toml");
    std::fs::write(&config_file, toml::to_string(&config).expect("toml")).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_hsm-node"))
        .arg("init")
        .arg("--config")
        .arg(&config_file)
        .arg("--ca-cert")
        .arg(first.path().join("ca/ca.pem"))
        .arg("--ca-key")
        .arg(first.path().join("ca/ca.key"))
        .arg("--client-config")
        .arg(dir.join("b-cluster.toml"))
        .env("HSM_ADMIN_PASSWORD", "second-cluster-admin-pw")
        .output()
        .expect("run hsm-node init");
    assert!(
        out.status.success(),
        "init of the second cluster failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    NodeCert {
        cert_pem: std::fs::read_to_string(config.node_cert()).expect("cert"),
        key_pem: Zeroizing::new(std::fs::read_to_string(config.node_key()).expect("key")),
    }
}

/// A server at `at` with `cert` that reads one frame per stream, counts
/// it, and writes back what `answer` makes of it (if anything).
fn impostor_at(
    at: std::net::SocketAddr,
    ca: &str,
    cert: &NodeCert,
    answer: fn(&[u8]) -> Option<Vec<u8>>,
) -> (
    quinn::Endpoint,
    Arc<AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let endpoint = server_endpoint(at, server_tls(ca, cert).expect("tls")).expect("bind");
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let server = endpoint.clone();
    let task = tokio::spawn(async move {
        while let Some(incoming) = server.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let Ok(bytes) = read_frame(&mut recv, MAX_RAFT_FRAME_BYTES).await else {
                        return;
                    };
                    if let Some(reply) = answer(&bytes) {
                        counter.fetch_add(1, Ordering::Relaxed);
                        let _ = write_frame(&mut send, &reply).await;
                    }
                }
            });
        }
    });
    (endpoint, seen, task)
}

fn ca_pem(cluster: &Cluster) -> String {
    std::fs::read_to_string(cluster.path().join("ca/ca.pem")).expect("ca")
}

/// One Raft RPC from a node holding `cert`, to the member at `addr`.
async fn call_as(
    ca: &str,
    cert: &NodeCert,
    addr: &str,
    rpc: &RaftRpc,
) -> Result<RaftReply, String> {
    let addr: std::net::SocketAddr = addr.parse().expect("addr");
    let endpoint =
        client_endpoint(addr, node_client_tls(ca, cert).expect("tls")).expect("endpoint");
    let conn = endpoint
        .connect(addr, SERVER_NAME)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let bytes = codec::encode("raft rpc", rpc).expect("encode");
    write_frame(&mut send, &bytes)
        .await
        .map_err(|e| e.to_string())?;
    let reply = read_frame(&mut recv, MAX_RAFT_FRAME_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    codec::decode("raft reply", &reply).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_cluster_on_the_same_ca_is_no_member() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let work = tempfile::tempdir().expect("tempdir");
    let rogue = second_cluster_on_the_same_ca(&cluster, follower, work.path());
    let ca = ca_pem(&cluster);
    let leader_addr = cluster.member_address(leader);

    let forged = RaftRpc::Forward(ForwardedWrite {
        request_id: RequestId(rand::random()),
        actor: Actor::User(user("admin")),
        session: None,
        body: EventBody::UserCreated {
            username: user("mallory"),
            role: Role::Co,
            password_hash: hsm_node::secrets::hash_password("mallory-password-1").expect("hash"),
        },
    });
    for rpc in [
        forged,
        RaftRpc::ReadIndex,
        RaftRpc::ReadIndexWithTime,
        RaftRpc::FetchDomainKey {
            node: NodeId(follower),
        },
    ] {
        let reply = call_as(&ca, &rogue, &leader_addr, &rpc).await;
        match reply {
            Ok(RaftReply::BadRequest(_)) | Err(_) => {}
            Ok(RaftReply::DomainKey(Err(_))) => {}
            other => panic!("{rpc:?} from another cluster's node was answered: {other:?}"),
        }
    }
    let users = admin.list_users().await.expect("users");
    assert!(
        users.iter().all(|u| u.username != user("mallory")),
        "a node of another cluster created a crypto officer: {users:?}"
    );
    let logs = cluster.logs();
    assert!(
        logs.contains("refused a certificate whose key is not the one the member record pins"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_never_counts_another_clusters_node_towards_a_quorum() {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    cluster.activate(ADMIN).await;
    let leader = cluster.leader().await;
    // Logged in while the followers are up (a login confirms with a quorum).
    let client = cluster.client_of(leader).await;
    client.login(user("admin"), ADMIN).await.expect("login");
    let followers: Vec<u64> = (1..=3).filter(|i| *i != leader).collect();
    let work = tempfile::tempdir().expect("tempdir");
    let rogue = second_cluster_on_the_same_ca(&cluster, followers[0], work.path());
    let ca = ca_pem(&cluster);
    let at: std::net::SocketAddr = cluster.member_address(followers[0]).parse().expect("addr");
    for f in &followers {
        cluster.kill(*f);
    }
    // At the follower's address: a server with the other cluster's
    // certificate for the follower's id, acknowledging every append.
    let (endpoint, acked, task) = impostor_at(at, &ca, &rogue, |bytes| {
        let reply = match codec::decode::<RaftRpc>("raft rpc", bytes) {
            Ok(RaftRpc::AppendEntries(_)) => {
                RaftReply::AppendEntries(Ok(AppendEntriesResponse::Success))
            }
            _ => return None,
        };
        codec::encode("raft reply", &reply).ok()
    });

    let written = tokio::time::timeout(
        Duration::from_secs(30),
        client.create_user(user("quorum-of-one"), Role::Cu, "quorum-password-1"),
    )
    .await
    .expect("the write ends within its deadline");
    assert!(
        written.is_err(),
        "a write was acknowledged with only another cluster's node agreeing"
    );
    assert_eq!(
        acked.load(Ordering::Relaxed),
        0,
        "the leader sent appends to a node whose key its member record does not pin"
    );
    let logs = cluster.logs();
    assert!(logs.contains("not the member it should be"), "{logs}");
    endpoint.close(0u32.into(), b"done");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_never_sends_a_password_to_another_clusters_node_at_a_members_address() {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    cluster.activate(ADMIN).await;
    let target = cluster.leader().await;
    let work = tempfile::tempdir().expect("tempdir");
    let rogue = second_cluster_on_the_same_ca(&cluster, target, work.path());
    let ca = ca_pem(&cluster);
    let at: std::net::SocketAddr = cluster.member_address(target).parse().expect("addr");
    cluster.kill(target);
    // At the member's address: the other cluster's node, reading whatever
    // clients send it.
    let (endpoint, received, task) = impostor_at(at, &ca, &rogue, |_| Some(Vec::new()));
    // A client whose config names only that member (with its real pin).
    let text = std::fs::read_to_string(cluster.client_config()).expect("client config");
    let mut config: hsm_proto::client::ClientConfig = toml::from_str(&text).expect("parse");
    config.nodes.retain(|n| n.id == target);
    let options = hsm_client::ClientOptions::default()
        .follow_membership(false)
        .deadline(Duration::from_secs(3));
    let client = hsm_client::Client::new(config, options).expect("client");
    let login = client.login(user("admin"), ADMIN).await;
    let error = login.expect_err("logged in at another cluster's node");
    assert!(
        error.to_string().contains("not member"),
        "the refusal says why: {error}"
    );
    assert_eq!(
        received.load(Ordering::Relaxed),
        0,
        "the client sent a request (a password) to a node whose key is not pinned"
    );
    endpoint.close(0u32.into(), b"done");
    task.abort();
}

/// The certificate and key of member `i` of `cluster`, as its host has them.
fn member_cert(cluster: &Cluster, i: u64) -> NodeCert {
    let text = std::fs::read_to_string(cluster.config_file(i)).expect("config");
    let config = NodeConfig::from_toml_str(&text).expect("parse");
    NodeCert {
        cert_pem: std::fs::read_to_string(config.node_cert()).expect("cert"),
        key_pem: Zeroizing::new(std::fs::read_to_string(config.node_key()).expect("key")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_acts_for_a_user_only_with_that_users_session() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    // A member's own credentials, as a compromised member host has them.
    let member = member_cert(&cluster, follower);
    let ca = ca_pem(&cluster);
    let leader_addr = cluster.member_address(leader);
    let new_officer = || EventBody::UserCreated {
        username: user("mallory"),
        role: Role::Co,
        password_hash: hsm_node::secrets::hash_password("mallory-password-1").expect("hash"),
    };
    let attempts = [
        (
            "no session",
            Actor::User(user("admin")),
            None,
            new_officer(),
        ),
        (
            "a made-up session",
            Actor::User(user("admin")),
            Some(hsm_proto::client::Secret::new(vec![1; 120])),
            new_officer(),
        ),
        (
            "another node's name",
            Actor::Node(NodeId(leader)),
            None,
            EventBody::UserUnlocked {
                username: user("admin"),
            },
        ),
    ];
    for (what, actor, session, body) in attempts {
        let rpc = RaftRpc::Forward(ForwardedWrite {
            request_id: RequestId(rand::random()),
            actor,
            session,
            body,
        });
        match call_as(&ca, &member, &leader_addr, &rpc).await {
            Ok(RaftReply::Forward(Err(_))) => {}
            other => panic!("a member's forwarded write with {what} was answered: {other:?}"),
        }
    }
    let users = admin.list_users().await.expect("users");
    assert!(
        users.iter().all(|u| u.username != user("mallory")),
        "a member created a crypto officer without the officer's session: {users:?}"
    );
    // Writes a member forwards with the user's session still go through.
    let through_follower = cluster.client_of(follower).await;
    through_follower
        .login(user("admin"), ADMIN)
        .await
        .expect("login");
    through_follower
        .create_user(user("carol"), Role::Cu, "carol-password-1")
        .await
        .expect("a forwarded write with the user's session");
}

/// A one-chunk snapshot of `state` as the leader of `vote` (term, node)
/// would send it, at log `index` with `voters` (of `cluster`) as members,
/// sealed by that node with `key`.
fn sealed_snapshot_rpc(
    cluster: &Cluster,
    state: &hsm_state::State,
    (term, leader): (u64, NodeId),
    index: u64,
    voters: &[u64],
    key: &ed25519_dalek::SigningKey,
) -> RaftRpc {
    let data = hsm_raft_store::encode_snapshot(state).expect("encode");
    let last = openraft::LogId::new(openraft::CommittedLeaderId::new(term, leader), index);
    let nodes: std::collections::BTreeMap<NodeId, openraft::BasicNode> = voters
        .iter()
        .map(|i| {
            (
                NodeId(*i),
                openraft::BasicNode::new(cluster.member_address(*i)),
            )
        })
        .collect();
    let ids = nodes
        .keys()
        .copied()
        .collect::<std::collections::BTreeSet<_>>();
    let meta = openraft::SnapshotMeta {
        last_log_id: Some(last),
        last_membership: openraft::StoredMembership::new(
            Some(last),
            openraft::Membership::new(vec![ids], nodes),
        ),
        snapshot_id: "forged".into(),
    };
    let (position, digest) = hsm_raft_store::snapshot_statement(&meta, &data).expect("statement");
    let cluster_id = state.cluster().expect("cluster").cluster_id;
    let seal = hsm_state::snapshot::seal_snapshot(cluster_id, &position, &digest, leader, key);
    RaftRpc::InstallSnapshot {
        chunk: openraft::raft::InstallSnapshotRequest {
            vote: openraft::Vote::new_committed(term, leader),
            meta,
            offset: 0,
            data,
            done: true,
        },
        seal,
    }
}

/// What a thief of one member's TLS key (not its identity key, which is
/// sealed under its storage key) makes of a snapshot: a copy of the real
/// state with a crypto officer of its own, sent to a follower as that
/// member, leading a later term. The follower must not install a state
/// that no member signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_needs_the_signature_of_the_member_that_sends_it() {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN).await;
    let leader = cluster.leader().await;
    let mut followers = (1..=3).filter(|i| *i != leader);
    let (stolen, target) = (
        followers.next().expect("a follower"),
        followers.next().expect("another follower"),
    );
    let on_target = cluster.client_of(target).await;
    on_target.login(user("admin"), ADMIN).await.expect("login");
    let term = admin.cluster_info().await.expect("info").term;

    // The forged state: the real one (read here from the stolen member's
    // disk, as a shortcut to a plausible state) plus `mallory`, an officer.
    let stolen_cert = member_cert(&cluster, stolen);
    cluster.kill(stolen);
    let config = NodeConfig::load(cluster.config_file(stolen)).expect("config");
    let storage =
        hsm_raft_store::StorageKey::load_file(&config.storage_key_file()).expect("storage key");
    let (_, sm) = hsm_raft_store::open(&config.store_dir(), &storage).expect("store");
    let (entities, applied) = sm.read(|a| {
        let mut entities: Vec<hsm_state::Entity> = a.state.entities().collect();
        let mut mallory = a.state.user(&user("admin")).expect("admin").clone();
        mallory.username = user("mallory");
        mallory.password_hash =
            hsm_node::secrets::hash_password("mallory-password-1").expect("hash");
        entities.push(hsm_state::Entity::User(mallory));
        (entities, a.applied.map_or(0, |l| l.index))
    });
    drop(sm);
    let forged = hsm_state::State::from_entities(entities).expect("a consistent state");

    // Its best seal: the statement signed with a key of its own, naming
    // the member whose certificate it holds.
    let rpc = sealed_snapshot_rpc(
        &cluster,
        &forged,
        (term + 5, NodeId(stolen)),
        applied + 100,
        &[1, 2, 3],
        &ed25519_dalek::SigningKey::from_bytes(&rand::random()),
    );
    let reply = call_as(
        &ca_pem(&cluster),
        &stolen_cert,
        &cluster.member_address(target),
        &rpc,
    )
    .await;
    let users = on_target.list_users().await;
    assert!(
        users
            .iter()
            .flatten()
            .all(|u| u.username != user("mallory")),
        "the follower installed a forged snapshot (reply {reply:?}): {users:?}"
    );
    assert!(
        !matches!(reply, Ok(RaftReply::InstallSnapshot(Ok(_)))),
        "a forged snapshot was acknowledged: {reply:?}"
    );

    // The cluster carries on with its real state.
    cluster.start_node(stolen);
    cluster.wait_ready().await;
    admin
        .create_user(user("carol"), Role::Cu, "carol-password-1")
        .await
        .expect("a write after the attack");
    let users = admin.list_users().await.expect("users");
    assert!(
        users.iter().all(|u| u.username != user("mallory")),
        "{users:?}"
    );
    let logs = cluster.logs();
    assert!(logs.contains("refused a snapshot"), "{logs}");
}

/// A node that is no member (here one of another cluster on the same CA;
/// a removed member is the same) announces a 32 MiB frame on a member
/// stream and sends nothing more: before, the node read it with a
/// member's allowance and no deadline, holding the stream (and its buffer)
/// for as long as the stranger liked. It is answered at once now; and a
/// frame it may send, never sent, within the stranger's deadline (this
/// part fails with the deadline raised to a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_hold_a_member_stream_open() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let work = tempfile::tempdir().expect("tempdir");
    let rogue = second_cluster_on_the_same_ca(&cluster, 9, work.path());
    let reply = answer_to_header(&cluster, &rogue, 32 << 20).await;
    assert!(matches!(reply, RaftReply::BadRequest(_)), "{reply:?}");

    // A frame within a stranger's 4 KiB, never sent: given up after the
    // stranger's 5 s, not a member's 30 s (or never). A hundred such
    // streams at once, and a user is answered beside them.
    let rogue = std::sync::Arc::new(rogue);
    let mut stalls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (cert, addr, ca) = (rogue.clone(), cluster.member_address(1), ca_pem(&cluster));
        stalls.spawn(async move {
            let started = std::time::Instant::now();
            let reply = header_only(&addr, &ca, &cert, 1_000).await;
            (reply, started.elapsed())
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let alice = cluster.client().await;
    let started = std::time::Instant::now();
    alice
        .cluster_info()
        .await
        .expect("a user beside the stalled streams");
    let beside = started.elapsed();
    while let Some(done) = stalls.join_next().await {
        let (reply, took) = done.expect("joined");
        assert!(
            matches!(reply, RaftReply::BadRequest(ref m) if m.contains("within")),
            "{reply:?}"
        );
        assert!(
            took < Duration::from_secs(10),
            "a stalled stream held for {took:?}"
        );
    }
    println!("a user's request beside 100 stalled member streams: {beside:?}");
    assert!(beside < Duration::from_secs(5), "a user waited {beside:?}");
}

/// What node 1 of `cluster` answers a peer holding `cert` that opens a
/// member stream and announces a frame of `len` bytes, sending nothing
/// more (within 10 s: it must not wait for the frame).
async fn answer_to_header(cluster: &Cluster, cert: &NodeCert, len: u32) -> RaftReply {
    header_only(&cluster.member_address(1), &ca_pem(cluster), cert, len).await
}

/// [`answer_to_header`], of the node at `address` under the CA `ca`.
async fn header_only(address: &str, ca: &str, cert: &NodeCert, len: u32) -> RaftReply {
    let addr: std::net::SocketAddr = address.parse().expect("addr");
    let endpoint =
        client_endpoint(addr, node_client_tls(ca, cert).expect("tls")).expect("endpoint");
    let conn = endpoint
        .connect(addr, SERVER_NAME)
        .expect("connect")
        .await
        .expect("handshake");
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    send.write_all(&len.to_be_bytes()).await.expect("header");
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        read_frame(&mut recv, MAX_RAFT_FRAME_BYTES),
    )
    .await
    .expect("an answer before the frame is sent");
    drop(send);
    codec::decode("raft reply", &answer.expect("a frame")).expect("a reply")
}

/// `raft.max_frame_bytes` bounds what even a member may announce: a frame
/// over it is refused at its header (the setting was read and validated,
/// then the fixed 32 MiB applied).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_frame_over_the_configured_limit_is_refused_at_its_header() {
    let four_mib = (4u32 << 20).to_string();
    let cluster = Cluster::start_with_env(3, &[("HSM_NODE_RAFT_MAX_FRAME_BYTES", &four_mib)]);
    cluster.wait_ready().await;
    let reply = answer_to_header(&cluster, &member_cert(&cluster, 2), 5 << 20).await;
    assert!(matches!(reply, RaftReply::BadRequest(_)), "{reply:?}");
}

/// A compromised member (its certificate and identity key) starts a
/// snapshot with a genuine first chunk, then sends one far past it (offset
/// 2^40): openraft writes chunks into a buffer in memory at the offset they
/// name, so the target allocated a terabyte and aborted (issue 13). The
/// chunk is refused, and the node serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_chunk_far_ahead_is_refused_and_the_node_serves_on() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN).await;
    let leader = cluster.leader().await;
    let mut followers = (1..=3).filter(|i| *i != leader);
    let (sender, target) = (
        followers.next().expect("a follower"),
        followers.next().expect("another follower"),
    );
    let term = admin.cluster_info().await.expect("info").term;
    let config = NodeConfig::load(cluster.config_file(sender)).expect("config");
    let storage =
        hsm_raft_store::StorageKey::load_file(&config.storage_key_file()).expect("storage key");
    let identity = hsm_node::secrets::NodeIdentity::load(
        &config.identity_file(),
        &hsm_node::runtime::file_key(&storage),
    )
    .expect("the member's identity");
    let client: hsm_proto::client::ClientConfig =
        toml::from_str(&std::fs::read_to_string(cluster.client_config()).expect("client config"))
            .expect("parse");

    let vote = openraft::Vote::new_committed(term + 5, NodeId(sender));
    let meta = openraft::SnapshotMeta {
        last_log_id: Some(openraft::LogId::new(
            openraft::CommittedLeaderId::new(term + 5, NodeId(sender)),
            1,
        )),
        last_membership: openraft::StoredMembership::default(),
        snapshot_id: "far-ahead".into(),
    };
    let first = hsm_raft_store::encode_snapshot(&hsm_state::State::new()).expect("encode");
    let (position, digest) = hsm_raft_store::snapshot_statement(&meta, &first).expect("statement");
    let cluster_id: [u8; 16] = hex::decode(&client.cluster_id)
        .expect("hex")
        .try_into()
        .expect("16 bytes");
    let seal = hsm_state::snapshot::seal_snapshot(
        hsm_proto::ClusterId(cluster_id),
        &position,
        &digest,
        NodeId(sender),
        identity.signing_key(),
    );
    let chunk = |offset: u64, data: Vec<u8>| RaftRpc::InstallSnapshot {
        chunk: openraft::raft::InstallSnapshotRequest {
            vote,
            meta: meta.clone(),
            offset,
            data,
            done: false,
        },
        seal: seal.clone(),
    };
    let ca = ca_pem(&cluster);
    let cert = member_cert(&cluster, sender);
    let to = cluster.member_address(target);
    let started = call_as(&ca, &cert, &to, &chunk(0, first)).await;
    assert!(
        matches!(started, Ok(RaftReply::InstallSnapshot(Ok(_)))),
        "the genuine first chunk: {started:?}"
    );
    let far = call_as(&ca, &cert, &to, &chunk(1 << 40, vec![1; 16])).await;
    assert!(
        matches!(far, Ok(RaftReply::BadRequest(_))),
        "{far:?}\n{}",
        cluster.logs()
    );
    let on_target = cluster.client_of(target).await;
    on_target.login(user("admin"), ADMIN).await.expect("login");
    on_target.list_users().await.expect("the target serves on");
}

/// A node just approved, before its first entries: a node of another
/// cluster on the same CA, holding a certificate for the leader's id,
/// reaches it first (here the cluster is paused, so nobody else can) and
/// sends it a snapshot of a made-up state of this cluster in which that
/// node is the only member. The new node must know this cluster's members
/// from the member it joined through, and so refuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_takes_no_snapshot_from_a_stranger_before_its_first_entries() {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN).await;
    let leader = cluster.leader().await;
    let mut followers = (1..=3).filter(|i| *i != leader);
    let (through, other) = (
        followers.next().expect("a follower"),
        followers.next().expect("another follower"),
    );
    let cluster_id = admin
        .cluster_info()
        .await
        .expect("info")
        .cluster_id
        .expect("initialized");
    let record = cluster.prepare_node(4, "zone-d");
    admin.add_node(record).await.expect("approve");
    let follower = cluster.client_of(through).await;
    follower.observe_index(admin.applied_index());
    follower
        .cluster_info()
        .await
        .expect("the approval reached the follower");

    // No quorum, so no leader reaches node 4; the follower still hands it
    // the domain key.
    cluster.signal(leader, "STOP");
    cluster.signal(other, "STOP");
    let pin = hex::encode(cluster.member_pin(through));
    let through_addr = cluster.member_address(through);
    cluster.start_node_with(4, &["--join", &through_addr, "--join-pin", &pin]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(cluster.log_file(4))
        .unwrap_or_default()
        .contains("received the domain key")
    {
        assert!(std::time::Instant::now() < deadline, "{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let work = tempfile::tempdir().expect("tempdir");
    let stranger = second_cluster_on_the_same_ca(&cluster, leader, work.path());
    let stranger_key = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let made_up = {
        let mut state = hsm_state::State::new();
        let event = hsm_proto::Event {
            request_id: RequestId(rand::random()),
            timestamp_ms: 1,
            actor: Actor::Node(NodeId(leader)),
            prev_hash: hsm_proto::EventHash::GENESIS,
            body: EventBody::ClusterInitialized {
                cluster_id,
                first_node: hsm_proto::NodeRecord {
                    id: NodeId(leader),
                    signing_key: stranger_key.verifying_key().to_bytes(),
                    agreement_key: [9; 32],
                    transport_key: [8; 32],
                    zone: String::new(),
                    address: cluster.member_address(leader),
                },
                other_nodes: Vec::new(),
                admin_password_hash: hsm_node::secrets::hash_password("mallory-password-1")
                    .expect("hash"),
                domain_check: [7; 32],
            },
        };
        let applied = state.apply(&hsm_state::sign_event(event, NodeId(leader), &stranger_key));
        assert!(applied.result.is_ok(), "{:?}", applied.result);
        state
    };
    let rpc = sealed_snapshot_rpc(
        &cluster,
        &made_up,
        (50, NodeId(leader)),
        40,
        &[leader, 4],
        &stranger_key,
    );
    let node4 = cluster.member_address(4);
    let mut reply = Err(String::new());
    for _ in 0..50 {
        reply = call_as(&ca_pem(&cluster), &stranger, &node4, &rpc).await;
        if reply.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !matches!(reply, Ok(RaftReply::InstallSnapshot(Ok(_)))),
        "node 4 took a snapshot from another cluster's node: {reply:?}"
    );
    let log4 = std::fs::read_to_string(cluster.log_file(4)).unwrap_or_default();
    assert!(!log4.contains("installed snapshot"), "{log4}");

    // Once the cluster runs again, node 4 joins it for real.
    cluster.signal(leader, "CONT");
    cluster.signal(other, "CONT");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(c) = cluster.try_client_of(4).await {
            if let Ok(info) = c.cluster_info().await {
                if info.members.len() == 4 && info.members.iter().all(|m| m.voter) {
                    assert_eq!(info.cluster_id, Some(cluster_id));
                    break;
                }
            }
        }
        assert!(std::time::Instant::now() < deadline, "{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    admin
        .create_user(user("carol"), Role::Cu, "carol-password-1")
        .await
        .expect("a write with four members");
}

/// Once every member speaks a newer Raft protocol, the leader raises the
/// cluster to it (one version at a time, to this build's newest), and from
/// then on a member's host running a build that speaks
/// only protocol 1 (as builds before versioning do) is refused: it is the
/// member, with the member's own certificate, but its connection is
/// closed before any message is read, with the reason in the close frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_a_build_too_old_for_the_cluster_is_refused_and_told_why() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let newest = *hsm_proto::protocol::RAFT.end();
    let raised = format!("the cluster runs Raft protocol {newest}");
    while !cluster.logs().contains(&raised) {
        assert!(
            std::time::Instant::now() < deadline,
            "the leader never raised the Raft protocol:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let ca = ca_pem(&cluster);
    // The follower's host reaches the leader, and the leader's host the
    // follower: both directions refuse.
    for (target, me) in [(leader, follower), (follower, leader)] {
        let member = member_cert(&cluster, me);
        let addr: std::net::SocketAddr = cluster.member_address(target).parse().expect("addr");
        let old_build =
            node_client_tls_offering(&ca, &member, vec![b"hsm-raft/1".to_vec()]).expect("tls");
        let endpoint = client_endpoint(addr, old_build).expect("endpoint");
        let conn = endpoint
            .connect(addr, SERVER_NAME)
            .expect("connect")
            .await
            .expect("the handshake agrees on protocol 1");
        let closed = conn.closed().await;
        let quinn::ConnectionError::ApplicationClosed(close) = closed else {
            panic!("node {target}: {closed}");
        };
        assert_eq!(
            close.error_code,
            quinn::VarInt::from_u32(2),
            "node {target}"
        );
        let why = String::from_utf8_lossy(&close.reason).to_string();
        assert!(
            why.contains(&format!(
                "the cluster runs Raft protocol {newest} and this node's build speaks at most 1: upgrade this node"
            )),
            "node {target}: {why}"
        );
        endpoint.close(0u32.into(), b"done");
    }
    // The members themselves, of this build, serve on: writes commit
    // (activation changes admin's password, then logs in).
    let _admin = cluster.activate(ADMIN).await;
    assert!(cluster
        .logs()
        .contains("refused a member that does not speak the cluster's Raft protocol"));
}

/// A member's host (compromised, with the member's own certificate)
/// forwards to the leader, as itself, a write that raises the cluster's
/// Raft protocol past what any build speaks. Were it applied, every
/// replica would stop before it, at every restart: the cluster gone for
/// good. Only the leader raises the version, in an event it signs as
/// itself, one step at a time; the forwarded raise is refused and the
/// cluster serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_stop_the_cluster_by_raising_its_protocol() {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let member = member_cert(&cluster, follower);
    let ca = ca_pem(&cluster);
    for version in [u16::MAX, 3] {
        let rpc = RaftRpc::Forward(ForwardedWrite {
            request_id: RequestId(rand::random()),
            actor: Actor::Node(NodeId(follower)),
            session: None,
            body: EventBody::ProtocolRaised { version },
        });
        match call_as(&ca, &member, &cluster.member_address(leader), &rpc).await {
            Ok(RaftReply::Forward(Ok(applied))) if applied.result.is_err() => {}
            Ok(RaftReply::Forward(Err(_))) => {}
            other => panic!("a member's raise to {version} was answered: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 1..=3 {
        assert!(
            cluster.wait_exit(i, Duration::from_millis(10)).is_none(),
            "node {i} stopped:\n{}",
            cluster.log_tail(i)
        );
    }
    admin
        .create_user(user("dave"), Role::Cu, "dave-password-1")
        .await
        .expect("the cluster takes writes");
}
