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
