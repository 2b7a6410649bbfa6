//! Message digests and random bytes.

use crate::error::{CryptoError, Result};
use crate::mechanism::DigestAlgorithm;
use aws_lc_rs::digest as lc;

/// Most random bytes one call returns.
pub const MAX_RANDOM_LEN: usize = 64 * 1024;

/// The digest of `data`.
pub fn digest(algorithm: DigestAlgorithm, data: &[u8]) -> Vec<u8> {
    let lc_alg = match algorithm {
        DigestAlgorithm::Sha256 => &lc::SHA256,
        DigestAlgorithm::Sha384 => &lc::SHA384,
        DigestAlgorithm::Sha512 => &lc::SHA512,
        DigestAlgorithm::Blake3 => return blake3::hash(data).as_bytes().to_vec(),
    };
    lc::digest(lc_alg, data).as_ref().to_vec()
}

/// `len` bytes from AWS-LC's DRBG (seeded from the operating system).
///
/// # Errors
/// [`CryptoError::BadLength`] if `len` exceeds [`MAX_RANDOM_LEN`];
/// [`CryptoError::Internal`] if the generator fails.
pub fn random_bytes(len: usize) -> Result<Vec<u8>> {
    if len > MAX_RANDOM_LEN {
        return Err(CryptoError::BadLength {
            what: "random output",
            len,
            allowed: "at most 65536",
        });
    }
    let mut out = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut out).map_err(|_| CryptoError::Internal("random"))?;
    Ok(out)
}
