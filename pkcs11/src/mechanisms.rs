//! The mechanisms the token offers and how each becomes a cluster call.
//!
//! [`MECHANISMS`] is the one table of what `C_GetMechanismList` and
//! `C_GetMechanismInfo` report; [`sign_plan`] and [`cipher_plan`] turn a
//! PKCS#11 mechanism, its parameter and the key's type into the cluster's
//! mechanism and the steps around it (hash here, then sign the hash; turn
//! DER ECDSA into `r || s`; put the IV where PKCS#11 keeps it). Pure.

use cryptoki_sys::*;
use hsm_proto::mechanism::{
    DeriveMechanism, DigestAlgorithm, EncryptMechanism, SignMechanism, WrapMechanism,
};
use hsm_proto::KeySpec;
use sha2::Digest as _;

use crate::public::ecdsa_scalar_len;

/// A mechanism's parameter, read from the caller's `CK_MECHANISM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// None given.
    None,
    /// `CK_RSA_PKCS_PSS_PARAMS`.
    Pss {
        /// `hashAlg`.
        hash: CK_MECHANISM_TYPE,
        /// `mgf`.
        mgf: CK_RSA_PKCS_MGF_TYPE,
        /// `sLen`.
        salt_len: CK_ULONG,
    },
    /// `CK_RSA_PKCS_OAEP_PARAMS`.
    Oaep {
        /// `hashAlg`.
        hash: CK_MECHANISM_TYPE,
        /// `mgf`.
        mgf: CK_RSA_PKCS_MGF_TYPE,
        /// `source` (`CKZ_DATA_SPECIFIED` or 0).
        source: CK_ULONG,
        /// `pSourceData`: the label.
        label: Vec<u8>,
    },
    /// `CK_GCM_PARAMS`.
    Gcm {
        /// `ulIvLen` (the caller's IV buffer length).
        iv_len: usize,
        /// The IV the caller gave (its buffer's content).
        iv: Vec<u8>,
        /// `pAAD`.
        aad: Vec<u8>,
        /// `ulTagBits`.
        tag_bits: CK_ULONG,
    },
    /// `CK_ECDH1_DERIVE_PARAMS`.
    Ecdh {
        /// `kdf`.
        kdf: CK_EC_KDF_TYPE,
        /// `pSharedData`.
        shared: Vec<u8>,
        /// `pPublicData`: the peer's public point.
        public: Vec<u8>,
    },
    /// A parameter of a shape this module does not read.
    Other(Vec<u8>),
}

/// A hash the module computes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Hash {
    fn of_mechanism(m: CK_MECHANISM_TYPE) -> Option<Hash> {
        match m {
            CKM_SHA256 => Some(Hash::Sha256),
            CKM_SHA384 => Some(Hash::Sha384),
            CKM_SHA512 => Some(Hash::Sha512),
            _ => None,
        }
    }

    fn mgf1(self) -> CK_RSA_PKCS_MGF_TYPE {
        match self {
            Hash::Sha256 => CKG_MGF1_SHA256,
            Hash::Sha384 => CKG_MGF1_SHA384,
            Hash::Sha512 => CKG_MGF1_SHA512,
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// The cluster's name for it.
    pub fn algorithm(self) -> DigestAlgorithm {
        match self {
            Hash::Sha256 => DigestAlgorithm::Sha256,
            Hash::Sha384 => DigestAlgorithm::Sha384,
            Hash::Sha512 => DigestAlgorithm::Sha512,
        }
    }

    /// The DER prefix of a PKCS#1 `DigestInfo` of this hash.
    fn digest_info_prefix(self) -> [u8; 19] {
        let (len, arc) = match self {
            Hash::Sha256 => (0x31, 1),
            Hash::Sha384 => (0x41, 2),
            Hash::Sha512 => (0x51, 3),
        };
        [
            0x30,
            len,
            0x30,
            0x0d,
            0x06,
            0x09,
            0x60,
            0x86,
            0x48,
            0x01,
            0x65,
            0x03,
            0x04,
            0x02,
            arc,
            0x05,
            0x00,
            0x04,
            self.output_len() as u8,
        ]
    }
}

/// A running hash.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-384.
    Sha384(sha2::Sha384),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A new hash of `hash`.
    pub fn new(hash: Hash) -> Hasher {
        match hash {
            Hash::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Hash::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            Hash::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Adds data.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The hash of everything added.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher")
    }
}

/// What `C_GetMechanismInfo` says of one mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// The mechanism.
    pub mechanism: CK_MECHANISM_TYPE,
    /// Smallest key (bits for RSA and curves, bytes for secrets).
    pub min_key: CK_ULONG,
    /// Largest key.
    pub max_key: CK_ULONG,
    /// What it does (`CKF_SIGN`, ...).
    pub flags: CK_FLAGS,
}

