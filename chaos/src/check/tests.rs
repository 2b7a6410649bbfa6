//! Each checker against a history a correct cluster could produce (no
//! anomaly) and against known-bad ones (each must be flagged), so a valid
//! verdict means something.

use super::*;
use crate::history::KeySeen;

/// Builds histories: `at(invoke, complete)` times in ms.
#[derive(Default)]
struct H(Vec<Entry>);

impl H {
    fn push(
        &mut self,
        actor: &str,
        op: Op,
        (invoke_ms, complete_ms): (u64, u64),
        outcome: Outcome,
    ) -> &mut H {
        let id = self.0.len() as u64;
        self.0.push(Entry {
            id,
            process: 0,
            actor: actor.into(),
            node: Some(1),
            op,
            invoke_ms,
            complete_ms,
            outcome,
        });
        self
    }

    fn create(&mut self, actor: &str, key: KeyId, at: (u64, u64)) -> &mut H {
        self.push(
            actor,
            Op::CreateKey {
                label: format!("k{key}"),
            },
            at,
            Outcome::Ok {
                created: Some(key),
                seen: None,
            },
        )
    }
}

fn failed(failure: Failure) -> Outcome {
    Outcome::Failed { failure }
}

fn seen(sensitive: bool, extractable: bool) -> Outcome {
    Outcome::Ok {
        created: None,
        seen: Some(KeySeen {
            sensitive,
            extractable,
        }),
    }
}

fn not_found() -> Outcome {
    failed(Failure::NotFound)
}

fn share(key: KeyId, user: &str) -> Op {
    Op::Share {
        key,
        user: user.into(),
    }
}

fn unshare(key: KeyId, user: &str) -> Op {
    Op::Unshare {
        key,
        user: user.into(),
    }
}

fn login(user: &str, password: u32) -> Op {
    Op::Login {
        user: user.into(),
        password,
    }
}

/// Wrong-password checks of `bob` invoked at each of `times`.
fn wrong_guesses(h: &mut H, times: impl IntoIterator<Item = u64>) {
    for t in times {
        h.push(
            "bob",
            login("bob", u32::MAX),
            (t, t + 1),
            failed(Failure::BadPassword),
        );
    }
}

fn checkers(anomalies: &[Anomaly]) -> Vec<&str> {
    anomalies.iter().map(|a| a.checker.as_str()).collect()
}

#[test]
fn a_correct_history_with_concurrency_and_unknowns_is_valid() {
    let mut h = H::default();
    h.create("alice", 1, (0, 10))
        // Concurrent with the create: may miss it.
        .push("alice", Op::ReadKey { key: 1 }, (5, 8), not_found())
        .push("alice", Op::Sign { key: 1 }, (11, 12), Outcome::DONE)
        .push(
            "alice",
            Op::SetSensitive { key: 1 },
            (20, 30),
            Outcome::Unknown,
        )
        // The unknown set may not have applied yet.
        .push("alice", Op::ReadKey { key: 1 }, (31, 32), seen(false, true))
        .push("alice", Op::ReadKey { key: 1 }, (40, 41), seen(true, true))
        .push("alice", share(1, "bob"), (42, 43), Outcome::DONE)
        .push("bob", Op::Sign { key: 1 }, (44, 45), Outcome::DONE)
        // Concurrent with the unshare: may still succeed.
        .push("alice", unshare(1, "bob"), (50, 60), Outcome::DONE)
        .push("bob", Op::Sign { key: 1 }, (55, 61), Outcome::DONE)
        .push("bob", Op::Sign { key: 1 }, (62, 63), not_found())
        // A delete in flight may make the owner's read miss.
        .push("alice", Op::DeleteKey { key: 1 }, (70, 80), Outcome::DONE)
        .push("alice", Op::ReadKey { key: 1 }, (75, 76), not_found())
        .push("alice", Op::Sign { key: 1 }, (81, 82), not_found());
    assert_eq!(all(&h.0, &[]), Vec::new());
}

#[test]
fn a_lost_write_is_flagged() {
    let mut h = H::default();
    h.create("alice", 1, (0, 10))
        .push("alice", Op::ReadKey { key: 1 }, (20, 21), not_found());
    assert_eq!(
        checkers(&all(&h.0, &[])),
        ["linearizability", "acknowledged-writes"]
    );
}

