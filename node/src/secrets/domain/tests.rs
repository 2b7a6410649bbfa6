use super::*;
use crate::secrets::hex;
use hsm_seal::NONCE_LEN;

const CLUSTER: ClusterId = ClusterId([7; 16]);
const NODE: NodeId = NodeId(3);

fn same_key(a: &DomainKey, b: &DomainKey) -> bool {
    a.key.as_ref() == b.key.as_ref() && a.generation == b.generation
}

#[test]
fn wrapped_material_opens_under_its_own_key_id_and_domain_key_only() {
    let dk = DomainKey::generate(0);
    let wrapped = dk.wrap_material(KeyId(1), b"key material").expect("wraps");
    assert_eq!(wrapped[0], 1, "version byte");
    assert_eq!(wrapped.len(), b"key material".len() + OVERHEAD);
    let plain = dk.unwrap_material(KeyId(1), &wrapped).expect("unwraps");
    assert_eq!(&plain[..], b"key material");

    let other_generation = DomainKey {
        generation: 1,
        key: dk.key.clone(),
    };
    assert!(
        other_generation
            .unwrap_material(KeyId(1), &wrapped)
            .is_err(),
        "the same bytes as another generation"
    );
    let err = dk
        .unwrap_material(KeyId(2), &wrapped)
        .expect_err("moved to another key id");
    assert!(
        matches!(
            err,
            SecretsError::Unwrap {
                key: KeyId(2),
                reason: "authentication failed"
            }
        ),
        "{err}"
    );
    assert!(DomainKey::generate(0)
        .unwrap_material(KeyId(1), &wrapped)
        .is_err());
}

#[test]
fn every_changed_or_truncated_byte_of_wrapped_material_is_refused() {
    let dk = DomainKey::generate(0);
    let wrapped = dk.wrap_material(KeyId(9), &[0xAB; 48]).expect("wraps");
    for i in 0..wrapped.len() {
        for bit in [0x01, 0x80] {
            let mut t = wrapped.clone();
            t[i] ^= bit;
            assert!(
                dk.unwrap_material(KeyId(9), &t).is_err(),
                "flip {bit:#x} at {i}"
            );
        }
    }
    for len in 0..wrapped.len() {
        assert!(
            dk.unwrap_material(KeyId(9), &wrapped[..len]).is_err(),
            "cut to {len}"
        );
    }
    let mut longer = wrapped.clone();
    longer.push(0);
    assert!(dk.unwrap_material(KeyId(9), &longer).is_err(), "extended");
}

#[test]
fn material_wraps_alike_only_for_the_same_key_id_generation_and_material() {
    let dk = DomainKey::generate(0);
    let a = dk.wrap_material(KeyId(1), b"same").expect("wraps");
    let b = dk.wrap_material(KeyId(1), b"same").expect("wraps");
    assert_eq!(a, b, "a request's copy wraps its material alike");
    assert_ne!(a, dk.wrap_material(KeyId(1), b"other").expect("wraps"));
    assert_ne!(a, dk.wrap_material(KeyId(2), b"same").expect("wraps"));
    let next = DomainKey::generate(1);
    assert_ne!(a, next.wrap_material(KeyId(1), b"same").expect("wraps"));
    let elsewhere = DomainKey::generate(0);
    assert_ne!(
        a,
        elsewhere.wrap_material(KeyId(1), b"same").expect("wraps")
    );
}

#[test]
fn wrapped_material_fits_an_event_or_is_refused() {
    let dk = DomainKey::generate(0);
    let largest = dk
        .wrap_material(KeyId(1), &vec![1; MAX_MATERIAL_LEN])
        .expect("wraps");
    assert_eq!(largest.len(), MAX_KEY_BLOB_LEN);
    let err = dk
        .wrap_material(KeyId(1), &vec![1; MAX_MATERIAL_LEN + 1])
        .expect_err("too long");
    assert!(matches!(err, SecretsError::MaterialTooLong { .. }), "{err}");
    let empty = dk.wrap_material(KeyId(1), b"").expect("wraps");
    assert!(dk
        .unwrap_material(KeyId(1), &empty)
        .expect("unwraps")
        .is_empty());
}

