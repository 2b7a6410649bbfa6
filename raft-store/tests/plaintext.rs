//! Key material, passwords, user names and labels never reach the data
//! directory in plaintext: not raw, not hex, not base64.

mod common;
mod secret_scan;

use common::*;
use hsm_raft_store::{create, StorageKey};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use secret_scan::find;

/// Distinctive material: no run of it can occur by chance.
const MATERIAL: [u8; 32] = [
    0x8e, 0x21, 0xf3, 0x5a, 0x07, 0xc4, 0x9d, 0x62, 0xb8, 0x13, 0xe7, 0x4f, 0x30, 0xa9, 0x56, 0xdb,
    0x1c, 0x75, 0xfa, 0x88, 0x03, 0x6e, 0xc1, 0x94, 0x2b, 0xd0, 0x47, 0xbe, 0x69, 0x15, 0xe2, 0x7d,
];

#[tokio::test]
async fn no_secret_or_name_appears_in_plaintext_anywhere_in_the_data_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut log, mut sm) = create(dir.path(), &StorageKey::generate()).expect("created");
        let mut chain = Chain::new();
        let responses =
            append_and_apply(&mut log, &mut sm, setup_events(&mut chain, &MATERIAL)).await;
        assert!(responses.iter().all(|r| r.result.is_ok()), "{responses:?}");
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("snapshot");
        // Leave some of it in memtables and WAL, and some in SST files.
        sm.flush().expect("flush");
        let more = setup_events(&mut Chain::new(), &MATERIAL);
        let _ = sm.apply(more).await.expect("apply");
    }
    let secrets: [(&str, &[u8]); 5] = [
        ("key material", &MATERIAL),
        ("admin password hash", ADMIN_HASH.as_bytes()),
        ("user password hash", ALICE_HASH.as_bytes()),
        ("user name", b"alice-known"),
        ("key label", b"known-label-tde-master"),
    ];
    for (what, secret) in secrets {
        let hits = find(dir.path(), secret);
        assert!(hits.is_empty(), "{what} found in plaintext: {hits:?}");
    }
}
