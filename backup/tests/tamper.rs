//! A changed, missing or foreign-signed object is refused by verify and by
//! restore, and the error names the object.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use hsm_backup::{
    restore_backup, verify_backup, BackupError, BackupId, Manifest, NoProgress, Opener,
};

/// Both verify and restore refuse the backup; both errors name `object`.
async fn assert_refused(fx: &Fixture, id: BackupId, object: &str, what: &str) {
    let err = verify_backup(&fx.dest, id, None, &NoProgress)
        .await
        .expect_err(&format!("verify accepted {what}"));
    assert_eq!(err.object(), Some(object), "verify, {what}: {err}");
    assert!(err.to_string().contains(object), "verify, {what}: {err}");
    for opener in [
        Opener::DomainKey(&fx.domain),
        Opener::RecoveryKey(&fx.recovery),
    ] {
        let err = restore_backup(&fx.dest, id, opener, None, &NoProgress)
            .await
            .expect_err(&format!("restore accepted {what}"));
        assert_eq!(err.object(), Some(object), "restore, {what}: {err}");
    }
}

fn object_url(fx: &Fixture, m: &Manifest, name: &str) -> String {
    format!("file://{}/{}/{name}", fx.root.display(), m.backup_id)
}

#[tokio::test]
async fn a_flipped_byte_in_any_chunk_is_refused_naming_the_chunk() {
    let fx = Fixture::new();
    let m = fx.backup(&snapshot_bytes(260 * 1024, 10)).await;
    assert_eq!(m.chunks.len(), 5);
    for i in 0..m.chunks.len() {
        let name = format!("chunk-{i:06}");
        let path = fx.backup_dir(&m).join(&name);
        let len = std::fs::metadata(&path).expect("chunk").len() as usize;
        // Version byte, nonce, ciphertext, tag.
        for at in [0, 5, len / 2, len - 1] {
            flip_byte(&path, at);
            assert_refused(
                &fx,
                m.backup_id,
                &object_url(&fx, &m, &name),
                &format!("{name} byte {at}"),
            )
            .await;
            flip_byte(&path, at);
        }
    }
    verify_backup(&fx.dest, m.backup_id, None, &NoProgress)
        .await
        .expect("the restored objects verify again");
}

#[tokio::test]
async fn a_flipped_byte_anywhere_in_the_manifest_is_refused_naming_the_manifest() {
    let fx = Fixture::new();
    let m = fx.backup(&snapshot_bytes(130 * 1024, 11)).await;
    let path = fx.backup_dir(&m).join("manifest");
    let url = object_url(&fx, &m, "manifest");
    let len = std::fs::metadata(&path).expect("manifest").len() as usize;
    // Spread positions: magic, header fields, chunk hashes, wrapped keys,
    // signature.
    let mut positions: Vec<usize> = (0..len).step_by(len / 40).collect();
    positions.extend([0, 7, 8, len - 65, len - 64, len - 1]);
    for at in positions {
        flip_byte(&path, at);
        assert_refused(&fx, m.backup_id, &url, &format!("manifest byte {at}")).await;
        flip_byte(&path, at);
    }
    // A truncated manifest too.
    let good = std::fs::read(&path).expect("read");
    std::fs::write(&path, &good[..len - 1]).expect("write");
    assert_refused(&fx, m.backup_id, &url, "a truncated manifest").await;
}

#[tokio::test]
async fn a_missing_chunk_is_refused_naming_it() {
    let fx = Fixture::new();
    let m = fx.backup(&snapshot_bytes(200 * 1024, 12)).await;
    let name = "chunk-000002";
    std::fs::remove_file(fx.backup_dir(&m).join(name)).expect("remove");
    let url = object_url(&fx, &m, name);
    assert_refused(&fx, m.backup_id, &url, "a missing chunk").await;
    let err = verify_backup(&fx.dest, m.backup_id, None, &NoProgress)
        .await
        .expect_err("verified");
    assert!(matches!(err, BackupError::ObjectMissing { .. }), "{err}");
}

