//! Templates: what a caller's attributes ask of a new key or of a change.
//!
//! A template is read strictly where it matters (a curve, a size, a usage
//! the cluster has) and forgivingly where PKCS#11 leaves room: attributes
//! that only restate what the token does anyway (`CKA_PRIVATE`,
//! `CKA_SUBJECT`, `CKA_MODIFIABLE` true, dates) are accepted and
//! ignored. Usages the template leaves out take the defaults of
//! [`default_usages`]. The key policy (conflicting usages, one-way
//! attributes) is the cluster's, checked by the node. Pure.

use cryptoki_sys::*;
use hsm_proto::client::Secret;
use hsm_proto::{KeyAttribute, KeyAttributes, KeyFlag, KeySpec};

use crate::objects::key_type;
use crate::public::curve_of_params;

/// One attribute of a caller's template: type and raw value.
pub type Attr = (CK_ATTRIBUTE_TYPE, Vec<u8>);

/// A key to make, read from templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// Type and size.
    pub spec: KeySpec,
    /// Label, id and usages.
    pub attributes: KeyAttributes,
    /// `CKA_TOKEN`: a token object (kept) or a session object (destroyed
    /// with its session).
    pub token: bool,
}

fn boolean(value: &[u8]) -> Result<bool, CK_RV> {
    match value {
        [b] => Ok(*b != CK_FALSE),
        _ => Err(CKR_ATTRIBUTE_VALUE_INVALID),
    }
}

pub(crate) fn ulong(value: &[u8]) -> Result<CK_ULONG, CK_RV> {
    let bytes: [u8; std::mem::size_of::<CK_ULONG>()] =
        value.try_into().map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?;
    Ok(CK_ULONG::from_ne_bytes(bytes))
}

/// The usages a key of `spec` has when its template names none of them:
/// what the key type is for (signing pairs sign and verify, AES keys
/// encrypt and decrypt, generic secrets make MACs, X25519 derives).
pub fn default_usages(spec: KeySpec) -> &'static [KeyFlag] {
    match spec {
        KeySpec::Aes { .. } => &[KeyFlag::Encrypt, KeyFlag::Decrypt],
        KeySpec::X25519 => &[KeyFlag::Derive],
        _ => &[KeyFlag::Sign, KeyFlag::Verify],
    }
}

const USAGES: [KeyFlag; 7] = [
    KeyFlag::Encrypt,
    KeyFlag::Decrypt,
    KeyFlag::Sign,
    KeyFlag::Verify,
    KeyFlag::Wrap,
    KeyFlag::Unwrap,
    KeyFlag::Derive,
];

/// Which object of a new key an attribute was given for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum For {
    Public,
    Private,
    Secret,
}

/// What the templates said, gathered.
#[derive(Default)]
struct Gathered {
    attributes: KeyAttributes,
    named: Vec<KeyFlag>,
    label: Option<Vec<u8>>,
    id: Option<Vec<u8>>,
    token: Option<bool>,
    ec_params: Option<Vec<u8>>,
    modulus_bits: Option<CK_ULONG>,
    value_len: Option<CK_ULONG>,
}

impl Gathered {
    fn set(&mut self, flag: KeyFlag, value: bool) {
        self.attributes.set_flag(flag, value);
        self.named.push(flag);
    }

    /// The same value twice is fine; two different ones are not.
    fn once<T: PartialEq>(slot: &mut Option<T>, value: T) -> Result<(), CK_RV> {
        match slot {
            Some(v) if *v != value => Err(CKR_TEMPLATE_INCONSISTENT),
            _ => {
                *slot = Some(value);
                Ok(())
            }
        }
    }

