//! Round trips of every key type and operation through this crate alone.

use crate::common::{carried, key, sign_input, RSA_2048, SPECS};
use hsm_crypto::*;

/// Which sign mechanisms each key type accepts, written out independently
/// of the crate's own dispatch.
pub fn sign_applies(spec: KeySpec, mechanism: SignMechanism) -> bool {
    use SignMechanism as M;
    match spec {
        KeySpec::Rsa { .. } => matches!(
            mechanism,
            M::RsaPkcs1v15Sha256
                | M::RsaPkcs1v15Sha384
                | M::RsaPkcs1v15Sha512
                | M::RsaPssSha256
                | M::RsaPssSha384
                | M::RsaPssSha512
                | M::RsaPkcs1v15Raw
                | M::RsaPssSha256Prehashed
                | M::RsaPssSha384Prehashed
                | M::RsaPssSha512Prehashed
        ),
        KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::EcSecp256k1 => {
            matches!(
                mechanism,
                M::EcdsaSha256 | M::EcdsaSha384 | M::EcdsaPrehashed
            )
        }
        KeySpec::Ed25519 => mechanism == M::Ed25519,
        KeySpec::GenericSecret { .. } => {
            matches!(mechanism, M::HmacSha256 | M::HmacSha384 | M::HmacSha512)
        }
        KeySpec::Aes { .. } | KeySpec::X25519 => false,
    }
}

pub fn encrypt_applies(spec: KeySpec, mechanism: EncryptMechanism) -> bool {
    match spec {
        KeySpec::Aes { .. } => mechanism == EncryptMechanism::AesGcm,
        KeySpec::Rsa { .. } => mechanism == EncryptMechanism::RsaOaepSha256,
        _ => false,
    }
}

pub fn wrap_applies(spec: KeySpec, mechanism: WrapMechanism) -> bool {
    match spec {
        KeySpec::Aes { .. } => {
            matches!(
                mechanism,
                WrapMechanism::AesKeyWrapPad | WrapMechanism::AesGcm
            )
        }
        KeySpec::Rsa { .. } => mechanism == WrapMechanism::RsaOaepSha256,
        _ => false,
    }
}

pub fn derive_applies(spec: KeySpec) -> bool {
    matches!(spec, KeySpec::X25519 | KeySpec::EcP256 | KeySpec::EcP384)
}

#[test]
fn generate_every_spec_gives_consistent_material() {
    for spec in SPECS {
        let loaded = key(spec);
        let material = loaded.material();
        assert_eq!(material.spec(), spec);
        match spec {
            KeySpec::Aes { bits } => assert_eq!(material.secret().len() * 8, usize::from(bits)),
            KeySpec::GenericSecret { bytes } => {
                assert_eq!(material.secret().len(), usize::from(bytes))
            }
            _ => assert_eq!(material.secret().first(), Some(&0x30), "{spec:?} is DER"),
        }
        assert_eq!(
            material.public_key().is_some(),
            spec.is_asymmetric(),
            "{spec:?}"
        );
        if let Some(public) = material.public_key() {
            assert_eq!(public.spec(), spec);
            let reparsed = PublicKey::from_der(public.der()).expect("public der parses");
            assert_eq!(&reparsed, public);
            let pem = public.to_pem();
            assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
            assert!(pem.ends_with("-----END PUBLIC KEY-----\n"), "{pem}");
            assert!(pem.lines().all(|l| l.len() <= 64), "{pem}");
            assert_eq!(&PublicKey::from_pem(&pem).expect("pem parses"), public);
        }
        // Import of the canonical encoding is the identity.
        let imported = import(spec, material.secret()).expect("reimport");
        assert_eq!(&imported, material, "{spec:?}");
        assert_eq!(imported.secret(), material.secret(), "{spec:?}");
        let reloaded = LoadedKey::load(material).expect("load");
        assert_eq!(reloaded.material(), material);
    }
}

