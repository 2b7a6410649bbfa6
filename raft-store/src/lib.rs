//! The RocksDB-backed Raft log store and state machine of an HSM node.
//!
//! [`open`] gives the two halves openraft needs (storage-v2):
//! [`LogStore`] (log, vote, committed id) and [`StateMachineStore`] (the
//! pure `hsm_state::State` in memory, persisted record by record, and
//! snapshots). Both share one RocksDB with a column family per concern.
//!
//! Invariants:
//! - Every value written is sealed with AES-256-GCM-SIV under a key derived
//!   from the node storage key, with column family and RocksDB key as
//!   associated data. The storage key comes from the caller (an unseal
//!   source) and is never stored in RocksDB.
//! - Every write is one atomic batch, synced before it returns. A failed
//!   write poisons the store: all later calls fail until a restart.
//! - [`open`] opens and decodes every stored value. A value that fails is a
//!   [`StoreError`] naming it, and the store does not open; nothing is
//!   skipped.
//! - The state machine only calls `State::apply`; rules live in `hsm-state`.

#![forbid(unsafe_code)]

mod db;
mod error;
mod log_store;
mod manifest_check;
mod seal;
mod snapshot_format;
mod state_machine;

use std::path::Path;

use hsm_proto::{NodeId, Rejection, SignedEvent};
use serde::{Deserialize, Serialize};

pub use error::StoreError;
pub use log_store::LogStore;
pub use seal::StorageKey;
pub use state_machine::{Applied, StateMachineStore};

openraft::declare_raft_types!(
    /// openraft type configuration of the HSM cluster.
    pub TypeConfig:
        D = SignedEvent,
        R = ApplyResponse,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The outcome of applying one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResponse {
    /// Log index of the entry.
    pub index: u64,
    /// Accepted, or why the state machine refused the event.
    pub result: Result<(), Rejection>,
    /// The request id had been applied before; `result` is from that time.
    pub replayed: bool,
}

impl ApplyResponse {
    fn none(index: u64) -> ApplyResponse {
        ApplyResponse {
            index,
            result: Ok(()),
            replayed: false,
        }
    }
}

/// Creates a new, empty store in `dir` (absent or empty) sealed under `key`.
///
/// # Errors
/// If `dir` is not empty or RocksDB cannot create the database.
pub fn create(dir: &Path, key: &StorageKey) -> Result<(LogStore, StateMachineStore), StoreError> {
    let db = db::Db::open(dir, key, true)?;
    Ok((
        LogStore::new(db.clone()),
        StateMachineStore::load(db, record_key(key))?,
    ))
}

/// Opens the existing store in `dir` under `key`, verifying every stored
/// value.
///
/// # Errors
/// [`StoreError::Inconsistent`] if `dir` holds no store, [`StoreError::WrongKey`]
/// for another directory's key, [`StoreError::Unseal`] or
/// [`StoreError::Decode`] naming the first damaged value, [`StoreError::Rocks`]
/// when RocksDB itself finds corruption.
pub fn open(dir: &Path, key: &StorageKey) -> Result<(LogStore, StateMachineStore), StoreError> {
    let db = db::Db::open(dir, key, false)?;
    let log = LogStore::new(db.clone());
    let entries = log.verify_all()?;
    let sm = StateMachineStore::load(db, record_key(key))?;
    tracing::info!(dir = %dir.display(), log_entries = entries, "store opened");
    Ok((log, sm))
}

fn record_key(key: &StorageKey) -> [u8; 32] {
    key.derive("hsm-store record ids v1")
}
