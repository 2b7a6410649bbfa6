//! The RocksDB handle shared by the log store and the state machine.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rocksdb::{
    ColumnFamilyDescriptor, DBRecoveryMode, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};
use crate::seal::{Sealer, StorageKey};

/// Column families. Keys are never secret: log indexes, fixed names, and
/// keyed hashes of state record names.
pub(crate) mod cf {
    /// Raft log entries by big-endian index.
    pub const LOG: &str = "log";
    /// Vote, committed log id, last purged log id, key check.
    pub const META: &str = "meta";
    /// State machine records by keyed hash of their entity key.
    pub const SM: &str = "sm";
    /// Applied log id and membership of the state machine, and the audit
    /// trail (applied events under `audit\0` and their big-endian
    /// sequence number: in a family every build opens, so a store this
    /// build wrote still opens with an earlier one).
    pub const SM_META: &str = "sm_meta";
    /// The current snapshot: its meta and data chunks.
    pub const SNAPSHOT: &str = "snapshot";
    /// All of them.
    pub const ALL: [&str; 5] = [LOG, META, SM, SM_META, SNAPSHOT];
}

const KEY_CHECK: &[u8] = b"key_check";

/// The most the write-ahead log files may take together before RocksDB
/// flushes what keeps the oldest one.
const MAX_TOTAL_WAL_BYTES: u64 = 64 << 20;
const KEY_CHECK_VALUE: &[u8] = b"hsm-store key check v1";

/// One open data directory.
pub(crate) struct Db {
    db: DB,
    sealer: Sealer,
    poisoned: AtomicBool,
    marker: WriteFailedMarker,
}

/// A small file that records, when a write fails, that the write-ahead
/// log may end in a torn record of that (never acknowledged) write: a full
/// disk can cut a record short. The next open then drops a torn last
/// record instead of refusing to start; without the marker any damage in
/// the log stops the open. The file is made full size at every open, so
/// recording a failure overwrites bytes in place and needs no free space;
/// its content is a MAC under the storage key, so it cannot be forged to
/// hide damage.
struct WriteFailedMarker {
    path: std::path::PathBuf,
    tag: [u8; 32],
}

const MARKER_FILE: &str = "WRITE_FAILED";

impl WriteFailedMarker {
    fn new(dir: &Path, key: &StorageKey) -> WriteFailedMarker {
        let mac_key = key.derive("hsm-store write-failed marker v1");
        WriteFailedMarker {
            path: dir.join(MARKER_FILE),
            tag: *blake3::keyed_hash(&mac_key, b"the last write failed").as_bytes(),
        }
    }

    /// Whether the file records a failed write.
    fn is_set(&self) -> bool {
        std::fs::read(&self.path).is_ok_and(|b| b.as_slice() == self.tag.as_slice())
    }

    /// Makes the file full size and clear.
    fn reset(&self) -> Result<()> {
        self.overwrite(&[0u8; 32], true)
    }

    /// Records a failed write, in place.
    fn set(&self) {
        if let Err(e) = self.overwrite(&self.tag, false) {
            tracing::error!(error = %e, "cannot record the failed write");
        }
    }

    fn overwrite(&self, bytes: &[u8; 32], create: bool) -> Result<()> {
        use std::io::Write;
        let fail = |e: std::io::Error| {
            StoreError::Inconsistent(format!("cannot write {}: {e}", self.path.display()))
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(create)
            .truncate(false)
            .open(&self.path)
            .map_err(fail)?;
        f.write_all(bytes).map_err(fail)?;
        f.sync_all().map_err(fail)
    }
}

impl Db {
    /// Opens the data directory and checks that the storage key is the one
    /// it was created with. With `create`, the directory must be absent or
    /// empty and a new store is made in it; without, it must hold a store:
    /// a missing directory (an unmounted volume, a typo) is an error rather
    /// than a fresh, empty node that has forgotten its vote.
    pub(crate) fn open(dir: &Path, key: &StorageKey, create: bool) -> Result<Arc<Db>> {
        Db::open_with(dir, key, create, |_| Ok(()))
    }

