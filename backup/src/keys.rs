//! The keys a backup is opened with: the cluster domain key (as the node
//! hands it over) and the operator's offline X25519 recovery keys.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::BackupError;

/// Context of a recovery public key's fingerprint.
const FINGERPRINT_CONTEXT: &str = "hsm-backup recovery key fingerprint v1";
/// First word of the secret line of a recovery private key file.
const SECRET_TAG: &str = "hsm-backup-recovery-secret-v1";
/// First word of the line that holds a recovery public key.
const PUBLIC_TAG: &str = "hsm-backup-recovery-public-v1";
/// Longest recovery key file [`RecoveryKey::load`] reads.
const MAX_FILE_BYTES: u64 = 4096;

/// The cluster domain key, as the node passes it to this crate: 32 bytes,
/// zeroized on drop, `Debug` redacted, not `Clone`.
pub struct BackupDomainKey(Zeroizing<[u8; 32]>);

impl BackupDomainKey {
    /// Takes the 32 key bytes. The caller should zeroize its own copy.
    pub fn new(bytes: Zeroizing<[u8; 32]>) -> BackupDomainKey {
        BackupDomainKey(bytes)
    }

    /// Copies the key from a slice; `None` unless it is 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<BackupDomainKey> {
        let mut k = Zeroizing::new([0u8; 32]);
        if bytes.len() != 32 {
            return None;
        }
        k.copy_from_slice(bytes);
        Some(BackupDomainKey(k))
    }

    /// A key derived from the domain key under `context`.
    pub(crate) fn derive(&self, context: &'static str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(blake3::derive_key(context, self.0.as_ref()))
    }
}

impl fmt::Debug for BackupDomainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackupDomainKey(<redacted>)")
    }
}

/// A short, public name of a recovery public key: blake3 (derive-key mode,
/// its own context) of the key, shown as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// An operator's recovery public key (X25519), registered with the cluster
/// so every backup's key is also wrapped for it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecoveryPublicKey(PublicKey);

impl RecoveryPublicKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> RecoveryPublicKey {
        RecoveryPublicKey(PublicKey::from(bytes))
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub(crate) fn x25519(&self) -> &PublicKey {
        &self.0
    }

    /// The key's fingerprint, as manifests record it.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint(blake3::derive_key(FINGERPRINT_CONTEXT, self.0.as_bytes()))
    }

    /// The key as text for an operator to pass around: a comment line with
    /// the fingerprint, then `hsm-backup-recovery-public-v1 <64 hex digits>`.
    pub fn to_text(&self) -> String {
        format!(
            "# hsm-backup recovery public key, fingerprint {}\n{PUBLIC_TAG} {}\n",
            self.fingerprint(),
            hex::encode(self.0.as_bytes())
        )
    }

    /// Reads a key from text written by [`to_text`](Self::to_text): blank
    /// and `#` lines are skipped; one `hsm-backup-recovery-public-v1 <hex>`
    /// line must remain. A bare line of 64 hex digits is accepted too.
    ///
    /// # Errors
    /// [`BackupError::InvalidPublicKey`] for anything else.
    pub fn parse(text: &str) -> Result<RecoveryPublicKey, BackupError> {
        let bad = |why: &str| BackupError::InvalidPublicKey(why.to_string());
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = lines.next().ok_or_else(|| bad("no key line"))?;
        if lines.next().is_some() {
            return Err(bad("more than one key line"));
        }
        let hex_part = match line.split_once(' ') {
            Some((tag, rest)) if tag == PUBLIC_TAG => rest.trim(),
            Some(_) => {
                return Err(bad(
                    "unknown key line (expected hsm-backup-recovery-public-v1)",
                ))
            }
            None => line,
        };
        let bytes = decode_hex32(hex_part).ok_or_else(|| bad("expected 64 hex digits"))?;
        Ok(RecoveryPublicKey::from_bytes(*bytes))
    }

    /// Writes [`to_text`](Self::to_text) to a new file.
    ///
    /// # Errors
    /// [`BackupError::KeyFile`] if the file exists or cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), BackupError> {
        write_new_file(path, self.to_text().as_bytes(), 0o644)
    }

    /// Reads a file written by [`save`](Self::save).
    ///
    /// # Errors
    /// [`BackupError::KeyFile`] if it cannot be read,
    /// [`BackupError::InvalidPublicKey`] if it holds no key.
    pub fn load(path: &Path) -> Result<RecoveryPublicKey, BackupError> {
        let text = read_small_file(path)?;
        RecoveryPublicKey::parse(&text)
    }
}

impl fmt::Debug for RecoveryPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoveryPublicKey({})", self.fingerprint())
    }
}

/// A recovery private key (X25519). It is made and kept offline by the
/// operator; only its public half goes to the cluster. Zeroized on drop,
/// `Debug` shows only the fingerprint.
pub struct RecoveryKey(StaticSecret);

impl RecoveryKey {
    /// A fresh key from the operating system's generator.
    pub fn generate() -> RecoveryKey {
        RecoveryKey(StaticSecret::random_from_rng(rand::rngs::OsRng))
    }

    /// The public half, to register with the cluster.
    pub fn public_key(&self) -> RecoveryPublicKey {
        RecoveryPublicKey(PublicKey::from(&self.0))
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.0
    }

