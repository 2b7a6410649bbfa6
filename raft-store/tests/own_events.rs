//! The state machine takes the leader's word (`OwnEvents`) for the
//! signatures it made itself, and only for those.

mod common;

use common::*;
use hsm_proto::Rejection;
use hsm_raft_store::{create, StorageKey};
use hsm_state::event_hash;
use openraft::storage::{RaftLogStorageExt, RaftStateMachine};

#[tokio::test]
async fn apply_skips_the_check_only_of_events_this_node_signed() {
    let key = StorageKey::from_bytes([5; 32]);
    let mut chain = Chain::new();
    let setup = setup_events(&mut chain, &[6; 40]);
    // One more event, its signature damaged after signing.
    let mut forged = chain.event(
        hsm_proto::Actor::User(user("admin")),
        hsm_proto::EventBody::UserCreated {
            username: user("carol"),
            role: hsm_proto::Role::Cu,
            password_hash: ALICE_HASH.into(),
        },
    );
    forged.signature.0[3] ^= 1;
    let entry = chain.entry(forged.clone());
    let signer_key = chain.node_record().signing_key;

    // Not vouched for: verified and refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, mut sm) = create(dir.path(), &key).expect("created");
    append_and_apply(&mut log, &mut sm, setup.clone()).await;
    log.blocking_append([entry.clone()]).await.expect("append");
    let out = sm.apply([entry.clone()]).await.expect("apply");
    assert_eq!(
        out[0].events[0].result,
        Err(Rejection::BadSignature(NODE)),
        "{out:?}"
    );

    // Vouched for with another event's hash: still verified.
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, mut sm) = create(dir.path(), &key).expect("created");
    append_and_apply(&mut log, &mut sm, setup.clone()).await;
    sm.own_events()
        .signed(hsm_proto::EventHash([1; 32]), signer_key);
    log.blocking_append([entry.clone()]).await.expect("append");
    let out = sm.apply([entry.clone()]).await.expect("apply");
    assert_eq!(out[0].events[0].result, Err(Rejection::BadSignature(NODE)));

    // Recorded as signed here with the signer's key: taken as signed.
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, mut sm) = create(dir.path(), &key).expect("created");
    append_and_apply(&mut log, &mut sm, setup).await;
    sm.own_events().signed(event_hash(&forged), signer_key);
    log.blocking_append([entry.clone()]).await.expect("append");
    let out = sm.apply([entry]).await.expect("apply");
    assert_eq!(out[0].events[0].result, Ok(()), "{out:?}");
}

#[tokio::test]
async fn apply_takes_a_members_seal_for_its_events_and_checks_each_event_without_one() {
    let key = StorageKey::from_bytes([5; 32]);
    let mut chain = Chain::new();
    let setup = setup_events(&mut chain, &[6; 40]);
    let mut forged = chain.event(
        hsm_proto::Actor::User(user("admin")),
        hsm_proto::EventBody::UserCreated {
            username: user("carol"),
            role: hsm_proto::Role::Cu,
            password_hash: ALICE_HASH.into(),
        },
    );
    forged.signature.0[3] ^= 1;
    let mut entry = chain.entry(forged.clone());
    let hashes = [event_hash(&forged)];
    let events = match &entry.payload {
        openraft::EntryPayload::Normal(b) => b.events.clone(),
        _ => unreachable!("an event entry"),
    };
    for (seal, expected) in [
        // Sealed by another key than the sealer's: each event checked.
        (
            hsm_state::seal_batch(
                &hashes,
                NODE,
                &ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
            ),
            Err(Rejection::BadSignature(NODE)),
        ),
        // Sealed by the member: its word is taken.
        (
            hsm_state::seal_batch(
                &hashes,
                NODE,
                &ed25519_dalek::SigningKey::from_bytes(&[42; 32]),
            ),
            Ok(()),
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, mut sm) = create(dir.path(), &key).expect("created");
        append_and_apply(&mut log, &mut sm, setup.clone()).await;
        entry.payload = openraft::EntryPayload::Normal(hsm_raft_store::EventBatch {
            events: events.clone(),
            seal: Some(seal),
        });
        log.blocking_append([entry.clone()]).await.expect("append");
        let out = sm.apply([entry.clone()]).await.expect("apply");
        assert_eq!(out[0].events[0].result, expected, "{out:?}");
    }
}
