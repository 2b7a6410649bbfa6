//! Writing a backup: read the snapshot a chunk at a time, seal each chunk
//! under a fresh backup key, upload it, and write the signed manifest last.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use hsm_proto::{ClusterId, NodeId};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::crypto::{self, BackupKey, ChunkPosition, CHUNK_HEADER_LEN};
use crate::destination::Destination;
use crate::error::BackupError;
use crate::keys::{BackupDomainKey, RecoveryPublicKey};
use crate::manifest::{self, ChunkEntry, Manifest, WrappedKey, FORMAT_VERSION, MAX_CHUNKS};
use crate::progress::{Meter, Phase, Progress};
use hsm_proto::BackupId;

/// What the node says about the state it backs up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupMeta {
    /// The cluster.
    pub cluster_id: ClusterId,
    /// The applied log index of the snapshot.
    pub applied_index: u64,
    /// The term of that log entry.
    pub term: u64,
    /// When the backup is taken, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The node writing (and signing) the backup.
    pub node_id: NodeId,
}

/// The snapshot to back up: a reader and exactly how many bytes it gives.
/// The length is bound into every chunk, so it must be known up front.
#[derive(Debug)]
pub struct SnapshotSource<R> {
    /// Gives the snapshot bytes.
    pub reader: R,
    /// How many bytes `reader` gives.
    pub len: u64,
}

impl<'a> SnapshotSource<&'a [u8]> {
    /// A snapshot already in memory (read in place, not copied).
    pub fn from_bytes(bytes: &'a [u8]) -> SnapshotSource<&'a [u8]> {
        SnapshotSource {
            reader: bytes,
            len: bytes.len() as u64,
        }
    }
}

/// The keys a backup is written with.
#[derive(Debug, Clone, Copy)]
pub struct BackupKeys<'a> {
    /// The cluster domain key: the backup key is wrapped under it.
    pub domain_key: &'a BackupDomainKey,
    /// Recovery public keys: the backup key is wrapped for each.
    pub recovery_keys: &'a [RecoveryPublicKey],
    /// The writing node's ed25519 key, which signs the manifest.
    pub signer: &'a SigningKey,
}

/// Writes a backup of `snapshot` to `dest` and returns its manifest.
///
/// Chunks of [`WriteOptions::chunk_bytes`](crate::WriteOptions) are read,
/// sealed and uploaded (a few at a time, each put retried); only one
/// chunk's plaintext per upload in flight is held. The manifest is written
/// last, so the backup is listed only once every chunk is stored. On
/// failure the objects written so far are removed (best effort) and the
/// backup is never listed.
///
/// # Errors
/// [`BackupError::Snapshot`] if the reader fails or gives more or fewer
/// than `snapshot.len` bytes; [`BackupError::TooLarge`] for a snapshot over
/// [`MAX_CHUNKS`] chunks; [`BackupError::WeakRecoveryKey`] for a low-order
/// recovery key; [`BackupError::Store`] when a put fails after its retries.
pub async fn write_backup<R: AsyncRead + Unpin + Send>(
    dest: &Destination,
    meta: &BackupMeta,
    snapshot: SnapshotSource<R>,
    keys: &BackupKeys<'_>,
    progress: &dyn Progress,
) -> Result<Manifest, BackupError> {
    let id = new_backup_id();
    tracing::info!(
        backup_id = %id,
        destination = %dest.url(),
        applied_index = meta.applied_index,
        term = meta.term,
        snapshot_bytes = snapshot.len,
        "backup started"
    );
    let manifest = write_backup_as(dest, id, meta, snapshot, keys, progress).await?;
    tracing::info!(
        backup_id = %id,
        applied_index = manifest.applied_index,
        stored_bytes = manifest.stored_bytes(),
        "backup written"
    );
    Ok(manifest)
}

