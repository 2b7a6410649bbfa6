//! Retention keeps the newest backups and those marked keep-forever, and
//! deletes the rest by count and age; delete refuses a marked backup; and
//! manifests forged for the cluster (by anyone who can write to the
//! destination), dated in the future, never push a genuine backup out.

mod common;

use std::time::Duration;

use common::*;
use hsm_backup::{
    apply_retention, delete_backup, describe_backup, list_backups, set_keep_forever, BackupError,
    BackupId, BackupMeta,
};

const HOUR_MS: u64 = 3_600_000;

/// Writes `n` backups, one an hour, oldest first; returns their ids.
async fn hourly_backups(fx: &Fixture, n: u64) -> Vec<BackupId> {
    let data = snapshot_bytes(10 * 1024, 40);
    let mut ids = Vec::new();
    for i in 0..n {
        let meta = BackupMeta {
            applied_index: 100 + i,
            created_at_ms: fx.meta.created_at_ms + i * HOUR_MS,
            ..fx.meta
        };
        ids.push(
            fx.backup_to(&fx.dest, &meta, &data)
                .await
                .expect("backup")
                .backup_id,
        );
    }
    ids
}

async fn listed_ids(fx: &Fixture) -> Vec<BackupId> {
    list_backups(&fx.dest)
        .await
        .expect("lists")
        .into_iter()
        .map(|s| s.id)
        .collect()
}

#[tokio::test]
async fn retention_keeps_the_newest_n_and_the_keep_forever_ones() {
    let fx = Fixture::new();
    let ids = hourly_backups(&fx, 8).await;
    set_keep_forever(&fx.dest, ids[1], true)
        .await
        .expect("marks");
    set_keep_forever(&fx.dest, ids[5], true)
        .await
        .expect("marks");
    assert!(
        describe_backup(&fx.dest, ids[1])
            .await
            .expect("describes")
            .keep_forever
    );

    let now = fx.meta.created_at_ms + 8 * HOUR_MS;
    let report = apply_retention(&fx.dest, &policy(&fx, 3, None, now))
        .await
        .expect("applies");
    let mut deleted = report.deleted.clone();
    deleted.sort();
    let mut expected = vec![ids[0], ids[2], ids[3], ids[4]];
    expected.sort();
    assert_eq!(deleted, expected);
    assert!(report.failed.is_empty() && report.unreadable.is_empty());
    assert_eq!(listed_ids(&fx).await, vec![ids[7], ids[6], ids[5], ids[1]]);
    // Their objects are gone, not just their manifests.
    for id in &expected {
        assert!(!fx.root.join(id.to_string()).exists(), "{id} left a folder");
    }

    // Applying it again changes nothing.
    let again = apply_retention(&fx.dest, &policy(&fx, 3, None, now))
        .await
        .expect("applies");
    assert!(again.deleted.is_empty());
}

#[tokio::test]
async fn retention_by_age_never_deletes_the_newest_or_a_marked_backup() {
    let fx = Fixture::new();
    let ids = hourly_backups(&fx, 5).await;
    set_keep_forever(&fx.dest, ids[0], true)
        .await
        .expect("marks");
    // Ages at `now`: 6.5h (ids[0]) ... 2.5h (ids[4]); keep at most 3h.
    let now = fx.meta.created_at_ms + 6 * HOUR_MS + HOUR_MS / 2;
    let report = apply_retention(
        &fx.dest,
        &policy(&fx, 10, Some(Duration::from_secs(3 * 3600)), now),
    )
    .await
    .expect("applies");
    let mut deleted = report.deleted.clone();
    deleted.sort();
    let mut expected = vec![ids[1], ids[2], ids[3]];
    expected.sort();
    assert_eq!(deleted, expected);
    assert_eq!(listed_ids(&fx).await, vec![ids[4], ids[0]]);

    // A day later everything is too old: the newest stays regardless.
    let report = apply_retention(
        &fx.dest,
        &policy(&fx, 0, Some(Duration::ZERO), now + 24 * HOUR_MS),
    )
    .await
    .expect("applies");
    assert!(report.deleted.is_empty());
    assert_eq!(listed_ids(&fx).await, vec![ids[4], ids[0]]);
}

