//! The state machine (openraft `RaftStateMachine`): the pure [`State`] in
//! memory, every changed record persisted in the same write as the applied
//! log id, and snapshots.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use hsm_proto::NodeId;
use hsm_state::{Entity, EntityKey, State, StateDigest};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StoredMembership,
};
use tokio::sync::watch;

use crate::db::{cf, Batch, Db};
use crate::error::StoreError;
use crate::own_events::OwnEvents;
use crate::snapshot_format;
use crate::{ApplyResponse, BatchApplied, TypeConfig};

/// What [`StateMachineStore::export_with`] returns.
#[derive(Debug)]
pub struct Export<R> {
    /// The applied state in the snapshot format.
    pub snapshot: Vec<u8>,
    /// The log id it was applied at.
    pub applied: Option<LogId<NodeId>>,
    /// What the caller's function made of that same state.
    pub made: R,
}

const APPLIED: &[u8] = b"applied";
const MEMBERSHIP: &[u8] = b"membership";
const ROSTER: &[u8] = b"roster";
const SNAP_META: &[u8] = b"meta";
const SNAP_CHUNK_PREFIX: u8 = b'c';
/// Snapshot data is stored in chunks of this size, each sealed on its own.
const SNAP_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Reads of the current snapshot made without the snapshot lock before one
/// under it, when each found the snapshot replaced while it read.
const SNAPSHOT_READ_TRIES: usize = 3;
/// Events of the audit trail a replica keeps, the newest: the archive
/// (beside the backups) holds them for good; this is the margin it has to
/// take them before they are gone here.
pub const AUDIT_KEEP: u64 = 20_000;
/// The trail is trimmed each time this many more events were applied.
const AUDIT_TRIM_EVERY: u64 = 1024;
/// What the trail's keys in `sm_meta` start with.
const AUDIT_PREFIX: &[u8] = b"audit\0";

/// The key of the trail's event `seq`.
fn audit_key(seq: u64) -> Vec<u8> {
    let mut key = AUDIT_PREFIX.to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

type SResult<T> = Result<T, StorageError<NodeId>>;
type Membership = StoredMembership<NodeId, BasicNode>;

/// What the state machine holds in memory.
pub struct Applied {
    /// The replicated state.
    pub state: State,
    /// Last applied log id.
    pub applied: Option<LogId<NodeId>>,
    /// Last applied membership.
    pub membership: Membership,
    /// The members a joining node was told of (`State::roster`), trusted
    /// until its replica has applied as many events.
    pub roster: Option<State>,
}

impl Applied {
    /// The state to check members against: the replica, or the roster a
    /// joining node was handed while that is further along the chain
    /// ([`hsm_state::authz::members_view`]); the empty replica of the
    /// first member knows no one.
    pub fn trusted(&self) -> &State {
        hsm_state::authz::members_view(&self.state, self.roster.as_ref())
    }
}

/// What one read of the stored snapshot found.
enum SnapshotRead {
    /// The snapshot (or none), whole.
    Whole(Option<Snapshot<TypeConfig>>),
    /// Replaced while being read: its parts are of two snapshots.
    Replaced,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSnapshotMeta {
    meta: SnapshotMeta<NodeId, BasicNode>,
    chunks: u32,
    data_hash: [u8; 32],
}

/// Work the state machine times for the node's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timed {
    /// Applying one batch of committed entries: the state's change and
    /// its (unsynced) write.
    Apply,
    /// Building a snapshot: copying the state, encoding and storing it.
    SnapshotBuild,
    /// Installing a snapshot sent by the leader.
    SnapshotInstall,
}

/// Told each piece of [`Timed`] work and how long it took
/// ([`StateMachineStore::observe_timings`]).
pub type TimingObserver = Arc<dyn Fn(Timed, Duration) + Send + Sync>;

/// The state machine store. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<Db>,
    data: Arc<RwLock<Applied>>,
    record_key: Arc<[u8; 32]>,
    snapshot_seq: Arc<AtomicU64>,
    /// Serialises replacing the stored snapshot, so a slow build can never
    /// overwrite a newer installed snapshot (and a reader that keeps
    /// finding it replaced reads under it).
    snapshot_lock: Arc<Mutex<()>>,
    applied_tx: Arc<watch::Sender<u64>>,
    own_events: Arc<OwnEvents>,
    observer: Arc<OnceLock<TimingObserver>>,
}

