//! Wrong mechanisms, wrong specs, tampering and redaction: all clean errors.

use crate::common::{carried, hex, key, AES_256, RSA_2048, SPECS};
use crate::roundtrip::{derive_applies, encrypt_applies, sign_applies, wrap_applies};
use hsm_crypto::*;

fn is_mismatch(err: &CryptoError, mechanism: &str, spec: KeySpec) -> bool {
    matches!(err, CryptoError::MechanismMismatch { mechanism: m, spec: s } if *m == mechanism && *s == spec)
}

#[test]
fn every_inapplicable_mechanism_is_a_clean_mismatch() {
    let target = key(KeySpec::Aes { bits: 128 }).material();
    let mut refused = 0;
    for spec in SPECS {
        let k = key(spec);
        for &m in SignMechanism::ALL {
            if sign_applies(spec, m) {
                continue;
            }
            refused += 1;
            let err = k.sign(m, b"msg").unwrap_err();
            assert!(is_mismatch(&err, m.name(), spec), "{spec:?} {m}: {err}");
            let err = k.verify(m, b"msg", &[0u8; 64]).unwrap_err();
            assert!(is_mismatch(&err, m.name(), spec), "{spec:?} {m}: {err}");
            if let Some(public) = k.public_key() {
                assert!(public.verify(m, b"msg", &[0u8; 64]).is_err());
            }
        }
        for &m in EncryptMechanism::ALL {
            if encrypt_applies(spec, m) {
                continue;
            }
            refused += 1;
            let err = k.encrypt(m, b"msg", b"").unwrap_err();
            assert!(is_mismatch(&err, m.name(), spec), "{spec:?} {m}: {err}");
            let err = k.decrypt(m, &[0u8; 512], b"").unwrap_err();
            assert!(is_mismatch(&err, m.name(), spec), "{spec:?} {m}: {err}");
            if let Some(public) = k.public_key() {
                assert!(public.encrypt(m, b"msg", b"").is_err());
            }
        }
        for &m in WrapMechanism::ALL {
            if wrap_applies(spec, m) {
                continue;
            }
            refused += 1;
            let err = k.wrap_key(m, &carried(target), target).unwrap_err();
            assert!(is_mismatch(&err, m.name(), spec), "{spec:?} {m}: {err}");
            let err = k.unwrap_key(m, &[0u8; 40]).unwrap_err();
            assert!(is_mismatch(&err, m.name(), spec), "{spec:?} {m}: {err}");
        }
        if !derive_applies(spec) {
            for &m in DeriveMechanism::ALL {
                refused += 1;
                let peer = key(KeySpec::X25519).public_key().expect("public");
                let err = k.derive(m, peer, b"", AES_256).unwrap_err();
                assert!(is_mismatch(&err, m.name(), spec), "{spec:?} {m}: {err}");
            }
        }
    }
    assert!(refused > 100, "{refused}");
}

#[test]
fn public_keys_refuse_hmac_and_aes() {
    let public = key(KeySpec::Ed25519).public_key().expect("public");
    assert!(public
        .verify(SignMechanism::HmacSha256, b"m", b"t")
        .is_err());
    assert!(public.encrypt(EncryptMechanism::AesGcm, b"m", b"").is_err());
    let target = key(AES_256).material();
    assert!(public
        .wrap_key(WrapMechanism::AesKeyWrapPad, &carried(target), target)
        .is_err());
}

