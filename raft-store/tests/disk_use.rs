//! The write-ahead log stays bounded however long a node runs.
//!
//! Found by a chaos run (issue 12): RocksDB keeps a write-ahead log file
//! until every column family with data in it has been flushed, and the
//! `meta` family (the vote) is written once per election. So the vote
//! written at the start pinned every later log file: after 33 minutes the
//! two members that were never replaced had 380 MiB of them on their
//! 512 MiB disks, filled them, could not open their stores again after a
//! restart, and the cluster lost its quorum for good.

mod common;

use common::*;
use hsm_proto::{EventBody, KeyAttributes, KeyId, KeySpec, NodeId};
use hsm_raft_store::{create, StorageKey};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::Vote;

const MIB: u64 = 1 << 20;

/// Total size of the write-ahead log files in `dir`.
fn wal_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

#[tokio::test]
async fn a_vote_written_once_does_not_pin_the_write_ahead_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = StorageKey::from_bytes([5; 32]);
    let (mut log, _sm) = create(dir.path(), &key).expect("created");
    log.save_vote(&Vote::new(1, NodeId(1))).await.expect("vote");

    // 192 MiB of log entries (64 KiB of key material each), as a long run
    // of writes would append them; the vote is never written again.
    let mut chain = Chain::new();
    let material = vec![7u8; 64 * 1024];
    let mut most = 0;
    for batch in 0..96 {
        let entries = (0..32)
            .map(|i| {
                let event = chain.event(
                    hsm_proto::Actor::User(user("alice")),
                    EventBody::KeyCreated {
                        key: KeyId(batch * 32 + i),
                        spec: KeySpec::Aes { bits: 256 },
                        attributes: KeyAttributes::default(),
                        provenance: hsm_proto::KeyProvenance::known_outside(
                            hsm_proto::KeyOrigin::Imported,
                        ),
                        domain_generation: 0,
                        wrapped_material: material.clone(),
                        public_key: Vec::new(),
                        unique_label: false,
                    },
                );
                chain.entry(event)
            })
            .collect::<Vec<_>>();
        log.blocking_append(entries).await.expect("append");
        most = most.max(wal_bytes(dir.path()));
    }
    eprintln!("the write-ahead log took {} MiB at most", most / MIB);
    assert!(
        most <= 128 * MIB,
        "the write-ahead log grew to {} MiB after 192 MiB of entries",
        most / MIB
    );
}
