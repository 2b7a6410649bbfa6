//! Key files sealed under the node storage key.
//!
//! Layout: `magic(8) || key check(32) || version(1) || nonce(12) ||
//! AES-256-GCM-SIV ciphertext || tag(16)`, with magic and key check as
//! associated data. The magic names the kind of file; the key check (a
//! blake3 key derived from the storage key under its own context) tells a
//! wrong storage key apart from a damaged file. Files are created 0600 and
//! never overwritten; loads refuse files readable by group or others.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use super::{KeyFileProblem, SecretsError};
use hsm_seal::{self as seal, OVERHEAD, VERSION};

const MAGIC_LEN: usize = 8;
const CHECK_LEN: usize = 32;
const HEADER_LEN: usize = MAGIC_LEN + CHECK_LEN;

/// One kind of key file.
pub(super) struct KeyFileKind {
    /// Named in errors: `node identity`, `domain key`.
    pub(super) name: &'static str,
    /// First bytes of every file of this kind.
    pub(super) magic: [u8; MAGIC_LEN],
    /// blake3 context of the sealing key.
    pub(super) seal_context: &'static str,
    /// blake3 context of the key check.
    pub(super) check_context: &'static str,
    /// Exact length of the sealed secret.
    pub(super) payload_len: usize,
}

impl KeyFileKind {
    fn file_len(&self) -> usize {
        HEADER_LEN + OVERHEAD + self.payload_len
    }

    fn error(&self, path: &Path, problem: KeyFileProblem) -> SecretsError {
        SecretsError::KeyFile {
            file: self.name,
            path: path.to_path_buf(),
            problem,
        }
    }

    fn header(&self, storage_key: &[u8; 32]) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..MAGIC_LEN].copy_from_slice(&self.magic);
        h[MAGIC_LEN..].copy_from_slice(&blake3::derive_key(self.check_context, storage_key));
        h
    }
}

/// The error for a file whose sealed contents are not what its kind holds.
pub(super) fn damaged(kind: &KeyFileKind, path: &Path) -> SecretsError {
    kind.error(path, KeyFileProblem::Damaged)
}

fn io(action: &'static str) -> impl FnOnce(io::Error) -> KeyFileProblem {
    move |source| KeyFileProblem::Io { action, source }
}

/// Writes a new key file holding `payload` sealed under `storage_key`.
pub(super) fn save(
    kind: &KeyFileKind,
    path: &Path,
    storage_key: &[u8; 32],
    payload: &[u8],
) -> Result<(), SecretsError> {
    let fail = |problem| kind.error(path, problem);
    if payload.len() != kind.payload_len {
        return Err(fail(KeyFileProblem::WrongSize {
            expected: kind.payload_len as u64,
            found: payload.len() as u64,
        }));
    }
    let header = kind.header(storage_key);
    let key = Zeroizing::new(blake3::derive_key(kind.seal_context, storage_key));
    let sealed = seal::seal(&key, &header, payload).map_err(|_| {
        fail(KeyFileProblem::WrongSize {
            expected: kind.payload_len as u64,
            found: payload.len() as u64,
        })
    })?;
    let mut bytes = Vec::with_capacity(kind.file_len());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&sealed);

    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => fail(KeyFileProblem::AlreadyExists),
            _ => fail(io("create")(e)),
        })?;
    let written = file
        .write_all(&bytes)
        .map_err(io("write"))
        .and_then(|()| file.sync_all().map_err(io("sync")))
        .and_then(|()| sync_parent(path).map_err(io("sync the parent directory")));
    if let Err(problem) = written {
        drop(file);
        // Best effort: a half-written file would block the next save.
        let _ = fs::remove_file(path);
        return Err(fail(problem));
    }
    Ok(())
}

fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// Reads and opens a key file of `kind`.
pub(super) fn load(
    kind: &KeyFileKind,
    path: &Path,
    storage_key: &[u8; 32],
) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
    let fail = |problem| kind.error(path, problem);
    // Refuse a FIFO or device before opening it (opening a FIFO blocks); the
    // checks below run again on the opened file.
    let before = fs::metadata(path).map_err(|e| fail(io("open")(e)))?;
    if !before.is_file() {
        return Err(fail(KeyFileProblem::NotAFile));
    }
    let file = File::open(path).map_err(|e| fail(io("open")(e)))?;
    let meta = file.metadata().map_err(|e| fail(io("read metadata")(e)))?;
    if !meta.is_file() {
        return Err(fail(KeyFileProblem::NotAFile));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(fail(KeyFileProblem::Permissions { mode }));
    }
    let expected = kind.file_len() as u64;
    let wrong_size = |found| fail(KeyFileProblem::WrongSize { expected, found });
    if meta.len() != expected {
        return Err(wrong_size(meta.len()));
    }
    // Bounded read: the file may have grown since the metadata call.
    let mut bytes = Vec::with_capacity(kind.file_len() + 1);
    file.take(expected + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(io("read")(e)))?;
    if bytes.len() as u64 != expected {
        return Err(wrong_size(bytes.len() as u64));
    }

    let (header, sealed) = bytes.split_at(HEADER_LEN);
    if header[..MAGIC_LEN] != kind.magic {
        return Err(fail(KeyFileProblem::UnknownFormat));
    }
    if sealed[0] != VERSION {
        return Err(fail(KeyFileProblem::UnsupportedVersion(sealed[0])));
    }
    let expected_header = kind.header(storage_key);
    let mut stored_check = [0u8; CHECK_LEN];
    stored_check.copy_from_slice(&header[MAGIC_LEN..]);
    let mut computed_check = [0u8; CHECK_LEN];
    computed_check.copy_from_slice(&expected_header[MAGIC_LEN..]);
    // blake3::Hash equality is constant time.
    if blake3::Hash::from(stored_check) != blake3::Hash::from(computed_check) {
        return Err(fail(KeyFileProblem::WrongStorageKey));
    }
    let key = Zeroizing::new(blake3::derive_key(kind.seal_context, storage_key));
    let payload =
        seal::open(&key, &expected_header, sealed).map_err(|_| fail(KeyFileProblem::Damaged))?;
    if payload.len() != kind.payload_len {
        return Err(fail(KeyFileProblem::Damaged));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests;