#[test]
fn another_users_not_found_is_no_lost_write() {
    let mut h = H::default();
    h.create("alice", 1, (0, 10))
        .push("bob", Op::ReadKey { key: 1 }, (20, 21), not_found());
    assert!(acknowledged_writes(&h.0).is_empty());
}

#[test]
fn a_resurrected_key_is_flagged() {
    let mut h = H::default();
    h.create("alice", 1, (0, 10))
        .push("alice", Op::DeleteKey { key: 1 }, (20, 30), Outcome::DONE)
        .push("alice", Op::Sign { key: 1 }, (31, 32), Outcome::DONE);
    assert_eq!(
        checkers(&all(&h.0, &[])),
        ["linearizability", "deleted-keys"]
    );
}

#[test]
fn a_ratchet_going_back_is_flagged() {
    let mut h = H::default();
    h.create("alice", 1, (0, 10))
        .push(
            "alice",
            Op::SetSensitive { key: 1 },
            (20, 30),
            Outcome::DONE,
        )
        .push("alice", Op::ReadKey { key: 1 }, (31, 32), seen(false, true));
    assert_eq!(checkers(&ratchets(&h.0)), ["ratchets"]);
    // A stale read after a fresher one: back from what was already seen.
    let mut h = H::default();
    h.create("alice", 1, (0, 10))
        .push("alice", Op::ReadKey { key: 1 }, (20, 21), seen(true, false))
        .push("alice", Op::ReadKey { key: 1 }, (30, 31), seen(true, true));
    assert_eq!(checkers(&ratchets(&h.0)), ["ratchets"]);
}

#[test]
fn a_use_after_an_acknowledged_unshare_is_flagged() {
    let mut h = H::default();
    h.create("alice", 1, (0, 10))
        .push("alice", unshare(1, "bob"), (20, 30), Outcome::DONE)
        .push("bob", Op::Sign { key: 1 }, (31, 32), Outcome::DONE);
    assert_eq!(checkers(&all(&h.0, &[])), ["linearizability", "revocation"]);
    // Shared again before it: allowed.
    h.push("alice", share(1, "bob"), (40, 50), Outcome::DONE)
        .push("bob", Op::Sign { key: 1 }, (45, 51), Outcome::DONE);
    assert_eq!(revocation(&h.0).len(), 1);
}

#[test]
fn a_share_that_may_land_after_the_unshare_makes_a_later_use_valid() {
    // Concurrent with the unshare (invoked at the same time, acknowledged
    // after it): it may have applied last, so bob's use is allowed.
    let mut h = H::default();
    h.create("alice", 1, (0, 5))
        .push("alice", share(1, "bob"), (10, 20), Outcome::DONE)
        .push("alice", unshare(1, "bob"), (10, 15), Outcome::DONE)
        .push("bob", Op::Sign { key: 1 }, (25, 26), Outcome::DONE);
    assert!(revocation(&h.0).is_empty(), "{:?}", revocation(&h.0));
    // Likewise a share invoked before the unshare whose outcome is unknown:
    // it may apply at any time later.
    let mut h = H::default();
    h.create("alice", 1, (0, 5))
        .push("alice", share(1, "bob"), (6, 9), Outcome::Unknown)
        .push("alice", unshare(1, "bob"), (10, 15), Outcome::DONE)
        .push("bob", Op::Sign { key: 1 }, (25, 26), Outcome::DONE);
    assert!(revocation(&h.0).is_empty(), "{:?}", revocation(&h.0));
    // But not one that definitely failed, nor one acknowledged before the
    // unshare was invoked.
    let mut h = H::default();
    h.create("alice", 1, (0, 5))
        .push("alice", share(1, "bob"), (6, 8), Outcome::DONE)
        .push(
            "alice",
            share(1, "bob"),
            (6, 12),
            failed(Failure::Forbidden),
        )
        .push("alice", unshare(1, "bob"), (10, 15), Outcome::DONE)
        .push("bob", Op::Sign { key: 1 }, (25, 26), Outcome::DONE);
    assert_eq!(checkers(&revocation(&h.0)), ["revocation"]);
}

#[test]
fn a_change_back_that_may_land_after_the_change_makes_a_later_login_valid() {
    let to = |n: u32| Op::ChangePassword {
        user: "bob".into(),
        to: n,
    };
    let mut h = H::default();
    h.push("bob", to(0), (10, 20), Outcome::Unknown)
        .push("bob", to(1), (12, 18), Outcome::DONE)
        .push("bob", login("bob", 0), (30, 31), Outcome::DONE);
    assert!(revocation(&h.0).is_empty(), "{:?}", revocation(&h.0));
}

