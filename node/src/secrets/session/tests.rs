use rand::{Rng, SeedableRng};

use super::*;
use crate::secrets::hex;

const NOW_MS: u64 = 1_700_000_000_000;
const HOUR: Duration = Duration::from_secs(3600);

fn user() -> User {
    User {
        password_epoch: 3,
        ..User::new(
            Username::new("alice").expect("valid"),
            Role::Cu,
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            1_000,
        )
    }
}

fn claims() -> SessionClaims {
    SessionClaims::new(&user(), NOW_MS, HOUR)
}

#[test]
fn a_token_verifies_until_it_expires() {
    let dk = DomainKey::generate(0);
    let c = claims();
    assert_eq!(c.expires_ms, NOW_MS + 3_600_000);
    let token = issue(&dk, &c);
    assert!(token.as_bytes().len() < MAX_TOKEN_LEN);
    assert_eq!(verify(&dk, token.as_bytes(), NOW_MS), Ok(c.clone()));
    assert_eq!(
        verify(&dk, token.as_bytes(), c.expires_ms - 1),
        Ok(c.clone())
    );
    assert_eq!(
        verify(&dk, token.as_bytes(), c.expires_ms),
        Err(SessionError::Expired)
    );
    assert_eq!(
        verify(&dk, token.as_bytes(), u64::MAX),
        Err(SessionError::Expired)
    );
}

#[test]
fn tokens_of_one_user_differ_by_token_id() {
    let dk = DomainKey::generate(0);
    let (a, b) = (claims(), claims());
    assert_ne!(a.token_id, b.token_id);
    assert_ne!(issue(&dk, &a).as_bytes(), issue(&dk, &b).as_bytes());
}

#[test]
fn a_changed_bit_at_any_position_is_refused() {
    let dk = DomainKey::generate(0);
    let token = issue(&dk, &claims());
    let bytes = token.as_bytes();
    for i in 0..bytes.len() {
        for bit in [0x01, 0x80] {
            let mut t = bytes.to_vec();
            t[i] ^= bit;
            let err = verify(&dk, &t, NOW_MS).expect_err("tampered");
            let expected = if i == 0 {
                SessionError::Malformed
            } else {
                SessionError::BadMac
            };
            assert_eq!(err, expected, "flip {bit:#x} at {i}");
        }
    }
    for len in 0..bytes.len() {
        assert!(verify(&dk, &bytes[..len], NOW_MS).is_err(), "cut to {len}");
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert_eq!(verify(&dk, &longer, NOW_MS), Err(SessionError::BadMac));
}

#[test]
fn a_token_from_another_domain_key_is_refused() {
    let token = issue(&DomainKey::generate(0), &claims());
    assert_eq!(
        verify(&DomainKey::generate(0), token.as_bytes(), NOW_MS),
        Err(SessionError::BadMac)
    );
}

#[test]
fn random_bytes_of_many_lengths_never_verify_or_panic() {
    let seed: u64 = rand::thread_rng().gen();
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dk = DomainKey::generate(0);
    for len in 0..(MAX_TOKEN_LEN + 64) {
        for _ in 0..4 {
            let mut bytes = vec![0u8; len];
            rng.fill(bytes.as_mut_slice());
            if rng.gen_bool(0.5) && !bytes.is_empty() {
                bytes[0] = VERSION;
            }
            assert!(
                verify(&dk, &bytes, NOW_MS).is_err(),
                "seed {seed}, len {len}"
            );
        }
    }
}

#[test]
fn an_authentic_token_with_undecodable_claims_is_malformed_not_a_panic() {
    let dk = DomainKey::generate(0);
    let mut signed = vec![VERSION, 0xff, 0xff];
    let tag = mac(&dk, &signed);
    signed.extend_from_slice(tag.as_bytes());
    assert_eq!(verify(&dk, &signed, NOW_MS), Err(SessionError::Malformed));
}

#[test]
fn claims_are_current_only_for_the_same_account_role_and_epoch() {
    let c = claims();
    let u = user();
    assert!(c.is_current(&u));
    let mut changed = u.clone();
    changed.password_epoch += 1;
    assert!(!c.is_current(&changed), "password changed");
    let mut changed = u.clone();
    changed.role = Role::Co;
    assert!(!c.is_current(&changed), "role changed");
    let mut changed = u.clone();
    changed.created_ms += 1;
    assert!(!c.is_current(&changed), "deleted and created again");
    let mut changed = u;
    changed.username = Username::new("bob").expect("valid");
    assert!(!c.is_current(&changed), "another user");
}

#[test]
fn debug_of_a_token_shows_no_token_or_key_bytes() {
    let dk = DomainKey::generate(0);
    let token = issue(&dk, &claims());
    let debug = format!("{token:?}");
    assert_eq!(debug, "SessionToken(<redacted>)");
    let mac_hex = hex(&token.as_bytes()[token.as_bytes().len() - MAC_LEN..]);
    let err = verify(&dk, &token.as_bytes()[1..], NOW_MS).expect_err("cut");
    assert!(!format!("{err} {err:?}").contains(&mac_hex));
    assert!(!format!("{:?}", claims()).contains(&hex(dk.session_mac_key().as_ref())));
}
