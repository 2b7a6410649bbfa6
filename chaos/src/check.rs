//! The checkers. Each reads a whole history (and, for convergence, what
//! every node reported at the end) and returns the anomalies it found;
//! none means valid. They judge only by real time: an operation counts as
//! "before" another only if it was acknowledged before the other was
//! invoked, so concurrent and unknown operations never produce a false
//! anomaly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::history::{Entry, Failure, KeyId, Op, Outcome};

/// Most wrong-password checks a user gets between resets.
pub const MAX_WRONG_PASSWORD_CHECKS: usize = 5;

/// Something a checker found that a correct cluster never does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The checker.
    pub checker: String,
    /// What went wrong.
    pub what: String,
    /// The history entries involved.
    pub ops: Vec<u64>,
}

fn anomaly(checker: &str, what: String, ops: Vec<u64>) -> Anomaly {
    Anomaly {
        checker: checker.to_string(),
        what,
        ops,
    }
}

/// Who created each key (acknowledged creates only), by id.
fn creators(history: &[Entry]) -> BTreeMap<KeyId, &Entry> {
    history
        .iter()
        .filter(|e| matches!(e.op, Op::CreateKey { .. }))
        .filter_map(|e| e.key().map(|k| (k, e)))
        .collect()
}

fn uses_key(e: &Entry) -> bool {
    matches!(e.op, Op::Sign { .. } | Op::ReadKey { .. })
}

/// No acknowledged write lost: once a key's creation was acknowledged, its
/// owner finds it on every node, until a delete of it was invoked.
pub fn acknowledged_writes(history: &[Entry]) -> Vec<Anomaly> {
    let created = creators(history);
    let mut found = Vec::new();
    for e in history.iter().filter(|e| uses_key(e)) {
        let (Some(key), Some(create)) = (e.key(), e.key().and_then(|k| created.get(&k))) else {
            continue;
        };
        let not_found = matches!(
            e.outcome,
            Outcome::Failed {
                failure: Failure::NotFound
            }
        );
        if !not_found || e.actor != create.actor || !create.acked_before(e) {
            continue;
        }
        let deleting = history.iter().any(|d| {
            matches!(d.op, Op::DeleteKey { key: k } if k == key) && d.invoke_ms < e.complete_ms
        });
        if !deleting {
            found.push(anomaly(
                "acknowledged-writes",
                format!(
                    "key {key}, created and acknowledged at {} ms, was not found by its owner at {} ms{}",
                    create.complete_ms,
                    e.invoke_ms,
                    e.node.map(|n| format!(" on node {n}")).unwrap_or_default()
                ),
                vec![create.id, e.id],
            ));
        }
    }
    found
}

/// No deleted key usable: after a delete was acknowledged, nothing invoked
/// later signs with the key or reads it.
pub fn deleted_keys(history: &[Entry]) -> Vec<Anomaly> {
    let mut found = Vec::new();
    for d in history
        .iter()
        .filter(|d| matches!(d.op, Op::DeleteKey { .. }))
    {
        let key = d.key();
        for e in history.iter().filter(|e| uses_key(e) && e.key() == key) {
            if d.acked_before(e) && e.outcome.is_ok() {
                found.push(anomaly(
                    "deleted-keys",
                    format!(
                        "key {} was used at {} ms after its delete was acknowledged at {} ms",
                        key.unwrap_or_default(),
                        e.invoke_ms,
                        d.complete_ms
                    ),
                    vec![d.id, e.id],
                ));
            }
        }
    }
    found
}

/// Ratchets never go back: once `sensitive` is known on (its setting was
/// acknowledged, or a read returned it on) no read invoked later returns
/// it off; the same for `extractable` off.
pub fn ratchets(history: &[Entry]) -> Vec<Anomaly> {
    let mut found = Vec::new();
    let reads: Vec<&Entry> = history
        .iter()
        .filter(|e| matches!(e.op, Op::ReadKey { .. }))
        .collect();
    let seen = |e: &Entry| match &e.outcome {
        Outcome::Ok { seen: Some(s), .. } => Some(s.clone()),
        _ => None,
    };
    for cause in history {
        let (sensitive_on, extractable_off) = match (&cause.op, seen(cause)) {
            (Op::SetSensitive { .. }, _) if cause.outcome.is_ok() => (true, false),
            (Op::SetNotExtractable { .. }, _) if cause.outcome.is_ok() => (false, true),
            (Op::ReadKey { .. }, Some(s)) => (s.sensitive, !s.extractable),
            _ => continue,
        };
        for r in reads.iter().filter(|r| r.key() == cause.key()) {
            let Some(s) = seen(r) else { continue };
            if !cause.acked_before(r) {
                continue;
            }
            let back = (sensitive_on && !s.sensitive) || (extractable_off && s.extractable);
            if back {
                found.push(anomaly(
                    "ratchets",
                    format!(
                        "key {} read at {} ms as sensitive={} extractable={}, after it was known sensitive={} extractable={} at {} ms",
                        r.key().unwrap_or_default(),
                        r.invoke_ms,
                        s.sensitive,
                        s.extractable,
                        sensitive_on,
                        !extractable_off,
                        cause.complete_ms
                    ),
                    vec![cause.id, r.id],
                ));
            }
        }
    }
    found
}

