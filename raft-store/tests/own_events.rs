//! The state machine takes the leader's word for the signatures it made
//! itself (`OwnEvents`) and a member's seal over an entry's events, and
//! only those.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use hsm_proto::{Rejection, SignedEvent};
use hsm_raft_store::{create, ApplyResponse, EventBatch, StateMachineStore, StorageKey};
use hsm_state::{event_hash, seal_batch};
use openraft::storage::{RaftLogStorageExt, RaftStateMachine};
use openraft::{Entry, EntryPayload};

/// An initialized chain's entries, and one more event whose signature was
/// damaged after signing (a user creation the rules accept).
fn setup_and_forged() -> (Vec<Entry<hsm_raft_store::TypeConfig>>, SignedEvent, Chain) {
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
    (setup, forged, chain)
}

/// Applies `setup` to a new store, lets `prepare` act on its state
/// machine, then appends and applies `batch` as the next entry; the
/// outcome of its first event.
async fn apply_after(
    setup: &[Entry<hsm_raft_store::TypeConfig>],
    chain: &mut Chain,
    batch: EventBatch,
    prepare: impl FnOnce(&StateMachineStore),
) -> ApplyResponse {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, mut sm) = create(dir.path(), &StorageKey::from_bytes([5; 32])).expect("created");
    append_and_apply(&mut log, &mut sm, setup.to_vec()).await;
    prepare(&sm);
    let mut entry = chain.entry(batch.events[0].clone());
    entry.payload = EntryPayload::Normal(batch);
    log.blocking_append([entry.clone()]).await.expect("append");
    let out = sm.apply([entry]).await.expect("apply");
    out[0].events[0].clone()
}

#[tokio::test]
async fn apply_skips_the_check_only_of_events_this_node_signed() {
    let (setup, forged, chain) = setup_and_forged();
    let signer_key = chain.node_record().signing_key;
    let cases: [(Option<hsm_proto::EventHash>, Result<(), Rejection>); 3] = [
        // Not vouched for: verified and refused.
        (None, Err(Rejection::BadSignature(NODE))),
        // Vouched for with another event's hash: still verified.
        (
            Some(hsm_proto::EventHash([1; 32])),
            Err(Rejection::BadSignature(NODE)),
        ),
        // Recorded as signed here with the signer's key: taken as signed.
        (Some(event_hash(&forged)), Ok(())),
    ];
    for (recorded, expected) in cases {
        let mut chain = chain.clone();
        let out = apply_after(&setup, &mut chain, EventBatch::one(forged.clone()), |sm| {
            if let Some(hash) = recorded {
                sm.own_events().signed(hash, signer_key);
            }
        })
        .await;
        assert_eq!(out.result, expected, "{out:?}");
    }
}

#[tokio::test]
async fn apply_takes_a_members_seal_for_its_events_and_checks_each_event_without_one() {
    let (setup, forged, chain) = setup_and_forged();
    let hashes = [event_hash(&forged)];
    for (sealer, expected) in [
        // Sealed with another key than the sealer's: each event checked.
        (
            SigningKey::from_bytes(&[1; 32]),
            Err(Rejection::BadSignature(NODE)),
        ),
        // Sealed by the member: its word is taken.
        (chain.signing_key().clone(), Ok(())),
    ] {
        let mut chain = chain.clone();
        let batch = EventBatch {
            events: vec![forged.clone()],
            seal: Some(seal_batch(&hashes, NODE, &sealer)),
        };
        let out = apply_after(&setup, &mut chain, batch, |_| {}).await;
        assert_eq!(out.result, expected, "{out:?}");
    }
}
