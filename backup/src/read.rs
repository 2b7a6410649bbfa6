//! Reading a backup: verify its objects without decrypting, or restore the
//! snapshot with the domain key or a recovery key.

use ed25519_dalek::VerifyingKey;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::crypto::{self, BackupKey, ChunkPosition, CHUNK_HEADER_LEN, CHUNK_OVERHEAD, TAG_LEN};
use crate::destination::Destination;
use crate::error::BackupError;
use crate::keys::Opener;
use crate::manifest::{self, Manifest, WrappedKey, MAX_MANIFEST_BYTES};
use crate::progress::{Meter, Phase, Progress};
use hsm_proto::BackupId;

/// What [`verify_backup`] checked.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The verified manifest.
    pub manifest: Manifest,
    /// Chunk objects checked (all of them).
    pub chunks_checked: usize,
    /// Bytes of chunk objects read and hashed.
    pub object_bytes_checked: u64,
}

/// A restored snapshot and the manifest it came with.
pub struct Restored {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// The snapshot bytes (zeroized on drop).
    pub snapshot: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Restored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restored")
            .field("backup_id", &self.manifest.backup_id)
            .field("snapshot_len", &self.snapshot.len())
            .finish_non_exhaustive()
    }
}

/// Reads and checks a backup's manifest: present, well formed, signed by the
/// writer key it names, and (when `trusted` is given) that key is trusted.
///
/// # Errors
/// [`BackupError::NotFound`], [`BackupError::ManifestDamaged`],
/// [`BackupError::ManifestSignature`], [`BackupError::UntrustedSigner`],
/// or [`BackupError::Store`].
pub async fn read_manifest(
    dest: &Destination,
    id: BackupId,
    trusted: Option<&[VerifyingKey]>,
) -> Result<Manifest, BackupError> {
    let path = dest.manifest_path(id);
    let object = dest.object_url(&path);
    let bytes = dest
        .get(&path, None, MAX_MANIFEST_BYTES)
        .await?
        .ok_or_else(|| BackupError::NotFound {
            id,
            destination: dest.url(),
        })?;
    let manifest = manifest::decode_manifest(&bytes, &object, trusted)?;
    if manifest.backup_id != id {
        return Err(BackupError::ManifestDamaged {
            object,
            reason: format!("it names backup {}", manifest.backup_id),
        });
    }
    Ok(manifest)
}

/// Reads chunk `index` and checks its size and blake3 hash against the
/// manifest. Returns the object bytes.
async fn read_chunk(
    dest: &Destination,
    manifest: &Manifest,
    index: usize,
) -> Result<(String, Vec<u8>), BackupError> {
    let entry = &manifest.chunks[index];
    let path = dest.chunk_path(manifest.backup_id, index as u64);
    let object = dest.object_url(&path);
    let expected_len = u64::from(entry.plain_bytes) + CHUNK_OVERHEAD as u64;
    let bytes = dest
        .get(&path, Some(expected_len), expected_len)
        .await?
        .ok_or_else(|| BackupError::ObjectMissing {
            object: object.clone(),
        })?;
    if blake3::hash(&bytes).as_bytes() != &entry.object_hash {
        return Err(BackupError::ChunkDamaged {
            object,
            reason: "its blake3 hash differs from the manifest's".into(),
        });
    }
    Ok((object, bytes.to_vec()))
}

/// Checks a backup without decrypting anything: the manifest is present,
/// well formed and validly signed (by a trusted key when `trusted` is
/// given), and every chunk object it lists is present with the recorded
/// size and blake3 hash.
///
/// # Errors
/// The first problem found, naming the object: see [`read_manifest`], and
/// [`BackupError::ObjectMissing`] or [`BackupError::ChunkDamaged`] for a
/// chunk.
pub async fn verify_backup(
    dest: &Destination,
    id: BackupId,
    trusted: Option<&[VerifyingKey]>,
    progress: &dyn Progress,
) -> Result<VerifyReport, BackupError> {
    let manifest = read_manifest(dest, id, trusted).await?;
    let mut meter = Meter::new(progress, Phase::Verify, id, manifest.total_plain_bytes);
    let mut object_bytes = 0u64;
    for index in 0..manifest.chunks.len() {
        let (_, bytes) = read_chunk(dest, &manifest, index).await?;
        object_bytes += bytes.len() as u64;
        meter.advance(u64::from(manifest.chunks[index].plain_bytes));
    }
    meter.finish();
    tracing::info!(backup_id = %id, chunks = manifest.chunks.len(), "backup verified");
    Ok(VerifyReport {
        chunks_checked: manifest.chunks.len(),
        object_bytes_checked: object_bytes,
        manifest,
    })
}