/// Whether write `w` may have taken effect after revocation `u` and before
/// `e` ended: not definitely failed, not acknowledged before `u` was
/// invoked (so it may have applied after `u`, an unknown one at any time),
/// and invoked before `e` completed.
fn may_follow(w: &Entry, u: &Entry, e: &Entry) -> bool {
    !matches!(w.outcome, Outcome::Failed { .. })
        && !w.acked_before(u)
        && w.invoke_ms < e.complete_ms
}

/// Revocation with no window: after an unshare was acknowledged, the user
/// it names cannot use the key in anything invoked later (unless a share
/// may have applied after the unshare); after a password change was
/// acknowledged, no login invoked later succeeds with another password
/// (unless a change back to it may have applied after the change).
pub fn revocation(history: &[Entry]) -> Vec<Anomaly> {
    let mut found = Vec::new();
    for u in history.iter().filter(|u| u.outcome.is_ok()) {
        match &u.op {
            Op::Unshare { key, user } => {
                for e in history.iter().filter(|e| {
                    uses_key(e) && e.key() == Some(*key) && e.actor == *user && e.outcome.is_ok()
                }) {
                    let reshared = history.iter().any(|s| {
                        matches!(&s.op, Op::Share { key: k, user: w } if k == key && w == user)
                            && may_follow(s, u, e)
                    });
                    if u.acked_before(e) && !reshared {
                        found.push(anomaly(
                            "revocation",
                            format!(
                                "{user} used key {key} at {} ms after its unshare was acknowledged at {} ms",
                                e.invoke_ms, u.complete_ms
                            ),
                            vec![u.id, e.id],
                        ));
                    }
                }
            }
            Op::ChangePassword { user, to } => {
                for e in history.iter().filter(|e| e.outcome.is_ok()) {
                    let Op::Login { user: w, password } = &e.op else {
                        continue;
                    };
                    if w != user || password == to || !u.acked_before(e) {
                        continue;
                    }
                    let changed_back = history.iter().any(|c| {
                        matches!(&c.op, Op::ChangePassword { user: w2, to: t } if w2 == user && t == password)
                            && may_follow(c, u, e)
                    });
                    if !changed_back {
                        found.push(anomaly(
                            "revocation",
                            format!(
                                "{user} logged in with password {password} at {} ms after the change to {to} was acknowledged at {} ms",
                                e.invoke_ms, u.complete_ms
                            ),
                            vec![u.id, e.id],
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// Lockout: between two resets of a user's count (a successful login or
/// password change), never more than [`MAX_WRONG_PASSWORD_CHECKS`] wrong
/// passwords are checked, whichever nodes they went to; and a login
/// invoked after the last of those five was answered does not succeed.
///
/// An acknowledged reset took effect within its call; one of unknown
/// outcome may take effect at any time after its invocation (the node may
/// finish it after the client gave up), or never. So the checker places
/// each possible reset where it helps most (just before the guess that
/// would be one too many) and flags only what no placement explains; and
/// it counts only guesses that certainly fall between acknowledged resets.
pub fn lockout(history: &[Entry]) -> Vec<Anomaly> {
    let mut found = Vec::new();
    let mut users: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in history {
        match &e.op {
            Op::Login { user, .. } | Op::ChangePassword { user, .. } => {
                users.entry(user.as_str()).or_default().push(e);
            }
            _ => {}
        }
    }
    for (user, ops) in users {
        let mut acked: Vec<&Entry> = ops.iter().copied().filter(|e| e.outcome.is_ok()).collect();
        acked.sort_by_key(|e| e.invoke_ms);
        // When each possible reset could first take effect; each is used
        // at most once.
        let mut possible: Vec<(u64, bool)> = ops
            .iter()
            .filter(|e| matches!(e.outcome, Outcome::Unknown))
            .map(|e| (e.invoke_ms, false))
            .collect();
        possible.sort_unstable();
        let mut use_possible = |before: u64| {
            possible
                .iter_mut()
                .find(|(at, used)| !*used && *at < before)
                .map(|p| p.1 = true)
                .is_some()
        };
        let wrong: Vec<&Entry> = ops
            .iter()
            .copied()
            .filter(|e| {
                matches!(
                    e.outcome,
                    Outcome::Failed {
                        failure: Failure::BadPassword
                    }
                )
            })
            .collect();
        // Windows between consecutive acknowledged resets (and before the
        // first, after the last): a guess counts in a window only if no
        // acknowledged reset could have come between (by real time).
        let mut bounds: Vec<(u64, u64)> = Vec::new();
        let mut start = 0u64;
        for r in &acked {
            bounds.push((start, r.invoke_ms));
            start = start.max(r.complete_ms);
        }
        bounds.push((start, u64::MAX));
        for (from, to) in bounds {
            let mut inside: Vec<&Entry> = wrong
                .iter()
                .copied()
                .filter(|e| e.invoke_ms >= from && e.complete_ms <= to)
                .collect();
            inside.sort_by_key(|e| e.complete_ms);
            let mut group: Vec<&Entry> = Vec::new();
            for w in inside {
                if group.len() == MAX_WRONG_PASSWORD_CHECKS {
                    if use_possible(w.complete_ms) {
                        group.clear();
                    } else {
                        group.push(w);
                        found.push(anomaly(
                            "lockout",
                            format!(
                                "{} wrong passwords of {user} were checked between resets (at most {MAX_WRONG_PASSWORD_CHECKS})",
                                group.len()
                            ),
                            group.iter().map(|e| e.id).collect(),
                        ));
                        break;
                    }
                }
                group.push(w);
            }
            let Some(fifth) = group.get(MAX_WRONG_PASSWORD_CHECKS - 1) else {
                continue;
            };
            for e in ops.iter().filter(|e| {
                matches!(e.op, Op::Login { .. })
                    && e.outcome.is_ok()
                    && e.invoke_ms > fifth.complete_ms
                    && e.invoke_ms <= to
            }) {
                if !use_possible(e.complete_ms) {
                    found.push(anomaly(
                        "lockout",
                        format!(
                            "{user} logged in at {} ms after the fifth wrong password was checked at {} ms",
                            e.invoke_ms, fifth.complete_ms
                        ),
                        vec![fifth.id, e.id],
                    ));
                }
            }
        }
    }
    found
}

/// What a node reported once the faults stopped and it caught up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFinal {
    /// The node.
    pub node: u64,
    /// Its applied log index.
    pub applied: u64,
    /// Its state digest, hex.
    pub digest: String,
    /// Its event-chain head, hex.
    pub head: String,
}

/// Convergence after healing: every node at the same applied index with
/// the same state digest and chain head.
pub fn convergence(nodes: &[NodeFinal]) -> Vec<Anomaly> {
    let Some(first) = nodes.first() else {
        return Vec::new();
    };
    nodes
        .iter()
        .filter(|n| (n.applied, &n.digest, &n.head) != (first.applied, &first.digest, &first.head))
        .map(|n| {
            anomaly(
                "convergence",
                format!(
                    "node {} ended at index {} digest {} head {}, node {} at index {} digest {} head {}",
                    n.node, n.applied, n.digest, n.head, first.node, first.applied, first.digest, first.head
                ),
                Vec::new(),
            )
        })
        .collect()
}

/// Every history checker, in order. Each relates only operations on one
/// key or of one user, so they run per key and per user: linear in the
/// history's length instead of quadratic.
pub fn all(history: &[Entry], nodes: &[NodeFinal]) -> Vec<Anomaly> {
    let mut by_key: BTreeMap<KeyId, Vec<Entry>> = BTreeMap::new();
    let mut by_user: BTreeMap<&str, Vec<Entry>> = BTreeMap::new();
    for e in history {
        match &e.op {
            Op::Login { user, .. } | Op::ChangePassword { user, .. } => {
                by_user.entry(user.as_str()).or_default().push(e.clone());
            }
            _ => {
                if let Some(k) = e.key() {
                    by_key.entry(k).or_default().push(e.clone());
                }
            }
        }
    }
    let mut found = Vec::new();
    for h in by_key.values() {
        found.extend(linear::per_key(h));
        found.extend(acknowledged_writes(h));
        found.extend(deleted_keys(h));
        found.extend(ratchets(h));
        found.extend(revocation(h));
    }
    for (user, h) in &by_user {
        found.extend(linear::per_user(user, h));
        found.extend(revocation(h));
        found.extend(lockout(h));
    }
    found.extend(convergence(nodes));
    found
}

pub mod backup;
pub mod linear;

#[cfg(test)]
mod tests;