#[test]
fn fresh_keys_differ() {
    for spec in SPECS
        .into_iter()
        .filter(|s| !matches!(s, KeySpec::Rsa { .. }))
    {
        let a = generate(spec).expect("generate");
        let b = generate(spec).expect("generate");
        assert_ne!(a.secret(), b.secret(), "{spec:?}");
    }
}

#[test]
fn generic_secret_sizes_at_the_limits() {
    for bytes in [1u16, 800] {
        let spec = KeySpec::GenericSecret { bytes };
        let k = LoadedKey::generate(spec).expect("generate");
        let tag = k.sign(SignMechanism::HmacSha512, b"m").expect("hmac");
        assert!(k
            .verify(SignMechanism::HmacSha512, b"m", &tag)
            .expect("verify"));
    }
    for spec in [
        KeySpec::GenericSecret { bytes: 0 },
        KeySpec::GenericSecret { bytes: 801 },
        KeySpec::Aes { bits: 64 },
        KeySpec::Rsa { bits: 1024 },
        KeySpec::Rsa { bits: 8192 },
    ] {
        assert_eq!(
            generate(spec).unwrap_err(),
            CryptoError::UnsupportedKeySpec(spec)
        );
    }
}

#[test]
fn sign_and_verify_every_applicable_mechanism() {
    let text = b"the quick brown fox jumps over the lazy dog";
    let mut checked = 0;
    for spec in SPECS {
        let k = key(spec);
        for &mechanism in SignMechanism::ALL {
            if !sign_applies(spec, mechanism) {
                continue;
            }
            checked += 1;
            let message = &sign_input(mechanism, text)[..];
            let other = &sign_input(mechanism, b"another message")[..];
            let sig = k.sign(mechanism, message).expect("sign");
            assert!(
                k.verify(mechanism, message, &sig).expect("verify"),
                "{spec:?} {mechanism}"
            );
            assert!(!k.verify(mechanism, other, &sig).expect("verify"));
            let mut bad = sig.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x01;
            assert!(
                !k.verify(mechanism, message, &bad).expect("verify"),
                "{spec:?} {mechanism}"
            );
            assert!(!k.verify(mechanism, message, &sig[..last]).expect("verify"));
            assert!(!k.verify(mechanism, message, b"").expect("verify"));
            if let Some(public) = k.public_key() {
                assert!(public.verify(mechanism, message, &sig).expect("verify"));
                assert!(!public.verify(mechanism, message, &bad).expect("verify"));
            }
            let again = k.sign(mechanism, message).expect("sign");
            let randomised = matches!(
                mechanism,
                SignMechanism::RsaPssSha256
                    | SignMechanism::RsaPssSha384
                    | SignMechanism::RsaPssSha512
                    | SignMechanism::EcdsaSha256
                    | SignMechanism::EcdsaSha384
                    | SignMechanism::EcdsaPrehashed
                    | SignMechanism::RsaPssSha256Prehashed
                    | SignMechanism::RsaPssSha384Prehashed
                    | SignMechanism::RsaPssSha512Prehashed
            );
            assert_eq!(sig != again, randomised, "{spec:?} {mechanism}");
            if let KeySpec::Rsa { bits } = spec {
                assert_eq!(sig.len() * 8, usize::from(bits));
            }
        }
    }
    // 10 RSA mechanisms x 3 sizes, 3 ECDSA x 3 curves, Ed25519, 3 HMAC.
    assert_eq!(checked, 30 + 9 + 1 + 3);
}

