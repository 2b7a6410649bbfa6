//! The wrapped-key format is apart from data encryption: under one and the
//! same key, a wrapped key never decrypts as data and data never unwraps
//! as a key, whatever associated data or OAEP label the caller picks; and
//! the attributes a wrapped key carries come back exactly, or not at all.

use crate::common::{carried, key, AES_256, RSA_2048};
use hsm_crypto::*;
use hsm_proto::{CarriedAttributes, KeyAttributes, KeyOrigin, KeyProvenance};

fn aes_keys() -> Vec<LoadedKey> {
    [128u16, 192, 256]
        .into_iter()
        .map(|bits| LoadedKey::generate(KeySpec::Aes { bits }).expect("kek"))
        .collect()
}

#[test]
fn a_wrapped_key_never_decrypts_as_data_under_the_same_aes_key() {
    let target = key(KeySpec::GenericSecret { bytes: 32 }).material();
    for kek in aes_keys() {
        for m in [WrapMechanism::AesGcm, WrapMechanism::AesKeyWrapPad] {
            let blob = kek.wrap_key(m, &carried(target), target).expect("wrap");
            let parts = WrappedKey::parse(&blob).expect("parse");
            for (data, aad) in [
                (&blob[..], &b""[..]),
                (parts.body, b""),
                (parts.body, parts.prefix),
                (&blob[..], parts.prefix),
            ] {
                assert_eq!(
                    kek.decrypt(EncryptMechanism::AesGcm, data, aad)
                        .map(|p| p.to_vec()),
                    Err(CryptoError::DecryptFailed),
                    "{m}"
                );
            }
        }
    }
}

#[test]
fn data_never_unwraps_as_a_key_under_the_same_aes_key() {
    let chosen = [7u8; 32];
    for kek in aes_keys() {
        // Plain ciphertext is not in the format at all.
        let ct = kek
            .encrypt(EncryptMechanism::AesGcm, &chosen, b"")
            .expect("encrypt");
        assert_eq!(
            kek.unwrap_key(WrapMechanism::AesGcm, &ct).unwrap_err(),
            CryptoError::NotAWrappedKey
        );
        // A header the caller wrote, then data encrypted under the key
        // itself with that header as associated data: the wrapping uses
        // the key's wrapping subkey, so this does not open.
        let material = import(AES_256, &chosen).expect("import");
        let honest = kek
            .wrap_key(WrapMechanism::AesGcm, &carried(&material), &material)
            .expect("wrap");
        let prefix = WrappedKey::parse(&honest).expect("parse").prefix.to_vec();
        let body = kek
            .encrypt(EncryptMechanism::AesGcm, &chosen, &prefix)
            .expect("encrypt");
        let forged = [prefix, body].concat();
        assert_eq!(
            kek.unwrap_key(WrapMechanism::AesGcm, &forged).unwrap_err(),
            CryptoError::UnwrapFailed
        );
    }
}

#[test]
fn rsa_oaep_labels_of_the_format_are_reserved() {
    let k = key(RSA_2048);
    let target = key(KeySpec::Aes { bits: 128 }).material();
    let blob = k
        .wrap_key(WrapMechanism::RsaOaepSha256, &carried(target), target)
        .expect("wrap");
    let parts = WrappedKey::parse(&blob).expect("parse");
    let mut label = b"hsm-cluster wrapped key v1".to_vec();
    label.extend_from_slice(blake3::hash(parts.prefix).as_bytes());
    // Decrypting the body as data needs the format's label: refused.
    assert_eq!(
        k.decrypt(EncryptMechanism::RsaOaepSha256, parts.body, &label)
            .unwrap_err(),
        CryptoError::ReservedLabel
    );
    assert_eq!(
        k.decrypt(EncryptMechanism::RsaOaepSha256, parts.body, b"")
            .unwrap_err(),
        CryptoError::DecryptFailed
    );
    // Encrypting chosen bytes with it, through the key or its public half.
    for result in [
        k.encrypt(EncryptMechanism::RsaOaepSha256, &[7; 16], &label),
        k.public_key()
            .expect("public")
            .encrypt(EncryptMechanism::RsaOaepSha256, &[7; 16], &label),
        k.encrypt(
            EncryptMechanism::RsaOaepSha256,
            &[7; 16],
            RESERVED_OAEP_LABEL_PREFIX,
        ),
    ] {
        assert_eq!(result.unwrap_err(), CryptoError::ReservedLabel);
    }
    // A body made with another label does not open as a wrapped key.
    let ct = k
        .encrypt(EncryptMechanism::RsaOaepSha256, &[7; 16], b"other")
        .expect("encrypt");
    let forged = [parts.prefix, &ct[..]].concat();
    assert_eq!(
        k.unwrap_key(WrapMechanism::RsaOaepSha256, &forged)
            .unwrap_err(),
        CryptoError::UnwrapFailed
    );
}

