//! Where backups go: an object store, a prefix in it, and how to write.
//!
//! Layout under the prefix: `<backup id>/chunk-000000` ... (the sealed
//! chunks), `<backup id>/manifest` (written last: a backup is listed only
//! once it is complete) and, when set, `<backup id>/keep-forever`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::BackupError;
use crate::manifest::{MAX_CHUNK_BYTES, MIN_CHUNK_BYTES};
use hsm_proto::BackupId;

/// Name of the manifest object in a backup's folder.
pub(crate) const MANIFEST_NAME: &str = "manifest";
/// Name of the keep-forever marker object in a backup's folder.
pub(crate) const KEEP_FOREVER_NAME: &str = "keep-forever";
/// Smallest multipart part S3 accepts (all but the last part).
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;

/// How backups are written.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Plaintext bytes per chunk (default 4 MiB).
    pub chunk_bytes: u32,
    /// Chunk objects larger than this go up as multipart uploads (default
    /// 16 MiB, so default chunks use one put).
    pub multipart_threshold_bytes: u64,
    /// Part size of a multipart upload (default 8 MiB, at least 5 MiB).
    pub part_bytes: u64,
    /// Tries per object put before the backup fails (default 4).
    pub put_attempts: u32,
    /// Wait before the first retry; doubled for each further one (default
    /// 250 ms).
    pub retry_backoff: Duration,
    /// Chunk uploads in flight at once (default 4).
    pub max_puts_in_flight: usize,
}

impl Default for WriteOptions {
    fn default() -> WriteOptions {
        WriteOptions {
            chunk_bytes: 4 * 1024 * 1024,
            multipart_threshold_bytes: 16 * 1024 * 1024,
            part_bytes: 8 * 1024 * 1024,
            put_attempts: 4,
            retry_backoff: Duration::from_millis(250),
            max_puts_in_flight: 4,
        }
    }
}

impl WriteOptions {
    fn check(&self) -> Result<(), BackupError> {
        let bad = |what: String| Err(BackupError::InvalidOptions(what));
        if !(MIN_CHUNK_BYTES..=MAX_CHUNK_BYTES).contains(&self.chunk_bytes) {
            return bad(format!(
                "chunk size {} is outside {MIN_CHUNK_BYTES}..={MAX_CHUNK_BYTES} bytes",
                self.chunk_bytes
            ));
        }
        if self.part_bytes < MIN_PART_BYTES || self.part_bytes > u64::from(MAX_CHUNK_BYTES) {
            return bad(format!(
                "part size {} is outside {MIN_PART_BYTES}..={MAX_CHUNK_BYTES} bytes",
                self.part_bytes
            ));
        }
        if self.put_attempts == 0 || self.put_attempts > 20 {
            return bad(format!("{} put attempts (1..=20)", self.put_attempts));
        }
        if self.max_puts_in_flight == 0 || self.max_puts_in_flight > 64 {
            return bad(format!(
                "{} puts in flight (1..=64)",
                self.max_puts_in_flight
            ));
        }
        Ok(())
    }
}

/// A place backups are written to and read from.
#[derive(Debug, Clone)]
pub struct Destination {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// The store's root as a URL, for naming objects in errors and logs.
    base_url: String,
    options: WriteOptions,
}

