//! Power-on self-tests: every algorithm the node serves its clients is run
//! against a known answer before the node serves any of them, as FIPS
//! 140-3 asks of a cryptographic module (ISO/IEC 19790 §7.10:
//! pre-operational and cryptographic algorithm self-tests). A node whose
//! tests fail keeps its place in the cluster but serves no cryptography,
//! and says which test failed and how.
//!
//! The answers come from each algorithm's standard where it gives one
//! (FIPS 180-4's "abc", BLAKE3's empty input, RFC 4231 test case 2, the
//! GCM specification's test cases 2, 8 and 14, RFC 5649 §6, RFC 8032 test
//! 1, RFC 7748 §6.1) and otherwise from independent implementations
//! (OpenSSL through Python's `cryptography`, the `blake3` Python package)
//! over the fixed keys of this module and `self_test/`: RSA-2048, P-256,
//! P-384 and secp256k1 keys made for these tests only, public, guarding
//! nothing. Signatures with a random part (ECDSA, RSA-PSS) are tested by
//! verifying a known one, then making and verifying a new one; AES-GCM is
//! tested both ways with a fixed IV.
//!
//! Every key pair generated passes a pairwise consistency test before it is
//! returned (`LoadedKey::generate`; a failure is
//! [`CryptoError::PairwiseInconsistent`], after which a node serves no
//! cryptography); the last self-test generates pairs of each kind of test.
//!
//! Not tested here: the node's own cryptography that serves no client
//! operation (AES-GCM-SIV sealing of its store and files, Ed25519 event
//! signatures, X25519 sealing of the domain key, Argon2id).

use crate::error::{CryptoError, Result};
use crate::keys::PublicKey;
use crate::loaded::LoadedKey;
use crate::mechanism::{DeriveMechanism, DigestAlgorithm, EncryptMechanism, SignMechanism};
use crate::wrap::{kwp_unwrap, kwp_wrap};
use crate::{digest, random_bytes, KeySpec};

