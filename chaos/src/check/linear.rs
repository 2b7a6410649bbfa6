//! Linearizability per key and per user record: is there one order of a
//! key's (a user's) operations, each
//! taking effect at one instant between its invocation and its completion,
//! in which a single copy of the key gives every answer the clients got?
//!
//! The search is `consistency_model`'s `LinearizabilityTester` (from the
//! authors of stateright), fed with each key's invocations and completions
//! in time order against [`KeyModel`], this file's sequential model of one
//! key. An operation whose outcome is unknown is fed as invoked and never
//! returned: the tester may place it anywhere after its invocation, or
//! leave it out, as it may or may not have applied. Each operation is a
//! "thread" of its own, so the only order imposed is real time: an
//! operation precedes another when it completed before the other was
//! invoked (at equal milliseconds they count as concurrent).
//!
//! What carries no information is left out: a read or sign that failed for
//! another reason than "not found" or "forbidden" (a timeout: reads change
//! nothing), and a write refused for another reason (it did not apply, and
//! its message is not modelled).
//!
//! A user record ([`UserModel`]) is its password: a login with it
//! succeeds, any other is refused as wrong, a password change sets it. The
//! count of wrong passwords and the lock are the lockout checker's (a login
//! the SDK retried on another node can count twice there, so the lock may
//! come before the fifth answer the client saw): a login refused as locked
//! is left out here, as is one the cluster refused as busy or could not
//! finish (in flight for ever).

use std::collections::BTreeSet;

use consistency_model::{ConsistencyTester, LinearizabilityTester, SequentialSpec};

use super::{anomaly, Anomaly};
use crate::history::{Entry, Failure, KeyId, KeySeen, Op, Outcome};

/// One key as a single copy: what the cluster should answer.
#[derive(Debug, Clone, Default)]
pub struct KeyModel {
    owner: String,
    exists: bool,
    sensitive: bool,
    extractable: bool,
    shared: BTreeSet<String>,
}

/// An operation on the key, by `actor` where it matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOp {
    /// Created (not sensitive, extractable, shared with nobody).
    Create,
    /// `sensitive` on.
    SetSensitive,
    /// `extractable` off.
    SetNotExtractable,
    /// Shared with a user.
    Share(String),
    /// Unshared from a user.
    Unshare(String),
    /// Signed with, by a user.
    Sign(String),
    /// Read, by a user.
    Read(String),
    /// Deleted.
    Delete,
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRet {
    /// Applied (or, for a sign, signed).
    Done,
    /// A read's attributes.
    Seen(KeySeen),
    /// The key does not exist for this caller (or the caller may not act).
    NoAccess,
    /// Refused as a share that exists already or an unshare of none (never
    /// compared: such refusals are left out; it makes an acknowledgement
    /// in that state impossible).
    Refused,
}

impl SequentialSpec for KeyModel {
    type Op = KeyOp;
    type Ret = KeyRet;

    fn invoke(&mut self, op: &KeyOp) -> KeyRet {
        if !self.exists && *op != KeyOp::Create {
            return KeyRet::NoAccess;
        }
        let may_use = |m: &KeyModel, who: &String| *who == m.owner || m.shared.contains(who);
        match op {
            KeyOp::Create => {
                self.exists = true;
                self.sensitive = false;
                self.extractable = true;
                self.shared.clear();
                KeyRet::Done
            }
            KeyOp::SetSensitive => {
                self.sensitive = true;
                KeyRet::Done
            }
            KeyOp::SetNotExtractable => {
                self.extractable = false;
                KeyRet::Done
            }
            KeyOp::Share(u) => {
                if self.shared.insert(u.clone()) {
                    KeyRet::Done
                } else {
                    KeyRet::Refused
                }
            }
            KeyOp::Unshare(u) => {
                if self.shared.remove(u) {
                    KeyRet::Done
                } else {
                    KeyRet::Refused
                }
            }
            KeyOp::Sign(who) => {
                if may_use(self, who) {
                    KeyRet::Done
                } else {
                    KeyRet::NoAccess
                }
            }
            KeyOp::Read(who) => {
                if may_use(self, who) {
                    KeyRet::Seen(KeySeen {
                        sensitive: self.sensitive,
                        extractable: self.extractable,
                    })
                } else {
                    KeyRet::NoAccess
                }
            }
            KeyOp::Delete => {
                self.exists = false;
                self.shared.clear();
                KeyRet::Done
            }
        }
    }
}