#[test]
fn sealed_domain_key_opens_for_its_recipient_cluster_and_node_only() {
    let dk = DomainKey::generate(0);
    let recipient = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let sealed = dk
        .seal_for_node(&PublicKey::from(&recipient), CLUSTER, NODE)
        .expect("seals");
    // It travels through the canonical codec.
    let bytes = codec_round_trip(&sealed);
    let opened = DomainKey::open_sealed(&bytes, &recipient, CLUSTER, NODE, 0).expect("opens");
    assert!(same_key(&dk, &opened));

    let stranger = StaticSecret::random_from_rng(rand::rngs::OsRng);
    assert!(DomainKey::open_sealed(&sealed, &stranger, CLUSTER, NODE, 0).is_err());
    assert!(DomainKey::open_sealed(&sealed, &recipient, ClusterId([8; 16]), NODE, 0).is_err());
    assert!(DomainKey::open_sealed(&sealed, &recipient, CLUSTER, NodeId(4), 0).is_err());
    assert!(
        DomainKey::open_sealed(&sealed, &recipient, CLUSTER, NODE, 1).is_err(),
        "taken for another generation"
    );
    let again = dk
        .seal_for_node(&PublicKey::from(&recipient), CLUSTER, NODE)
        .expect("seals");
    assert_ne!(
        again.ephemeral_public, sealed.ephemeral_public,
        "fresh ephemeral key"
    );
}

fn codec_round_trip(sealed: &SealedDomainKey) -> SealedDomainKey {
    let bytes = hsm_proto::codec::encode("sealed domain key", sealed).expect("encodes");
    hsm_proto::codec::decode("sealed domain key", &bytes).expect("decodes")
}

#[test]
fn every_changed_bit_of_a_sealed_domain_key_is_refused() {
    let dk = DomainKey::generate(0);
    let recipient = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let sealed = dk
        .seal_for_node(&PublicKey::from(&recipient), CLUSTER, NODE)
        .expect("seals");
    let refused =
        |s: &SealedDomainKey| DomainKey::open_sealed(s, &recipient, CLUSTER, NODE, 0).is_err();
    for i in 0..32 * 8 {
        let mut t = sealed.clone();
        t.ephemeral_public[i / 8] ^= 1 << (i % 8);
        // Includes the top bit, which X25519 itself ignores: the transfer
        // key binds the ephemeral key's bytes.
        assert!(refused(&t), "ephemeral bit {i}");
    }
    for i in 0..NONCE_LEN {
        let mut t = sealed.clone();
        t.nonce[i] ^= 1;
        assert!(refused(&t), "nonce byte {i}");
    }
    for i in 0..sealed.ciphertext.len() {
        let mut t = sealed.clone();
        t.ciphertext[i] ^= 1;
        assert!(refused(&t), "ciphertext byte {i}");
    }
    let mut t = sealed.clone();
    t.ciphertext.pop();
    assert!(refused(&t), "truncated");
    let mut t = sealed.clone();
    t.version = 2;
    assert!(refused(&t), "version");
}

#[test]
fn low_order_public_keys_are_refused_both_ways() {
    let dk = DomainKey::generate(0);
    let err = dk
        .seal_for_node(&PublicKey::from([0u8; 32]), CLUSTER, NODE)
        .expect_err("low order recipient");
    assert!(
        matches!(
            err,
            SecretsError::WeakPublicKey {
                which: "recipient",
                ..
            }
        ),
        "{err}"
    );

    let recipient = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let mut sealed = dk
        .seal_for_node(&PublicKey::from(&recipient), CLUSTER, NODE)
        .expect("seals");
    sealed.ephemeral_public = [0; 32];
    let err = DomainKey::open_sealed(&sealed, &recipient, CLUSTER, NODE, 0).expect_err("refused");
    assert!(
        matches!(
            err,
            SecretsError::WeakPublicKey {
                which: "ephemeral",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn subkeys_differ_from_each_other_and_from_the_domain_key() {
    let dk = DomainKey::generate(0);
    let wrap = dk.derive(WRAP_CONTEXT);
    let session = dk.session_mac_key();
    assert_ne!(wrap.as_ref(), session.as_ref());
    assert_ne!(wrap.as_ref(), dk.key.as_ref());
    assert_ne!(session.as_ref(), dk.key.as_ref());
}

#[test]
fn debug_and_errors_never_show_key_bytes() {
    let dk = DomainKey::generate(0);
    let key_hex = hex(dk.key.as_ref());
    assert_eq!(format!("{dk:?}"), "DomainKey(generation 0, <redacted>)");
    let recipient = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let sealed = dk
        .seal_for_node(&PublicKey::from(&recipient), CLUSTER, NODE)
        .expect("seals");
    let debug = format!("{sealed:?}");
    assert!(
        !debug.contains(&key_hex) && !debug.contains(&hex(&sealed.ciphertext)),
        "{debug}"
    );

    let wrapped = dk
        .wrap_material(KeyId(5), b"secret material")
        .expect("wraps");
    let err = dk
        .unwrap_material(KeyId(6), &wrapped)
        .expect_err("wrong id");
    let msg = format!("{err} {err:?}");
    assert!(
        !msg.contains(&key_hex) && !msg.contains(&hex(&wrapped)),
        "{msg}"
    );
    assert!(msg.contains("0x0000000000000006"), "names the key: {msg}");
}
