//! Power-on self-tests: every algorithm the node serves is run against a
//! known answer before the node serves any of them, as FIPS 140-3 asks of
//! a cryptographic module (ISO/IEC 19790 §7.10: pre-operational and
//! cryptographic algorithm self-tests). A node whose tests fail keeps its
//! place in the cluster but serves no cryptography, and says which test
//! failed and how.
//!
//! The answers come from each algorithm's standard where it gives one
//! (FIPS 180-4's "abc", BLAKE3's empty input, RFC 4231 test case 2, the
//! GCM specification's test case 14, RFC 5649 §6, RFC 8032 test 1, RFC 7748
//! §6.1) and otherwise from an independent implementation (OpenSSL,
//! through Python's `cryptography`) over the fixed keys of `self_test/`:
//! an RSA-2048 and a P-256 key made for these tests only, public, guarding
//! nothing. Signing tests whose output is random (ECDSA) verify a known
//! signature and then sign and verify; AES-GCM is tested both ways with a
//! fixed IV.
//!
//! Apart from these, every key pair generated passes a pairwise
//! consistency test before it is returned (`LoadedKey::generate`).

use crate::agree::BLAKE3_DERIVE_CONTEXT;
use crate::error::{CryptoError, Result};
use crate::keys::PublicKey;
use crate::loaded::LoadedKey;
use crate::mechanism::{DeriveMechanism, DigestAlgorithm, EncryptMechanism, SignMechanism};
use crate::wrap::{kwp_unwrap, kwp_wrap};
use crate::{digest, random_bytes, KeySpec};

/// The tests, in the order they run.
pub const SELF_TESTS: [&str; 17] = [
    "sha-256",
    "sha-384",
    "sha-512",
    "blake3",
    "hmac-sha-256",
    "hmac-sha-384",
    "hmac-sha-512",
    "aes-gcm",
    "aes-256-key-wrap-pad",
    "aes-192-key-wrap-pad",
    "ecdsa-p256",
    "ed25519",
    "x25519-hkdf-sha-256",
    "x25519-blake3",
    "rsa-pkcs1v15-sha-256",
    "rsa-oaep-sha-256",
    "random",
];

/// A self-test that failed: which, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("power-on self-test {test} failed: {how}")]
pub struct SelfTestFailure {
    /// The test's name (one of [`SELF_TESTS`]).
    pub test: &'static str,
    /// What went wrong, in words (never key bytes).
    pub how: String,
}

/// Runs every self-test; the number passed when all did.
///
/// # Errors
/// The first test that failed.
pub fn run() -> std::result::Result<usize, SelfTestFailure> {
    run_corrupting(None)
}

/// [`run`], with the known answer of the test named `corrupt` changed in
/// one bit first: how a test shows that a wrong answer stops the node.
/// A node build for production never names one.
///
/// # Errors
/// The first test that failed.
pub fn run_corrupting(corrupt: Option<&str>) -> std::result::Result<usize, SelfTestFailure> {
    for test in SELF_TESTS {
        let mut answer = known_answer(test);
        if corrupt == Some(test) {
            if let Some(b) = answer.first_mut() {
                *b ^= 1;
            }
        }
        match check(test, &answer) {
            Ok(true) => {}
            Ok(false) => {
                return Err(SelfTestFailure {
                    test,
                    how: "the answer differs from the known one".into(),
                })
            }
            Err(e) => {
                return Err(SelfTestFailure {
                    test,
                    how: e.to_string(),
                })
            }
        }
    }
    Ok(SELF_TESTS.len())
}

const FIXED_MESSAGE: &[u8] = b"abc";
const HMAC_KEY: &[u8] = b"Jefe";
const HMAC_DATA: &[u8] = b"what do ya want for nothing?";
const DERIVE_CONTEXT: &[u8] = b"hsm-cluster self-test";
const OAEP_PLAINTEXT: &[u8] = b"hsm-cluster self-test";
const RSA_2048_PKCS8: &[u8] = include_bytes!("self_test/rsa-2048.p8");
const RSA_OAEP_CIPHERTEXT: &[u8] = include_bytes!("self_test/rsa-oaep.bin");
const P256_PKCS8: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b02010104205861f24f11028cb163ca415f3317b63c1038897855d5d92d13e32b89dcbef407a14403420004c7bd2f9633262b4ea16d0c918fc6c7ab95b9bef2ade2e0510dda5ff2429a86f72aef006a4db40379d332accf2b3dedbe98b2e2f4bd2c54b5a51994db94d6aae0";
const ED25519_PKCS8: &str =
    "302e020100300506032b6570042204209d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const X25519_PKCS8: &str =
    "302e020100300506032b656e0422042077076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const X25519_PEER_SPKI: &str =
    "302a300506032b656e032100de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
