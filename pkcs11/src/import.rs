//! Private keys a caller brings (`C_CreateObject` of `CKO_PRIVATE_KEY`),
//! as the PKCS#8 DER the cluster imports: RSA from its CRT components, EC
//! from its scalar and curve, Ed25519 from its seed. The material passes
//! only through zeroizing buffers. Pure.

use cryptoki_sys::*;
use der::asn1::{ObjectIdentifier, OctetStringRef, UintRef};
use der::Encode;
use hsm_proto::client::Secret;
use hsm_proto::KeySpec;
use zeroize::Zeroizing;

use crate::public::{curve_of_params, curve_oid};
use crate::templates::{ulong, Attr, NewKey, PairTemplate};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

type Der = Zeroizing<Vec<u8>>;

fn tlv(tag: der::Tag, contents: &[u8]) -> Result<Der, CK_RV> {
    let len = der::Length::try_from(contents.len()).map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?;
    let mut out = Zeroizing::new(Vec::with_capacity(contents.len() + 8));
    der::Header::new(tag, len)
        .and_then(|h| h.encode_to_vec(&mut out))
        .map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?;
    out.extend_from_slice(contents);
    Ok(out)
}

fn sequence(parts: &[&[u8]]) -> Result<Der, CK_RV> {
    // Sized up front: a growing buffer would leave unzeroed copies behind.
    let mut contents = Zeroizing::new(Vec::with_capacity(parts.iter().map(|p| p.len()).sum()));
    for p in parts {
        contents.extend_from_slice(p);
    }
    tlv(der::Tag::Sequence, &contents)
}

fn integer(bytes: &[u8]) -> Result<Der, CK_RV> {
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len() + 8));
    UintRef::new(bytes)
        .and_then(|u| u.encode_to_vec(&mut out))
        .map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?;
    Ok(out)
}

fn octets(bytes: &[u8]) -> Result<Der, CK_RV> {
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len() + 8));
    OctetStringRef::new(bytes)
        .and_then(|o| o.encode_to_vec(&mut out))
        .map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?;
    Ok(out)
}

fn oid(o: ObjectIdentifier) -> Result<Vec<u8>, CK_RV> {
    o.to_der().map_err(|_| CKR_GENERAL_ERROR)
}

/// A PKCS#8 `PrivateKeyInfo` (version 0) of `algorithm` and `key`.
fn pkcs8(algorithm: &[u8], key: &[u8]) -> Result<Der, CK_RV> {
    sequence(&[&[0x02, 0x01, 0x00], algorithm, &octets(key)?])
}

const RSA_PARTS: [CK_ATTRIBUTE_TYPE; 8] = [
    CKA_MODULUS,
    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,
    CKA_PRIME_2,
    CKA_EXPONENT_1,
    CKA_EXPONENT_2,
    CKA_COEFFICIENT,
];

/// The value of attribute `t` in `template`.
fn value_of(template: &[Attr], t: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
    template
        .iter()
        .find(|(at, _)| *at == t)
        .map(|(_, v)| &v[..])
}

/// The RSA spec of a modulus (leading zero bytes left out).
///
/// # Errors
/// `CKR_KEY_SIZE_RANGE` for a size the cluster lacks.
fn rsa_spec(modulus: &[u8]) -> Result<KeySpec, CK_RV> {
    let start = modulus
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(modulus.len());
    let bits = u16::try_from((modulus.len() - start) * 8).map_err(|_| CKR_KEY_SIZE_RANGE)?;
    let spec = KeySpec::Rsa { bits };
    if spec.is_valid() {
        Ok(spec)
    } else {
        Err(CKR_KEY_SIZE_RANGE)
    }
}

