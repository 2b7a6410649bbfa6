//! The token's objects: each cluster key seen as PKCS#11 objects, and
//! their attributes.
//!
//! A key pair is two objects with the same `CKA_ID` and label: a private
//! key and a public key; an AES key or generic secret is one secret key
//! object. Attribute values come from the key's record ([`KeyInfo`]): its
//! attributes, provenance and public key. Secret values (`CKA_VALUE` of a
//! secret or private key, RSA private components) are never readable:
//! the cluster has no operation that returns key material in plaintext.
//!
//! Pure: no IO, no FFI. The encoding is the C one of this platform
//! (`CK_ULONG` native-endian, `CK_BBOOL` one byte).

use cryptoki_sys::*;
use hsm_proto::client::KeyInfo;
use hsm_proto::{KeyFlag, KeyOrigin, KeySpec};

use crate::public::{CertificateParts, PublicParts};

/// Which PKCS#11 object of a cluster key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// The private half of a pair.
    Private,
    /// The public half of a pair.
    Public,
    /// An AES key or generic secret.
    Secret,
    /// The X.509 certificate of a pair's public key, when it has one.
    Certificate,
}

impl Part {
    /// The objects `key` appears as.
    pub fn of(key: &KeyInfo) -> &'static [Part] {
        if key.provenance.public_only() {
            // A public key imported alone: no private half to show.
            return &[Part::Public];
        }
        match (key.spec.is_asymmetric(), key.certificate.is_empty()) {
            (true, true) => &[Part::Private, Part::Public],
            (true, false) => &[Part::Private, Part::Public, Part::Certificate],
            (false, _) => &[Part::Secret],
        }
    }

    /// The object's `CKA_CLASS`.
    pub fn class(self) -> CK_OBJECT_CLASS {
        match self {
            Part::Private => CKO_PRIVATE_KEY,
            Part::Public => CKO_PUBLIC_KEY,
            Part::Secret => CKO_SECRET_KEY,
            Part::Certificate => CKO_CERTIFICATE,
        }
    }
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A `CK_BBOOL`.
    Bool(bool),
    /// A `CK_ULONG` (and the types defined as one).
    Ulong(CK_ULONG),
    /// A byte array or string.
    Bytes(Vec<u8>),
}

impl Value {
    /// The value as the C API carries it.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Value::Bool(b) => vec![if *b { CK_TRUE } else { CK_FALSE }],
            Value::Ulong(v) => v.to_ne_bytes().to_vec(),
            Value::Bytes(b) => b.clone(),
        }
    }
}

/// Why an attribute has no value to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// The object has no such attribute (`CKR_ATTRIBUTE_TYPE_INVALID`).
    Invalid,
    /// The value is secret (`CKR_ATTRIBUTE_SENSITIVE`).
    Sensitive,
}

/// The `CK_KEY_TYPE` of a key spec.
pub fn key_type(spec: KeySpec) -> CK_KEY_TYPE {
    match spec {
        KeySpec::Aes { .. } => CKK_AES,
        KeySpec::GenericSecret { .. } => CKK_GENERIC_SECRET,
        KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::EcSecp256k1 => CKK_EC,
        KeySpec::Ed25519 => CKK_EC_EDWARDS,
        KeySpec::X25519 => CKK_EC_MONTGOMERY,
        KeySpec::Rsa { .. } => CKK_RSA,
    }
}

/// The mechanism that generates keys of `spec`.
pub fn generation_mechanism(spec: KeySpec) -> CK_MECHANISM_TYPE {
    match spec {
        KeySpec::Aes { .. } => CKM_AES_KEY_GEN,
        KeySpec::GenericSecret { .. } => CKM_GENERIC_SECRET_KEY_GEN,
        KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::EcSecp256k1 => CKM_EC_KEY_PAIR_GEN,
        KeySpec::Ed25519 => CKM_EC_EDWARDS_KEY_PAIR_GEN,
        KeySpec::X25519 => CKM_EC_MONTGOMERY_KEY_PAIR_GEN,
        KeySpec::Rsa { .. } => CKM_RSA_PKCS_KEY_PAIR_GEN,
    }
}