#[test]
fn derive_refuses_other_peer_types_and_output_specs() {
    let x = key(KeySpec::X25519);
    let p256 = key(KeySpec::EcP256);
    let m = DeriveMechanism::EcdhHkdfSha256;
    let err = x
        .derive(m, p256.public_key().expect("pk"), b"", AES_256)
        .unwrap_err();
    assert_eq!(
        err,
        CryptoError::PeerKeyMismatch {
            expected: KeySpec::X25519,
            peer: KeySpec::EcP256
        }
    );
    let err = p256.derive(
        m,
        key(KeySpec::EcP384).public_key().expect("pk"),
        b"",
        AES_256,
    );
    assert!(matches!(err, Err(CryptoError::PeerKeyMismatch { .. })));
    for out in [KeySpec::EcP256, KeySpec::Aes { bits: 100 }, RSA_2048] {
        let err = x
            .derive(m, x.public_key().expect("pk"), b"", out)
            .unwrap_err();
        assert_eq!(err, CryptoError::UnsupportedKeySpec(out));
    }
    let err = x
        .derive(m, x.public_key().expect("pk"), &[0; 1025], AES_256)
        .unwrap_err();
    assert!(
        matches!(err, CryptoError::BadLength { len: 1025, .. }),
        "{err}"
    );
    // secp256k1 has ECDSA but no ECDH here.
    let k1 = key(KeySpec::EcSecp256k1);
    let err = k1
        .derive(m, k1.public_key().expect("pk"), b"", AES_256)
        .unwrap_err();
    assert!(is_mismatch(&err, m.name(), KeySpec::EcSecp256k1), "{err}");
}

#[test]
fn tampered_aes_gcm_fails_to_decrypt() {
    let k = key(AES_256);
    let m = EncryptMechanism::AesGcm;
    let ct = k.encrypt(m, b"attack at dawn", b"aad").expect("encrypt");
    for i in 0..ct.len() {
        let mut bad = ct.clone();
        bad[i] ^= 0x80;
        assert_eq!(
            k.decrypt(m, &bad, b"aad").unwrap_err(),
            CryptoError::DecryptFailed,
            "byte {i}"
        );
    }
    assert_eq!(
        k.decrypt(m, &ct, b"aaD").unwrap_err(),
        CryptoError::DecryptFailed
    );
    assert_eq!(
        k.decrypt(m, &ct[..ct.len() - 1], b"aad").unwrap_err(),
        CryptoError::DecryptFailed
    );
    let other = key(KeySpec::Aes { bits: 128 });
    assert_eq!(
        other.decrypt(m, &ct, b"aad").unwrap_err(),
        CryptoError::DecryptFailed
    );
    for len in [0, 1, 27] {
        let err = k.decrypt(m, &vec![0; len], b"").unwrap_err();
        assert!(matches!(err, CryptoError::BadLength { .. }), "{err}");
    }
}

#[test]
fn tampered_rsa_oaep_fails_to_decrypt() {
    let k = key(RSA_2048);
    let m = EncryptMechanism::RsaOaepSha256;
    let ct = k.encrypt(m, b"secret", b"").expect("encrypt");
    let mut bad = ct.clone();
    bad[100] ^= 1;
    assert_eq!(
        k.decrypt(m, &bad, b"").unwrap_err(),
        CryptoError::DecryptFailed
    );
    assert_eq!(
        k.decrypt(m, &ct, b"label").unwrap_err(),
        CryptoError::DecryptFailed
    );
    let err = k.decrypt(m, &ct[1..], b"").unwrap_err();
    assert!(matches!(err, CryptoError::BadLength { .. }), "{err}");
    let other = key(KeySpec::Rsa { bits: 3072 });
    assert!(other.decrypt(m, &ct, b"").is_err());
}