    fn take(
        &mut self,
        part: For,
        class: CK_OBJECT_CLASS,
        kt: Option<CK_KEY_TYPE>,
        (t, v): &Attr,
    ) -> Result<(), CK_RV> {
        let pair = part != For::Secret;
        let private_side = part != For::Public;
        let public_side = part != For::Private;
        match *t {
            CKA_CLASS if ulong(v)? == class => {}
            CKA_KEY_TYPE if Some(ulong(v)?) == kt || kt.is_none() => {}
            CKA_CLASS | CKA_KEY_TYPE => return Err(CKR_TEMPLATE_INCONSISTENT),
            CKA_TOKEN => Self::once(&mut self.token, boolean(v)?)?,
            CKA_LABEL => Self::once(&mut self.label, v.clone())?,
            CKA_ID => Self::once(&mut self.id, v.clone())?,
            CKA_PRIVATE | CKA_SUBJECT | CKA_START_DATE | CKA_END_DATE => {}
            CKA_MODIFIABLE | CKA_DESTROYABLE if boolean(v)? => {}
            CKA_COPYABLE | CKA_SIGN_RECOVER | CKA_VERIFY_RECOVER | CKA_ALWAYS_AUTHENTICATE
                if !boolean(v)? => {}
            // Marked by a crypto officer (`hsm key set-attribute`), never
            // at creation.
            CKA_TRUSTED if !boolean(v)? => {}
            CKA_DERIVE => self.set(KeyFlag::Derive, boolean(v)?),
            CKA_SIGN if private_side => self.set(KeyFlag::Sign, boolean(v)?),
            CKA_DECRYPT if private_side => self.set(KeyFlag::Decrypt, boolean(v)?),
            CKA_UNWRAP if private_side => self.set(KeyFlag::Unwrap, boolean(v)?),
            CKA_VERIFY if public_side => self.set(KeyFlag::Verify, boolean(v)?),
            CKA_ENCRYPT if public_side => self.set(KeyFlag::Encrypt, boolean(v)?),
            CKA_WRAP if public_side => self.set(KeyFlag::Wrap, boolean(v)?),
            CKA_SENSITIVE if private_side => self.attributes.sensitive = boolean(v)?,
            CKA_EXTRACTABLE if private_side => self.attributes.extractable = boolean(v)?,
            CKA_WRAP_WITH_TRUSTED if private_side => {
                self.attributes.wrap_with_trusted = boolean(v)?;
            }
            CKA_EC_PARAMS if pair => Self::once(&mut self.ec_params, v.clone())?,
            CKA_MODULUS_BITS if part == For::Public => {
                Self::once(&mut self.modulus_bits, ulong(v)?)?;
            }
            // Only the usual exponent, 65537 (leading zeros allowed).
            CKA_PUBLIC_EXPONENT if part == For::Public => {
                let start = v.iter().position(|b| *b != 0).unwrap_or(v.len());
                if v.get(start..) != Some(&[1, 0, 1][..]) {
                    return Err(CKR_ATTRIBUTE_VALUE_INVALID);
                }
            }
            CKA_VALUE_LEN if part == For::Secret => Self::once(&mut self.value_len, ulong(v)?)?,
            CKA_MODIFIABLE
            | CKA_DESTROYABLE
            | CKA_COPYABLE
            | CKA_SIGN_RECOVER
            | CKA_VERIFY_RECOVER
            | CKA_ALWAYS_AUTHENTICATE
            | CKA_TRUSTED => return Err(CKR_ATTRIBUTE_VALUE_INVALID),
            CKA_LOCAL
            | CKA_ALWAYS_SENSITIVE
            | CKA_NEVER_EXTRACTABLE
            | CKA_KEY_GEN_MECHANISM
            | CKA_MODULUS
            | CKA_EC_POINT
            | CKA_PUBLIC_KEY_INFO => return Err(CKR_ATTRIBUTE_READ_ONLY),
            _ => return Err(CKR_ATTRIBUTE_TYPE_INVALID),
        }
        Ok(())
    }

    fn finish(mut self, spec: KeySpec) -> Result<NewKey, CK_RV> {
        if !USAGES.iter().any(|f| self.named.contains(f)) {
            for flag in default_usages(spec) {
                self.attributes.set_flag(*flag, true);
            }
        }
        self.attributes.label = match self.label {
            Some(l) => String::from_utf8(l).map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?,
            None => String::new(),
        };
        self.attributes.id = self.id.unwrap_or_default();
        if !self.attributes.is_within_limits() {
            return Err(CKR_ATTRIBUTE_VALUE_INVALID);
        }
        Ok(NewKey {
            spec,
            attributes: self.attributes,
            token: self.token.unwrap_or(false),
        })
    }
}

/// The attributes of a private key imported whole (the public half's
/// usages follow the private half's: what it signs, its public key
/// verifies).
pub struct PairTemplate(Gathered);

impl PairTemplate {
    /// Reads the private key object's template (its material taken out).
    ///
    /// # Errors
    /// The template errors of PKCS#11.
    pub fn private_only(
        class: CK_OBJECT_CLASS,
        kt: CK_KEY_TYPE,
        template: &[Attr],
    ) -> Result<PairTemplate, CK_RV> {
        let mut g = Gathered::default();
        for a in template {
            g.take(For::Private, class, Some(kt), a)?;
        }
        let a = &mut g.attributes;
        a.verify |= a.sign;
        a.encrypt |= a.decrypt;
        a.wrap |= a.unwrap;
        Ok(PairTemplate(g))
    }