impl Destination {
    /// Opens a destination by URL:
    /// - `file:///absolute/dir`: a local directory (created, mode 0700, if
    ///   missing); files are synced before a put returns.
    /// - `s3://bucket/optional/prefix`: S3 or an S3-compatible server.
    ///   Credentials, region and endpoint come from the environment as the
    ///   AWS SDKs read them (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    ///   `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION`,
    ///   `AWS_ENDPOINT_URL`); an `http://` endpoint (a local server) is
    ///   allowed. Requests are path-style when an endpoint is set.
    ///
    /// # Errors
    /// [`BackupError::InvalidUrl`] for another scheme, a relative or empty
    /// path, or a store that cannot be set up.
    pub fn from_url(url: &str) -> Result<Destination, BackupError> {
        let bad = |reason: &str| BackupError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad("a file URL needs an absolute path: file:///dir"));
            }
            let dir = std::path::Path::new(path);
            create_private_dir(dir)
                .map_err(|e| bad(&format!("cannot create the directory: {e}")))?;
            let store = LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| bad(&e.to_string()))?
                .with_automatic_cleanup(true)
                .with_fsync(true);
            let base = format!("file://{}", path.trim_end_matches('/'));
            return Destination::from_store(Arc::new(store), "", &base);
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket: s3://bucket/prefix"));
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
                .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .ok();
            if let Some(endpoint) = endpoint {
                builder = builder
                    .with_endpoint(endpoint.trim_end_matches('/'))
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            let store = builder.build().map_err(|e| bad(&e.to_string()))?;
            return Destination::from_store(Arc::new(store), prefix, &format!("s3://{bucket}"));
        }
        Err(bad("expected file:///dir or s3://bucket/prefix"))
    }

    /// A destination on any object store, under `prefix` (`""` for the
    /// root). `base_url` names the store's root in errors and logs.
    ///
    /// # Errors
    /// [`BackupError::InvalidUrl`] if `prefix` is not a valid object path.
    pub fn from_store(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        base_url: &str,
    ) -> Result<Destination, BackupError> {
        let prefix =
            Path::parse(prefix.trim_matches('/')).map_err(|e| BackupError::InvalidUrl {
                url: format!("{base_url}/{prefix}"),
                reason: e.to_string(),
            })?;
        Ok(Destination {
            store,
            prefix,
            base_url: base_url.trim_end_matches('/').to_string(),
            options: WriteOptions::default(),
        })
    }

    /// The same destination writing with `options`.
    ///
    /// # Errors
    /// [`BackupError::InvalidOptions`] if a value is out of range.
    pub fn with_options(mut self, options: WriteOptions) -> Result<Destination, BackupError> {
        options.check()?;
        self.options = options;
        Ok(self)
    }

    /// The folder `name` under this destination, as a destination of its
    /// own (same store and options).
    ///
    /// # Errors
    /// [`BackupError::InvalidUrl`] if `name` is not a valid path part.
    pub fn child(&self, name: &str) -> Result<Destination, BackupError> {
        let part =
            object_store::path::PathPart::parse(name).map_err(|e| BackupError::InvalidUrl {
                url: format!("{}/{name}", self.url()),
                reason: e.to_string(),
            })?;
        Ok(Destination {
            store: self.store.clone(),
            prefix: self.prefix.clone().join(part),
            base_url: self.base_url.clone(),
            options: self.options.clone(),
        })
    }

    /// The write options in use.
    pub fn options(&self) -> &WriteOptions {
        &self.options
    }

    /// The destination as a URL (store root and prefix).
    pub fn url(&self) -> String {
        if self.prefix.as_ref().is_empty() {
            self.base_url.clone()
        } else {
            format!("{}/{}", self.base_url, self.prefix)
        }
    }

    pub(crate) fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// An object's full name as a URL, for messages.
    pub(crate) fn object_url(&self, path: &Path) -> String {
        format!("{}/{}", self.base_url, path)
    }

    pub(crate) fn backup_dir(&self, id: BackupId) -> Path {
        self.prefix.clone().join(id.to_string())
    }

    pub(crate) fn chunk_path(&self, id: BackupId, index: u64) -> Path {
        self.backup_dir(id).join(format!("chunk-{index:06}"))
    }

    pub(crate) fn manifest_path(&self, id: BackupId) -> Path {
        self.backup_dir(id).join(MANIFEST_NAME)
    }

    pub(crate) fn keep_forever_path(&self, id: BackupId) -> Path {
        self.backup_dir(id).join(KEEP_FOREVER_NAME)
    }

    fn store_error(
        &self,
        action: &'static str,
        path: &Path,
        source: object_store::Error,
    ) -> BackupError {
        BackupError::Store {
            action,
            object: self.object_url(path),
            source,
        }
    }

    /// Reads a whole object of at most `max_len` bytes (when given); `None`
    /// if it does not exist.
    pub(crate) async fn get(
        &self,
        path: &Path,
        expected_len: Option<u64>,
        max_len: u64,
    ) -> Result<Option<Bytes>, BackupError> {
        let result = match self.store.get(path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.store_error("get", path, e)),
        };
        let size = result.meta.size;
        if let Some(expected) = expected_len {
            if size != expected {
                return Err(BackupError::ChunkDamaged {
                    object: self.object_url(path),
                    reason: format!("{size} bytes, the manifest says {expected}"),
                });
            }
        }
        if size > max_len {
            return Err(BackupError::ManifestDamaged {
                object: self.object_url(path),
                reason: format!("{size} bytes, more than the {max_len} a manifest may have"),
            });
        }
        let bytes = result
            .bytes()
            .await
            .map_err(|e| self.store_error("get", path, e))?;
        if bytes.len() as u64 != size {
            return Err(BackupError::ChunkDamaged {
                object: self.object_url(path),
                reason: format!("read {} bytes of {size}", bytes.len()),
            });
        }
        Ok(Some(bytes))
    }

    /// Writes an object, as a multipart upload when it is over the
    /// threshold, retrying a failed put with backoff.
    pub(crate) async fn put(&self, path: &Path, data: Bytes) -> Result<(), BackupError> {
        let opts = &self.options;
        let mut backoff = opts.retry_backoff;
        let mut attempt = 1;
        loop {
            let result = if data.len() as u64 > opts.multipart_threshold_bytes {
                self.put_multipart(path, &data).await
            } else {
                self.store
                    .put(path, PutPayload::from(data.clone()))
                    .await
                    .map(|_| ())
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if attempt < opts.put_attempts => {
                    tracing::warn!(
                        object = %self.object_url(path),
                        attempt,
                        error = %e,
                        "backup object put failed; retrying"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                    attempt += 1;
                }
                Err(e) => return Err(self.store_error("put", path, e)),
            }
        }
    }

    async fn put_multipart(&self, path: &Path, data: &Bytes) -> object_store::Result<()> {
        let mut upload = self.store.put_multipart(path).await?;
        let part_bytes = usize::try_from(self.options.part_bytes).unwrap_or(usize::MAX);
        let mut start = 0;
        while start < data.len() {
            let end = data.len().min(start.saturating_add(part_bytes));
            if let Err(e) = upload
                .put_part(PutPayload::from(data.slice(start..end)))
                .await
            {
                // Best effort: the store drops abandoned parts itself too.
                let _ = upload.abort().await;
                return Err(e);
            }
            start = end;
        }
        match upload.complete().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }

    /// Whether an object exists.
    pub(crate) async fn exists(&self, path: &Path) -> Result<bool, BackupError> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.store_error("head", path, e)),
        }
    }

    /// Deletes an object; a missing object is not an error.
    pub(crate) async fn delete(&self, path: &Path) -> Result<(), BackupError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_error("delete", path, e)),
        }
    }

    /// Every object under `dir`.
    pub(crate) async fn list(
        &self,
        dir: &Path,
    ) -> Result<Vec<object_store::ObjectMeta>, BackupError> {
        use futures_util::TryStreamExt;
        let prefix = if dir.as_ref().is_empty() {
            None
        } else {
            Some(dir)
        };
        self.store
            .list(prefix)
            .try_collect()
            .await
            .map_err(|e| self.store_error("list", dir, e))
    }
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_or_refused_with_a_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("file://{}", dir.path().join("b").display());
        let d = Destination::from_url(&url).expect("file url");
        assert_eq!(d.url(), url);
        assert_eq!(
            d.object_url(&d.manifest_path(BackupId([0; 16]))),
            format!("{url}/{}/manifest", BackupId([0; 16]))
        );
        for bad in ["", "file://relative", "http://x", "s3://", "s3:///prefix"] {
            assert!(Destination::from_url(bad).is_err(), "{bad:?} accepted");
        }
        let s3 = Destination::from_url("s3://bucket/a/b/").expect("s3 url");
        assert_eq!(s3.url(), "s3://bucket/a/b");
        assert!(d
            .with_options(WriteOptions {
                chunk_bytes: 10,
                ..WriteOptions::default()
            })
            .is_err());
    }
}
