//! The store keeps what it acknowledged across restarts, and moves state
//! between nodes through snapshots without changing it.

mod common;

use common::*;
use std::sync::Arc;

use hsm_proto::{KeyId, NodeId};
use hsm_raft_store::{create, open, StateMachineStore, StorageKey, TypeConfig};
use openraft::storage::{
    RaftLogStorage, RaftLogStorageExt, RaftSnapshotBuilder, RaftStateMachine, Snapshot,
};
use openraft::{CommittedLeaderId, LogId, RaftLogReader, Vote};

#[tokio::test]
async fn reopen_after_drop_keeps_vote_log_state_and_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = StorageKey::from_bytes([5; 32]);
    let mut chain = Chain::new();
    let (digest, snapshot_meta, applied) = {
        let (mut log, mut sm) = create(dir.path(), &key).expect("created");
        log.save_vote(&Vote::new(3, NodeId(1))).await.expect("vote");
        let responses =
            append_and_apply(&mut log, &mut sm, setup_events(&mut chain, &[1; 40])).await;
        assert!(responses.iter().all(|r| r.result.is_ok()), "{responses:?}");
        let snap = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("snapshot");
        (
            sm.digest(),
            snap.meta,
            sm.applied_state().await.expect("applied"),
        )
    };

    let (mut log, mut sm) = open(dir.path(), &key).expect("reopens");
    assert_eq!(
        log.read_vote().await.expect("vote"),
        Some(Vote::new(3, NodeId(1)))
    );
    assert_eq!(
        log.try_get_log_entries(1..5).await.expect("entries").len(),
        4
    );
    assert_eq!(sm.digest(), digest);
    assert_eq!(sm.applied_state().await.expect("applied"), applied);
    assert!(sm.read(|a| a.state.key(KeyId(0x5eed)).is_some()));
    let current = sm
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("a snapshot");
    assert_eq!(current.meta, snapshot_meta);
}

/// A store with the setup events applied and a snapshot built.
async fn store_with_snapshot() -> (tempfile::TempDir, StateMachineStore, Snapshot<TypeConfig>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, mut sm) = create(dir.path(), &StorageKey::generate()).expect("created");
    append_and_apply(&mut log, &mut sm, setup_events(&mut Chain::new(), &[7; 40])).await;
    let snap = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");
    (dir, sm, snap)
}

#[tokio::test]
async fn snapshot_installed_on_another_store_gives_the_same_state() {
    let (_a_dir, mut a_sm, snap) = store_with_snapshot().await;
    let b_dir = tempfile::tempdir().expect("b");

    let b_key = StorageKey::generate();
    {
        let (_b_log, mut b_sm) = create(b_dir.path(), &b_key).expect("b created");
        let mut data = b_sm.begin_receiving_snapshot().await.expect("begin");
        *data = *snap.snapshot.clone();
        b_sm.install_snapshot(&snap.meta, data)
            .await
            .expect("install");
        assert_eq!(b_sm.digest(), a_sm.digest());
        assert_eq!(
            b_sm.applied_state().await.expect("applied"),
            a_sm.applied_state().await.expect("applied")
        );
    }
    // Installed state survives a restart of the receiving node.
    let (_b_log, b_sm) = open(b_dir.path(), &b_key).expect("b reopens");
    assert_eq!(b_sm.digest(), a_sm.digest());
}

#[tokio::test]
async fn a_damaged_snapshot_is_refused_at_install() {
    let (_a_dir, _a_sm, snap) = store_with_snapshot().await;
    let b_dir = tempfile::tempdir().expect("b");
    let (_b_log, mut b_sm) = create(b_dir.path(), &StorageKey::generate()).expect("b created");
    let before = b_sm.digest();
    let mut bytes = snap.snapshot.into_inner();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    let err = b_sm
        .install_snapshot(&snap.meta, Box::new(std::io::Cursor::new(bytes)))
        .await
        .expect_err("damaged snapshot refused");
    assert!(err.to_string().contains("snapshot"), "{err}");
    assert_eq!(b_sm.digest(), before, "nothing installed");
}

#[tokio::test]
async fn purged_log_stays_purged_and_state_survives_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = StorageKey::generate();
    let mut chain = Chain::new();
    let digest = {
        let (mut log, mut sm) = create(dir.path(), &key).expect("created");
        append_and_apply(&mut log, &mut sm, setup_events(&mut chain, &[9; 40])).await;
        let snap = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build");
        let upto = snap.meta.last_log_id.expect("snapshot has a log id");
        log.purge(upto).await.expect("purge");
        let state = log.get_log_state().await.expect("log state");
        assert_eq!(state.last_purged_log_id, Some(upto));
        assert_eq!(state.last_log_id, Some(upto));
        assert!(log
            .try_get_log_entries(0..10)
            .await
            .expect("read")
            .is_empty());
        sm.digest()
    };
    let (mut log, sm) = open(dir.path(), &key).expect("reopens");
    let state = log.get_log_state().await.expect("log state");
    assert_eq!(
        state.last_purged_log_id,
        Some(LogId::new(CommittedLeaderId::new(1, NODE), 5))
    );
    assert_eq!(sm.digest(), digest);
}

