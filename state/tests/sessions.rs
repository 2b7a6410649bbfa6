//! Logouts (`SessionsEnded`): a user ends its own sessions only, one by
//! one or all at once; what is remembered is bounded, and never forgets a
//! session that could still be used.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use hsm_proto::{EndedSession, EventBody, Rejection, Role};
use hsm_state::MAX_ENDED_SESSIONS;

const HOUR_MS: u64 = 3_600_000;

fn ended(c: &Cluster, id: u8) -> EndedSession {
    EndedSession {
        token_id: [id; 16],
        expires_ms: c.now_ms() + HOUR_MS,
    }
}

fn logout(name: &str, token: Option<EndedSession>) -> EventBody {
    EventBody::SessionsEnded {
        username: user(name),
        token,
    }
}

/// Whether alice's session `id`, issued under epoch `epoch`, still stands.
fn stands(c: &Cluster, id: u8, epoch: u64) -> bool {
    !c.state
        .user(&user("alice"))
        .unwrap()
        .session_ended(&[id; 16], epoch)
}

#[test]
fn a_logout_ends_that_session_and_no_other() {
    let mut c = Cluster::with_users(&[("alice", Role::Cu)]);
    let t1 = ended(&c, 1);
    assert_eq!(c.by("alice", logout("alice", Some(t1))).result, Ok(()));
    assert!(!stands(&c, 1, 0));
    assert!(stands(&c, 2, 0));
    // Twice is once.
    assert_eq!(c.by("alice", logout("alice", Some(t1))).result, Ok(()));
    assert_eq!(
        c.state.user(&user("alice")).unwrap().ended_sessions.len(),
        1
    );
}

#[test]
fn a_logout_everywhere_ends_every_session_issued_before_it() {
    let mut c = Cluster::with_users(&[("alice", Role::Cu)]);
    assert_eq!(c.by("alice", logout("alice", None)).result, Ok(()));
    let alice = c.state.user(&user("alice")).unwrap();
    assert_eq!(alice.session_epoch, 1);
    assert!(!stands(&c, 1, 0) && !stands(&c, 2, 0));
    // A session issued after it carries the new epoch.
    assert!(stands(&c, 3, 1));
}

#[test]
fn only_ones_own_sessions_end() {
    let mut c = Cluster::with_users(&[("alice", Role::Cu), ("bob", Role::Cu)]);
    let t = ended(&c, 1);
    for by in ["bob", "admin"] {
        let r = c.by(by, logout("alice", Some(t)));
        assert!(
            matches!(r.result, Err(Rejection::RoleDenied { .. })),
            "{by}: {:?}",
            r.result
        );
    }
    assert!(stands(&c, 1, 0));
}

#[test]
fn an_unactivated_admin_may_log_out() {
    let mut c = Cluster::initialized();
    assert_eq!(c.by("admin", logout("admin", None)).result, Ok(()));
}

#[test]
fn what_is_remembered_is_bounded_and_never_revives_a_usable_session() {
    let mut c = Cluster::with_users(&[("alice", Role::Cu)]);
    for id in 0..MAX_ENDED_SESSIONS {
        let t = ended(&c, u8::try_from(id).unwrap());
        c.by("alice", logout("alice", Some(t))).result.unwrap();
    }
    let alice = c.state.user(&user("alice")).unwrap();
    assert_eq!(alice.ended_sessions.len(), MAX_ENDED_SESSIONS);
    assert_eq!(alice.session_epoch, 0);
    // One more than is remembered: every session so far ends, and the
    // list starts again.
    let t = ended(&c, 200);
    c.by("alice", logout("alice", Some(t))).result.unwrap();
    let alice = c.state.user(&user("alice")).unwrap();
    assert_eq!(alice.session_epoch, 1);
    assert!(alice.ended_sessions.is_empty());
    for id in [0, 63, 200, 201] {
        assert!(!stands(&c, id, 0), "session {id}");
    }

    // Ended sessions are forgotten only once they have expired anyway.
    let t = EndedSession {
        token_id: [7; 16],
        expires_ms: c.now_ms() + 5_000,
    };
    c.by("alice", logout("alice", Some(t))).result.unwrap();
    assert!(!stands(&c, 7, 1));
    c.advance(10_000);
    c.by("alice", logout("alice", Some(ended(&c, 8))))
        .result
        .unwrap();
    let alice = c.state.user(&user("alice")).unwrap();
    assert_eq!(
        alice
            .ended_sessions
            .iter()
            .map(|e| e.token_id[0])
            .collect::<Vec<_>>(),
        vec![8]
    );
}
