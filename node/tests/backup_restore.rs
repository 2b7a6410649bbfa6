//! Backups through the node, and restore into a new cluster, with real
//! `hsm-node` processes: a cluster is backed up, destroyed and restored from
//! the backup and a recovery key alone, and its keys still sign (OpenSSL
//! checks the signatures) and decrypt; restoring twice gives the same state
//! digest; two backups of one state share no ciphertext; a changed byte in
//! any object is refused by `verify` and by `restore`, naming the object;
//! backups taken while the leader is killed are complete and restorable;
//! the S3 path runs against a real S3-compatible server on loopback.

mod procs;
#[path = "../../backup/tests/s3_server/mod.rs"]
mod s3_server;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hsm_client::{BackupInfo, Client, ClientOptions, ErrorKind, KeyInfo};
use hsm_proto::client::{KeyFilter, Secret};
use hsm_proto::mechanism::{EncryptMechanism, SignMechanism};
use hsm_proto::{KeyAttributes, KeyId, KeySpec, Role};
use procs::{copy_tree, openssl, restore_command, user, Cluster};

const ADMIN_NEW: &str = "backup-admin-pw-1";
const CAROL_PW: &str = "carol-backup-pw-1";
const PLAINTEXT: &str = "the database master key";
const AES_KEY: [u8; 32] = [
    0x3b, 0x91, 0x0e, 0xc7, 0x52, 0xfd, 0x28, 0x64, 0xa1, 0x1f, 0x86, 0x3d, 0xe0, 0x7a, 0x45, 0xbc,
    0x09, 0xd3, 0x6f, 0x92, 0x2e, 0xb5, 0x74, 0xc8, 0x1a, 0x57, 0xe3, 0x0d, 0x98, 0x4c, 0xf1, 0x66,
];

fn labelled(label: &str) -> KeyAttributes {
    KeyAttributes {
        label: label.to_owned(),
        ..KeyAttributes::default()
    }
}

fn sign_attrs(label: &str) -> KeyAttributes {
    KeyAttributes {
        label: label.to_owned(),
        sign: true,
        verify: true,
        ..KeyAttributes::default()
    }
}

/// Copies a directory tree (the backup destination, which outlives the
/// cluster, as object storage does).
/// The line `hsm-node restore` printed after `label`.
fn printed(output: &str, label: &str) -> String {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{output}"))
        .trim()
        .to_owned()
}

/// Whether OpenSSL accepts `sig` (ECDSA P-256, SHA-256) over `msg` under
/// the PEM public key.
fn openssl_verifies(pem: &str, msg: &[u8], sig: &[u8]) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pub.pem"), pem).expect("write");
    std::fs::write(dir.path().join("msg"), msg).expect("write");
    std::fs::write(dir.path().join("sig"), sig).expect("write");
    let (ok, out) = openssl(
        dir.path(),
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig",
            "msg",
        ],
    );
    assert!(ok || out.contains("Verification failure"), "openssl: {out}");
    ok && out.contains("Verified OK")
}

/// Activates `cluster` and makes the crypto user carol with an EC P-256
/// signing key: the admin's client, carol's, and the key.
async fn signing_setup(cluster: &Cluster) -> (Client, Client, KeyInfo) {
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN_NEW).await;
    admin
        .create_user(user("carol"), Role::Cu, CAROL_PW)
        .await
        .expect("create carol");
    let carol = cluster.client().await;
    carol.login(user("carol"), CAROL_PW).await.expect("login");
    let ec = carol
        .generate_key(KeySpec::EcP256, sign_attrs("release-signing"), false)
        .await
        .expect("ec key");
    (admin, carol, ec)
}

