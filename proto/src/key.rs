//! Key types and attributes.

use serde::{Deserialize, Serialize};

/// The type and size of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KeySpec {
    /// AES with a 128, 192 or 256 bit key.
    Aes {
        /// Key length in bits.
        bits: u16,
    },
    /// A generic secret (for HMAC) of 1 to 800 bytes.
    GenericSecret {
        /// Key length in bytes.
        bytes: u16,
    },
    /// ECDSA / ECDH on NIST P-256.
    EcP256,
    /// ECDSA / ECDH on NIST P-384.
    EcP384,
    /// ECDSA on secp256k1.
    EcSecp256k1,
    /// Ed25519 signing key pair.
    Ed25519,
    /// X25519 key agreement pair.
    X25519,
    /// RSA with a 2048, 3072 or 4096 bit modulus.
    Rsa {
        /// Modulus length in bits.
        bits: u16,
    },
}

impl KeySpec {
    /// Whether the size is one the cluster supports.
    pub fn is_valid(self) -> bool {
        match self {
            KeySpec::Aes { bits } => matches!(bits, 128 | 192 | 256),
            KeySpec::GenericSecret { bytes } => (1..=800).contains(&bytes),
            KeySpec::Rsa { bits } => matches!(bits, 2048 | 3072 | 4096),
            KeySpec::EcP256
            | KeySpec::EcP384
            | KeySpec::EcSecp256k1
            | KeySpec::Ed25519
            | KeySpec::X25519 => true,
        }
    }

    /// Whether the key is a pair with a public half.
    pub fn is_asymmetric(self) -> bool {
        !matches!(self, KeySpec::Aes { .. } | KeySpec::GenericSecret { .. })
    }
}

impl std::fmt::Display for KeySpec {
    /// The name people use: `aes-256`, `generic-secret-32`, `ec-p256`,
    /// `ec-p384`, `ec-secp256k1`, `ed25519`, `x25519`, `rsa-2048`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySpec::Aes { bits } => write!(f, "aes-{bits}"),
            KeySpec::GenericSecret { bytes } => write!(f, "generic-secret-{bytes}"),
            KeySpec::EcP256 => f.write_str("ec-p256"),
            KeySpec::EcP384 => f.write_str("ec-p384"),
            KeySpec::EcSecp256k1 => f.write_str("ec-secp256k1"),
            KeySpec::Ed25519 => f.write_str("ed25519"),
            KeySpec::X25519 => f.write_str("x25519"),
            KeySpec::Rsa { bits } => write!(f, "rsa-{bits}"),
        }
    }
}

impl KeyFlag {
    /// The attribute's name as people use it (`encrypt`, `wrap-with-trusted`).
    pub fn name(self) -> &'static str {
        match self {
            KeyFlag::Encrypt => "encrypt",
            KeyFlag::Decrypt => "decrypt",
            KeyFlag::Sign => "sign",
            KeyFlag::Verify => "verify",
            KeyFlag::Wrap => "wrap",
            KeyFlag::Unwrap => "unwrap",
            KeyFlag::Derive => "derive",
            KeyFlag::Extractable => "extractable",
            KeyFlag::Sensitive => "sensitive",
            KeyFlag::Trusted => "trusted",
            KeyFlag::WrapWithTrusted => "wrap-with-trusted",
        }
    }
}

/// A boolean key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KeyFlag {
    /// May encrypt.
    Encrypt,
    /// May decrypt.
    Decrypt,
    /// May sign (including HMAC).
    Sign,
    /// May verify.
    Verify,
    /// May wrap other keys.
    Wrap,
    /// May unwrap other keys.
    Unwrap,
    /// May derive other keys (key agreement).
    Derive,
    /// May leave the HSM wrapped. May only ever change from true to false.
    Extractable,
    /// Material may never leave in plaintext. May only ever change from false
    /// to true.
    Sensitive,
    /// Trusted to wrap keys marked wrap-with-trusted. Set by a crypto officer.
    Trusted,
    /// May only be wrapped by a trusted key. May only ever change from false
    /// to true.
    WrapWithTrusted,
}

