//! Logouts (`SessionsEnded`): a user ends its own sessions only, one by
//! one or all at once; what is remembered is bounded, and never forgets a
//! session that could still be used.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use hsm_proto::{EndedSession, EventBody, Rejection, Role};
use hsm_state::{ENDED_SESSION_MARGIN_MS, MAX_ENDED_SESSIONS};

const HOUR_MS: u64 = 3_600_000;

/// Session `id` of alice, issued now (an hour to live).
fn session(c: &Cluster, id: u8) -> EndedSession {
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

/// Whether alice's session `s`, issued under epoch `epoch`, still stands.
fn stands(c: &Cluster, s: &EndedSession, epoch: u64) -> bool {
    !c.state
        .user(&user("alice"))
        .unwrap()
        .session_ended(&s.token_id, epoch, s.expires_ms)
}

#[test]
fn a_logout_ends_that_session_and_no_other() {
    let mut c = Cluster::with_users(&[("alice", Role::Cu)]);
    let (t1, t2) = (session(&c, 1), session(&c, 2));
    assert_eq!(c.by("alice", logout("alice", Some(t1))).result, Ok(()));
    assert!(!stands(&c, &t1, 0));
    assert!(stands(&c, &t2, 0));
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
    let (t1, t2) = (session(&c, 1), session(&c, 2));
    assert_eq!(c.by("alice", logout("alice", None)).result, Ok(()));
    assert_eq!(c.state.user(&user("alice")).unwrap().session_epoch, 1);
    assert!(!stands(&c, &t1, 0) && !stands(&c, &t2, 0));
    // A session issued after it carries the new epoch.
    assert!(stands(&c, &session(&c, 3), 1));
}

#[test]
fn only_ones_own_sessions_end() {
    let mut c = Cluster::with_users(&[("alice", Role::Cu), ("bob", Role::Cu)]);
    let t = session(&c, 1);
    for by in ["bob", "admin"] {
        let r = c.by(by, logout("alice", Some(t)));
        assert!(
            matches!(r.result, Err(Rejection::RoleDenied { .. })),
            "{by}: {:?}",
            r.result
        );
    }
    assert!(stands(&c, &t, 0));
}

#[test]
fn an_unactivated_admin_may_log_out() {
    let mut c = Cluster::initialized();
    assert_eq!(c.by("admin", logout("admin", None)).result, Ok(()));
}

#[test]
fn what_is_remembered_is_bounded_and_never_revives_an_ended_session() {
    let mut c = Cluster::with_users(&[("alice", Role::Cu)]);
    // A live session issued first, never logged out.
    let kept = session(&c, 250);
    let mut ended = Vec::new();
    for id in 0..MAX_ENDED_SESSIONS {
        let t = session(&c, u8::try_from(id).unwrap());
        c.by("alice", logout("alice", Some(t))).result.unwrap();
        ended.push(t);
    }
    let alice = c.state.user(&user("alice")).unwrap();
    assert_eq!(alice.ended_sessions.len(), MAX_ENDED_SESSIONS);
    // One more: the one that expires first leaves the list, and ends with
    // it every session that expires no later (the oldest); the rest of the
    // user's sessions go on, and every ended one stays ended.
    let newest = session(&c, 200);
    c.by("alice", logout("alice", Some(newest))).result.unwrap();
    ended.push(newest);
    let alice = c.state.user(&user("alice")).unwrap();
    assert_eq!(alice.session_epoch, 0);
    assert_eq!(alice.ended_sessions.len(), MAX_ENDED_SESSIONS);
    for t in &ended {
        assert!(!stands(&c, t, 0), "session {}", t.token_id[0]);
    }
    assert!(!stands(&c, &kept, 0), "older than the oldest ended one");
    assert!(stands(&c, &session(&c, 201), 0), "a newer session goes on");

    // Ended sessions are forgotten only well after they expired anyway
    // (a later leader's clock may be behind).
    c.advance(HOUR_MS + ENDED_SESSION_MARGIN_MS / 2);
    c.by("alice", logout("alice", Some(session(&c, 202))))
        .result
        .unwrap();
    assert!(!stands(&c, &newest, 0), "within the margin");
    c.advance(ENDED_SESSION_MARGIN_MS);
    c.by("alice", logout("alice", Some(session(&c, 203))))
        .result
        .unwrap();
    let alice = c.state.user(&user("alice")).unwrap();
    assert_eq!(
        alice
            .ended_sessions
            .iter()
            .map(|e| e.token_id[0])
            .collect::<Vec<_>>(),
        vec![202, 203]
    );
}