/// One object of a cluster key, as the module sees it.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    /// The key's record.
    pub key: &'a KeyInfo,
    /// Which object of it.
    pub part: Part,
    /// Whether the logged-in user owns the key (may change or destroy it).
    pub owned: bool,
    /// Whether it is a session object (`CKA_TOKEN` false): made with
    /// `CKA_TOKEN` false in this process, destroyed with its session.
    pub session: bool,
}

impl Object<'_> {
    /// The value of attribute `t`.
    ///
    /// # Errors
    /// [`Unreadable`] when the object has no such attribute or its value
    /// is secret.
    pub fn attribute(&self, t: CK_ATTRIBUTE_TYPE) -> Result<Value, Unreadable> {
        if self.part == Part::Certificate {
            return self.certificate_attribute(t);
        }
        let key = self.key;
        let a = &key.attributes;
        let flag = |f: KeyFlag| Ok(Value::Bool(a.flag(f)));
        let secret_part = self.part != Part::Public;
        let public = || PublicParts::parse(key.spec, &key.public_key).ok_or(Unreadable::Invalid);
        match t {
            CKA_CLASS => Ok(Value::Ulong(self.part.class())),
            CKA_TOKEN => Ok(Value::Bool(!self.session)),
            CKA_PRIVATE => Ok(Value::Bool(secret_part)),
            CKA_MODIFIABLE => Ok(Value::Bool(self.owned)),
            CKA_COPYABLE => Ok(Value::Bool(false)),
            // The public half goes with its pair (destroy the private one);
            // a public key imported alone is the whole key.
            CKA_DESTROYABLE => Ok(Value::Bool(
                self.owned && (self.part != Part::Public || key.provenance.public_only()),
            )),
            CKA_LABEL => Ok(Value::Bytes(a.label.as_bytes().to_vec())),
            CKA_ID => Ok(Value::Bytes(a.id.clone())),
            CKA_KEY_TYPE => Ok(Value::Ulong(key_type(key.spec))),
            CKA_START_DATE | CKA_END_DATE => Ok(Value::Bytes(Vec::new())),
            CKA_DERIVE => flag(KeyFlag::Derive),
            CKA_LOCAL => Ok(Value::Bool(key.provenance.local)),
            CKA_KEY_GEN_MECHANISM => Ok(Value::Ulong(
                if key.provenance.origin == KeyOrigin::Generated {
                    generation_mechanism(key.spec)
                } else {
                    CK_UNAVAILABLE_INFORMATION
                },
            )),
            // Private and secret keys.
            CKA_SENSITIVE if secret_part => flag(KeyFlag::Sensitive),
            CKA_EXTRACTABLE if secret_part => flag(KeyFlag::Extractable),
            CKA_ALWAYS_SENSITIVE if secret_part => Ok(Value::Bool(key.provenance.always_sensitive)),
            CKA_NEVER_EXTRACTABLE if secret_part => {
                Ok(Value::Bool(key.provenance.never_extractable))
            }
            CKA_WRAP_WITH_TRUSTED if secret_part => flag(KeyFlag::WrapWithTrusted),
            CKA_ALWAYS_AUTHENTICATE if secret_part => Ok(Value::Bool(false)),
            CKA_SIGN if secret_part => flag(KeyFlag::Sign),
            CKA_DECRYPT if secret_part => flag(KeyFlag::Decrypt),
            CKA_UNWRAP if secret_part => flag(KeyFlag::Unwrap),
            CKA_SIGN_RECOVER if secret_part => Ok(Value::Bool(false)),
            // Public and secret keys.
            CKA_ENCRYPT if self.part != Part::Private => flag(KeyFlag::Encrypt),
            CKA_VERIFY if self.part != Part::Private => flag(KeyFlag::Verify),
            CKA_WRAP if self.part != Part::Private => flag(KeyFlag::Wrap),
            CKA_TRUSTED if self.part != Part::Private => flag(KeyFlag::Trusted),
            CKA_VERIFY_RECOVER if self.part == Part::Public => Ok(Value::Bool(false)),
            // Secret keys.
            CKA_VALUE_LEN if self.part == Part::Secret => Ok(Value::Ulong(match key.spec {
                KeySpec::Aes { bits } => CK_ULONG::from(bits / 8),
                KeySpec::GenericSecret { bytes } => CK_ULONG::from(bytes),
                _ => return Err(Unreadable::Invalid),
            })),
            CKA_VALUE if self.part == Part::Secret => Err(Unreadable::Sensitive),
            // Pairs: the public parts on both objects (applications look
            // for them on either), the private ones never.
            CKA_SUBJECT if self.part != Part::Secret => Ok(Value::Bytes(Vec::new())),
            CKA_PUBLIC_KEY_INFO if self.part != Part::Secret => {
                Ok(Value::Bytes(key.public_key.clone()))
            }
            CKA_MODULUS | CKA_PUBLIC_EXPONENT | CKA_MODULUS_BITS if self.part != Part::Secret => {
                match public()? {
                    PublicParts::Rsa { modulus, exponent } => Ok(match t {
                        CKA_MODULUS => Value::Bytes(modulus),
                        CKA_PUBLIC_EXPONENT => Value::Bytes(exponent),
                        _ => Value::Ulong(match key.spec {
                            KeySpec::Rsa { bits } => CK_ULONG::from(bits),
                            _ => return Err(Unreadable::Invalid),
                        }),
                    }),
                    PublicParts::Curve { .. } => Err(Unreadable::Invalid),
                }
            }
            CKA_EC_PARAMS | CKA_EC_POINT if self.part != Part::Secret => match public()? {
                PublicParts::Curve { params, point } => Ok(Value::Bytes(if t == CKA_EC_PARAMS {
                    params
                } else {
                    point
                })),
                PublicParts::Rsa { .. } => Err(Unreadable::Invalid),
            },
            CKA_VALUE | CKA_PRIVATE_EXPONENT | CKA_PRIME_1 | CKA_PRIME_2 | CKA_EXPONENT_1
            | CKA_EXPONENT_2 | CKA_COEFFICIENT
                if self.part == Part::Private =>
            {
                if matches!(t, CKA_VALUE) == matches!(key.spec, KeySpec::Rsa { .. }) {
                    Err(Unreadable::Invalid)
                } else {
                    Err(Unreadable::Sensitive)
                }
            }
            _ => Err(Unreadable::Invalid),
        }
    }

    /// The attributes of the certificate object.
    fn certificate_attribute(&self, t: CK_ATTRIBUTE_TYPE) -> Result<Value, Unreadable> {
        let key = self.key;
        let parts = || CertificateParts::parse(&key.certificate).ok_or(Unreadable::Invalid);
        match t {
            CKA_CLASS => Ok(Value::Ulong(CKO_CERTIFICATE)),
            CKA_TOKEN => Ok(Value::Bool(!self.session)),
            CKA_PRIVATE | CKA_COPYABLE | CKA_TRUSTED => Ok(Value::Bool(false)),
            CKA_MODIFIABLE | CKA_DESTROYABLE => Ok(Value::Bool(self.owned)),
            CKA_LABEL => Ok(Value::Bytes(key.attributes.label.as_bytes().to_vec())),
            CKA_ID => Ok(Value::Bytes(key.attributes.id.clone())),
            CKA_CERTIFICATE_TYPE => Ok(Value::Ulong(CKC_X_509)),
            CKA_CERTIFICATE_CATEGORY => Ok(Value::Ulong(CK_CERTIFICATE_CATEGORY_UNSPECIFIED)),
            CKA_JAVA_MIDP_SECURITY_DOMAIN => Ok(Value::Ulong(0)),
            CKA_START_DATE | CKA_END_DATE | CKA_URL => Ok(Value::Bytes(Vec::new())),
            CKA_VALUE => Ok(Value::Bytes(key.certificate.clone())),
            CKA_PUBLIC_KEY_INFO => Ok(Value::Bytes(key.public_key.clone())),
            CKA_SUBJECT => Ok(Value::Bytes(parts()?.subject)),
            CKA_ISSUER => Ok(Value::Bytes(parts()?.issuer)),
            CKA_SERIAL_NUMBER => Ok(Value::Bytes(parts()?.serial)),
            _ => Err(Unreadable::Invalid),
        }
    }

    /// Whether every attribute of `template` has exactly the given value
    /// (an attribute the object lacks, or a secret one, never matches).
    pub fn matches(&self, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> bool {
        template
            .iter()
            .all(|(t, wanted)| self.attribute(*t).is_ok_and(|v| v.encode() == *wanted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_proto::{KeyAttributes, KeyProvenance, Username};

    fn info(spec: KeySpec, public_key: Vec<u8>) -> KeyInfo {
        let attributes = KeyAttributes {
            label: "tls".into(),
            id: vec![1, 2],
            sign: true,
            ..KeyAttributes::default()
        };
        KeyInfo {
            id: hsm_proto::KeyId(7),
            spec,
            owner: Username::new("alice").expect("name"),
            shared_with: Vec::new(),
            provenance: KeyProvenance::generated(&attributes),
            attributes,
            public_key,
            created_ms: 0,
            certificate: Vec::new(),
        }
    }

    fn object(key: &KeyInfo, part: Part) -> Object<'_> {
        Object {
            key,
            part,
            owned: true,
            session: false,
        }
    }

    #[test]
    fn a_secret_key_tells_its_attributes_and_never_its_value() {
        let key = info(KeySpec::Aes { bits: 256 }, Vec::new());
        let o = object(&key, Part::Secret);
        assert_eq!(o.attribute(CKA_CLASS), Ok(Value::Ulong(CKO_SECRET_KEY)));
        assert_eq!(o.attribute(CKA_KEY_TYPE), Ok(Value::Ulong(CKK_AES)));
        assert_eq!(o.attribute(CKA_VALUE_LEN), Ok(Value::Ulong(32)));
        assert_eq!(o.attribute(CKA_VALUE), Err(Unreadable::Sensitive));
        assert_eq!(o.attribute(CKA_LABEL), Ok(Value::Bytes(b"tls".to_vec())));
        assert_eq!(o.attribute(CKA_SIGN), Ok(Value::Bool(true)));
        assert_eq!(o.attribute(CKA_SENSITIVE), Ok(Value::Bool(true)));
        assert_eq!(o.attribute(CKA_LOCAL), Ok(Value::Bool(true)));
        assert_eq!(
            o.attribute(CKA_KEY_GEN_MECHANISM),
            Ok(Value::Ulong(CKM_AES_KEY_GEN))
        );
        assert_eq!(o.attribute(CKA_MODULUS), Err(Unreadable::Invalid));
        assert_eq!(o.attribute(CKA_EC_POINT), Err(Unreadable::Invalid));
        assert_eq!(o.attribute(0x8000_1234), Err(Unreadable::Invalid));
    }

    #[test]
    fn a_pair_is_two_objects_with_one_id_and_no_readable_secret() {
        let key = info(KeySpec::Rsa { bits: 2048 }, Vec::new());
        let private = object(&key, Part::Private);
        let public = object(&key, Part::Public);
        assert_eq!(private.attribute(CKA_ID), public.attribute(CKA_ID));
        assert_eq!(private.attribute(CKA_PRIVATE), Ok(Value::Bool(true)));
        assert_eq!(public.attribute(CKA_PRIVATE), Ok(Value::Bool(false)));
        assert_eq!(
            private.attribute(CKA_PRIVATE_EXPONENT),
            Err(Unreadable::Sensitive)
        );
        assert_eq!(private.attribute(CKA_VALUE), Err(Unreadable::Invalid));
        assert_eq!(
            public.attribute(CKA_PRIVATE_EXPONENT),
            Err(Unreadable::Invalid)
        );
        assert_eq!(public.attribute(CKA_SIGN), Err(Unreadable::Invalid));
        assert_eq!(private.attribute(CKA_VERIFY), Err(Unreadable::Invalid));
        assert_eq!(public.attribute(CKA_DESTROYABLE), Ok(Value::Bool(false)));
        assert_eq!(private.attribute(CKA_DESTROYABLE), Ok(Value::Bool(true)));
        let ec = info(KeySpec::EcP256, Vec::new());
        assert_eq!(
            object(&ec, Part::Private).attribute(CKA_VALUE),
            Err(Unreadable::Sensitive)
        );
    }

    #[test]
    fn a_pair_with_a_certificate_is_three_objects_and_the_certificate_tells_its_names() {
        let mut key = info(KeySpec::EcP256, Vec::new());
        assert_eq!(Part::of(&key), &[Part::Private, Part::Public]);
        key.certificate = crate::public::tests::CERTIFICATE.to_vec();
        assert_eq!(
            Part::of(&key),
            &[Part::Private, Part::Public, Part::Certificate]
        );
        let o = object(&key, Part::Certificate);
        assert_eq!(o.attribute(CKA_CLASS), Ok(Value::Ulong(CKO_CERTIFICATE)));
        assert_eq!(
            o.attribute(CKA_CERTIFICATE_TYPE),
            Ok(Value::Ulong(CKC_X_509))
        );
        assert_eq!(o.attribute(CKA_ID), Ok(Value::Bytes(vec![1, 2])));
        assert_eq!(
            o.attribute(CKA_VALUE),
            Ok(Value::Bytes(key.certificate.clone()))
        );
        assert_eq!(o.attribute(CKA_KEY_TYPE), Err(Unreadable::Invalid));
        assert_eq!(o.attribute(CKA_SIGN), Err(Unreadable::Invalid));
        let Ok(Value::Bytes(subject)) = o.attribute(CKA_SUBJECT) else {
            panic!("subject");
        };
        assert_eq!(subject[0], 0x30);
        assert!(subject.windows(4).any(|w| w == b"test"), "{subject:?}");
        let Ok(Value::Bytes(serial)) = o.attribute(CKA_SERIAL_NUMBER) else {
            panic!("serial");
        };
        assert_eq!(serial[0], 0x02);
        let mut secret = info(KeySpec::Aes { bits: 128 }, Vec::new());
        secret.certificate = vec![1];
        assert_eq!(Part::of(&secret), &[Part::Secret]);
    }

    #[test]
    fn templates_match_by_exact_encoded_value() {
        let key = info(KeySpec::EcP256, Vec::new());
        let o = object(&key, Part::Private);
        let class = (CKA_CLASS, CKO_PRIVATE_KEY.to_ne_bytes().to_vec());
        let label = (CKA_LABEL, b"tls".to_vec());
        assert!(o.matches(&[]));
        assert!(o.matches(&[class.clone(), label.clone()]));
        assert!(!o.matches(&[(CKA_LABEL, b"tl".to_vec())]));
        assert!(!o.matches(&[(CKA_CLASS, CKO_PUBLIC_KEY.to_ne_bytes().to_vec())]));
        // A secret attribute never matches, whatever is asked.
        assert!(!o.matches(&[(CKA_VALUE, Vec::new())]));
        assert!(o.matches(&[(CKA_SIGN, vec![CK_TRUE])]));
        assert!(!o.matches(&[(CKA_SIGN, vec![CK_FALSE])]));
    }
}
