//! Snapshot seals: a replica installs a snapshot only if the member that
//! sends it signed exactly that position and digest, for this cluster,
//! with the signing key its member record holds. And the roster a joining
//! node checks those against before its replica records the cluster.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use hsm_proto::{ClusterId, EventBody, NodeId};
use hsm_state::snapshot::{check_snapshot, seal_snapshot, SnapshotRefused, SnapshotSeal};
use hsm_state::StateDigest;

const POSITION: &[u8] = b"last log id 7-1-420, voters {1, 2}";

/// Members 1 and 2; the snapshot being sent is of `c`'s own state.
fn two_members() -> Cluster {
    let mut c = Cluster::with_users(&[("bob", hsm_proto::Role::Cu)]);
    c.add_member(2);
    c
}

fn cluster_id(c: &Cluster) -> ClusterId {
    c.state.cluster().unwrap().cluster_id
}

fn sealed_by(c: &Cluster, signer: u64, digest: &StateDigest) -> SnapshotSeal {
    seal_snapshot(
        cluster_id(c),
        POSITION,
        digest,
        NodeId(signer),
        &node_key(signer),
    )
}

#[test]
fn a_members_seal_on_what_it_sends_is_accepted() {
    let c = two_members();
    let digest = c.state.digest();
    for member in [1, 2] {
        let seal = sealed_by(&c, member, &digest);
        check_snapshot(&c.state, NodeId(member), &seal, POSITION, &digest).unwrap();
    }
}

#[test]
fn a_seal_vouches_for_one_position_and_one_digest_only() {
    let c = two_members();
    let digest = c.state.digest();
    let seal = sealed_by(&c, 2, &digest);
    let other = StateDigest([7; 32]);
    assert_eq!(
        check_snapshot(&c.state, NodeId(2), &seal, POSITION, &other),
        Err(SnapshotRefused::BadSignature(NodeId(2)))
    );
    assert_eq!(
        check_snapshot(&c.state, NodeId(2), &seal, b"last log id 9-1-9000", &digest),
        Err(SnapshotRefused::BadSignature(NodeId(2)))
    );
}

#[test]
fn a_seal_by_any_key_but_the_recorded_one_is_refused() {
    let c = two_members();
    let digest = c.state.digest();
    // Member 2's id, another key (a thief of its TLS key has no other).
    let seal = seal_snapshot(cluster_id(&c), POSITION, &digest, NodeId(2), &node_key(9));
    assert_eq!(
        check_snapshot(&c.state, NodeId(2), &seal, POSITION, &digest),
        Err(SnapshotRefused::BadSignature(NodeId(2)))
    );
}

#[test]
fn the_sender_must_be_the_signer() {
    let c = two_members();
    let digest = c.state.digest();
    // A genuine seal of member 1, replayed by member 2.
    let seal = sealed_by(&c, 1, &digest);
    assert_eq!(
        check_snapshot(&c.state, NodeId(2), &seal, POSITION, &digest),
        Err(SnapshotRefused::NotTheSender {
            signer: NodeId(1),
            sender: NodeId(2),
        })
    );
}

#[test]
fn a_non_member_or_another_cluster_cannot_vouch() {
    let c = two_members();
    let digest = c.state.digest();
    let seal = sealed_by(&c, 3, &digest);
    assert_eq!(
        check_snapshot(&c.state, NodeId(3), &seal, POSITION, &digest),
        Err(SnapshotRefused::UnknownSigner(NodeId(3)))
    );
    let elsewhere = seal_snapshot(
        ClusterId([5; 16]),
        POSITION,
        &digest,
        NodeId(2),
        &node_key(2),
    );
    assert!(matches!(
        check_snapshot(&c.state, NodeId(2), &elsewhere, POSITION, &digest),
        Err(SnapshotRefused::OtherCluster { .. })
    ));
}

#[test]
fn a_removed_member_can_no_longer_vouch() {
    let mut c = two_members();
    c.by("admin", EventBody::NodeRemoved { node: NodeId(2) })
        .result
        .unwrap();
    let digest = c.state.digest();
    let seal = sealed_by(&c, 2, &digest);
    assert_eq!(
        check_snapshot(&c.state, NodeId(2), &seal, POSITION, &digest),
        Err(SnapshotRefused::UnknownSigner(NodeId(2)))
    );
}

#[test]
fn a_roster_holds_the_cluster_and_its_members_only() {
    let c = two_members();
    let roster = c.state.roster();
    assert_eq!(roster.cluster(), c.state.cluster());
    assert_eq!(roster.nodes().count(), 2);
    assert_eq!(roster.users().count(), 0);
    let digest = c.state.digest();
    let seal = sealed_by(&c, 2, &digest);
    check_snapshot(&roster, NodeId(2), &seal, POSITION, &digest).unwrap();
}

#[test]
fn a_joining_node_uses_only_a_roster_of_its_cluster_that_records_it_and_the_server() {
    use hsm_state::authz::check_roster;
    let c = two_members();
    let roster = c.state.roster();
    let id = cluster_id(&c);
    let me = node_key(2).verifying_key().to_bytes();
    let server = node_record(1).transport_key;
    check_roster(&roster, id, NodeId(2), &me, &server).unwrap();
    assert!(check_roster(&roster, ClusterId([5; 16]), NodeId(2), &me, &server).is_err());
    assert!(check_roster(&roster, id, NodeId(3), &me, &server).is_err());
    let other_key = node_key(3).verifying_key().to_bytes();
    assert!(check_roster(&roster, id, NodeId(2), &other_key, &server).is_err());
    assert!(check_roster(&roster, id, NodeId(2), &me, &[0xee; 32]).is_err());
    assert!(check_roster(&hsm_state::State::new(), id, NodeId(2), &me, &server).is_err());
}
