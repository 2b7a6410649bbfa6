//! Public keys in PKCS#11's terms, and ECDSA signatures in its format.
//!
//! The cluster gives public keys as SubjectPublicKeyInfo DER and ECDSA
//! signatures as DER `SEQUENCE { r, s }`; PKCS#11 wants RSA moduli and
//! exponents, `CKA_EC_PARAMS` (the curve's OID) and `CKA_EC_POINT` (the
//! point in a DER OCTET STRING), and ECDSA signatures as `r || s`, each
//! as long as the curve order. Pure.

use der::asn1::{AnyRef, ObjectIdentifier, OctetStringRef, UintRef};
use der::{Decode, Encode, Reader, SliceReader};
use hsm_proto::KeySpec;
use spki::SubjectPublicKeyInfoRef;

/// The names an X.509 certificate's PKCS#11 object carries, each as its
/// DER: subject and issuer (`Name`), serial number (`INTEGER`), and the
/// subject public key (`SubjectPublicKeyInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateParts {
    /// `CKA_SUBJECT`.
    pub subject: Vec<u8>,
    /// `CKA_ISSUER`.
    pub issuer: Vec<u8>,
    /// `CKA_SERIAL_NUMBER`.
    pub serial: Vec<u8>,
    /// The key it certifies.
    pub public_key: Vec<u8>,
}

impl CertificateParts {
    /// The parts of `der`, an X.509 certificate; `None` when it is not
    /// one (or has bytes after it).
    pub fn parse(der: &[u8]) -> Option<CertificateParts> {
        let mut reader = SliceReader::new(der).ok()?;
        let parts = reader
            .sequence(|cert| {
                let parts = cert.sequence(|tbs| {
                    let version = der::Tag::ContextSpecific {
                        constructed: true,
                        number: der::TagNumber::N0,
                    };
                    if tbs.peek_tag()? == version {
                        AnyRef::decode(tbs)?;
                    }
                    let serial = AnyRef::decode(tbs)?.to_der()?;
                    AnyRef::decode(tbs)?; // signature algorithm
                    let issuer = AnyRef::decode(tbs)?.to_der()?;
                    AnyRef::decode(tbs)?; // validity
                    let subject = AnyRef::decode(tbs)?.to_der()?;
                    let public_key = AnyRef::decode(tbs)?.to_der()?;
                    // Unique ids and extensions.
                    while !tbs.is_finished() {
                        AnyRef::decode(tbs)?;
                    }
                    Ok(CertificateParts {
                        subject,
                        issuer,
                        serial,
                        public_key,
                    })
                })?;
                AnyRef::decode(cert)?; // signature algorithm
                AnyRef::decode(cert)?; // signature
                Ok(parts)
            })
            .ok()?;
        reader.finish(parts).ok()
    }
}

/// OIDs of the curves the cluster has.
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");

/// The public parts of a key pair as PKCS#11 attributes carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicParts {
    /// `CKA_MODULUS` and `CKA_PUBLIC_EXPONENT`, big-endian, no leading
    /// zeros.
    Rsa {
        /// The modulus.
        modulus: Vec<u8>,
        /// The public exponent.
        exponent: Vec<u8>,
    },
    /// `CKA_EC_PARAMS` (DER OID) and `CKA_EC_POINT` (DER OCTET STRING of
    /// the point: uncompressed for the NIST curves and secp256k1, the 32
    /// bytes for Ed25519 and X25519).
    Curve {
        /// The curve's OID, DER.
        params: Vec<u8>,
        /// The point, in an OCTET STRING, DER.
        point: Vec<u8>,
    },
}

impl PublicParts {
    /// The parts of `spki`, a public key of `spec`; `None` when it is not
    /// one (the cluster gave something else).
    pub fn parse(spec: KeySpec, spki: &[u8]) -> Option<PublicParts> {
        let info = SubjectPublicKeyInfoRef::from_der(spki).ok()?;
        let bits = info.subject_public_key.as_bytes()?;
        match spec {
            KeySpec::Rsa { .. } => {
                let mut reader = SliceReader::new(bits).ok()?;
                let (modulus, exponent) = reader
                    .sequence(|r| Ok((UintRef::decode(r)?, UintRef::decode(r)?)))
                    .ok()?;
                Some(PublicParts::Rsa {
                    modulus: modulus.as_bytes().to_vec(),
                    exponent: exponent.as_bytes().to_vec(),
                })
            }
            _ => Some(PublicParts::Curve {
                params: curve_oid(spec)?.to_der().ok()?,
                point: OctetStringRef::new(bits).ok()?.to_der().ok()?,
            }),
        }
    }
}