const SIGN: CK_FLAGS = CKF_SIGN | CKF_VERIFY;
const EC: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;

const fn info(mechanism: CK_MECHANISM_TYPE, min: CK_ULONG, max: CK_ULONG, flags: CK_FLAGS) -> Info {
    Info {
        mechanism,
        min_key: min,
        max_key: max,
        flags: flags | CKF_HW,
    }
}

/// Every mechanism the token offers.
pub const MECHANISMS: &[Info] = &[
    info(CKM_RSA_PKCS_KEY_PAIR_GEN, 2048, 4096, CKF_GENERATE_KEY_PAIR),
    info(CKM_EC_KEY_PAIR_GEN, 256, 384, CKF_GENERATE_KEY_PAIR | EC),
    info(CKM_EC_EDWARDS_KEY_PAIR_GEN, 255, 255, CKF_GENERATE_KEY_PAIR),
    info(
        CKM_EC_MONTGOMERY_KEY_PAIR_GEN,
        255,
        255,
        CKF_GENERATE_KEY_PAIR,
    ),
    info(CKM_AES_KEY_GEN, 16, 32, CKF_GENERATE),
    info(CKM_GENERIC_SECRET_KEY_GEN, 1, 800, CKF_GENERATE),
    info(CKM_RSA_PKCS, 2048, 4096, SIGN),
    info(CKM_SHA256_RSA_PKCS, 2048, 4096, SIGN),
    info(CKM_SHA384_RSA_PKCS, 2048, 4096, SIGN),
    info(CKM_SHA512_RSA_PKCS, 2048, 4096, SIGN),
    info(CKM_RSA_PKCS_PSS, 2048, 4096, SIGN),
    info(CKM_SHA256_RSA_PKCS_PSS, 2048, 4096, SIGN),
    info(CKM_SHA384_RSA_PKCS_PSS, 2048, 4096, SIGN),
    info(CKM_SHA512_RSA_PKCS_PSS, 2048, 4096, SIGN),
    info(
        CKM_RSA_PKCS_OAEP,
        2048,
        4096,
        CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP,
    ),
    info(CKM_AES_KEY_WRAP_KWP, 16, 32, CKF_WRAP | CKF_UNWRAP),
    info(CKM_ECDH1_DERIVE, 255, 384, CKF_DERIVE | EC),
    info(CKM_ECDSA, 256, 384, SIGN | EC),
    info(CKM_ECDSA_SHA256, 256, 384, SIGN | EC),
    info(CKM_ECDSA_SHA384, 256, 384, SIGN | EC),
    info(CKM_EDDSA, 255, 255, SIGN),
    info(CKM_SHA256_HMAC, 1, 800, SIGN),
    info(CKM_SHA384_HMAC, 1, 800, SIGN),
    info(CKM_SHA512_HMAC, 1, 800, SIGN),
    info(CKM_AES_GCM, 16, 32, CKF_ENCRYPT | CKF_DECRYPT),
    info(CKM_SHA256, 0, 0, CKF_DIGEST),
    info(CKM_SHA384, 0, 0, CKF_DIGEST),
    info(CKM_SHA512, 0, 0, CKF_DIGEST),
];

