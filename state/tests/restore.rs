//! Restoring a backed-up state as the first state of a new cluster.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::convert::Infallible;

use common::*;
use hsm_proto::{ClusterId, EventBody, KeyId, NodeId, Rejection, Role};
use hsm_state::{Entity, RestoreError, RestoreTarget, State};

const NEW_CLUSTER: ClusterId = ClusterId([9; 16]);
const NEW_NODE: u64 = 4;

fn target(node: u64) -> RestoreTarget {
    RestoreTarget {
        cluster_id: NEW_CLUSTER,
        first_node: node_record(node),
        domain_check: [5; 32],
    }
}

/// A stand-in for re-wrapping under a new domain key: recognisably new
/// material that depends on the key and the old material.
fn rewrapped(id: KeyId, old: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = old.iter().map(|b| b ^ 0xFF).collect();
    out.extend_from_slice(&id.0.to_be_bytes());
    out
}

fn rewrap_ok(id: KeyId, _generation: u32, old: &[u8]) -> Result<Vec<u8>, Infallible> {
    Ok(rewrapped(id, old))
}

/// An activated cluster with users, shared keys of both kinds, members 1
/// and 2, retired member 3, and a locked-out user.
fn backed_up() -> Cluster {
    let mut c =
        Cluster::with_users(&[("alice", Role::Cu), ("carol", Role::Cu), ("olga", Role::Co)]);
    c.create_key("alice", 10, "tde");
    c.create_key("alice", 11, "tde");
    let a = c.by("carol", ed_key(12, "signing"));
    assert_eq!(a.result, Ok(()));
    c.share("alice", 10, "carol");
    for id in [2, 3] {
        let a = c.by(
            "admin",
            EventBody::NodeAdded {
                node: node_record(id),
            },
        );
        assert_eq!(a.result, Ok(()), "adding node {id}");
    }
    let a = c.by("admin", EventBody::NodeRemoved { node: NodeId(3) });
    assert_eq!(a.result, Ok(()));
    c.fail_logins("carol", 2);
    // A login in progress when the backup was taken.
    c.reserve_login(1, "carol");
    c
}

fn create(name: &str) -> EventBody {
    EventBody::UserCreated {
        username: user(name),
        role: Role::Cu,
        password_hash: HASH.into(),
    }
}

#[test]
fn the_restored_state_takes_events_from_the_new_node_and_refuses_old_members() {
    let mut c = backed_up();
    c.state = c.state.restored_as(target(NEW_NODE), rewrap_ok).unwrap();

    c.signer = NodeId(NEW_NODE);
    c.create_user("bob", Role::Cu);
    c.create_key("alice", 20, "after-restore");
    c.share("alice", 20, "bob");
    let a = c.by("carol", EventBody::KeyDeleted { key: KeyId(12) });
    assert_eq!(a.result, Ok(()));
    // The old cluster's login in progress never finishes here; its
    // failures carry over until a login succeeds.
    let carol = c.state.user(&user("carol")).unwrap();
    assert_eq!((carol.failures, carol.reservations.len()), (2, 0));
    let attempt = c.reserve_login(NEW_NODE, "carol");
    let a = c.by_node(NEW_NODE, login_ok("carol", attempt));
    assert_eq!(a.result, Ok(()));
    assert_eq!(
        c.state
            .user(&user("carol"))
            .unwrap()
            .failed_logins(c.now_ms()),
        0
    );

    // Old members, current and retired, can no longer sign.
    for old in [1, 2, 3] {
        c.signer = NodeId(old);
        c.expect_refused(
            as_user("admin"),
            create("dave"),
            Rejection::UnknownSigner(NodeId(old)),
        );
    }
    assert!(c.state.user(&user("dave")).is_none());

    // Their ids are never given out again.
    c.signer = NodeId(NEW_NODE);
    for old in [1, 2, 3] {
        let a = c.by(
            "admin",
            EventBody::NodeAdded {
                node: node_record(old),
            },
        );
        assert!(matches!(a.result, Err(Rejection::Membership(_))), "{a:?}");
    }
    let a = c.by(
        "admin",
        EventBody::NodeAdded {
            node: node_record(5),
        },
    );
    assert_eq!(a.result, Ok(()));
}

#[test]
fn an_uninitialized_state_is_refused() {
    let err = State::new()
        .restored_as(target(NEW_NODE), rewrap_ok)
        .unwrap_err();
    assert!(matches!(err, RestoreError::NotInitialized), "{err:?}");
    assert!(err.to_string().contains("never initialized"), "{err}");
}

#[test]
fn a_member_or_retired_id_for_the_new_node_is_refused() {
    let c = backed_up();
    for used in [1, 2, 3] {
        let err = c.state.restored_as(target(used), rewrap_ok).unwrap_err();
        assert!(
            matches!(err, RestoreError::NodeIdUsed(id) if id == NodeId(used)),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&format!("node id n{used}")),
            "{err}"
        );
    }
}

