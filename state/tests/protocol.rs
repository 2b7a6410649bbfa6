//! The Raft protocol version a cluster runs: refusals keep the words of
//! protocol 1 until the leader raises it, typed after; only members raise
//! it, only upwards; a build stops before rules it does not speak.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use hsm_proto::{
    Action, Actor, Attempt, EventBody, KeyChange, NodeId, Rejection, Role, ShareDefect,
};
use hsm_state::protocol::{check_event, check_proposal, check_state, raise_to, Unspoken, SPOKEN};
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

/// Three refusals of the kinds protocol 1 recorded in words, once alice's
/// key 1 is shared with bob: an officer creating key `new_key`, bob
/// deleting alice's key, alice sharing it with bob again.
fn refusals(c: &mut Cluster, new_key: u64) -> Vec<Rejection> {
    let key = hsm_proto::KeyId(1);
    vec![
        c.by("admin", aes_key(new_key, "k", false))
            .result
            .unwrap_err(),
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
    c.share("alice", 1, "bob");
    let before = c.state.digest();
    let v1 = refusals(&mut c, 2);
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

    let v2 = refusals(&mut c, 3);
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

#[test]
fn only_the_leader_raises_the_protocol_as_itself_one_step_at_a_time() {
    let mut c = cluster();
    c.add_member(2);
    let by_user = c.by("admin", raise(2));
    assert_eq!(
        by_user.result,
        Err(Rejection::RaiseNotByLeader(Actor::User(user("admin"))))
    );
    // A member, in its own name, in an event the leader (node 1) signs:
    // what a member's forwarded write becomes.
    let by_member = c.by_node(2, raise(2));
    assert_eq!(
        by_member.result,
        Err(Rejection::RaiseNotByLeader(Actor::Node(NodeId(2))))
    );
    let by_stranger = c.submit(Actor::Node(NodeId(9)), raise(2));
    assert!(by_stranger.result.is_err());
    assert_eq!(c.state.protocol(), 1);

    for asked in [1, 3, u16::MAX] {
        assert_eq!(
            c.by_node(FIRST.0, raise(asked)).result,
            Err(Rejection::ProtocolNotRaised { current: 1, asked })
        );
    }
    c.by_node(FIRST.0, raise(2)).result.unwrap();
    assert_eq!(
        c.by_node(FIRST.0, raise(2)).result,
        Err(Rejection::ProtocolNotRaised {
            current: 2,
            asked: 2
        })
    );
    assert_eq!(
        c.by("admin", raise(3)).result,
        Err(Rejection::RaiseNotByLeader(Actor::User(user("admin"))))
    );
    assert_eq!(c.state.protocol(), 2);
}

/// The leader proposes only its own raise, to a version it speaks; a
/// replica stops only before a raise the rules accept (its signer's own)
/// to a version it does not speak: a raise in anyone else's name changes
/// nothing and stops no one.
#[test]
fn a_leader_proposes_only_its_own_raise_and_replicas_stop_only_for_one() {
    let mut c = cluster();
    let next = *SPOKEN.end() + 1;
    assert_eq!(
        check_proposal(&c.state, FIRST, &Actor::Node(FIRST), &raise(2)),
        Ok(())
    );
    assert_eq!(
        check_proposal(&c.state, FIRST, &Actor::Node(NodeId(2)), &raise(2)),
        Err(Rejection::RaiseNotByLeader(Actor::Node(NodeId(2))))
    );
    assert!(check_proposal(&c.state, FIRST, &Actor::Node(FIRST), &raise(next)).is_err());
    assert_eq!(
        check_proposal(
            &c.state,
            FIRST,
            &Actor::Node(NodeId(2)),
            &aes_key(5, "k", false)
        ),
        Ok(())
    );
    let own = c.event(Actor::Node(FIRST), raise(next));
    assert_eq!(check_event(&c.sign(own)), Err(Unspoken { cluster: next }));
    let forwarded = c.event(Actor::Node(NodeId(2)), raise(next));
    assert_eq!(check_event(&c.sign(forwarded)), Ok(()));
}

#[test]
fn the_version_survives_a_reload_with_the_same_digest_and_reaches_the_roster() {
    let mut c = cluster();
    c.by_node(FIRST.0, raise(2)).result.unwrap();
    assert_eq!(c.state.entity_count(), c.state.entities().count());
    let reloaded = State::from_entities(c.state.entities()).unwrap();
    assert_eq!(reloaded.protocol(), 2);
    assert_eq!(reloaded.digest(), c.state.digest());
    assert_eq!(c.state.roster().protocol(), 2);
    // Version 1 is never recorded: a record of it (or of 0) is no state
    // apply could have made.
    for v in [0, 1] {
        let mut entities: Vec<Entity> = c
            .state
            .entities()
            .filter(|e| !matches!(e, Entity::Protocol(_)))
            .collect();
        entities.push(Entity::Protocol(v));
        assert!(State::from_entities(entities).is_err(), "version {v}");
    }
}

#[test]
fn a_build_stops_before_rules_it_does_not_speak() {
    let next = SPOKEN.end() + 1;
    let mut c = cluster();
    let past = c.event(Actor::Node(FIRST), raise(next));
    assert_eq!(check_event(&c.sign(past)), Err(Unspoken { cluster: next }));
    let spoken = c.event(Actor::Node(FIRST), raise(*SPOKEN.end()));
    assert_eq!(check_event(&c.sign(spoken)), Ok(()));
    assert!(Unspoken { cluster: next }
        .to_string()
        .contains(&format!("run a build that speaks {next}")));

    // A state recorded under a version past this build's is refused as a
    // whole (a store, a snapshot or a backup from a newer build).
    for v in 2..=*SPOKEN.end() {
        c.by_node(FIRST.0, raise(v)).result.unwrap();
    }
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
fn the_leader_raises_to_the_next_version_once_every_member_speaks_it() {
    let mut c = cluster();
    let newest = *SPOKEN.end();
    assert!(newest >= 2);
    // One member: no one to ask.
    assert_eq!(raise_to(&c.state, FIRST, |_| None), Some(2));
    for id in [2, 3] {
        c.add_member(id);
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
    // One step at a time, and never past what the leader's own build
    // speaks.
    for v in 2..=newest {
        assert_eq!(raise_to(&c.state, FIRST, |_| Some(newest + 5)), Some(v));
        c.by_node(FIRST.0, raise(v)).result.unwrap();
    }
    assert_eq!(raise_to(&c.state, FIRST, |_| Some(newest + 5)), None);
    // Before init: nothing to raise.
    assert_eq!(raise_to(&State::new(), FIRST, |_| Some(newest)), None);
}