#[test]
fn tampered_wrapped_keys_fail_to_unwrap() {
    let target = key(KeySpec::GenericSecret { bytes: 32 }).material();
    for (kek_spec, m) in [
        (KeySpec::Aes { bits: 128 }, WrapMechanism::AesKeyWrapPad),
        (KeySpec::Aes { bits: 192 }, WrapMechanism::AesKeyWrapPad),
        (AES_256, WrapMechanism::AesKeyWrapPad),
        (AES_256, WrapMechanism::AesGcm),
        (RSA_2048, WrapMechanism::RsaOaepSha256),
    ] {
        let kek = key(kek_spec);
        let wrapped = kek.wrap_key(m, &carried(target), target).expect("wrap");
        // Every byte, header included: the carried attributes are bound.
        for i in 0..wrapped.len() {
            let mut bad = wrapped.clone();
            bad[i] ^= 0x04;
            let err = kek.unwrap_key(m, &bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    CryptoError::UnwrapFailed
                        | CryptoError::NotAWrappedKey
                        | CryptoError::WrappedWithOther(_)
                ),
                "{kek_spec:?} {m} byte {i}: {err}"
            );
        }
        // Cut short or extended.
        for bad in [
            &wrapped[..wrapped.len() - 1],
            &[&wrapped[..], &[0]].concat()[..],
        ] {
            assert!(kek.unwrap_key(m, bad).is_err());
        }
    }
    let kek = key(AES_256);
    for len in [0usize, 8, 17, 64] {
        let err = kek
            .unwrap_key(WrapMechanism::AesKeyWrapPad, &vec![0; len])
            .unwrap_err();
        assert_eq!(err, CryptoError::NotAWrappedKey, "{len}");
    }
    let err = kek
        .unwrap_key(WrapMechanism::AesKeyWrapPad, &vec![0; 20 * 1024])
        .unwrap_err();
    assert!(matches!(err, CryptoError::BadLength { .. }), "{err}");
}

#[test]
fn import_checks_the_spec() {
    let p256 = key(KeySpec::EcP256).material().secret();
    let err = import(KeySpec::EcP384, p256).unwrap_err();
    assert_eq!(
        err,
        CryptoError::KeySpecMismatch {
            expected: KeySpec::EcP384,
            found: Some(KeySpec::EcP256)
        }
    );
    let rsa = key(RSA_2048).material().secret();
    let err = import(KeySpec::Rsa { bits: 3072 }, rsa).unwrap_err();
    assert_eq!(
        err,
        CryptoError::KeySpecMismatch {
            expected: KeySpec::Rsa { bits: 3072 },
            found: Some(RSA_2048)
        }
    );
    let err = import(KeySpec::EcP256, rsa).unwrap_err();
    assert_eq!(
        err,
        CryptoError::KeySpecMismatch {
            expected: KeySpec::EcP256,
            found: Some(RSA_2048)
        }
    );
    let ed = key(KeySpec::Ed25519).material().secret();
    let x = key(KeySpec::X25519).material().secret();
    assert!(matches!(
        import(KeySpec::X25519, ed),
        Err(CryptoError::KeySpecMismatch {
            found: Some(KeySpec::Ed25519),
            ..
        })
    ));
    assert!(matches!(
        import(KeySpec::Ed25519, x),
        Err(CryptoError::KeySpecMismatch {
            found: Some(KeySpec::X25519),
            ..
        })
    ));
    assert!(matches!(
        import(KeySpec::EcSecp256k1, p256),
        Err(CryptoError::KeySpecMismatch {
            found: Some(KeySpec::EcP256),
            ..
        })
    ));
    // Symmetric material must have exactly the spec's length.
    assert!(matches!(
        import(AES_256, &[7; 16]),
        Err(CryptoError::KeySpecMismatch { .. })
    ));
    assert!(matches!(
        import(KeySpec::GenericSecret { bytes: 10 }, &[7; 11]),
        Err(CryptoError::KeySpecMismatch { .. })
    ));
    assert_eq!(
        import(KeySpec::Aes { bits: 100 }, &[0; 13]).unwrap_err(),
        CryptoError::UnsupportedKeySpec(KeySpec::Aes { bits: 100 })
    );
    // Garbage and truncated DER.
    for spec in [KeySpec::EcP256, KeySpec::Ed25519, KeySpec::X25519, RSA_2048] {
        assert!(matches!(
            import(spec, b"not der"),
            Err(CryptoError::BadKey(_))
        ));
        assert!(matches!(import(spec, &[]), Err(CryptoError::BadKey(_))));
        let der = key(spec).material().secret();
        assert!(matches!(
            import(spec, &der[..der.len() - 1]),
            Err(CryptoError::BadKey(_))
        ));
        let mut trailing = der.to_vec();
        trailing.push(0);
        assert!(matches!(
            import(spec, &trailing),
            Err(CryptoError::BadKey(_))
        ));
    }
}