/// [`write_backup`] under the id `id` (an audit segment's names its range).
pub(crate) async fn write_backup_as<R: AsyncRead + Unpin + Send>(
    dest: &Destination,
    id: BackupId,
    meta: &BackupMeta,
    snapshot: SnapshotSource<R>,
    keys: &BackupKeys<'_>,
    progress: &dyn Progress,
) -> Result<Manifest, BackupError> {
    let chunk_bytes = dest.options().chunk_bytes;
    let count = Manifest::chunk_count(snapshot.len, chunk_bytes);
    if count > MAX_CHUNKS {
        return Err(BackupError::TooLarge {
            len: snapshot.len,
            chunks: count,
            chunk_bytes,
            max: MAX_CHUNKS,
        });
    }
    let span = tracing::info_span!("backup", backup_id = %id, destination = %dest.url());
    async move {
        tracing::debug!(
            applied_index = meta.applied_index,
            snapshot_bytes = snapshot.len,
            chunks = count,
            "writing objects"
        );
        let mut uploads = JoinSet::new();
        let result = write_objects(dest, id, meta, snapshot, keys, progress, &mut uploads).await;
        if result.is_err() {
            // Let puts in flight end before cleaning up, so none lands after.
            while uploads.join_next().await.is_some() {}
        }
        match result {
            Ok(manifest) => {
                tracing::debug!(stored_bytes = manifest.stored_bytes(), "objects written");
                Ok(manifest)
            }
            Err(e) => {
                tracing::warn!(error = %e, "writing failed; removing its objects");
                remove_partial(dest, id).await;
                Err(e)
            }
        }
    }
    .instrument(span)
    .await
}

async fn write_objects<R: AsyncRead + Unpin + Send>(
    dest: &Destination,
    id: BackupId,
    meta: &BackupMeta,
    mut snapshot: SnapshotSource<R>,
    keys: &BackupKeys<'_>,
    progress: &dyn Progress,
    uploads: &mut JoinSet<Result<u64, BackupError>>,
) -> Result<Manifest, BackupError> {
    let chunk_bytes = dest.options().chunk_bytes;
    let count = Manifest::chunk_count(snapshot.len, chunk_bytes);
    // `count` is at most MAX_CHUNKS, checked by the caller.
    let count_u32 =
        u32::try_from(count).map_err(|_| BackupError::Snapshot("too many chunks".into()))?;
    let backup_key = Arc::new(BackupKey::generate());
    let mut meter = Meter::new(progress, Phase::Backup, id, snapshot.len);
    let mut chunks = Vec::with_capacity(count as usize);

    for index in 0..count_u32 {
        let offset = u64::from(index) * u64::from(chunk_bytes);
        let plain_len = (snapshot.len - offset).min(u64::from(chunk_bytes)) as usize;
        let mut buf = crypto::chunk_buffer(plain_len);
        snapshot
            .reader
            .read_exact(&mut buf[CHUNK_HEADER_LEN..])
            .await
            .map_err(|e| {
                BackupError::Snapshot(format!(
                    "reading bytes {offset}..{} of {}: {e}",
                    offset + plain_len as u64,
                    snapshot.len
                ))
            })?;
        let pos = ChunkPosition {
            backup: id,
            cluster: meta.cluster_id.0,
            index,
            count: count_u32,
        };
        let key = Arc::clone(&backup_key);
        let (object, object_hash) = tokio::task::spawn_blocking(move || {
            crypto::seal_chunk(&key, &pos, &mut buf);
            // The buffer now holds only ciphertext: hand it over unzeroized.
            let object = std::mem::take(&mut *buf);
            let hash = *blake3::hash(&object).as_bytes();
            (object, hash)
        })
        .await
        .map_err(|e| BackupError::Task(e.to_string()))?;
        chunks.push(ChunkEntry {
            plain_bytes: plain_len as u32,
            object_hash,
        });

        while uploads.len() >= dest.options().max_puts_in_flight {
            meter.advance(join_one(uploads).await?);
        }
        let d = dest.clone();
        let path = dest.chunk_path(id, u64::from(index));
        uploads.spawn(async move {
            d.put(&path, object.into()).await?;
            Ok(plain_len as u64)
        });
    }
    let mut extra = [0u8; 1];
    let more = snapshot
        .reader
        .read(&mut extra)
        .await
        .map_err(|e| BackupError::Snapshot(format!("reading past the end: {e}")))?;
    if more != 0 {
        return Err(BackupError::Snapshot(format!(
            "the reader gives more than the {} bytes announced",
            snapshot.len
        )));
    }
    while !uploads.is_empty() {
        meter.advance(join_one(uploads).await?);
    }

    let manifest = seal_manifest(
        id,
        meta,
        chunk_bytes,
        snapshot.len,
        chunks,
        keys,
        &backup_key,
    )?;
    let bytes = manifest::encode_manifest(&manifest, keys.signer)
        .map_err(|e| BackupError::Encode(e.to_string()))?;
    dest.put(&dest.manifest_path(id), bytes.into()).await?;
    meter.finish();
    Ok(manifest)
}