#[test]
fn a_login_with_the_old_password_after_a_change_is_flagged() {
    let mut h = H::default();
    let change = Op::ChangePassword {
        user: "bob".into(),
        to: 1,
    };
    h.push("bob", login("bob", 0), (0, 5), Outcome::DONE)
        .push("bob", change, (10, 20), Outcome::DONE)
        .push("bob", login("bob", 0), (15, 21), Outcome::DONE)
        .push("bob", login("bob", 1), (22, 23), Outcome::DONE);
    assert!(revocation(&h.0).is_empty());
    h.push("bob", login("bob", 0), (30, 31), Outcome::DONE);
    assert_eq!(checkers(&revocation(&h.0)), ["revocation"]);
}

#[test]
fn a_sixth_checked_guess_and_a_login_after_the_fifth_are_flagged() {
    let mut h = H::default();
    wrong_guesses(&mut h, (0..5).map(|t| t * 10));
    let locked = failed(Failure::Locked);
    h.push("bob", login("bob", 0), (60, 61), locked);
    assert!(lockout(&h.0).is_empty(), "five guesses, then locked: valid");
    wrong_guesses(&mut h, [70]);
    assert_eq!(checkers(&lockout(&h.0)), ["lockout"]);

    let mut h = H::default();
    wrong_guesses(&mut h, (0..5).map(|t| t * 10));
    h.push("bob", login("bob", 0), (60, 61), Outcome::DONE);
    assert_eq!(checkers(&lockout(&h.0)), ["lockout"]);
}

#[test]
fn guesses_that_a_reset_may_have_split_are_not_counted_together() {
    let mut h = H::default();
    wrong_guesses(&mut h, (0..4).map(|t| t * 10));
    h.push("bob", login("bob", 0), (45, 100), Outcome::Unknown);
    wrong_guesses(&mut h, (11..15).map(|t| t * 10));
    assert!(lockout(&h.0).is_empty());
}

#[test]
fn a_login_of_unknown_outcome_may_reset_the_count_after_the_client_gave_up() {
    // As a chaos run found: the client gave up on a right login at 50 ms,
    // the node finished it later (its own deadline is longer), between the
    // guesses that follow.
    let mut h = H::default();
    wrong_guesses(&mut h, [0]);
    h.push("bob", login("bob", 0), (10, 50), Outcome::Unknown);
    wrong_guesses(&mut h, (6..12).map(|t| t * 10));
    assert!(lockout(&h.0).is_empty(), "{:?}", lockout(&h.0));
    // But one possible reset splits eleven guesses into five and six at
    // best.
    wrong_guesses(&mut h, (12..17).map(|t| t * 10));
    assert_eq!(checkers(&lockout(&h.0)), ["lockout"]);
    // And a right login after a fifth guess is flagged once the possible
    // reset is needed elsewhere (here to split ten guesses).
    let mut h = H::default();
    h.push("bob", login("bob", 0), (0, 5), Outcome::Unknown);
    wrong_guesses(&mut h, (1..11).map(|t| t * 10));
    assert!(lockout(&h.0).is_empty(), "{:?}", lockout(&h.0));
    h.push("bob", login("bob", 0), (120, 121), Outcome::DONE);
    assert_eq!(checkers(&lockout(&h.0)), ["lockout"]);
}

#[test]
fn diverged_nodes_are_flagged() {
    let node = |node, digest: &str| NodeFinal {
        node,
        applied: 40,
        digest: digest.into(),
        head: "aa".into(),
    };
    assert!(convergence(&[node(1, "d1"), node(2, "d1")]).is_empty());
    assert_eq!(
        checkers(&convergence(&[node(1, "d1"), node(2, "d2")])),
        ["convergence"]
    );
}

#[test]
fn a_history_survives_its_file_format() {
    let mut h = H::default();
    h.create("alice", 1, (0, 10))
        .push("alice", Op::ReadKey { key: 1 }, (11, 12), seen(true, false))
        .push("alice", Op::Sign { key: 1 }, (13, 14), Outcome::Unknown)
        .push(
            "alice",
            Op::Sign { key: 1 },
            (15, 16),
            failed(Failure::Other("busy".into())),
        );
    let mut bytes = Vec::new();
    crate::history::write_jsonl(&h.0, &mut bytes).expect("write");
    let back = crate::history::read_jsonl(&bytes[..]).expect("read");
    assert_eq!(back, h.0);
}