/// The private key a `CKO_PRIVATE_KEY` template imports, and its PKCS#8.
///
/// # Errors
/// `CKR_TEMPLATE_INCOMPLETE` without the key type or a component (RSA
/// needs all eight CRT components); `CKR_ATTRIBUTE_VALUE_INVALID` for a
/// key type the cluster lacks, a scalar of the wrong size; `CKR_CURVE_NOT_SUPPORTED`
/// and `CKR_KEY_SIZE_RANGE` for a curve or size it lacks; the template
/// errors otherwise. Whether the components make a key is the cluster's
/// check (it refuses material that does not parse or match).
pub fn private_key(template: &[Attr]) -> Result<(NewKey, Secret), CK_RV> {
    let find = |t| value_of(template, t);
    let kt = ulong(find(CKA_KEY_TYPE).ok_or(CKR_TEMPLATE_INCOMPLETE)?)?;
    let material: &[CK_ATTRIBUTE_TYPE] = match kt {
        CKK_RSA => &RSA_PARTS,
        CKK_EC | CKK_EC_EDWARDS => &[CKA_VALUE, CKA_EC_PARAMS],
        _ => return Err(CKR_ATTRIBUTE_VALUE_INVALID),
    };
    let (spec, der) = match kt {
        CKK_RSA => {
            let mut parts = Vec::new();
            for t in RSA_PARTS {
                parts.push(integer(find(t).ok_or(CKR_TEMPLATE_INCOMPLETE)?)?);
            }
            let modulus = find(CKA_MODULUS).unwrap_or_default();
            let spec = rsa_spec(modulus)?;
            let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
            let mut all = vec![&[0x02u8, 0x01, 0x00][..]];
            all.extend(refs);
            let rsa_key = sequence(&all)?;
            let algorithm = sequence(&[&oid(RSA_ENCRYPTION)?, &[0x05, 0x00]])?;
            (spec, pkcs8(&algorithm, &rsa_key)?)
        }
        _ => {
            let value = find(CKA_VALUE).ok_or(CKR_TEMPLATE_INCOMPLETE)?;
            let spec = match (kt, find(CKA_EC_PARAMS)) {
                (CKK_EC, Some(p)) => curve_of_params(p).ok_or(CKR_CURVE_NOT_SUPPORTED)?,
                (CKK_EC, None) => return Err(CKR_TEMPLATE_INCOMPLETE),
                (_, Some(p)) => curve_of_params(p).ok_or(CKR_CURVE_NOT_SUPPORTED)?,
                (_, None) => KeySpec::Ed25519,
            };
            if crate::objects::key_type(spec) != kt {
                return Err(CKR_CURVE_NOT_SUPPORTED);
            }
            let curve = oid(curve_oid(spec).ok_or(CKR_CURVE_NOT_SUPPORTED)?)?;
            if spec == KeySpec::Ed25519 {
                if value.len() != 32 {
                    return Err(CKR_ATTRIBUTE_VALUE_INVALID);
                }
                let algorithm = sequence(&[&curve])?;
                (spec, pkcs8(&algorithm, &octets(value)?)?)
            } else {
                let n = crate::public::ecdsa_scalar_len(spec).ok_or(CKR_CURVE_NOT_SUPPORTED)?;
                let start = value.iter().position(|b| *b != 0).unwrap_or(value.len());
                let significant = &value[start..];
                if significant.is_empty() || significant.len() > n {
                    return Err(CKR_ATTRIBUTE_VALUE_INVALID);
                }
                let mut scalar = Zeroizing::new(vec![0u8; n]);
                scalar[n - significant.len()..].copy_from_slice(significant);
                let ec_key = sequence(&[&[0x02, 0x01, 0x01], &octets(&scalar)?])?;
                let algorithm = sequence(&[&oid(EC_PUBLIC_KEY)?, &curve])?;
                (spec, pkcs8(&algorithm, &ec_key)?)
            }
        }
    };
    let rest: Vec<Attr> = template
        .iter()
        .filter(|(t, _)| !material.contains(t))
        .cloned()
        .collect();
    let new = PairTemplate::private_only(CKO_PRIVATE_KEY, kt, &rest)?.finish(spec)?;
    Ok((new, Secret::new(der.to_vec())))
}