impl std::fmt::Debug for StateMachineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let applied = self.read(|a| a.applied);
        f.debug_struct("StateMachineStore")
            .field("applied", &applied)
            .finish_non_exhaustive()
    }
}

impl StateMachineStore {
    /// Loads and verifies everything stored for the state machine.
    pub(crate) fn load(db: Arc<Db>, record_key: [u8; 32]) -> Result<StateMachineStore, StoreError> {
        let mut entities = Vec::new();
        db.scan(cf::SM, &[], |k, v| {
            let record = || format!("record {}", short_hex(k));
            let e: Entity = db.open_value(cf::SM, k, v, record)?;
            if record_id(&record_key, &e.key()) != k {
                return Err(StoreError::Inconsistent(format!(
                    "{} is stored under the wrong key",
                    record()
                )));
            }
            entities.push(e);
            Ok(true)
        })?;
        let state =
            State::from_entities(entities).map_err(|e| StoreError::Inconsistent(e.to_string()))?;
        hsm_state::protocol::check_state(&state)?;
        let applied: Option<Option<LogId<NodeId>>> =
            db.get(cf::SM_META, APPLIED, || "applied".into())?;
        let membership: Option<Membership> =
            db.get(cf::SM_META, MEMBERSHIP, || "membership".into())?;
        let applied = applied.flatten();
        let roster: Option<Vec<Entity>> = db.get(cf::SM_META, ROSTER, || "roster".into())?;
        let roster = roster
            .map(State::from_entities)
            .transpose()
            .map_err(|e| StoreError::Inconsistent(format!("roster: {e}")))?;
        let sm = StateMachineStore {
            db,
            data: Arc::new(RwLock::new(Applied {
                state,
                applied,
                membership: membership.unwrap_or_default(),
                roster,
            })),
            record_key: Arc::new(record_key),
            snapshot_seq: Arc::new(AtomicU64::new(0)),
            snapshot_lock: Arc::new(Mutex::new(())),
            applied_tx: Arc::new(watch::Sender::new(applied.map_or(0, |l| l.index))),
            own_events: Arc::default(),
            observer: Arc::default(),
        };
        // Open the stored snapshot too, so damage there is found now.
        sm.read_snapshot()?;
        Ok(sm)
    }

    /// Tells `observer` how long each applied batch, snapshot build and
    /// snapshot install takes, from now on (the node's metrics). Set once;
    /// later calls change nothing.
    pub fn observe_timings(&self, observer: TimingObserver) {
        let _ = self.observer.set(observer);
    }

    fn timed(&self, what: Timed, started: Instant) {
        if let Some(observe) = self.observer.get() {
            observe(what, started.elapsed());
        }
    }

    fn read_guard(&self) -> RwLockReadGuard<'_, Applied> {
        // A panic while holding the lock cannot leave `Applied` half-changed
        // in a way readers could misuse: apply mutates the state only through
        // `State::apply`, which finishes each event. So a poisoned lock is
        // still safe to read.
        self.data.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_guard(&self) -> RwLockWriteGuard<'_, Applied> {
        self.data.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `roster` (`State::roster` of a member's replica) as the
    /// members this replica trusts until it records as much itself
    /// ([`Applied::trusted`]), durably, if it supersedes what the replica
    /// goes by now (`hsm_state::authz::supersedes`); answers whether it
    /// did. A joining node's empty replica always takes it.
    ///
    /// # Errors
    /// If it cannot be written.
    pub fn trust_roster(&self, roster: &State) -> Result<bool, StoreError> {
        let mut guard = self.write_guard();
        if !hsm_state::authz::supersedes(roster, guard.trusted()) {
            return Ok(false);
        }
        let entities: Vec<Entity> = roster.entities().collect();
        let mut b = self.db.batch();
        b.put(cf::SM_META, ROSTER, &entities);
        self.db.write(b)?;
        guard.roster = Some(roster.clone());
        Ok(true)
    }

    /// Runs `f` with read access to the applied state. Keep `f` short: it
    /// holds off `apply`.
    pub fn read<R>(&self, f: impl FnOnce(&Applied) -> R) -> R {
        f(&self.read_guard())
    }

    /// The audit trail as this replica holds it: up to `max` events from
    /// sequence number `from` on, in order, each with its number. It holds
    /// the newest [`AUDIT_KEEP`] events it applied (none from before a
    /// snapshot it installed).
    ///
    /// # Errors
    /// If the store fails or a record does not open.
    pub fn audit_events(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, hsm_proto::SignedEvent)>, StoreError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        self.db.scan(cf::SM_META, &audit_key(from), |key, sealed| {
            let Some(number) = key.strip_prefix(AUDIT_PREFIX) else {
                return Ok(false);
            };
            let seq = <[u8; 8]>::try_from(number)
                .map(u64::from_be_bytes)
                .map_err(|_| {
                    StoreError::Inconsistent(
                        "an audit trail key is not 8 bytes after its prefix".into(),
                    )
                })?;
            let signed = self
                .db
                .open_value(cf::SM_META, key, sealed, || format!("audit event {seq}"))?;
            out.push((seq, signed));
            Ok(out.len() < max)
        })?;
        Ok(out)
    }

