//! Linearizability per key: is there one order of a key's operations, each
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
    // (time, returns after invocations at the same ms, entry)
    let mut events: Vec<(u64, bool, usize, KeyOp, Option<KeyRet>)> = Vec::new();
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
    let model = KeyModel {
        owner: owner.to_owned(),
        ..KeyModel::default()
    };
    let mut tester = LinearizabilityTester::<usize, KeyModel>::new(model);
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
