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

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hsm_backup::{
    apply_retention, delete_backup, list_backups, restore_backup, set_keep_forever, verify_backup,
    BackupError, Destination, NoProgress, Opener, WriteOptions,
};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

const BUCKET: &str = "hsm-backups";
const ACCESS_KEY: &str = "AKIDHSMTEST";
const SECRET_KEY: &str = "hsm-test-secret-key";

/// A server process, stopped (by its own handle) when dropped.
struct Server {
    child: Child,
    endpoint: String,
    name: &'static str,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn wait_until_listening(child: &mut Child, port: u16, name: &str) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{name} exited at start: {status}"));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{name} did not listen on {addr} within 30 s"))
}

fn s3s_fs_binary() -> Result<PathBuf, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3_server.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("path")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{script} path failed ({})", out.status));
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(PathBuf::from(path))
}

fn start_s3s_fs() -> Result<Server, String> {
    let bin = s3s_fs_binary()?;
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    // s3s-fs serves each directory under its root as a bucket.
    std::fs::create_dir(data.path().join(BUCKET)).map_err(|e| e.to_string())?;
    let port = free_port();
    let mut child = Command::new(&bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    wait_until_listening(&mut child, port, "s3s-fs")?;
    Ok(Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        name: "s3s-fs",
        _data: data,
    })
}

fn start_moto() -> Result<Server, String> {
    let port = free_port();
    let mut child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start moto_server: {e}"))?;
    wait_until_listening(&mut child, port, "moto_server")?;
    // moto takes any credentials and starts empty: create the bucket.
    let status = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            &format!("http://127.0.0.1:{port}/{BUCKET}"),
        ])
        .status()
        .map_err(|e| format!("cannot run curl to create the bucket: {e}"))?;
    if !status.success() {
        return Err(format!("creating the bucket on moto failed: {status}"));
    }
    Ok(Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        name: "moto",
        _data: tempfile::tempdir().map_err(|e| e.to_string())?,
    })
}

/// The server `HSM_TEST_S3_SERVER` names (`s3s-fs` or `moto`), else s3s-fs
/// and moto when s3s-fs cannot be had; `Err` with every reason when none
/// starts.
fn start_server() -> Result<Server, String> {
    match std::env::var("HSM_TEST_S3_SERVER").as_deref() {
        Ok("s3s-fs") => start_s3s_fs(),
        Ok("moto") => start_moto(),
        Ok(other) => Err(format!(
            "HSM_TEST_S3_SERVER={other:?}: expected s3s-fs or moto"
        )),
        Err(_) => match start_s3s_fs() {
            Ok(s) => Ok(s),
            Err(s3s) => start_moto().map_err(|moto| format!("s3s-fs: {s3s}; moto: {moto}")),
        },
    }
}

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
    let server = match start_server() {
        Ok(s) => s,
        Err(reason) if std::env::var_os("HSM_TEST_S3_SKIP").is_some() => {
            eprintln!("SKIPPED (HSM_TEST_S3_SKIP set): no S3-compatible server: {reason}");
            return;
        }
        Err(reason) => panic!(
            "no S3-compatible server could be started on loopback: {reason} \
             (set HSM_TEST_S3_SKIP=1 to skip this test explicitly)"
        ),
    };
    eprintln!("S3 server: {} at {}", server.name, server.endpoint);
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
    let report = apply_retention(&dest, 1, None, fx.meta.created_at_ms + 3000)
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
