//! Backups out of a store, and a new cluster's first store made from one.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ed25519_dalek::SigningKey;
use hsm_proto::{
    Actor, ClusterId, Event, EventBody, EventHash, NodeId, NodeRecord, Rejection, RequestId, Role,
    SignedEvent,
};
use hsm_raft_store::{
    create, create_restored, decode_snapshot, encode_snapshot, open, EventBatch, StateMachineStore,
    StorageKey, StoreError, TypeConfig,
};
use hsm_state::{sign_event, RestoreTarget, State};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{
    BasicNode, CommittedLeaderId, LogId, Membership, RaftLogReader, StoredMembership, Vote,
};

const NEW_NODE: NodeId = NodeId(7);

fn new_node_key() -> SigningKey {
    SigningKey::from_bytes(&[77; 32])
}

fn new_node_record() -> NodeRecord {
    NodeRecord {
        id: NEW_NODE,
        signing_key: new_node_key().verifying_key().to_bytes(),
        agreement_key: [8; 32],
        transport_key: [8; 32],
        zone: "zone-b".into(),
        address: "127.0.0.1:7100".into(),
    }
}

fn raft_nodes() -> BTreeMap<NodeId, BasicNode> {
    BTreeMap::from([(NEW_NODE, BasicNode::new("127.0.0.1:7100"))])
}

/// The old cluster's last applied log id, as a backup would carry it: a
/// later term than the new node has ever seen.
fn backup_log_id() -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(5, NodeId(1)), 40)
}

/// A store with the setup events applied (log ids term 1, indexes 1..=5).
async fn source_store() -> (tempfile::TempDir, StateMachineStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, mut sm) = create(dir.path(), &StorageKey::generate()).expect("created");
    let responses =
        append_and_apply(&mut log, &mut sm, setup_events(&mut Chain::new(), &[7; 40])).await;
    assert!(responses.iter().all(|r| r.result.is_ok()), "{responses:?}");
    (dir, sm)
}

/// The source store's state restored as a new cluster with [`NEW_NODE`].
async fn restored_state() -> State {
    let (_dir, sm) = source_store().await;
    let (bytes, _) = sm.export().expect("export");
    decode_snapshot(&bytes)
        .expect("decodes")
        .restored_as(
            RestoreTarget {
                cluster_id: ClusterId([4; 16]),
                first_node: new_node_record(),
                domain_check: [4; 32],
            },
            |_, _, old| Ok::<_, Infallible>(old.iter().map(|b| b ^ 0x5a).collect()),
        )
        .expect("restored")
}

fn signed(
    signer: NodeId,
    key: &SigningKey,
    prev_hash: EventHash,
    n: u8,
    body: EventBody,
) -> SignedEvent {
    sign_event(
        Event {
            request_id: RequestId([n; 16]),
            timestamp_ms: 1_800_000_000_000 + u64::from(n),
            actor: Actor::User(user("admin")),
            prev_hash,
            body,
        },
        signer,
        key,
    )
}

fn create_user(name: &str) -> EventBody {
    EventBody::UserCreated {
        username: user(name),
        role: Role::Cu,
        password_hash: ALICE_HASH.into(),
    }
}

#[tokio::test]
async fn export_gives_the_applied_state_and_log_id_and_stores_nothing() {
    let (_dir, mut sm) = source_store().await;
    let (bytes, applied) = sm.export().expect("export");
    assert_eq!(
        applied,
        Some(LogId::new(CommittedLeaderId::new(1, NODE), 5))
    );
    let state = decode_snapshot(&bytes).expect("decodes");
    assert_eq!(state.digest(), sm.digest());
    assert_eq!(encode_snapshot(&state).expect("encodes"), bytes);
    assert!(sm.get_current_snapshot().await.expect("read").is_none());

    let mut damaged = bytes;
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    assert!(decode_snapshot(&damaged).is_err());
}

#[tokio::test]
async fn a_restored_store_opens_with_the_state_applied_at_the_given_log_id() {
    let state = restored_state().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = StorageKey::generate();
    let at = backup_log_id();
    create_restored(dir.path(), &key, &state, at, raft_nodes()).expect("created");

    let (mut log, mut sm) = open(dir.path(), &key).expect("opens");
    let membership = StoredMembership::new(
        Some(at),
        Membership::new(vec![BTreeSet::from([NEW_NODE])], raft_nodes()),
    );
    assert_eq!(sm.digest(), state.digest());
    assert!(sm.read(|a| a.state == state));
    assert_eq!(
        sm.applied_state().await.expect("applied"),
        (Some(at), membership.clone())
    );

    let snapshot = sm
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("a snapshot");
    assert_eq!(snapshot.meta.last_log_id, Some(at));
    assert_eq!(snapshot.meta.last_membership, membership);
    assert_eq!(snapshot.meta.snapshot_id, "restored-40");
    let data = snapshot.snapshot.into_inner();
    assert_eq!(
        decode_snapshot(&data).expect("decodes").digest(),
        state.digest()
    );
    assert_eq!(data, encode_snapshot(&state).expect("encodes"));

    let log_state = log.get_log_state().await.expect("log state");
    assert_eq!(log_state.last_purged_log_id, Some(at));
    assert_eq!(log_state.last_log_id, Some(at));
    assert!(log
        .try_get_log_entries(0..100)
        .await
        .expect("read")
        .is_empty());
    let vote = log.read_vote().await.expect("vote").expect("a vote");
    assert_eq!(vote, Vote::new(5, NEW_NODE));
    assert!(!vote.is_committed());
    assert_eq!(log.read_committed().await.expect("committed"), Some(at));
}

