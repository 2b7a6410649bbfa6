//! The audit archive: a cluster's event trail in sealed segments beside its
//! backups, so the trail outlives the Raft log (which is cut after every
//! snapshot).
//!
//! ```text
//! <prefix>/audit/<segment id>/chunk-000000 ...   sealed, as a backup's
//! <prefix>/audit/<segment id>/manifest           signed, written last
//! ```
//!
//! A segment is written as a backup whose payload is an encoded
//! [`AuditSegment`] (consecutive events, the first one's sequence number,
//! the cluster), so it is sealed, key-wrapped (under the domain key and for
//! every recovery key), signed by the member that wrote it, and listed only
//! once whole, exactly as a backup is (`docs/backups.md`). Its id names the
//! range it holds: the first and the last sequence number, big-endian, so
//! the archive's order and its end are read from a listing alone. Its
//! manifest's `applied_index` is the last number; `term` is 0.
//!
//! Events carry Argon2id password hashes and wrapped key material, so the
//! trail is sealed like the backups; who checks it offline opens it with a
//! recovery key, and trusts nothing but the events' own signatures
//! (`hsm_state::audit`).

use ed25519_dalek::VerifyingKey;
use hsm_proto::{AuditSegment, BackupId};

use crate::catalog::list_backups;
use crate::destination::Destination;
use crate::error::BackupError;
use crate::keys::Opener;
use crate::progress::NoProgress;
use crate::write::{write_backup_as, BackupKeys, BackupMeta, SnapshotSource};

/// The folder of the archive under a backup destination.
pub const AUDIT_DIR: &str = "audit";

/// The archive beside the backups at `backups`.
///
/// # Errors
/// Only for a destination whose prefix cannot take the folder.
pub fn audit_destination(backups: &Destination) -> Result<Destination, BackupError> {
    backups.child(AUDIT_DIR)
}

/// The id of the segment holding events `first..=last`.
pub fn segment_id(first: u64, last: u64) -> BackupId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&first.to_be_bytes());
    id[8..].copy_from_slice(&last.to_be_bytes());
    BackupId(id)
}

/// The range of events a segment id names.
pub fn segment_range(id: BackupId) -> (u64, u64) {
    let mut first = [0u8; 8];
    let mut last = [0u8; 8];
    first.copy_from_slice(&id.0[..8]);
    last.copy_from_slice(&id.0[8..]);
    (u64::from_be_bytes(first), u64::from_be_bytes(last))
}

/// The segments listed in the archive (each with a manifest), in order of
/// their first event: the ranges their ids name.
///
/// # Errors
/// [`BackupError::Store`] when the archive cannot be listed.
pub async fn list_segments(audit: &Destination) -> Result<Vec<(u64, u64)>, BackupError> {
    let mut ranges: Vec<(u64, u64)> = list_backups(audit)
        .await?
        .into_iter()
        .map(|b| segment_range(b.id))
        .filter(|(first, last)| first <= last)
        .collect();
    ranges.sort_unstable();
    Ok(ranges)
}

/// Writes `segment` (which must hold at least one event) to the archive,
/// signed by the member `node` with `keys.signer`.
///
/// # Errors
/// As [`crate::write_backup`]; [`BackupError::Encode`] for an empty segment.
pub async fn write_segment(
    audit: &Destination,
    segment: &AuditSegment,
    node: hsm_proto::NodeId,
    created_at_ms: u64,
    keys: &BackupKeys<'_>,
) -> Result<(), BackupError> {
    if segment.events.is_empty() {
        return Err(BackupError::Encode(
            "an audit segment holds at least one event".into(),
        ));
    }
    let bytes = zeroize::Zeroizing::new(
        segment
            .encode()
            .map_err(|e| BackupError::Encode(e.to_string()))?,
    );
    let last = segment.last_seq();
    let meta = BackupMeta {
        cluster_id: segment.cluster_id,
        applied_index: last,
        term: 0,
        created_at_ms,
        node_id: node,
    };
    write_backup_as(
        audit,
        segment_id(segment.first_seq, last),
        &meta,
        SnapshotSource::from_bytes(&bytes),
        keys,
        &NoProgress,
    )
    .await?;
    Ok(())
}

/// Reads, checks and opens the segment holding `range`: its manifest signed
/// (by one of `trusted` when given), every chunk whole and authentic, and
/// the events it holds exactly the range its name says, of the cluster its
/// manifest names.
///
/// # Errors
/// As [`crate::restore_backup`], and [`BackupError::ManifestDamaged`] for a
/// payload that is not a segment or holds another range or cluster.
pub async fn read_segment(
    audit: &Destination,
    range: (u64, u64),
    opener: Opener<'_>,
    trusted: Option<&[VerifyingKey]>,
) -> Result<AuditSegment, BackupError> {
    let id = segment_id(range.0, range.1);
    let restored = crate::read::restore_backup(audit, id, opener, trusted, &NoProgress).await?;
    let damaged = |reason: String| BackupError::ManifestDamaged {
        object: audit.object_url(&audit.manifest_path(id)),
        reason,
    };
    let segment = AuditSegment::decode(&restored.snapshot)
        .map_err(|e| damaged(format!("its payload is not an audit segment: {e}")))?;
    if segment.events.is_empty()
        || (segment.first_seq, segment.last_seq()) != range
        || segment.cluster_id != restored.manifest.cluster_id
    {
        return Err(damaged(format!(
            "it is named for events {} to {} but holds {} event(s) from {}",
            range.0,
            range.1,
            segment.events.len(),
            segment.first_seq
        )));
    }
    Ok(segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_ids_name_their_range_and_sort_by_it() {
        for (a, b) in [(1, 1), (1, 999), (u64::MAX - 1, u64::MAX)] {
            assert_eq!(segment_range(segment_id(a, b)), (a, b));
        }
        assert!(segment_id(2, 3) < segment_id(10, 11));
        assert!(segment_id(255, 256) < segment_id(256, 300));
    }
}