    /// Where this node's proposer records the events it signs, so that
    /// applying them here does not verify those signatures again.
    pub fn own_events(&self) -> Arc<OwnEvents> {
        self.own_events.clone()
    }

    /// The digest of the applied state.
    pub fn digest(&self) -> StateDigest {
        self.read(|a| a.state.digest())
    }

    /// A receiver that sees the last applied log index, for waiting until a
    /// given write has been applied on this node.
    pub fn applied_index(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// The applied state in the snapshot format (see
    /// [`decode_snapshot`](crate::decode_snapshot)) and the log id it was
    /// applied at, read together. Stores nothing. Holds off `apply` only while
    /// it copies the state (the encoding happens outside the lock).
    ///
    /// # Errors
    /// If an entity of the state does not encode.
    pub fn export(&self) -> Result<(Vec<u8>, Option<LogId<NodeId>>), StoreError> {
        self.export_with(|_| ()).map(|e| (e.snapshot, e.applied))
    }

    /// As [`export`](Self::export), and what `f` makes of the exported
    /// state (for what must match it exactly, such as the keys a backup
    /// needs to open it).
    ///
    /// # Errors
    /// As [`export`](Self::export).
    pub fn export_with<R>(&self, f: impl FnOnce(&State) -> R) -> Result<Export<R>, StoreError> {
        let (state, applied) = {
            let guard = self.read_guard();
            (guard.state.clone(), guard.applied)
        };
        let made = f(&state);
        Ok(Export {
            snapshot: snapshot_format::encode(&state)?,
            applied,
            made,
        })
    }

    /// Flushes all memtables to SST files.
    ///
    /// # Errors
    /// If RocksDB fails to flush.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()
    }

