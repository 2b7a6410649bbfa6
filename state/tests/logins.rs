//! Property test of the guessing bound, with login reservations that
//! expire: whatever order attempts, outcomes (right or wrong, late,
//! repeated, for any attempt), pauses of the leader's clock, unlocks and
//! nodes they come in, at most five wrong passwords are answered between
//! resets, an outcome is recorded only for a live reservation, once, and
//! attempts nobody answers never hold a user back for good. A change of
//! one's own password is a right answer that also voids every other check
//! in flight. A copy of an attempt (a client's retry, through either node)
//! is the same attempt: its reservation is the first one, and its outcome
//! is the first one recorded for that account, whatever it says.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use hsm_proto::{EventBody, Rejection, RequestId, Role};
use hsm_state::{login_outcome_id, LOGIN_RESERVATION_TTL_MS, MAX_FAILED_LOGINS};
use proptest::prelude::*;
use std::collections::BTreeMap;

const TTL: u64 = LOGIN_RESERVATION_TTL_MS;

#[derive(Debug, Clone)]
enum Act {
    /// Node `node` (1 or 2) reserves an attempt of bob.
    Reserve { node: u64 },
    /// Node `node` reserves a copy of the `pick`-th newest attempt.
    Resend { node: u64, pick: usize },
    /// Node `node` records the outcome of the `pick`-th newest attempt
    /// ever reserved (answered, expired and unlocked ones included).
    Answer {
        node: u64,
        pick: usize,
        outcome: Answer,
    },
    /// The leader's clock moves on.
    Wait(u64),
    /// A crypto officer unlocks bob.
    Unlock,
}