/// What the token says of `mechanism`, if it offers it.
pub fn info_of(mechanism: CK_MECHANISM_TYPE) -> Option<Info> {
    MECHANISMS
        .iter()
        .copied()
        .find(|i| i.mechanism == mechanism)
}

/// The hash of a digest mechanism.
///
/// # Errors
/// `CKR_MECHANISM_INVALID` for any other mechanism.
pub fn digest_plan(mechanism: CK_MECHANISM_TYPE) -> Result<Hash, CK_RV> {
    Hash::of_mechanism(mechanism).ok_or(CKR_MECHANISM_INVALID)
}

/// How the caller's data becomes what the cluster signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The data as given (a hash, a DigestInfo, or a message the cluster
    /// takes whole).
    AsIs,
    /// The hash of the data.
    Hashed(Hash),
    /// The DER DigestInfo of the hash of the data.
    DigestInfoOf(Hash),
}

impl Input {
    /// The cluster's input from the hash of the data (for `Hashed` and
    /// `DigestInfoOf`).
    pub fn from_hash(self, hash: Hash, value: Vec<u8>) -> Vec<u8> {
        match self {
            Input::DigestInfoOf(_) => {
                let mut info = hash.digest_info_prefix().to_vec();
                info.extend(value);
                info
            }
            _ => value,
        }
    }

    /// The hash computed here, if any.
    pub fn hash(self) -> Option<Hash> {
        match self {
            Input::AsIs => None,
            Input::Hashed(h) | Input::DigestInfoOf(h) => Some(h),
        }
    }
}

/// A signature mechanism as the cluster serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignPlan {
    /// What the cluster is asked.
    pub mechanism: SignMechanism,
    /// How the data becomes its input.
    pub input: Input,
    /// `Some(n)`: ECDSA, whose DER signature the caller gets as `r || s`
    /// of `n` bytes each.
    pub ecdsa_scalar_len: Option<usize>,
    /// The signature's length for the caller.
    pub signature_len: usize,
}

