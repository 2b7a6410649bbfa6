//! Errors of the secrets module. Messages name what failed (a key id, a
//! node, a file, a rule), never secret bytes or passwords.

use std::path::PathBuf;

use hsm_proto::{KeyId, NodeId};

/// A failure handling a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// Key material is too long to wrap into an event.
    #[error("key material for key {key} is {len} bytes; at most {max} can be wrapped")]
    MaterialTooLong {
        /// The key the material belongs to.
        key: KeyId,
        /// Its length in bytes.
        len: usize,
        /// The longest material accepted.
        max: usize,
    },
    /// Wrapped key material did not open: damaged, wrapped for another key
    /// id, or wrapped under another domain key.
    #[error("wrapped key material for key {key} failed to open: {reason}")]
    Unwrap {
        /// The key whose material was being unwrapped.
        key: KeyId,
        /// What was wrong.
        reason: &'static str,
    },
    /// A recipient or ephemeral X25519 public key is of low order, so the
    /// exchange would not be secret.
    #[error("domain key transfer to node {node}: {which} public key is of low order")]
    WeakPublicKey {
        /// The node the domain key is sealed for.
        node: NodeId,
        /// `recipient` or `ephemeral`.
        which: &'static str,
    },
    /// A sealed domain key did not open (damaged, sealed to another node's
    /// key, or bound to another cluster or node id), or could not be sealed.
    #[error("domain key transfer to node {node} failed: {reason}")]
    Transfer {
        /// The node the domain key is sealed for or opened as.
        node: NodeId,
        /// What was wrong.
        reason: &'static str,
    },
    /// This node does not hold a domain key generation the state uses.
    #[error("domain key generation {generation}: {reason}")]
    DomainGeneration {
        /// The generation.
        generation: u32,
        /// Why this node does not hold it.
        reason: &'static str,
    },
    /// A key file (node identity or domain key) could not be saved or loaded.
    #[error("{file} file {}: {problem}", path.display())]
    KeyFile {
        /// Which kind of key file: `node identity` or `domain key`.
        file: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        problem: KeyFileProblem,
    },
    /// A password breaks the password policy. The message states the rule,
    /// never the password.
    #[error("password refused: {0}")]
    PasswordPolicy(&'static str),
    /// Argon2 failed to hash (for example, out of memory).
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
}

/// Why a key file could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileProblem {
    /// Saving refuses to overwrite an existing file.
    #[error("already exists; refusing to overwrite it")]
    AlreadyExists,
    /// An IO operation failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done (`create`, `write`, `sync`, `open`, `read`, ...).
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The path is not a regular file.
    #[error("is not a regular file")]
    NotAFile,
    /// The file is readable or writable by group or others.
    #[error("permissions are {mode:o}; expected 600 (readable by its owner only)")]
    Permissions {
        /// The file's permission bits.
        mode: u32,
    },
    /// The file has the wrong size to be this kind of key file.
    #[error("is {found} bytes; expected {expected}")]
    WrongSize {
        /// The size of this kind of key file.
        expected: u64,
        /// The size found.
        found: u64,
    },
    /// The file does not start with this kind of key file's header.
    #[error("is not a key file of this kind (unknown header)")]
    UnknownFormat,
    /// The file has a format version this build does not know.
    #[error("has format version {0}; expected 1")]
    UnsupportedVersion(u8),
    /// The file was sealed under a different node storage key.
    #[error("was sealed under a different storage key")]
    WrongStorageKey,
    /// The file's key check matches but its contents fail to authenticate.
    #[error("is damaged: authentication failed")]
    Damaged,
}