    /// Reads the template of a public key imported alone (its material
    /// taken out): only what a public key object has.
    ///
    /// # Errors
    /// The template errors of PKCS#11.
    pub fn public_only(kt: CK_KEY_TYPE, template: &[Attr]) -> Result<PairTemplate, CK_RV> {
        let mut g = Gathered::default();
        for a in template {
            g.take(For::Public, CKO_PUBLIC_KEY, Some(kt), a)?;
        }
        Ok(PairTemplate(g))
    }

    /// The key to make.
    ///
    /// # Errors
    /// As the templates of new keys.
    pub fn finish(self, spec: KeySpec) -> Result<NewKey, CK_RV> {
        self.0.finish(spec)
    }

    /// The public key to make alone: with no usage named, it verifies,
    /// and an RSA key also encrypts and wraps; it is not sensitive.
    ///
    /// # Errors
    /// As the templates of new keys.
    pub fn finish_public(self, spec: KeySpec) -> Result<NewKey, CK_RV> {
        let mut g = self.0;
        if !USAGES.iter().any(|f| g.named.contains(f)) {
            let usages: &[KeyFlag] = match spec {
                KeySpec::Rsa { .. } => &[KeyFlag::Verify, KeyFlag::Encrypt, KeyFlag::Wrap],
                KeySpec::X25519 => &[],
                _ => &[KeyFlag::Verify],
            };
            for flag in usages {
                g.set(*flag, true);
            }
            // Decided: the private halves' defaults are not a public key's.
            g.named.extend(USAGES);
        }
        g.attributes.sensitive = false;
        g.finish(spec)
    }
}

/// The key pair `C_GenerateKeyPair` asks for.
///
/// # Errors
/// `CKR_MECHANISM_INVALID` for a mechanism that makes no pair;
/// `CKR_TEMPLATE_INCOMPLETE` without a curve (EC) or a modulus size
/// (RSA); `CKR_CURVE_NOT_SUPPORTED` / `CKR_KEY_SIZE_RANGE` for one the
/// cluster lacks; the template errors of PKCS#11 otherwise.
pub fn key_pair(
    mechanism: CK_MECHANISM_TYPE,
    public: &[Attr],
    private: &[Attr],
) -> Result<NewKey, CK_RV> {
    let kt = match mechanism {
        CKM_EC_KEY_PAIR_GEN => CKK_EC,
        CKM_RSA_PKCS_KEY_PAIR_GEN => CKK_RSA,
        CKM_EC_EDWARDS_KEY_PAIR_GEN => CKK_EC_EDWARDS,
        CKM_EC_MONTGOMERY_KEY_PAIR_GEN => CKK_EC_MONTGOMERY,
        _ => return Err(CKR_MECHANISM_INVALID),
    };
    let mut g = Gathered::default();
    for a in public {
        g.take(For::Public, CKO_PUBLIC_KEY, Some(kt), a)?;
    }
    for a in private {
        g.take(For::Private, CKO_PRIVATE_KEY, Some(kt), a)?;
    }
    let curve = match &g.ec_params {
        Some(p) => Some(curve_of_params(p).ok_or(CKR_CURVE_NOT_SUPPORTED)?),
        None => None,
    };
    let spec = match mechanism {
        CKM_RSA_PKCS_KEY_PAIR_GEN => {
            let bits = g.modulus_bits.ok_or(CKR_TEMPLATE_INCOMPLETE)?;
            let spec = KeySpec::Rsa {
                bits: u16::try_from(bits).map_err(|_| CKR_KEY_SIZE_RANGE)?,
            };
            if !spec.is_valid() {
                return Err(CKR_KEY_SIZE_RANGE);
            }
            spec
        }
        CKM_EC_EDWARDS_KEY_PAIR_GEN => KeySpec::Ed25519,
        CKM_EC_MONTGOMERY_KEY_PAIR_GEN => KeySpec::X25519,
        _ => curve.ok_or(CKR_TEMPLATE_INCOMPLETE)?,
    };
    if curve.is_some_and(|c| c != spec) || key_type(spec) != kt {
        return Err(CKR_CURVE_NOT_SUPPORTED);
    }
    g.finish(spec)
}

