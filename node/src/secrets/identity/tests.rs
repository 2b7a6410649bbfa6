use super::*;
use crate::secrets::hex;
use ed25519_dalek::{Signer, Verifier};

#[test]
fn generated_identities_are_distinct_and_their_keys_work() {
    let a = NodeIdentity::generate();
    let b = NodeIdentity::generate();
    assert_ne!(a.verifying_key_bytes(), b.verifying_key_bytes());
    assert_ne!(
        a.agreement_public().as_bytes(),
        b.agreement_public().as_bytes()
    );
    let sig = a.signing_key().sign(b"event");
    assert!(a.verifying_key().verify(b"event", &sig).is_ok());
    let ab = a.agreement_secret().diffie_hellman(&b.agreement_public());
    let ba = b.agreement_secret().diffie_hellman(&a.agreement_public());
    assert_eq!(ab.as_bytes(), ba.as_bytes());
}

#[test]
fn debug_shows_public_keys_and_no_secret_bytes() {
    let id = NodeIdentity::generate();
    let debug = format!("{id:?}");
    assert!(debug.contains(&hex(&id.verifying_key_bytes())), "{debug}");
    assert!(!debug.contains(&hex(id.signing.as_bytes())), "{debug}");
    assert!(!debug.contains(&hex(&id.agreement.to_bytes())), "{debug}");
}

#[test]
fn an_identity_file_round_trips_and_holds_no_raw_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.identity");
    let storage_key = [0x42; 32];
    let id = NodeIdentity::generate();
    id.save(&path, &storage_key).expect("saves");
    let loaded = NodeIdentity::load(&path, &storage_key).expect("loads");
    assert_eq!(loaded.signing.as_bytes(), id.signing.as_bytes());
    assert_eq!(loaded.agreement.to_bytes(), id.agreement.to_bytes());

    let contents = std::fs::read(&path).expect("reads");
    let text = String::from_utf8_lossy(&contents).to_lowercase();
    for secret in [
        id.signing.as_bytes().to_vec(),
        id.agreement.to_bytes().to_vec(),
        storage_key.to_vec(),
    ] {
        assert!(
            !contents.windows(32).any(|w| w == secret.as_slice()),
            "raw secret in file"
        );
        assert!(!text.contains(&hex(&secret)), "hex secret in file");
    }
}
