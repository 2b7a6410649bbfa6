//! The secret scan at the end of a run: no password the run used may be in
//! any file of the run's directory (every node's data directory, logs,
//! backups, the clients' histories and logs), raw, in hex or in base64.
//! It uses the project's one secret scanner (the plaintext tests' own).

use std::path::Path;

use crate::check::Anomaly;

#[path = "../../../raft-store/tests/secret_scan/mod.rs"]
mod secret_scan;

/// Scans every file under `dir` for each of `secrets` (named for the
/// report, never printed); one anomaly per secret found, naming the files.
pub fn scan(dir: &Path, secrets: &[(&str, &[u8])]) -> Vec<Anomaly> {
    secrets
        .iter()
        .filter_map(|(name, secret)| {
            let hits = secret_scan::find(dir, secret);
            (!hits.is_empty()).then(|| Anomaly {
                checker: "secrets".into(),
                what: format!("{name} found in {}", hits.join(", ")),
                ops: Vec::new(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_any_file_of_the_run_is_found_and_not_printed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("cluster/node2/store")).expect("dirs");
        std::fs::write(dir.path().join("logs.txt"), b"nothing here").expect("write");
        assert!(scan(dir.path(), &[("a password", b"p1-alice/password-3")]).is_empty());
        std::fs::write(
            dir.path().join("cluster/node2/store/000042.log"),
            b"\x00\x01p1-alice/password-3\xff",
        )
        .expect("write");
        let found = scan(dir.path(), &[("a password", b"p1-alice/password-3")]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].what.contains("000042.log"), "{found:?}");
        assert!(!found[0].what.contains("password-3"), "{found:?}");
    }
}