    /// A batch that writes the records `changed` names, as they are in
    /// `applied`, and its applied log id and membership.
    fn stage_records(
        &self,
        applied: &Applied,
        changed: &BTreeSet<EntityKey>,
        trail: &[(u64, hsm_proto::SignedEvent)],
    ) -> Batch<'_> {
        let mut b = self.db.batch();
        for k in changed {
            let id = record_id(&self.record_key, k);
            match applied.state.entity(k) {
                Some(e) => b.put(cf::SM, &id, &e),
                None => b.delete(cf::SM, &id),
            }
        }
        for (seq, signed) in trail {
            b.put(cf::SM_META, &audit_key(*seq), signed);
            if seq % AUDIT_TRIM_EVERY == 0 && *seq > AUDIT_KEEP {
                b.delete_range(cf::SM_META, &audit_key(0), &audit_key(seq - AUDIT_KEEP));
            }
        }
        b.put(cf::SM_META, APPLIED, &applied.applied);
        b.put(cf::SM_META, MEMBERSHIP, &applied.membership);
        b
    }

    /// The stored current snapshot, read whole. Replacing it (a build, an
    /// install) is one atomic batch, but its metadata and chunks are read
    /// one by one, so a snapshot stored between two reads would mix two:
    /// a read that does not match its recorded hash is made again when the
    /// metadata changed meanwhile, and after [`SNAPSHOT_READ_TRIES`] such
    /// reads under the lock that replacing takes. Reads do not take that
    /// lock otherwise: a build holds it while it seals and syncs.
    fn read_snapshot(&self) -> Result<Option<Snapshot<TypeConfig>>, StoreError> {
        for _ in 0..SNAPSHOT_READ_TRIES {
            if let SnapshotRead::Whole(read) = self.read_snapshot_once()? {
                return Ok(read);
            }
        }
        let _snapshot_guard = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
        match self.read_snapshot_once()? {
            SnapshotRead::Whole(read) => Ok(read),
            SnapshotRead::Replaced => Err(StoreError::Inconsistent(
                "snapshot data does not match its recorded hash".into(),
            )),
        }
    }

    /// One read of the stored snapshot.
    fn read_snapshot_once(&self) -> Result<SnapshotRead, StoreError> {
        let meta = || -> Result<Option<StoredSnapshotMeta>, StoreError> {
            self.db.get(cf::SNAPSHOT, SNAP_META, || "meta".into())
        };
        let Some(stored) = meta()? else {
            return Ok(SnapshotRead::Whole(None));
        };
        let replaced = |stored: &StoredSnapshotMeta| -> Result<bool, StoreError> {
            Ok(meta()?.is_none_or(|now| {
                now.meta.snapshot_id != stored.meta.snapshot_id || now.data_hash != stored.data_hash
            }))
        };
        let mut data = Vec::new();
        for i in 0..stored.chunks {
            let key = chunk_key(i);
            let chunk: Option<serde_bytes::ByteBuf> =
                self.db.get(cf::SNAPSHOT, &key, || format!("chunk {i}"))?;
            let Some(chunk) = chunk else {
                if replaced(&stored)? {
                    return Ok(SnapshotRead::Replaced);
                }
                return Err(StoreError::Inconsistent(format!(
                    "snapshot chunk {i} is missing"
                )));
            };
            data.extend_from_slice(&chunk);
        }
        if *blake3::hash(&data).as_bytes() != stored.data_hash {
            if replaced(&stored)? {
                return Ok(SnapshotRead::Replaced);
            }
            return Err(StoreError::Inconsistent(
                "snapshot data does not match its recorded hash".into(),
            ));
        }
        Ok(SnapshotRead::Whole(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(data)),
        })))
    }

    /// Adds to a batch every record of `state` (into an empty record
    /// column family), `meta`'s applied log id and membership, and `data`,
    /// the encoding of `state`, as the current snapshot.
    pub(crate) fn stage_state(
        b: &mut Batch<'_>,
        record_key: &[u8; 32],
        state: &State,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        data: &[u8],
    ) -> Result<(), StoreError> {
        for e in state.entities() {
            b.put(cf::SM, &record_id(record_key, &e.key()), &e);
        }
        b.put(cf::SM_META, APPLIED, &meta.last_log_id);
        b.put(cf::SM_META, MEMBERSHIP, &meta.last_membership);
        Self::stage_snapshot(b, meta, data)
    }

    /// Adds the current-snapshot records to a batch, replacing any older one.
    fn stage_snapshot(
        b: &mut Batch<'_>,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        data: &[u8],
    ) -> Result<(), StoreError> {
        b.delete_range(cf::SNAPSHOT, &chunk_key(0), &chunk_key(u32::MAX));
        let mut chunks = 0u32;
        for (i, chunk) in data.chunks(SNAP_CHUNK_BYTES).enumerate() {
            let i = u32::try_from(i)
                .map_err(|_| StoreError::Inconsistent("snapshot has too many chunks".into()))?;
            b.put(cf::SNAPSHOT, &chunk_key(i), &serde_bytes::Bytes::new(chunk));
            chunks = i + 1;
        }
        b.put(
            cf::SNAPSHOT,
            SNAP_META,
            &StoredSnapshotMeta {
                meta: meta.clone(),
                chunks,
                data_hash: *blake3::hash(data).as_bytes(),
            },
        );
        Ok(())
    }
}

fn chunk_key(i: u32) -> [u8; 5] {
    let b = i.to_be_bytes();
    [SNAP_CHUNK_PREFIX, b[0], b[1], b[2], b[3]]
}

/// Where a state record is stored: a keyed hash of its entity key, so user
/// names and key ids do not appear in RocksDB keys.
fn record_id(record_key: &[u8; 32], key: &EntityKey) -> [u8; 32] {
    *blake3::keyed_hash(record_key, &key.to_bytes()).as_bytes()
}

