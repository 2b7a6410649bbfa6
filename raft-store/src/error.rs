//! Store errors.

use std::path::PathBuf;

use hsm_proto::codec::CodecError;
use hsm_proto::NodeId;
use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageError, StorageIOError};

/// Everything that can go wrong in the store. Messages name the column family
/// and record that failed, never the bytes of a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// RocksDB refused an operation (IO error, corruption it detected itself).
    #[error("rocksdb {op} failed: {source}")]
    Rocks {
        /// What the store was doing.
        op: &'static str,
        /// RocksDB's error.
        #[source]
        source: rocksdb::Error,
    },
    /// A stored value did not open under the storage key: it was changed,
    /// moved to another record, or sealed under another key.
    #[error("stored value {cf}/{record} failed to open: {reason} (tampered, moved, or sealed under another storage key)")]
    Unseal {
        /// Column family.
        cf: &'static str,
        /// Which record, in words (for example `index 42`).
        record: String,
        /// What failed.
        reason: &'static str,
    },
    /// The storage key given at open is not the one this data directory was
    /// created with.
    #[error("the storage key does not open this data directory (wrong key file?)")]
    WrongKey,
    /// A value opened but did not decode.
    #[error("stored value {cf}/{record} does not decode: {source}")]
    Decode {
        /// Column family.
        cf: &'static str,
        /// Which record.
        record: String,
        /// Decoder's error.
        #[source]
        source: CodecError,
    },
    /// Encoding a value failed.
    #[error(transparent)]
    Encode(CodecError),
    /// The key file is missing, unreadable, of the wrong size or readable by
    /// others.
    #[error("storage key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Stored records are individually valid but inconsistent together.
    #[error("stored state is inconsistent: {0}")]
    Inconsistent(String),
    /// The inputs of [`create_restored`](crate::create_restored) do not
    /// make a store a node can start on.
    #[error("cannot create the restored store: {0}")]
    Restore(String),
    /// The thread that syncs the log could not be started.
    #[error("cannot start the log sync thread: {0}")]
    Thread(std::io::Error),
    /// The cluster runs a Raft protocol version this build does not speak
    /// (a store, snapshot or entry from a newer build): the node stops
    /// rather than apply rules it does not know.
    #[error(transparent)]
    Unspoken(#[from] hsm_state::protocol::Unspoken),
    /// An earlier write failed; the store refuses all further work until the
    /// node restarts and re-verifies its data.
    #[error("store is poisoned by an earlier failed write; restart the node")]
    Poisoned,
}

impl StoreError {
    pub(crate) fn into_raft(
        self,
        subject: ErrorSubject<NodeId>,
        verb: ErrorVerb,
    ) -> StorageError<NodeId> {
        StorageError::IO {
            source: StorageIOError::new(subject, verb, AnyError::new(&self)),
        }
    }
}

/// Result alias.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