/// The public key a `CKO_PUBLIC_KEY` template imports alone, as
/// SubjectPublicKeyInfo DER: RSA from `CKA_MODULUS` and
/// `CKA_PUBLIC_EXPONENT`, EC and Edwards keys from `CKA_EC_PARAMS` and
/// `CKA_EC_POINT` (bare or in its DER OCTET STRING).
///
/// # Errors
/// `CKR_TEMPLATE_INCOMPLETE` without the key type or a component;
/// `CKR_ATTRIBUTE_VALUE_INVALID` for a key type the cluster lacks or a
/// point of the wrong form; `CKR_CURVE_NOT_SUPPORTED` and
/// `CKR_KEY_SIZE_RANGE` for a curve or size it lacks; the template errors
/// otherwise. Whether the point is on its curve is the cluster's check.
pub fn public_key(template: &[Attr]) -> Result<(NewKey, Vec<u8>), CK_RV> {
    let find = |t| value_of(template, t);
    let kt = ulong(find(CKA_KEY_TYPE).ok_or(CKR_TEMPLATE_INCOMPLETE)?)?;
    let (material, spec, der): (&[CK_ATTRIBUTE_TYPE], _, _) = match kt {
        CKK_RSA => {
            let modulus = find(CKA_MODULUS).ok_or(CKR_TEMPLATE_INCOMPLETE)?;
            let exponent = find(CKA_PUBLIC_EXPONENT).ok_or(CKR_TEMPLATE_INCOMPLETE)?;
            let spec = rsa_spec(modulus)?;
            let rsa_key = sequence(&[&integer(modulus)?, &integer(exponent)?])?;
            let algorithm = sequence(&[&oid(RSA_ENCRYPTION)?, &[0x05, 0x00]])?;
            let bits = tlv(der::Tag::BitString, &[&[0u8][..], &rsa_key[..]].concat())?;
            let spki = sequence(&[&algorithm, &bits])?;
            (&[CKA_MODULUS, CKA_PUBLIC_EXPONENT], spec, spki.to_vec())
        }
        CKK_EC | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY => {
            let params = find(CKA_EC_PARAMS).ok_or(CKR_TEMPLATE_INCOMPLETE)?;
            let point = find(CKA_EC_POINT).ok_or(CKR_TEMPLATE_INCOMPLETE)?;
            let spec = curve_of_params(params).ok_or(CKR_CURVE_NOT_SUPPORTED)?;
            if crate::objects::key_type(spec) != kt {
                return Err(CKR_CURVE_NOT_SUPPORTED);
            }
            let spki =
                crate::public::spki_of_point(spec, point).ok_or(CKR_ATTRIBUTE_VALUE_INVALID)?;
            (&[CKA_EC_PARAMS, CKA_EC_POINT], spec, spki)
        }
        _ => return Err(CKR_ATTRIBUTE_VALUE_INVALID),
    };
    let rest: Vec<Attr> = template
        .iter()
        .filter(|(t, _)| !material.contains(t))
        .cloned()
        .collect();
    let new = PairTemplate::public_only(kt, &rest)?.finish_public(spec)?;
    Ok((new, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ul(v: CK_ULONG) -> Vec<u8> {
        v.to_ne_bytes().to_vec()
    }

    #[test]
    fn an_ec_scalar_becomes_pkcs8_with_its_curve() {
        let p256 = curve_oid(KeySpec::EcP256)
            .expect("oid")
            .to_der()
            .expect("der");
        let (key, der) = private_key(&[
            (CKA_CLASS, ul(CKO_PRIVATE_KEY)),
            (CKA_KEY_TYPE, ul(CKK_EC)),
            (CKA_EC_PARAMS, p256.clone()),
            (CKA_VALUE, vec![7; 31]),
            (CKA_LABEL, b"imported".to_vec()),
            (CKA_SIGN, vec![CK_TRUE]),
        ])
        .expect("import");
        assert_eq!(key.spec, KeySpec::EcP256);
        assert_eq!(key.attributes.label, "imported");
        assert!(key.attributes.sign);
        let der = der.expose();
        assert_eq!(der[0], 0x30);
        // The scalar is padded to the curve's 32 bytes.
        assert!(der
            .windows(34)
            .any(|w| w[..2] == [0x04, 32] && w[2] == 0 && w[3..] == [7; 31]));
        assert_eq!(
            private_key(&[(CKA_KEY_TYPE, ul(CKK_EC)), (CKA_VALUE, vec![1; 32])]),
            Err(CKR_TEMPLATE_INCOMPLETE)
        );
        assert_eq!(
            private_key(&[
                (CKA_KEY_TYPE, ul(CKK_EC)),
                (CKA_EC_PARAMS, p256),
                (CKA_VALUE, vec![1; 33])
            ]),
            Err(CKR_ATTRIBUTE_VALUE_INVALID)
        );
    }

    #[test]
    fn a_public_key_alone_becomes_its_subject_public_key_info() {
        let p256 = curve_oid(KeySpec::EcP256)
            .expect("oid")
            .to_der()
            .expect("der");
        let mut point = vec![0x04];
        point.extend_from_slice(&[9; 64]);
        let (key, spki) = public_key(&[
            (CKA_CLASS, ul(CKO_PUBLIC_KEY)),
            (CKA_KEY_TYPE, ul(CKK_EC)),
            (CKA_EC_PARAMS, p256.clone()),
            (CKA_EC_POINT, [&[0x04, 65][..], &point].concat()),
            (CKA_LABEL, b"peer".to_vec()),
            (CKA_TOKEN, vec![CK_TRUE]),
        ])
        .expect("import");
        assert_eq!(key.spec, KeySpec::EcP256);
        assert!(key.attributes.verify && !key.attributes.sign && !key.attributes.encrypt);
        assert!(key.token);
        assert_eq!(
            spki,
            crate::public::spki_of_point(KeySpec::EcP256, &point).expect("spki")
        );
        // What the private half does is not a public key's to ask.
        assert_eq!(
            public_key(&[
                (CKA_KEY_TYPE, ul(CKK_EC)),
                (CKA_EC_PARAMS, p256.clone()),
                (CKA_EC_POINT, point.clone()),
                (CKA_SIGN, vec![CK_TRUE]),
            ]),
            Err(CKR_ATTRIBUTE_TYPE_INVALID)
        );
        assert_eq!(
            public_key(&[(CKA_KEY_TYPE, ul(CKK_EC)), (CKA_EC_PARAMS, p256)]),
            Err(CKR_TEMPLATE_INCOMPLETE)
        );

        let mut modulus = vec![0xc1; 256];
        modulus[255] |= 1;
        let (key, spki) = public_key(&[
            (CKA_KEY_TYPE, ul(CKK_RSA)),
            (CKA_MODULUS, modulus),
            (CKA_PUBLIC_EXPONENT, vec![1, 0, 1]),
        ])
        .expect("rsa");
        assert_eq!(key.spec, KeySpec::Rsa { bits: 2048 });
        assert!(key.attributes.verify && key.attributes.encrypt && key.attributes.wrap);
        assert_eq!(&spki[..4], &[0x30, 0x82, 0x01, 0x22]);
    }

    #[test]
    fn rsa_needs_every_crt_component() {
        let mut t = vec![(CKA_KEY_TYPE, ul(CKK_RSA))];
        for a in RSA_PARTS {
            t.push((a, vec![0x80; 256]));
        }
        let (key, _) = private_key(&t).expect("import");
        assert_eq!(key.spec, KeySpec::Rsa { bits: 2048 });
        t.pop();
        assert_eq!(private_key(&t), Err(CKR_TEMPLATE_INCOMPLETE));
    }
}