#[test]
fn carried_attributes_come_back_exactly() {
    let target = key(KeySpec::Aes { bits: 128 }).material();
    let claims = CarriedAttributes {
        spec: target.spec(),
        attributes: KeyAttributes {
            sign: true,
            wrap_with_trusted: true,
            extractable: true,
            sensitive: true,
            ..KeyAttributes::default()
        },
        provenance: KeyProvenance {
            origin: KeyOrigin::Unwrapped,
            local: true,
            always_sensitive: true,
            never_extractable: false,
        },
    };
    for (kek, m) in [
        (key(AES_256), WrapMechanism::AesGcm),
        (key(AES_256), WrapMechanism::AesKeyWrapPad),
        (key(RSA_2048), WrapMechanism::RsaOaepSha256),
    ] {
        let blob = kek.wrap_key(m, &claims, target).expect("wrap");
        let (back, material) = kek.unwrap_key(m, &blob).expect("unwrap");
        assert_eq!((&back, &material), (&claims, target), "{m}");
        // The mechanism is part of what is bound.
        for other in WrapMechanism::ALL {
            if *other != m {
                assert!(kek.unwrap_key(*other, &blob).is_err(), "{m} as {other}");
            }
        }
    }
    // A claim for another key type than the material is refused.
    let wrong = CarriedAttributes {
        spec: AES_256,
        ..claims
    };
    assert!(matches!(
        key(AES_256).wrap_key(WrapMechanism::AesGcm, &wrong, target),
        Err(CryptoError::KeySpecMismatch { .. })
    ));
}

/// A public key loaded alone verifies what its private half signed,
/// encrypts and wraps (RSA-OAEP) what the private half opens, and does
/// nothing that needs the private half; nor is it ever wrapped as if its
/// public bytes were material.
#[test]
fn a_public_key_alone_verifies_encrypts_and_wraps_and_nothing_more() {
    for spec in [KeySpec::EcP256, KeySpec::Ed25519, RSA_2048] {
        let pair = key(spec);
        let der = pair.public_key().expect("public").der().to_vec();
        let public = LoadedKey::parse_public(&der).expect("public alone");
        assert_eq!(public.spec(), spec);
        assert!(public.material().is_public_only());
        assert!(public.material().secret().is_empty());
        let mechanism = match spec {
            KeySpec::EcP256 => SignMechanism::EcdsaSha256,
            KeySpec::Ed25519 => SignMechanism::Ed25519,
            _ => SignMechanism::RsaPssSha256,
        };
        let sig = pair.sign(mechanism, b"message").expect("sign");
        assert_eq!(public.verify(mechanism, b"message", &sig), Ok(true));
        assert_eq!(public.verify(mechanism, b"other", &sig), Ok(false));
        assert!(matches!(
            public.sign(mechanism, b"message"),
            Err(CryptoError::MechanismMismatch { .. })
        ));
        // Loading its stored form gives it back.
        let again = LoadedKey::load(public.material()).expect("load");
        assert_eq!(again.verify(mechanism, b"message", &sig), Ok(true));
        // Never wrapped: there is nothing behind it.
        let kek = key(AES_256);
        assert!(matches!(
            kek.wrap_key(
                WrapMechanism::AesKeyWrapPad,
                &carried(public.material()),
                public.material()
            ),
            Err(CryptoError::BadKey(_))
        ));
    }
    let rsa = key(RSA_2048);
    let public = LoadedKey::parse_public(rsa.public_key().expect("public").der()).expect("rsa");
    let ct = public
        .encrypt(EncryptMechanism::RsaOaepSha256, b"to the holder", b"")
        .expect("encrypt");
    assert_eq!(
        rsa.decrypt(EncryptMechanism::RsaOaepSha256, &ct, b"")
            .expect("decrypt")
            .to_vec(),
        b"to the holder".to_vec()
    );
    assert!(matches!(
        public.decrypt(EncryptMechanism::RsaOaepSha256, &ct, b""),
        Err(CryptoError::MechanismMismatch { .. })
    ));
    let target = key(AES_256).material();
    let blob = public
        .wrap_key(WrapMechanism::RsaOaepSha256, &carried(target), target)
        .expect("wrap to the holder");
    let (_, unwrapped) = rsa
        .unwrap_key(WrapMechanism::RsaOaepSha256, &blob)
        .expect("the holder unwraps");
    assert_eq!(&unwrapped, target);
    assert!(LoadedKey::parse_public(b"not a key").is_err());
}
