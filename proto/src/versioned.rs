//! Versioned ciphertexts and signatures: `hsm:v<N>:<base64>`, the form in
//! which the CLI and the SDK hand out what a key version made, so a
//! ciphertext or signature says which version of its key to use
//! (`Operation::DecryptBatch`, `Operation::VerifyBatch`). The version is
//! outside the base64 so people and scripts can read it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// What every versioned text starts with.
pub const PREFIX: &str = "hsm:v";

/// Why a text that starts with [`PREFIX`] is not a versioned value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionedError {
    /// No `:` after the version, or a version that is not a number from 1.
    #[error("a versioned value is hsm:v<version>:<base64>, with a version from 1")]
    Malformed,
    /// The part after the version is not base64.
    #[error("the part after hsm:v{0}: is not base64")]
    NotBase64(u32),
}

/// Bytes a key version made (a ciphertext, a signature, a data key
/// encrypted), with the version's number.
#[derive(Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The key version, from 1.
    pub version: u32,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Versioned {
    /// The value as text: `hsm:v<version>:<base64>`.
    pub fn to_text(&self) -> String {
        format(self.version, &self.bytes)
    }

    /// The value `text` holds; `None` when `text` is not a versioned value
    /// (does not start with [`PREFIX`]), so callers can take plain input
    /// as well. Whitespace around it is ignored.
    pub fn parse(text: &str) -> Option<Result<Versioned, VersionedError>> {
        parse(text).map(|r| r.map(|(version, bytes)| Versioned { version, bytes }))
    }
}

impl std::fmt::Display for Versioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// Shows the version and the length only.
impl std::fmt::Debug for Versioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Versioned")
            .field("version", &self.version)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// `bytes` made by key version `version`, as text.
pub fn format(version: u32, bytes: &[u8]) -> String {
    format!("{PREFIX}{version}:{}", STANDARD.encode(bytes))
}

/// The version and bytes of a versioned text; `None` when `text` is not
/// one (does not start with [`PREFIX`]). Whitespace around it is ignored.
pub fn parse(text: &str) -> Option<Result<(u32, Vec<u8>), VersionedError>> {
    let rest = text.trim().strip_prefix(PREFIX)?;
    Some(parse_rest(rest))
}

fn parse_rest(rest: &str) -> Result<(u32, Vec<u8>), VersionedError> {
    let (digits, body) = rest.split_once(':').ok_or(VersionedError::Malformed)?;
    // One way to write each version: no sign, no leading zero.
    if digits.is_empty()
        || digits.len() > 10
        || digits.starts_with('0')
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(VersionedError::Malformed);
    }
    let version: u32 = digits.parse().map_err(|_| VersionedError::Malformed)?;
    if version == 0 {
        return Err(VersionedError::Malformed);
    }
    let bytes = STANDARD
        .decode(body)
        .map_err(|_| VersionedError::NotBase64(version))?;
    Ok((version, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_versioned_value_reads_back() {
        let text = format(7, b"\x00\x01ciphertext");
        assert!(text.starts_with("hsm:v7:"));
        assert_eq!(parse(&text), Some(Ok((7, b"\x00\x01ciphertext".to_vec()))));
        assert_eq!(
            parse(&format!(" {text}\n")),
            Some(Ok((7, b"\x00\x01ciphertext".to_vec())))
        );
        assert_eq!(
            parse(&format(u32::MAX, b"")),
            Some(Ok((u32::MAX, Vec::new())))
        );
    }

    #[test]
    fn plain_input_is_not_versioned_and_bad_versions_are_named() {
        assert_eq!(parse("AAEC"), None);
        assert_eq!(parse("hsm:v:AAEC"), Some(Err(VersionedError::Malformed)));
        assert_eq!(parse("hsm:v0:AAEC"), Some(Err(VersionedError::Malformed)));
        assert_eq!(parse("hsm:v1"), Some(Err(VersionedError::Malformed)));
        assert_eq!(parse("hsm:v-1:AAEC"), Some(Err(VersionedError::Malformed)));
        assert_eq!(parse("hsm:v07:AAEC"), Some(Err(VersionedError::Malformed)));
        assert_eq!(
            parse("hsm:v99999999999:AAEC"),
            Some(Err(VersionedError::Malformed))
        );
        assert_eq!(
            parse("hsm:v2:not base64!"),
            Some(Err(VersionedError::NotBase64(2)))
        );
    }
}
