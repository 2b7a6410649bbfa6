//! The audit trail archived beside the backups by real `hsm-node`
//! processes, then read and checked offline by `hsm audit` with the
//! recovery key alone: intact, listed by user, key and time; and tampered
//! with as someone with write access to the bucket would (a flipped byte in
//! a segment, a segment deleted, a segment rewritten with two events
//! swapped and one dropped, sealed to the recovery *public* key and signed
//! by a key of the attacker's own): each is reported, where it is.

mod procs;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hsm_backup::audit::{audit_destination, list_segments, read_segment, write_segment};
use hsm_backup::{BackupDomainKey, BackupKeys, Destination, Opener, RecoveryKey};
use hsm_proto::mechanism::SignMechanism;
use procs::cli::{message, Hsm};
use procs::{copy_tree, signing, user, Cluster};

const ADMIN: &str = "audit-admin-password";
const ALICE: &str = "audit-alice-password";

fn audit_args<'a>(command: &'a str, url: &'a str, key: &'a str) -> Vec<&'a str> {
    vec!["audit", command, "--from", url, "--recovery-key", key]
}

/// The segment folders of an archive under `backups`, in order.
fn segment_dirs(backups: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(backups.join("audit"))
        .expect("the archive")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("manifest").exists())
        .collect();
    dirs.sort();
    dirs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archived_trail_checks_out_offline_and_every_tampering_is_reported() {
    // The leader archives every second here (10 s by default), and every
    // node writes its key use counts every second (60 s by default).
    let cluster = Cluster::start_with_env(
        3,
        &[
            ("HSM_NODE_BACKUP_AUDIT_INTERVAL_S", "1"),
            ("HSM_NODE_BACKUP_KEY_USE_INTERVAL_S", "1"),
        ],
    );
    cluster.wait_ready().await;
    let (admin, alice, key) = cluster.with_alice(ADMIN, ALICE, "audited").await;
    alice
        .sign(key, SignMechanism::Ed25519, b"audited message".to_vec())
        .await
        .expect("sign");
    // Three more in one request: each counts.
    for signed in alice
        .sign_many(
            key,
            SignMechanism::Ed25519,
            [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()],
        )
        .await
    {
        signed.expect("sign");
    }
    // A wrong password: a failed login in the trail.
    let stranger = cluster.client().await;
    assert!(stranger
        .login(user("alice"), "not-alices-password")
        .await
        .is_err());
    // More events, in later segments (the archiver writes every second).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..3 {
        alice
            .generate_key(
                hsm_proto::KeySpec::Ed25519,
                signing(&format!("more-{i}")),
                false,
            )
            .await
            .expect("generate");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let last_key = alice
        .generate_key(hsm_proto::KeySpec::Ed25519, signing("last"), false)
        .await
        .expect("generate");
    let cluster_id = admin
        .cluster_info()
        .await
        .expect("info")
        .cluster_id
        .expect("initialized");

    let backups = cluster.path().join("backups");
    let url = format!("file://{}", backups.display());
    let recovery = cluster.path().join("recovery/recovery.key");
    let recovery = recovery.to_string_lossy().into_owned();
    let work = tempfile::tempdir().expect("tempdir");
    let hsm = Hsm {
        config: cluster.client_config(),
        dir: work.path().to_path_buf(),
    };

    // Wait for the archive to hold the last key's creation.
    let reference = format!("0x{:016x}", last_key.id.0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut args = audit_args("list", &url, &recovery);
        args.extend(["--key", &reference]);
        let listed = hsm.run(None, &args, &[]).ok();
        if listed["events"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the archive never got the last key: {listed}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Crypto use is in the trail, counted by key, user and operation (by
    // whichever nodes served it), never the data: alice signed 4 times.
    let audited = format!("0x{:016x}", key.0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut args = audit_args("list", &url, &recovery);
        args.extend(["--key", &audited, "--user", "alice"]);
        let listed = hsm.run(None, &args, &[]).ok();
        let signs: u64 = listed["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["kind"] == "key-uses-counted")
            .flat_map(|e| e["uses"].as_array().cloned().unwrap_or_default())
            .filter(|u| u["operation"] == "sign" && u["user"] == "alice")
            .map(|u| u["count"].as_u64().unwrap_or(0))
            .sum();
        if signs == 4 {
            assert!(!listed.to_string().contains("audited message"), "{listed}");
            break;
        }
        assert!(signs < 4, "counted more than alice signed: {listed}");
        assert!(
            Instant::now() < deadline,
            "the archive never got alice's 4 signatures: {listed}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // The cluster's head, kept apart by an officer: the archive reaches it
    // (once caught up); a head it does not hold, or another hash, is a
    // trail cut short or rewritten.
    let head = hsm
        .run(Some(("admin", ADMIN)), &["audit", "head"], &[])
        .ok();
    let cluster_head = head["cluster-head"].as_str().expect("head").to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut args = audit_args("verify", &url, &recovery);
        args.extend(["--cluster-head", &cluster_head]);
        if hsm.run(None, &args, &[]).code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the archive never reached the head {cluster_head}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let events = head["events"].as_u64().expect("events");
    for wrong in [
        format!(
            "{}:{}",
            events + 1_000_000,
            head["head"].as_str().expect("hash")
        ),
        format!("{events}:{}", "00".repeat(32)),
    ] {
        let mut args = audit_args("verify", &url, &recovery);
        args.extend(["--cluster-head", &wrong]);
        hsm.run(None, &args, &[]).fails(4, "damaged");
    }
    // Officers only.
    hsm.run(Some(("alice", ALICE)), &["audit", "head"], &[])
        .fails(3, "permission-denied");

    // Intact: every event from the cluster's first, anchored at node 1.
    let verified = hsm
        .run(None, &audit_args("verify", &url, &recovery), &[])
        .ok();
    assert_eq!(verified["intact"], true, "{verified}");
    assert_eq!(verified["first"], 1, "{verified}");
    assert_eq!(verified["cluster-id"], cluster_id.to_string(), "{verified}");
    let anchor = verified["anchor-key"].as_str().expect("anchor").to_owned();
    let mut anchored = audit_args("verify", &url, &recovery);
    anchored.extend(["--anchor", &anchor]);
    hsm.run(None, &anchored, &[]).ok();
    let mut wrong_anchor = audit_args("verify", &url, &recovery);
    let other = "00".repeat(32);
    wrong_anchor.extend(["--anchor", &other]);
    hsm.run(None, &wrong_anchor, &[]).fails(4, "damaged");

    // Who did what: alice's events, and what was done to her.
    let mut by_alice = audit_args("list", &url, &recovery);
    by_alice.extend(["--user", "alice"]);
    let listed = hsm.run(None, &by_alice, &[]).ok();
    let kinds: Vec<(&str, &str)> = listed["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or(""),
                e["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(kinds.contains(&("user-created", "applied")), "{kinds:?}");
    assert!(kinds.contains(&("login-rejected", "applied")), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|(k, _)| *k == "key-created").count(),
        5,
        "{kinds:?}"
    );
    // By time: nothing before the cluster was made, everything since.
    let mut before = audit_args("list", &url, &recovery);
    before.extend(["--until", "1000"]);
    let none = hsm.run(None, &before, &[]).ok();
    assert_eq!(none["events"], serde_json::json!([]), "{none}");
    // No password hash or key material is shown.
    let all = hsm
        .run(None, &audit_args("list", &url, &recovery), &[])
        .stdout;
    assert!(!all.contains("argon2"), "a password hash is listed");

    // The archive's segments are sealed: no user name in the clear.
    let dirs = segment_dirs(&backups);
    assert!(dirs.len() >= 3, "segments: {dirs:?}");
    for dir in &dirs {
        let chunk = std::fs::read(dir.join("chunk-000000")).expect("chunk");
        assert!(
            !chunk.windows(5).any(|w| w == b"alice"),
            "{}",
            dir.display()
        );
    }

    // Tampering, each on a copy of the archive as it is now.
    let tampered = |name: &str, change: &dyn Fn(&Path)| -> serde_json::Value {
        let copy = work.path().join(name);
        copy_tree(&backups, &copy);
        change(&copy);
        let url = format!("file://{}", copy.display());
        let run = hsm.run(None, &audit_args("verify", &url, &recovery), &[]);
        let error = run.fails(4, "damaged");
        eprintln!("{name}: {}", message(&error));
        error
    };
    // A flipped byte in a sealed segment.
    let flipped = tampered("flipped", &|copy| {
        let dirs = segment_dirs(copy);
        let chunk = dirs[1].join("chunk-000000");
        let mut bytes = std::fs::read(&chunk).expect("read");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&chunk, bytes).expect("write");
    });
    assert!(
        message(&flipped).contains("a segment does not read"),
        "{flipped}"
    );
    assert!(message(&flipped).contains("missing"), "{flipped}");
    // A segment deleted.
    let deleted = tampered("deleted", &|copy| {
        let dirs = segment_dirs(copy);
        std::fs::remove_dir_all(&dirs[1]).expect("remove");
    });
    assert!(message(&deleted).contains("missing"), "{deleted}");
    assert!(!message(&deleted).contains("does not read"), "{deleted}");

    // Rewritten by someone who can write to the bucket: the recovery
    // public key is public, and any key signs a manifest. Two events
    // swapped, then one dropped: the events' own chain gives both away.
    let copy = work.path().join("rewritten");
    copy_tree(&backups, &copy);
    let dest = Destination::from_url(&format!("file://{}", copy.display())).expect("dest");
    let audit = audit_destination(&dest).expect("audit");
    let opener_key = RecoveryKey::load(Path::new(&recovery)).expect("recovery key");
    let ranges = list_segments(&audit).await.expect("list");
    // The segment with the most events.
    let (at, &range) = ranges
        .iter()
        .enumerate()
        .max_by_key(|(_, (first, last))| last - first)
        .expect("segments");
    let mut segment = read_segment(&audit, range, Opener::RecoveryKey(&opener_key), None)
        .await
        .expect("read");
    assert!(segment.events.len() >= 3, "{} events", segment.events.len());
    segment.events.swap(1, 2);
    let attacker = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let domain = BackupDomainKey::from_slice(&[5; 32]).expect("a key");
    let recovery_public = [opener_key.public_key()];
    let keys = BackupKeys {
        domain_key: &domain,
        recovery_keys: &recovery_public,
        signer: &attacker,
    };
    std::fs::remove_dir_all(segment_dirs(&copy)[at].clone()).expect("remove");
    write_segment(&audit, &segment, hsm_proto::NodeId(1), 0, &keys)
        .await
        .expect("rewrite");
    let copy_url = format!("file://{}", copy.display());
    let swapped = hsm
        .run(None, &audit_args("verify", &copy_url, &recovery), &[])
        .fails(4, "damaged");
    assert!(
        message(&swapped).contains(&format!("event {} does not follow", range.0 + 1)),
        "{swapped}"
    );
    // One dropped (the segment then names one event fewer).
    segment.events.swap(1, 2);
    let dropped_seq = segment.first_seq + 1;
    segment.events.remove(1);
    std::fs::remove_dir_all(segment_dirs(&copy)[at].clone()).expect("remove");
    write_segment(&audit, &segment, hsm_proto::NodeId(1), 0, &keys)
        .await
        .expect("rewrite");
    let dropped = hsm
        .run(None, &audit_args("verify", &copy_url, &recovery), &[])
        .fails(4, "damaged");
    assert!(
        message(&dropped).contains(&format!("event {dropped_seq} does not follow"))
            || message(&dropped).contains(&format!("event {dropped_seq} is missing")),
        "{dropped}"
    );
}