#[tokio::test]
async fn chunks_swapped_between_positions_or_backups_are_refused() {
    let fx = Fixture::new();
    let data = snapshot_bytes(200 * 1024, 13);
    let a = fx.backup(&data).await;
    let b = fx.backup(&data).await;
    // Chunk 1 of backup b placed as chunk 1 of backup a.
    let a1 = fx.backup_dir(&a).join("chunk-000001");
    std::fs::copy(fx.backup_dir(&b).join("chunk-000001"), &a1).expect("copy");
    assert_refused(
        &fx,
        a.backup_id,
        &object_url(&fx, &a, "chunk-000001"),
        "a chunk of another backup",
    )
    .await;
    // Chunks 0 and 1 of backup b swapped.
    let (b0, b1) = (
        fx.backup_dir(&b).join("chunk-000000"),
        fx.backup_dir(&b).join("chunk-000001"),
    );
    let (c0, c1) = (
        std::fs::read(&b0).expect("read"),
        std::fs::read(&b1).expect("read"),
    );
    std::fs::write(&b0, c1).expect("write");
    std::fs::write(&b1, c0).expect("write");
    assert_refused(
        &fx,
        b.backup_id,
        &object_url(&fx, &b, "chunk-000000"),
        "swapped chunks",
    )
    .await;
}

#[tokio::test]
async fn a_manifest_signed_by_another_key_is_refused_when_signers_are_given() {
    let fx = Fixture::new();
    let m = fx.backup(&snapshot_bytes(90 * 1024, 14)).await;
    let url = object_url(&fx, &m, "manifest");
    let other = SigningKey::generate(&mut rand::rngs::OsRng);

    let err = verify_backup(
        &fx.dest,
        m.backup_id,
        Some(&[other.verifying_key()]),
        &NoProgress,
    )
    .await
    .expect_err("an untrusted signer was accepted");
    assert!(
        matches!(err, BackupError::UntrustedSigner { node: 2, .. }),
        "{err}"
    );
    assert_eq!(err.object(), Some(url.as_str()));
    let err = restore_backup(
        &fx.dest,
        m.backup_id,
        Opener::DomainKey(&fx.domain),
        Some(&[other.verifying_key()]),
        &NoProgress,
    )
    .await
    .expect_err("restored from an untrusted signer");
    assert!(matches!(err, BackupError::UntrustedSigner { .. }), "{err}");

    // The real signer among several trusted keys is accepted.
    verify_backup(
        &fx.dest,
        m.backup_id,
        Some(&[other.verifying_key(), fx.signer.verifying_key()]),
        &NoProgress,
    )
    .await
    .expect("verifies");
}

#[tokio::test]
async fn a_manifest_re_signed_by_an_attacker_does_not_open_with_the_domain_key() {
    // An attacker with write access but no domain key changes the index in
    // the manifest and signs it with their own key. Without trusted signers
    // the signature checks out, but the wrapped key is bound to the original
    // fields, so the domain key no longer opens it.
    let fx = Fixture::new();
    let attacker = Fixture::new();
    let data = snapshot_bytes(90 * 1024, 15);
    let m = fx.backup(&data).await;
    let path = fx.backup_dir(&m).join("manifest");
    let mut forged = m.clone();
    forged.applied_index += 1;
    forged.writer_public_key = attacker.signer.verifying_key().to_bytes();
    let bytes = forge_manifest(&forged, &attacker.signer);
    std::fs::write(&path, bytes).expect("write");
    let err = restore_backup(
        &fx.dest,
        m.backup_id,
        Opener::DomainKey(&fx.domain),
        None,
        &NoProgress,
    )
    .await
    .expect_err("a re-signed manifest opened");
    assert!(matches!(err, BackupError::KeyUnwrap { .. }), "{err}");
    let err = restore_backup(
        &fx.dest,
        m.backup_id,
        Opener::DomainKey(&fx.domain),
        Some(&[fx.signer.verifying_key()]),
        &NoProgress,
    )
    .await
    .expect_err("accepted");
    assert!(matches!(err, BackupError::UntrustedSigner { .. }), "{err}");
}

/// A manifest object as the format defines it, signed by `signer`.
fn forge_manifest(m: &Manifest, signer: &SigningKey) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let body = hsm_proto::codec::encode("manifest", m).expect("encodes");
    let mut signed = b"hsm-backup manifest v1\0".to_vec();
    signed.extend_from_slice(&body);
    let mut out = b"HSMBKMF1".to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&signer.sign(&signed).to_bytes());
    out
}