#[tokio::test]
async fn create_restored_refuses_other_members_and_occupied_directories() {
    let state = restored_state().await;
    let key = StorageKey::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("store");
    let wrong = [
        BTreeMap::new(),
        BTreeMap::from([(NodeId(1), BasicNode::new("127.0.0.1:7000"))]),
        {
            let mut two = raft_nodes();
            two.insert(NodeId(8), BasicNode::new("127.0.0.1:7200"));
            two
        },
    ];
    for nodes in wrong {
        let err = create_restored(&target, &key, &state, backup_log_id(), nodes)
            .expect_err("members must match");
        assert!(matches!(err, StoreError::Restore(_)), "{err}");
        assert!(!target.exists(), "nothing is written for refused inputs");
    }
    let err = create_restored(&target, &key, &State::new(), backup_log_id(), raft_nodes())
        .expect_err("an uninitialized state has no members");
    assert!(matches!(err, StoreError::Restore(_)), "{err}");

    create_restored(&target, &key, &state, backup_log_id(), raft_nodes()).expect("created");
    let err = create_restored(&target, &key, &state, backup_log_id(), raft_nodes())
        .expect_err("occupied");
    assert!(err.to_string().contains("not empty"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_on_a_restored_store_leads_and_extends_the_log_and_the_chain() {
    let state = restored_state().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = StorageKey::generate();
    let at = backup_log_id();
    create_restored(dir.path(), &key, &state, at, raft_nodes()).expect("created");

    let (log, sm) = open(dir.path(), &key).expect("opens");
    let config = openraft::Config {
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        ..Default::default()
    }
    .validate()
    .expect("config");
    // No `initialize`: the membership comes from the state machine.
    let raft =
        openraft::Raft::<TypeConfig>::new(NEW_NODE, Arc::new(config), NoPeers, log, sm.clone())
            .await
            .expect("raft starts");
    let wait = || raft.wait(Some(Duration::from_secs(10)));
    let metrics = wait()
        .current_leader(NEW_NODE, "elects itself")
        .await
        .expect("leader");
    assert!(metrics.current_term > 5, "term {}", metrics.current_term);
    // The new leader's blank entry follows the restored log id.
    wait()
        .applied_index(Some(at.index + 1), "blank entry applied")
        .await
        .expect("applied");
    assert_eq!(sm.digest(), state.digest(), "a blank entry changes nothing");

    let new_key = new_node_key();
    let write = signed(NEW_NODE, &new_key, state.head(), 1, create_user("bob-new"));
    let resp = raft
        .client_write(EventBatch::one(write))
        .await
        .expect("written");
    assert_eq!(resp.log_id.index, at.index + 2);
    assert_eq!(resp.data.events[0].result, Ok(()));
    assert!(sm.read(|a| a.state.user(&user("bob-new")).is_some()));
    assert!(sm.read(|a| a.state.user(&user("alice-known")).is_some()));
    assert_eq!(sm.read(|a| a.state.events()), state.events() + 1);

    // The old cluster's node can no longer sign.
    let head = sm.read(|a| a.state.head());
    let old = signed(
        NODE,
        &SigningKey::from_bytes(&[42; 32]),
        head,
        2,
        create_user("eve-old"),
    );
    let resp = raft
        .client_write(EventBatch::one(old))
        .await
        .expect("written");
    assert_eq!(
        resp.data.events[0].result,
        Err(Rejection::UnknownSigner(NODE))
    );
    assert!(sm.read(|a| a.state.user(&user("eve-old")).is_none()));

    let digest = sm.digest();
    raft.shutdown().await.expect("shutdown");
    drop(raft);
    drop(sm);
    // openraft's storage tasks may still hold the store for a moment after
    // shutdown returns (RocksDB's lock): wait until they let go.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let sm = loop {
        match open(dir.path(), &key) {
            Ok((_log, sm)) => break sm,
            Err(e) if e.to_string().contains("lock") && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("reopens: {e:?}"),
        }
    };
    assert_eq!(sm.digest(), digest);
}