fn read(key: KeyId) -> Op {
    Op::ReadKey { key }
}

#[test]
fn a_correct_key_history_with_concurrency_and_unknowns_is_linearizable() {
    let mut h = H::default();
    h.create("alice", 1, (0, 10))
        // Concurrent with the read: the read may see it either way.
        .push(
            "alice",
            Op::SetSensitive { key: 1 },
            (20, 30),
            Outcome::DONE,
        )
        .push("alice", read(1), (21, 25), seen(false, true))
        .push("alice", read(1), (31, 35), seen(true, true))
        // Unknown: may have applied later, or never.
        .push(
            "alice",
            Op::SetNotExtractable { key: 1 },
            (40, 45),
            Outcome::Unknown,
        )
        .push("alice", read(1), (50, 51), seen(true, true))
        .push("alice", read(1), (52, 53), seen(true, false))
        .push("alice", share(1, "bob"), (60, 70), Outcome::DONE)
        .push("bob", Op::Sign { key: 1 }, (65, 66), not_found())
        .push("bob", Op::Sign { key: 1 }, (71, 72), Outcome::DONE)
        .push("alice", Op::DeleteKey { key: 1 }, (80, 90), Outcome::DONE)
        .push("bob", Op::Sign { key: 1 }, (85, 86), Outcome::DONE)
        .push("alice", read(1), (91, 92), not_found());
    assert!(
        linear::per_key(&h.0).is_empty(),
        "{:?}",
        linear::per_key(&h.0)
    );
    assert!(all(&h.0, &[]).is_empty(), "{:?}", all(&h.0, &[]));
}

#[test]
fn a_value_seen_before_its_write_was_invoked_is_not_linearizable() {
    // Only the linearizability checker sees this one: nothing went back.
    let mut h = H::default();
    h.create("alice", 1, (0, 10))
        .push("alice", read(1), (11, 12), seen(true, true))
        .push(
            "alice",
            Op::SetSensitive { key: 1 },
            (20, 30),
            Outcome::DONE,
        );
    assert_eq!(checkers(&all(&h.0, &[])), ["linearizability"]);
}

#[test]
fn stale_answers_are_not_linearizable() {
    // A read missing an acknowledged ratchet.
    let mut h = H::default();
    h.create("alice", 1, (0, 10))
        .push(
            "alice",
            Op::SetNotExtractable { key: 1 },
            (20, 30),
            Outcome::DONE,
        )
        .push("alice", read(1), (31, 32), seen(false, true));
    assert!(checkers(&all(&h.0, &[])).contains(&"linearizability"));
    // A sharee refused after the share was acknowledged.
    let mut h = H::default();
    h.create("alice", 1, (0, 10))
        .push("alice", share(1, "bob"), (20, 30), Outcome::DONE)
        .push("bob", Op::Sign { key: 1 }, (31, 32), not_found());
    assert_eq!(checkers(&linear::per_key(&h.0)), ["linearizability"]);
    // Two acknowledged shares in a row (the second must have been refused).
    let mut h = H::default();
    h.create("alice", 1, (0, 10))
        .push("alice", share(1, "bob"), (20, 30), Outcome::DONE)
        .push("alice", share(1, "bob"), (31, 40), Outcome::DONE);
    assert_eq!(checkers(&linear::per_key(&h.0)), ["linearizability"]);
    // A delete acknowledged twice.
    let mut h = H::default();
    h.create("alice", 1, (0, 10))
        .push("alice", Op::DeleteKey { key: 1 }, (20, 30), Outcome::DONE)
        .push("alice", Op::DeleteKey { key: 1 }, (31, 40), Outcome::DONE);
    assert_eq!(checkers(&linear::per_key(&h.0)), ["linearizability"]);
}

#[test]
fn an_operations_kind_is_its_name_in_the_file() {
    let ops = [
        Op::CreateKey { label: "l".into() },
        Op::SetSensitive { key: 1 },
        Op::SetNotExtractable { key: 1 },
        share(1, "bob"),
        unshare(1, "bob"),
        Op::Sign { key: 1 },
        read(1),
        Op::DeleteKey { key: 1 },
        login("bob", 1),
        Op::ChangePassword {
            user: "bob".into(),
            to: 2,
        },
    ];
    for op in ops {
        let json = serde_json::to_value(&op).expect("json");
        assert_eq!(json["kind"], op.kind(), "{json}");
    }
}
