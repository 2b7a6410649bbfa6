//! DER and PEM plumbing: recognising PKCS#8 and SubjectPublicKeyInfo
//! documents, the fixed RFC 8410 encodings of X25519 keys, and PEM.

use crate::error::{CryptoError, Result};
use base64::Engine as _;
use pkcs8::der::asn1::ObjectIdentifier;
use pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use pkcs8::PrivateKeyInfo;

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");
const OID_X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Largest DER or PEM document accepted as a key, in bytes.
pub(crate) const MAX_KEY_DOCUMENT_LEN: usize = 64 * 1024;

/// The key algorithm a PKCS#8 or SPKI document names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Rsa,
    EcP256,
    EcP384,
    EcSecp256k1,
    Ed25519,
    X25519,
}

fn algorithm_of(id: &AlgorithmIdentifierRef<'_>) -> Result<Algorithm> {
    match id.oid {
        OID_RSA => Ok(Algorithm::Rsa),
        OID_ED25519 => Ok(Algorithm::Ed25519),
        OID_X25519 => Ok(Algorithm::X25519),
        OID_EC_PUBLIC_KEY => match id.parameters_oid() {
            Ok(OID_P256) => Ok(Algorithm::EcP256),
            Ok(OID_P384) => Ok(Algorithm::EcP384),
            Ok(OID_SECP256K1) => Ok(Algorithm::EcSecp256k1),
            Ok(_) => Err(CryptoError::BadKey("unsupported elliptic curve")),
            Err(_) => Err(CryptoError::BadKey(
                "elliptic curve key without a named curve",
            )),
        },
        _ => Err(CryptoError::BadKey("unsupported key algorithm")),
    }
}

fn check_len(what: &'static str, der: &[u8]) -> Result<()> {
    if der.len() > MAX_KEY_DOCUMENT_LEN {
        return Err(CryptoError::BadLength {
            what,
            len: der.len(),
            allowed: "at most 65536",
        });
    }
    Ok(())
}

/// Parses a PKCS#8 `PrivateKeyInfo` (v1 or v2) far enough to name its
/// algorithm; returns it with the inner private key octets.
pub(crate) fn inspect_pkcs8(der: &[u8]) -> Result<(Algorithm, PrivateKeyInfo<'_>)> {
    check_len("private key", der)?;
    let info = PrivateKeyInfo::try_from(der)
        .map_err(|_| CryptoError::BadKey("not a PKCS#8 private key"))?;
    Ok((algorithm_of(&info.algorithm)?, info))
}

/// Parses a SubjectPublicKeyInfo far enough to name its algorithm; returns
/// it with the subject public key bytes.
pub(crate) fn inspect_spki(der: &[u8]) -> Result<(Algorithm, &[u8])> {
    check_len("public key", der)?;
    let info = SubjectPublicKeyInfoRef::try_from(der)
        .map_err(|_| CryptoError::BadKey("not a SubjectPublicKeyInfo public key"))?;
    let key = info
        .subject_public_key
        .as_bytes()
        .ok_or(CryptoError::BadKey("public key bit string has unused bits"))?;
    Ok((algorithm_of(&info.algorithm)?, key))
}

const X25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
];
const X25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
];

/// Length of X25519 private and public keys.
pub(crate) const X25519_KEY_LEN: usize = 32;

/// The private scalar inside an X25519 PKCS#8 `privateKey` field, which is
/// itself an OCTET STRING (RFC 8410 `CurvePrivateKey`).
pub(crate) fn x25519_private_from_pkcs8_field(field: &[u8]) -> Result<&[u8]> {
    match field {
        [0x04, 0x20, rest @ ..] if rest.len() == X25519_KEY_LEN => Ok(rest),
        _ => Err(CryptoError::BadKey(
            "x25519 private key is not a 32-byte octet string",
        )),
    }
}

/// The PKCS#8 v1 document of an X25519 private key (RFC 8410), as OpenSSL
/// writes it.
pub(crate) fn x25519_pkcs8(private: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(X25519_PKCS8_PREFIX.len() + private.len());
    out.extend_from_slice(&X25519_PKCS8_PREFIX);
    out.extend_from_slice(private);
    out
}

/// The SubjectPublicKeyInfo of an X25519 public key (RFC 8410).
pub(crate) fn x25519_spki(public: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(X25519_SPKI_PREFIX.len() + public.len());
    out.extend_from_slice(&X25519_SPKI_PREFIX);
    out.extend_from_slice(public);
    out
}

const PEM_PUBLIC_BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const PEM_PUBLIC_END: &str = "-----END PUBLIC KEY-----";

/// PEM ("PUBLIC KEY", RFC 7468) text of a SubjectPublicKeyInfo, with 64
/// characters per line and a final newline.
pub(crate) fn public_key_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str(PEM_PUBLIC_BEGIN);
    out.push('\n');
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(PEM_PUBLIC_END);
    out.push('\n');
    out
}

/// The DER inside the first "PUBLIC KEY" PEM block of `text`.
pub(crate) fn public_key_from_pem(text: &str) -> Result<Vec<u8>> {
    check_len("pem text", text.as_bytes())?;
    let bad = CryptoError::BadKey("not a PEM public key");
    let start = text.find(PEM_PUBLIC_BEGIN).ok_or(bad.clone())? + PEM_PUBLIC_BEGIN.len();
    let body = text.get(start..).ok_or(bad.clone())?;
    let end = body.find(PEM_PUBLIC_END).ok_or(bad.clone())?;
    let b64: String = body
        .get(..end)
        .ok_or(bad.clone())?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad)
}
