//! The RocksDB-backed Raft log store and state machine of an HSM node.
//!
//! [`open`] gives the two halves openraft needs (storage-v2):
//! [`LogStore`] (log, vote, committed id) and [`StateMachineStore`] (the
//! pure `hsm_state::State` in memory, persisted record by record, and
//! snapshots). Both share one RocksDB with a column family per concern.
//! [`create`] makes an empty store; [`create_restored`] makes the store of
//! a new cluster's first node from a restored state. [`encode_snapshot`]
//! and [`decode_snapshot`] are the snapshot byte format (what backups hold);
//! [`StateMachineStore::export`] gives the applied state in it.
//!
//! Invariants:
//! - Every value written is sealed with AES-256-GCM-SIV under a key derived
//!   from the node storage key, with column family and RocksDB key as
//!   associated data. The storage key comes from the caller (an unseal
//!   source) and is never stored in RocksDB.
//! - Every write is one atomic batch. Log appends are reported flushed to
//!   Raft only after a write-ahead log sync covering them (`syncer`);
//!   the vote, truncation, purge, snapshots and the roster are synced
//!   before they return; applies and the committed id are not (the log
//!   holds what they came from, and a later sync makes them durable). A failed
//!   write poisons the store: all later calls fail until a restart.
//! - [`open`] opens and decodes every stored value. A value that fails is a
//!   [`StoreError`] naming it, and the store does not open; nothing is
//!   skipped.
//! - The state machine changes the state only through `State::apply_vouched`
//!   (with `State::vouch_for_batch` for sealed entries); rules live in
//!   `hsm-state`.
//! - A store from [`create_restored`] reads as if a snapshot at the given
//!   log id had been installed and the log purged up to it, with an
//!   uncommitted vote at that log id's term: the first election uses a
//!   higher term, the first new entry follows the given index, and a node
//!   that joins later is sent the snapshot.

#![forbid(unsafe_code)]

mod db;
mod error;
mod log_store;
mod manifest_check;
mod own_events;
mod seal;
mod snapshot_format;
mod state_machine;
mod syncer;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use hsm_proto::{BatchSeal, NodeId, Rejection, SignedEvent};
use hsm_state::State;
use openraft::{BasicNode, LogId, Membership, SnapshotMeta, StoredMembership, Vote};
use serde::{Deserialize, Serialize};

pub use error::StoreError;
pub use log_store::LogStore;
pub use own_events::OwnEvents;
pub use seal::StorageKey;
pub use state_machine::{Applied, Export, StateMachineStore, Timed, TimingObserver};
pub use syncer::SyncStats;

openraft::declare_raft_types!(
    /// openraft type configuration of the HSM cluster.
    pub TypeConfig:
        D = EventBatch,
        R = BatchApplied,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// What one Raft log entry carries: signed events in chain order, each
/// applied on its own as if it had its own entry. The leader puts every
/// write waiting at once into one entry (group commit): one append, one
/// sync and one replication message serve them all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    /// The events, the first chained on the event before the entry.
    pub events: Vec<SignedEvent>,
    /// The leader's seal over the events' chain hashes, when it carries
    /// more than one: members check it once instead of each event's
    /// signature ([`hsm_state::State::vouch_for_batch`]).
    pub seal: Option<BatchSeal>,
}

impl EventBatch {
    /// An entry of one event.
    pub fn one(signed: SignedEvent) -> EventBatch {
        EventBatch {
            events: vec![signed],
            seal: None,
        }
    }
}

impl std::fmt::Display for EventBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} events", self.events.len())
    }
}

/// The outcome of applying one log entry: one [`ApplyResponse`] per event
/// of its [`EventBatch`], in order (none for Raft's own entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchApplied {
    /// Log index of the entry.
    pub index: u64,
    /// Each event's outcome.
    pub events: Vec<ApplyResponse>,
}

/// The outcome of applying one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResponse {
    /// Log index of the entry that carried the event.
    pub index: u64,
    /// Accepted, or why the state machine refused the event.
    pub result: Result<(), Rejection>,
    /// The request id had been applied before; `result` is from that time.
    pub replayed: bool,
}