fn short_hex(k: &[u8]) -> String {
    k.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(&mut self) -> SResult<(Option<LogId<NodeId>>, Membership)> {
        Ok(self.read(|a| (a.applied, a.membership.clone())))
    }

    async fn apply<I>(&mut self, entries: I) -> SResult<Vec<BatchApplied>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // The records are written under the lock, so a snapshot (built
        // from the state in memory, then synced) never covers applies not
        // yet in the write-ahead log before it. The write is not synced,
        // so readers never wait for the disk: the log holds every applied
        // entry durably, and a state that lost its last applies to a crash
        // is behind the log, which Raft applies again at start
        // (`tests/durability.rs`).
        // A raise to a Raft protocol version this build does not speak
        // stops the node before anything of the batch applies: the members
        // that speak it apply it, and this replica must not go on under
        // rules it does not know.
        let started = Instant::now();
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        for entry in &entries {
            if let EntryPayload::Normal(batch) = &entry.payload {
                for signed in &batch.events {
                    hsm_state::protocol::check_event(signed).map_err(|e| {
                        StoreError::from(e).into_raft(ErrorSubject::StateMachine, ErrorVerb::Write)
                    })?;
                }
            }
        }
        let (index, responses) = {
            let mut guard = self.write_guard();
            let applied = &mut *guard;
            let mut changed = BTreeSet::new();
            let mut trail = Vec::new();
            let mut responses = Vec::new();
            for entry in entries {
                applied.applied = Some(entry.log_id);
                let index = entry.log_id.index;
                let mut events = Vec::new();
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(batch) => {
                        let sealed = batch
                            .seal
                            .as_ref()
                            .and_then(|seal| applied.state.vouch_for_batch(&batch.events, seal));
                        let vouch = (&*self.own_events, sealed);
                        for signed in &batch.events {
                            let before = applied.state.events();
                            let outcome = applied.state.apply_vouched(signed, &vouch);
                            // Every event that extended the chain, refused
                            // or not, is the trail's next.
                            if applied.state.events() > before {
                                trail.push((applied.state.events(), signed.clone()));
                            }
                            if let Err(reason) = &outcome.result {
                                tracing::info!(index, kind = signed.event.body.kind(), %reason, "event refused");
                            }
                            changed.extend(outcome.changed);
                            events.push(ApplyResponse {
                                index,
                                result: outcome.result,
                                replayed: outcome.replayed,
                            });
                        }
                    }
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), m);
                    }
                }
                responses.push(BatchApplied { index, events });
            }
            self.db
                .write_unsynced(self.stage_records(applied, &changed, &trail))
                .map_err(|e| e.into_raft(ErrorSubject::StateMachine, ErrorVerb::Write))?;
            (applied.applied.map_or(0, |l| l.index), responses)
        };
        self.applied_tx.send_replace(index);
        self.timed(Timed::Apply, started);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> SResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> SResult<()> {
        let fail = |e: StoreError| {
            e.into_raft(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
            )
        };
        let started = Instant::now();
        let data = snapshot.into_inner();
        let state = snapshot_format::decode(&data).map_err(fail)?;
        hsm_state::protocol::check_state(&state).map_err(|e| fail(e.into()))?;
        let _snapshot_guard = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut guard = self.write_guard();
        let mut b = self.db.batch();
        b.delete_range(cf::SM, &[], &[0xff; 33]);
        Self::stage_state(&mut b, &self.record_key, &state, meta, &data).map_err(fail)?;
        self.db.write(b).map_err(fail)?;
        *guard = Applied {
            state,
            applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            roster: guard.roster.take(),
        };
        drop(guard);
        self.applied_tx
            .send_replace(meta.last_log_id.map_or(0, |l| l.index));
        tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot");
        self.timed(Timed::SnapshotInstall, started);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> SResult<Option<Snapshot<TypeConfig>>> {
        self.read_snapshot()
            .map_err(|e| e.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Read))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> SResult<Snapshot<TypeConfig>> {
        let fail = |e: StoreError| e.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Write);
        let started = Instant::now();
        // Copy the state under the lock and encode it outside: encoding
        // (and the digest it carries) takes far longer than the copy, and
        // apply waits for the lock.
        let (state, last_log_id, last_membership) = {
            let guard = self.read_guard();
            (guard.state.clone(), guard.applied, guard.membership.clone())
        };
        let data = snapshot_format::encode(&state).map_err(fail)?;
        drop(state);
        let seq = self.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{seq}", l.leader_id, l.index),
            None => format!("none-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let _snapshot_guard = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
        let stored: Option<StoredSnapshotMeta> = self
            .db
            .get(cf::SNAPSHOT, SNAP_META, || "meta".into())
            .map_err(fail)?;
        // An install may have stored a newer snapshot while this one was
        // being built; keep that one.
        if stored.is_none_or(|s| s.meta.last_log_id <= meta.last_log_id) {
            let mut b = self.db.batch();
            Self::stage_snapshot(&mut b, &meta, &data).map_err(fail)?;
            self.db.write(b).map_err(fail)?;
        }
        self.timed(Timed::SnapshotBuild, started);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
