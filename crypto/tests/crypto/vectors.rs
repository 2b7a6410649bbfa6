//! Published known-answer tests: GCM spec test cases, RFC 4231 (HMAC),
//! RFC 5649 (key wrap with padding), FIPS 180 and BLAKE3 digests.

use crate::common::unhex;
use hsm_crypto::*;

const GCM_P: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const GCM_A: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const GCM_IV: &str = "cafebabefacedbaddecaf888";

/// Test cases 4, 10 and 16 of McGrew and Viega's GCM specification (the
/// AES-128, -192 and -256 cases with associated data and a 96-bit IV).
pub const GCM_CASES: [(&str, &str, &str); 3] = [
    (
        "feffe9928665731c6d6a8f9467308308",
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        "5bc94fbc3221a5db94fae95ae7121a47",
    ),
    (
        "feffe9928665731c6d6a8f9467308308feffe9928665731c",
        "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710",
        "2519498e80f1478f37ba55bd6d27618c",
    ),
    (
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        "76fc6ece0f4e1768cddf8853bb2d551b",
    ),
];

#[test]
fn aes_gcm_decrypts_the_gcm_spec_vectors() {
    for (key_hex, ct_hex, tag_hex) in GCM_CASES {
        let key_bytes = unhex(key_hex);
        let spec = KeySpec::Aes {
            bits: (key_bytes.len() * 8) as u16,
        };
        let k = LoadedKey::load(&import(spec, &key_bytes).expect("import")).expect("load");
        let input = [unhex(GCM_IV), unhex(ct_hex), unhex(tag_hex)].concat();
        let plain = k
            .decrypt(EncryptMechanism::AesGcm, &input, &unhex(GCM_A))
            .expect("decrypt");
        assert_eq!(plain.as_slice(), unhex(GCM_P).as_slice(), "{spec:?}");
        let mut bad_tag = input.clone();
        let last = bad_tag.len() - 1;
        bad_tag[last] ^= 1;
        assert!(k
            .decrypt(EncryptMechanism::AesGcm, &bad_tag, &unhex(GCM_A))
            .is_err());
    }
}

#[test]
fn hmac_matches_rfc_4231() {
    // (key, data, sha256, sha384, sha512): test cases 1, 2 and 6.
    type Case = (
        Vec<u8>,
        &'static [u8],
        &'static str,
        &'static str,
        &'static str,
    );
    let cases: [Case; 3] = [
        (
            vec![0x0b; 20],
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
            "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
        ),
        (
            b"Jefe".to_vec(),
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        ),
        (
            vec![0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952",
            "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
        ),
    ];
    for (key_bytes, data, s256, s384, s512) in cases {
        let spec = KeySpec::GenericSecret {
            bytes: key_bytes.len() as u16,
        };
        let k = LoadedKey::parse(spec, &key_bytes).expect("parse");
        for (m, expected) in [
            (SignMechanism::HmacSha256, s256),
            (SignMechanism::HmacSha384, s384),
            (SignMechanism::HmacSha512, s512),
        ] {
            let tag = k.sign(m, data).expect("hmac");
            assert_eq!(tag, unhex(expected), "{m}");
            assert!(k.verify(m, data, &unhex(expected)).expect("verify"));
            let mut bad = unhex(expected);
            bad[0] ^= 1;
            assert!(!k.verify(m, data, &bad).expect("verify"));
            assert!(
                !k.verify(m, data, &unhex(expected)[..16]).expect("verify"),
                "truncated"
            );
        }
    }
}

#[test]
fn digests_match_published_values() {
    let cases = [
        (DigestAlgorithm::Sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            DigestAlgorithm::Sha384,
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            DigestAlgorithm::Sha512,
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
    ];
    for (alg, expected) in cases {
        assert_eq!(digest(alg, b"abc"), unhex(expected), "{alg}");
    }
    assert_eq!(
        digest(DigestAlgorithm::Blake3, b""),
        unhex("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")
    );
}