    /// Saves the key in a new file, mode 0600, synced: a comment line, the
    /// secret (`hsm-backup-recovery-secret-v1 <hex>`) and the public key
    /// (`hsm-backup-recovery-public-v1 <hex>`, checked on load so a typo or
    /// damaged copy is found).
    ///
    /// # Errors
    /// [`BackupError::KeyFile`] if the file exists or cannot be written;
    /// nothing is left behind on failure.
    pub fn save(&self, path: &Path) -> Result<(), BackupError> {
        let mut text = Zeroizing::new(String::with_capacity(256));
        text.push_str(
            "# hsm-backup recovery private key: keep offline; it opens every backup sealed to it\n",
        );
        text.push_str(SECRET_TAG);
        text.push(' ');
        let secret_hex = Zeroizing::new(hex::encode(self.0.as_bytes()));
        text.push_str(&secret_hex);
        text.push('\n');
        text.push_str(PUBLIC_TAG);
        text.push(' ');
        text.push_str(&hex::encode(self.public_key().to_bytes()));
        text.push('\n');
        write_new_file(path, text.as_bytes(), 0o600)
    }

    /// Loads a file written by [`save`](Self::save).
    ///
    /// # Errors
    /// [`BackupError::KeyFile`] if the file cannot be read, is readable by
    /// group or others, is not a recovery key file, or its public key line
    /// does not match its secret.
    pub fn load(path: &Path) -> Result<RecoveryKey, BackupError> {
        let fail = |reason: &str| BackupError::KeyFile {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let mode = fs::metadata(path)
            .map_err(|e| fail(&format!("cannot read: {e}")))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(fail(&format!(
                "mode {:o} lets group or others read it; expected 600",
                mode & 0o777
            )));
        }
        let text = read_small_file(path)?;
        let (mut secret, mut public) = (None, None);
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(' ') {
                Some((SECRET_TAG, hex_part)) if secret.is_none() => {
                    secret = Some(
                        decode_hex32(hex_part.trim())
                            .ok_or_else(|| fail("the secret is not 64 hex digits"))?,
                    );
                }
                Some((PUBLIC_TAG, hex_part)) if public.is_none() => {
                    public = Some(
                        decode_hex32(hex_part.trim())
                            .ok_or_else(|| fail("the public key is not 64 hex digits"))?,
                    );
                }
                _ => return Err(fail("not a recovery private key file (unexpected line)")),
            }
        }
        let secret = secret.ok_or_else(|| fail("no secret line"))?;
        let key = RecoveryKey(StaticSecret::from(*secret));
        if public.map(|p| *p) != Some(key.public_key().to_bytes()) {
            return Err(fail(
                "the public key line is missing or does not match the secret (damaged copy?)",
            ));
        }
        Ok(key)
    }
}

impl fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RecoveryKey({}, <redacted>)",
            self.public_key().fingerprint()
        )
    }
}

/// What a backup is opened with.
#[derive(Debug, Clone, Copy)]
pub enum Opener<'a> {
    /// The cluster's domain key (a node of the same cluster).
    DomainKey(&'a BackupDomainKey),
    /// An operator's recovery private key.
    RecoveryKey(&'a RecoveryKey),
}

fn decode_hex32(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    if text.len() != 64 {
        return None;
    }
    hex::decode_to_slice(text, out.as_mut()).ok()?;
    Some(out)
}

fn read_small_file(path: &Path) -> Result<Zeroizing<String>, BackupError> {
    let fail = |reason: String| BackupError::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(format!("longer than {MAX_FILE_BYTES} bytes")));
    }
    Ok(text)
}

fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), BackupError> {
    let fail = |action: &str, e: io::Error| BackupError::KeyFile {
        path: path.to_path_buf(),
        reason: format!("cannot {action}: {e}"),
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| fail("create", e))?;
    let written = file
        .write_all(bytes)
        .map_err(|e| fail("write", e))
        .and_then(|()| file.sync_all().map_err(|e| fail("sync", e)))
        .and_then(|()| {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| fail("sync the parent directory of", e))
        });
    if let Err(e) = written {
        drop(file);
        // Best effort: a half-written key file must not be mistaken for one.
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_keys_save_and_load_with_mode_0600_and_a_checked_public_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("recovery.key");
        let key = RecoveryKey::generate();
        key.save(&path).expect("saves");
        assert_eq!(
            fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let loaded = RecoveryKey::load(&path).expect("loads");
        assert_eq!(loaded.public_key(), key.public_key());
        assert!(key.save(&path).is_err(), "overwrote an existing key file");

        // A damaged secret no longer matches its public line.
        let text = fs::read_to_string(&path).expect("reads");
        let pos = text.find(SECRET_TAG).expect("secret line") + SECRET_TAG.len() + 1;
        let mut damaged = text.into_bytes();
        damaged[pos] = if damaged[pos] == b'0' { b'1' } else { b'0' };
        let other = dir.path().join("damaged.key");
        write_new_file(&other, &damaged, 0o600).expect("writes");
        let err = RecoveryKey::load(&other).expect_err("damaged key loaded");
        assert!(err.to_string().contains("does not match"), "{err}");

        // Group-readable files are refused.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = RecoveryKey::load(&path).expect_err("group-readable key loaded");
        assert!(err.to_string().contains("mode 640"), "{err}");
        assert!(!format!("{key:?}").contains(&hex::encode(key.0.as_bytes())));
    }

    #[test]
    fn public_keys_round_trip_through_text() {
        let public = RecoveryKey::generate().public_key();
        assert_eq!(
            RecoveryPublicKey::parse(&public.to_text()).expect("parses"),
            public
        );
        let bare = hex::encode(public.to_bytes());
        assert_eq!(RecoveryPublicKey::parse(&bare).expect("parses"), public);
        assert!(RecoveryPublicKey::parse("").is_err());
        assert!(RecoveryPublicKey::parse("hsm-backup-recovery-public-v1 00").is_err());
    }
}