/// The tests, in the order they run.
pub const SELF_TESTS: [&str; 28] = [
    "sha-256",
    "sha-384",
    "sha-512",
    "blake3",
    "hmac-sha-256",
    "hmac-sha-384",
    "hmac-sha-512",
    "aes-128-gcm",
    "aes-192-gcm",
    "aes-256-gcm",
    "aes-256-key-wrap-pad",
    "aes-192-key-wrap-pad",
    "ecdsa-p256-sha-256",
    "ecdsa-p384-sha-384",
    "ecdsa-secp256k1-sha-256",
    "ecdsa-p256-prehashed",
    "ed25519",
    "x25519-hkdf-sha-256",
    "x25519-blake3",
    "ecdh-p256-hkdf-sha-256",
    "rsa-pkcs1v15-sha-256",
    "rsa-pkcs1v15-sha-384",
    "rsa-pkcs1v15-sha-512",
    "rsa-pkcs1v15-raw",
    "rsa-pss-sha-256",
    "rsa-oaep-sha-256",
    "random",
    "pairwise-consistency",
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
const P384_PKCS8: &str = "3081b6020100301006072a8648ce3d020106052b8104002204819e30819b020101043012eb13a3dd611c49b3a8dc0850addef37f1bce9c6b9962756f41eca669389a9213d4cb5ac29037b3c9feb02a27fc142ba16403620004cefa9ef02296b41953ffeab5bf424fd10a83394c8644651e81259007841780202f59356a8f3b721a37584844de3b2f083dffa519f5fc175c7602f0df25e07d4807a627a3d6faff149484928e2264b8ff58974173dccad97783954381bc5f47a3";
const SECP256K1_PKCS8: &str = "308184020100301006072a8648ce3d020106052b8104000a046d306b0201010420dbe09528f35dec2acdb11e6ac2a88165ead2e22c5e2594edf05ca3c5c269424aa14403420004434538f9224325ec3e205cf3fd01253779c81c0ad19ac8cdb940ba9bb319e684c0dc6fc60add339de514e72123ee84d968919583bf0d1be0d272285396522c2f";
const P256_PEER_SPKI: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200048f61559ffdb19d18f0db01e8eb70004e302edd24ad58403dc20ec3a1ef3b7bada682ad7a86b83837b3615238776b1fd2aa54b6c053913b961fad706802481c6c";
const ED25519_PKCS8: &str =
    "302e020100300506032b6570042204209d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const X25519_PKCS8: &str =
    "302e020100300506032b656e0422042077076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const X25519_PEER_SPKI: &str =
    "302a300506032b656e032100de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
const SHA256_DIGEST_INFO_PREFIX: &str = "3031300d060960864801650304020105000420";
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
        // Zero key, zero IV, 16 zero bytes: ciphertext || tag.
        "aes-128-gcm" => "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf",
        "aes-192-gcm" => "98e7247c07f0fe411c267e4384b0f6002ff58d80033927ab8ef4d4587514f0fb",
        "aes-256-gcm" => "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919",
        "aes-256-key-wrap-pad" => "afc860015ffe2d75bedf43c444fe58f4ad9d89c4ec71e23b",
        "aes-192-key-wrap-pad" => "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
        "ecdsa-p384-sha-384" => "3065023003d04cac7a5e2a4cdfca28ddd4d2550c6282de53d1a40b0ed19316fe56ee3c6fe4cc3e88ec000c16ea4861198c00146e023100a7dd43dd317eab430c38da8718dea2aba710995585023ea18313ac1d36457e6f0cdcac8575c2f26afaefb8dd8284bcd7",
        "ecdsa-secp256k1-sha-256" => "3045022064294a90013287e6a3b88e8ababc69900ba8d006d4877a94c27c03869b411ff802210080c444e84e3093bd51c9865e96c7e3e4428eb365ee15f5cba1adce2df47ef2de",
        "ecdsa-p256-sha-256" | "ecdsa-p256-prehashed" => "304502200fd2fc4618d645ce9a4ff91825155d258d4193ff1d897ec342c1426bf3f69759022100824cf515f598defd37294ef0934659ad30c126aa952b74e76d6cdc353e1496ee",
        "ed25519" => "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        "x25519-hkdf-sha-256" => "abbf7f1c89e1e928422b7b156906b11e2e703924ae7f536816d54cb06e3a065f",
        "x25519-blake3" => "e1ade3aa1a9ca1cae4867864df7e49282a9058fdec8261e41d3363c1ec2f1097",
        "ecdh-p256-hkdf-sha-256" => "87741ccffa7bfff8a788859d8854566c453c4d00fce7dcb9467dff301336d5ba",
        "rsa-pkcs1v15-sha-384" => "6a13e8c1bba55c7a374350c2e87f1839a0292c7f3818fc84e541db1410beb3cde2384579b053679b58af84631344c7f39a6e8b4794abfcda8d4b488f85b4c7a4ecbbe471b4868be3c394d76c3bdd4609a1107d616a8181a67837cb86a082217d7381e4b13ea934cad2e80ec25feb6685be82e3001e4efe67a73cd09dbef692d0b4b5938a1241d5dab7f79c040eaefd42db5a5bca86d4216fbb174bc65bd13d292533f094a9e4874328c30952ea1211d4a60b1164d6ae05eb5778decf086113017c132ac2822bf3c1a0f3e7e5ea8e5d70f8752188f62ba665d82e12e40dcfa32bab695b84330abc6a8cc74c827e04fd84ea7c552e5ce3505bbd2aa5d8c747c2cc",
        "rsa-pkcs1v15-sha-512" => "619cb6deba9c3b6df00311bebb9682efdcc12b886e8b13042528879e1383e8913d2ac5b54abcf1c9ba9cbf61e87df676266d8049df9256af6c451a287bd0d549028208cb2d9ef90c22884e06d08d8e0c58d4de05dc8a8ec50516c50eb55152053213e8b5c9c26c5db2e4f66fbd1ab60b4c771055ed437e3f629bdf933a19b6f200eb73dd526342a64c51dd159c2aa73727bf6239533a6551b0571af26f52f728c84a5812ef942fec0f3ad131285f6552ac0ab93ea1229d15fe3f3dac7ace46603007ca231352c3abdead900cc7ccca832e9afd438cbd9d41cd9c29fface91da22d38149dd0d04bc1ec042458a781ef6814e68f4d02482794874b76bc7f1045e7",
        "rsa-pss-sha-256" => "11de7da1f0328d53cc2562a314183ec827420919818cf664c2035316eb6de82025f4312136da6dc81e20933961b163d3a884fcf098b07950cc1597cc5a230c6a277840e3b37ad4cec838d2a1fdcd4c5130a9879b760469ba71bfd1100b07ef66b77f699cd051c333107dd5d33e732d3ff26b4f5c9a64a1a073ef1a7bc0661c8122905ca890ac3303d62ff5e75b11f959f407fa513b89adef19642c162815f9f105a97a37d4c7509c3e6e858f53e0e9b28bd9f14c095f3a93442dc2ff7d13900d23da98dc7a4cd2336aeb213de93b46437fafb6da44bad6baf9cc8deedcbb36cdaa51992a192516890b0b7664eec4fe805c13c8abfb32397c94c2f2fb0c3b8fc7",
        // A key pair made now must sign what its public half verifies: the
        // answer is the message.
        "pairwise-consistency" => return FIXED_MESSAGE.to_vec(),
        "rsa-pkcs1v15-sha-256" | "rsa-pkcs1v15-raw" => "aa187bb1b9110dd4e51bb0cf5cb6219599705c933b240e00dd4c914e383cc6c24915100280c9f643370ee35338519aaa286f2e2dc39a1e49c6ae8a3c69928b05ad038f62113af7062bde4f25a506eac04a50aff1a89c96ebed94bbef2eb3050744dea45104c9968d064d4d3c75005c7e2cdfb22404232aca58d9a4ffea432fff3ffdb1bb8601920eb459e1f8ad693562d9a89bdcdb4bcbd7a58524010c8a3ad448f7bb51a394e00280ad9e4ce81762c9e9b4a015a88f789b930e6ed440d0222cb6fcda4e8403b850e8cd4494b4c3cd8d9fc5cf615fe76501bea489423901333528944427c5284dc5eb6140f4754ca36ab26c3523341c28510f888864337d4943",
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
        "aes-128-gcm" => aes_gcm(16, answer),
        "aes-192-gcm" => aes_gcm(24, answer),
        "aes-256-gcm" => aes_gcm(32, answer),
        "aes-256-key-wrap-pad" => key_wrap(KWP_256_KEK, KWP_256_DATA, answer),
        "aes-192-key-wrap-pad" => key_wrap(KWP_192_KEK, KWP_192_DATA, answer),
        "ecdsa-p256-sha-256" => ecdsa(
            KeySpec::EcP256,
            P256_PKCS8,
            SignMechanism::EcdsaSha256,
            answer,
        ),
        "ecdsa-p384-sha-384" => ecdsa(
            KeySpec::EcP384,
            P384_PKCS8,
            SignMechanism::EcdsaSha384,
            answer,
        ),
        "ecdsa-secp256k1-sha-256" => ecdsa(
            KeySpec::EcSecp256k1,
            SECP256K1_PKCS8,
            SignMechanism::EcdsaSha256,
            answer,
        ),
        "ecdsa-p256-prehashed" => {
            // The known signature of "abc" is one of its SHA-256 hash.
            let key = LoadedKey::parse(KeySpec::EcP256, &unhex(P256_PKCS8))?;
            let public = key
                .public_key()
                .ok_or(CryptoError::Internal("no public key"))?;
            let hash = digest(DigestAlgorithm::Sha256, FIXED_MESSAGE);
            let known = public.verify(SignMechanism::EcdsaPrehashed, &hash, answer)?;
            let fresh = key.sign(SignMechanism::EcdsaPrehashed, &hash)?;
            Ok(known && public.verify(SignMechanism::EcdsaSha256, FIXED_MESSAGE, &fresh)?)
        }
        "ed25519" => {
            let key = LoadedKey::parse(KeySpec::Ed25519, &unhex(ED25519_PKCS8))?;
            Ok(key.sign(SignMechanism::Ed25519, b"")? == answer)
        }
        "x25519-hkdf-sha-256" => Ok(x25519(DeriveMechanism::EcdhHkdfSha256)?.secret() == answer),
        "x25519-blake3" => Ok(x25519(DeriveMechanism::EcdhBlake3)?.secret() == answer),
        "ecdh-p256-hkdf-sha-256" => {
            let key = LoadedKey::parse(KeySpec::EcP256, &unhex(P256_PKCS8))?;
            let peer = PublicKey::from_der(&unhex(P256_PEER_SPKI))?;
            let derived = key.derive(
                DeriveMechanism::EcdhHkdfSha256,
                &peer,
                DERIVE_CONTEXT,
                KeySpec::GenericSecret { bytes: 32 },
            )?;
            Ok(derived.secret() == answer)
        }
        "rsa-pkcs1v15-sha-256" => rsa_sign(SignMechanism::RsaPkcs1v15Sha256, answer),
        "rsa-pkcs1v15-sha-384" => rsa_sign(SignMechanism::RsaPkcs1v15Sha384, answer),
        "rsa-pkcs1v15-sha-512" => rsa_sign(SignMechanism::RsaPkcs1v15Sha512, answer),
        "rsa-pkcs1v15-raw" => {
            // The DigestInfo of SHA-256("abc") signs as "abc" does.
            let key = LoadedKey::parse(KeySpec::Rsa { bits: 2048 }, RSA_2048_PKCS8)?;
            let mut info = unhex(SHA256_DIGEST_INFO_PREFIX);
            info.extend(digest(DigestAlgorithm::Sha256, FIXED_MESSAGE));
            Ok(key.sign(SignMechanism::RsaPkcs1v15Raw, &info)? == answer)
        }
        "rsa-pss-sha-256" => {
            // Random salt: a known signature verifies, and a new one.
            let key = LoadedKey::parse(KeySpec::Rsa { bits: 2048 }, RSA_2048_PKCS8)?;
            let public = key
                .public_key()
                .ok_or(CryptoError::Internal("no public key"))?;
            let known = public.verify(SignMechanism::RsaPssSha256, FIXED_MESSAGE, answer)?;
            let fresh = key.sign(SignMechanism::RsaPssSha256, FIXED_MESSAGE)?;
            Ok(known && public.verify(SignMechanism::RsaPssSha256, FIXED_MESSAGE, &fresh)?)
        }
        "rsa-oaep-sha-256" => {
            let key = LoadedKey::parse(KeySpec::Rsa { bits: 2048 }, RSA_2048_PKCS8)?;
            match key.decrypt(EncryptMechanism::RsaOaepSha256, RSA_OAEP_CIPHERTEXT, b"") {
                Ok(plain) => Ok(plain.as_slice() == answer),
                Err(CryptoError::DecryptFailed) => Ok(false),
                Err(e) => Err(e),
            }
        }
        "pairwise-consistency" => {
            // Generation itself runs the test on each new pair.
            for spec in [KeySpec::EcP256, KeySpec::Ed25519, KeySpec::X25519] {
                LoadedKey::generate(spec)?;
            }
            Ok(answer == FIXED_MESSAGE)
        }
        _ => {
            // The answer is what no draw may be (32 zero bytes).
            let (a, b) = (random_bytes(32)?, random_bytes(32)?);
            Ok(answer == [0; 32] && a != b && a != answer && b != answer)
        }
    }
}