/// The model's view of an entry: its operation, and its answer when the
/// answer is known and informative (`None`: in flight for ever).
fn modelled(e: &Entry) -> Option<(KeyOp, Option<KeyRet>)> {
    let op = match &e.op {
        Op::CreateKey { .. } => KeyOp::Create,
        Op::SetSensitive { .. } => KeyOp::SetSensitive,
        Op::SetNotExtractable { .. } => KeyOp::SetNotExtractable,
        Op::Share { user, .. } => KeyOp::Share(user.clone()),
        Op::Unshare { user, .. } => KeyOp::Unshare(user.clone()),
        Op::Sign { .. } => KeyOp::Sign(e.actor.clone()),
        Op::ReadKey { .. } => KeyOp::Read(e.actor.clone()),
        Op::DeleteKey { .. } => KeyOp::Delete,
        Op::Login { .. } | Op::ChangePassword { .. } => return None,
    };
    let read = matches!(op, KeyOp::Sign(_) | KeyOp::Read(_));
    let ret = match &e.outcome {
        Outcome::Ok { seen, .. } => match (&op, seen) {
            (KeyOp::Read(_), Some(s)) => Some(KeyRet::Seen(s.clone())),
            (KeyOp::Read(_), None) => return None,
            _ => Some(KeyRet::Done),
        },
        Outcome::Failed {
            failure: Failure::NotFound,
        } => Some(KeyRet::NoAccess),
        Outcome::Failed {
            failure: Failure::Forbidden,
        } if read => Some(KeyRet::NoAccess),
        Outcome::Failed { .. } => return None,
        // A read that never answered changed nothing: leave it out.
        Outcome::Unknown if read => return None,
        Outcome::Unknown => None,
    };
    Some((op, ret))
}

/// Keys with more operations than this are not checked (the search is
/// exponential in the worst case); the workload's keys have a few dozen.
pub const MAX_OPS_PER_KEY: usize = 200;

/// Checks every key created in `history` (with an acknowledged create).
pub fn per_key(history: &[Entry]) -> Vec<Anomaly> {
    let mut keys: std::collections::BTreeMap<KeyId, (String, Vec<&Entry>)> = Default::default();
    for e in history {
        if let (Op::CreateKey { .. }, Some(k)) = (&e.op, e.key()) {
            keys.entry(k).or_default().0.clone_from(&e.actor);
        }
    }
    for e in history {
        if let Some((_, ops)) = e.key().and_then(|k| keys.get_mut(&k)) {
            ops.push(e);
        }
    }
    let mut found = Vec::new();
    for (key, (owner, entries)) in keys {
        if entries.len() > MAX_OPS_PER_KEY {
            continue;
        }
        if !linearizable(&owner, &entries) {
            found.push(anomaly(
                "linearizability",
                format!(
                    "no single order of key {key}'s {} operations gives the answers the clients got",
                    entries.len()
                ),
                entries.iter().map(|e| e.id).collect(),
            ));
        }
    }
    found
}

/// Whether one key's operations (its owner `owner`) are linearizable.
fn linearizable(owner: &str, entries: &[&Entry]) -> bool {
    let model = KeyModel {
        owner: owner.to_owned(),
        ..KeyModel::default()
    };
    consistent(model, entries, modelled)
}

/// An invocation or a return to feed the tester: (time, returns after
/// invocations at the same ms, entry, operation, answer).
type Event<M> = (
    u64,
    bool,
    usize,
    <M as SequentialSpec>::Op,
    Option<<M as SequentialSpec>::Ret>,
);

/// Whether `entries`, as `modelled` sees them, are linearizable against
/// `model` (its state before the first).
fn consistent<M>(
    model: M,
    entries: &[&Entry],
    modelled: impl Fn(&Entry) -> Option<(M::Op, Option<M::Ret>)>,
) -> bool
where
    M: Clone + SequentialSpec,
    M::Op: Clone + std::fmt::Debug,
    M::Ret: Clone + std::fmt::Debug + PartialEq,
{
    let mut events: Vec<Event<M>> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let Some((op, ret)) = modelled(e) else {
            continue;
        };
        events.push((e.invoke_ms, false, i, op.clone(), None));
        if let Some(ret) = ret {
            events.push((e.complete_ms, true, i, op, Some(ret)));
        }
    }
    events.sort_by_key(|(t, is_return, i, _, _)| (*t, *is_return, *i));
    let mut tester = LinearizabilityTester::<usize, M>::new(model);
    for (_, is_return, thread, op, ret) in events {
        let step = match ret {
            Some(ret) if is_return => tester.on_return(thread, ret).map(|_| ()),
            _ => tester.on_invoke(thread, op).map(|_| ()),
        };
        if step.is_err() {
            return false;
        }
    }
    tester.is_consistent()
}

/// One user record as a single copy: its password.
#[derive(Debug, Clone, Default)]
pub struct UserModel {
    password: u32,
}

/// An operation on a user record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserOp {
    /// A login with password number `n`.
    Login(u32),
    /// A change to password number `n`.
    Change(u32),
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRet {
    /// Logged in, or changed.
    Done,
    /// The password was checked and is wrong.
    BadPassword,
}

impl SequentialSpec for UserModel {
    type Op = UserOp;
    type Ret = UserRet;

    fn invoke(&mut self, op: &UserOp) -> UserRet {
        match *op {
            UserOp::Login(n) if n == self.password => UserRet::Done,
            UserOp::Login(_) => UserRet::BadPassword,
            UserOp::Change(n) => {
                self.password = n;
                UserRet::Done
            }
        }
    }
}