/// A signature over a caller's hash is one over the message hashed: each
/// verifies as the other.
#[test]
fn signatures_over_a_hash_are_signatures_over_the_message() {
    use SignMechanism as M;
    let text = b"signed here, hashed elsewhere";
    let pairs = [
        (M::RsaPkcs1v15Raw, M::RsaPkcs1v15Sha256),
        (M::RsaPssSha256Prehashed, M::RsaPssSha256),
        (M::RsaPssSha384Prehashed, M::RsaPssSha384),
        (M::RsaPssSha512Prehashed, M::RsaPssSha512),
        (M::EcdsaPrehashed, M::EcdsaSha256),
    ];
    let mut checked = 0;
    for spec in SPECS {
        let k = key(spec);
        for (hashed, whole) in pairs {
            if !sign_applies(spec, hashed) {
                continue;
            }
            let input = sign_input(hashed, text);
            let sig = k.sign(hashed, &input).expect("sign hash");
            assert!(
                k.verify(whole, text, &sig).expect("verify"),
                "{spec:?} {hashed}"
            );
            let sig = k.sign(whole, text).expect("sign message");
            assert!(
                k.verify(hashed, &input, &sig).expect("verify"),
                "{spec:?} {whole}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 4 * 3 + 3);
    // PKCS#1 v1.5 is deterministic: the two forms give the same bytes.
    let k = key(RSA_2048);
    assert_eq!(
        k.sign(M::RsaPkcs1v15Raw, &sign_input(M::RsaPkcs1v15Raw, text))
            .expect("sign"),
        k.sign(M::RsaPkcs1v15Sha256, text).expect("sign")
    );
}

/// A hash of the wrong length, or a DigestInfo of another form, is a clean
/// error that says what was expected.
#[test]
fn a_caller_hash_of_the_wrong_form_is_refused() {
    use SignMechanism as M;
    let rsa = key(RSA_2048);
    let ec = key(KeySpec::EcP256);
    for (k, mechanism, input) in [
        (rsa, M::RsaPssSha256Prehashed, vec![1u8; 31]),
        (rsa, M::RsaPssSha384Prehashed, vec![1u8; 32]),
        (rsa, M::RsaPssSha512Prehashed, vec![]),
        (ec, M::EcdsaPrehashed, vec![1u8; 19]),
        (ec, M::EcdsaPrehashed, vec![1u8; 65]),
    ] {
        let err = k.sign(mechanism, &input).unwrap_err();
        assert!(
            matches!(err, CryptoError::BadLength { what: "hash", .. }),
            "{mechanism}: {err}"
        );
        let err = k.verify(mechanism, &input, &[0u8; 64]).unwrap_err();
        assert!(
            matches!(err, CryptoError::BadLength { what: "hash", .. }),
            "{mechanism}: {err}"
        );
    }
    // Raw PKCS#1 v1.5 takes at most the modulus length less 11 bytes.
    let err = rsa.sign(M::RsaPkcs1v15Raw, &[1u8; 256 - 10]).unwrap_err();
    assert!(matches!(err, CryptoError::BadLength { .. }), "{err}");
    assert!(rsa.sign(M::RsaPkcs1v15Raw, &[1u8; 256 - 11]).is_ok());
}

/// Raw PKCS#1 v1.5 signs any bytes the caller brings (a SHA-1 DigestInfo,
/// a SHA-2 one in another form, plain data), deterministically, and
/// verifies them; another input or a changed signature does not verify.
#[test]
fn raw_pkcs1_signs_any_bytes_that_fit() {
    use SignMechanism as M;
    let rsa = key(RSA_2048);
    let public = rsa.public_key().expect("public");
    let mut sha1_info = vec![
        0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
    ];
    sha1_info.extend([0xab; 20]);
    let sha256_info = sign_input(M::RsaPkcs1v15Raw, b"m");
    for input in [
        sha1_info,
        sha256_info[..sha256_info.len() - 1].to_vec(),
        b"any data at all".to_vec(),
        Vec::new(),
    ] {
        let sig = rsa.sign(M::RsaPkcs1v15Raw, &input).expect("sign");
        assert_eq!(sig.len(), 256);
        assert_eq!(sig, rsa.sign(M::RsaPkcs1v15Raw, &input).expect("sign"));
        assert!(public
            .verify(M::RsaPkcs1v15Raw, &input, &sig)
            .expect("verify"));
        assert!(rsa.verify(M::RsaPkcs1v15Raw, &input, &sig).expect("verify"));
        assert!(!public
            .verify(M::RsaPkcs1v15Raw, b"other", &sig)
            .expect("verify"));
        let mut bad = sig.clone();
        bad[100] ^= 1;
        assert!(!public
            .verify(M::RsaPkcs1v15Raw, &input, &bad)
            .expect("verify"));
        assert!(!public
            .verify(M::RsaPkcs1v15Raw, &input, &sig[1..])
            .expect("verify"));
    }
}

#[test]
fn a_signature_does_not_verify_under_another_key() {
    let a = generate(KeySpec::EcP256).expect("generate");
    let b = LoadedKey::generate(KeySpec::EcP256).expect("generate");
    let sig = b.sign(SignMechanism::EcdsaSha256, b"m").expect("sign");
    let a_public = a.public_key().expect("public");
    assert!(!a_public
        .verify(SignMechanism::EcdsaSha256, b"m", &sig)
        .expect("verify"));
    // And an ECDSA-SHA-256 signature is not one for SHA-384.
    assert!(!b
        .verify(SignMechanism::EcdsaSha384, b"m", &sig)
        .expect("verify"));
}

#[test]
fn aes_gcm_round_trips_with_aad() {
    for bits in [128u16, 192, 256] {
        let k = key(KeySpec::Aes { bits });
        for len in [0usize, 1, 15, 16, 17, 1000] {
            let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let aad = b"header";
            let out = k
                .encrypt(EncryptMechanism::AesGcm, &plaintext, aad)
                .expect("encrypt");
            assert_eq!(out.len(), AES_GCM_IV_LEN + len + AES_GCM_TAG_LEN);
            let back = k
                .decrypt(EncryptMechanism::AesGcm, &out, aad)
                .expect("decrypt");
            assert_eq!(back.as_slice(), plaintext.as_slice());
            let again = k
                .encrypt(EncryptMechanism::AesGcm, &plaintext, aad)
                .expect("encrypt");
            assert_ne!(
                out[..AES_GCM_IV_LEN],
                again[..AES_GCM_IV_LEN],
                "fresh iv each time"
            );
        }
    }
}

#[test]
fn rsa_oaep_round_trips_up_to_the_limit() {
    for bits in [2048u16, 3072, 4096] {
        let k = key(KeySpec::Rsa { bits });
        let max = usize::from(bits) / 8 - 66;
        for len in [0usize, 1, 32, max] {
            let plaintext = vec![0x5a; len];
            for label in [&b""[..], b"a label"] {
                let public = k.public_key().expect("public");
                let ct = public
                    .encrypt(EncryptMechanism::RsaOaepSha256, &plaintext, label)
                    .expect("encrypt");
                assert_eq!(ct.len() * 8, usize::from(bits));
                let back = k
                    .decrypt(EncryptMechanism::RsaOaepSha256, &ct, label)
                    .expect("decrypt");
                assert_eq!(back.as_slice(), plaintext.as_slice());
                let via_private = k
                    .encrypt(EncryptMechanism::RsaOaepSha256, &plaintext, label)
                    .expect("encrypt");
                assert_ne!(via_private, ct, "oaep is randomised");
            }
        }
        let err = k
            .encrypt(EncryptMechanism::RsaOaepSha256, &vec![0; max + 1], b"")
            .unwrap_err();
        assert!(
            matches!(err, CryptoError::BadLength { len, .. } if len == max + 1),
            "{err}"
        );
    }
}

#[test]
fn wrap_and_unwrap_every_key_under_every_wrapping_key() {
    let mut checked = 0;
    for wrapping_spec in SPECS {
        for &mechanism in WrapMechanism::ALL {
            if !wrap_applies(wrapping_spec, mechanism) {
                continue;
            }
            let wrapping = key(wrapping_spec);
            for target_spec in SPECS {
                let target = key(target_spec).material();
                let fits_oaep = match wrapping_spec {
                    KeySpec::Rsa { bits } => target.secret().len() <= usize::from(bits) / 8 - 66,
                    _ => true,
                };
                let result = wrapping.wrap_key(mechanism, &carried(target), target);
                if mechanism == WrapMechanism::RsaOaepSha256 && !fits_oaep {
                    assert!(
                        matches!(result, Err(CryptoError::BadLength { .. })),
                        "{result:?}"
                    );
                    continue;
                }
                let wrapped = result.expect("wrap");
                assert_ne!(wrapped.as_slice(), target.secret());
                let (back_carried, back) =
                    wrapping.unwrap_key(mechanism, &wrapped).expect("unwrap");
                assert_eq!(
                    &back, target,
                    "{wrapping_spec:?} {mechanism} {target_spec:?}"
                );
                assert_eq!(back_carried, carried(target));
                checked += 1;
            }
        }
    }
    // 3 AES sizes x 2 mechanisms x 12 targets, and under each RSA size
    // everything but the RSA keys (EC PKCS#8 is at most 185 bytes, which
    // fits RSA-2048's 190).
    assert_eq!(checked, 72 + 3 * 9);
}

#[test]
fn rsa_public_key_wraps_for_its_private_key() {
    let k = key(RSA_2048);
    let target = generate(KeySpec::Aes { bits: 256 }).expect("generate");
    let public = k.public_key().expect("public");
    let wrapped = public
        .wrap_key(WrapMechanism::RsaOaepSha256, &carried(&target), &target)
        .expect("wrap");
    let (_, back) = k
        .unwrap_key(WrapMechanism::RsaOaepSha256, &wrapped)
        .expect("unwrap");
    assert_eq!(back, target);
}

#[test]
fn key_wrap_with_padding_is_deterministic_and_sized() {
    let kek = key(KeySpec::Aes { bits: 192 });
    for len in [1u16, 7, 8, 9, 16, 800] {
        let target = generate(KeySpec::GenericSecret { bytes: len }).expect("generate");
        let a = kek
            .wrap_key(WrapMechanism::AesKeyWrapPad, &carried(&target), &target)
            .expect("wrap");
        let b = kek
            .wrap_key(WrapMechanism::AesKeyWrapPad, &carried(&target), &target)
            .expect("wrap");
        assert_eq!(a, b);
        // The header, then RFC 5649 over a 32-byte digest and the material.
        let body = WrappedKey::parse(&a).expect("parse").body.len();
        assert_eq!(body, (usize::from(len) + 32).div_ceil(8) * 8 + 8);
    }
}

#[test]
fn ecdh_both_sides_derive_the_same_key() {
    for spec in [KeySpec::X25519, KeySpec::EcP256, KeySpec::EcP384] {
        let alice = LoadedKey::generate(spec).expect("generate");
        let bob = LoadedKey::generate(spec).expect("generate");
        let alice_pub = alice.public_key().expect("public");
        let bob_pub = bob.public_key().expect("public");
        for &mechanism in DeriveMechanism::ALL {
            if mechanism == DeriveMechanism::EcdhRaw {
                continue; // No context, and no longer than the secret: below.
            }
            for out in [
                KeySpec::Aes { bits: 128 },
                KeySpec::Aes { bits: 256 },
                KeySpec::GenericSecret { bytes: 64 },
            ] {
                let a = alice
                    .derive(mechanism, bob_pub, b"ctx", out)
                    .expect("derive");
                let b = bob
                    .derive(mechanism, alice_pub, b"ctx", out)
                    .expect("derive");
                assert_eq!(a, b, "{spec:?} {mechanism}");
                assert_eq!(a.spec(), out);
                let other = alice
                    .derive(mechanism, bob_pub, b"ctx2", out)
                    .expect("derive");
                assert_ne!(a, other, "context is bound");
                let empty = alice.derive(mechanism, bob_pub, b"", out).expect("derive");
                assert_ne!(a, empty);
            }
        }
        // The raw secret: the same both ways, its leftmost bytes, no
        // context, no longer than the secret.
        let secret_len = if spec == KeySpec::EcP384 { 48 } else { 32 };
        let raw = |k: &LoadedKey, peer: &PublicKey, bytes: u16| {
            k.derive(
                DeriveMechanism::EcdhRaw,
                peer,
                b"",
                KeySpec::GenericSecret { bytes },
            )
        };
        let whole = raw(&alice, bob_pub, secret_len).expect("raw");
        assert_eq!(whole, raw(&bob, alice_pub, secret_len).expect("raw"));
        let head = raw(&alice, bob_pub, 16).expect("raw");
        assert_eq!(head.secret(), &whole.secret()[..16]);
        assert!(matches!(
            raw(&alice, bob_pub, secret_len + 1),
            Err(CryptoError::BadLength { .. })
        ));
        assert!(matches!(
            alice.derive(
                DeriveMechanism::EcdhRaw,
                bob_pub,
                b"ctx",
                KeySpec::Aes { bits: 128 }
            ),
            Err(CryptoError::BadLength { .. })
        ));
        let out = KeySpec::Aes { bits: 256 };
        let hkdf = alice
            .derive(DeriveMechanism::EcdhHkdfSha256, bob_pub, b"c", out)
            .expect("d");
        let b3 = alice
            .derive(DeriveMechanism::EcdhBlake3, bob_pub, b"c", out)
            .expect("d");
        assert_ne!(hkdf, b3);
        // The derived key works as an AES key.
        let derived = LoadedKey::load(&hkdf).expect("load");
        let ct = derived
            .encrypt(EncryptMechanism::AesGcm, b"hi", b"")
            .expect("encrypt");
        assert_eq!(
            derived
                .decrypt(EncryptMechanism::AesGcm, &ct, b"")
                .expect("d")
                .as_slice(),
            b"hi"
        );
    }
}

#[test]
fn digests_and_random() {
    for &alg in DigestAlgorithm::ALL {
        let d = digest(alg, b"abc");
        assert_eq!(d.len(), alg.output_len(), "{alg}");
        assert_ne!(d, digest(alg, b"abd"));
    }
    assert_eq!(random_bytes(0).expect("random"), Vec::<u8>::new());
    let a = random_bytes(32).expect("random");
    let b = random_bytes(32).expect("random");
    assert_ne!(a, b);
    assert_eq!(
        random_bytes(MAX_RANDOM_LEN).expect("random").len(),
        MAX_RANDOM_LEN
    );
    assert!(matches!(
        random_bytes(MAX_RANDOM_LEN + 1),
        Err(CryptoError::BadLength { .. })
    ));
}

#[test]
fn mechanisms_cross_the_wire_and_have_stable_unique_names() {
    fn check<T>(all: &[T])
    where
        T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display,
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let mut names = std::collections::BTreeSet::new();
        for &m in all {
            let bytes = hsm_proto::codec::encode("mechanism", &m).expect("encode");
            let back: T = hsm_proto::codec::decode("mechanism", &bytes).expect("decode");
            assert_eq!(back, m);
            let name = m.to_string();
            assert_eq!(name, name.to_lowercase());
            assert!(names.insert(name), "{m:?}");
        }
    }
    check(SignMechanism::ALL);
    check(EncryptMechanism::ALL);
    check(WrapMechanism::ALL);
    check(DeriveMechanism::ALL);
    check(DigestAlgorithm::ALL);
    for &m in SignMechanism::ALL {
        assert_eq!(SignMechanism::from_name(m.name()), Some(m));
    }
    assert_eq!(SignMechanism::from_name("md5"), None);
}

#[test]
fn loaded_keys_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LoadedKey>();
    assert_send_sync::<KeyMaterial>();
    assert_send_sync::<PublicKey>();
    assert_send_sync::<CryptoError>();
}
