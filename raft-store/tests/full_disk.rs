//! A full disk: the failing write is an error, the store refuses further work
//! (poisoned), and after space is freed a reopen has every acknowledged write.
//!
//! Needs to mount a small tmpfs, so it runs as root (as CI does, where it
//! must run); elsewhere it says that it was skipped and why.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use hsm_proto::{Actor, EventBody, KeyAttributes, KeyId, KeySpec};
use hsm_raft_store::{create, open, StorageKey};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{RaftLogReader, Vote};

struct Tmpfs<'a>(&'a Path);

impl Tmpfs<'_> {
    fn mount<'a>(dir: &'a Path, size: &str) -> Option<Tmpfs<'a>> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.0)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount failed");
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_poisons_the_store_and_loses_no_acknowledged_write() {
    let mount_point = tempfile::tempdir().expect("tempdir");
    let Some(fs) = Tmpfs::mount(mount_point.path(), "3m") else {
        // CI runs as root and must run this test; elsewhere say why not.
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot mount a tmpfs under CI, so the full-disk test cannot run"
        );
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let dir = mount_point.path().join("data");
    let key = StorageKey::from_bytes([0x33; 32]);
    let mut chain = Chain::new();
    let mut acknowledged: u64;
    let failure;
    {
        let (mut log, mut sm) = create(&dir, &key).expect("created");
        append_and_apply(&mut log, &mut sm, setup_events(&mut chain, &[1; 32])).await;
        acknowledged = 4;
        let alice = Actor::User(user("alice-known"));
        let mut n = 0u64;
        failure = loop {
            n += 1;
            assert!(n < 10_000, "the disk never filled up");
            let event = chain.event(
                alice.clone(),
                EventBody::KeyCreated {
                    key: KeyId(n),
                    spec: KeySpec::Aes { bits: 256 },
                    attributes: KeyAttributes::default(),
                    provenance: hsm_proto::KeyProvenance::known_outside(
                        hsm_proto::KeyOrigin::Imported,
                    ),
                    domain_generation: 0,
                    wrapped_material: vec![n as u8; 16 * 1024],
                    public_key: Vec::new(),
                    unique_label: false,
                },
            );
            let entry = chain.entry(event);
            let index = entry.log_id.index;
            match log.blocking_append([entry.clone()]).await {
                Ok(()) => acknowledged = index,
                Err(e) => break e.to_string(),
            }
            if let Err(e) = sm.apply([entry]).await {
                break e.to_string();
            }
        };
        // Every later call is refused, not half-done.
        let later = log.save_vote(&Vote::new(9, hsm_proto::NodeId(1))).await;
        let later = later
            .expect_err("poisoned store refuses writes")
            .to_string();
        assert!(later.contains("poisoned"), "{later}");
    }
    eprintln!("disk full after {acknowledged} entries: {failure}");
    assert!(!failure.is_empty());
    assert!(
        acknowledged > 4,
        "nothing was written before the disk filled"
    );

    fs.grow("64m");
    let (mut log, sm) = open(&dir, &key).expect("reopens once there is space");
    let entries = log
        .try_get_log_entries(1..=acknowledged)
        .await
        .expect("read log");
    assert_eq!(
        entries.len() as u64,
        acknowledged,
        "an acknowledged entry was lost"
    );
    assert!(sm.read(|a| a.state.key(KeyId(0x5eed)).is_some()));
}
