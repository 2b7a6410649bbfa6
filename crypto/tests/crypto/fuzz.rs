//! Property tests: arbitrary and mutated input never panics, and never
//! verifies or decrypts by accident.

use crate::common::{key, RSA_2048, SPECS};
use hsm_crypto::*;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    }
}

fn any_spec() -> impl Strategy<Value = KeySpec> {
    prop::sample::select(SPECS.to_vec())
}

/// Specs whose keys are cheap to parse repeatedly (RSA-2048 only).
fn parse_spec() -> impl Strategy<Value = KeySpec> {
    prop::sample::select(
        SPECS
            .into_iter()
            .filter(|s| !matches!(s, KeySpec::Rsa { bits } if *bits > 2048))
            .collect::<Vec<_>>(),
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn import_of_arbitrary_bytes_never_panics(spec in any_spec(), bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = import(spec, &bytes);
        let _ = PublicKey::from_der(&bytes);
        let _ = PublicKey::from_pem(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_keys_are_refused_or_still_consistent(
        spec in parse_spec(),
        index in any::<prop::sample::Index>(),
        flip in 1u8..=255,
        truncate in any::<bool>(),
    ) {
        let original = key(spec).material();
        let mut bytes = original.secret().to_vec();
        let i = index.index(bytes.len());
        if truncate { bytes.truncate(i) } else { bytes[i] ^= flip }
        if let Ok(material) = import(spec, &bytes) {
            // Whatever parsed must be a usable, self-consistent key.
            prop_assert_eq!(material.spec(), spec);
            let loaded = LoadedKey::load(&material).expect("reload");
            prop_assert_eq!(loaded.material(), &material);
        }
        if let Some(public) = key(spec).public_key() {
            let mut der = public.der().to_vec();
            let i = index.index(der.len());
            if truncate { der.truncate(i) } else { der[i] ^= flip }
            if let Ok(parsed) = PublicKey::from_der(&der) {
                prop_assert_eq!(parsed.der(), der.as_slice());
            }
        }
    }

    #[test]
    fn arbitrary_ciphertexts_and_signatures_never_pass(
        spec in any_spec(),
        data in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let k = key(spec);
        for &m in SignMechanism::ALL {
            prop_assert!(!matches!(k.verify(m, b"message", &data), Ok(true)));
        }
        for &m in EncryptMechanism::ALL {
            prop_assert!(k.decrypt(m, &data, b"").is_err());
        }
        for &m in WrapMechanism::ALL {
            prop_assert!(k.unwrap_key(m, &data).is_err());
        }
    }

    #[test]
    fn rsa_accepts_any_input_it_can_encrypt(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let k = key(RSA_2048);
        match k.encrypt(EncryptMechanism::RsaOaepSha256, &data, b"") {
            Ok(ct) => {
                let back = k.decrypt(EncryptMechanism::RsaOaepSha256, &ct, b"").expect("decrypt");
                prop_assert_eq!(back.as_slice(), data.as_slice());
            }
            Err(err) => prop_assert!(data.len() > 190, "{}", err),
        }
    }
}