/// How `mechanism` (with `param`) signs and verifies with a key of `spec`.
///
/// # Errors
/// `CKR_MECHANISM_INVALID` for a mechanism that does not sign;
/// `CKR_KEY_TYPE_INCONSISTENT` for a key of another type;
/// `CKR_MECHANISM_PARAM_INVALID` for a parameter the cluster cannot serve
/// (PSS with another MGF or salt length than the hash's).
pub fn sign_plan(
    mechanism: CK_MECHANISM_TYPE,
    param: &Param,
    spec: KeySpec,
) -> Result<SignPlan, CK_RV> {
    use SignMechanism as S;
    let rsa_len = match spec {
        KeySpec::Rsa { bits } => Some(usize::from(bits / 8)),
        _ => None,
    };
    let rsa = |mechanism, input| {
        Ok(SignPlan {
            mechanism,
            input,
            ecdsa_scalar_len: None,
            signature_len: rsa_len.ok_or(CKR_KEY_TYPE_INCONSISTENT)?,
        })
    };
    let ecdsa = |input| {
        let n = ecdsa_scalar_len(spec).ok_or(CKR_KEY_TYPE_INCONSISTENT)?;
        Ok(SignPlan {
            mechanism: S::EcdsaPrehashed,
            input,
            ecdsa_scalar_len: Some(n),
            signature_len: 2 * n,
        })
    };
    let hmac = |mechanism, hash: Hash| {
        if !matches!(spec, KeySpec::GenericSecret { .. }) {
            return Err(CKR_KEY_TYPE_INCONSISTENT);
        }
        Ok(SignPlan {
            mechanism,
            input: Input::AsIs,
            ecdsa_scalar_len: None,
            signature_len: hash.output_len(),
        })
    };
    let pss = |hash: Hash, input| {
        let prehashed = match hash {
            Hash::Sha256 => S::RsaPssSha256Prehashed,
            Hash::Sha384 => S::RsaPssSha384Prehashed,
            Hash::Sha512 => S::RsaPssSha512Prehashed,
        };
        match param {
            Param::Pss {
                hash: h,
                mgf,
                salt_len,
            } if Hash::of_mechanism(*h) == Some(hash)
                && *mgf == hash.mgf1()
                && usize::try_from(*salt_len).ok() == Some(hash.output_len()) =>
            {
                rsa(prehashed, input)
            }
            _ => Err(CKR_MECHANISM_PARAM_INVALID),
        }
    };
    let pss_hash = || match param {
        Param::Pss { hash, .. } => Hash::of_mechanism(*hash).ok_or(CKR_MECHANISM_PARAM_INVALID),
        _ => Err(CKR_MECHANISM_PARAM_INVALID),
    };
    match mechanism {
        CKM_RSA_PKCS => rsa(S::RsaPkcs1v15Raw, Input::AsIs),
        CKM_SHA256_RSA_PKCS => rsa(S::RsaPkcs1v15Raw, Input::DigestInfoOf(Hash::Sha256)),
        CKM_SHA384_RSA_PKCS => rsa(S::RsaPkcs1v15Raw, Input::DigestInfoOf(Hash::Sha384)),
        CKM_SHA512_RSA_PKCS => rsa(S::RsaPkcs1v15Raw, Input::DigestInfoOf(Hash::Sha512)),
        CKM_RSA_PKCS_PSS => pss(pss_hash()?, Input::AsIs),
        CKM_SHA256_RSA_PKCS_PSS => pss(Hash::Sha256, Input::Hashed(Hash::Sha256)),
        CKM_SHA384_RSA_PKCS_PSS => pss(Hash::Sha384, Input::Hashed(Hash::Sha384)),
        CKM_SHA512_RSA_PKCS_PSS => pss(Hash::Sha512, Input::Hashed(Hash::Sha512)),
        CKM_ECDSA => ecdsa(Input::AsIs),
        CKM_ECDSA_SHA256 => ecdsa(Input::Hashed(Hash::Sha256)),
        CKM_ECDSA_SHA384 => ecdsa(Input::Hashed(Hash::Sha384)),
        CKM_EDDSA => {
            // Pure Ed25519 only: no prehash, no context.
            if !matches!(param, Param::None) {
                return Err(CKR_MECHANISM_PARAM_INVALID);
            }
            if spec != KeySpec::Ed25519 {
                return Err(CKR_KEY_TYPE_INCONSISTENT);
            }
            Ok(SignPlan {
                mechanism: S::Ed25519,
                input: Input::AsIs,
                ecdsa_scalar_len: None,
                signature_len: 64,
            })
        }
        CKM_SHA256_HMAC => hmac(S::HmacSha256, Hash::Sha256),
        CKM_SHA384_HMAC => hmac(S::HmacSha384, Hash::Sha384),
        CKM_SHA512_HMAC => hmac(S::HmacSha512, Hash::Sha512),
        _ => Err(CKR_MECHANISM_INVALID),
    }
}

/// An encryption mechanism as the cluster serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CipherPlan {
    /// AES-GCM: the cluster draws the IV; with the all-zero IV the output
    /// (and the input to decrypt) is `iv || ciphertext || tag`, with the
    /// caller's IV (decryption) `ciphertext || tag`.
    AesGcm {
        /// Associated data.
        aad: Vec<u8>,
        /// The caller's IV (used to decrypt).
        iv: Vec<u8>,
    },
    /// RSA-OAEP with SHA-256 and MGF1-SHA-256.
    RsaOaep {
        /// The label.
        label: Vec<u8>,
        /// The modulus length in bytes.
        modulus_len: usize,
    },
}

impl CipherPlan {
    /// The cluster's mechanism.
    pub fn mechanism(&self) -> EncryptMechanism {
        match self {
            CipherPlan::AesGcm { .. } => EncryptMechanism::AesGcm,
            CipherPlan::RsaOaep { .. } => EncryptMechanism::RsaOaepSha256,
        }
    }
}

/// Length of the IV the cluster draws for AES-GCM.
pub const GCM_IV_LEN: usize = 12;
/// Length of the AES-GCM tag.
pub const GCM_TAG_LEN: usize = 16;

