//! The S3 path against a real S3-compatible server started on loopback:
//! s3s-fs from crates.io (installed by `tests/s3_server.sh` on first use),
//! or moto's server when s3s-fs cannot be had. Credentials, region and
//! endpoint reach the crate through the AWS environment variables, as in
//! production.
//!
//! `HSM_TEST_S3_SERVER=s3s-fs|moto` picks one. If no server can be started
//! the test fails with the reason; set `HSM_TEST_S3_SKIP=1` to skip it
//! explicitly (it then says so on stderr).

mod common;
mod s3_server;

use common::*;
use hsm_backup::{
    apply_retention, delete_backup, list_backups, restore_backup, set_keep_forever, verify_backup,
    BackupError, Destination, NoProgress, Opener, WriteOptions,
};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use s3_server::{server_or_skip, ACCESS_KEY, BUCKET, SECRET_KEY};

/// A plain S3 client on the same server, to look at and damage objects.
fn raw_store(endpoint: &str) -> impl ObjectStore {
    AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .build()
        .expect("raw S3 client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_round_trip_through_a_real_s3_server() {
    let Some(server) = server_or_skip() else {
        return;
    };
    // This test binary has this one test, so setting the process
    // environment races with nothing.
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", server.endpoint.as_str()),
    ] {
        std::env::set_var(k, v);
    }
    let fx = Fixture::new();
    let url = format!("s3://{BUCKET}/clusters/a");
    let dest = Destination::from_url(&url)
        .expect("s3 destination")
        .with_options(small_chunks())
        .expect("options");
    assert_eq!(dest.url(), url);

    // Round trip, several chunks.
    let data = snapshot_bytes(300 * 1024, 50);
    let m = fx
        .backup_to(&dest, &fx.meta, &data)
        .await
        .expect("backup to S3");
    assert_eq!(m.chunks.len(), 5);
    let raw = raw_store(&server.endpoint);
    let dir = Path::from(format!("clusters/a/{}", m.backup_id));
    let mut names: Vec<String> = {
        use futures_util::TryStreamExt;
        raw.list(Some(&dir))
            .map_ok(|o| o.location.filename().unwrap_or_default().to_string())
            .try_collect()
            .await
            .expect("raw list")
    };
    names.sort();
    assert_eq!(
        names,
        [
            "chunk-000000",
            "chunk-000001",
            "chunk-000002",
            "chunk-000003",
            "chunk-000004",
            "manifest"
        ]
    );
    let listed = list_backups(&dest).await.expect("lists");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, m.backup_id);
    verify_backup(
        &dest,
        m.backup_id,
        Some(&[fx.signer.verifying_key()]),
        &NoProgress,
    )
    .await
    .expect("verifies");
    for opener in [
        Opener::DomainKey(&fx.domain),
        Opener::RecoveryKey(&fx.recovery),
    ] {
        let r = restore_backup(&dest, m.backup_id, opener, None, &NoProgress)
            .await
            .expect("restores from S3");
        assert!(r.snapshot.as_slice() == data.as_slice());
    }

    // Multipart uploads: 12 MiB chunks in 5 MiB parts.
    let big_dest = Destination::from_url(&format!("s3://{BUCKET}/clusters/big"))
        .expect("dest")
        .with_options(WriteOptions {
            chunk_bytes: 12 * 1024 * 1024,
            multipart_threshold_bytes: 6 * 1024 * 1024,
            part_bytes: 5 * 1024 * 1024,
            ..small_chunks()
        })
        .expect("options");
    let big = snapshot_bytes(20 * 1024 * 1024 + 5, 51);
    let bm = fx
        .backup_to(&big_dest, &fx.meta, &big)
        .await
        .expect("multipart backup");
    assert_eq!(bm.chunks.len(), 2);
    let r = restore_backup(
        &big_dest,
        bm.backup_id,
        Opener::DomainKey(&fx.domain),
        None,
        &NoProgress,
    )
    .await
    .expect("restores the multipart backup");
    assert!(r.snapshot.as_slice() == big.as_slice());

    // A flipped byte in a chunk, changed through the S3 API, is refused by
    // verify and restore, naming the object.
    let chunk = dir.clone().join("chunk-000002");
    let good = raw
        .get(&chunk)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    let mut bad = good.to_vec();
    bad[100] ^= 1;
    raw.put(&chunk, PutPayload::from(bad)).await.expect("put");
    let object = format!("s3://{BUCKET}/clusters/a/{}/chunk-000002", m.backup_id);
    let err = verify_backup(&dest, m.backup_id, None, &NoProgress)
        .await
        .expect_err("verify accepted a changed chunk");
    assert!(matches!(err, BackupError::ChunkDamaged { .. }), "{err}");
    assert_eq!(err.object(), Some(object.as_str()));
    let err = restore_backup(
        &dest,
        m.backup_id,
        Opener::DomainKey(&fx.domain),
        None,
        &NoProgress,
    )
    .await
    .expect_err("restore accepted a changed chunk");
    assert_eq!(err.object(), Some(object.as_str()), "{err}");
    raw.put(&chunk, PutPayload::from(good))
        .await
        .expect("put back");

    // Keep-forever, retention and delete.
    let later = |ms: u64| hsm_backup::BackupMeta {
        created_at_ms: fx.meta.created_at_ms + ms,
        ..fx.meta
    };
    let second = fx
        .backup_to(&dest, &later(1000), &data)
        .await
        .expect("backup");
    let third = fx
        .backup_to(&dest, &later(2000), &data)
        .await
        .expect("backup");
    set_keep_forever(&dest, m.backup_id, true)
        .await
        .expect("marks");
    let report = apply_retention(&dest, &policy(&fx, 1, None, fx.meta.created_at_ms + 3000))
        .await
        .expect("retention");
    assert_eq!(report.deleted, vec![second.backup_id], "{report:?}");
    let left: Vec<_> = list_backups(&dest)
        .await
        .expect("lists")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec![third.backup_id, m.backup_id]);
    set_keep_forever(&dest, m.backup_id, false)
        .await
        .expect("clears");
    delete_backup(&dest, m.backup_id).await.expect("deletes");
    {
        use futures_util::TryStreamExt;
        let rest: Vec<_> = raw.list(Some(&dir)).try_collect().await.expect("raw list");
        assert!(rest.is_empty(), "objects left: {rest:?}");
    }
}