/// The attributes of a key other than its owner and share list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyAttributes {
    /// Free text label; unique per owner when the creator asks for it.
    pub label: String,
    /// Application-chosen id bytes (PKCS#11 `CKA_ID`).
    #[serde(with = "serde_bytes")]
    pub id: Vec<u8>,
    /// See [`KeyFlag::Encrypt`].
    pub encrypt: bool,
    /// See [`KeyFlag::Decrypt`].
    pub decrypt: bool,
    /// See [`KeyFlag::Sign`].
    pub sign: bool,
    /// See [`KeyFlag::Verify`].
    pub verify: bool,
    /// See [`KeyFlag::Wrap`].
    pub wrap: bool,
    /// See [`KeyFlag::Unwrap`].
    pub unwrap: bool,
    /// See [`KeyFlag::Derive`].
    pub derive: bool,
    /// See [`KeyFlag::Extractable`].
    pub extractable: bool,
    /// See [`KeyFlag::Sensitive`].
    pub sensitive: bool,
    /// See [`KeyFlag::Trusted`].
    pub trusted: bool,
    /// See [`KeyFlag::WrapWithTrusted`].
    pub wrap_with_trusted: bool,
}

/// Longest label accepted, in bytes.
pub const MAX_LABEL_LEN: usize = 127;
/// Longest id attribute accepted, in bytes.
pub const MAX_KEY_ATTR_ID_LEN: usize = 128;
/// Longest wrapped key material or public key accepted, in bytes (an
/// RSA-4096 private key in DER is about 2.4 KiB).
pub const MAX_KEY_BLOB_LEN: usize = 16 * 1024;

impl Default for KeyAttributes {
    /// No usages, extractable, sensitive, not trusted.
    fn default() -> Self {
        KeyAttributes {
            label: String::new(),
            id: Vec::new(),
            encrypt: false,
            decrypt: false,
            sign: false,
            verify: false,
            wrap: false,
            unwrap: false,
            derive: false,
            extractable: true,
            sensitive: true,
            trusted: false,
            wrap_with_trusted: false,
        }
    }
}

impl KeyAttributes {
    /// The value of a boolean attribute.
    pub fn flag(&self, flag: KeyFlag) -> bool {
        match flag {
            KeyFlag::Encrypt => self.encrypt,
            KeyFlag::Decrypt => self.decrypt,
            KeyFlag::Sign => self.sign,
            KeyFlag::Verify => self.verify,
            KeyFlag::Wrap => self.wrap,
            KeyFlag::Unwrap => self.unwrap,
            KeyFlag::Derive => self.derive,
            KeyFlag::Extractable => self.extractable,
            KeyFlag::Sensitive => self.sensitive,
            KeyFlag::Trusted => self.trusted,
            KeyFlag::WrapWithTrusted => self.wrap_with_trusted,
        }
    }

    /// Sets a boolean attribute, with no rule checks.
    pub fn set_flag(&mut self, flag: KeyFlag, value: bool) {
        let slot = match flag {
            KeyFlag::Encrypt => &mut self.encrypt,
            KeyFlag::Decrypt => &mut self.decrypt,
            KeyFlag::Sign => &mut self.sign,
            KeyFlag::Verify => &mut self.verify,
            KeyFlag::Wrap => &mut self.wrap,
            KeyFlag::Unwrap => &mut self.unwrap,
            KeyFlag::Derive => &mut self.derive,
            KeyFlag::Extractable => &mut self.extractable,
            KeyFlag::Sensitive => &mut self.sensitive,
            KeyFlag::Trusted => &mut self.trusted,
            KeyFlag::WrapWithTrusted => &mut self.wrap_with_trusted,
        };
        *slot = value;
    }

    /// Whether label and id are within their length limits.
    pub fn is_within_limits(&self) -> bool {
        self.label.len() <= MAX_LABEL_LEN && self.id.len() <= MAX_KEY_ATTR_ID_LEN
    }
}

