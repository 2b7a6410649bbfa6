//! The Raft protocol version a cluster runs: refusals keep the words of
//! protocol 1 until the leader raises it, typed after; only members raise
//! it, only upwards; a build stops before rules it does not speak.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use hsm_proto::{
    Action, Actor, Attempt, EventBody, KeyChange, NodeId, Rejection, Role, ShareDefect,
};
use hsm_state::protocol::{check_event, check_state, raise_to, Unspoken, SPOKEN};
use hsm_state::{Entity, State};

fn raise(version: u16) -> EventBody {
    EventBody::ProtocolRaised { version }
}

/// A cluster with an officer, a crypto user `alice` owning key 1, and
/// `bob`, another crypto user.
fn cluster() -> Cluster {
    let mut c = Cluster::with_users(&[("alice", Role::Cu), ("bob", Role::Cu)]);
    c.create_key("alice", 1, "k1");
    c
}

/// Three refusals of the kinds protocol 1 recorded in words: an officer
/// creating keys, bob deleting alice's key (he cannot see it: not found,
/// so share it first), alice sharing it with bob twice.
fn refusals(c: &mut Cluster) -> Vec<Rejection> {
    c.share("alice", 1, "bob");
    let key = hsm_proto::KeyId(1);
    vec![
        c.by("admin", aes_key(2, "k2", false)).result.unwrap_err(),
        c.by("bob", EventBody::KeyDeleted { key })
            .result
            .unwrap_err(),
        c.by(
            "alice",
            EventBody::KeyShared {
                key,
                with: user("bob"),
            },
        )
        .result
        .unwrap_err(),
    ]
}

#[test]
fn refusals_keep_protocol_1_words_until_the_cluster_is_raised_then_are_typed() {
    let mut c = cluster();
    assert_eq!(c.state.protocol(), 1);
    let before = c.state.digest();
    let v1 = refusals(&mut c);
    assert_eq!(
        v1,
        vec![
            Rejection::RoleDenied {
                role: Role::Co,
                action: "create keys".into()
            },
            Rejection::NotOwner {
                key: hsm_proto::KeyId(1),
                action: "delete it".into()
            },
            Rejection::InvalidShare(user("bob"), "already shared".into()),
        ]
    );
    // Nothing at protocol 1 records the version: a state a build before
    // versioning made has the very same entities.
    assert!(c
        .state
        .entities()
        .all(|e| !matches!(e, Entity::Protocol(_))));
    assert_ne!(c.state.digest(), before);

    let raised = c.by_node(FIRST.0, raise(2));
    assert_eq!(raised.result, Ok(()));
    assert_eq!(c.state.protocol(), 2);
    assert!(c.state.entities().any(|e| e == Entity::Protocol(2)));

    let v2 = refusals_after_share(&mut c);
    assert_eq!(
        v2,
        vec![
            Rejection::Denied {
                role: Role::Co,
                attempt: Attempt::Action(Action::CreateKey)
            },
            Rejection::OwnerOnly {
                key: hsm_proto::KeyId(1),
                change: KeyChange::Delete
            },
            Rejection::ShareRefused(user("bob"), ShareDefect::AlreadyShared),
        ]
    );
    // People read the same words either way.
    for (a, b) in v1.iter().zip(&v2) {
        assert_eq!(a.to_string(), b.to_string());
    }
}

/// [`refusals`] once the key is shared already.
fn refusals_after_share(c: &mut Cluster) -> Vec<Rejection> {
    let key = hsm_proto::KeyId(1);
    vec![
        c.by("admin", aes_key(3, "k3", false)).result.unwrap_err(),
        c.by("bob", EventBody::KeyDeleted { key })
            .result
            .unwrap_err(),
        c.by(
            "alice",
            EventBody::KeyShared {
                key,
                with: user("bob"),
            },
        )
        .result
        .unwrap_err(),
    ]
}