/// Opens the backup key with `opener`.
fn open_backup_key(
    dest: &Destination,
    manifest: &Manifest,
    opener: Opener<'_>,
) -> Result<BackupKey, BackupError> {
    let object = dest.object_url(&dest.manifest_path(manifest.backup_id));
    let binding = manifest
        .binding()
        .map_err(|e| BackupError::Encode(e.to_string()))?;
    match opener {
        Opener::DomainKey(domain) => {
            let (nonce, ciphertext) = manifest
                .wrapped_keys
                .iter()
                .find_map(|w| match w {
                    WrappedKey::DomainKey { nonce, ciphertext } => Some((nonce, ciphertext)),
                    WrappedKey::RecoveryKey { .. } => None,
                })
                .ok_or_else(|| BackupError::NoKeyForDomainKey {
                    object: object.clone(),
                })?;
            crypto::unwrap_with_domain(domain, &binding, nonce, ciphertext).map_err(|reason| {
                BackupError::KeyUnwrap {
                    object,
                    opener: "the domain key".into(),
                    reason,
                }
            })
        }
        Opener::RecoveryKey(recovery) => {
            let fingerprint = recovery.public_key().fingerprint();
            let (ephemeral, nonce, ciphertext) = manifest
                .wrapped_keys
                .iter()
                .find_map(|w| match w {
                    WrappedKey::RecoveryKey {
                        fingerprint: f,
                        ephemeral_public,
                        nonce,
                        ciphertext,
                    } if *f == fingerprint.0 => Some((ephemeral_public, nonce, ciphertext)),
                    _ => None,
                })
                .ok_or_else(|| BackupError::NoKeyForRecoveryKey {
                    object: object.clone(),
                    fingerprint: fingerprint.to_string(),
                })?;
            crypto::unwrap_with_recovery(recovery, &binding, ephemeral, nonce, ciphertext).map_err(
                |reason| BackupError::KeyUnwrap {
                    object,
                    opener: format!("recovery key {fingerprint}"),
                    reason,
                },
            )
        }
    }
}

/// Where restored plaintext goes.
enum Sink<'a, W> {
    Memory(&'a mut Zeroizing<Vec<u8>>),
    Writer(&'a mut W),
}

async fn restore_into<W: AsyncWrite + Unpin>(
    dest: &Destination,
    manifest: &Manifest,
    opener: Opener<'_>,
    mut sink: Sink<'_, W>,
    progress: &dyn Progress,
) -> Result<(), BackupError> {
    let key = open_backup_key(dest, manifest, opener)?;
    let id = manifest.backup_id;
    let count = manifest.chunks.len() as u32;
    let mut meter = Meter::new(progress, Phase::Restore, id, manifest.total_plain_bytes);
    for index in 0..manifest.chunks.len() {
        let (object, bytes) = read_chunk(dest, manifest, index).await?;
        let mut bytes = Zeroizing::new(bytes);
        let pos = ChunkPosition {
            backup: id,
            cluster: manifest.cluster_id.0,
            index: index as u32,
            count,
        };
        crypto::open_chunk(&key, &pos, &mut bytes)
            .map_err(|()| BackupError::ChunkAuthentication { object })?;
        let plain = &bytes[CHUNK_HEADER_LEN..bytes.len() - TAG_LEN];
        match &mut sink {
            Sink::Memory(out) => out.extend_from_slice(plain),
            Sink::Writer(w) => w.write_all(plain).await.map_err(BackupError::Output)?,
        }
        meter.advance(plain.len() as u64);
    }
    if let Sink::Writer(w) = &mut sink {
        w.flush().await.map_err(BackupError::Output)?;
    }
    meter.finish();
    tracing::info!(backup_id = %id, applied_index = manifest.applied_index, "backup restored");
    Ok(())
}

/// Restores a backup's snapshot into memory. Every check of
/// [`verify_backup`] is made, the backup key is opened with `opener`, and
/// every chunk is decrypted and authenticated at its position; the bytes
/// are returned only if all of that succeeds.
///
/// When restoring with a recovery key, pass the cluster's node keys as
/// `trusted` where they are known: anyone who can write to the destination
/// can seal a backup to a recovery *public* key, so only the signature
/// tells whose backup it is.
///
/// # Errors
/// As [`verify_backup`], plus [`BackupError::NoKeyForDomainKey`],
/// [`BackupError::NoKeyForRecoveryKey`] or [`BackupError::KeyUnwrap`] when
/// `opener` does not open the backup key, [`BackupError::ChunkAuthentication`]
/// for a chunk that does not decrypt, and [`BackupError::OutOfMemory`].
pub async fn restore_backup(
    dest: &Destination,
    id: BackupId,
    opener: Opener<'_>,
    trusted: Option<&[VerifyingKey]>,
    progress: &dyn Progress,
) -> Result<Restored, BackupError> {
    let manifest = read_manifest(dest, id, trusted).await?;
    let total = manifest.total_plain_bytes;
    let mut snapshot = Zeroizing::new(Vec::new());
    // Reserve it all now: growing would free copies of plaintext unzeroized.
    let reserve = usize::try_from(total).map_err(|_| BackupError::OutOfMemory { bytes: total })?;
    snapshot
        .try_reserve_exact(reserve)
        .map_err(|_| BackupError::OutOfMemory { bytes: total })?;
    restore_into::<tokio::io::Sink>(
        dest,
        &manifest,
        opener,
        Sink::Memory(&mut snapshot),
        progress,
    )
    .await?;
    Ok(Restored { manifest, snapshot })
}

/// Restores a backup's snapshot into `out`, a chunk at a time, with the
/// checks of [`restore_backup`]. On error, what was already written to
/// `out` must be discarded: it is a prefix of the snapshot at best.
///
/// # Errors
/// As [`restore_backup`], plus [`BackupError::Output`] when `out` fails.
pub async fn restore_backup_to<W: AsyncWrite + Unpin>(
    dest: &Destination,
    id: BackupId,
    opener: Opener<'_>,
    trusted: Option<&[VerifyingKey]>,
    out: &mut W,
    progress: &dyn Progress,
) -> Result<Manifest, BackupError> {
    let manifest = read_manifest(dest, id, trusted).await?;
    restore_into(dest, &manifest, opener, Sink::Writer(out), progress).await?;
    Ok(manifest)
}
