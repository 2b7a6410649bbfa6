//! Damage to stored data is found at open, named, and stops the store: a
//! flipped byte in RocksDB's files, an edited or moved value, a deleted log
//! entry, or the wrong storage key.

mod common;

use std::path::Path;

use common::*;
use hsm_raft_store::{create, open, StorageKey, StoreError};

const KEY: [u8; 32] = [0x11; 32];

/// A data directory with a few applied events, a snapshot, and then more
/// events, all flushed to SST files (or left in the WAL when `flush` is
/// false).
fn populated_dir(flush: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (mut log, mut sm) = create(dir.path(), &StorageKey::from_bytes(KEY)).expect("created");
        let mut chain = Chain::new();
        append_and_apply(&mut log, &mut sm, setup_events(&mut chain, &[0xab; 40])).await;
        if flush {
            sm.flush().expect("flush");
        }
    });
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    for (path, bytes) in files_under(from) {
        let rel = path.strip_prefix(from).expect("under dir");
        std::fs::write(to.join(rel), bytes).expect("copy");
    }
}

fn open_err(dir: &Path) -> Option<StoreError> {
    open(dir, &StorageKey::from_bytes(KEY)).err()
}

/// Flips one byte at each of `samples` spread positions of every file whose
/// name matches `is_target`, each time on a fresh copy, and requires the
/// open to fail. Returns how many flips were tried.
fn every_flip_is_detected(
    pristine: &Path,
    is_target: impl Fn(&str) -> bool,
    samples: usize,
) -> usize {
    let mut tried = 0;
    for (path, bytes) in files_under(pristine) {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if !is_target(&name) || bytes.is_empty() {
            continue;
        }
        let step = (bytes.len() / samples).max(1);
        for pos in (0..bytes.len()).step_by(step) {
            let copy = tempfile::tempdir().expect("tempdir");
            copy_dir(pristine, copy.path());
            let mut damaged = bytes.clone();
            damaged[pos] ^= 0x04;
            std::fs::write(copy.path().join(&name), damaged).expect("write damaged");
            assert!(
                open_err(copy.path()).is_some(),
                "flipped byte {pos} of {name} ({} bytes) was not detected",
                bytes.len()
            );
            tried += 1;
        }
    }
    tried
}

#[test]
fn the_pristine_directory_opens() {
    assert!(open_err(populated_dir(true).path()).is_none());
    assert!(open_err(populated_dir(false).path()).is_none());
}

#[test]
fn a_flipped_byte_in_an_sst_file_is_detected() {
    let dir = populated_dir(true);
    let tried = every_flip_is_detected(dir.path(), |n| n.ends_with(".sst"), 40);
    assert!(tried >= 40, "only {tried} flips tried: no SST files?");
}

#[test]
fn a_flipped_byte_in_the_write_ahead_log_is_detected() {
    let dir = populated_dir(false);
    let tried = every_flip_is_detected(dir.path(), |n| n.ends_with(".log") && n != "LOG", 60);
    assert!(tried >= 60, "only {tried} flips tried: no WAL?");
}

#[test]
fn a_flipped_byte_in_the_manifest_is_detected() {
    let dir = populated_dir(true);
    let tried = every_flip_is_detected(dir.path(), |n| n.starts_with("MANIFEST-"), 30);
    assert!(tried >= 30, "only {tried} flips tried: no MANIFEST?");
}

/// Opens the directory with plain RocksDB, as an attacker with disk access
/// would, and lets `f` edit it.
fn edit_raw(dir: &Path, f: impl FnOnce(&rocksdb::DB)) {
    let opts = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&opts, dir).expect("list cfs");
    let db = rocksdb::DB::open_cf(&opts, dir, cfs).expect("raw open");
    f(&db);
}

#[test]
fn a_value_edited_in_place_is_named_at_open() {
    let dir = populated_dir(true);
    edit_raw(dir.path(), |db| {
        let cf = db.cf_handle("log").expect("log cf");
        let key = 3u64.to_be_bytes();
        let mut v = db.get_cf(cf, key).expect("get").expect("entry 3");
        let last = v.len() - 1;
        v[last] ^= 1;
        db.put_cf(cf, key, v).expect("put");
    });
    match open_err(dir.path()) {
        Some(StoreError::Unseal {
            cf: "log", record, ..
        }) => assert_eq!(record, "index 3"),
        other => panic!("expected an unseal error naming log/index 3, got {other:?}"),
    }
}

#[test]
fn a_value_moved_to_another_record_is_named_at_open() {
    let dir = populated_dir(true);
    edit_raw(dir.path(), |db| {
        let cf = db.cf_handle("log").expect("log cf");
        let v = db
            .get_cf(cf, 2u64.to_be_bytes())
            .expect("get")
            .expect("entry 2");
        db.put_cf(cf, 4u64.to_be_bytes(), v).expect("put");
    });
    let err = open_err(dir.path()).expect("moved value refused");
    assert!(
        matches!(&err, StoreError::Unseal { cf: "log", record, .. } if record == "index 4"),
        "{err}"
    );
    assert!(
        err.to_string().contains("log/index 4"),
        "message names it: {err}"
    );
}

#[test]
fn a_state_record_copied_over_another_is_refused() {
    let dir = populated_dir(true);
    edit_raw(dir.path(), |db| {
        let cf = db.cf_handle("sm").expect("sm cf");
        let records: Vec<_> = db
            .iterator_cf(cf, rocksdb::IteratorMode::Start)
            .map(|r| r.expect("read"))
            .collect();
        assert!(records.len() >= 3);
        db.put_cf(cf, &records[0].0, &records[1].1).expect("put");
    });
    assert!(matches!(
        open_err(dir.path()),
        Some(StoreError::Unseal { cf: "sm", .. })
    ));
}

#[test]
fn a_deleted_log_entry_is_refused() {
    let dir = populated_dir(true);
    edit_raw(dir.path(), |db| {
        let cf = db.cf_handle("log").expect("log cf");
        db.delete_cf(cf, 2u64.to_be_bytes()).expect("delete");
    });
    let err = open_err(dir.path()).expect("gap refused");
    assert!(err.to_string().contains("gap"), "{err}");
}

#[test]
fn the_wrong_storage_key_is_refused() {
    let dir = populated_dir(true);
    let err = open(dir.path(), &StorageKey::from_bytes([0x12; 32])).expect_err("wrong key");
    assert!(matches!(err, StoreError::WrongKey), "{err}");
}