#[test]
fn public_key_parsing_refuses_bad_input() {
    for bad in [&b""[..], b"garbage", &[0x30, 0x03, 0x02, 0x01, 0x00]] {
        assert!(matches!(
            PublicKey::from_der(bad),
            Err(CryptoError::BadKey(_))
        ));
    }
    assert!(PublicKey::from_pem("no pem here").is_err());
    assert!(
        PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----").is_err()
    );
    // A point that is not on the curve.
    let public = key(KeySpec::EcP256)
        .public_key()
        .expect("pk")
        .der()
        .to_vec();
    let mut off_curve = public.clone();
    let last = off_curve.len() - 1;
    off_curve[last] ^= 1;
    assert!(matches!(
        PublicKey::from_der(&off_curve),
        Err(CryptoError::BadKey(_))
    ));
}

#[test]
fn debug_and_errors_never_show_secrets() {
    for spec in SPECS {
        let k = key(spec);
        let secret = k.material().secret();
        for text in [
            format!("{:?}", k.material()),
            format!("{k:?}"),
            format!("{:#?}", k.material()),
        ] {
            assert!(!text.contains(&hex(secret)), "{text}");
            assert!(!text.contains(&hex(&secret[..8])), "{text}");
            assert!(
                !text.contains(format!("{:?}", &secret[..4]).trim_end_matches(']')),
                "{text}"
            );
            assert!(
                text.contains("KeyMaterial") || text.contains("LoadedKey"),
                "{text}"
            );
        }
    }
    let k = key(AES_256);
    let errors = [
        import(KeySpec::EcP384, key(KeySpec::EcP256).material().secret()).unwrap_err(),
        k.decrypt(EncryptMechanism::AesGcm, &[0; 40], b"")
            .unwrap_err(),
        k.sign(SignMechanism::Ed25519, b"m").unwrap_err(),
        k.unwrap_key(WrapMechanism::AesKeyWrapPad, &[0; 3])
            .unwrap_err(),
        generate(KeySpec::Rsa { bits: 1 }).unwrap_err(),
        import(KeySpec::EcP256, b"junk").unwrap_err(),
    ];
    for err in errors {
        let text = err.to_string();
        assert_eq!(
            text.chars().next().map(|c| c.is_lowercase()),
            Some(true),
            "{text}"
        );
        assert!(!text.contains(&hex(k.material().secret())), "{text}");
    }
}

/// PKCS#8 v2 (RFC 5958 `OneAsymmetricKey`) of a 32-byte-seed key with its
/// public key, as the curve's OID's last byte says (0x6e X25519, 0x70
/// Ed25519).
fn pkcs8_v2(oid_last: u8, seed: &[u8], public: &[u8]) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, oid_last,
    ];
    der.extend([0x04, 0x22, 0x04, 0x20]);
    der.extend(seed);
    der.extend([0x81, 0x21, 0x00]);
    der.extend(public);
    der
}

#[test]
fn pkcs8_v2_imports_only_with_the_matching_public_key() {
    for (spec, oid_last) in [(KeySpec::X25519, 0x6e), (KeySpec::Ed25519, 0x70)] {
        let k = key(spec);
        let v1 = k.material().secret();
        let seed = &v1[v1.len() - 32..];
        let spki = k.public_key().expect("pk").der();
        let public = &spki[spki.len() - 32..];
        let imported = import(spec, &pkcs8_v2(oid_last, seed, public)).expect("v2 import");
        assert_eq!(&imported, k.material(), "{spec:?}: canonical v1 again");
        let mut wrong = public.to_vec();
        wrong[0] ^= 1;
        let err = import(spec, &pkcs8_v2(oid_last, seed, &wrong)).unwrap_err();
        assert!(matches!(err, CryptoError::BadKey(_)), "{spec:?}: {err}");
    }
}
