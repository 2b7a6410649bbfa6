//! Key material, passwords, user names and labels never reach the data
//! directory in plaintext: not raw, not hex, not base64.

mod common;

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use hsm_raft_store::{create, StorageKey};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};

/// Distinctive material: no run of it can occur by chance.
const MATERIAL: [u8; 32] = [
    0x8e, 0x21, 0xf3, 0x5a, 0x07, 0xc4, 0x9d, 0x62, 0xb8, 0x13, 0xe7, 0x4f, 0x30, 0xa9, 0x56, 0xdb,
    0x1c, 0x75, 0xfa, 0x88, 0x03, 0x6e, 0xc1, 0x94, 0x2b, 0xd0, 0x47, 0xbe, 0x69, 0x15, 0xe2, 0x7d,
];

/// The forms a secret could be written in. For base64 every alignment is
/// covered by encoding the secret from offsets 0, 1 and 2 and dropping the
/// last, partial characters.
fn encodings(secret: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("raw".to_string(), secret.to_vec()),
        ("hex".to_string(), hex::encode(secret).into_bytes()),
        ("HEX".to_string(), hex::encode_upper(secret).into_bytes()),
    ];
    for offset in 0..3 {
        for (name, engine) in [("base64", &STANDARD), ("base64url", &URL_SAFE_NO_PAD)] {
            let enc = engine.encode(&secret[offset..]);
            let keep = enc.trim_end_matches('=').len().saturating_sub(2);
            out.push((format!("{name}@{offset}"), enc.as_bytes()[..keep].to_vec()));
        }
    }
    out
}

/// Every (file, encoding) pair under `dir` containing `secret`.
fn find(dir: &Path, secret: &[u8]) -> Vec<String> {
    let forms = encodings(secret);
    let mut hits = Vec::new();
    for (path, bytes) in files_under(dir) {
        for (name, needle) in &forms {
            if bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
                hits.push(format!("{} ({name})", path.display()));
            }
        }
    }
    hits
}

#[test]
fn the_scanner_finds_each_encoding_when_it_is_there() {
    for (name, needle) in encodings(&MATERIAL) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut content = b"prefix ".to_vec();
        content.extend_from_slice(&needle);
        std::fs::write(dir.path().join("control"), content).expect("write");
        let hits = find(dir.path(), &MATERIAL);
        assert!(
            hits.iter().any(|h| h.ends_with(&format!("({name})"))),
            "{name} not found by the scanner: {hits:?}"
        );
    }
}

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
