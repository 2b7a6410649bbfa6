//! The one test suite of the sealing formats.

use x25519_dalek::{PublicKey, StaticSecret};

use super::recipient::{open_from, seal_to, RecipientError};
use super::*;

const KEY: [u8; 32] = [0x42; 32];

#[test]
fn aes_256_gcm_siv_matches_rfc_8452() {
    // RFC 8452, appendix C.2, the first AEAD_AES_256_GCM_SIV vector.
    let mut key = [0u8; 32];
    key[0] = 1;
    let mut nonce = [0u8; NONCE_LEN];
    nonce[0] = 3;
    let out = SealKey::new(&key).encrypt(&nonce, b"", b"").expect("seals");
    assert_eq!(
        out,
        [
            0x07, 0xf5, 0xf4, 0x16, 0x9b, 0xbf, 0x55, 0xa8, 0x40, 0x0c, 0xd4, 0x7e, 0xa6, 0xfd,
            0x40, 0x0f
        ]
    );
}

#[test]
fn a_sealed_value_opens_only_under_its_key_and_associated_data() {
    let key = SealKey::new(&KEY);
    let sealed = key.seal(b"record 1", b"secret bytes").expect("seals");
    assert_eq!(sealed[0], VERSION);
    assert_eq!(sealed.len(), b"secret bytes".len() + OVERHEAD);
    assert_eq!(
        &key.open(b"record 1", &sealed).expect("opens")[..],
        b"secret bytes"
    );
    assert_eq!(
        key.open(b"record 2", &sealed),
        Err(OpenError::Authentication)
    );
    assert_eq!(
        SealKey::new(&[0x43; 32]).open(b"record 1", &sealed),
        Err(OpenError::Authentication)
    );
    assert_eq!(
        &open(&KEY, b"record 1", &sealed).expect("opens")[..],
        b"secret bytes"
    );
    assert_ne!(
        seal(&KEY, b"record 1", b"secret bytes").expect("seals"),
        sealed,
        "a fresh nonce each time"
    );
}

#[test]
fn every_changed_cut_or_extended_byte_is_refused_without_a_panic() {
    let key = SealKey::new(&KEY);
    let sealed = key.seal(b"aad", &[0xAB; 40]).expect("seals");
    for i in 0..sealed.len() {
        for bit in [0x01, 0x80] {
            let mut t = sealed.clone();
            t[i] ^= bit;
            let want = if i == 0 {
                OpenError::UnknownVersion
            } else {
                OpenError::Authentication
            };
            assert_eq!(key.open(b"aad", &t), Err(want), "flip {bit:#x} at {i}");
            assert_eq!(key.open_in_place(b"aad", &mut t.clone()), Err(want));
        }
    }
    for len in 0..sealed.len() {
        let cut = &sealed[..len];
        assert!(key.open(b"aad", cut).is_err(), "cut to {len}");
        assert!(key.open_in_place(b"aad", &mut cut.to_vec()).is_err());
        if len < OVERHEAD {
            assert_eq!(key.open(b"aad", cut), Err(OpenError::TooShort));
        }
    }
    let mut longer = sealed.clone();
    longer.push(0);
    assert!(key.open(b"aad", &longer).is_err(), "extended");
    assert_eq!(
        key.decrypt(&[0; NONCE_LEN], b"", &[0; TAG_LEN - 1]),
        Err(OpenError::TooShort)
    );
}

#[test]
fn sealing_in_place_is_the_same_format_and_never_grows_the_buffer_twice() {
    let key = SealKey::new(&KEY);
    let plain = vec![0x5A; 1000];
    let mut buf = Vec::with_capacity(OVERHEAD + plain.len());
    buf.resize(HEADER_LEN, 0);
    buf.extend_from_slice(&plain);
    let capacity = buf.capacity();
    key.seal_in_place(b"chunk 7", &mut buf).expect("seals");
    assert_eq!(buf.capacity(), capacity, "no reallocation");
    assert_eq!(&key.open(b"chunk 7", &buf).expect("opens")[..], &plain[..]);
    let mut framed = key.seal(b"chunk 7", &plain).expect("seals");
    assert_eq!(
        key.open_in_place(b"chunk 7", &mut framed).expect("opens"),
        &plain[..]
    );
    assert_eq!(
        key.seal_in_place(b"", &mut vec![0; HEADER_LEN - 1]),
        Err(TooLong)
    );
    let mut empty = vec![0; HEADER_LEN];
    key.seal_in_place(b"", &mut empty).expect("seals nothing");
    assert!(key.open(b"", &empty).expect("opens").is_empty());
}