/// Waits for one upload.
async fn join_one(uploads: &mut JoinSet<Result<u64, BackupError>>) -> Result<u64, BackupError> {
    match uploads.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(BackupError::Task(e.to_string())),
        None => Ok(0),
    }
}

/// Builds the manifest and wraps the backup key for every opener.
fn seal_manifest(
    id: BackupId,
    meta: &BackupMeta,
    chunk_bytes: u32,
    total: u64,
    chunks: Vec<ChunkEntry>,
    keys: &BackupKeys<'_>,
    backup_key: &BackupKey,
) -> Result<Manifest, BackupError> {
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        backup_id: id,
        cluster_id: meta.cluster_id,
        applied_index: meta.applied_index,
        term: meta.term,
        created_at_ms: meta.created_at_ms,
        writer_node_id: meta.node_id,
        writer_public_key: keys.signer.verifying_key().to_bytes(),
        chunk_bytes,
        total_plain_bytes: total,
        chunks,
        wrapped_keys: Vec::new(),
    };
    let binding = manifest
        .binding()
        .map_err(|e| BackupError::Encode(e.to_string()))?;
    let (nonce, ciphertext) = crypto::wrap_for_domain(keys.domain_key, &binding, backup_key);
    manifest
        .wrapped_keys
        .push(WrappedKey::DomainKey { nonce, ciphertext });
    for recipient in keys.recovery_keys {
        let w = crypto::wrap_for_recovery(recipient, &binding, backup_key).ok_or_else(|| {
            BackupError::WeakRecoveryKey {
                fingerprint: recipient.fingerprint().to_string(),
            }
        })?;
        manifest.wrapped_keys.push(WrappedKey::RecoveryKey {
            fingerprint: w.fingerprint.0,
            ephemeral_public: w.ephemeral_public,
            nonce: w.nonce,
            ciphertext: w.ciphertext,
        });
    }
    if manifest.wrapped_keys.len() > manifest::MAX_WRAPPED_KEYS {
        return Err(BackupError::InvalidOptions(format!(
            "{} recovery keys; at most {} are allowed",
            keys.recovery_keys.len(),
            manifest::MAX_WRAPPED_KEYS - 1
        )));
    }
    Ok(manifest)
}

/// Removes what a failed backup wrote. The manifest goes first: if its put
/// failed after the store took it, the backup could be listed; only once it
/// is surely gone are the chunks removed. Best effort: what remains is not
/// listed, and `delete_backup` removes it.
async fn remove_partial(dest: &Destination, id: BackupId) {
    if let Err(e) = dest.delete(&dest.manifest_path(id)).await {
        tracing::warn!(error = %e, "cannot remove the manifest of a failed backup; leaving its chunks");
        return;
    }
    let objects = match dest.list(&dest.backup_dir(id)).await {
        Ok(objects) => objects,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the objects of a failed backup");
            return;
        }
    };
    for object in objects {
        if let Err(e) = dest.delete(&object.location).await {
            tracing::warn!(error = %e, "cannot remove an object of a failed backup");
        }
    }
}

/// A fresh random backup id from the operating system's generator.
fn new_backup_id() -> BackupId {
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    BackupId(id)
}
