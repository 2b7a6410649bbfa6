//! The secrets module seen from outside the crate: a node joins a cluster,
//! receives the domain key sealed to its identity, and then opens material
//! and accepts sessions that another node made.

use std::time::Duration;

use hsm_node::secrets::{
    self, session, DomainKey, NodeIdentity, SecretsError, SessionClaims, SessionError,
};
use hsm_proto::{ClusterId, KeyId, NodeId, Role, Username};
use hsm_state::User;

const NOW_MS: u64 = 1_700_000_000_000;

#[test]
fn a_joining_node_shares_material_and_sessions_with_the_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage_key = [9u8; 32];
    let cluster = ClusterId([1; 16]);

    // The first node creates the domain key and wraps a key's material.
    let domain = DomainKey::generate(0);
    let wrapped = domain
        .wrap_material(KeyId(42), b"aes-256 key bytes")
        .expect("wraps");

    // A joining node has an identity on disk and publishes its agreement key.
    let id_path = dir.path().join("node.identity");
    NodeIdentity::generate()
        .save(&id_path, &storage_key)
        .expect("saves identity");
    let joiner = NodeIdentity::load(&id_path, &storage_key).expect("loads identity");
    let sealed = domain
        .seal_for_node(&joiner.agreement_public(), cluster, NodeId(2))
        .expect("seals");
    let wire = hsm_proto::codec::encode("sealed domain key", &sealed).expect("encodes");

    // The joiner opens it, keeps it sealed on disk, and loads it again.
    let sealed = hsm_proto::codec::decode("sealed domain key", &wire).expect("decodes");
    let received =
        DomainKey::open_sealed(&sealed, joiner.agreement_secret(), cluster, NodeId(2), 0)
            .expect("opens");
    let dk_path = dir.path().join("domain.key");
    received
        .save(&dk_path, &storage_key)
        .expect("saves domain key");
    let received = DomainKey::load(&dk_path, &storage_key).expect("loads domain key");

    let material = received
        .unwrap_material(KeyId(42), &wrapped)
        .expect("unwraps");
    assert_eq!(&material[..], b"aes-256 key bytes");

    // A session issued by the first node verifies on the joiner.
    let user = User::new(
        Username::new("alice").expect("valid"),
        Role::Cu,
        secrets::hash_password("a good password").expect("hashes"),
        NOW_MS - 1,
    );
    assert!(secrets::verify_password(
        "a good password",
        &user.password_hash
    ));
    let claims = SessionClaims::new(&user, NOW_MS, Duration::from_secs(600));
    let token = session::issue(&domain, &claims);
    let verified = session::verify(&received, token.as_bytes(), NOW_MS + 1).expect("verifies");
    assert!(verified.is_current(&user));
    assert_eq!(
        session::verify(&received, token.as_bytes(), NOW_MS + 600_000),
        Err(SessionError::Expired)
    );

    // A node that was not sent the key cannot open what was sent to another.
    let other = NodeIdentity::generate();
    let err = DomainKey::open_sealed(&sealed, other.agreement_secret(), cluster, NodeId(2), 0)
        .expect_err("not the recipient");
    assert!(matches!(err, SecretsError::Transfer { .. }), "{err}");
}
