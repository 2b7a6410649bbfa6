//! An upload that fails part way leaves no listed backup (and, when the
//! store lets it, no objects); a put that fails now and then is retried.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::*;
use hsm_backup::{
    list_backups, list_incomplete, restore_backup, BackupError, Destination, NoProgress, Opener,
};
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;

fn local_store(fx: &Fixture) -> Arc<dyn ObjectStore> {
    std::fs::create_dir_all(&fx.root).expect("mkdir");
    Arc::new(LocalFileSystem::new_with_prefix(&fx.root).expect("local store"))
}

/// A destination under a prefix of `store`.
fn destination_on(store: FlakyStore) -> (Destination, Arc<FlakyStore>) {
    let flaky = Arc::new(store);
    let dest = Destination::from_store(flaky.clone(), "cluster-a/backups", "flaky://")
        .expect("dest")
        .with_options(small_chunks())
        .expect("options");
    (dest, flaky)
}

fn flaky_destination(
    fx: &Fixture,
    fail: impl Fn(usize, &object_store::path::Path) -> bool + Send + Sync + 'static,
) -> (Destination, Arc<FlakyStore>) {
    destination_on(FlakyStore::new(local_store(fx), fail))
}

#[tokio::test]
async fn a_store_that_fails_after_some_chunks_leaves_no_listed_backup() {
    let fx = Fixture::new();
    // 10 chunks; every put from the fourth on fails, retries included.
    let (dest, flaky) = flaky_destination(&fx, |n, _| n >= 3);
    let data = snapshot_bytes(640 * 1024, 30);
    let err = fx
        .backup_to(&dest, &fx.meta, &data)
        .await
        .expect_err("a failing store took the backup");
    assert!(
        matches!(err, BackupError::Store { action: "put", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chunk-"), "{err}");
    assert!(
        flaky.puts.load(Ordering::SeqCst) >= 3 + 4,
        "the failing put was not retried"
    );

    assert!(list_backups(&dest).await.expect("lists").is_empty());
    assert!(list_incomplete(&dest).await.expect("lists").is_empty());
    assert!(
        files_under(&fx.root).is_empty(),
        "objects left: {:?}",
        files_under(&fx.root)
            .iter()
            .map(|(p, _)| p.clone())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_failing_manifest_put_leaves_no_listed_backup() {
    let fx = Fixture::new();
    // 3 chunks go up, then the manifest put fails every time.
    let (dest, _) = flaky_destination(&fx, |n, _| n >= 3);
    let data = snapshot_bytes(150 * 1024, 31);
    let err = fx
        .backup_to(&dest, &fx.meta, &data)
        .await
        .expect_err("took it");
    assert!(err.to_string().contains("/manifest"), "{err}");
    assert!(list_backups(&dest).await.expect("lists").is_empty());
    assert!(files_under(&fx.root).is_empty());
}

#[tokio::test]
async fn an_abandoned_upload_is_not_listed_and_delete_removes_its_leftovers() {
    // A backup abandoned mid-way (its future dropped, as when the node
    // stops) cannot clean up: its chunks stay. They are reported as
    // incomplete, never listed, and delete_backup removes them.
    let fx = Fixture::new();
    // Three puts are stored; the fourth and later never answer.
    let mut store = FlakyStore::new(local_store(&fx), |_, _| false);
    store.hang_from = Some(3);
    let (dest, flaky) = destination_on(store);
    let data = snapshot_bytes(640 * 1024, 32);
    {
        let backup = fx.backup_to(&dest, &fx.meta, &data);
        tokio::pin!(backup);
        // Drive the backup until three chunks are stored, then drop it.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while flaky.stored.load(Ordering::SeqCst) < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "three puts never completed"
            );
            tokio::select! {
                r = &mut backup => panic!("backup finished although puts hang: {r:?}"),
                () = tokio::time::sleep(std::time::Duration::from_millis(1)) => {}
            }
        }
    }
    assert_eq!(files_under(&fx.root).len(), 3);
    assert!(list_backups(&dest).await.expect("lists").is_empty());
    let incomplete = list_incomplete(&dest).await.expect("lists");
    assert_eq!(incomplete.len(), 1, "{incomplete:?}");
    hsm_backup::delete_backup(&dest, incomplete[0])
        .await
        .expect("deletes");
    assert!(files_under(&fx.root).is_empty());
}

#[tokio::test]
async fn puts_that_fail_now_and_then_are_retried_and_the_backup_restores() {
    let fx = Fixture::new();
    // The first put of every object fails.
    let tried = std::sync::Mutex::new(std::collections::HashSet::new());
    let (dest, flaky) = flaky_destination(&fx, move |_, path| {
        tried.lock().expect("lock").insert(path.clone())
    });
    let data = snapshot_bytes(330 * 1024, 33);
    let m = fx
        .backup_to(&dest, &fx.meta, &data)
        .await
        .expect("retried through");
    assert_eq!(flaky.puts.load(Ordering::SeqCst), 2 * (m.chunks.len() + 1));
    let listed = list_backups(&dest).await.expect("lists");
    assert_eq!(listed.len(), 1);
    let r = restore_backup(
        &dest,
        m.backup_id,
        Opener::DomainKey(&fx.domain),
        None,
        &NoProgress,
    )
    .await
    .expect("restores");
    assert!(r.snapshot.as_slice() == data.as_slice());
    // Objects are under the prefix.
    assert!(fx
        .root
        .join("cluster-a/backups")
        .join(m.backup_id.to_string())
        .join("manifest")
        .exists());
}