/// The secret key `C_GenerateKey` asks for.
///
/// # Errors
/// `CKR_MECHANISM_INVALID` for a mechanism that makes no secret key;
/// `CKR_TEMPLATE_INCOMPLETE` without `CKA_VALUE_LEN`;
/// `CKR_KEY_SIZE_RANGE` for a size the cluster lacks; the template
/// errors of PKCS#11 otherwise.
pub fn secret_key(mechanism: CK_MECHANISM_TYPE, template: &[Attr]) -> Result<NewKey, CK_RV> {
    let kt = match mechanism {
        CKM_AES_KEY_GEN => CKK_AES,
        CKM_GENERIC_SECRET_KEY_GEN => CKK_GENERIC_SECRET,
        _ => return Err(CKR_MECHANISM_INVALID),
    };
    let mut g = Gathered::default();
    for a in template {
        g.take(For::Secret, CKO_SECRET_KEY, Some(kt), a)?;
    }
    let len = g.value_len.ok_or(CKR_TEMPLATE_INCOMPLETE)?;
    let len = u16::try_from(len).map_err(|_| CKR_KEY_SIZE_RANGE)?;
    let spec = if kt == CKK_AES {
        KeySpec::Aes {
            bits: len.checked_mul(8).ok_or(CKR_KEY_SIZE_RANGE)?,
        }
    } else {
        KeySpec::GenericSecret { bytes: len }
    };
    if !spec.is_valid() {
        return Err(CKR_KEY_SIZE_RANGE);
    }
    g.finish(spec)
}

/// The secret key `C_DeriveKey` makes: class, key type and
/// `CKA_VALUE_LEN` named, usages as for a new key.
///
/// # Errors
/// `CKR_TEMPLATE_INCOMPLETE` without key type or length;
/// `CKR_ATTRIBUTE_VALUE_INVALID` for a class or type other than a secret
/// key's; `CKR_KEY_SIZE_RANGE` for a size the cluster lacks.
pub fn derived_key(template: &[Attr]) -> Result<NewKey, CK_RV> {
    if class_of(template).is_some_and(|c| c != CKO_SECRET_KEY) {
        return Err(CKR_ATTRIBUTE_VALUE_INVALID);
    }
    let (_, kt) = template
        .iter()
        .find(|(t, _)| *t == CKA_KEY_TYPE)
        .ok_or(CKR_TEMPLATE_INCOMPLETE)?;
    let mechanism = match ulong(kt)? {
        CKK_AES => CKM_AES_KEY_GEN,
        CKK_GENERIC_SECRET => CKM_GENERIC_SECRET_KEY_GEN,
        _ => return Err(CKR_ATTRIBUTE_VALUE_INVALID),
    };
    secret_key(mechanism, template)
}

/// The secret key `C_CreateObject` imports, and its material.
///
/// # Errors
/// `CKR_TEMPLATE_INCOMPLETE` without `CKA_CLASS`, `CKA_KEY_TYPE` or
/// `CKA_VALUE`; `CKR_ATTRIBUTE_VALUE_INVALID` for another class than a
/// secret key or a key type the cluster lacks; `CKR_KEY_SIZE_RANGE` /
/// `CKR_TEMPLATE_INCONSISTENT` for a value of a size the cluster lacks or
/// another than `CKA_VALUE_LEN`; the template errors otherwise.
pub fn secret_import(template: &[Attr]) -> Result<(NewKey, Secret), CK_RV> {
    let find = |t| template.iter().find(|(at, _)| *at == t).map(|(_, v)| v);
    let class = ulong(find(CKA_CLASS).ok_or(CKR_TEMPLATE_INCOMPLETE)?)?;
    if class != CKO_SECRET_KEY {
        return Err(CKR_ATTRIBUTE_VALUE_INVALID);
    }
    let kt = ulong(find(CKA_KEY_TYPE).ok_or(CKR_TEMPLATE_INCOMPLETE)?)?;
    let value = find(CKA_VALUE).ok_or(CKR_TEMPLATE_INCOMPLETE)?;
    let len = u16::try_from(value.len()).map_err(|_| CKR_KEY_SIZE_RANGE)?;
    let spec = match kt {
        CKK_AES => KeySpec::Aes {
            bits: len.checked_mul(8).ok_or(CKR_KEY_SIZE_RANGE)?,
        },
        CKK_GENERIC_SECRET => KeySpec::GenericSecret { bytes: len },
        _ => return Err(CKR_ATTRIBUTE_VALUE_INVALID),
    };
    if !spec.is_valid() {
        return Err(CKR_KEY_SIZE_RANGE);
    }
    let mut g = Gathered::default();
    for a in template.iter().filter(|(t, _)| *t != CKA_VALUE) {
        g.take(For::Secret, CKO_SECRET_KEY, Some(kt), a)?;
    }
    if g.value_len.is_some_and(|l| l != CK_ULONG::from(len)) {
        return Err(CKR_TEMPLATE_INCONSISTENT);
    }
    Ok((g.finish(spec)?, Secret::new(value.clone())))
}