#[test]
fn only_members_raise_the_protocol_and_only_upwards() {
    let mut c = cluster();
    let by_user = c.by("admin", raise(2));
    assert_eq!(
        by_user.result,
        Err(Rejection::UnknownActor("user admin".into()))
    );
    assert_eq!(c.state.protocol(), 1);
    let by_stranger = c.submit(Actor::Node(NodeId(9)), raise(2));
    assert!(by_stranger.result.is_err());
    assert_eq!(c.state.protocol(), 1);

    assert_eq!(
        c.by_node(FIRST.0, raise(1)).result,
        Err(Rejection::ProtocolNotRaised {
            current: 1,
            asked: 1
        })
    );
    c.by_node(FIRST.0, raise(2)).result.unwrap();
    assert_eq!(
        c.by_node(FIRST.0, raise(2)).result,
        Err(Rejection::ProtocolNotRaised {
            current: 2,
            asked: 2
        })
    );
    // Typed from here on: a user raising it is refused in protocol 2's terms.
    assert_eq!(
        c.by("admin", raise(3)).result,
        Err(Rejection::NoSuchActor(Actor::User(user("admin"))))
    );
    assert_eq!(c.state.protocol(), 2);
}

#[test]
fn the_version_survives_a_reload_with_the_same_digest_and_reaches_the_roster() {
    let mut c = cluster();
    c.by_node(FIRST.0, raise(2)).result.unwrap();
    let reloaded = State::from_entities(c.state.entities()).unwrap();
    assert_eq!(reloaded.protocol(), 2);
    assert_eq!(reloaded.digest(), c.state.digest());
    assert_eq!(c.state.roster().protocol(), 2);
}

#[test]
fn a_build_stops_before_rules_it_does_not_speak() {
    let next = SPOKEN.end() + 1;
    assert_eq!(check_event(&raise(next)), Err(Unspoken { cluster: next }));
    assert_eq!(check_event(&raise(*SPOKEN.end())), Ok(()));
    assert!(Unspoken { cluster: next }
        .to_string()
        .contains(&format!("run a build that speaks {next}")));

    // A state recorded under a version past this build's is refused as a
    // whole (a store, a snapshot or a backup from a newer build).
    let mut c = cluster();
    c.by_node(FIRST.0, raise(*SPOKEN.end())).result.unwrap();
    assert_eq!(check_state(&c.state), Ok(()));
    let mut entities: Vec<Entity> = c
        .state
        .entities()
        .filter(|e| !matches!(e, Entity::Protocol(_)))
        .collect();
    entities.push(Entity::Protocol(next));
    let newer = State::from_entities(entities).unwrap();
    assert_eq!(check_state(&newer), Err(Unspoken { cluster: next }));
}

#[test]
fn the_leader_raises_to_the_newest_version_every_member_speaks() {
    let mut c = cluster();
    let newest = *SPOKEN.end();
    assert!(newest >= 2);
    // One member: no one to ask.
    assert_eq!(raise_to(&c.state, FIRST, |_| None), Some(newest));
    for id in [2, 3] {
        let node = node_record(id);
        c.by("admin", EventBody::NodeAdded { node }).result.unwrap();
    }
    // A member not heard from yet holds it back; so does one that speaks
    // only protocol 1 (a build before versioning).
    assert_eq!(
        raise_to(&c.state, FIRST, |n| (n == NodeId(2)).then_some(newest)),
        None
    );
    assert_eq!(
        raise_to(&c.state, FIRST, |n| Some(if n == NodeId(3) {
            1
        } else {
            newest
        })),
        None
    );
    assert_eq!(raise_to(&c.state, FIRST, |_| Some(newest)), Some(newest));
    // The leader's own build counts too: a member speaking more does not
    // raise it past what the leader speaks.
    assert_eq!(
        raise_to(&c.state, FIRST, |_| Some(newest + 5)),
        Some(newest)
    );
    c.by_node(FIRST.0, raise(newest)).result.unwrap();
    assert_eq!(raise_to(&c.state, FIRST, |_| Some(newest)), None);
    // Before init: nothing to raise.
    assert_eq!(raise_to(&State::new(), FIRST, |_| Some(newest)), None);
}
