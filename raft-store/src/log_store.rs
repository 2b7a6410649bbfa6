//! The Raft log, vote and committed id (openraft `RaftLogStorage`).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use hsm_proto::NodeId;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, Vote,
};

use crate::db::{cf, Batch, Db};
use crate::error::StoreError;
use crate::syncer::{SyncStats, Syncer};
use crate::TypeConfig;

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn index_of(key: &[u8]) -> Result<u64, StoreError> {
    key.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Inconsistent(format!("log key of {} bytes", key.len())))
}

/// The Raft log store. Cheap to clone; clones share the database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Db>,
    syncer: Arc<Syncer>,
    /// The index of the last committed id saved, for the metrics (0: none).
    committed: Arc<std::sync::atomic::AtomicU64>,
}

type SResult<T> = Result<T, StorageError<NodeId>>;

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    pub(crate) fn new(db: Arc<Db>) -> Result<LogStore, StoreError> {
        Ok(LogStore {
            db,
            syncer: Arc::new(Syncer::start().map_err(StoreError::Thread)?),
            committed: Arc::default(),
        })
    }

    /// The index of the last entry Raft told this store is committed
    /// (known committed on a majority), since it opened; 0 before any.
    pub fn committed_index(&self) -> u64 {
        self.committed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many write-ahead log syncs this store's appends took, and how
    /// many appends they covered (the group commit's batching).
    pub fn sync_stats(&self) -> SyncStats {
        self.syncer.stats()
    }

    fn meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &'static [u8],
    ) -> Result<Option<T>, StoreError> {
        self.db
            .get(cf::META, key, || String::from_utf8_lossy(key).into_owned())
    }

    /// Opens and decodes every log entry and the vote, so a damaged log is
    /// found at open rather than when a follower asks for it.
    pub(crate) fn verify_all(&self) -> Result<u64, StoreError> {
        let _: Option<Vote<NodeId>> = self.meta(VOTE)?;
        let _: Option<Option<LogId<NodeId>>> = self.meta(COMMITTED)?;
        let _: Option<LogId<NodeId>> = self.meta(LAST_PURGED)?;
        let mut count = 0u64;
        let mut expected: Option<u64> = None;
        self.db.scan(cf::LOG, &[], |k, v| {
            let index = index_of(k)?;
            let entry: Entry<TypeConfig> = self
                .db
                .open_value(cf::LOG, k, v, || format!("index {index}"))?;
            if entry.log_id.index != index {
                return Err(StoreError::Inconsistent(format!(
                    "log entry at index {index} claims index {}",
                    entry.log_id.index
                )));
            }
            if let Some(e) = expected {
                if e != index {
                    return Err(StoreError::Inconsistent(format!(
                        "log has a gap: expected index {e}, found {index}"
                    )));
                }
            }
            expected = Some(index + 1);
            count += 1;
            Ok(true)
        })?;
        Ok(count)
    }

    fn read_range(
        &self,
        start: u64,
        end: Option<u64>,
    ) -> Result<Vec<Entry<TypeConfig>>, StoreError> {
        let mut out = Vec::new();
        self.db.scan(cf::LOG, &index_key(start), |k, v| {
            let index = index_of(k)?;
            if end.is_some_and(|e| index >= e) {
                return Ok(false);
            }
            let entry: Entry<TypeConfig> = self
                .db
                .open_value(cf::LOG, k, v, || format!("index {index}"))?;
            out.push(entry);
            Ok(true)
        })?;
        Ok(out)
    }
}

/// Adds to `b` the log records of a store that starts at `last_log_id`: an
/// empty log purged (and committed) up to it, and `vote`.
pub(crate) fn stage_restored(b: &mut Batch<'_>, last_log_id: LogId<NodeId>, vote: &Vote<NodeId>) {
    b.put(cf::META, LAST_PURGED, &last_log_id);
    b.put(cf::META, COMMITTED, &Some(last_log_id));
    b.put(cf::META, VOTE, vote);
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> SResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => Some(e.saturating_add(1)),
            Bound::Excluded(e) => Some(*e),
            Bound::Unbounded => None,
        };
        self.read_range(start, end)
            .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> SResult<LogState<TypeConfig>> {
        let read = |e: StoreError| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read);
        let last_purged_log_id: Option<LogId<NodeId>> = self.meta(LAST_PURGED).map_err(read)?;
        let last_log_id = match self.db.last_key(cf::LOG).map_err(read)? {
            None => last_purged_log_id,
            Some(k) => {
                let index = index_of(&k).map_err(read)?;
                let entry: Option<Entry<TypeConfig>> = self
                    .db
                    .get(cf::LOG, &k, || format!("index {index}"))
                    .map_err(read)?;
                entry.map(|e| e.log_id).or(last_purged_log_id)
            }
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> SResult<()> {
        let mut b = self.db.batch();
        b.put(cf::META, VOTE, vote);
        self.db
            .write(b)
            .map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> SResult<Option<Vote<NodeId>>> {
        self.meta(VOTE)
            .map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Read))
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> SResult<()> {
        // Not synced: it only saves re-applying entries after a restart,
        // and a committed id can only name entries durable on a majority.
        let mut b = self.db.batch();
        b.put(cf::META, COMMITTED, &committed);
        self.db
            .write_unsynced(b)
            .map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Write))?;
        if let Some(c) = committed {
            self.committed
                .fetch_max(c.index, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> SResult<Option<LogId<NodeId>>> {
        let v: Option<Option<LogId<NodeId>>> = self
            .meta(COMMITTED)
            .map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Read))?;
        Ok(v.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> SResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Written now (readable at once), durable when the syncer reports
        // it: Raft counts the entries only then (see `syncer`).
        let mut b = self.db.batch();
        for entry in entries {
            b.put(cf::LOG, &index_key(entry.log_id.index), &entry);
        }
        match self.db.write_unsynced(b) {
            Ok(()) => {
                self.syncer.after_sync(self.db.clone(), callback);
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e.into_raft(ErrorSubject::Logs, ErrorVerb::Write))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> SResult<()> {
        let mut b = self.db.batch();
        b.delete_range(cf::LOG, &index_key(log_id.index), &index_key(u64::MAX));
        b.delete(cf::LOG, &index_key(u64::MAX));
        self.db
            .write(b)
            .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> SResult<()> {
        // Record the purge point and drop the entries in one atomic write.
        let mut b = self.db.batch();
        b.put(cf::META, LAST_PURGED, &log_id);
        b.delete_range(
            cf::LOG,
            &index_key(0),
            &index_key(log_id.index.saturating_add(1)),
        );
        self.db
            .write(b)
            .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Delete))
    }
}