fn act() -> impl Strategy<Value = Act> {
    let node = 1..=2u64;
    let wait = prop_oneof![
        Just(TTL - 1_001),
        Just(TTL - 1_000),
        Just(TTL / 3),
        0..2 * TTL,
    ];
    prop_oneof![
        5 => node.clone().prop_map(|node| Act::Reserve { node }),
        2 => (node.clone(), 0..4usize).prop_map(|(node, pick)| Act::Resend { node, pick }),
        5 => (node, 0..4usize, prop_oneof![8 => Just(Answer::Wrong), 1 => Just(Answer::Right), 1 => Just(Answer::Change)])
            .prop_map(|(node, pick, outcome)| Act::Answer { node, pick, outcome }),
        2 => wait.prop_map(Act::Wait),
        1 => Just(Act::Unlock),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Wrong,
    Right,
    /// Right, and bob changes his password under it.
    Change,
}

/// One reserved attempt as the test saw it made.
struct Made {
    id: RequestId,
    at_ms: u64,
    /// The unlocks and password changes before it was made.
    epoch: u32,
    answered: bool,
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_sequence_answers_more_than_five_guesses_between_resets(
        acts in proptest::collection::vec(act(), 10..120)
    ) {
        let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
        c.by("admin", EventBody::NodeAdded { node: node_record(2) }).result.unwrap();
        let mut made: Vec<Made> = Vec::new();
        // Outcomes recorded (or refused) under each outcome id.
        let mut recorded: BTreeMap<RequestId, (Answer, Result<(), Rejection>)> = BTreeMap::new();
        let mut unlocks = 0u32;
        // Wrong passwords answered since the last right one or unlock.
        let mut wrong = 0u8;
        for (step, act) in acts.iter().enumerate() {
            match act {
                Act::Reserve { node } => {
                    let (id, a) = c.try_reserve_login(*node, "bob");
                    let bob = c.state.user(&user("bob")).unwrap();
                    if bob.reservations.iter().any(|r| r.id == id) {
                        prop_assert_eq!(&a.result, &Ok(()));
                        made.push(Made { id, at_ms: c.now_ms(), epoch: unlocks, answered: false });
                    } else {
                        // Refused (in progress, locked) or the lock set.
                        prop_assert!(a.result.is_err() || bob.locked, "step {step}: {a:?}");
                    }
                }
                Act::Resend { node, pick } => {
                    if made.is_empty() {
                        continue;
                    }
                    let id = made[made.len() - 1 - pick % made.len()].id;
                    let before = c.state.user(&user("bob")).unwrap().clone();
                    let a = c.by_node_as(*node, id, login_attempt("bob"));
                    prop_assert_eq!(&a.result, &Ok(()), "step {}: a copy of a reserved attempt", step);
                    prop_assert!(a.replayed, "step {step}: a copy is answered as the first");
                    prop_assert_eq!(c.state.user(&user("bob")).unwrap(), &before, "step {}", step);
                }
                Act::Answer { node, pick, outcome } => {
                    if made.is_empty() {
                        continue;
                    }
                    let i = made.len() - 1 - pick % made.len();
                    let id = made[i].id;
                    let bob = c.state.user(&user("bob")).unwrap();
                    let locked = bob.is_locked();
                    let outcome_id = login_outcome_id(id, bob);
                    if *outcome != Answer::Change {
                        if let Some((first, result)) = recorded.get(&outcome_id) {
                            // Another copy of an attempt checked against
                            // this account: the first outcome stands.
                            let before = bob.clone();
                            let a = match outcome {
                                Answer::Wrong => c.by_node(*node, login_rejected("bob", id)),
                                _ => c.by_node(*node, login_ok("bob", id)),
                            };
                            let expected = if first == outcome {
                                result.clone()
                            } else {
                                Err(Rejection::RequestIdReused)
                            };
                            prop_assert_eq!(&a.result, &expected, "step {}: a copy's outcome", step);
                            prop_assert_eq!(c.state.user(&user("bob")).unwrap(), &before, "step {}", step);
                            continue;
                        }
                    }
                    let a = match outcome {
                        Answer::Wrong => c.by_node(*node, login_rejected("bob", id)),
                        Answer::Right => c.by_node(*node, login_ok("bob", id)),
                        Answer::Change => c.by("bob", own_pw("bob", HASH2, id)),
                    };
                    if *outcome != Answer::Change {
                        recorded.insert(outcome_id, (*outcome, a.result.clone()));
                    }
                    let now = c.now_ms();
                    let m = &mut made[i];
                    let live = !m.answered
                        && m.epoch == unlocks
                        && now.saturating_sub(m.at_ms) < TTL;
                    if live {
                        prop_assert_eq!(&a.result, &Ok(()), "step {}: a live attempt is answered", step);
                        m.answered = true;
                        match outcome {
                            Answer::Wrong => wrong += 1,
                            Answer::Right => wrong = 0,
                            Answer::Change => {
                                wrong = 0;
                                // Every other check in flight is void.
                                unlocks += 1;
                            }
                        }
                    } else {
                        let refused = if *outcome == Answer::Change && locked {
                            Rejection::Locked(user("bob"))
                        } else {
                            Rejection::LoginExpired(user("bob"))
                        };
                        prop_assert_eq!(
                            &a.result,
                            &Err(refused),
                            "step {}: answered={} epoch={}/{} age={}",
                            step, m.answered, m.epoch, unlocks, now.saturating_sub(m.at_ms)
                        );
                    }
                }
                Act::Wait(ms) => c.advance(*ms),
                Act::Unlock => {
                    if c.by("admin", EventBody::UserUnlocked { username: user("bob") }).result.is_ok() {
                        unlocks += 1;
                        wrong = 0;
                    }
                }
            }
            let bob = c.state.user(&user("bob")).unwrap();
            // The guessing bound: answered wrong passwords are exactly the
            // recorded failures, never more than five between resets.
            prop_assert!(wrong <= MAX_FAILED_LOGINS, "step {step}: {wrong} wrong answers");
            prop_assert_eq!(bob.failures, wrong, "step {}", step);
            let in_flight = bob.failures as usize + bob.reservations.len();
            prop_assert!(in_flight <= usize::from(MAX_FAILED_LOGINS), "step {step}: {bob:?}");
            // Unanswered attempts hold bob back for one time-to-live at most.
            let mut later = c.clone();
            later.advance(TTL);
            let (id, a) = later.try_reserve_login(1, "bob");
            let bob = later.state.user(&user("bob")).unwrap();
            if bob.is_locked() {
                prop_assert!(wrong == MAX_FAILED_LOGINS || bob.locked, "step {step}");
            } else {
                prop_assert_eq!(&a.result, &Ok(()), "step {}: still held back", step);
                prop_assert!(bob.reservations.iter().any(|r| r.id == id));
                prop_assert_eq!(bob.failed_logins(later.now_ms()), wrong + 1);
            }
        }
    }
}