#[test]
fn open_refuses_a_missing_store_and_create_refuses_an_occupied_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = StorageKey::generate();
    let missing = dir.path().join("not-mounted");
    let err = open(&missing, &key).expect_err("no store there");
    assert!(err.to_string().contains("no store"), "{err}");
    assert!(!missing.exists(), "open must not create a directory");
    drop(create(&missing, &key).expect("created"));
    let err = create(&missing, &key).expect_err("occupied");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert!(open(&missing, &key).is_ok());
}

/// A log cut short in the middle of its last record (a full disk, or a
/// kill in the middle of a write that was never synced) opens without that
/// write, with or without the failed-write marker; earlier writes stay.
#[tokio::test]
async fn a_log_cut_short_in_its_last_record_opens_without_that_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = StorageKey::from_bytes([6; 32]);
    let mut chain = Chain::new();
    {
        let (mut log, mut sm) = create(dir.path(), &key).expect("created");
        let responses =
            append_and_apply(&mut log, &mut sm, setup_events(&mut chain, &[1; 40])).await;
        assert!(responses.iter().all(|r| r.result.is_ok()), "{responses:?}");
    }
    // Cut the newest write-ahead log short, as a full disk or a crash in
    // the middle of an append would.
    let wal = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 100))
        .max()
        .expect("a write-ahead log");
    let len = std::fs::metadata(&wal).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .expect("open");
    f.set_len(len - 7).expect("truncate");
    drop(f);

    let (mut log, _sm) = open(dir.path(), &key).expect("opens without the torn write");
    let kept = log.try_get_log_entries(1..6).await.expect("entries").len();
    assert!(kept >= 4, "only {kept} entries kept");
}

/// A joining node's roster is kept across restarts and trusted only until
/// the replica has applied as many events.
#[tokio::test]
async fn a_roster_is_kept_and_trusted_until_the_replica_catches_up_with_it() {
    let source_dir = tempfile::tempdir().expect("tempdir");
    let mut chain = Chain::new();
    let events = setup_events(&mut chain, &[2; 40]);
    let roster = {
        let (mut log, mut sm) =
            create(source_dir.path(), &StorageKey::generate()).expect("created");
        append_and_apply(&mut log, &mut sm, events.clone()).await;
        sm.read(|a| a.state.roster())
    };
    assert!(roster.cluster().is_some());

    let dir = tempfile::tempdir().expect("tempdir");
    let key = StorageKey::from_bytes([6; 32]);
    {
        let (_, sm) = create(dir.path(), &key).expect("created");
        assert!(
            sm.read(|a| a.trusted().cluster().is_none()),
            "an empty replica trusts no one"
        );
        assert!(sm.trust_roster(&roster).expect("roster"));
        // A roster no further along (this one again, an older one) is
        // not taken.
        assert!(!sm.trust_roster(&roster).expect("roster"));
    }
    let (mut log, mut sm) = open(dir.path(), &key).expect("reopens");
    assert!(sm.read(|a| a.state.cluster().is_none()));
    assert_eq!(sm.read(|a| a.trusted().digest()), roster.digest());
    let mut events = events;
    let rest = events.split_off(1);
    append_and_apply(&mut log, &mut sm, events).await;
    // A replica behind the roster (a snapshot older than the roster, say)
    // still goes by the roster.
    assert!(sm.read(|a| a.state.cluster().is_some()));
    assert_eq!(sm.read(|a| a.trusted().digest()), roster.digest());
    append_and_apply(&mut log, &mut sm, rest).await;
    // Once it has applied as many events as the roster records, the
    // replica itself is what counts, and that roster is of no more use.
    assert_eq!(sm.read(|a| a.trusted().digest()), sm.digest());
    assert_ne!(sm.digest(), roster.digest());
    assert!(!sm.trust_roster(&roster).expect("roster"));
    assert_eq!(sm.read(|a| a.trusted().digest()), sm.digest());
}

/// The newest write-ahead log file of a store.
fn newest_wal(dir: &std::path::Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a write-ahead log file")
}

