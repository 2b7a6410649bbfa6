//! Sealing stored values under the node storage key.
//!
//! Every value the store writes is sealed in `hsm_seal`'s framed format,
//! `1 || nonce(12) || AES-256-GCM-SIV(value)`, with the column family and
//! the RocksDB key as associated data, so a value that is edited, copied to
//! another record, or sealed under another key fails to open.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use hsm_seal::{OpenError, SealKey};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};

const AAD_CONTEXT: &[u8] = b"hsm-store value v1\0";

/// The 256-bit node storage key. Zeroized on drop; Debug is redacted. It is
/// read from an unseal source at open and never written into RocksDB.
pub struct StorageKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageKey(<redacted>)")
    }
}

impl StorageKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> StorageKey {
        StorageKey(Zeroizing::new(bytes))
    }

    /// A fresh random key.
    pub fn generate() -> StorageKey {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        StorageKey(k)
    }

    /// Creates a new key file holding a fresh random key, readable by its
    /// owner only (0600), and returns the key. Refuses to overwrite.
    ///
    /// # Errors
    /// If the file exists or cannot be written and synced.
    pub fn create_file(path: &Path) -> Result<StorageKey> {
        let key = StorageKey::generate();
        let fail = |e: std::io::Error| StoreError::KeyFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(fail)?;
        f.write_all(key.0.as_ref()).map_err(fail)?;
        f.sync_all().map_err(fail)?;
        Ok(key)
    }

    /// Loads a key file: exactly 32 bytes, not readable or writable by group
    /// or others.
    ///
    /// # Errors
    /// If the file is missing, has loose permissions or the wrong size.
    pub fn load_file(path: &Path) -> Result<StorageKey> {
        let fail = |reason: String| StoreError::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let meta = fs::metadata(path).map_err(|e| fail(e.to_string()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(fail(format!(
                "permissions are {mode:o}; expected 600 (readable by its owner only)"
            )));
        }
        let bytes = Zeroizing::new(fs::read(path).map_err(|e| fail(e.to_string()))?);
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| fail(format!("expected 32 bytes, found {}", bytes.len())))?;
        Ok(StorageKey::from_bytes(arr))
    }

    /// A key derived for another purpose, so the storage key itself is used
    /// for one thing only.
    pub(crate) fn derive(&self, context: &str) -> [u8; 32] {
        blake3::derive_key(context, self.0.as_ref())
    }

    /// A subkey for sealing the node's other files (its identity and the
    /// domain key), derived under `context`, which must differ from every
    /// context this crate uses (they all start with `hsm-store`).
    pub fn subkey(&self, context: &str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.derive(context))
    }
}

/// Seals and opens values for one store.
pub(crate) struct Sealer {
    key: SealKey,
}

impl Sealer {
    pub(crate) fn new(key: &StorageKey) -> Sealer {
        let k = Zeroizing::new(key.derive("hsm-store value sealing v1"));
        Sealer {
            key: SealKey::new(&k),
        }
    }

    fn aad(cf: &str, key: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_CONTEXT.len() + cf.len() + 1 + key.len());
        aad.extend_from_slice(AAD_CONTEXT);
        aad.extend_from_slice(cf.as_bytes());
        aad.push(0);
        aad.extend_from_slice(key);
        aad
    }

    pub(crate) fn seal(&self, cf: &str, key: &[u8], plaintext: &[u8]) -> Vec<u8> {
        // Sealing fails only above hsm_seal::MAX_PLAINTEXT (1 GiB), far
        // beyond the codec's 64 MiB limit on any value.
        self.key
            .seal(&Self::aad(cf, key), plaintext)
            .unwrap_or_default()
    }

    /// Opens a sealed value; `record` describes it for the error message.
    pub(crate) fn open(
        &self,
        cf: &'static str,
        key: &[u8],
        sealed: &[u8],
        record: impl FnOnce() -> String,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.key
            .open(&Self::aad(cf, key), sealed)
            .map_err(|e| StoreError::Unseal {
                cf,
                record: record(),
                reason: match e {
                    OpenError::TooShort => "value is too short to be sealed",
                    OpenError::UnknownVersion => "unknown seal version",
                    OpenError::Authentication => "authentication failed",
                },
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_under_its_own_record_and_key() {
        let key = StorageKey::from_bytes([7; 32]);
        let s = Sealer::new(&key);
        let sealed = s.seal("log", b"k1", b"secret");
        assert_eq!(
            &s.open("log", b"k1", &sealed, String::new).expect("opens")[..],
            b"secret"
        );
        assert!(
            s.open("log", b"k2", &sealed, String::new).is_err(),
            "moved record"
        );
        assert!(
            s.open("sm", b"k1", &sealed, String::new).is_err(),
            "moved column family"
        );
        let other = Sealer::new(&StorageKey::from_bytes([8; 32]));
        assert!(
            other.open("log", b"k1", &sealed, String::new).is_err(),
            "other key"
        );
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(
                s.open("log", b"k1", &t, String::new).is_err(),
                "flip at {i}"
            );
        }
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts() {
        let s = Sealer::new(&StorageKey::from_bytes([1; 32]));
        assert_ne!(s.seal("a", b"k", b"same"), s.seal("a", b"k", b"same"));
    }

    #[test]
    fn key_files_are_private_and_exact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("storage.key");
        let k = StorageKey::create_file(&path).expect("creates");
        assert!(StorageKey::create_file(&path).is_err(), "never overwrites");
        let loaded = StorageKey::load_file(&path).expect("loads");
        assert_eq!(k.0.as_ref(), loaded.0.as_ref());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = StorageKey::load_file(&path).expect_err("loose permissions refused");
        assert!(err.to_string().contains("644"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::write(&path, [1u8; 31]).expect("write");
        assert!(StorageKey::load_file(&path).is_err(), "short key refused");
        assert_eq!(format!("{k:?}"), "StorageKey(<redacted>)");
    }
}
