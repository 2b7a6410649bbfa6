//! A backup written to a local directory restores to the same bytes with
//! the domain key and with a recovery key; other keys fail clearly; every
//! backup is sealed afresh.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use hsm_backup::{
    describe_backup, list_backups, read_manifest, restore_backup, restore_backup_to, verify_backup,
    write_backup, BackupDomainKey, BackupError, BackupKeys, Destination, NoProgress, Opener,
    Progress, ProgressUpdate, RecoveryKey, SnapshotSource, WriteOptions, CHUNK_OVERHEAD,
};
use zeroize::Zeroizing;

#[tokio::test]
async fn restoring_with_the_domain_key_or_a_recovery_key_gives_the_same_bytes() {
    let fx = Fixture::new();
    let data = snapshot_bytes(300 * 1024 + 17, 1);
    let manifest = fx.backup(&data).await;
    assert_eq!(manifest.chunks.len(), 5, "300 KiB in 64 KiB chunks");
    assert_eq!(manifest.total_plain_bytes, data.len() as u64);
    assert_eq!(manifest.applied_index, fx.meta.applied_index);
    assert_eq!(manifest.term, fx.meta.term);
    assert_eq!(manifest.cluster_id, fx.meta.cluster_id);
    assert_eq!(
        manifest.writer_public_key,
        fx.signer.verifying_key().to_bytes()
    );
    assert_eq!(
        manifest.recovery_fingerprints(),
        vec![fx.recovery.public_key().fingerprint()]
    );

    let by_domain = restore_backup(
        &fx.dest,
        manifest.backup_id,
        Opener::DomainKey(&fx.domain),
        Some(&[fx.signer.verifying_key()]),
        &NoProgress,
    )
    .await
    .expect("restores with the domain key");
    assert!(by_domain.snapshot.as_slice() == data.as_slice());
    assert_eq!(by_domain.manifest, manifest);

    // The recovery key as an operator would use it: saved, then loaded.
    let key_file = fx.dir.path().join("recovery.key");
    fx.recovery.save(&key_file).expect("saves");
    let recovery = RecoveryKey::load(&key_file).expect("loads");
    let by_recovery = restore_backup(
        &fx.dest,
        manifest.backup_id,
        Opener::RecoveryKey(&recovery),
        None,
        &NoProgress,
    )
    .await
    .expect("restores with the recovery key");
    assert!(by_recovery.snapshot.as_slice() == data.as_slice());

    // Streaming into a writer gives the same bytes too.
    let mut out = Vec::new();
    restore_backup_to(
        &fx.dest,
        manifest.backup_id,
        Opener::DomainKey(&fx.domain),
        None,
        &mut out,
        &NoProgress,
    )
    .await
    .expect("restores into a writer");
    assert!(out == data);

    let report = verify_backup(&fx.dest, manifest.backup_id, None, &NoProgress)
        .await
        .expect("verifies");
    assert_eq!(report.chunks_checked, 5);
    assert_eq!(
        report.object_bytes_checked,
        data.len() as u64 + 5 * CHUNK_OVERHEAD as u64
    );
}