/// The OID of `spec`'s curve.
pub(crate) fn curve_oid(spec: KeySpec) -> Option<ObjectIdentifier> {
    Some(match spec {
        KeySpec::EcP256 => P256,
        KeySpec::EcP384 => P384,
        KeySpec::EcSecp256k1 => SECP256K1,
        KeySpec::Ed25519 => ED25519,
        KeySpec::X25519 => X25519,
        _ => return None,
    })
}

/// The key spec `CKA_EC_PARAMS` names: a DER OID of a curve the cluster
/// has, or (PKCS#11 3.0, for Edwards and Montgomery curves) a DER
/// PrintableString of its name.
pub fn curve_of_params(params: &[u8]) -> Option<KeySpec> {
    if let Ok(oid) = ObjectIdentifier::from_der(params) {
        return [
            KeySpec::EcP256,
            KeySpec::EcP384,
            KeySpec::EcSecp256k1,
            KeySpec::Ed25519,
            KeySpec::X25519,
        ]
        .into_iter()
        .find(|spec| curve_oid(*spec) == Some(oid));
    }
    match der::asn1::PrintableStringRef::from_der(params)
        .ok()?
        .as_str()
    {
        "edwards25519" => Some(KeySpec::Ed25519),
        "curve25519" => Some(KeySpec::X25519),
        _ => None,
    }
}

/// The SubjectPublicKeyInfo DER of a public point for a key of `spec`
/// (P-256, P-384, secp256k1: the uncompressed point; Ed25519, X25519: its
/// 32 bytes), given bare or in a DER OCTET STRING (as `CKA_EC_POINT` holds
/// it); `None` when it is neither.
pub fn spki_of_point(spec: KeySpec, point: &[u8]) -> Option<Vec<u8>> {
    let montgomery_or_edwards = matches!(spec, KeySpec::X25519 | KeySpec::Ed25519);
    let raw_len = match spec {
        KeySpec::EcP256 | KeySpec::EcSecp256k1 => 65,
        KeySpec::EcP384 => 97,
        KeySpec::X25519 | KeySpec::Ed25519 => 32,
        _ => return None,
    };
    let raw = if point.len() == raw_len {
        point
    } else if point.len() == raw_len + 2 && point.first() == Some(&0x04) {
        OctetStringRef::from_der(point).ok()?.as_bytes()
    } else {
        return None;
    };
    if !montgomery_or_edwards && raw.first() != Some(&0x04) {
        return None;
    }
    let curve = curve_oid(spec)?.to_der().ok()?;
    let algorithm = if montgomery_or_edwards {
        curve
    } else {
        let ec = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1")
            .to_der()
            .ok()?;
        [ec, curve].concat()
    };
    let algorithm = tlv(der::Tag::Sequence, &algorithm)?;
    let bits = tlv(der::Tag::BitString, &[&[0u8][..], raw].concat())?;
    tlv(der::Tag::Sequence, &[algorithm, bits].concat())
}

fn tlv(tag: der::Tag, contents: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    der::Header::new(tag, der::Length::try_from(contents.len()).ok()?)
        .ok()?
        .encode_to_vec(&mut out)
        .ok()?;
    out.extend_from_slice(contents);
    Some(out)
}

/// Bytes of each of r and s in a PKCS#11 ECDSA signature on `spec`'s
/// curve.
pub fn ecdsa_scalar_len(spec: KeySpec) -> Option<usize> {
    match spec {
        KeySpec::EcP256 | KeySpec::EcSecp256k1 => Some(32),
        KeySpec::EcP384 => Some(48),
        _ => None,
    }
}

/// A DER ECDSA signature as PKCS#11's `r || s` of `n` bytes each; `None`
/// when it is not one that fits.
pub fn ecdsa_der_to_raw(der: &[u8], n: usize) -> Option<Vec<u8>> {
    let mut reader = SliceReader::new(der).ok()?;
    let (r, s) = reader
        .sequence(|rd| Ok((UintRef::decode(rd)?, UintRef::decode(rd)?)))
        .ok()?;
    reader.finish(()).ok()?;
    let mut out = vec![0u8; 2 * n];
    for (i, v) in [r.as_bytes(), s.as_bytes()].into_iter().enumerate() {
        if v.len() > n {
            return None;
        }
        let end = (i + 1) * n;
        out.get_mut(end - v.len()..end)?.copy_from_slice(v);
    }
    Some(out)
}

