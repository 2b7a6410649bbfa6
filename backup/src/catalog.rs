//! Managing the backups at a destination: list, describe, delete, the
//! keep-forever mark, and retention.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use hsm_proto::{ClusterId, NodeId};

use crate::destination::{Destination, KEEP_FOREVER_NAME, MANIFEST_NAME};
use crate::error::BackupError;
use crate::manifest::Manifest;
use crate::read::read_manifest;
use hsm_proto::BackupId;

/// A listed backup, from its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupDetails {
    /// The cluster.
    pub cluster_id: ClusterId,
    /// Applied log index of the state.
    pub applied_index: u64,
    /// Term of that entry.
    pub term: u64,
    /// When it was taken, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The node that wrote it.
    pub writer_node_id: NodeId,
    /// That node's ed25519 public key (the manifest is signed with it).
    pub writer_public_key: [u8; 32],
    /// Snapshot bytes.
    pub total_plain_bytes: u64,
    /// Bytes of its chunk objects.
    pub stored_bytes: u64,
    /// Number of chunks.
    pub chunk_count: usize,
    /// Recovery keys it can be opened with (besides the domain key).
    pub recovery_key_count: usize,
}

impl From<&Manifest> for BackupDetails {
    fn from(m: &Manifest) -> BackupDetails {
        BackupDetails {
            cluster_id: m.cluster_id,
            applied_index: m.applied_index,
            term: m.term,
            created_at_ms: m.created_at_ms,
            writer_node_id: m.writer_node_id,
            writer_public_key: m.writer_public_key,
            total_plain_bytes: m.total_plain_bytes,
            stored_bytes: m.stored_bytes(),
            chunk_count: m.chunks.len(),
            recovery_key_count: m.recovery_fingerprints().len(),
        }
    }
}

/// One backup as [`list_backups`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// The backup.
    pub id: BackupId,
    /// Whether it is marked keep-forever.
    pub keep_forever: bool,
    /// What its manifest says, when the manifest reads and its signature
    /// verifies under the key it names (trust is not checked here).
    pub details: Option<BackupDetails>,
    /// Why there are no details.
    pub problem: Option<String>,
    /// Chunk objects its manifest lists that are missing at the
    /// destination or not of the size the manifest implies (0 when the
    /// manifest does not read). A backup with any is not restorable, and
    /// retention does not count it.
    pub incomplete_chunks: usize,
}

/// A backup with its manifest and mark, as [`describe_backup`] shows it.
#[derive(Debug, Clone)]
pub struct BackupDescription {
    /// The manifest (signature checked against the key it names).
    pub manifest: Manifest,
    /// Whether it is marked keep-forever.
    pub keep_forever: bool,
}

/// What is stored for each backup folder under the prefix.
#[derive(Default)]
struct Folder {
    manifest: bool,
    keep_forever: bool,
    /// Size of each chunk object, by chunk number.
    chunks: BTreeMap<u64, u64>,
}

async fn folders(dest: &Destination) -> Result<BTreeMap<BackupId, Folder>, BackupError> {
    let mut out: BTreeMap<BackupId, Folder> = BTreeMap::new();
    for meta in dest.list(dest.prefix()).await? {
        let Some(parts) = meta.location.prefix_match(dest.prefix()) else {
            continue;
        };
        let parts: Vec<_> = parts.collect();
        let [dir, name] = parts.as_slice() else {
            continue;
        };
        let Ok(id) = dir.as_ref().parse::<BackupId>() else {
            continue;
        };
        let folder = out.entry(id).or_default();
        match name.as_ref() {
            MANIFEST_NAME => folder.manifest = true,
            KEEP_FOREVER_NAME => folder.keep_forever = true,
            other => {
                if let Some(n) = other
                    .strip_prefix("chunk-")
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    folder.chunks.insert(n, meta.size);
                }
            }
        }
    }
    Ok(out)
}

/// Lists the complete backups (those with a manifest), newest first;
/// backups whose manifest does not read are last, with the problem.
///
/// # Errors
/// [`BackupError::Store`] if the destination cannot be listed.
pub async fn list_backups(dest: &Destination) -> Result<Vec<BackupSummary>, BackupError> {
    let mut out = Vec::new();
    for (id, folder) in folders(dest).await? {
        if !folder.manifest {
            continue;
        }
        let (details, problem, incomplete_chunks) = match read_manifest(dest, id, None).await {
            Ok(m) => {
                let incomplete = m
                    .chunks
                    .iter()
                    .enumerate()
                    .filter(|(i, c)| {
                        let expected = u64::from(c.plain_bytes) + crate::CHUNK_OVERHEAD as u64;
                        folder.chunks.get(&(*i as u64)) != Some(&expected)
                    })
                    .count();
                (Some(BackupDetails::from(&m)), None, incomplete)
            }
            // Removed between the listing and the read: no longer listed.
            Err(BackupError::NotFound { .. }) => continue,
            Err(e) => (None, Some(e.to_string()), 0),
        };
        out.push(BackupSummary {
            id,
            keep_forever: folder.keep_forever,
            details,
            problem,
            incomplete_chunks,
        });
    }
    out.sort_by(|a, b| {
        let key = |s: &BackupSummary| {
            s.details
                .as_ref()
                .map(|d| (d.created_at_ms, d.applied_index))
        };
        key(b).cmp(&key(a)).then(a.id.cmp(&b.id))
    });
    Ok(out)
}

