//! Counting what users do with keys, for the audit trail: every crypto
//! operation a node serves with a key is counted here by key, user and
//! kind (each item of a batch that succeeded), and each member writes its
//! counts as an `EventBody::KeyUsesCounted` event every
//! `backup.key_use_interval_s`. Never the data.
//!
//! Counts not yet written when a node stops are lost: those of its last
//! interval, and any it held longer (while the cluster did not run Raft
//! protocol 4 yet, or could not take the writes). An event whose write
//! was not acknowledged is sent again under the same request id, unless
//! the replica shows it applied meanwhile, so it is counted once; after
//! [`MAX_TRIES`] it is given up (and logged).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hsm_proto::client::{Operation, Reply};
use hsm_proto::{
    Actor, EventBody, KeyId, KeyUseKind, KeyUses, NodeId, RequestId, Username, MAX_KEY_USES,
};
use hsm_raft_store::StateMachineStore;
use rand::RngCore;
use tokio::task::JoinHandle;

use crate::writer::Writer;

/// Most distinct (key, user, kind) counts a node holds between writes;
/// beyond it new ones are dropped (logged once), so memory stays bounded
/// while the cluster cannot take the writes.
const MAX_HELD: usize = 100_000;

/// Most events a node writes at one tick: the rest wait for the next, so
/// a burst of counts does not push other requests' remembered outcomes
/// out of the state (`MAX_REMEMBERED_REQUESTS`).
const MAX_EVENTS_PER_TICK: usize = 8;

/// How many times one event is sent before it is given up.
const MAX_TRIES: u32 = 5;

/// How long one write of the counts may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

type Counts = BTreeMap<KeyId, BTreeMap<Username, BTreeMap<KeyUseKind, u64>>>;

/// The counts not yet written.
#[derive(Debug, Default)]
pub struct KeyUseCounter {
    counts: Mutex<(Counts, usize)>,
    /// Whether a dropped count was logged since the counts were last
    /// taken (one line, not one per operation).
    warned: AtomicBool,
}

impl KeyUseCounter {
    /// Counts `n` uses of `kind` of `key` by `user`.
    pub fn add(&self, key: KeyId, user: &Username, kind: KeyUseKind, n: u64) {
        if n == 0 {
            return;
        }
        let mut guard = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (counts, held) = &mut *guard;
        // The common case borrows the name: no allocation.
        if let Some(count) = counts
            .get_mut(&key)
            .and_then(|users| users.get_mut(user))
            .and_then(|kinds| kinds.get_mut(&kind))
        {
            *count = count.saturating_add(n);
            return;
        }
        if *held >= MAX_HELD {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max = MAX_HELD,
                    "too many key use counts held: new ones are not counted until they are written"
                );
            }
            return;
        }
        *held += 1;
        counts
            .entry(key)
            .or_default()
            .entry(user.clone())
            .or_default()
            .insert(kind, n);
    }

    /// Takes up to [`MAX_KEY_USES`] counts, in (key, user, kind) order.
    fn take(&self) -> Vec<KeyUses> {
        let mut guard = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (counts, held) = &mut *guard;
        let mut out = Vec::new();
        while out.len() < MAX_KEY_USES {
            let Some(mut users) = counts.first_entry() else {
                break;
            };
            let key = *users.key();
            while out.len() < MAX_KEY_USES {
                let Some(mut kinds) = users.get_mut().first_entry() else {
                    break;
                };
                let user = kinds.key().clone();
                while out.len() < MAX_KEY_USES {
                    let Some((kind, count)) = kinds.get_mut().pop_first() else {
                        break;
                    };
                    out.push(KeyUses {
                        key,
                        user: user.clone(),
                        kind,
                        count,
                    });
                }
                if kinds.get().is_empty() {
                    kinds.remove();
                }
            }
            if users.get().is_empty() {
                users.remove();
            }
        }
        *held -= out.len();
        self.warned.store(false, Ordering::Relaxed);
        out
    }
}

/// The key whose material `op` uses, and what for; `None` for operations
/// that use none.
pub fn key_use(op: &Operation) -> Option<(KeyId, KeyUseKind)> {
    Some(match op {
        Operation::Sign { key, .. }
        | Operation::SignMany { key, .. }
        | Operation::SignBatch { key, .. } => (*key, KeyUseKind::Sign),
        Operation::Verify { key, .. } | Operation::VerifyBatch { key, .. } => {
            (*key, KeyUseKind::Verify)
        }
        Operation::Encrypt { key, .. } | Operation::EncryptBatch { key, .. } => {
            (*key, KeyUseKind::Encrypt)
        }
        Operation::Decrypt { key, .. } | Operation::DecryptBatch { key, .. } => {
            (*key, KeyUseKind::Decrypt)
        }
        Operation::WrapKey { wrapping_key, .. } => (*wrapping_key, KeyUseKind::Wrap),
        Operation::UnwrapKey { wrapping_key, .. } => (*wrapping_key, KeyUseKind::Unwrap),
        Operation::DeriveKey { key, .. } => (*key, KeyUseKind::Derive),
        Operation::GenerateDataKey { key, .. } => (*key, KeyUseKind::DataKey),
        _ => return None,
    })
}