#[test]
fn old_members_are_retired_and_the_new_node_is_the_only_member() {
    let c = backed_up();
    let old = c.state.cluster().unwrap().clone();
    assert_eq!(old.retired_nodes, BTreeSet::from([NodeId(3)]));
    let r = c.state.restored_as(target(NEW_NODE), rewrap_ok).unwrap();
    let cluster = r.cluster().unwrap();
    assert_eq!(cluster.cluster_id, NEW_CLUSTER);
    assert_ne!(old.cluster_id, NEW_CLUSTER);
    assert_eq!(cluster.created_ms, old.created_ms);
    assert_eq!(cluster.activated, old.activated);
    assert_eq!(
        cluster.retired_nodes,
        BTreeSet::from([NodeId(1), NodeId(2), NodeId(3)])
    );
    assert_eq!(r.nodes().cloned().collect::<Vec<_>>(), vec![node_record(4)]);
    assert_eq!(r.head(), c.state.head());
    assert_eq!(r.events(), c.state.events());
    // Users carry over, but for logins in progress: those never finish
    // in the new cluster.
    let without_logins_in_progress = |s: &State| -> Vec<hsm_state::User> {
        s.users()
            .map(|u| hsm_state::User {
                reservations: Vec::new(),
                ..u.clone()
            })
            .collect()
    };
    assert!(c.state.users().any(|u| !u.reservations.is_empty()));
    assert_eq!(
        r.users().cloned().collect::<Vec<_>>(),
        without_logins_in_progress(&c.state)
    );
}

#[test]
fn every_key_gets_its_rewrapped_material_and_keeps_everything_else() {
    let c = backed_up();
    let mut calls = Vec::new();
    let r = c
        .state
        .restored_as(target(NEW_NODE), |id, generation, old| {
            calls.push(id);
            rewrap_ok(id, generation, old)
        })
        .unwrap();
    assert_eq!(calls, vec![KeyId(10), KeyId(11), KeyId(12)]);
    assert_eq!(r.key_count(), 3);
    for old in c.state.keys() {
        let new = r.key(old.id).unwrap();
        assert_eq!(
            new.wrapped_material,
            rewrapped(old.id, &old.wrapped_material)
        );
        assert_ne!(new.wrapped_material, old.wrapped_material);
        let mut expected = old.clone();
        expected.wrapped_material = new.wrapped_material.clone();
        assert!(
            *new == expected,
            "key {} changed beyond its material",
            old.id
        );
    }
    // Derived indexes follow the keys.
    assert_eq!(r.keys_owned_by(&user("alice")).count(), 2);
    assert_eq!(r.keys_owned_by(&user("carol")).count(), 1);
}

#[test]
fn remembered_requests_are_forgotten_and_the_indexes_are_consistent() {
    let c = backed_up();
    let requests = |s: &State| {
        s.entities()
            .filter(|e| matches!(e, Entity::Request(_)))
            .count()
    };
    assert!(requests(&c.state) > 0);
    let r = c.state.restored_as(target(NEW_NODE), rewrap_ok).unwrap();
    assert_eq!(requests(&r), 0);
    assert_eq!(r.entity_count(), 1 + 4 + 3 + 1);
    // What a store would rebuild from the records is the same state,
    // derived indexes included.
    let rebuilt = State::from_entities(r.entities()).unwrap();
    assert_eq!(rebuilt, r);
    assert_eq!(rebuilt.digest(), r.digest());
}

#[test]
fn a_failed_rewrap_names_the_key_and_nothing_is_returned() {
    let c = backed_up();
    let err = c
        .state
        .restored_as(target(NEW_NODE), |id, _, old| {
            if id == KeyId(11) {
                Err("the old domain key does not open it")
            } else {
                Ok(rewrapped(id, old))
            }
        })
        .unwrap_err();
    assert!(
        matches!(&err, RestoreError::Rewrap { key, reason }
            if *key == KeyId(11) && reason == "the old domain key does not open it"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "cannot re-wrap the material of key {}: the old domain key does not open it",
            KeyId(11)
        )
    );

    // Empty or oversized material is refused too.
    for len in [0, hsm_proto::MAX_KEY_BLOB_LEN + 1] {
        let err = c
            .state
            .restored_as(target(NEW_NODE), |_, _, _| {
                Ok::<_, Infallible>(vec![1; len])
            })
            .unwrap_err();
        assert!(
            matches!(err, RestoreError::Rewrap { key, .. } if key == KeyId(10)),
            "{err:?}"
        );
    }
}

#[test]
fn the_same_inputs_give_the_same_digest() {
    let c = backed_up();
    let a = c.state.restored_as(target(NEW_NODE), rewrap_ok).unwrap();
    let b = c
        .state
        .clone()
        .restored_as(target(NEW_NODE), rewrap_ok)
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.digest(), b.digest());
    assert_ne!(a.digest(), c.state.digest());

    let other_node = c.state.restored_as(target(5), rewrap_ok).unwrap();
    assert_ne!(other_node.digest(), a.digest());
    let other_cluster = c
        .state
        .restored_as(
            RestoreTarget {
                cluster_id: ClusterId([8; 16]),
                first_node: node_record(NEW_NODE),
                domain_check: [5; 32],
            },
            rewrap_ok,
        )
        .unwrap();
    assert_ne!(other_cluster.digest(), a.digest());
    let other_material = c
        .state
        .restored_as(target(NEW_NODE), |_, _, old| {
            Ok::<_, Infallible>(old.to_vec())
        })
        .unwrap();
    assert_ne!(other_material.digest(), a.digest());
}
