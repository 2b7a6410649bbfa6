//! The errors of this crate. Messages are lowercase, name the object or file
//! concerned, and never contain key bytes or snapshot contents.

use std::path::PathBuf;

use hsm_proto::BackupId;

/// Everything that can go wrong writing, reading or managing a backup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The destination URL is not one this crate can use.
    #[error("backup destination {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given (URLs carry no credentials here).
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The write options are out of range.
    #[error("backup options: {0}")]
    InvalidOptions(String),
    /// The object store failed an operation (after the retries, for puts).
    #[error("object store: cannot {action} {object}: {source}")]
    Store {
        /// What was being done: `put`, `get`, `head`, `list`, `delete`.
        action: &'static str,
        /// The object (or prefix) concerned, as a URL.
        object: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// No backup with this id is listed at the destination (no manifest).
    #[error("no backup {id} at {destination} (no manifest object)")]
    NotFound {
        /// The backup asked for.
        id: BackupId,
        /// The destination URL.
        destination: String,
    },
    /// An object the manifest lists is missing.
    #[error("{object} is missing")]
    ObjectMissing {
        /// The missing object, as a URL.
        object: String,
    },
    /// The manifest object is not a well-formed manifest.
    #[error("manifest {object} is damaged: {reason}")]
    ManifestDamaged {
        /// The manifest object, as a URL.
        object: String,
        /// What did not check out.
        reason: String,
    },
    /// The manifest's signature does not verify under the writer key it names.
    #[error("manifest {object} has an invalid signature (changed after it was signed)")]
    ManifestSignature {
        /// The manifest object, as a URL.
        object: String,
    },
    /// The manifest is signed by a key that is not among the trusted ones.
    #[error(
        "manifest {object} is signed by node {node} with key {key}, which is not a trusted signer"
    )]
    UntrustedSigner {
        /// The manifest object, as a URL.
        object: String,
        /// The node id the manifest names.
        node: u64,
        /// The writer's public key, hex.
        key: String,
    },
    /// A chunk object's size or blake3 hash differs from the manifest's.
    #[error("chunk {object} is damaged: {reason}")]
    ChunkDamaged {
        /// The chunk object, as a URL.
        object: String,
        /// What did not match.
        reason: String,
    },
    /// A chunk matched its hash but did not decrypt under the backup key.
    #[error("chunk {object} does not decrypt under the backup key (not sealed for this backup, position or manifest)")]
    ChunkAuthentication {
        /// The chunk object, as a URL.
        object: String,
    },
    /// The manifest holds no backup key wrapped for the given recovery key.
    #[error("manifest {object} has no backup key wrapped for recovery key {fingerprint}")]
    NoKeyForRecoveryKey {
        /// The manifest object, as a URL.
        object: String,
        /// Fingerprint of the recovery key tried.
        fingerprint: String,
    },
    /// The manifest holds no backup key wrapped under the domain key.
    #[error("manifest {object} has no backup key wrapped under the domain key")]
    NoKeyForDomainKey {
        /// The manifest object, as a URL.
        object: String,
    },
    /// A wrapped backup key did not open.
    #[error("manifest {object}: the backup key wrapped for {opener} does not open ({reason})")]
    KeyUnwrap {
        /// The manifest object, as a URL.
        object: String,
        /// Which key was tried: `the domain key`, `recovery key <fingerprint>`.
        opener: String,
        /// Why, e.g. a wrong domain key or a changed manifest.
        reason: &'static str,
    },
    /// A recovery public key is a low-order point: sealing to it would not
    /// be secret.
    #[error("recovery public key {fingerprint} is a low-order point and cannot be used")]
    WeakRecoveryKey {
        /// Fingerprint of the key.
        fingerprint: String,
    },
    /// The snapshot reader gave fewer or more bytes than announced, or failed.
    #[error("snapshot input: {0}")]
    Snapshot(String),
    /// The snapshot is larger than a backup can hold.
    #[error("snapshot of {len} bytes needs {chunks} chunks of {chunk_bytes} bytes; at most {max} chunks are allowed")]
    TooLarge {
        /// Snapshot length.
        len: u64,
        /// Chunks it would take.
        chunks: u64,
        /// Chunk size.
        chunk_bytes: u32,
        /// Most chunks a backup may have.
        max: u64,
    },
    /// The restored snapshot does not fit in memory.
    #[error("cannot reserve {bytes} bytes to restore the snapshot into")]
    OutOfMemory {
        /// Bytes asked for.
        bytes: u64,
    },
    /// Writing the restored snapshot to the caller's writer failed.
    #[error("cannot write the restored snapshot: {0}")]
    Output(#[source] std::io::Error),
    /// The backup is marked keep-forever and cannot be deleted.
    #[error("backup {id} is marked keep-forever; clear the mark before deleting it")]
    KeepForever {
        /// The backup.
        id: BackupId,
    },
    /// A recovery key file could not be written or read.
    #[error("recovery key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Text that should hold a recovery public key does not.
    #[error("recovery public key: {0}")]
    InvalidPublicKey(String),
    /// The manifest could not be encoded (it would exceed the codec's limit).
    #[error("cannot encode the manifest: {0}")]
    Encode(String),
    /// A background task failed (a panic while sealing a chunk).
    #[error("internal task failed: {0}")]
    Task(String),
}

impl BackupError {
    /// The object (as a URL) this error is about, when it is about one.
    pub fn object(&self) -> Option<&str> {
        match self {
            BackupError::Store { object, .. }
            | BackupError::ObjectMissing { object }
            | BackupError::ManifestDamaged { object, .. }
            | BackupError::ManifestSignature { object }
            | BackupError::UntrustedSigner { object, .. }
            | BackupError::ChunkDamaged { object, .. }
            | BackupError::ChunkAuthentication { object }
            | BackupError::NoKeyForRecoveryKey { object, .. }
            | BackupError::NoKeyForDomainKey { object }
            | BackupError::KeyUnwrap { object, .. } => Some(object),
            _ => None,
        }
    }
}