/// The user model's view of an entry (`None`: left out; an answer `None`:
/// in flight for ever).
fn user_modelled(e: &Entry) -> Option<(UserOp, Option<UserRet>)> {
    let op = match &e.op {
        Op::Login { password, .. } => UserOp::Login(*password),
        Op::ChangePassword { to, .. } => UserOp::Change(*to),
        _ => return None,
    };
    let ret = match &e.outcome {
        Outcome::Ok { .. } => Some(UserRet::Done),
        Outcome::Failed {
            failure: Failure::BadPassword,
        } if matches!(op, UserOp::Login(_)) => Some(UserRet::BadPassword),
        // Refused for another reason (locked among them): it did not
        // apply.
        Outcome::Failed { .. } => return None,
        Outcome::Unknown => None,
    };
    Some((op, ret))
}

/// Users with more recorded operations than this are not checked.
pub const MAX_OPS_PER_USER: usize = 300;

/// Checks one user's logins and password changes (`history` holds only
/// that user's), from a new user with password number 0.
pub fn per_user(user: &str, history: &[Entry]) -> Vec<Anomaly> {
    let entries: Vec<&Entry> = history
        .iter()
        .filter(|e| user_modelled(e).is_some())
        .collect();
    if entries.is_empty() || entries.len() > MAX_OPS_PER_USER {
        return Vec::new();
    }
    if consistent(UserModel::default(), &entries, user_modelled) {
        return Vec::new();
    }
    vec![anomaly(
        "linearizability",
        format!(
            "no single order of user {user}'s {} logins and password changes gives the answers the clients got",
            entries.len()
        ),
        entries.iter().map(|e| e.id).collect(),
    )]
}

#[cfg(test)]
mod user_tests {
    use super::*;

    fn entry(id: u64, op: Op, (invoke_ms, complete_ms): (u64, u64), outcome: Outcome) -> Entry {
        Entry {
            id,
            process: 1,
            actor: "carol".into(),
            node: None,
            op,
            invoke_ms,
            complete_ms,
            outcome,
        }
    }

    fn login(id: u64, password: u32, at: (u64, u64), outcome: Outcome) -> Entry {
        entry(
            id,
            Op::Login {
                user: "carol".into(),
                password,
            },
            at,
            outcome,
        )
    }

    fn change(id: u64, to: u32, at: (u64, u64), outcome: Outcome) -> Entry {
        entry(
            id,
            Op::ChangePassword {
                user: "carol".into(),
                to,
            },
            at,
            outcome,
        )
    }

    fn failed(failure: Failure) -> Outcome {
        Outcome::Failed { failure }
    }

    #[test]
    fn logins_and_changes_a_single_record_could_answer_are_valid() {
        let history = vec![
            login(0, 0, (0, 10), Outcome::DONE),
            change(1, 1, (20, 30), Outcome::DONE),
            // Concurrent with a change of unknown outcome: either password.
            change(2, 2, (40, 50), Outcome::Unknown),
            login(3, 1, (60, 70), Outcome::DONE),
            login(4, 2, (80, 90), Outcome::DONE),
            // Four wrong, then the right one clears the count.
            login(5, 7, (100, 101), failed(Failure::BadPassword)),
            login(6, 7, (102, 103), failed(Failure::BadPassword)),
            login(7, 7, (104, 105), failed(Failure::BadPassword)),
            login(8, 7, (106, 107), failed(Failure::BadPassword)),
            login(9, 2, (108, 109), Outcome::DONE),
            // Locked (after five wrong, or early: the lockout checker's
            // business): left out.
            login(15, 2, (120, 121), failed(Failure::Locked)),
            // Busy or lost: left in flight.
            login(16, 2, (122, 123), Outcome::Unknown),
        ];
        assert_eq!(per_user("carol", &history), Vec::new());
    }

    #[test]
    fn answers_no_single_record_gives_are_flagged() {
        let bad: Vec<Vec<Entry>> = vec![
            // The right password refused as wrong.
            vec![login(0, 0, (0, 10), failed(Failure::BadPassword))],
            // A password never set accepted.
            vec![login(0, 5, (0, 10), Outcome::DONE)],
            // The old password accepted after the change was acknowledged.
            vec![
                change(0, 1, (0, 10), Outcome::DONE),
                login(1, 0, (20, 30), Outcome::DONE),
            ],
            // A change seen, then undone without another change.
            vec![
                change(0, 1, (0, 10), Outcome::DONE),
                login(1, 1, (20, 30), Outcome::DONE),
                login(2, 1, (40, 50), failed(Failure::BadPassword)),
            ],
        ];
        for h in bad {
            let found = per_user("carol", &h);
            assert_eq!(found.len(), 1, "{h:?}");
            assert_eq!(found[0].checker, "linearizability");
        }
    }
}
