//! Backups as clients see them: the backup id and what `hsm backup list`,
//! `describe` and `verify` show. The format and the IO are in `hsm-backup`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{ClusterId, NodeId};

/// Identity of one backup: 16 random bytes, shown as 32 lowercase hex
/// digits, which is also the name of the backup's folder of objects.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BackupId(pub [u8; 16]);

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackupId({self})")
    }
}

/// Text that is not 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a backup id is 32 lowercase hex digits, got {0:?}")]
pub struct ParseBackupIdError(pub String);

impl FromStr for BackupId {
    type Err = ParseBackupIdError;

    fn from_str(s: &str) -> Result<BackupId, ParseBackupIdError> {
        let bad = || ParseBackupIdError(s.chars().take(64).collect());
        if s.len() != 32
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        let mut id = [0u8; 16];
        hex::decode_to_slice(s, &mut id).map_err(|_| bad())?;
        Ok(BackupId(id))
    }
}

/// One backup, from its signed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    /// The backup.
    pub id: BackupId,
    /// Where its objects are (`<destination>/<id>`).
    pub location: String,
    /// The cluster whose state it holds.
    pub cluster_id: ClusterId,
    /// The log index of that state.
    pub applied_index: u64,
    /// The term of that entry.
    pub term: u64,
    /// When it was taken, ms since the Unix epoch.
    pub created_ms: u64,
    /// The node that wrote and signed it.
    pub writer: NodeId,
    /// That node's ed25519 signing key, hex (what `hsm-node restore
    /// --trusted-writer-key` takes).
    pub writer_key: String,
    /// Whether the writer's signing key is that of a current member of the
    /// cluster answering.
    pub writer_is_member: bool,
    /// Bytes of the sealed state.
    pub plain_bytes: u64,
    /// Bytes stored (chunk objects).
    pub stored_bytes: u64,
    /// Number of chunk objects.
    pub chunks: u32,
    /// Fingerprints (hex) of the recovery public keys that open it.
    pub recovery_keys: Vec<String>,
    /// Whether retention leaves it alone.
    pub keep_forever: bool,
}

/// A listed backup whose manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableBackup {
    /// The backup.
    pub id: BackupId,
    /// Why it could not be read.
    pub problem: String,
}

/// What `hsm backup list` shows: the complete backups of the cluster
/// answering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupList {
    /// The destination, as a URL.
    pub destination: String,
    /// Complete backups, newest first.
    pub backups: Vec<BackupInfo>,
    /// Backups with a manifest that does not read or verify.
    pub unreadable: Vec<UnreadableBackup>,
    /// Backups of other clusters at the destination (not listed, never
    /// touched by this cluster's retention).
    pub other_clusters: u32,
}

/// What `hsm backup verify` checked, when every check passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupVerified {
    /// The backup.
    pub backup: BackupInfo,
    /// Chunk objects read and hashed (all of them).
    pub chunks_checked: u32,
    /// Bytes read.
    pub bytes_checked: u64,
}

/// One segment of a cluster's audit archive: consecutive events of its
/// trail (each that extended the event chain, refused or not), the first
/// numbered `first_seq` (`hsm_state::State::events` after it applied).
/// Stored sealed beside the backups (`hsm-backup`'s `audit` module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSegment {
    /// The cluster.
    pub cluster_id: ClusterId,
    /// The first event's sequence number.
    pub first_seq: u64,
    /// The events, in order.
    pub events: Vec<crate::SignedEvent>,
}

/// The first bytes of an encoded [`AuditSegment`].
const AUDIT_SEGMENT_MAGIC: &[u8; 8] = b"HSMAUDS1";

impl AuditSegment {
    /// The last event's sequence number (`first_seq - 1` when empty;
    /// saturating, for bytes from outside).
    pub fn last_seq(&self) -> u64 {
        self.first_seq
            .saturating_add(self.events.len() as u64)
            .saturating_sub(1)
    }

    /// The segment's bytes: a magic, then its canonical encoding.
    ///
    /// # Errors
    /// Only past the codec's size limit.
    pub fn encode(&self) -> Result<Vec<u8>, crate::codec::CodecError> {
        let mut out = AUDIT_SEGMENT_MAGIC.to_vec();
        out.extend(crate::codec::encode("audit segment", self)?);
        Ok(out)
    }

    /// Reads [`AuditSegment::encode`]'s bytes.
    ///
    /// # Errors
    /// When they are not a segment.
    pub fn decode(bytes: &[u8]) -> Result<AuditSegment, crate::codec::CodecError> {
        let body = bytes
            .strip_prefix(AUDIT_SEGMENT_MAGIC.as_slice())
            .ok_or_else(|| crate::codec::CodecError::Decode {
                what: "audit segment",
                reason: "it does not start with the segment magic".into(),
            })?;
        crate::codec::decode("audit segment", body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_refuse_other_text() {
        let id = BackupId([0xa5; 16]);
        assert_eq!(id.to_string().parse::<BackupId>(), Ok(id));
        for bad in ["", "00", &"A".repeat(32), &"0".repeat(33), &"g".repeat(32)] {
            assert!(bad.parse::<BackupId>().is_err(), "{bad:?} accepted");
        }
    }
}