/// A process killed in the middle of a write leaves a torn record at the
/// end of the write-ahead log (RocksDB writes a record in more than one
/// system call), from a write that had not been synced, so never
/// acknowledged. Found by a chaos long run: a member killed mid-write
/// could never open its store again ("Corruption: truncated record
/// body"), and the cluster never had its fifth member back. The open must
/// drop the torn tail and keep everything acknowledged.
#[tokio::test]
async fn a_record_torn_by_a_kill_is_dropped_and_every_acknowledged_write_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = StorageKey::from_bytes([8; 32]);
    let digest = {
        let (mut log, mut sm) = create(dir.path(), &key).expect("created");
        append_and_apply(&mut log, &mut sm, setup_events(&mut Chain::new(), &[3; 40])).await;
        sm.digest()
    };
    // The header of a full record (checksum, length, type) announcing 1000
    // bytes, and the first 20 of them: where the kill cut the write.
    let mut torn = vec![0u8; 4];
    torn.extend_from_slice(&1000u16.to_le_bytes());
    torn.push(1);
    torn.extend_from_slice(&[0x5a; 20]);
    let wal = newest_wal(dir.path());
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&wal)
        .expect("open the log file");
    std::io::Write::write_all(&mut file, &torn).expect("append");
    drop(file);

    let (mut log, sm) = open(dir.path(), &key).expect("a torn tail does not stop the open");
    assert_eq!(sm.digest(), digest);
    assert_eq!(
        log.try_get_log_entries(1..6).await.expect("entries").len(),
        5
    );
}

/// Raft reads the current snapshot (to send it to a member behind) on its
/// state-machine task while a new one is built on another; the reader must
/// get one whole snapshot, never the metadata of one with the chunks of the
/// next. The chaos run on e3aee1d stopped a node with "snapshot data does
/// not match its recorded hash" this way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_snapshot_read_while_a_new_one_is_built_is_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, mut sm) = create(dir.path(), &StorageKey::generate()).expect("created");
    let mut chain = Chain::new();
    append_and_apply(&mut log, &mut sm, setup_events(&mut chain, &[7; 40])).await;
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("first snapshot");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let mut sm = sm.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let current = sm.get_current_snapshot().await;
                assert!(
                    matches!(current, Ok(Some(_))),
                    "read {reads}: {:?}",
                    current.map(|s| s.map(|s| s.meta))
                );
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        })
    };
    let alice = hsm_proto::Actor::User(user("alice-known"));
    for i in 0..200u64 {
        // Each snapshot differs from the last: one more key.
        let created = chain.event(
            alice.clone(),
            hsm_proto::EventBody::KeyCreated {
                key: KeyId(0x1_0000 + i),
                spec: hsm_proto::KeySpec::Aes { bits: 256 },
                attributes: hsm_proto::KeyAttributes {
                    label: format!("race-{i}"),
                    ..hsm_proto::KeyAttributes::default()
                },
                provenance: hsm_proto::KeyProvenance::known_outside(hsm_proto::KeyOrigin::Imported),
                domain_generation: 0,
                wrapped_material: vec![i as u8; 40],
                public_key: Vec::new(),
                unique_label: true,
            },
        );
        let entry = chain.entry(created);
        let out = append_and_apply(&mut log, &mut sm, vec![entry]).await;
        assert!(out[0].result.is_ok(), "{out:?}");
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("snapshot");
        if reader.is_finished() {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.await.expect("every read was of one whole snapshot");
    assert!(reads > 0);
}

/// Applies are written without a sync (the log entries they come from
/// were synced before Raft counted them), so a machine that crashes can
/// come back with its state behind its log: the last applies lost, their
/// entries kept. That store must open, and Raft must apply those entries
/// again at start, to the very state the node had before the crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_behind_its_log_after_a_crash_catches_up_from_the_log_at_start() {
    let key = StorageKey::from_bytes([9; 32]);
    // A Raft log starts at index 0 (openraft's first entry).
    let first = openraft::Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(1, NODE), 0),
        payload: openraft::EntryPayload::Blank,
    };
    let entries: Vec<_> = std::iter::once(first)
        .chain(setup_events(&mut Chain::new(), &[4; 40]))
        .collect();
    assert!(entries.len() > 3, "{} entries", entries.len());
    let whole = {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, mut sm) = create(dir.path(), &key).expect("created");
        append_and_apply(&mut log, &mut sm, entries.clone()).await;
        sm.digest()
    };

    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut log, mut sm) = create(dir.path(), &key).expect("created");
        log.blocking_append(entries.clone()).await.expect("append");
        // Only the first three applies reached the disk.
        sm.apply(entries[..3].to_vec()).await.expect("apply");
        log.save_committed(entries.last().map(|e| e.log_id))
            .await
            .expect("committed");
    }
    let (log, sm) = open(dir.path(), &key).expect("a state behind its log opens");
    assert_ne!(sm.digest(), whole, "the state starts behind");
    let config = openraft::Config::default().validate().expect("config");
    let raft = openraft::Raft::<TypeConfig>::new(NODE, Arc::new(config), NoPeers, log, sm.clone())
        .await
        .expect("raft starts");
    assert_eq!(
        sm.digest(),
        whole,
        "the committed entries are applied again"
    );
    assert_eq!(
        sm.read(|a| a.applied.map(|l| l.index)),
        entries.last().map(|e| e.log_id.index)
    );
    raft.shutdown().await.expect("shutdown");
}