/// Backup folders without a manifest: failed or unfinished backups. They
/// are never listed; [`delete_backup`] removes one.
///
/// # Errors
/// [`BackupError::Store`] if the destination cannot be listed.
pub async fn list_incomplete(dest: &Destination) -> Result<Vec<BackupId>, BackupError> {
    Ok(folders(dest)
        .await?
        .into_iter()
        .filter(|(_, f)| !f.manifest)
        .map(|(id, _)| id)
        .collect())
}

/// A backup's manifest and keep-forever mark.
///
/// # Errors
/// As [`read_manifest`](crate::read_manifest) with no trusted keys.
pub async fn describe_backup(
    dest: &Destination,
    id: BackupId,
) -> Result<BackupDescription, BackupError> {
    let manifest = read_manifest(dest, id, None).await?;
    let keep_forever = dest.exists(&dest.keep_forever_path(id)).await?;
    Ok(BackupDescription {
        manifest,
        keep_forever,
    })
}

/// Deletes a backup: the manifest first (so it is no longer listed), then
/// its chunks. Also removes the folder of an incomplete backup.
///
/// # Errors
/// [`BackupError::KeepForever`] if it is marked keep-forever;
/// [`BackupError::NotFound`] if nothing of it is stored;
/// [`BackupError::Store`] if an object cannot be removed (what remains is
/// no longer listed once the manifest is gone; deleting again finishes).
pub async fn delete_backup(dest: &Destination, id: BackupId) -> Result<(), BackupError> {
    let dir = dest.backup_dir(id);
    let objects = dest.list(&dir).await?;
    if objects.is_empty() {
        return Err(BackupError::NotFound {
            id,
            destination: dest.url(),
        });
    }
    let marker = dest.keep_forever_path(id);
    if objects.iter().any(|o| o.location == marker) {
        return Err(BackupError::KeepForever { id });
    }
    let manifest = dest.manifest_path(id);
    dest.delete(&manifest).await?;
    for o in objects.iter().filter(|o| o.location != manifest) {
        dest.delete(&o.location).await?;
    }
    tracing::info!(backup_id = %id, objects = objects.len(), "backup deleted");
    Ok(())
}

/// Marks a backup keep-forever (a small `keep-forever` object beside its
/// manifest), or clears the mark. Retention never deletes a marked backup,
/// and [`delete_backup`] refuses to.
///
/// # Errors
/// [`BackupError::NotFound`] if the backup is not listed;
/// [`BackupError::Store`] if the mark cannot be written or removed.
pub async fn set_keep_forever(
    dest: &Destination,
    id: BackupId,
    keep: bool,
) -> Result<(), BackupError> {
    let marker = dest.keep_forever_path(id);
    if keep {
        if !dest.exists(&dest.manifest_path(id)).await? {
            return Err(BackupError::NotFound {
                id,
                destination: dest.url(),
            });
        }
        dest.put(&marker, Bytes::from_static(b"keep-forever\n"))
            .await?;
    } else {
        dest.delete(&marker).await?;
    }
    tracing::info!(backup_id = %id, keep_forever = keep, "backup keep-forever mark set");
    Ok(())
}

/// What [`apply_retention`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Backups kept, newest first.
    pub kept: Vec<BackupId>,
    /// Backups deleted.
    pub deleted: Vec<BackupId>,
    /// Backups left alone because their manifest does not read, with why.
    pub unreadable: Vec<(BackupId, String)>,
    /// Backups that should have gone but could not be deleted, with why.
    pub failed: Vec<(BackupId, String)>,
    /// Backups of other clusters under the prefix, left alone.
    pub other_clusters: Vec<BackupId>,
    /// Backups of this cluster id that retention does not believe, left
    /// alone and not counted: signed by a key that is no trusted writer
    /// (a forged manifest, or a member since removed), dated further in
    /// the future than the clock skew allows, or missing chunk objects (not
    /// restorable). With why.
    pub untrusted: Vec<(BackupId, String)>,
}

/// What retention keeps, and whose backups it counts.
#[derive(Debug, Clone)]
pub struct RetentionPolicy<'a> {
    /// The cluster whose backups it manages.
    pub cluster: ClusterId,
    /// The ed25519 keys whose backups count (the cluster's members): a
    /// backup another key signed is never deleted and never pushes a
    /// genuine one out.
    pub trusted_writers: &'a [[u8; 32]],
    /// How many of the newest backups to keep.
    pub keep_last: usize,
    /// Delete backups older than this, when given.
    pub max_age: Option<Duration>,
    /// Now, ms since the Unix epoch.
    pub now_ms: u64,
    /// How far in the future a backup's time may lie and still count.
    pub clock_skew: Duration,
}

