//! Secrets of a node and of the cluster.
//!
//! - [`DomainKey`]: one generation of the cluster domain key, created at
//!   cluster init and at each rotation. Key material in events and state is
//!   wrapped under it ([`DomainKey::wrap_material`]); a joining node
//!   receives it sealed to its X25519 key ([`DomainKey::seal_for_node`],
//!   `hsm_proto::SealedDomainKey`), and so does every member at a rotation,
//!   through the log; session tokens are MAC'd under a key derived from it
//!   ([`session`]).
//! - [`Keyring`]: the generations a node holds, in step with the state.
//! - [`NodeIdentity`]: a node's ed25519 event-signing key and X25519 key
//!   agreement key.
//! - Key files: both of the above persist in files sealed under the node
//!   storage key (see [`KeyFileProblem`] for what a load can refuse).
//! - [`password`]: Argon2id hashing and the password policy.
//!
//! Invariants:
//! - plain secrets live only in zeroizing types (`Zeroizing`, or dalek keys
//!   that zeroize on drop), and are not `Clone` unless needed;
//! - `Debug` of every secret type is redacted (public halves may show);
//! - errors never carry secret bytes, key material or passwords: they name
//!   the key id, node, file or rule that failed;
//! - every subkey is derived with `blake3::derive_key` under its own context
//!   string, so one key is used for one purpose only;
//! - anything read from outside (wrapped material, sealed keys, tokens, key
//!   files) is length-checked before use and fails as a value, never a panic.

mod domain;
mod error;
mod identity;
mod keyfile;
mod keyring;
pub mod password;
pub mod session;

pub use domain::{DomainKey, MaterialKey, MAX_MATERIAL_LEN};
pub use error::{KeyFileProblem, SecretsError};
pub use identity::NodeIdentity;
pub use keyring::Keyring;
pub use password::{check_password_policy, hash_password, hash_request_password, verify_password};
pub use session::{SessionClaims, SessionError, SessionToken};

/// Lowercase hex of `bytes`: public keys in `Debug`, and tests that check
/// `Debug` output and files never show secret bytes.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