/// One attribute change, as carried by a key-attribute-set event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KeyAttribute {
    /// New label.
    Label(String),
    /// New id bytes.
    Id(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A boolean attribute and its new value.
    Flag(KeyFlag, bool),
    /// The X.509 certificate (DER) of a key pair's public key, for the
    /// software that finds keys through their certificates (PKCS#11
    /// applications: Java's keystore, libp11); empty removes it. At most
    /// [`MAX_CERTIFICATE_LEN`] bytes; the node checks it certifies the
    /// key's own public key.
    Certificate(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// Longest certificate a key may carry, in bytes.
pub const MAX_CERTIFICATE_LEN: usize = 16 * 1024;

/// How a key came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KeyOrigin {
    /// Generated inside the cluster.
    Generated,
    /// Imported from plaintext material the caller had.
    Imported,
    /// Unwrapped from a wrapped key.
    Unwrapped,
    /// Derived by key agreement with a peer (who can derive it as well).
    Derived,
    /// A public key imported alone: the cluster holds no private half, so
    /// the key verifies, encrypts and wraps (RSA) but never signs,
    /// decrypts, unwraps or derives (`hsm_state::policy`).
    PublicImported,
}

impl KeyOrigin {
    /// The name people use: `generated`, `imported`, `unwrapped`,
    /// `derived`, `public-imported`.
    pub fn name(self) -> &'static str {
        match self {
            KeyOrigin::Generated => "generated",
            KeyOrigin::Imported => "imported",
            KeyOrigin::Unwrapped => "unwrapped",
            KeyOrigin::Derived => "derived",
            KeyOrigin::PublicImported => "public-imported",
        }
    }
}

/// Where a key's material has been, fixed when the key is created: the
/// PKCS#11 attributes `CKA_LOCAL`, `CKA_ALWAYS_SENSITIVE` and
/// `CKA_NEVER_EXTRACTABLE`. No attribute change touches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyProvenance {
    /// How the key came to be.
    pub origin: KeyOrigin,
    /// The material was made inside the cluster and was never known
    /// outside it: generated here, or unwrapped from a key this cluster
    /// wrapped from such a key under a symmetric key that was itself never
    /// known outside. Imported, derived and publicly wrapped (RSA-OAEP)
    /// keys are not local.
    pub local: bool,
    /// Sensitive ever since the material was made (an unwrapped copy
    /// inherits the original's, when the wrapping proves where it came
    /// from).
    pub always_sensitive: bool,
    /// Never extractable: generated not extractable.
    pub never_extractable: bool,
}

impl KeyProvenance {
    /// Provenance of a key generated inside the cluster with `attributes`.
    pub fn generated(attributes: &KeyAttributes) -> KeyProvenance {
        KeyProvenance {
            origin: KeyOrigin::Generated,
            local: true,
            always_sensitive: attributes.sensitive,
            never_extractable: !attributes.extractable,
        }
    }

    /// Provenance of a key whose material the caller brought or can
    /// compute (imported or derived).
    pub fn known_outside(origin: KeyOrigin) -> KeyProvenance {
        KeyProvenance {
            origin,
            local: false,
            always_sensitive: false,
            never_extractable: false,
        }
    }

    /// Whether the material has never been outside the cluster in any
    /// form someone could read: local and sensitive ever since.
    pub fn never_known_outside(&self) -> bool {
        self.local && self.always_sensitive
    }

    /// Whether the key is a public key alone ([`KeyOrigin::PublicImported`]):
    /// the cluster holds no private half.
    pub fn public_only(&self) -> bool {
        self.origin == KeyOrigin::PublicImported
    }
}

/// What a wrapped key carries besides its material, bound to it by the
/// wrapping (so unwrap restores it or refuses): type, usages, the one-way
/// attributes and provenance. Label, id and `trusted` are never carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedAttributes {
    /// Type and size of the wrapped key.
    pub spec: KeySpec,
    /// Its attributes, with an empty label and id and `trusted` false.
    pub attributes: KeyAttributes,
    /// Its provenance when it was wrapped.
    pub provenance: KeyProvenance,
}
