//! Group commit of the Raft log: appends are written without waiting for
//! the disk, and one thread syncs the write-ahead log for every append
//! written since its last sync, then tells Raft each of them is durable.
//!
//! Raft may count an entry (towards a commit on the leader, in its answer
//! on a follower) only once it is durable, which is what the flush
//! callback reports; so syncing later, once for every append waiting,
//! keeps Raft's rule while the fsync leaves the async workers. (openraft
//! 0.9 waits for each flush before its next append, so one append waits at
//! a time there; the leader batches writes into entries instead.)
//! RocksDB keeps one write-ahead log in write order, so a sync makes every
//! earlier write durable, whichever column family it went to.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use openraft::storage::LogFlushed;

use crate::db::Db;
use crate::TypeConfig;

/// One append written and waiting for its sync.
struct Waiting {
    db: Arc<Db>,
    flushed: LogFlushed<TypeConfig>,
}

/// How many syncs the syncer made and how many appends they covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Write-ahead log syncs made for appends.
    pub syncs: u64,
    /// Appends made durable by them.
    pub appends: u64,
}

#[derive(Default)]
struct Counters {
    syncs: AtomicU64,
    appends: AtomicU64,
}

/// The handle of the syncing thread; it stops when the last handle is
/// dropped and nothing waits.
pub(crate) struct Syncer {
    tx: Mutex<Sender<Waiting>>,
    counters: Arc<Counters>,
}

impl Syncer {
    /// Starts the syncing thread.
    ///
    /// # Errors
    /// If the thread cannot be started.
    pub(crate) fn start() -> std::io::Result<Syncer> {
        let (tx, rx) = channel();
        let counters = Arc::new(Counters::default());
        let theirs = counters.clone();
        std::thread::Builder::new()
            .name("hsm-log-sync".into())
            .spawn(move || run(&rx, &theirs))?;
        Ok(Syncer {
            tx: Mutex::new(tx),
            counters,
        })
    }

    /// Reports `flushed` once everything written to `db` so far is
    /// durable (or the sync failed).
    pub(crate) fn after_sync(&self, db: Arc<Db>, flushed: LogFlushed<TypeConfig>) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(returned) = tx.send(Waiting { db, flushed }) {
            // The thread is gone (it only ends when every handle is
            // dropped, so this is not expected): sync here.
            let Waiting { db, flushed } = returned.0;
            flushed.log_io_completed(
                db.sync_wal()
                    .map_err(|e| std::io::Error::other(e.to_string())),
            );
        }
    }

    pub(crate) fn stats(&self) -> SyncStats {
        SyncStats {
            syncs: self.counters.syncs.load(Ordering::Relaxed),
            appends: self.counters.appends.load(Ordering::Relaxed),
        }
    }
}

fn run(rx: &Receiver<Waiting>, counters: &Counters) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        let result = waiting[0].db.sync_wal();
        counters.syncs.fetch_add(1, Ordering::Relaxed);
        counters
            .appends
            .fetch_add(waiting.len() as u64, Ordering::Relaxed);
        for w in waiting {
            let outcome = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            w.flushed.log_io_completed(outcome);
        }
    }
}
