//! After a cluster of `hsm-node` processes has created users, imported
//! known keys, served logins (right and wrong) and decrypted known data,
//! with debug logging on and snapshots taken, none of those secrets is found
//! anywhere under the cluster's directory (stores, sealed files, snapshots,
//! configuration, every node's log, the objects of its sealed backups): not
//! raw, not hex, not base64.

mod procs;
#[path = "../../raft-store/tests/secret_scan/mod.rs"]
mod secret_scan;

use hsm_proto::client::Secret;
use hsm_proto::mechanism::{EncryptMechanism, SignMechanism};
use hsm_proto::{KeyAttributes, KeySpec, Role};
use procs::{user, Cluster, ADMIN_PASSWORD};
use secret_scan::{files, find};

/// Distinctive key bytes: no run of them occurs by chance.
const AES_KEY: [u8; 32] = [
    0x8e, 0x21, 0xf3, 0x5a, 0x07, 0xc4, 0x9d, 0x62, 0xb8, 0x13, 0xe7, 0x4f, 0x30, 0xa9, 0x56, 0xdb,
    0x1c, 0x75, 0xfa, 0x88, 0x03, 0x6e, 0xc1, 0x94, 0x2b, 0xd0, 0x47, 0xbe, 0x69, 0x15, 0xe2, 0x7d,
];
const HMAC_KEY: [u8; 24] = [
    0x5d, 0xa0, 0x3c, 0xe9, 0x71, 0x0b, 0xf6, 0x28, 0x94, 0xc7, 0x1e, 0x83, 0x4a, 0xbd, 0x06, 0x5f,
    0xe4, 0x39, 0x92, 0x7c, 0x11, 0xa8, 0x6b, 0xd3,
];
const ADMIN_NEW: &str = "Zq8-admin-secret-pw";
const ALICE_PW: &str = "Kv3-alice-secret-pw";
const WRONG_PW: &str = "Wx5-wrong-guess-pw";
const PLAINTEXT: &str = "Tq9 the database master key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_password_or_plaintext_reaches_any_file_of_the_cluster() {
    let mut cluster = Cluster::start_with_env(
        3,
        &[
            ("HSM_LOG", "debug"),
            ("HSM_NODE_RAFT_SNAPSHOT_EVERY_LOGS", "5"),
        ],
    );
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN_NEW).await;
    admin
        .create_user(user("alice"), Role::Cu, ALICE_PW)
        .await
        .expect("create");
    let alice = cluster.client().await;
    assert!(alice.login(user("alice"), WRONG_PW).await.is_err());
    alice.login(user("alice"), ALICE_PW).await.expect("login");
    let aes = alice
        .import_key(
            KeySpec::Aes { bits: 256 },
            KeyAttributes {
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
    let hmac = alice
        .import_key(
            KeySpec::GenericSecret { bytes: 24 },
            KeyAttributes {
                sign: true,
                sensitive: false,
                ..KeyAttributes::default()
            },
            Secret::new(HMAC_KEY.to_vec()),
            false,
        )
        .await
        .expect("import hmac");
    let ct = alice
        .encrypt(aes.id, EncryptMechanism::AesGcm, PLAINTEXT, vec![])
        .await
        .expect("encrypt");
    let pt = alice
        .decrypt(aes.id, EncryptMechanism::AesGcm, ct, vec![])
        .await
        .expect("decrypt");
    assert_eq!(pt.expose(), PLAINTEXT.as_bytes());
    alice
        .sign(hmac.id, SignMechanism::HmacSha256, b"m".to_vec())
        .await
        .expect("hmac");
    // More writes so every node builds snapshots.
    for i in 0..12 {
        alice
            .generate_key(
                KeySpec::Aes { bits: 128 },
                KeyAttributes {
                    label: format!("filler-{i}"),
                    ..KeyAttributes::default()
                },
                false,
            )
            .await
            .expect("filler");
    }
    // Two sealed backups (on demand; the node's hourly schedule may add
    // one) land in the cluster's backup directory, which is scanned too.
    for _ in 0..2 {
        admin.create_backup().await.expect("backup");
    }
    for i in 1..=3 {
        cluster.kill(i);
    }

    let mut hits = Vec::new();
    for (what, secret) in [
        ("aes key", AES_KEY.as_slice()),
        ("hmac key", HMAC_KEY.as_slice()),
        ("admin password", ADMIN_NEW.as_bytes()),
        ("one-time admin password", ADMIN_PASSWORD.as_bytes()),
        ("alice's password", ALICE_PW.as_bytes()),
        ("a wrong password", WRONG_PW.as_bytes()),
        ("decrypted data", PLAINTEXT.as_bytes()),
    ] {
        for hit in find(cluster.path(), secret) {
            hits.push(format!("{what}: {hit}"));
        }
    }
    assert!(hits.is_empty(), "secrets found:\n{}", hits.join("\n"));
    // The scan did look at the logs and the stores.
    let scanned = files(cluster.path());
    assert!(scanned.iter().any(|p| p.ends_with("node1.log")));
    let chunks = scanned
        .iter()
        .filter(|p| p.to_string_lossy().contains("/backups/") && p.ends_with("chunk-000000"))
        .count();
    assert!(
        chunks >= 2,
        "expected the backups' chunk objects among {scanned:?}"
    );
    assert!(scanned.iter().any(|p| p.to_string_lossy().contains("raft")
        && p.extension().is_some_and(|e| e == "log" || e == "sst")));
}