/// How `mechanism` (with `param`) encrypts (or, with `decrypt`,
/// decrypts) with a key of `spec`.
///
/// AES-GCM encryption takes an all-zero 12-byte IV, by which the caller
/// asks the token to choose it: the cluster draws every IV itself (so
/// none is ever used twice) and puts it in front of the output, as
/// decryption with the all-zero IV takes it. A caller's own IV is refused
/// to encrypt rather than silently replaced; to decrypt it is taken.
///
/// # Errors
/// `CKR_MECHANISM_INVALID` for a mechanism that does not encrypt;
/// `CKR_KEY_TYPE_INCONSISTENT` for a key of another type;
/// `CKR_MECHANISM_PARAM_INVALID` for a parameter the cluster cannot
/// serve: GCM with another IV length than 12 bytes, another tag than 128
/// bits, or (to encrypt) an IV that is not all zeros; OAEP with another
/// hash or MGF than SHA-256.
pub fn cipher_plan(
    mechanism: CK_MECHANISM_TYPE,
    param: &Param,
    spec: KeySpec,
    decrypt: bool,
) -> Result<CipherPlan, CK_RV> {
    match (mechanism, param) {
        (CKM_AES_GCM, _) if !matches!(spec, KeySpec::Aes { .. }) => Err(CKR_KEY_TYPE_INCONSISTENT),
        (
            CKM_AES_GCM,
            Param::Gcm {
                iv_len,
                iv,
                aad,
                tag_bits,
            },
        ) if *iv_len == GCM_IV_LEN
            && iv.len() == GCM_IV_LEN
            && *tag_bits == 128
            && (decrypt || iv.iter().all(|b| *b == 0)) =>
        {
            Ok(CipherPlan::AesGcm {
                aad: aad.clone(),
                iv: iv.clone(),
            })
        }
        (CKM_RSA_PKCS_OAEP, _) if !matches!(spec, KeySpec::Rsa { .. }) => {
            Err(CKR_KEY_TYPE_INCONSISTENT)
        }
        (
            CKM_RSA_PKCS_OAEP,
            Param::Oaep {
                hash,
                mgf,
                source,
                label,
            },
        ) if *hash == CKM_SHA256
            && *mgf == CKG_MGF1_SHA256
            && (*source == CKZ_DATA_SPECIFIED || (*source == 0 && label.is_empty())) =>
        {
            let modulus_len = match spec {
                KeySpec::Rsa { bits } => usize::from(bits / 8),
                _ => return Err(CKR_KEY_TYPE_INCONSISTENT),
            };
            Ok(CipherPlan::RsaOaep {
                label: label.clone(),
                modulus_len,
            })
        }
        (CKM_AES_GCM | CKM_RSA_PKCS_OAEP, _) => Err(CKR_MECHANISM_PARAM_INVALID),
        _ => Err(CKR_MECHANISM_INVALID),
    }
}

/// The cluster's wrapping mechanism for `mechanism` (with `param`).
///
/// The wrapped form is the cluster's wrapped-key format (the key's type,
/// usages and one-way attributes bound to its material), which another
/// cluster's `C_UnwrapKey` opens with the same key, not bare RFC 5649 or
/// OAEP of the key bytes.
///
/// # Errors
/// `CKR_MECHANISM_INVALID` for a mechanism that does not wrap;
/// `CKR_MECHANISM_PARAM_INVALID` for OAEP with another hash than SHA-256
/// or a label, and for KWP with an IV of its own.
pub fn wrap_plan(mechanism: CK_MECHANISM_TYPE, param: &Param) -> Result<WrapMechanism, CK_RV> {
    match (mechanism, param) {
        (CKM_AES_KEY_WRAP_KWP, Param::None) => Ok(WrapMechanism::AesKeyWrapPad),
        (
            CKM_RSA_PKCS_OAEP,
            Param::Oaep {
                hash,
                mgf,
                source,
                label,
            },
        ) if *hash == CKM_SHA256
            && *mgf == CKG_MGF1_SHA256
            && (*source == 0 || *source == CKZ_DATA_SPECIFIED)
            && label.is_empty() =>
        {
            Ok(WrapMechanism::RsaOaepSha256)
        }
        (CKM_AES_KEY_WRAP_KWP | CKM_RSA_PKCS_OAEP, _) => Err(CKR_MECHANISM_PARAM_INVALID),
        _ => Err(CKR_MECHANISM_INVALID),
    }
}