    /// Creates a new store, like [`Db::open`] with `create`, whose first
    /// write holds the key check and whatever `fill` adds, in one batch.
    pub(crate) fn create_with(
        dir: &Path,
        key: &StorageKey,
        fill: impl FnOnce(&mut Batch<'_>) -> Result<()>,
    ) -> Result<Arc<Db>> {
        Db::open_with(dir, key, true, fill)
    }

    fn open_with(
        dir: &Path,
        key: &StorageKey,
        create: bool,
        fill: impl FnOnce(&mut Batch<'_>) -> Result<()>,
    ) -> Result<Arc<Db>> {
        if create {
            let occupied = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
            if occupied {
                return Err(StoreError::Inconsistent(format!(
                    "cannot create a store in {}: the directory is not empty",
                    dir.display()
                )));
            }
        } else if !dir.join("CURRENT").exists() {
            return Err(StoreError::Inconsistent(format!(
                "no store in {} (expected an existing data directory)",
                dir.display()
            )));
        }
        let marker = WriteFailedMarker::new(dir, key);
        let torn_tail_expected = !create && marker.is_set();
        let mut opts = Options::default();
        opts.create_if_missing(create);
        opts.create_missing_column_families(true);
        opts.set_paranoid_checks(true);
        // A log file stays until every column family with data in it is
        // flushed, and `meta` (the vote) is written once per election: with
        // RocksDB's default bound (four times all the write buffers, 1.25
        // GiB here) one vote pinned every later log file, and a chaos run's
        // 512 MiB disks filled (tests/disk_use.rs). Past this total the
        // families holding the oldest file are flushed, so it can go.
        opts.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
        // A damaged write-ahead log must stop the open, not silently drop
        // acknowledged writes at the damage point; but a torn record at its
        // very end is dropped: a write that failed (a full disk) or was cut
        // by a kill (RocksDB writes a record in more than one system call)
        // left it, and that write was never synced, so never acknowledged.
        // Refusing it left a killed node unable to start again
        // (tests/durability.rs).
        if torn_tail_expected {
            tracing::warn!(
                dir = %dir.display(),
                "the last write before this start failed (a full disk?); \
                 a torn record it left at the end of the write-ahead log is dropped"
            );
        }
        opts.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
        let cfs = cf::ALL
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        crate::manifest_check::check(dir)?;
        let db = DB::open_cf_descriptors(&opts, dir, cfs)
            .map_err(|source| StoreError::Rocks { op: "open", source })?;
        let db = Db {
            db,
            sealer: Sealer::new(key),
            poisoned: AtomicBool::new(false),
            marker,
        };
        if create {
            // The key check goes in the same write as the initial content: a
            // store without it does not open, so a failed create is never
            // mistaken for an empty store.
            let mut b = db.batch();
            b.put_bytes(cf::META, KEY_CHECK, KEY_CHECK_VALUE);
            fill(&mut b)?;
            db.write(b)?;
        }
        db.check_key()?;
        db.marker.reset()?;
        Ok(Arc::new(db))
    }

    fn check_key(&self) -> Result<()> {
        match self.get_raw(cf::META, KEY_CHECK)? {
            None => Err(StoreError::Inconsistent(
                "the storage key check record is missing".into(),
            )),
            Some(sealed) => {
                let opened = self
                    .sealer
                    .open(cf::META, KEY_CHECK, &sealed, || "key_check".into())
                    .map_err(|_| StoreError::WrongKey)?;
                if opened.as_slice() == KEY_CHECK_VALUE {
                    Ok(())
                } else {
                    Err(StoreError::WrongKey)
                }
            }
        }
    }

    fn handle(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Inconsistent(format!("column family {name} is missing")))
    }

    fn check_poison(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            Err(StoreError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn get_raw(&self, name: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_poison()?;
        let cf = self.handle(name)?;
        self.db
            .get_cf(&cf, key)
            .map_err(|source| StoreError::Rocks { op: "get", source })
    }

    /// Reads, opens and decodes one value.
    pub(crate) fn get<T: DeserializeOwned>(
        &self,
        name: &'static str,
        key: &[u8],
        record: impl Fn() -> String,
    ) -> Result<Option<T>> {
        let Some(sealed) = self.get_raw(name, key)? else {
            return Ok(None);
        };
        self.open_value(name, key, &sealed, record).map(Some)
    }

    /// Opens and decodes a raw value read from `name` at `key`.
    pub(crate) fn open_value<T: DeserializeOwned>(
        &self,
        name: &'static str,
        key: &[u8],
        sealed: &[u8],
        record: impl Fn() -> String,
    ) -> Result<T> {
        let plain = self.sealer.open(name, key, sealed, &record)?;
        hsm_proto::codec::decode("stored value", &plain).map_err(|source| StoreError::Decode {
            cf: name,
            record: record(),
            source,
        })
    }

    /// Visits every raw `(key, sealed value)` of a column family in key
    /// order, from `from` on, stopping when `f` returns false.
    pub(crate) fn scan(
        &self,
        name: &'static str,
        from: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.check_poison()?;
        let cf = self.handle(name)?;
        let iter = self
            .db
            .iterator_cf(&cf, IteratorMode::From(from, rocksdb::Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(|source| StoreError::Rocks { op: "scan", source })?;
            if !f(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    /// The last key of a column family.
    pub(crate) fn last_key(&self, name: &'static str) -> Result<Option<Box<[u8]>>> {
        self.check_poison()?;
        let cf = self.handle(name)?;
        match self.db.iterator_cf(&cf, IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => item
                .map(|(k, _)| Some(k))
                .map_err(|source| StoreError::Rocks { op: "seek", source }),
        }
    }

    pub(crate) fn batch(&self) -> Batch<'_> {
        Batch {
            db: self,
            inner: WriteBatch::default(),
            error: None,
        }
    }

    /// Writes a batch atomically and syncs the write-ahead log before
    /// returning. A failed write poisons the store.
    pub(crate) fn write(&self, batch: Batch<'_>) -> Result<()> {
        self.write_with(batch, true)
    }

    /// Writes a batch atomically without waiting for the disk: it is in
    /// the write-ahead log (the operating system's cache) when this
    /// returns, and durable once any later synced write returns (RocksDB
    /// keeps one write-ahead log in write order). A failed write poisons
    /// the store.
    pub(crate) fn write_unsynced(&self, batch: Batch<'_>) -> Result<()> {
        self.write_with(batch, false)
    }

    fn write_with(&self, batch: Batch<'_>, sync: bool) -> Result<()> {
        self.check_poison()?;
        if let Some(e) = batch.error {
            // The caller may already have changed memory to match this
            // batch; refusing it without poisoning would let them diverge.
            self.poisoned.store(true, Ordering::Release);
            return Err(e);
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch.inner, &opts).map_err(|source| {
            self.poisoned.store(true, Ordering::Release);
            self.marker.set();
            tracing::error!(error = %source, "store write failed; store is poisoned");
            StoreError::Rocks {
                op: "write",
                source,
            }
        })
    }

    /// Syncs the write-ahead log: every write made before this call is
    /// durable when it returns. A failed sync poisons the store.
    pub(crate) fn sync_wal(&self) -> Result<()> {
        self.check_poison()?;
        self.db.flush_wal(true).map_err(|source| {
            self.poisoned.store(true, Ordering::Release);
            self.marker.set();
            tracing::error!(error = %source, "store sync failed; store is poisoned");
            StoreError::Rocks { op: "sync", source }
        })
    }

    /// Flushes memtables to SST files (used by tests and before backups).
    pub fn flush(&self) -> Result<()> {
        for name in cf::ALL {
            let cf = self.handle(name)?;
            self.db.flush_cf(&cf).map_err(|source| StoreError::Rocks {
                op: "flush",
                source,
            })?;
        }
        Ok(())
    }
}

/// A write batch whose values are sealed as they are added.
pub(crate) struct Batch<'a> {
    db: &'a Db,
    inner: WriteBatch,
    error: Option<StoreError>,
}

impl Batch<'_> {
    /// Seals and adds `plaintext` at `key`.
    pub(crate) fn put_bytes(&mut self, name: &'static str, key: &[u8], plaintext: &[u8]) {
        match self.db.handle(name) {
            Ok(cf) => {
                let sealed = self.db.sealer.seal(name, key, plaintext);
                self.inner.put_cf(&cf, key, sealed);
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// Encodes, seals and adds `value` at `key`.
    pub(crate) fn put<T: Serialize>(&mut self, name: &'static str, key: &[u8], value: &T) {
        match hsm_proto::codec::encode("stored value", value) {
            Ok(bytes) => self.put_bytes(name, key, &Zeroizing::new(bytes)),
            Err(e) => self.error = Some(StoreError::Encode(e)),
        }
    }

    pub(crate) fn delete(&mut self, name: &'static str, key: &[u8]) {
        match self.db.handle(name) {
            Ok(cf) => self.inner.delete_cf(&cf, key),
            Err(e) => self.error = Some(e),
        }
    }

    /// Deletes keys in `[from, to)`.
    pub(crate) fn delete_range(&mut self, name: &'static str, from: &[u8], to: &[u8]) {
        match self.db.handle(name) {
            Ok(cf) => self.inner.delete_range_cf(&cf, from, to),
            Err(e) => self.error = Some(e),
        }
    }
}
