//! Ed25519 key files for second factors and quorum approvals: the private
//! key (PKCS#8, as `openssl genpkey -algorithm ed25519` writes it) signs
//! on this machine and never goes to the cluster; the public key
//! (SubjectPublicKeyInfo) is what the cluster registers.

use std::path::Path;

use ed25519_dalek::{Signer as _, SigningKey};
use hsm_client::hsm_proto::quorum::ed25519_from_spki;
use hsm_client::hsm_proto::Signature;
use zeroize::Zeroizing;

use crate::error::{CliError, Result};
use crate::io::read_file;
use hsm_cli::pem::{pkcs8_der, spki_der};

/// The DER of an Ed25519 private key in PKCS#8 v1 without attributes
/// (RFC 8410), before its 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The seed of an Ed25519 PKCS#8 DER private key.
///
/// # Errors
/// Anything else, in words that never quote the file.
pub fn ed25519_seed(der: &[u8]) -> std::result::Result<Zeroizing<[u8; 32]>, String> {
    let seed = der
        .strip_prefix(&ED25519_PKCS8_PREFIX[..])
        .filter(|s| s.len() == 32)
        .ok_or("the key file is not an Ed25519 private key (create one with `openssl genpkey -algorithm ed25519 -out key.pem`)")?;
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(seed);
    Ok(out)
}

/// A signer loaded from an Ed25519 private key file (PEM or DER).
pub struct KeyFile {
    key: SigningKey,
}

impl KeyFile {
    /// Reads `path`.
    ///
    /// # Errors
    /// `invalid-input` when it is not an Ed25519 private key.
    pub fn open(path: &Path) -> Result<KeyFile> {
        let file = read_file(path)?;
        let der =
            pkcs8_der(&file).map_err(|e| CliError::invalid(format!("{}: {e}", path.display())))?;
        let seed = ed25519_seed(&der)
            .map_err(|e| CliError::invalid(format!("{}: {e}", path.display())))?;
        Ok(KeyFile {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Signs `statement`.
    pub fn sign(&self, statement: &[u8]) -> Signature {
        Signature(self.key.sign(statement).to_bytes())
    }
}

/// The raw key of an Ed25519 public key file (PEM or DER
/// SubjectPublicKeyInfo, as `openssl pkey -pubout` writes it).
///
/// # Errors
/// `invalid-input` when it is not one.
pub fn public_key_file(path: &Path) -> Result<[u8; 32]> {
    let file = read_file(path)?;
    let der = spki_der(&file).map_err(|e| CliError::invalid(format!("{}: {e}", path.display())))?;
    ed25519_from_spki(&der).ok_or_else(|| {
        CliError::invalid(format!(
            "{}: not an Ed25519 public key (openssl pkey -in key.pem -pubout -out key.pub)",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_ed25519_pkcs8_key_gives_a_seed() {
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&[3; 32]);
        assert_eq!(*ed25519_seed(&der).expect("a seed"), [3; 32]);
        assert!(ed25519_seed(&der[..47]).is_err());
        let mut x25519 = der.clone();
        x25519[9] = 0x6e;
        assert!(ed25519_seed(&x25519).is_err());
        let mut longer = der;
        longer.push(0);
        assert!(ed25519_seed(&longer).is_err());
    }
}
