//! Key material and passwords in the snapshot never reach a backup object
//! in plaintext: not raw, not hex, not base64. Nor do the domain key, the
//! recovery private key or the node's signing key.

mod common;
#[path = "../../raft-store/tests/secret_scan/mod.rs"]
mod secret_scan;

use common::*;
use secret_scan::find;

#[tokio::test]
async fn no_known_key_or_password_appears_in_any_backup_object() {
    let fx = Fixture::new();
    let data = snapshot_bytes(400 * 1024, 20);
    // The secrets are in the input, several times.
    assert!(data.windows(32).filter(|w| *w == KNOWN_KEY).count() >= 2);
    assert!(
        data.windows(KNOWN_PASSWORD.len())
            .filter(|w| *w == KNOWN_PASSWORD)
            .count()
            >= 2
    );
    for _ in 0..2 {
        fx.backup(&data).await;
    }
    // Keep-forever marks are objects too.
    let listed = hsm_backup::list_backups(&fx.dest).await.expect("lists");
    hsm_backup::set_keep_forever(&fx.dest, listed[0].id, true)
        .await
        .expect("marks");

    let objects = files_under(&fx.root);
    assert!(objects.len() >= 2 * 8, "{} objects", objects.len());
    let signing = fx.signer.to_bytes();
    let recovery_file = fx.dir.path().join("recovery.key");
    fx.recovery.save(&recovery_file).expect("saves");
    let recovery_text = std::fs::read_to_string(&recovery_file).expect("reads");
    let recovery_secret = recovery_text
        .lines()
        .find_map(|l| l.strip_prefix("hsm-backup-recovery-secret-v1 "))
        .map(|h| hex::decode(h).expect("hex"))
        .expect("secret line");

    for (what, secret) in [
        ("the known key", KNOWN_KEY.to_vec()),
        ("the known password", KNOWN_PASSWORD.to_vec()),
        ("the node signing key", signing.to_vec()),
        ("the recovery private key", recovery_secret),
    ] {
        let hits = find(&fx.root, &secret);
        assert!(hits.is_empty(), "{what} found in backup objects: {hits:?}");
    }
}

#[tokio::test]
async fn the_domain_key_appears_in_no_backup_object() {
    let mut fx = Fixture::new();
    fx.domain = hsm_backup::BackupDomainKey::from_slice(&KNOWN_KEY).expect("32 bytes");
    // The snapshot itself holds no secret here, so any hit is the key.
    let data = vec![0x42u8; 100 * 1024];
    fx.backup(&data).await;
    let hits = find(&fx.root, &KNOWN_KEY);
    assert!(hits.is_empty(), "the domain key found: {hits:?}");
    // Nor does the plaintext: a run of the repeated byte would show it.
    for (path, bytes) in files_under(&fx.root) {
        assert!(
            !bytes.windows(64).any(|w| w.iter().all(|&b| b == 0x42)),
            "{} holds plaintext",
            path.display()
        );
    }
}
