use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::secrets::{hex, DomainKey, KeyFileProblem, NodeIdentity, SecretsError};

const STORAGE_KEY: [u8; 32] = [0x11; 32];

fn problem(err: SecretsError) -> KeyFileProblem {
    match err {
        SecretsError::KeyFile { problem, .. } => problem,
        other => panic!("expected a key file error, got {other}"),
    }
}

fn saved_domain_key(dir: &Path) -> (PathBuf, DomainKey) {
    let path = dir.join("domain.key");
    let dk = DomainKey::generate(0);
    dk.save(&path, &STORAGE_KEY).expect("saves");
    (path, dk)
}

#[test]
fn a_domain_key_file_is_private_round_trips_and_holds_no_raw_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, dk) = saved_domain_key(dir.path());
    let mode = fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let loaded = DomainKey::load(&path, &STORAGE_KEY).expect("loads");
    assert_eq!(loaded.expose(), dk.expose());

    let contents = fs::read(&path).expect("reads");
    let text = String::from_utf8_lossy(&contents).to_lowercase();
    for secret in [&dk.expose()[..], &STORAGE_KEY[..]] {
        assert!(
            !contents.windows(32).any(|w| w == secret),
            "raw secret in file"
        );
        assert!(!text.contains(&hex(secret)), "hex secret in file");
    }
}

#[test]
fn saving_never_overwrites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, dk) = saved_domain_key(dir.path());
    let err = DomainKey::generate(0)
        .save(&path, &STORAGE_KEY)
        .expect_err("exists");
    assert!(matches!(problem(err), KeyFileProblem::AlreadyExists));
    let err = NodeIdentity::generate()
        .save(&path, &STORAGE_KEY)
        .expect_err("exists");
    assert!(matches!(problem(err), KeyFileProblem::AlreadyExists));
    let loaded = DomainKey::load(&path, &STORAGE_KEY).expect("still the first key");
    assert_eq!(loaded.expose(), dk.expose());
}

#[test]
fn files_readable_by_group_or_others_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = saved_domain_key(dir.path());
    for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        let err = DomainKey::load(&path, &STORAGE_KEY).expect_err("loose permissions");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("{mode:o}")), "{msg}");
        assert!(matches!(problem(err), KeyFileProblem::Permissions { mode: m } if m == mode));
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).expect("chmod");
    assert!(
        DomainKey::load(&path, &STORAGE_KEY).is_ok(),
        "read-only by owner is fine"
    );
}

#[test]
fn a_wrong_storage_key_is_reported_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, dk) = saved_domain_key(dir.path());
    let other = [0x12; 32];
    let err = DomainKey::load(&path, &other).expect_err("wrong key");
    let msg = format!("{err} {err:?}");
    assert!(
        msg.contains("domain key file") && msg.contains("storage key"),
        "{msg}"
    );
    for secret in [&dk.expose()[..], &STORAGE_KEY[..], &other[..]] {
        assert!(!msg.contains(&hex(secret)), "{msg}");
    }
    assert!(matches!(problem(err), KeyFileProblem::WrongStorageKey));

    let id_path = dir.path().join("node.identity");
    NodeIdentity::generate()
        .save(&id_path, &STORAGE_KEY)
        .expect("saves");
    let err = NodeIdentity::load(&id_path, &other).expect_err("wrong key");
    assert!(matches!(problem(err), KeyFileProblem::WrongStorageKey));
}

#[test]
fn damage_anywhere_in_a_key_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = saved_domain_key(dir.path());
    let good = fs::read(&path).expect("reads");
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        fs::write(&path, &bad).expect("writes");
        let p = problem(DomainKey::load(&path, &STORAGE_KEY).expect_err("damaged"));
        let expected = match i {
            0..8 => matches!(p, KeyFileProblem::UnknownFormat),
            8..40 => matches!(p, KeyFileProblem::WrongStorageKey),
            40 => matches!(p, KeyFileProblem::UnsupportedVersion(0)),
            _ => matches!(p, KeyFileProblem::Damaged),
        };
        assert!(expected, "byte {i}: {p}");
    }
}

#[test]
fn wrong_sizes_garbage_and_other_kinds_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = saved_domain_key(dir.path());
    let good = fs::read(&path).expect("reads");
    for len in [0, 1, good.len() - 1, good.len() + 1, 4096] {
        let mut bytes = good.clone();
        bytes.resize(len, 0);
        fs::write(&path, &bytes).expect("writes");
        let p = problem(DomainKey::load(&path, &STORAGE_KEY).expect_err("wrong size"));
        assert!(
            matches!(p, KeyFileProblem::WrongSize { found, .. } if found == len as u64),
            "{p}"
        );
    }
    fs::write(&path, vec![0x5a; good.len()]).expect("writes");
    let p = problem(DomainKey::load(&path, &STORAGE_KEY).expect_err("garbage"));
    assert!(matches!(p, KeyFileProblem::UnknownFormat), "{p}");

    let id_path = dir.path().join("node.identity");
    NodeIdentity::generate()
        .save(&id_path, &STORAGE_KEY)
        .expect("saves");
    assert!(
        DomainKey::load(&id_path, &STORAGE_KEY).is_err(),
        "identity as domain key"
    );
    let other = dir.path().join("other.key");
    DomainKey::generate(0)
        .save(&other, &STORAGE_KEY)
        .expect("saves");
    assert!(
        NodeIdentity::load(&other, &STORAGE_KEY).is_err(),
        "domain key as identity"
    );
}

#[test]
fn missing_files_directories_and_unwritable_places_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.key");
    let err = DomainKey::load(&missing, &STORAGE_KEY).expect_err("missing");
    assert!(err.to_string().contains("missing.key"), "{err}");
    assert!(matches!(
        problem(err),
        KeyFileProblem::Io { action: "open", .. }
    ));

    let p = problem(DomainKey::load(dir.path(), &STORAGE_KEY).expect_err("a directory"));
    assert!(matches!(p, KeyFileProblem::NotAFile), "{p}");

    let fifo = dir.path().join("fifo.key");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        // Must not block waiting for a writer.
        let p = problem(DomainKey::load(&fifo, &STORAGE_KEY).expect_err("a fifo"));
        assert!(matches!(p, KeyFileProblem::NotAFile), "{p}");
    }

    let nowhere = dir.path().join("no-such-dir").join("domain.key");
    let err = DomainKey::generate(0)
        .save(&nowhere, &STORAGE_KEY)
        .expect_err("no dir");
    assert!(matches!(
        problem(err),
        KeyFileProblem::Io {
            action: "create",
            ..
        }
    ));
    assert!(!nowhere.exists());
}