const KWP_192_KEK: &str = "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8";
const KWP_192_DATA: &str = "c37b7e6492584340bed12207808941155068f738";
const KWP_256_KEK: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KWP_256_DATA: &str = "00112233445566778899aabbccddeeff";

/// The known answer of `test`.
fn known_answer(test: &str) -> Vec<u8> {
    unhex(match test {
        "sha-256" => "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "sha-384" => "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
        "sha-512" => "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "blake3" => "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
        "hmac-sha-256" => "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        "hmac-sha-384" => "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
        "hmac-sha-512" => "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        // AES-256, zero key, zero IV, 16 zero bytes: ciphertext || tag.
        "aes-gcm" => "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919",
        "aes-256-key-wrap-pad" => "afc860015ffe2d75bedf43c444fe58f4ad9d89c4ec71e23b",
        "aes-192-key-wrap-pad" => "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
        "ecdsa-p256" => "304502200fd2fc4618d645ce9a4ff91825155d258d4193ff1d897ec342c1426bf3f69759022100824cf515f598defd37294ef0934659ad30c126aa952b74e76d6cdc353e1496ee",
        "ed25519" => "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        "x25519-hkdf-sha-256" => "abbf7f1c89e1e928422b7b156906b11e2e703924ae7f536816d54cb06e3a065f",
        // The RFC 7748 shared secret: BLAKE3's derivation is checked
        // against the blake3 crate's own over it.
        "x25519-blake3" => "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
        "rsa-pkcs1v15-sha-256" => "aa187bb1b9110dd4e51bb0cf5cb6219599705c933b240e00dd4c914e383cc6c24915100280c9f643370ee35338519aaa286f2e2dc39a1e49c6ae8a3c69928b05ad038f62113af7062bde4f25a506eac04a50aff1a89c96ebed94bbef2eb3050744dea45104c9968d064d4d3c75005c7e2cdfb22404232aca58d9a4ffea432fff3ffdb1bb8601920eb459e1f8ad693562d9a89bdcdb4bcbd7a58524010c8a3ad448f7bb51a394e00280ad9e4ce81762c9e9b4a015a88f789b930e6ed440d0222cb6fcda4e8403b850e8cd4494b4c3cd8d9fc5cf615fe76501bea489423901333528944427c5284dc5eb6140f4754ca36ab26c3523341c28510f888864337d4943",
        "rsa-oaep-sha-256" => return OAEP_PLAINTEXT.to_vec(),
        // Two draws of 32 bytes must differ: the answer is what they must
        // not be (all zero).
        _ => "0000000000000000000000000000000000000000000000000000000000000000",
    })
}

