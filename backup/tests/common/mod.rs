//! Shared test setup: keys, snapshot bytes with known secrets in them, a
//! backup destination in a temporary directory, and an object store wrapper
//! that fails chosen puts.
#![allow(dead_code)]

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use futures_util::stream::BoxStream;
use hsm_backup::{
    write_backup, BackupDomainKey, BackupKeys, BackupMeta, Destination, Manifest, NoProgress,
    RecoveryKey, RecoveryPublicKey, SnapshotSource, WriteOptions,
};
use hsm_proto::{ClusterId, NodeId};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use rand::{Rng, RngCore, SeedableRng};
use zeroize::Zeroizing;

/// A distinctive 32-byte "key": no run of it occurs by chance.
pub const KNOWN_KEY: [u8; 32] = [
    0x8e, 0x21, 0xf3, 0x5a, 0x07, 0xc4, 0x9d, 0x62, 0xb8, 0x13, 0xe7, 0x4f, 0x30, 0xa9, 0x56, 0xdb,
    0x1c, 0x75, 0xfa, 0x88, 0x03, 0x6e, 0xc1, 0x94, 0x2b, 0xd0, 0x47, 0xbe, 0x69, 0x15, 0xe2, 0x7d,
];
/// A distinctive password.
pub const KNOWN_PASSWORD: &[u8] = b"Tr0ub4dor&3-correct-horse-battery";

/// Small chunks, so a few hundred KiB make several chunks; quick retries.
pub fn small_chunks() -> WriteOptions {
    WriteOptions {
        chunk_bytes: 64 * 1024,
        retry_backoff: Duration::from_millis(5),
        ..WriteOptions::default()
    }
}

/// `len` bytes that start like a snapshot, are otherwise random (from
/// `seed`), and hold the known key and password at several places,
/// including across chunk boundaries of [`small_chunks`].
pub fn snapshot_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = vec![0u8; len];
    rng.fill_bytes(&mut out);
    out[..8].copy_from_slice(b"HSMSNAP1");
    let chunk = 64 * 1024;
    let mut places = vec![100, chunk - 10, 2 * chunk - 20, len / 2];
    places.extend((0..4).map(|_| rng.gen_range(0..len - 64)));
    for (i, at) in places.into_iter().enumerate() {
        if at + 64 > len {
            continue;
        }
        if i % 2 == 0 {
            out[at..at + 32].copy_from_slice(&KNOWN_KEY);
        } else {
            out[at..at + KNOWN_PASSWORD.len()].copy_from_slice(KNOWN_PASSWORD);
        }
    }
    out
}

/// A cluster's keys and a destination in a temporary directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub dest: Destination,
    pub domain: BackupDomainKey,
    pub recovery: RecoveryKey,
    pub signer: SigningKey,
    /// The signer's public key: the one writer retention trusts.
    pub trusted: [[u8; 32]; 1],
    pub meta: BackupMeta,
}

/// Retention of `fx`'s cluster trusting `fx`'s signer, with a 5-minute
/// clock skew.
pub fn policy(
    fx: &Fixture,
    keep_last: usize,
    max_age: Option<std::time::Duration>,
    now_ms: u64,
) -> hsm_backup::RetentionPolicy<'_> {
    hsm_backup::RetentionPolicy {
        cluster: fx.meta.cluster_id,
        trusted_writers: &fx.trusted,
        keep_last,
        max_age,
        now_ms,
        clock_skew: std::time::Duration::from_secs(300),
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("backups");
        let signer = SigningKey::generate(&mut rand::rngs::OsRng);
        let url = format!("file://{}", root.display());
        let dest = Destination::from_url(&url)
            .expect("file destination")
            .with_options(small_chunks())
            .expect("options");
        Fixture {
            dir,
            root,
            dest,
            domain: BackupDomainKey::new(Zeroizing::new(rand::random())),
            recovery: RecoveryKey::generate(),
            signer: signer.clone(),
            trusted: [signer.verifying_key().to_bytes()],
            meta: BackupMeta {
                cluster_id: ClusterId(rand::random()),
                applied_index: 1234,
                term: 7,
                created_at_ms: 1_800_000_000_000,
                node_id: NodeId(2),
            },
        }
    }

    pub fn recovery_keys(&self) -> Vec<RecoveryPublicKey> {
        vec![self.recovery.public_key()]
    }

    /// Writes a backup of `data` to `dest` with this fixture's keys.
    pub async fn backup_to(
        &self,
        dest: &Destination,
        meta: &BackupMeta,
        data: &[u8],
    ) -> Result<Manifest, hsm_backup::BackupError> {
        let recovery = self.recovery_keys();
        let keys = BackupKeys {
            domain_key: &self.domain,
            recovery_keys: &recovery,
            signer: &self.signer,
        };
        write_backup(
            dest,
            meta,
            SnapshotSource::from_bytes(data),
            &keys,
            &NoProgress,
        )
        .await
    }

    pub async fn backup(&self, data: &[u8]) -> Manifest {
        self.backup_to(&self.dest, &self.meta, data)
            .await
            .expect("backup written")
    }

    /// The folder of a backup's objects.
    pub fn backup_dir(&self, m: &Manifest) -> PathBuf {
        self.root.join(m.backup_id.to_string())
    }
}

/// Every regular file under `dir`, with its bytes, in name order.
pub fn files_under(dir: &FsPath) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let path = e.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

/// Flips one bit of the byte at `at` in a file.
pub fn flip_byte(path: &FsPath, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).expect("write");
}

/// Picks the puts to fail: put number (from 0) and object.
pub type FailPut = dyn Fn(usize, &Path) -> bool + Send + Sync;

/// Wraps an object store and fails each put (single or multipart) whose
/// number (from 0) and object `fail` picks, or, from put `hang_from` on, never answers.
pub struct FlakyStore {
    pub inner: Arc<dyn ObjectStore>,
    /// Puts started.
    pub puts: AtomicUsize,
    /// Single puts the inner store completed.
    pub stored: AtomicUsize,
    pub fail: Box<FailPut>,
    pub hang_from: Option<usize>,
}

impl FlakyStore {
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        fail: impl Fn(usize, &Path) -> bool + Send + Sync + 'static,
    ) -> FlakyStore {
        FlakyStore {
            inner,
            puts: AtomicUsize::new(0),
            stored: AtomicUsize::new(0),
            fail: Box::new(fail),
            hang_from: None,
        }
    }

    async fn next_put(&self, location: &Path) -> object_store::Result<()> {
        let n = self.puts.fetch_add(1, Ordering::SeqCst);
        if self.hang_from.is_some_and(|from| n >= from) {
            std::future::pending::<()>().await;
        }
        if (self.fail)(n, location) {
            return Err(object_store::Error::Generic {
                store: "FlakyStore",
                source: format!("put {n} of {location} failed on purpose").into(),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for FlakyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlakyStore({:?})", self.inner)
    }
}

impl fmt::Display for FlakyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlakyStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FlakyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.next_put(location).await?;
        let r = self.inner.put_opts(location, payload, opts).await;
        self.stored.fetch_add(1, Ordering::SeqCst);
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.next_put(location).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