/// Which of `backups` (newest first: `(id, created_at_ms, keep_forever)`)
/// retention deletes: those beyond the newest `keep_last` or older than
/// `max_age` at `now_ms`, except the newest and those marked keep-forever.
pub fn retention_victims(
    backups: &[(BackupId, u64, bool)],
    keep_last: usize,
    max_age: Option<Duration>,
    now_ms: u64,
) -> BTreeSet<BackupId> {
    let max_age_ms = max_age.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    backups
        .iter()
        .enumerate()
        .filter(|(rank, (_, created_at_ms, keep_forever))| {
            let too_many = *rank >= keep_last;
            let too_old = max_age_ms.is_some_and(|max| now_ms.saturating_sub(*created_at_ms) > max);
            *rank > 0 && !keep_forever && (too_many || too_old)
        })
        .map(|(_, (id, _, _))| *id)
        .collect()
}

/// Applies `policy` to the listed backups of its cluster: keeps the newest
/// `keep_last` and, when `max_age` is given, deletes those older than it.
/// Only backups a trusted writer signed, dated no further in the future
/// than the clock skew, are counted and may be deleted: a forged manifest
/// (anyone who can write to the destination can sign one for this cluster
/// id), dated in the future to rank first, never makes retention delete a
/// genuine backup. The newest backup and backups marked keep-forever are
/// never deleted, nor are backups whose manifest does not read, backups of
/// other clusters, or untrusted ones (each is reported). Incomplete
/// backups (no manifest) are not touched: one may be in progress.
///
/// # Errors
/// [`BackupError::Store`] if the destination cannot be listed; a backup
/// that cannot be deleted is reported in `failed` instead.
pub async fn apply_retention(
    dest: &Destination,
    policy: &RetentionPolicy<'_>,
) -> Result<RetentionReport, BackupError> {
    let mut report = RetentionReport::default();
    let mut readable = Vec::new();
    let latest_ms = policy
        .now_ms
        .saturating_add(u64::try_from(policy.clock_skew.as_millis()).unwrap_or(u64::MAX));
    for s in list_backups(dest).await? {
        match (&s.details, s.problem) {
            (Some(d), _) if d.cluster_id != policy.cluster => report.other_clusters.push(s.id),
            (Some(d), _) if !policy.trusted_writers.contains(&d.writer_public_key) => {
                report.untrusted.push((
                    s.id,
                    format!(
                        "signed by {}, which is not a member's key",
                        hex::encode(d.writer_public_key)
                    ),
                ));
            }
            (Some(_), _) if s.incomplete_chunks > 0 => report.untrusted.push((
                s.id,
                format!(
                    "{} chunk objects missing or of the wrong size: not restorable",
                    s.incomplete_chunks
                ),
            )),
            (Some(d), _) if d.created_at_ms > latest_ms => report.untrusted.push((
                s.id,
                format!(
                    "dated {} ms, later than now ({} ms) and the allowed clock skew",
                    d.created_at_ms, policy.now_ms
                ),
            )),
            (Some(d), _) => readable.push((s.id, d.created_at_ms, s.keep_forever)),
            (None, problem) => report.unreadable.push((s.id, problem.unwrap_or_default())),
        }
    }
    let (keep_last, max_age, now_ms) = (policy.keep_last, policy.max_age, policy.now_ms);
    let victims = retention_victims(&readable, keep_last, max_age, now_ms);
    for (id, _, _) in readable {
        if !victims.contains(&id) {
            report.kept.push(id);
            continue;
        }
        match delete_backup(dest, id).await {
            Ok(()) => report.deleted.push(id),
            Err(e) => {
                tracing::warn!(backup_id = %id, error = %e, "retention could not delete a backup");
                report.failed.push((id, e.to_string()));
            }
        }
    }
    tracing::info!(
        kept = report.kept.len(),
        deleted = report.deleted.len(),
        unreadable = report.unreadable.len(),
        failed = report.failed.len(),
        untrusted = report.untrusted.len(),
        "retention applied"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BackupId {
        BackupId([n; 16])
    }

    #[test]
    fn retention_keeps_the_newest_the_marked_and_the_young() {
        const DAY: u64 = 86_400_000;
        let now = 100 * DAY;
        // Newest first, one a day.
        let backups: Vec<_> = (0..10u8)
            .map(|n| (id(n), now - u64::from(n) * DAY, n == 7))
            .collect();
        let gone = retention_victims(&backups, 3, None, now);
        assert_eq!(gone, [3, 4, 5, 6, 8, 9].into_iter().map(id).collect());
        let gone = retention_victims(&backups, 10, Some(Duration::from_millis(9 * DAY / 2)), now);
        assert_eq!(gone, [5, 6, 8, 9].into_iter().map(id).collect());
        // Everything old, nothing kept by count: the newest stays anyway.
        let gone = retention_victims(&backups, 0, Some(Duration::ZERO), now + 5 * DAY);
        assert_eq!(gone.len(), 8);
        assert!(!gone.contains(&id(0)) && !gone.contains(&id(7)));
    }
}
