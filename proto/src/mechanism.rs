//! The mechanisms a caller picks for each operation.
//!
//! Plain, serde-serialisable enums that the node and the SDK carry over the
//! wire; `hsm-crypto` implements them. Each has a
//! stable lowercase `name` used in errors and logs, and `ALL` for tests and
//! listings. Which key types accept which mechanism is documented on each
//! variant and checked by every operation.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// The stable lowercase name, as used in error messages.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// The variant with this [`name`](Self::name), if any.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_enum! {
    /// A signature or MAC mechanism.
    ///
    /// RSA PSS uses MGF1 with the same hash and a salt as long as the hash.
    /// ECDSA signatures are DER `SEQUENCE { r, s }` as OpenSSL emits; the hash
    /// is applied to the message and, per FIPS 186-4, truncated to the curve
    /// order's length (SHA-384 on P-256 or secp256k1) or used whole (SHA-256
    /// on P-384). Ed25519 is pure Ed25519 (RFC 8032) over the message.
    /// The `-prehashed` and `-raw` forms take the hash (or the
    /// `DigestInfo`) in place of the message, for callers that hash
    /// themselves (PKCS#11, TLS stacks); their signatures are the same as
    /// the whole-message forms' over the message hashed.
    pub enum SignMechanism {
        /// RSASSA-PKCS1-v1_5 with SHA-256. RSA keys.
        RsaPkcs1v15Sha256 => "rsa-pkcs1v15-sha256",
        /// RSASSA-PKCS1-v1_5 with SHA-384. RSA keys.
        RsaPkcs1v15Sha384 => "rsa-pkcs1v15-sha384",
        /// RSASSA-PKCS1-v1_5 with SHA-512. RSA keys.
        RsaPkcs1v15Sha512 => "rsa-pkcs1v15-sha512",
        /// RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt. RSA keys.
        RsaPssSha256 => "rsa-pss-sha256",
        /// RSASSA-PSS with SHA-384, MGF1-SHA-384, 48-byte salt. RSA keys.
        RsaPssSha384 => "rsa-pss-sha384",
        /// RSASSA-PSS with SHA-512, MGF1-SHA-512, 64-byte salt. RSA keys.
        RsaPssSha512 => "rsa-pss-sha512",
        /// ECDSA with SHA-256. P-256, P-384 and secp256k1 keys.
        EcdsaSha256 => "ecdsa-sha256",
        /// ECDSA with SHA-384. P-256, P-384 and secp256k1 keys.
        EcdsaSha384 => "ecdsa-sha384",
        /// Pure Ed25519. Ed25519 keys.
        Ed25519 => "ed25519",
        /// HMAC-SHA-256 (32-byte tag). Generic secret keys.
        HmacSha256 => "hmac-sha256",
        /// HMAC-SHA-384 (48-byte tag). Generic secret keys.
        HmacSha384 => "hmac-sha384",
        /// HMAC-SHA-512 (64-byte tag). Generic secret keys.
        HmacSha512 => "hmac-sha512",
        /// ECDSA over a hash the caller computed (PKCS#11 `CKM_ECDSA`): the
        /// message is the hash, 20 to 64 bytes, used as FIPS 186-4 says
        /// (its leftmost bits, as many as the curve order has). P-256,
        /// P-384 and secp256k1 keys.
        EcdsaPrehashed => "ecdsa-prehashed",
        /// RSASSA-PKCS1-v1_5 signature padding over the caller's bytes
        /// (PKCS#11 `CKM_RSA_PKCS`, as TLS stacks and OpenSSL use it): the
        /// message is what is padded and signed, normally the DER
        /// `DigestInfo` of a hash the caller computed, at most the modulus
        /// length less 11 bytes. RSA keys.
        RsaPkcs1v15Raw => "rsa-pkcs1v15-raw",
        /// RSASSA-PSS as [`SignMechanism::RsaPssSha256`] over a SHA-256
        /// hash the caller computed (the message is the 32-byte hash). RSA
        /// keys.
        RsaPssSha256Prehashed => "rsa-pss-sha256-prehashed",
        /// RSASSA-PSS as [`SignMechanism::RsaPssSha384`] over a 48-byte
        /// SHA-384 hash the caller computed. RSA keys.
        RsaPssSha384Prehashed => "rsa-pss-sha384-prehashed",
        /// RSASSA-PSS as [`SignMechanism::RsaPssSha512`] over a 64-byte
        /// SHA-512 hash the caller computed. RSA keys.
        RsaPssSha512Prehashed => "rsa-pss-sha512-prehashed",
    }
}

