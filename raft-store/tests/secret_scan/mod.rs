//! The secret scanner the plaintext tests share (raft-store's data
//! directory, backup objects, a whole cluster's files): every file under a
//! directory searched for a secret raw, in hex (both cases) and in base64
//! (standard and URL-safe, every alignment). Included by path by the tests
//! of raft-store, hsm-backup and hsm-node.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Distinctive bytes for the scanner's own test.
const CONTROL: [u8; 32] = [
    0x8e, 0x21, 0xf3, 0x5a, 0x07, 0xc4, 0x9d, 0x62, 0xb8, 0x13, 0xe7, 0x4f, 0x30, 0xa9, 0x56, 0xdb,
    0x1c, 0x75, 0xfa, 0x88, 0x03, 0x6e, 0xc1, 0x94, 0x2b, 0xd0, 0x47, 0xbe, 0x69, 0x15, 0xe2, 0x7d,
];

fn hex(bytes: &[u8], upper: bool) -> Vec<u8> {
    bytes
        .iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect::<String>()
        .into_bytes()
}

fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize]);
        }
    }
    out
}

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The forms a secret could be written in; base64 at every alignment
/// (encoded from offsets 0, 1 and 2, the last partial characters dropped).
pub fn forms(secret: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("raw".to_string(), secret.to_vec()),
        ("hex".to_string(), hex(secret, false)),
        ("HEX".to_string(), hex(secret, true)),
    ];
    for offset in 0..3 {
        for (name, alphabet) in [("base64", STD), ("base64url", URL)] {
            let enc = base64(&secret[offset..], alphabet);
            let keep = enc.len().saturating_sub(2);
            out.push((format!("{name}@{offset}"), enc[..keep].to_vec()));
        }
    }
    out
}

pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

pub fn find(dir: &Path, secret: &[u8]) -> Vec<String> {
    let forms = forms(secret);
    let mut hits = Vec::new();
    for path in files(dir) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        for (name, needle) in &forms {
            if bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
                hits.push(format!("{} ({name})", path.display()));
            }
        }
    }
    hits
}

#[test]
fn the_scanner_finds_each_form_when_it_is_there() {
    for (name, needle) in forms(&CONTROL) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut content = b"prefix ".to_vec();
        content.extend_from_slice(&needle);
        std::fs::write(dir.path().join("control"), content).expect("write");
        let hits = find(dir.path(), &CONTROL);
        assert!(
            hits.iter().any(|h| h.ends_with(&format!("({name})"))),
            "{name} not found: {hits:?}"
        );
    }
}
