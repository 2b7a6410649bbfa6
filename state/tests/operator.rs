//! The operator of a member's host (`hsm-node unlock-user`, acting as
//! [`Actor::Operator`]): it unlocks any user, the last crypto officer
//! included and before activation too, and may do nothing else.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use hsm_proto::{Actor, EventBody, KeyFlag, NodeId, Rejection, Role};
use hsm_state::MAX_FAILED_LOGINS;

/// Strangers guess `name`'s password until it is locked (anyone can: the
/// name `admin` is public and a login needs no session).
fn lock(c: &mut Cluster, name: &str) {
    for _ in 0..MAX_FAILED_LOGINS {
        let id = c.next_request_id();
        let attempt = c.event_with_id(id, Actor::Node(FIRST), login_attempt(name));
        let signed = c.sign(attempt);
        c.apply(&signed).result.unwrap();
        c.by_node(FIRST.0, login_rejected(name, id)).result.unwrap();
    }
    assert!(c.state.user(&user(name)).unwrap().is_locked());
    // The next attempt marks it locked; from then on even the right
    // password is refused before it is checked.
    c.by_node(FIRST.0, login_attempt(name)).result.unwrap();
    let attempt = c.by_node(FIRST.0, login_attempt(name));
    assert_eq!(attempt.result, Err(Rejection::Locked(user(name))));
}

/// Users, keys and members as they stand.
fn records(c: &Cluster) -> String {
    let s = &c.state;
    format!(
        "{:?} {:?} {:?}",
        s.users().collect::<Vec<_>>(),
        s.keys().collect::<Vec<_>>(),
        s.nodes().collect::<Vec<_>>()
    )
}

fn operator(node: u64) -> Actor {
    Actor::Operator(NodeId(node))
}

fn unlock(name: &str) -> EventBody {
    EventBody::UserUnlocked {
        username: user(name),
    }
}

#[test]
fn the_operator_of_a_member_unlocks_the_last_officer_activated_or_not() {
    for mut c in [Cluster::initialized(), Cluster::activated()] {
        lock(&mut c, "admin");
        // No officer is left to unlock it: admin itself is refused.
        let by_admin = c.by("admin", unlock("admin"));
        assert_eq!(by_admin.result, Err(Rejection::Locked(user("admin"))));

        let by_operator = c.submit(operator(FIRST.0), unlock("admin"));
        assert_eq!(by_operator.result, Ok(()));
        let admin = c.state.user(&user("admin")).unwrap();
        assert!(!admin.is_locked());
        assert_eq!(admin.failed_logins(c.now_ms()), 0);
        // It logs in again.
        let attempt = c.by_node(FIRST.0, login_attempt("admin"));
        assert_eq!(attempt.result, Ok(()));
        assert!(!c.state.user(&user("admin")).unwrap().locked);
    }
}

#[test]
fn the_operator_unlocks_crypto_users_and_says_when_there_is_nothing_to_unlock() {
    let mut c = Cluster::with_users(&[("alice", Role::Cu)]);
    let idle = c.submit(operator(FIRST.0), unlock("alice"));
    assert_eq!(idle.result, Err(Rejection::NotLocked(user("alice"))));
    lock(&mut c, "alice");
    assert_eq!(c.submit(operator(FIRST.0), unlock("alice")).result, Ok(()));
    let missing = c.submit(operator(FIRST.0), unlock("nobody"));
    assert_eq!(missing.result, Err(Rejection::UserNotFound(user("nobody"))));
}

#[test]
fn only_the_operator_of_a_current_member_counts() {
    let mut c = Cluster::activated();
    lock(&mut c, "admin");
    let stranger = c.submit(operator(99), unlock("admin"));
    assert!(
        matches!(stranger.result, Err(Rejection::UnknownActor(_))),
        "{:?}",
        stranger.result
    );
    assert!(c.state.user(&user("admin")).unwrap().is_locked());
}

#[test]
fn the_operator_may_do_nothing_but_unlock() {
    let mut c = Cluster::with_users(&[("alice", Role::Cu)]);
    c.create_key("alice", 1, "k1");
    let bodies = [
        EventBody::UserCreated {
            username: user("mallory"),
            role: Role::Co,
            password_hash: HASH.into(),
        },
        EventBody::PasswordChanged {
            username: user("admin"),
            password_hash: HASH.into(),
        },
        EventBody::UserDeleted {
            username: user("alice"),
        },
        EventBody::KeyShared {
            key: hsm_proto::KeyId(1),
            with: user("admin"),
        },
        set_flag(1, KeyFlag::Trusted, true),
        aes_key(2, "mine", false),
        rotation(2, &[FIRST.0]),
        EventBody::NodeRemoved { node: FIRST },
        login_attempt("alice"),
    ];
    for body in bodies {
        let before = records(&c);
        let applied = c.submit(operator(FIRST.0), body.clone());
        assert!(
            matches!(applied.result, Err(Rejection::UnknownActor(_))),
            "{body:?}: {:?}",
            applied.result
        );
        assert_eq!(records(&c), before, "{body:?}");
    }
}
