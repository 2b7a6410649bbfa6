//! A removed member keeps its disk: its storage key, its copy of the
//! domain key and its store. Removal must take from it every hold on the
//! running cluster and on what the cluster writes after the removal: the
//! domain key is rotated, so a session it mints for any user is refused,
//! and a backup taken after the rotation does not open with its key.

mod procs;

use std::time::{Duration, Instant};

use hsm_backup::{BackupDomainKey, Destination, NoProgress, Opener};
use hsm_node::config::NodeConfig;
use hsm_node::secrets::{session, DomainKey};
use hsm_node::transport::{client_endpoint, client_tls, read_frame, write_frame, SERVER_NAME};
use hsm_proto::client::{ClientConfig, Operation, Request, Response, Secret};
use hsm_proto::{codec, NodeId, RequestId};
use hsm_raft_store::StorageKey;
use procs::{user, Cluster};

const ADMIN: &str = "admin-password-rotation";

/// What a removed member can take from its own disk: the domain key and,
/// from its store, the `admin` account as it last saw it.
struct Loot {
    domain: DomainKey,
    admin: hsm_state::User,
}

fn loot(cluster: &Cluster, i: u64) -> Loot {
    let config = NodeConfig::load(cluster.config_file(i)).expect("config");
    let storage = StorageKey::load_file(&config.storage_key_file()).expect("storage key");
    let files = hsm_node::runtime::file_key(&storage);
    let domain = DomainKey::load(&config.domain_key_file(), &files).expect("domain key");
    let (_, sm) = hsm_raft_store::open(&config.store_dir(), &storage).expect("store");
    let admin = sm
        .read(|a| a.state.user(&user("admin")).cloned())
        .expect("admin in the store");
    Loot { domain, admin }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// A session for `admin` minted with the loot, as a login would issue it.
fn forged_admin_session(loot: &Loot) -> Secret {
    let now = now_ms();
    let claims = session::SessionClaims {
        username: loot.admin.username.clone(),
        role: loot.admin.role,
        password_epoch: loot.admin.password_epoch,
        user_created_ms: loot.admin.created_ms,
        issued_ms: now,
        expires_ms: now + 3_600_000,
        token_id: [9; 16],
        session_epoch: loot.admin.session_epoch,
    };
    Secret::new(session::issue(&loot.domain, &claims).as_bytes().to_vec())
}

/// Sends `op` with `session` to the member at `addr`, as any client can.
async fn ask(ca: &str, addr: &str, session: &Secret, op: Operation) -> Response {
    let addr: std::net::SocketAddr = addr.parse().expect("addr");
    let endpoint = client_endpoint(addr, client_tls(ca).expect("tls")).expect("endpoint");
    let conn = endpoint
        .connect(addr, SERVER_NAME)
        .expect("connect")
        .await
        .expect("handshake");
    let request = Request {
        session: Some(session.clone()),
        request_id: RequestId(rand::random()),
        min_index: 0,
        op,
    };
    let bytes = codec::encode("request", &request).expect("encode");
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    write_frame(&mut send, &bytes).await.expect("write");
    let reply = read_frame(&mut recv, 1 << 20).await.expect("answer");
    codec::decode("response", &reply).expect("response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_can_neither_act_as_a_user_nor_open_later_backups() {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN).await;
    let leader = cluster.leader().await;
    let removed = (1..=3).rev().find(|i| *i != leader).expect("a follower");
    let stays = (1..=3)
        .find(|i| *i != leader && *i != removed)
        .expect("another follower");
    admin
        .remove_node(NodeId(removed))
        .await
        .expect("remove the member");
    let deadline = Instant::now() + Duration::from_secs(30);
    while admin.cluster_info().await.expect("info").members.len() != 2 {
        assert!(
            Instant::now() < deadline,
            "still 3 members:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The host of the removed member is now the attacker's.
    cluster.kill(removed);
    let loot = loot(&cluster, removed);
    let client: ClientConfig =
        toml::from_str(&std::fs::read_to_string(cluster.client_config()).expect("config"))
            .expect("client config");

    // A session it mints for `admin` stops working, at every member, soon
    // after the removal (once the domain key is rotated).
    let forged = forged_admin_session(&loot);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut accepted = Vec::new();
        for i in [leader, stays] {
            let r = ask(
                &client.ca_cert_pem,
                &cluster.member_address(i),
                &forged,
                Operation::ListUsers {
                    after: None,
                    limit: 100,
                },
            )
            .await;
            if r.result.is_ok() {
                accepted.push(i);
            }
        }
        if accepted.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "30 s after its removal, a session the removed member minted for admin is \
             still accepted by members {accepted:?}:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The rotation ended the officer's session too: it logs in again. A
    // backup taken now does not open with the removed member's key.
    let admin = cluster.client().await;
    admin.login(user("admin"), ADMIN).await.expect("login");
    let backup = admin.create_backup().await.expect("backup");
    let dest = Destination::from_url(&format!(
        "file://{}",
        cluster.path().join("backups").display()
    ))
    .expect("destination");
    let old = BackupDomainKey::new(loot.domain.backup_wrap_key());
    let opened =
        hsm_backup::restore_backup(&dest, backup.id, Opener::DomainKey(&old), None, &NoProgress)
            .await;
    assert!(
        opened.is_err(),
        "a backup taken after the removal opens with the removed member's domain key"
    );

    // The members' own sessions work on: admin logs in again and acts.
    let fresh = cluster.client().await;
    fresh.login(user("admin"), ADMIN).await.expect("login");
    assert!(!fresh.list_users().await.expect("users").is_empty());
}

/// Keys per test cluster in the leader-kill test: several re-wrap batches.
const KEYS: usize = 160;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_survives_a_leader_kill_and_every_key_still_works() {
    use hsm_proto::mechanism::EncryptMechanism;
    use hsm_proto::{KeyAttributes, KeySpec, Role};

    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN).await;
    admin
        .create_user(user("carol"), Role::Cu, "carol-password-1")
        .await
        .expect("carol");
    let carol = cluster.client().await;
    carol
        .login(user("carol"), "carol-password-1")
        .await
        .expect("login");
    let attributes = |i: usize| KeyAttributes {
        label: format!("k{i}"),
        encrypt: true,
        decrypt: true,
        ..KeyAttributes::default()
    };
    let mut keys = Vec::new();
    for i in 0..KEYS {
        let k = carol
            .generate_key(KeySpec::Aes { bits: 256 }, attributes(i), false)
            .await
            .expect("key");
        keys.push(k.id);
    }
    let mut sealed = Vec::new();
    for id in keys.iter().step_by(16) {
        let ct = carol
            .encrypt(
                *id,
                EncryptMechanism::AesGcm,
                b"kept across rotation".to_vec(),
                vec![],
            )
            .await
            .expect("encrypt");
        sealed.push((*id, ct));
    }

    let leader = cluster.leader().await;
    let generation = admin.rotate_domain_key().await.expect("rotate");
    assert_eq!(generation, 1);
    // Killed while it re-wraps (a batch of 32 keys per 250 ms tick).
    cluster.kill(leader);
    let leader_log = std::fs::read_to_string(cluster.log_file(leader)).unwrap_or_default();
    let batches = leader_log.matches("re-wrapping key material").count();
    assert!(
        batches * 32 < KEYS,
        "the leader re-wrapped every key before it was killed ({batches} batches): the test \
         did not kill it mid-way"
    );

    // The sessions from before the rotation have ended.
    let e = carol
        .list_keys(Default::default())
        .await
        .expect_err("old session");
    assert_eq!(
        e.kind(),
        Some(hsm_proto::client::ErrorKind::Unauthenticated),
        "{e}"
    );
    carol
        .login(user("carol"), "carol-password-1")
        .await
        .expect("login again");

    // A new leader finishes the rotation.
    let survivor = (1..=3).find(|i| *i != leader).expect("a survivor");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = cluster.client_of(survivor).await;
        info.login(user("admin"), ADMIN).await.expect("admin login");
        let d = info
            .cluster_info()
            .await
            .expect("info")
            .domain_key
            .expect("initialized");
        if d.generation == 1 && d.older_generations.is_empty() && d.keys_to_rewrap == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotation did not finish under a new leader: {d:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Every key still works, data encrypted before still decrypts, and the
    // killed node, restarted, opens the new generation from the state.
    cluster.start_node(leader);
    cluster.wait_ready().await;
    for (id, ct) in &sealed {
        let plain = carol
            .decrypt(*id, EncryptMechanism::AesGcm, ct.clone(), vec![])
            .await
            .expect("decrypt after rotation");
        assert_eq!(plain.expose(), b"kept across rotation");
    }
    let restarted = cluster.client_of(leader).await;
    restarted
        .login(user("carol"), "carol-password-1")
        .await
        .expect("login at the restarted node");
    for id in &keys {
        restarted
            .encrypt(*id, EncryptMechanism::AesGcm, b"x".to_vec(), vec![])
            .await
            .unwrap_or_else(|e| panic!("key {id} at the restarted node: {e}\n{}", cluster.logs()));
    }
}