#[tokio::test]
async fn a_keep_forever_backup_is_not_deleted_until_the_mark_is_cleared() {
    let fx = Fixture::new();
    let ids = hourly_backups(&fx, 2).await;
    set_keep_forever(&fx.dest, ids[0], true)
        .await
        .expect("marks");
    let err = delete_backup(&fx.dest, ids[0]).await.expect_err("deleted");
    assert!(matches!(err, BackupError::KeepForever { .. }), "{err}");
    set_keep_forever(&fx.dest, ids[0], false)
        .await
        .expect("clears");
    delete_backup(&fx.dest, ids[0]).await.expect("deletes");
    assert_eq!(listed_ids(&fx).await, vec![ids[1]]);
    let err = delete_backup(&fx.dest, ids[0])
        .await
        .expect_err("deleted twice");
    assert!(matches!(err, BackupError::NotFound { .. }), "{err}");
    let err = set_keep_forever(&fx.dest, ids[0], true)
        .await
        .expect_err("marked a deleted backup");
    assert!(matches!(err, BackupError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn a_backup_with_a_damaged_manifest_is_listed_with_its_problem_and_kept() {
    let fx = Fixture::new();
    let ids = hourly_backups(&fx, 3).await;
    let manifest = fx.root.join(ids[0].to_string()).join("manifest");
    flip_byte(&manifest, 30);
    let listed = list_backups(&fx.dest).await.expect("lists");
    let damaged = listed.iter().find(|s| s.id == ids[0]).expect("listed");
    assert!(damaged.details.is_none());
    assert!(
        damaged
            .problem
            .as_deref()
            .unwrap_or("")
            .contains("manifest"),
        "{damaged:?}"
    );
    let report = apply_retention(
        &fx.dest,
        &policy(&fx, 1, None, fx.meta.created_at_ms + 10 * HOUR_MS),
    )
    .await
    .expect("applies");
    assert_eq!(report.deleted, vec![ids[1]]);
    assert_eq!(report.unreadable.len(), 1);
    assert!(fx.root.join(ids[0].to_string()).exists());
}

#[tokio::test]
async fn forged_manifests_dated_in_the_future_never_make_retention_delete_a_genuine_backup() {
    let fx = Fixture::new();
    let genuine = hourly_backups(&fx, 4).await;
    // Someone who can write to the destination signs backups for this
    // cluster id with a key of its own, dated a week ahead so they rank
    // first; and a member's backup from a clock far ahead.
    let mut forger = Fixture::new();
    forger.meta.cluster_id = fx.meta.cluster_id;
    forger.dest = fx.dest.clone();
    let data = snapshot_bytes(4 * 1024, 9);
    let mut forged = Vec::new();
    for i in 0..3 {
        let meta = BackupMeta {
            created_at_ms: fx.meta.created_at_ms + (24 * 7 + i) * HOUR_MS,
            ..fx.meta
        };
        forged.push(
            forger
                .backup_to(&fx.dest, &meta, &data)
                .await
                .expect("forged")
                .backup_id,
        );
    }
    let ahead = BackupMeta {
        created_at_ms: fx.meta.created_at_ms + 24 * 30 * HOUR_MS,
        ..fx.meta
    };
    let far_future = fx
        .backup_to(&fx.dest, &ahead, &data)
        .await
        .expect("backup")
        .backup_id;

    let now = fx.meta.created_at_ms + 4 * HOUR_MS;
    let report = apply_retention(&fx.dest, &policy(&fx, 3, None, now))
        .await
        .expect("applies");
    // Of the genuine four, the newest three stay: only the oldest goes.
    assert_eq!(report.deleted, vec![genuine[0]], "{report:?}");
    let mut untrusted: Vec<BackupId> = report.untrusted.iter().map(|(id, _)| *id).collect();
    untrusted.sort();
    let mut expected = forged.clone();
    expected.push(far_future);
    expected.sort();
    assert_eq!(untrusted, expected, "{report:?}");
    let left = listed_ids(&fx).await;
    for id in genuine[1..].iter().chain(&forged).chain([&far_future]) {
        assert!(left.contains(id), "{id} was deleted");
    }
}

#[tokio::test]
async fn backups_missing_chunks_never_make_retention_delete_a_complete_one() {
    let fx = Fixture::new();
    let ids = hourly_backups(&fx, 3).await;
    // The two newest lose a chunk object, or get a truncated one (a partial
    // loss at the store, or someone who can write there).
    let dir = |id: BackupId| fx.root.join(id.to_string());
    std::fs::remove_file(dir(ids[2]).join("chunk-000000")).expect("remove");
    let cut = dir(ids[1]).join("chunk-000000");
    let len = std::fs::metadata(&cut).expect("chunk").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .expect("open")
        .set_len(len - 1)
        .expect("truncate");

    let now = fx.meta.created_at_ms + 3 * HOUR_MS;
    let report = apply_retention(&fx.dest, &policy(&fx, 1, None, now))
        .await
        .expect("applies");
    // The only complete backup stays; the incomplete ones are reported,
    // not counted, and not deleted.
    assert!(report.deleted.is_empty(), "{report:?}");
    assert_eq!(report.kept, vec![ids[0]], "{report:?}");
    let mut incomplete: Vec<BackupId> = report.untrusted.iter().map(|(id, _)| *id).collect();
    incomplete.sort();
    let mut expected = vec![ids[1], ids[2]];
    expected.sort();
    assert_eq!(incomplete, expected, "{report:?}");
    assert!(
        report
            .untrusted
            .iter()
            .all(|(_, why)| why.contains("chunk")),
        "{report:?}"
    );
    let listed = list_backups(&fx.dest).await.expect("lists");
    for s in &listed {
        let want = usize::from(s.id != ids[0]);
        assert_eq!(s.incomplete_chunks, want, "{s:?}");
    }
}