/// How `CKM_ECDH1_DERIVE` with `param` derives: the cluster's mechanism,
/// its context (the shared data) and the peer's public point.
///
/// # Errors
/// `CKR_MECHANISM_INVALID` for another mechanism;
/// `CKR_MECHANISM_PARAM_INVALID` for a KDF other than `CKD_NULL` and
/// `CKD_SHA256_KDF`, or shared data with `CKD_NULL`.
pub fn derive_plan(
    mechanism: CK_MECHANISM_TYPE,
    param: &Param,
) -> Result<(DeriveMechanism, Vec<u8>, Vec<u8>), CK_RV> {
    if mechanism != CKM_ECDH1_DERIVE {
        return Err(CKR_MECHANISM_INVALID);
    }
    match param {
        Param::Ecdh {
            kdf: CKD_NULL,
            shared,
            public,
        } if shared.is_empty() => Ok((DeriveMechanism::EcdhRaw, Vec::new(), public.clone())),
        Param::Ecdh {
            kdf: CKD_SHA256_KDF,
            shared,
            public,
        } => Ok((
            DeriveMechanism::EcdhX963Sha256,
            shared.clone(),
            public.clone(),
        )),
        _ => Err(CKR_MECHANISM_PARAM_INVALID),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signing_mechanism_fits_its_key_types_only() {
        let specs = [
            KeySpec::Rsa { bits: 2048 },
            KeySpec::EcP256,
            KeySpec::EcP384,
            KeySpec::Ed25519,
            KeySpec::GenericSecret { bytes: 32 },
            KeySpec::Aes { bits: 256 },
            KeySpec::X25519,
        ];
        let pss = Param::Pss {
            hash: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            salt_len: 32,
        };
        for info in MECHANISMS.iter().filter(|i| i.flags & CKF_SIGN != 0) {
            let param = match info.mechanism {
                CKM_RSA_PKCS_PSS | CKM_SHA256_RSA_PKCS_PSS => pss.clone(),
                CKM_SHA384_RSA_PKCS_PSS => Param::Pss {
                    hash: CKM_SHA384,
                    mgf: CKG_MGF1_SHA384,
                    salt_len: 48,
                },
                CKM_SHA512_RSA_PKCS_PSS => Param::Pss {
                    hash: CKM_SHA512,
                    mgf: CKG_MGF1_SHA512,
                    salt_len: 64,
                },
                _ => Param::None,
            };
            let fits: Vec<KeySpec> = specs
                .iter()
                .copied()
                .filter(|s| sign_plan(info.mechanism, &param, *s).is_ok())
                .collect();
            assert!(!fits.is_empty(), "{:#x} fits no key", info.mechanism);
            for spec in specs.iter().filter(|s| !fits.contains(s)) {
                assert_eq!(
                    sign_plan(info.mechanism, &param, *spec),
                    Err(CKR_KEY_TYPE_INCONSISTENT),
                    "{:#x} {spec:?}",
                    info.mechanism
                );
            }
        }
    }

    #[test]
    fn pss_is_served_only_with_the_hash_mgf_and_salt_of_the_cluster() {
        let rsa = KeySpec::Rsa { bits: 3072 };
        let plan = sign_plan(
            CKM_RSA_PKCS_PSS,
            &Param::Pss {
                hash: CKM_SHA384,
                mgf: CKG_MGF1_SHA384,
                salt_len: 48,
            },
            rsa,
        )
        .expect("plan");
        assert_eq!(plan.mechanism, SignMechanism::RsaPssSha384Prehashed);
        assert_eq!(plan.signature_len, 384);
        for bad in [
            Param::None,
            Param::Pss {
                hash: CKM_SHA384,
                mgf: CKG_MGF1_SHA256,
                salt_len: 48,
            },
            Param::Pss {
                hash: CKM_SHA384,
                mgf: CKG_MGF1_SHA384,
                salt_len: 0,
            },
            Param::Pss {
                hash: CKM_SHA_1,
                mgf: CKG_MGF1_SHA1,
                salt_len: 20,
            },
        ] {
            assert_eq!(
                sign_plan(CKM_RSA_PKCS_PSS, &bad, rsa),
                Err(CKR_MECHANISM_PARAM_INVALID),
                "{bad:?}"
            );
        }
        // The hash-and-sign form must name its own hash.
        assert_eq!(
            sign_plan(
                CKM_SHA512_RSA_PKCS_PSS,
                &Param::Pss {
                    hash: CKM_SHA256,
                    mgf: CKG_MGF1_SHA256,
                    salt_len: 32
                },
                rsa
            ),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
    }

    #[test]
    fn digest_infos_are_rfc_8017s() {
        let sha256 = Input::DigestInfoOf(Hash::Sha256).from_hash(Hash::Sha256, vec![0xab; 32]);
        assert_eq!(sha256.len(), 19 + 32);
        assert_eq!(
            &sha256[..19],
            &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20
            ]
        );
        let sha512 = Input::DigestInfoOf(Hash::Sha512).from_hash(Hash::Sha512, vec![0; 64]);
        assert_eq!(&sha512[..2], &[0x30, 0x51]);
        assert_eq!(sha512[14], 3);
        assert_eq!(sha512[18], 64);
    }

    #[test]
    fn gcm_takes_a_twelve_byte_iv_and_a_full_tag_only() {
        let aes = KeySpec::Aes { bits: 128 };
        let gcm = |iv_len, tag_bits| Param::Gcm {
            iv_len,
            iv: vec![0; iv_len],
            aad: b"aad".to_vec(),
            tag_bits,
        };
        assert!(cipher_plan(CKM_AES_GCM, &gcm(12, 128), aes, false).is_ok());
        for bad in [gcm(16, 128), gcm(12, 96), Param::None] {
            for decrypt in [false, true] {
                assert_eq!(
                    cipher_plan(CKM_AES_GCM, &bad, aes, decrypt),
                    Err(CKR_MECHANISM_PARAM_INVALID)
                );
            }
        }
        // The caller's own IV: refused to encrypt (the cluster chooses),
        // taken to decrypt.
        let own = Param::Gcm {
            iv_len: 12,
            iv: vec![9; 12],
            aad: Vec::new(),
            tag_bits: 128,
        };
        assert_eq!(
            cipher_plan(CKM_AES_GCM, &own, aes, false),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
        assert!(cipher_plan(CKM_AES_GCM, &own, aes, true).is_ok());
        assert_eq!(
            cipher_plan(CKM_AES_GCM, &gcm(12, 128), KeySpec::EcP256, false),
            Err(CKR_KEY_TYPE_INCONSISTENT)
        );
        let oaep = |hash, mgf| Param::Oaep {
            hash,
            mgf,
            source: CKZ_DATA_SPECIFIED,
            label: Vec::new(),
        };
        let rsa = KeySpec::Rsa { bits: 2048 };
        assert!(cipher_plan(
            CKM_RSA_PKCS_OAEP,
            &oaep(CKM_SHA256, CKG_MGF1_SHA256),
            rsa,
            false
        )
        .is_ok());
        assert_eq!(
            cipher_plan(
                CKM_RSA_PKCS_OAEP,
                &oaep(CKM_SHA_1, CKG_MGF1_SHA1),
                rsa,
                true
            ),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
        assert_eq!(
            cipher_plan(CKM_RSA_PKCS, &Param::None, rsa, false),
            Err(CKR_MECHANISM_INVALID)
        );
    }
}