/// Creates a new, empty store in `dir` (absent or empty) sealed under `key`.
///
/// # Errors
/// If `dir` is not empty or RocksDB cannot create the database.
pub fn create(dir: &Path, key: &StorageKey) -> Result<(LogStore, StateMachineStore), StoreError> {
    let db = db::Db::open(dir, key, true)?;
    Ok((
        LogStore::new(db.clone())?,
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
    let log = LogStore::new(db.clone())?;
    let entries = log.verify_all()?;
    let sm = StateMachineStore::load(db, record_key(key))?;
    tracing::info!(dir = %dir.display(), log_entries = entries, "store opened");
    Ok((log, sm))
}

/// Creates, in `dir` (absent or empty) under `key`, the store of the first
/// node of a cluster whose state starts as `state` at `last_log_id`: `state`
/// applied at `last_log_id` and stored as the current snapshot, membership
/// `nodes` (all voters) as of `last_log_id`, an empty log purged up to
/// `last_log_id`, and an uncommitted vote for the first node of `nodes` at
/// `last_log_id`'s term. All in one synced write. Start the node with
/// [`open`] and no `initialize`: it elects itself and appends after
/// `last_log_id`.
///
/// # Errors
/// [`StoreError::Restore`] if `nodes` is empty or its ids are not the
/// members of `state`; [`StoreError::Encode`] if the state does not encode;
/// as [`create`] if `dir` is not empty or RocksDB fails. A failed create may
/// leave a database without its key check in `dir`, which [`open`] refuses;
/// empty the directory before trying again.
pub fn create_restored(
    dir: &Path,
    key: &StorageKey,
    state: &State,
    last_log_id: LogId<NodeId>,
    nodes: BTreeMap<NodeId, BasicNode>,
) -> Result<(), StoreError> {
    let voters: BTreeSet<NodeId> = nodes.keys().copied().collect();
    let Some(&first) = voters.first() else {
        return Err(StoreError::Restore("no member nodes given".into()));
    };
    let members: BTreeSet<NodeId> = state.nodes().map(|n| n.id).collect();
    if voters != members {
        return Err(StoreError::Restore(format!(
            "the Raft members [{}] are not the state's members [{}]",
            ids(&voters),
            ids(&members)
        )));
    }
    let data = snapshot_format::encode(state)?;
    let meta = SnapshotMeta {
        last_log_id: Some(last_log_id),
        last_membership: StoredMembership::new(
            Some(last_log_id),
            Membership::new(vec![voters], nodes),
        ),
        snapshot_id: format!("restored-{}", last_log_id.index),
    };
    let vote = Vote::new(last_log_id.leader_id.term, first);
    let record_key = record_key(key);
    db::Db::create_with(dir, key, |b| {
        StateMachineStore::stage_state(b, &record_key, state, &meta, &data)?;
        log_store::stage_restored(b, last_log_id, &vote);
        Ok(())
    })?;
    tracing::info!(
        dir = %dir.display(),
        last_log_id = %last_log_id,
        digest = %state.digest(),
        "restored store created"
    );
    Ok(())
}

/// Encodes a whole state in the snapshot format: `"HSMSNAP1"`, the state
/// digest, the entity count, then each entity length-prefixed.
///
/// # Errors
/// [`StoreError::Encode`] if an entity does not encode.
pub fn encode_snapshot(state: &State) -> Result<Vec<u8>, StoreError> {
    snapshot_format::encode(state)
}

/// Decodes snapshot bytes into a state, checking that every entity decodes,
/// the records are consistent and the rebuilt state has the digest the
/// header names.
///
/// # Errors
/// [`StoreError::Inconsistent`] or [`StoreError::Decode`] for bytes that
/// are not such a snapshot.
pub fn decode_snapshot(bytes: &[u8]) -> Result<State, StoreError> {
    snapshot_format::decode(bytes)
}

/// What a member signs when it sends a snapshot
/// ([`hsm_state::snapshot::seal_snapshot`]) and what the receiver checks
/// ([`hsm_state::snapshot::check_snapshot`]): the canonical encoding of the
/// snapshot's last log id and membership, and the state digest its header
/// promises (which decoding checks against the rebuilt state). `data` may be
/// only the snapshot's first bytes.
///
/// # Errors
/// [`StoreError::Inconsistent`] if `data` does not start with a snapshot
/// header; [`StoreError::Encode`] if the position does not encode.
pub fn snapshot_statement(
    meta: &SnapshotMeta<NodeId, BasicNode>,
    data: &[u8],
) -> Result<(Vec<u8>, hsm_state::StateDigest), StoreError> {
    let position = hsm_proto::codec::encode(
        "snapshot position",
        &(&meta.last_log_id, &meta.last_membership),
    )
    .map_err(StoreError::Encode)?;
    Ok((position, snapshot_format::promised_digest(data)?))
}

fn ids(set: &BTreeSet<NodeId>) -> String {
    set.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn record_key(key: &StorageKey) -> [u8; 32] {
    key.derive("hsm-store record ids v1")
}