named_enum! {
    /// An encryption mechanism.
    pub enum EncryptMechanism {
        /// AES-GCM with a random 96-bit IV chosen by the HSM and a 128-bit
        /// tag; the associated data is authenticated, not encrypted. The
        /// output is `iv (12) || ciphertext || tag (16)`, and decryption takes
        /// the same layout. AES keys of any size.
        AesGcm => "aes-gcm",
        /// RSAES-OAEP with SHA-256 and MGF1-SHA-256; the associated data, if
        /// not empty, is the OAEP label. Encrypts at most
        /// `modulus bytes - 66` bytes. RSA keys.
        RsaOaepSha256 => "rsa-oaep-sha256",
    }
}

named_enum! {
    /// A mechanism for wrapping one key under another.
    ///
    /// What is wrapped is the key's canonical material (the raw bytes of a
    /// symmetric key, the PKCS#8 DER of a private key), in the cluster's
    /// wrapped-key format: a header carrying the key's type, usages,
    /// one-way attributes and provenance, bound to a body made with the
    /// mechanism below (`hsm-crypto`'s `wrap` module and docs/crypto.md
    /// give the exact layout). The format is apart from data encryption:
    /// a wrapped key never decrypts as data, and data never unwraps.
    pub enum WrapMechanism {
        /// AES key wrap with padding (RFC 5649, NIST SP 800-38F KWP) under
        /// the AES key's wrapping subkey. AES wrapping keys of any size;
        /// deterministic.
        AesKeyWrapPad => "aes-key-wrap-pad",
        /// AES-GCM under the AES key's wrapping subkey, with the header as
        /// associated data. AES wrapping keys.
        AesGcm => "aes-gcm",
        /// RSAES-OAEP with SHA-256 and MGF1-SHA-256, with a label of the
        /// format's own (which data encryption refuses). RSA wrapping keys;
        /// the material must fit in one block (AES and generic secrets,
        /// not private keys).
        RsaOaepSha256 => "rsa-oaep-sha256",
    }
}

named_enum! {
    /// A key agreement mechanism: ECDH between our private key and a peer's
    /// public key of the same type, then a key derivation over the shared
    /// secret with caller-given context bytes.
    pub enum DeriveMechanism {
        /// ECDH, then HKDF-SHA-256 (RFC 5869) with an empty salt, the shared
        /// secret as input key material and the context as `info`.
        /// X25519, P-256 and P-384 keys.
        EcdhHkdfSha256 => "ecdh-hkdf-sha256",
        /// ECDH, then BLAKE3 in key derivation mode with the context string
        /// `hsm_crypto::BLAKE3_DERIVE_CONTEXT` over
        /// `len(context) as u64 little-endian || context || shared secret`,
        /// read to the output length. X25519, P-256 and P-384 keys.
        EcdhBlake3 => "ecdh-blake3",
        /// ECDH, and the shared secret itself is the new key (PKCS#11
        /// `CKM_ECDH1_DERIVE` with `CKD_NULL`): its leftmost bytes, as many
        /// as the new key has (at most the secret's length); the context
        /// must be empty. X25519, P-256 and P-384 keys.
        EcdhRaw => "ecdh-raw",
        /// ECDH, then the ANSI X9.63 KDF with SHA-256 (SEC 1 §3.6.1; PKCS#11
        /// `CKD_SHA256_KDF`): `SHA-256(secret || counter (u32 BE, from 1)
        /// || context)` blocks, the context as SharedInfo. X25519, P-256 and
        /// P-384 keys.
        EcdhX963Sha256 => "ecdh-x963-sha256",
    }
}

named_enum! {
    /// A message digest.
    pub enum DigestAlgorithm {
        /// SHA-256 (32 bytes).
        Sha256 => "sha256",
        /// SHA-384 (48 bytes).
        Sha384 => "sha384",
        /// SHA-512 (64 bytes).
        Sha512 => "sha512",
        /// BLAKE3 (32 bytes).
        Blake3 => "blake3",
    }
}

impl DigestAlgorithm {
    /// Output length in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 | DigestAlgorithm::Blake3 => 32,
            DigestAlgorithm::Sha384 => 48,
            DigestAlgorithm::Sha512 => 64,
        }
    }
}