fn backup_dir(root: &Path, b: &BackupInfo) -> PathBuf {
    root.join(b.id.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_destroyed_cluster_is_restored_from_a_backup_and_its_keys_still_work() {
    let cluster = Cluster::start(3);
    let (admin, carol, ec) = signing_setup(&cluster).await;
    let aes = carol
        .import_key(
            KeySpec::Aes { bits: 256 },
            KeyAttributes {
                label: "tde-master".into(),
                encrypt: true,
                decrypt: true,
                sensitive: false,
                ..KeyAttributes::default()
            },
            Secret::new(AES_KEY.to_vec()),
            false,
        )
        .await
        .expect("import aes");
    let (_, pem_before) = carol.export_public_key(ec.id).await.expect("export");
    let message = b"release 1.2.3".to_vec();
    let sig_before = carol
        .sign(ec.id, SignMechanism::EcdsaSha256, message.clone())
        .await
        .expect("sign");
    let ciphertext = carol
        .encrypt(aes.id, EncryptMechanism::AesGcm, PLAINTEXT, vec![])
        .await
        .expect("encrypt");
    let old_cluster = admin.cluster_info().await.expect("info").cluster_id;

    // Two backups of the same state.
    let first = admin.create_backup().await.expect("backup 1");
    let second = admin.create_backup().await.expect("backup 2");
    assert_ne!(first.id, second.id);
    assert_eq!(first.applied_index, second.applied_index, "same state");
    assert_eq!(Some(first.cluster_id), old_cluster);
    assert!(first.writer_is_member && !first.recovery_keys.is_empty());
    let dest = cluster.path().join("backups");
    for name in ["chunk-000000", "manifest"] {
        let a = std::fs::read(backup_dir(&dest, &first).join(name)).expect("object");
        let b = std::fs::read(backup_dir(&dest, &second).join(name)).expect("object");
        assert_ne!(a, b, "{name} is the same in both backups");
        let shared = a
            .windows(16)
            .filter(|w| b.windows(16).any(|x| x == *w))
            .count();
        if name.starts_with("chunk") {
            assert_eq!(shared, 0, "the two backups share ciphertext");
        }
    }
    for b in [&first, &second] {
        let v = admin.verify_backup(b.id).await.expect("verify");
        assert_eq!(v.chunks_checked, b.chunks);
    }
    let list = admin.list_backups().await.expect("list");
    let listed: Vec<_> = list.backups.iter().map(|b| b.id).collect();
    assert!(
        listed.contains(&first.id) && listed.contains(&second.id),
        "{listed:?}"
    );
    assert!(list.unreadable.is_empty());

    // The destination and the recovery key outlive the cluster.
    let vault = tempfile::tempdir().expect("tempdir");
    copy_tree(&dest, &vault.path().join("backups"));
    let recovery = vault.path().join("recovery.key");
    std::fs::copy(cluster.path().join("recovery/recovery.key"), &recovery).expect("copy key");
    drop(carol);
    drop(admin);
    drop(cluster);

    let url = format!("file://{}/backups/{}", vault.path().display(), second.id);
    let (restored, out) = Cluster::restore(&url, &recovery, 11);
    // Restoring the same backup again gives the same state.
    let again = tempfile::tempdir().expect("tempdir");
    let out2 = restore_command(again.path(), 12, &url, &recovery, &[], &[]);
    let out2 = String::from_utf8_lossy(&out2.stdout).into_owned();
    let digest = printed(&out, "backup state digest:");
    assert_eq!(digest.len(), 64, "{out}");
    assert_eq!(digest, printed(&out2, "backup state digest:"));
    assert_ne!(
        printed(&out, "new cluster state digest:"),
        printed(&out2, "new cluster state digest:"),
        "two restores make two distinct clusters"
    );

    restored.wait_ready().await;
    let carol = restored.client().await;
    carol
        .login(user("carol"), CAROL_PW)
        .await
        .expect("carol logs in to the restored cluster with her password");
    let info = carol.cluster_info().await.expect("info");
    assert_ne!(info.cluster_id, old_cluster, "a new cluster id");
    assert_eq!(info.members.len(), 1);
    assert_eq!(info.members[0].id.0, 11);
    let keys = carol.list_keys(KeyFilter::default()).await.expect("list");
    let ids: Vec<KeyId> = keys.iter().map(|k| k.id).collect();
    assert!(ids.contains(&ec.id) && ids.contains(&aes.id), "{ids:?}");

    let (_, pem_after) = carol.export_public_key(ec.id).await.expect("export");
    assert_eq!(pem_after, pem_before, "the same key pair");
    let sig_after = carol
        .sign(ec.id, SignMechanism::EcdsaSha256, message.clone())
        .await
        .expect("sign with the restored key");
    assert!(openssl_verifies(&pem_before, &message, &sig_after));
    assert!(openssl_verifies(&pem_before, &message, &sig_before));
    assert!(!openssl_verifies(
        &pem_before,
        b"another message",
        &sig_after
    ));
    let plain = carol
        .decrypt(aes.id, EncryptMechanism::AesGcm, ciphertext, vec![])
        .await
        .expect("decrypt with the restored key");
    assert_eq!(plain.expose(), PLAINTEXT.as_bytes());
    // The new cluster takes writes.
    carol
        .generate_key(KeySpec::Ed25519, sign_attrs("after-restore"), false)
        .await
        .expect("a write on the restored cluster");

    // It grows as any cluster does: a new node, approved by the crypto
    // officer, gets the restored state (a snapshot) and signs with the key.
    let mut restored = restored;
    let record = restored.prepare_node(13, "zone-b");
    let first = restored.member_address(11);
    let pin = hex::encode(restored.member_pin(11));
    restored.start_node_with(13, &["--join", &first, "--join-pin", &pin]);
    let admin = restored.client().await;
    admin
        .login(user("admin"), ADMIN_NEW)
        .await
        .expect("admin login");
    admin.add_node(record).await.expect("approve node 13");
    let deadline = Instant::now() + Duration::from_secs(60);
    let sig_13 = loop {
        let thirteen = restored.client_of(13).await;
        if thirteen.login(user("carol"), CAROL_PW).await.is_ok() {
            if let Ok(sig) = thirteen
                .sign(ec.id, SignMechanism::EcdsaSha256, message.clone())
                .await
            {
                break sig;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node 13 never served the restored key:\n{}",
            restored.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(openssl_verifies(&pem_before, &message, &sig_13));
    let log = std::fs::read_to_string(restored.log_file(13)).expect("log");
    assert!(log.contains("installed snapshot"), "{log}");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Flips one byte of `path` in place.
fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_changed_byte_in_any_object_is_refused_by_verify_and_by_restore() {
    let cluster = Cluster::start(1);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN_NEW).await;
    let backup = admin.create_backup().await.expect("backup");
    let dest = cluster.path().join("backups");
    let folder = backup_dir(&dest, &backup);
    let mut objects: Vec<PathBuf> = std::fs::read_dir(&folder)
        .expect("read")
        .flatten()
        .map(|e| e.path())
        .collect();
    objects.sort();
    assert!(objects.len() >= 2, "{objects:?}");
    let recovery = cluster.path().join("recovery/recovery.key");
    let url = format!("file://{}/{}", dest.display(), backup.id);
    for object in &objects {
        let name = object
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let original = std::fs::read(object).expect("read");
        for at in [0, original.len() / 2, original.len() - 1] {
            flip_byte(object, at);
            let err = admin
                .verify_backup(backup.id)
                .await
                .expect_err("a changed object must not verify");
            assert!(
                matches!(err.kind(), Some(ErrorKind::Damaged)),
                "{name}@{at}: {err}"
            );
            assert!(err.to_string().contains(&name), "{name}@{at}: {err}");
            let dir = tempfile::tempdir().expect("tempdir");
            let out = restore_command(dir.path(), 21, &url, &recovery, &[], &[]);
            let text = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{name}@{at}: restored");
            assert!(text.contains(&name), "{name}@{at}: {text}");
            let left: Vec<_> = std::fs::read_dir(dir.path())
                .expect("dir")
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(
                left,
                ["node21.toml"],
                "{name}@{at}: a refused restore left files behind"
            );
            std::fs::write(object, &original).expect("restore the object");
        }
    }
    admin.verify_backup(backup.id).await.expect("intact again");
    // A writer key the operator trusts: another key is refused.
    let other = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let dir = tempfile::tempdir().expect("tempdir");
    let out = restore_command(
        dir.path(),
        23,
        &url,
        &recovery,
        &["--trusted-writer-key", other],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("not a trusted signer"),
        "{text}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = restore_command(
        dir.path(),
        22,
        &url,
        &recovery,
        &["--trusted-writer-key", &backup.writer_key],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_taken_while_the_leader_is_killed_are_complete_and_restorable() {
    // Periodic backups every second, on top of on-demand ones.
    let mut cluster = Cluster::start_with_env(
        3,
        &[
            ("HSM_NODE_BACKUP_INTERVAL_S", "1"),
            ("HSM_NODE_BACKUP_KEEP_LAST", "1000"),
        ],
    );
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN_NEW).await;
    admin
        .create_user(user("carol"), Role::Cu, CAROL_PW)
        .await
        .expect("create carol");
    let carol = cluster
        .client_with(ClientOptions::default().deadline(Duration::from_secs(30)))
        .await;
    carol.login(user("carol"), CAROL_PW).await.expect("login");
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let k = carol
            .generate_key(
                KeySpec::Aes { bits: 128 },
                labelled(&format!("k{i}")),
                false,
            )
            .await
            .expect("key");
        acknowledged.push(k.id);
    }
    let leader = cluster.leader().await;
    // An on-demand backup in flight while the leader dies: the SDK retries
    // it on the new leader.
    let admin_long = admin.with_deadline(Duration::from_secs(60));
    let on_demand = tokio::spawn(async move { admin_long.create_backup().await });
    tokio::time::sleep(Duration::from_millis(5)).await;
    cluster.kill(leader);
    let killed_at = now_ms();
    for i in 20..30 {
        let k = carol
            .generate_key(
                KeySpec::Aes { bits: 128 },
                labelled(&format!("k{i}")),
                false,
            )
            .await
            .expect("key after the kill");
        acknowledged.push(k.id);
    }
    let wrote_all_at = now_ms();
    let made = on_demand
        .await
        .expect("task")
        .expect("the backup completes on the new leader");

    // Wait for a periodic backup by the new leader taken after every write.
    let deadline = Instant::now() + Duration::from_secs(60);
    let newest = loop {
        let list = admin.list_backups().await.expect("list");
        if let Some(b) = list
            .backups
            .iter()
            .find(|b| b.created_ms > wrote_all_at + 50)
        {
            break b.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no backup after the writes:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_ne!(newest.writer.0, leader, "taken by the new leader");
    // Every listed backup is complete; a folder the killed leader left half
    // written is not listed.
    let list = admin.list_backups().await.expect("list");
    assert!(list.unreadable.is_empty(), "{:?}", list.unreadable);
    for b in list.backups.iter().chain([&made]) {
        admin
            .verify_backup(b.id)
            .await
            .unwrap_or_else(|e| panic!("backup {} does not verify: {e}", b.id));
    }
    assert!(list.backups.iter().any(|b| b.created_ms >= killed_at));
    // Periodic backups come from the leader only: before the kill, from the
    // first leader; after it, never from the dead one.
    for b in &list.backups {
        if b.created_ms + 100 < killed_at {
            assert_eq!(b.writer.0, leader, "backup {} before the kill", b.id);
        } else if b.created_ms > killed_at + 1000 {
            assert_ne!(b.writer.0, leader, "backup {} after the kill", b.id);
        }
    }

    let recovery = cluster.path().join("recovery/recovery.key");
    let url = format!(
        "file://{}/{}",
        cluster.path().join("backups").display(),
        newest.id
    );
    let (restored, _) = Cluster::restore(&url, &recovery, 31);
    restored.wait_ready().await;
    let carol2 = restored.client().await;
    carol2.login(user("carol"), CAROL_PW).await.expect("login");
    let keys = carol2.list_keys(KeyFilter::default()).await.expect("list");
    for id in &acknowledged {
        assert!(
            keys.iter().any(|k| k.id == *id),
            "acknowledged key {id} missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_go_to_a_real_s3_server_and_a_cluster_is_restored_from_it() {
    let Some(server) = s3_server::server_or_skip() else {
        return;
    };
    let destination = format!("s3://{}/clusters/prod", s3_server::BUCKET);
    let aws = [
        ("AWS_ACCESS_KEY_ID", s3_server::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", s3_server::SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", server.endpoint.as_str()),
    ];
    let mut env = aws.to_vec();
    env.push(("HSM_NODE_BACKUP_DESTINATION", destination.as_str()));
    let cluster = Cluster::start_with_env(3, &env);
    let (admin, carol, ec) = signing_setup(&cluster).await;
    let (_, pem) = carol.export_public_key(ec.id).await.expect("export");

    let backup = admin.create_backup().await.expect("backup to S3");
    assert!(
        backup.location.starts_with(&destination),
        "{}",
        backup.location
    );
    let list = admin.list_backups().await.expect("list");
    assert_eq!(list.destination, destination);
    assert!(list.backups.iter().any(|b| b.id == backup.id));
    admin.verify_backup(backup.id).await.expect("verify on S3");
    // Nothing was written to the local default destination.
    assert!(std::fs::read_dir(cluster.path().join("backups"))
        .expect("dir")
        .next()
        .is_none());

    let recovery = cluster.path().join("recovery/recovery.key");
    let (restored, out) = Cluster::restore_with_env(&backup.location, &recovery, 41, &aws);
    assert!(out.contains(&backup.id.to_string()), "{out}");
    restored.wait_ready().await;
    let carol = restored.client().await;
    carol.login(user("carol"), CAROL_PW).await.expect("login");
    let message = b"restored from S3".to_vec();
    let sig = carol
        .sign(ec.id, SignMechanism::EcdsaSha256, message.clone())
        .await
        .expect("sign");
    assert!(openssl_verifies(&pem, &message, &sig));
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_keeps_to_its_own_cluster_at_a_shared_destination() {
    // Cluster A keeps its newest two backups.
    let a = Cluster::start_with_env(1, &[("HSM_NODE_BACKUP_KEEP_LAST", "2")]);
    a.wait_ready().await;
    let admin_a = a.activate(ADMIN_NEW).await;
    let mut made_a = Vec::new();
    for _ in 0..3 {
        made_a.push(admin_a.create_backup().await.expect("backup A").id);
    }
    let list = admin_a.list_backups().await.expect("list A");
    let listed: Vec<_> = list.backups.iter().map(|b| b.id).collect();
    assert_eq!(
        listed,
        vec![made_a[2], made_a[1]],
        "newest two, newest first"
    );

    // Cluster B writes to the same destination and keeps one.
    let shared = format!("file://{}", a.path().join("backups").display());
    let b = Cluster::start_with_env(
        1,
        &[
            ("HSM_NODE_BACKUP_KEEP_LAST", "1"),
            ("HSM_NODE_BACKUP_DESTINATION", shared.as_str()),
        ],
    );
    b.wait_ready().await;
    let admin_b = b.activate(ADMIN_NEW).await;
    let mut made_b = Vec::new();
    for _ in 0..2 {
        made_b.push(admin_b.create_backup().await.expect("backup B").id);
    }
    let list_b = admin_b.list_backups().await.expect("list B");
    let listed_b: Vec<_> = list_b.backups.iter().map(|b| b.id).collect();
    assert_eq!(listed_b, vec![made_b[1]]);
    assert_eq!(list_b.other_clusters, 2, "A's two backups, not shown");
    // A's backups are untouched by B's retention, and B cannot delete them.
    let list_a = admin_a.list_backups().await.expect("list A");
    let listed_a: Vec<_> = list_a.backups.iter().map(|b| b.id).collect();
    assert_eq!(listed_a, vec![made_a[2], made_a[1]]);
    assert_eq!(list_a.other_clusters, 1);
    let err = admin_b
        .delete_backup(made_a[2])
        .await
        .expect_err("another cluster's backup");
    assert_eq!(err.kind(), Some(ErrorKind::PermissionDenied), "{err}");
    admin_a.verify_backup(made_a[2]).await.expect("still there");

    // Restoring from the shared destination needs the backup named.
    let recovery = a.path().join("recovery/recovery.key");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = restore_command(dir.path(), 51, &shared, &recovery, &[], &[]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("--id"), "{text}");
    let out = restore_command(
        dir.path(),
        51,
        &shared,
        &recovery,
        &["--id", &made_a[2].to_string()],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_chooses_no_forged_backup_when_the_writers_are_named() {
    let cluster = Cluster::start(1);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN_NEW).await;
    let genuine = admin.create_backup().await.expect("backup");
    let dest_dir = cluster.path().join("backups");
    let recovery = cluster.path().join("recovery/recovery.key");
    // Anyone who can write to the destination seals a backup of its own
    // for this cluster id to the recovery public key, signs it with a key
    // of its own and dates it an hour ahead, so it is the newest.
    let dest =
        hsm_backup::Destination::from_url(&format!("file://{}", dest_dir.display())).expect("dest");
    let recovery_public = hsm_backup::RecoveryKey::load(&recovery)
        .expect("recovery key")
        .public_key();
    let forger = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let domain = hsm_backup::BackupDomainKey::new(zeroize::Zeroizing::new(rand::random()));
    let forged = hsm_backup::write_backup(
        &dest,
        &hsm_backup::BackupMeta {
            cluster_id: genuine.cluster_id,
            applied_index: genuine.applied_index + 100,
            term: genuine.term,
            created_at_ms: genuine.created_ms + 3_600_000,
            node_id: genuine.writer,
        },
        hsm_backup::SnapshotSource::from_bytes(b"a state of the forger's choosing"),
        &hsm_backup::BackupKeys {
            domain_key: &domain,
            recovery_keys: &[recovery_public],
            signer: &forger,
        },
        &hsm_backup::NoProgress,
    )
    .await
    .expect("forged backup");
    assert_ne!(forged.backup_id, genuine.id);
    // Naming the cluster's writer keys, the destination alone (no --id)
    // restores the genuine backup, not the newer forged one.
    let url = format!("file://{}", dest_dir.display());
    let dir = tempfile::tempdir().expect("tempdir");
    let out = restore_command(
        dir.path(),
        31,
        &url,
        &recovery,
        &["--trusted-writer-key", &genuine.writer_key],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&genuine.id.to_string()),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