#[test]
fn a_value_sealed_to_a_recipient_opens_only_with_its_key_context_and_aad() {
    let me = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let sealed =
        seal_to(&PublicKey::from(&me), "test v1", b"node 3", b"domain key").expect("seals");
    assert_eq!(
        &open_from(&me, "test v1", b"node 3", &sealed).expect("opens")[..],
        b"domain key"
    );
    let stranger = StaticSecret::random_from_rng(rand::rngs::OsRng);
    for (secret, context, aad) in [
        (&stranger, "test v1", &b"node 3"[..]),
        (&me, "test v2", b"node 3"),
        (&me, "test v1", b"node 4"),
    ] {
        assert_eq!(
            open_from(secret, context, aad, &sealed),
            Err(RecipientError::Open(OpenError::Authentication))
        );
    }
    let again = seal_to(&PublicKey::from(&me), "test v1", b"node 3", b"domain key").expect("seals");
    assert_ne!(again.ephemeral_public, sealed.ephemeral_public);
    // Every changed bit of the sealed parts is refused.
    for i in 0..32 {
        let mut t = sealed.clone();
        t.ephemeral_public[i] ^= 1;
        assert!(open_from(&me, "test v1", b"node 3", &t).is_err());
    }
    for i in 0..NONCE_LEN {
        let mut t = sealed.clone();
        t.nonce[i] ^= 1;
        assert!(open_from(&me, "test v1", b"node 3", &t).is_err());
    }
    for i in 0..sealed.ciphertext.len() {
        let mut t = sealed.clone();
        t.ciphertext[i] ^= 1;
        assert!(open_from(&me, "test v1", b"node 3", &t).is_err());
    }
    assert!(!format!("{sealed:?}").contains(&format!("{:?}", sealed.ciphertext)));
}

#[test]
fn low_order_keys_are_refused_both_ways() {
    let low = PublicKey::from([0u8; 32]);
    assert_eq!(
        seal_to(&low, "test v1", b"", b"x"),
        Err(RecipientError::WeakRecipient)
    );
    let me = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let mut sealed = seal_to(&PublicKey::from(&me), "test v1", b"", b"x").expect("seals");
    sealed.ephemeral_public = [0; 32];
    assert_eq!(
        open_from(&me, "test v1", b"", &sealed),
        Err(RecipientError::WeakEphemeral)
    );
}

#[test]
fn debug_never_shows_key_bytes() {
    assert_eq!(format!("{:?}", SealKey::new(&KEY)), "SealKey(<redacted>)");
}

#[test]
fn a_value_sealed_under_a_chosen_nonce_is_the_same_each_time_and_opens_as_any() {
    let key = SealKey::new(&KEY);
    let nonce = [7u8; NONCE_LEN];
    let a = key
        .seal_with_nonce(&nonce, b"key 1", b"material")
        .expect("seals");
    let b = key
        .seal_with_nonce(&nonce, b"key 1", b"material")
        .expect("seals");
    assert_eq!(a, b, "the same value sealed again");
    assert_eq!(&a[1..HEADER_LEN], &nonce);
    assert_eq!(&key.open(b"key 1", &a).expect("opens")[..], b"material");
    let other = key
        .seal_with_nonce(&nonce, b"key 1", b"materiaL")
        .expect("seals");
    assert_ne!(a, other, "another plaintext");
    let elsewhere = key
        .seal_with_nonce(&nonce, b"key 2", b"material")
        .expect("seals");
    assert_ne!(a, elsewhere, "other associated data");
}