#[tokio::test]
async fn a_wrong_recovery_key_or_domain_key_is_refused_naming_the_manifest() {
    let fx = Fixture::new();
    let m = fx.backup(&snapshot_bytes(100 * 1024, 2)).await;
    let manifest_url = format!("file://{}/{}/manifest", fx.root.display(), m.backup_id);

    let stranger = RecoveryKey::generate();
    let err = restore_backup(
        &fx.dest,
        m.backup_id,
        Opener::RecoveryKey(&stranger),
        None,
        &NoProgress,
    )
    .await
    .expect_err("a stranger's recovery key opened the backup");
    assert!(
        matches!(err, BackupError::NoKeyForRecoveryKey { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&stranger.public_key().fingerprint().to_string())
            && msg.contains(&manifest_url),
        "{msg}"
    );

    let other_domain = BackupDomainKey::new(Zeroizing::new(rand::random()));
    let err = restore_backup(
        &fx.dest,
        m.backup_id,
        Opener::DomainKey(&other_domain),
        None,
        &NoProgress,
    )
    .await
    .expect_err("another cluster's domain key opened the backup");
    assert!(matches!(err, BackupError::KeyUnwrap { .. }), "{err}");
    assert_eq!(err.object(), Some(manifest_url.as_str()));
}

#[tokio::test]
async fn two_backups_of_the_same_bytes_share_no_ciphertext() {
    let fx = Fixture::new();
    let data = snapshot_bytes(200 * 1024, 3);
    let a = fx.backup(&data).await;
    let b = fx.backup(&data).await;
    assert_ne!(a.backup_id, b.backup_id);
    assert_eq!(a.chunks.len(), b.chunks.len());
    for i in 0..a.chunks.len() {
        let name = format!("chunk-{i:06}");
        let ca = std::fs::read(fx.backup_dir(&a).join(&name)).expect("chunk a");
        let cb = std::fs::read(fx.backup_dir(&b).join(&name)).expect("chunk b");
        assert_ne!(ca, cb, "{name} is the same in both backups");
        assert_ne!(a.chunks[i].object_hash, b.chunks[i].object_hash);
        // Not even a 16-byte run of ciphertext is shared, at any offset.
        let runs_b: std::collections::HashSet<&[u8]> = cb.windows(16).collect();
        let shared = ca[13..]
            .chunks(16)
            .filter(|w| w.len() == 16 && runs_b.contains(w))
            .count();
        assert_eq!(shared, 0, "{name} shares {shared} blocks");
    }
    let ma = std::fs::read(fx.backup_dir(&a).join("manifest")).expect("manifest a");
    let mb = std::fs::read(fx.backup_dir(&b).join("manifest")).expect("manifest b");
    assert_ne!(ma, mb);
}

#[tokio::test]
async fn backups_are_listed_newest_first_and_described() {
    let fx = Fixture::new();
    let mut ids = Vec::new();
    for (i, index) in [10u64, 30, 20].into_iter().enumerate() {
        let meta = hsm_backup::BackupMeta {
            applied_index: index,
            created_at_ms: fx.meta.created_at_ms + index,
            ..fx.meta
        };
        let m = fx
            .backup_to(&fx.dest, &meta, &snapshot_bytes(70 * 1024, i as u64))
            .await
            .expect("backup");
        ids.push(m.backup_id);
    }
    let listed = list_backups(&fx.dest).await.expect("lists");
    let order: Vec<_> = listed
        .iter()
        .map(|s| s.details.as_ref().expect("details").applied_index)
        .collect();
    assert_eq!(order, [30, 20, 10]);
    assert!(listed
        .iter()
        .all(|s| s.problem.is_none() && !s.keep_forever));
    let d = listed[0].details.as_ref().expect("details");
    assert_eq!(d.chunk_count, 2);
    assert_eq!(d.total_plain_bytes, 70 * 1024);
    assert_eq!(d.recovery_key_count, 1);

    let described = describe_backup(&fx.dest, ids[1]).await.expect("describes");
    assert_eq!(described.manifest.applied_index, 30);
    assert!(!described.keep_forever);
    let read = read_manifest(&fx.dest, ids[1], Some(&[fx.signer.verifying_key()]))
        .await
        .expect("reads");
    assert_eq!(read, described.manifest);
}

#[tokio::test]
async fn large_chunks_go_up_as_multipart_uploads_and_restore() {
    let fx = Fixture::new();
    let dest = Destination::from_url(&format!("file://{}", fx.root.display()))
        .expect("dest")
        .with_options(WriteOptions {
            chunk_bytes: 12 * 1024 * 1024,
            multipart_threshold_bytes: 6 * 1024 * 1024,
            part_bytes: 5 * 1024 * 1024,
            ..small_chunks()
        })
        .expect("options");
    let data = snapshot_bytes(20 * 1024 * 1024 + 3, 4);
    let m = fx.backup_to(&dest, &fx.meta, &data).await.expect("backup");
    assert_eq!(m.chunks.len(), 2);
    let restored = restore_backup(
        &dest,
        m.backup_id,
        Opener::DomainKey(&fx.domain),
        None,
        &NoProgress,
    )
    .await
    .expect("restores");
    assert!(restored.snapshot.as_slice() == data.as_slice());
}

#[tokio::test]
async fn empty_and_exact_multiple_snapshots_round_trip() {
    let fx = Fixture::new();
    for len in [0usize, 1, 64 * 1024, 128 * 1024] {
        let data = snapshot_bytes(len.max(128), len as u64)[..len].to_vec();
        let m = fx.backup(&data).await;
        assert_eq!(m.chunks.len(), len.div_ceil(64 * 1024), "len {len}");
        let r = restore_backup(
            &fx.dest,
            m.backup_id,
            Opener::RecoveryKey(&fx.recovery),
            None,
            &NoProgress,
        )
        .await
        .expect("restores");
        assert!(r.snapshot.as_slice() == data.as_slice(), "len {len}");
    }
}

#[tokio::test]
async fn a_reader_giving_other_than_the_announced_length_fails_and_lists_nothing() {
    let fx = Fixture::new();
    let data = snapshot_bytes(150 * 1024, 5);
    let recovery = fx.recovery_keys();
    let keys = BackupKeys {
        domain_key: &fx.domain,
        recovery_keys: &recovery,
        signer: &fx.signer,
    };
    for announced in [data.len() as u64 + 1, data.len() as u64 - 1] {
        let source = SnapshotSource {
            reader: data.as_slice(),
            len: announced,
        };
        let err = write_backup(&fx.dest, &fx.meta, source, &keys, &NoProgress)
            .await
            .expect_err("wrong length accepted");
        assert!(matches!(err, BackupError::Snapshot(_)), "{err}");
    }
    assert!(list_backups(&fx.dest).await.expect("lists").is_empty());
    assert!(
        files_under(&fx.root).is_empty(),
        "failed backups left objects"
    );
}

/// Records every progress report.
#[derive(Default)]
struct Recorder(Mutex<Vec<ProgressUpdate>>);

impl Progress for Recorder {
    fn update(&self, u: &ProgressUpdate) {
        self.0.lock().expect("lock").push(u.clone());
    }
}

#[tokio::test]
async fn progress_reports_bytes_up_to_the_total_and_finishes() {
    let fx = Fixture::new();
    let data = snapshot_bytes(256 * 1024, 6);
    let recorder = Arc::new(Recorder::default());
    let recovery = fx.recovery_keys();
    let keys = BackupKeys {
        domain_key: &fx.domain,
        recovery_keys: &recovery,
        signer: &fx.signer,
    };
    let m = write_backup(
        &fx.dest,
        &fx.meta,
        SnapshotSource::from_bytes(&data),
        &keys,
        recorder.as_ref(),
    )
    .await
    .expect("backup");
    restore_backup(
        &fx.dest,
        m.backup_id,
        Opener::DomainKey(&fx.domain),
        None,
        recorder.as_ref(),
    )
    .await
    .expect("restores");
    let updates = recorder.0.lock().expect("lock");
    for phase in [
        hsm_backup::progress::Phase::Backup,
        hsm_backup::progress::Phase::Restore,
    ] {
        let of_phase: Vec<_> = updates.iter().filter(|u| u.phase == phase).collect();
        assert_eq!(of_phase.len(), 5, "{phase}: 4 chunks and the finish");
        assert!(of_phase
            .windows(2)
            .all(|w| w[0].done_bytes <= w[1].done_bytes));
        let last = of_phase.last().expect("last");
        assert!(last.finished && last.done_bytes == data.len() as u64);
        assert!(of_phase.iter().all(|u| u.total_bytes == data.len() as u64));
        let line = hsm_backup::progress::progress_line(last);
        assert!(line.contains("100%") && line.contains("done in"), "{line}");
    }
}