/// PKCS#11's `r || s` as a DER ECDSA signature; `None` unless it is two
/// halves of `n` bytes.
pub fn ecdsa_raw_to_der(raw: &[u8], n: usize) -> Option<Vec<u8>> {
    if raw.len() != 2 * n {
        return None;
    }
    let (r, s) = raw.split_at(n);
    let r = UintRef::new(r).ok()?;
    let s = UintRef::new(s).ok()?;
    let len = (r.encoded_len().ok()? + s.encoded_len().ok()?).ok()?;
    let mut out = Vec::new();
    der::Header::new(der::Tag::Sequence, len)
        .ok()?
        .encode_to_vec(&mut out)
        .ok()?;
    r.encode_to_vec(&mut out).ok()?;
    s.encode_to_vec(&mut out).ok()?;
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed P-256 certificate (CN=test), made by OpenSSL.
    pub(crate) const CERTIFICATE: &[u8] = include_bytes!("../tests/data/test-cert.der");

    #[test]
    fn a_certificate_gives_its_names_and_key() {
        let parts = CertificateParts::parse(CERTIFICATE).expect("parse");
        assert_eq!(parts.subject, parts.issuer);
        assert_eq!(parts.serial[0], 0x02);
        assert_eq!(parts.public_key[0], 0x30);
        assert!(PublicParts::parse(KeySpec::EcP256, &parts.public_key).is_some());
        assert!(CertificateParts::parse(&CERTIFICATE[..CERTIFICATE.len() - 1]).is_none());
        let mut longer = CERTIFICATE.to_vec();
        longer.push(0);
        assert!(CertificateParts::parse(&longer).is_none());
        assert!(CertificateParts::parse(b"").is_none());
    }

    #[test]
    fn ecdsa_signatures_convert_both_ways_with_leading_zeros_kept() {
        // r with its top bit set (DER adds a zero byte), s short (DER
        // drops its leading zeros).
        let mut raw = vec![0x80u8; 32];
        raw.extend([0u8; 31]);
        raw.push(5);
        let der = ecdsa_raw_to_der(&raw, 32).expect("der");
        assert_eq!(&der[..4], &[0x30, 0x26, 0x02, 0x21]);
        assert_eq!(ecdsa_der_to_raw(&der, 32), Some(raw.clone()));
        assert_eq!(ecdsa_raw_to_der(&raw[1..], 32), None);
        assert_eq!(ecdsa_der_to_raw(&der, 16), None);
        assert_eq!(ecdsa_der_to_raw(&der[..der.len() - 1], 32), None);
        assert_eq!(ecdsa_der_to_raw(b"", 32), None);
    }

    #[test]
    fn a_peer_point_becomes_a_public_key_bare_or_wrapped() {
        let parts = CertificateParts::parse(CERTIFICATE).expect("parse");
        let Some(PublicParts::Curve { point, .. }) =
            PublicParts::parse(KeySpec::EcP256, &parts.public_key)
        else {
            panic!("curve");
        };
        // CKA_EC_POINT (wrapped) and the bare point give the same SPKI,
        // the certificate's own.
        assert_eq!(
            spki_of_point(KeySpec::EcP256, &point),
            Some(parts.public_key.clone())
        );
        assert_eq!(
            spki_of_point(KeySpec::EcP256, &point[2..]),
            Some(parts.public_key.clone())
        );
        assert_eq!(spki_of_point(KeySpec::EcP384, &point[2..]), None);
        assert_eq!(spki_of_point(KeySpec::EcP256, &point[3..]), None);
        let x = spki_of_point(KeySpec::X25519, &[9; 32]).expect("x25519");
        assert!(PublicParts::parse(KeySpec::X25519, &x).is_some());
    }

    #[test]
    fn curve_params_name_the_cluster_curves_only() {
        for spec in [
            KeySpec::EcP256,
            KeySpec::EcP384,
            KeySpec::EcSecp256k1,
            KeySpec::Ed25519,
            KeySpec::X25519,
        ] {
            let der = curve_oid(spec).expect("oid").to_der().expect("der");
            assert_eq!(curve_of_params(&der), Some(spec));
        }
        // "edwards25519" as a PrintableString.
        let mut printable = vec![0x13, 12];
        printable.extend(b"edwards25519");
        assert_eq!(curve_of_params(&printable), Some(KeySpec::Ed25519));
        // P-521 is not one of them.
        let p521 = ObjectIdentifier::new_unwrap("1.3.132.0.35")
            .to_der()
            .expect("der");
        assert_eq!(curve_of_params(&p521), None);
        assert_eq!(curve_of_params(b"\x06"), None);
    }
}