/// The `CKA_CLASS` a template names, if any.
pub fn class_of(template: &[Attr]) -> Option<CK_OBJECT_CLASS> {
    let (_, v) = template.iter().find(|(t, _)| *t == CKA_CLASS)?;
    ulong(v).ok()
}

/// The DER certificate a `CKO_CERTIFICATE` template stores. The names
/// (`CKA_SUBJECT`, `CKA_ISSUER`, `CKA_SERIAL_NUMBER`) are read from the
/// certificate itself, and label and id are its key's, so what the
/// template says of them is not kept.
///
/// # Errors
/// `CKR_TEMPLATE_INCOMPLETE` without `CKA_VALUE`;
/// `CKR_ATTRIBUTE_VALUE_INVALID` for a certificate type other than X.509;
/// `CKR_ATTRIBUTE_TYPE_INVALID` for an attribute certificates lack.
pub fn certificate(template: &[Attr]) -> Result<Vec<u8>, CK_RV> {
    let mut value = None;
    for (t, v) in template {
        match *t {
            CKA_VALUE => value = Some(v.clone()),
            CKA_CERTIFICATE_TYPE if ulong(v)? != CKC_X_509 => {
                return Err(CKR_ATTRIBUTE_VALUE_INVALID)
            }
            CKA_CLASS
            | CKA_CERTIFICATE_TYPE
            | CKA_TOKEN
            | CKA_PRIVATE
            | CKA_MODIFIABLE
            | CKA_DESTROYABLE
            | CKA_COPYABLE
            | CKA_LABEL
            | CKA_ID
            | CKA_SUBJECT
            | CKA_ISSUER
            | CKA_SERIAL_NUMBER
            | CKA_TRUSTED
            | CKA_CERTIFICATE_CATEGORY
            | CKA_START_DATE
            | CKA_END_DATE
            | CKA_JAVA_MIDP_SECURITY_DOMAIN
            | CKA_URL => {}
            _ => return Err(CKR_ATTRIBUTE_TYPE_INVALID),
        }
    }
    value.ok_or(CKR_TEMPLATE_INCOMPLETE)
}

/// What a `C_UnwrapKey` template asks of the new key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnwrapTemplate {
    /// `CKA_CLASS`: a secret or a private key.
    pub class: CK_OBJECT_CLASS,
    /// `CKA_KEY_TYPE`.
    pub key_type: CK_KEY_TYPE,
    /// The spec, when the template gives the size too; `None` takes what
    /// the wrapped key carries (its type is checked against `key_type`).
    pub spec: Option<KeySpec>,
    /// Label, id, and usages that narrow the carried ones (none named: the
    /// carried ones).
    pub attributes: KeyAttributes,
    /// `CKA_TOKEN`.
    pub token: bool,
}

/// Reads a `C_UnwrapKey` template.
///
/// # Errors
/// `CKR_TEMPLATE_INCOMPLETE` without class or key type;
/// `CKR_ATTRIBUTE_VALUE_INVALID` for a class that is not a key; the
/// template errors otherwise.
pub fn unwrap_template(template: &[Attr]) -> Result<UnwrapTemplate, CK_RV> {
    let class = class_of(template).ok_or(CKR_TEMPLATE_INCOMPLETE)?;
    let part = match class {
        CKO_SECRET_KEY => For::Secret,
        CKO_PRIVATE_KEY => For::Private,
        _ => return Err(CKR_ATTRIBUTE_VALUE_INVALID),
    };
    let (_, kt) = template
        .iter()
        .find(|(t, _)| *t == CKA_KEY_TYPE)
        .ok_or(CKR_TEMPLATE_INCOMPLETE)?;
    let kt = ulong(kt)?;
    let mut g = Gathered::default();
    for a in template {
        g.take(part, class, Some(kt), a)?;
    }
    let spec = match kt {
        CKK_AES => g.value_len.map(|l| KeySpec::Aes {
            bits: l
                .checked_mul(8)
                .and_then(|b| u16::try_from(b).ok())
                .unwrap_or(0),
        }),
        CKK_GENERIC_SECRET => g.value_len.map(|l| KeySpec::GenericSecret {
            bytes: u16::try_from(l).unwrap_or(0),
        }),
        CKK_EC | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY => match &g.ec_params {
            Some(p) => Some(curve_of_params(p).ok_or(CKR_CURVE_NOT_SUPPORTED)?),
            None => None,
        },
        CKK_RSA => None,
        _ => return Err(CKR_ATTRIBUTE_VALUE_INVALID),
    };
    if spec.is_some_and(|s| key_type(s) != kt) {
        return Err(CKR_TEMPLATE_INCONSISTENT);
    }
    let mut attributes = g.attributes;
    attributes.label = match g.label {
        Some(l) => String::from_utf8(l).map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?,
        None => String::new(),
    };
    attributes.id = g.id.unwrap_or_default();
    if !attributes.is_within_limits() {
        return Err(CKR_ATTRIBUTE_VALUE_INVALID);
    }
    Ok(UnwrapTemplate {
        class,
        key_type: kt,
        spec,
        attributes,
        token: g.token.unwrap_or(false),
    })
}