/// How many uses a successful reply reports: the items of a batch that
/// succeeded, else one.
pub fn uses_in(reply: &Reply) -> u64 {
    let ok = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    match reply {
        Reply::Signatures(results) => ok(results.iter().filter(|r| r.is_ok()).count()),
        Reply::Encrypted { results, .. } | Reply::Signed { results, .. } => {
            ok(results.iter().filter(|r| r.is_ok()).count())
        }
        Reply::Decrypted(results) => ok(results.iter().filter(|r| r.is_ok()).count()),
        Reply::Verifications(results) => ok(results.iter().filter(|r| r.is_ok()).count()),
        _ => 1,
    }
}

/// An event being sent, and how often it was.
struct Pending {
    request: RequestId,
    uses: Vec<KeyUses>,
    tries: u32,
}

/// Writes this node's counts every `every` (only once the cluster runs
/// Raft protocol 4, which has the event, and while this node is a
/// member; until then they wait).
pub fn spawn(
    counter: Arc<KeyUseCounter>,
    sm: StateMachineStore,
    writer: Writer,
    me: NodeId,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut pending: Option<Pending> = None;
        loop {
            tokio::time::sleep(every).await;
            let ready = sm.read(|a| {
                a.state.protocol() >= EventBody::KeyUsesCounted { uses: Vec::new() }.since()
                    && a.state.node(me).is_some()
            });
            if !ready {
                continue;
            }
            for _ in 0..MAX_EVENTS_PER_TICK {
                let mut next = match pending.take() {
                    Some(p) => p,
                    None => {
                        let uses = counter.take();
                        if uses.is_empty() {
                            break;
                        }
                        let mut request = [0u8; 16];
                        rand::rngs::OsRng.fill_bytes(&mut request);
                        Pending {
                            request: RequestId(request),
                            uses,
                            tries: 0,
                        }
                    }
                };
                let body = EventBody::KeyUsesCounted {
                    uses: next.uses.clone(),
                };
                // Sent before and applied meanwhile: done.
                let actor = Actor::Node(me);
                if next.tries > 0
                    && sm.read(|a| a.state.outcome_of(next.request, &actor, &body).is_some())
                {
                    continue;
                }
                next.tries += 1;
                let written = writer
                    .write(next.request, actor, None, body, WRITE_TIMEOUT)
                    .await;
                match written.map(|applied| applied.result) {
                    Ok(Ok(())) => {}
                    Ok(Err(rejection)) => {
                        // Well formed by construction: a refusal would
                        // come again, so the counts are not sent again.
                        tracing::warn!(error = %rejection, "key use counts refused");
                    }
                    Err(e) if next.tries >= MAX_TRIES => {
                        tracing::warn!(error = %e, counts = next.uses.len(), "key use counts not written after {MAX_TRIES} tries; given up");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "key use counts not written; sending them again later");
                        pending = Some(next);
                        break;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Username {
        Username::new(name).expect("name")
    }

    #[test]
    fn counts_add_up_and_come_out_in_order_at_most_one_event_at_a_time() {
        let c = KeyUseCounter::default();
        c.add(KeyId(2), &user("bob"), KeyUseKind::Sign, 2);
        c.add(KeyId(1), &user("carol"), KeyUseKind::Decrypt, 1);
        c.add(KeyId(2), &user("bob"), KeyUseKind::Sign, 3);
        c.add(KeyId(2), &user("bob"), KeyUseKind::Verify, 0);
        c.add(KeyId(2), &user("alice"), KeyUseKind::Verify, 1);
        let uses = c.take();
        assert_eq!(
            uses.iter()
                .map(|u| (u.key, u.user.as_str(), u.kind, u.count))
                .collect::<Vec<_>>(),
            vec![
                (KeyId(1), "carol", KeyUseKind::Decrypt, 1),
                (KeyId(2), "alice", KeyUseKind::Verify, 1),
                (KeyId(2), "bob", KeyUseKind::Sign, 5),
            ]
        );
        assert!(hsm_state::versions::check_key_uses(&uses).is_ok());
        assert!(c.take().is_empty());
        for k in 0..(MAX_KEY_USES as u64 + 3) {
            c.add(KeyId(k), &user("bob"), KeyUseKind::Encrypt, 1);
        }
        let first = c.take();
        assert_eq!(first.len(), MAX_KEY_USES);
        assert!(hsm_state::versions::check_key_uses(&first).is_ok());
        assert_eq!(c.take().len(), 3);
    }

    #[test]
    fn only_the_items_that_succeeded_count() {
        use hsm_proto::client::{ByteBuf, ClientError};
        let results = vec![
            Ok(ByteBuf::from(vec![1])),
            Err(ClientError::invalid("bad")),
            Ok(ByteBuf::from(vec![2])),
        ];
        assert_eq!(
            uses_in(&Reply::Encrypted {
                version: 1,
                results
            }),
            2
        );
        assert_eq!(
            uses_in(&Reply::Verifications(vec![
                Ok(false),
                Err(ClientError::invalid("x"))
            ])),
            1
        );
        assert_eq!(uses_in(&Reply::Signature(vec![1])), 1);
    }
}