/// AES-GCM with a zero key of `len` bytes, a zero IV and 16 zero bytes,
/// both ways.
fn aes_gcm(len: usize, answer: &[u8]) -> Result<bool> {
    let bits = u16::try_from(len * 8).map_err(|_| CryptoError::Internal("aes key length"))?;
    let key = LoadedKey::parse(KeySpec::Aes { bits }, &vec![0; len])?;
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

/// ECDSA (random): the known signature `answer` verifies under the key in
/// `pkcs8`, and so does a new one.
fn ecdsa(spec: KeySpec, pkcs8: &str, mechanism: SignMechanism, answer: &[u8]) -> Result<bool> {
    let key = LoadedKey::parse(spec, &unhex(pkcs8))?;
    let public = key
        .public_key()
        .ok_or(CryptoError::Internal("no public key"))?;
    let known = public.verify(mechanism, FIXED_MESSAGE, answer)?;
    let fresh = key.sign(mechanism, FIXED_MESSAGE)?;
    Ok(known && public.verify(mechanism, FIXED_MESSAGE, &fresh)?)
}

/// RSA PKCS#1 v1.5 (deterministic) with the fixed RSA-2048 key.
fn rsa_sign(mechanism: SignMechanism, answer: &[u8]) -> Result<bool> {
    let key = LoadedKey::parse(KeySpec::Rsa { bits: 2048 }, RSA_2048_PKCS8)?;
    Ok(key.sign(mechanism, FIXED_MESSAGE)? == answer)
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
    fn a_key_pair_that_fails_its_pairwise_test_is_not_returned() {
        for spec in [
            KeySpec::EcP256,
            KeySpec::Ed25519,
            KeySpec::X25519,
            KeySpec::Rsa { bits: 2048 },
        ] {
            assert!(
                LoadedKey::generate_corrupting(spec, false).is_ok(),
                "{spec}"
            );
            assert_eq!(
                LoadedKey::generate_corrupting(spec, true).err(),
                Some(CryptoError::PairwiseInconsistent(spec)),
                "{spec}"
            );
        }
        // A symmetric key has no pair to test.
        assert!(LoadedKey::generate_corrupting(KeySpec::Aes { bits: 256 }, true).is_ok());
    }

    #[test]
    fn no_answer_is_malformed() {
        for test in SELF_TESTS {
            assert!(!known_answer(test).is_empty(), "{test}");
        }
    }
}