/// The cluster's change for one attribute of `C_SetAttributeValue`.
///
/// # Errors
/// `CKR_ATTRIBUTE_READ_ONLY` for an attribute no one may change (class,
/// type, provenance, public parts); `CKR_ATTRIBUTE_TYPE_INVALID` for one
/// the token does not have; `CKR_ATTRIBUTE_VALUE_INVALID` for a malformed
/// value.
pub fn change((t, v): &Attr) -> Result<KeyAttribute, CK_RV> {
    let flag = |f| Ok(KeyAttribute::Flag(f, boolean(v)?));
    match *t {
        CKA_LABEL => Ok(KeyAttribute::Label(
            String::from_utf8(v.clone()).map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?,
        )),
        CKA_ID => Ok(KeyAttribute::Id(v.clone())),
        CKA_ENCRYPT => flag(KeyFlag::Encrypt),
        CKA_DECRYPT => flag(KeyFlag::Decrypt),
        CKA_SIGN => flag(KeyFlag::Sign),
        CKA_VERIFY => flag(KeyFlag::Verify),
        CKA_WRAP => flag(KeyFlag::Wrap),
        CKA_UNWRAP => flag(KeyFlag::Unwrap),
        CKA_DERIVE => flag(KeyFlag::Derive),
        CKA_EXTRACTABLE => flag(KeyFlag::Extractable),
        CKA_SENSITIVE => flag(KeyFlag::Sensitive),
        CKA_TRUSTED => flag(KeyFlag::Trusted),
        CKA_WRAP_WITH_TRUSTED => flag(KeyFlag::WrapWithTrusted),
        CKA_CLASS
        | CKA_KEY_TYPE
        | CKA_TOKEN
        | CKA_PRIVATE
        | CKA_MODIFIABLE
        | CKA_COPYABLE
        | CKA_DESTROYABLE
        | CKA_LOCAL
        | CKA_ALWAYS_SENSITIVE
        | CKA_NEVER_EXTRACTABLE
        | CKA_KEY_GEN_MECHANISM
        | CKA_MODULUS
        | CKA_MODULUS_BITS
        | CKA_PUBLIC_EXPONENT
        | CKA_EC_PARAMS
        | CKA_EC_POINT
        | CKA_VALUE
        | CKA_VALUE_LEN
        | CKA_PUBLIC_KEY_INFO
        | CKA_ALWAYS_AUTHENTICATE
        | CKA_SIGN_RECOVER
        | CKA_VERIFY_RECOVER
        | CKA_SUBJECT
        | CKA_START_DATE
        | CKA_END_DATE => Err(CKR_ATTRIBUTE_READ_ONLY),
        _ => Err(CKR_ATTRIBUTE_TYPE_INVALID),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(b: bool) -> Vec<u8> {
        vec![if b { CK_TRUE } else { CK_FALSE }]
    }

    fn ul(v: CK_ULONG) -> Vec<u8> {
        v.to_ne_bytes().to_vec()
    }

    const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

    #[test]
    fn an_ec_pair_takes_its_curve_label_id_and_usages_from_both_templates() {
        let key = key_pair(
            CKM_EC_KEY_PAIR_GEN,
            &[
                (CKA_EC_PARAMS, P256_OID.to_vec()),
                (CKA_VERIFY, t(true)),
                (CKA_LABEL, b"web".to_vec()),
                (CKA_TOKEN, t(true)),
            ],
            &[
                (CKA_SIGN, t(true)),
                (CKA_SENSITIVE, t(true)),
                (CKA_EXTRACTABLE, t(false)),
                (CKA_ID, vec![0x42]),
                (CKA_LABEL, b"web".to_vec()),
                (CKA_PRIVATE, t(true)),
            ],
        )
        .expect("template");
        assert_eq!(key.spec, KeySpec::EcP256);
        assert!(key.token);
        assert_eq!(key.attributes.label, "web");
        assert_eq!(key.attributes.id, vec![0x42]);
        assert!(key.attributes.sign && key.attributes.verify);
        assert!(!key.attributes.decrypt && !key.attributes.derive);
        assert!(!key.attributes.extractable && key.attributes.sensitive);
    }

    #[test]
    fn pair_templates_are_refused_as_pkcs11_says() {
        let ec = |public: &[Attr], private: &[Attr]| key_pair(CKM_EC_KEY_PAIR_GEN, public, private);
        assert_eq!(ec(&[], &[]), Err(CKR_TEMPLATE_INCOMPLETE));
        let p521 = vec![0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
        assert_eq!(
            ec(&[(CKA_EC_PARAMS, p521)], &[]),
            Err(CKR_CURVE_NOT_SUPPORTED)
        );
        let ed = vec![0x06, 0x03, 0x2b, 0x65, 0x70];
        assert_eq!(
            ec(&[(CKA_EC_PARAMS, ed)], &[]),
            Err(CKR_CURVE_NOT_SUPPORTED)
        );
        let curve = (CKA_EC_PARAMS, P256_OID.to_vec());
        assert_eq!(
            ec(
                &[curve.clone(), (CKA_LABEL, b"a".to_vec())],
                &[(CKA_LABEL, b"b".to_vec())]
            ),
            Err(CKR_TEMPLATE_INCONSISTENT)
        );
        assert_eq!(
            ec(&[curve.clone(), (CKA_SIGN, t(true))], &[]),
            Err(CKR_ATTRIBUTE_TYPE_INVALID)
        );
        assert_eq!(
            ec(std::slice::from_ref(&curve), &[(CKA_SIGN, vec![1, 0])]),
            Err(CKR_ATTRIBUTE_VALUE_INVALID)
        );
        assert_eq!(
            ec(&[curve.clone(), (CKA_KEY_TYPE, ul(CKK_RSA))], &[]),
            Err(CKR_TEMPLATE_INCONSISTENT)
        );
        assert_eq!(
            ec(std::slice::from_ref(&curve), &[(CKA_SIGN_RECOVER, t(true))]),
            Err(CKR_ATTRIBUTE_VALUE_INVALID)
        );
        assert_eq!(
            ec(&[curve], &[(CKA_LOCAL, t(true))]),
            Err(CKR_ATTRIBUTE_READ_ONLY)
        );
        let rsa = |public: &[Attr]| key_pair(CKM_RSA_PKCS_KEY_PAIR_GEN, public, &[]);
        assert_eq!(rsa(&[]), Err(CKR_TEMPLATE_INCOMPLETE));
        assert_eq!(
            rsa(&[(CKA_MODULUS_BITS, ul(1024))]),
            Err(CKR_KEY_SIZE_RANGE)
        );
        assert_eq!(
            rsa(&[(CKA_MODULUS_BITS, ul(2048)), (CKA_PUBLIC_EXPONENT, vec![3])]),
            Err(CKR_ATTRIBUTE_VALUE_INVALID)
        );
        let ok = rsa(&[
            (CKA_MODULUS_BITS, ul(3072)),
            (CKA_PUBLIC_EXPONENT, vec![0, 1, 0, 1]),
        ])
        .expect("rsa");
        assert_eq!(ok.spec, KeySpec::Rsa { bits: 3072 });
        // No usage named: a signing pair signs and verifies; not a token
        // object unless asked.
        assert!(ok.attributes.sign && ok.attributes.verify && !ok.attributes.decrypt);
        assert!(!ok.token);
        let ed = key_pair(CKM_EC_EDWARDS_KEY_PAIR_GEN, &[], &[]).expect("ed25519");
        assert_eq!(ed.spec, KeySpec::Ed25519);
    }

    #[test]
    fn secret_keys_need_a_length_the_cluster_has() {
        let aes = |len| secret_key(CKM_AES_KEY_GEN, &[(CKA_VALUE_LEN, ul(len))]);
        assert_eq!(aes(32).expect("aes").spec, KeySpec::Aes { bits: 256 });
        let k = aes(16).expect("aes");
        assert!(k.attributes.encrypt && k.attributes.decrypt && !k.attributes.sign);
        assert_eq!(aes(20), Err(CKR_KEY_SIZE_RANGE));
        assert_eq!(
            secret_key(CKM_AES_KEY_GEN, &[]),
            Err(CKR_TEMPLATE_INCOMPLETE)
        );
        let hmac = secret_key(
            CKM_GENERIC_SECRET_KEY_GEN,
            &[(CKA_VALUE_LEN, ul(64)), (CKA_SIGN, t(true))],
        )
        .expect("generic");
        assert_eq!(hmac.spec, KeySpec::GenericSecret { bytes: 64 });
        assert!(hmac.attributes.sign && !hmac.attributes.verify);
        assert_eq!(
            secret_key(CKM_GENERIC_SECRET_KEY_GEN, &[(CKA_VALUE_LEN, ul(801))]),
            Err(CKR_KEY_SIZE_RANGE)
        );
        assert_eq!(
            secret_key(
                CKM_AES_KEY_GEN,
                &[(CKA_VALUE_LEN, ul(16)), (CKA_EC_PARAMS, vec![])]
            ),
            Err(CKR_ATTRIBUTE_TYPE_INVALID)
        );
    }

    #[test]
    fn a_secret_import_needs_class_type_and_a_value_of_a_cluster_size() {
        let aes = [
            (CKA_CLASS, ul(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, ul(CKK_AES)),
            (CKA_VALUE, vec![7; 24]),
            (CKA_TOKEN, t(true)),
        ];
        let (key, material) = secret_import(&aes).expect("aes");
        assert_eq!(key.spec, KeySpec::Aes { bits: 192 });
        assert_eq!(material.expose(), &[7; 24]);
        assert!(key.token && key.attributes.encrypt);
        assert_eq!(secret_import(&aes[1..]), Err(CKR_TEMPLATE_INCOMPLETE));
        let mut short = aes.clone();
        short[2].1 = vec![7; 20];
        assert_eq!(secret_import(&short), Err(CKR_KEY_SIZE_RANGE));
        let mut private = aes.clone();
        private[0].1 = ul(CKO_PRIVATE_KEY);
        assert_eq!(secret_import(&private), Err(CKR_ATTRIBUTE_VALUE_INVALID));
        let mut wrong_len = aes.to_vec();
        wrong_len.push((CKA_VALUE_LEN, ul(16)));
        assert_eq!(secret_import(&wrong_len), Err(CKR_TEMPLATE_INCONSISTENT));
    }

    #[test]
    fn an_unwrap_template_names_type_and_maybe_size() {
        let asked = unwrap_template(&[
            (CKA_CLASS, ul(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, ul(CKK_AES)),
            (CKA_LABEL, b"back".to_vec()),
            (CKA_TOKEN, t(true)),
        ])
        .expect("template");
        assert_eq!(asked.spec, None);
        assert_eq!(asked.key_type, CKK_AES);
        assert!(asked.token);
        // No usage named: none set, so the carried ones apply.
        assert!(!asked.attributes.encrypt && !asked.attributes.sign);
        let sized = unwrap_template(&[
            (CKA_CLASS, ul(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, ul(CKK_AES)),
            (CKA_VALUE_LEN, ul(16)),
            (CKA_DECRYPT, t(true)),
        ])
        .expect("template");
        assert_eq!(sized.spec, Some(KeySpec::Aes { bits: 128 }));
        assert!(sized.attributes.decrypt);
        assert_eq!(
            unwrap_template(&[(CKA_CLASS, ul(CKO_SECRET_KEY))]),
            Err(CKR_TEMPLATE_INCOMPLETE)
        );
        assert_eq!(
            unwrap_template(&[(CKA_CLASS, ul(CKO_PUBLIC_KEY)), (CKA_KEY_TYPE, ul(CKK_RSA))]),
            Err(CKR_ATTRIBUTE_VALUE_INVALID)
        );
    }

    #[test]
    fn changes_are_the_cluster_attributes_and_the_rest_is_read_only() {
        assert_eq!(
            change(&(CKA_LABEL, b"x".to_vec())),
            Ok(KeyAttribute::Label("x".into()))
        );
        assert_eq!(
            change(&(CKA_SENSITIVE, t(true))),
            Ok(KeyAttribute::Flag(KeyFlag::Sensitive, true))
        );
        for read_only in [
            CKA_CLASS,
            CKA_KEY_TYPE,
            CKA_LOCAL,
            CKA_MODULUS,
            CKA_VALUE,
            CKA_EC_POINT,
        ] {
            assert_eq!(change(&(read_only, vec![0])), Err(CKR_ATTRIBUTE_READ_ONLY));
        }
        assert_eq!(
            change(&(0x8000_0001, vec![])),
            Err(CKR_ATTRIBUTE_TYPE_INVALID)
        );
        assert_eq!(
            change(&(CKA_SIGN, vec![])),
            Err(CKR_ATTRIBUTE_VALUE_INVALID)
        );
    }
}