/// Whether `test` gives `answer`.
fn check(test: &str, answer: &[u8]) -> Result<bool> {
    let digest_of = |algorithm| Ok(digest(algorithm, FIXED_MESSAGE) == answer);
    let hmac = |mechanism| {
        let key = LoadedKey::parse(KeySpec::GenericSecret { bytes: 4 }, HMAC_KEY)?;
        Ok(key.sign(mechanism, HMAC_DATA)? == answer)
    };
    match test {
        "sha-256" => digest_of(DigestAlgorithm::Sha256),
        "sha-384" => digest_of(DigestAlgorithm::Sha384),
        "sha-512" => digest_of(DigestAlgorithm::Sha512),
        "blake3" => Ok(digest(DigestAlgorithm::Blake3, b"") == answer),
        "hmac-sha-256" => hmac(SignMechanism::HmacSha256),
        "hmac-sha-384" => hmac(SignMechanism::HmacSha384),
        "hmac-sha-512" => hmac(SignMechanism::HmacSha512),
        "aes-gcm" => {
            let key = LoadedKey::parse(KeySpec::Aes { bits: 256 }, &[0; 32])?;
            let sealed = key.aes_gcm_seal_with_iv([0; 12], &[0; 16], b"")?;
            if sealed.get(12..) != Some(answer) {
                return Ok(false);
            }
            let mut framed = vec![0; 12];
            framed.extend_from_slice(answer);
            match key.decrypt(EncryptMechanism::AesGcm, &framed, b"") {
                Ok(plain) => Ok(plain.as_slice() == [0; 16]),
                Err(CryptoError::DecryptFailed) => Ok(false),
                Err(e) => Err(e),
            }
        }
        "aes-256-key-wrap-pad" => key_wrap(KWP_256_KEK, KWP_256_DATA, answer),
        "aes-192-key-wrap-pad" => key_wrap(KWP_192_KEK, KWP_192_DATA, answer),
        "ecdsa-p256" => {
            let key = LoadedKey::parse(KeySpec::EcP256, &unhex(P256_PKCS8))?;
            let public = key
                .public_key()
                .ok_or(CryptoError::Internal("no public key"))?;
            let known = public.verify(SignMechanism::EcdsaSha256, FIXED_MESSAGE, answer)?;
            let fresh = key.sign(SignMechanism::EcdsaSha256, FIXED_MESSAGE)?;
            Ok(known && public.verify(SignMechanism::EcdsaSha256, FIXED_MESSAGE, &fresh)?)
        }
        "ed25519" => {
            let key = LoadedKey::parse(KeySpec::Ed25519, &unhex(ED25519_PKCS8))?;
            Ok(key.sign(SignMechanism::Ed25519, b"")? == answer)
        }
        "x25519-hkdf-sha-256" => Ok(x25519(DeriveMechanism::EcdhHkdfSha256)?.secret() == answer),
        "x25519-blake3" => {
            let mut input = (DERIVE_CONTEXT.len() as u64).to_le_bytes().to_vec();
            input.extend_from_slice(DERIVE_CONTEXT);
            input.extend_from_slice(answer);
            let expected = blake3::derive_key(BLAKE3_DERIVE_CONTEXT, &input);
            Ok(x25519(DeriveMechanism::EcdhBlake3)?.secret() == expected)
        }
        "rsa-pkcs1v15-sha-256" => {
            let key = LoadedKey::parse(KeySpec::Rsa { bits: 2048 }, RSA_2048_PKCS8)?;
            Ok(key.sign(SignMechanism::RsaPkcs1v15Sha256, FIXED_MESSAGE)? == answer)
        }
        "rsa-oaep-sha-256" => {
            let key = LoadedKey::parse(KeySpec::Rsa { bits: 2048 }, RSA_2048_PKCS8)?;
            match key.decrypt(EncryptMechanism::RsaOaepSha256, RSA_OAEP_CIPHERTEXT, b"") {
                Ok(plain) => Ok(plain.as_slice() == answer),
                Err(CryptoError::DecryptFailed) => Ok(false),
                Err(e) => Err(e),
            }
        }
        _ => {
            // The answer is what no draw may be (32 zero bytes).
            let (a, b) = (random_bytes(32)?, random_bytes(32)?);
            Ok(answer == [0; 32] && a != b && a != answer && b != answer)
        }
    }
}

fn key_wrap(kek: &str, data: &str, answer: &[u8]) -> Result<bool> {
    let (kek, data) = (unhex(kek), unhex(data));
    if kwp_wrap(&kek, &data)? != answer {
        return Ok(false);
    }
    match kwp_unwrap(&kek, answer) {
        Ok(plain) => Ok(plain.as_slice() == data),
        Err(CryptoError::UnwrapFailed) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The RFC 7748 §6.1 agreement, then `mechanism`'s derivation of 32 bytes.
fn x25519(mechanism: DeriveMechanism) -> Result<crate::KeyMaterial> {
    let key = LoadedKey::parse(KeySpec::X25519, &unhex(X25519_PKCS8))?;
    let peer = PublicKey::from_der(&unhex(X25519_PEER_SPKI))?;
    key.derive(
        mechanism,
        &peer,
        DERIVE_CONTEXT,
        KeySpec::GenericSecret { bytes: 32 },
    )
}

/// The bytes of the hex string `text` (constants of this module; a
/// malformed one gives an empty answer, which no test matches).
fn unhex(text: &str) -> Vec<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_self_test_passes() {
        assert_eq!(run(), Ok(SELF_TESTS.len()));
    }

    #[test]
    fn a_wrong_answer_fails_its_own_test_and_says_which() {
        for test in SELF_TESTS {
            let failure = run_corrupting(Some(test)).expect_err(test);
            assert_eq!(failure.test, test);
            assert!(failure.to_string().contains(test), "{failure}");
        }
    }

    #[test]
    fn no_answer_is_malformed() {
        for test in SELF_TESTS {
            assert!(!known_answer(test).is_empty(), "{test}");
        }
    }
}
