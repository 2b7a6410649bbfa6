//! Sealed backups of the cluster state in object storage.
//!
//! A backup is the snapshot bytes of the state at one applied index, sealed
//! in chunks (AES-256-GCM-SIV) under a fresh random backup key. That key is
//! wrapped under the cluster domain key and for each recovery X25519 public
//! key the operator registered. A manifest records the cluster, index, term,
//! time, every chunk's size and blake3 hash and the wrapped keys, and is
//! signed by the writing node's ed25519 key. Objects live under a prefix of
//! a local directory or an S3-compatible bucket:
//!
//! ```text
//! <prefix>/<backup id>/chunk-000000 ... chunk-NNNNNN   sealed chunks
//! <prefix>/<backup id>/manifest                         written last
//! <prefix>/<backup id>/keep-forever                     optional mark
//! ```
//!
//! See `docs/backups.md` for the format and the threat model.
//!
//! **Invariants:** nothing written holds plaintext snapshot bytes or key
//! material; a backup is listed only once its manifest, written after every
//! chunk, exists; nothing is restored from a backup whose manifest, any
//! chunk or the signature does not check out, and the error names the
//! object. The crate knows nothing of RocksDB, openraft or the node: the
//! node passes in snapshot bytes, metadata and keys.
//!
//! **API:** [`Destination::from_url`], [`write_backup`], [`list_backups`],
//! [`describe_backup`], [`verify_backup`], [`restore_backup`],
//! [`delete_backup`], [`set_keep_forever`], [`apply_retention`]; keys
//! [`BackupDomainKey`], [`RecoveryKey`], [`RecoveryPublicKey`], [`Opener`];
//! progress through [`Progress`].

pub mod audit;
mod catalog;
mod crypto;
mod destination;
mod error;
mod keys;
mod manifest;
pub mod progress;
mod read;
mod write;

pub use catalog::{
    apply_retention, delete_backup, describe_backup, list_backups, list_incomplete,
    retention_victims, set_keep_forever, BackupDescription, BackupDetails, BackupSummary,
    RetentionPolicy, RetentionReport,
};
pub use crypto::CHUNK_OVERHEAD;
pub use destination::{Destination, WriteOptions, MIN_PART_BYTES};
pub use error::BackupError;
pub use hsm_proto::{BackupId, ParseBackupIdError};
pub use keys::{BackupDomainKey, Fingerprint, Opener, RecoveryKey, RecoveryPublicKey};
pub use manifest::{
    decode_manifest, encode_manifest, ChunkEntry, Manifest, WrappedKey, FORMAT_VERSION, MAX_CHUNKS,
    MAX_CHUNK_BYTES, MAX_WRAPPED_KEYS, MIN_CHUNK_BYTES,
};
pub use progress::{LogProgress, NoProgress, Progress, ProgressUpdate, TerminalProgress};
pub use read::verify_backup;
pub use read::{read_manifest, restore_backup, restore_backup_to, Restored, VerifyReport};
pub use write::{write_backup, BackupKeys, BackupMeta, SnapshotSource};
