//! The leader's side of a write: build the next event of the chain, sign
//! it, and hand it to Raft, in chain order, many writes to a log entry.
//!
//! The chain head the leader builds on is the hash of the last event *in
//! its log*, which may not be applied yet. It is re-read from the log each
//! time this node starts a new term as leader, and advanced in memory as
//! events are submitted; the lock is held from building an entry until Raft
//! has queued it, so events enter the log in the order they were chained,
//! while their replication and apply overlap.
//!
//! Group commit: openraft appends (and syncs) each entry on its own, one
//! after another, so one write per entry would cap writes at one per
//! sync. Writes queue here instead; whenever fewer than
//! [`MAX_IN_FLIGHT`] entries are on their way, everything queued (up to
//! [`MAX_BATCH_EVENTS`] events and [`MAX_BATCH_BYTES`]) goes into the next
//! entry. A lone write goes at once; under load, entries grow.

use std::collections::VecDeque;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use hsm_proto::{Actor, Event, EventBody, EventHash, NodeId, Rejection, RequestId};
use hsm_raft_store::{
    ApplyResponse, BatchApplied, EventBatch, LogStore, OwnEvents, StateMachineStore,
};
use hsm_state::{event_hash, event_hash_and_len, seal_batch, sign_event};
use openraft::storage::RaftLogStorage;
use openraft::{EntryPayload, RaftLogReader};
use tokio::sync::{oneshot, Mutex};

use crate::raft::Raft;

/// How many log entries are read per step when looking back for the last
/// event.
const SCAN_STEP: u64 = 64;
/// Most events in one log entry.
pub const MAX_BATCH_EVENTS: usize = 64;
/// Most bytes of encoded events in one log entry; an event larger than
/// this goes in an entry of its own.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Most entries submitted and not yet answered by Raft at once.
pub const MAX_IN_FLIGHT: usize = 2;
/// Most writes waiting for an entry; past it writes are refused as
/// [`ProposeError::Overloaded`] until the queue drains.
pub const MAX_QUEUED: usize = 8192;

/// Why a write was not applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProposeError {
    /// This node is not the leader; the leader, if known, is given.
    #[error("not the leader (leader is {leader:?})")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// Raft stopped or failed while handling the write.
    #[error("raft failed: {0}")]
    Raft(String),
    /// The log or state could not be read to find the chain head.
    #[error("cannot read the chain head: {0}")]
    Store(String),
    /// Refused before proposing: the event could not be authentic yet
    /// (see [`Proposer::propose`]).
    #[error("refused before proposing: {0}")]
    Refused(Rejection),
    /// [`MAX_QUEUED`] writes wait already; retry later.
    #[error("too many writes are waiting on the leader")]
    Overloaded,
}

struct Chain {
    /// Term in which `head` was read from the log.
    term: Option<u64>,
    head: EventHash,
}

type Reply = oneshot::Sender<Result<ApplyResponse, ProposeError>>;

/// A write waiting for its entry.
struct Queued {
    request_id: RequestId,
    actor: Actor,
    body: EventBody,
    now_ms: u64,
    reply: Reply,
}

/// One of the [`MAX_IN_FLIGHT`] slots, taken in [`Proposer::start`]:
/// dropping it, however its entry ends (answered, never submitted, or a
/// panic), frees the slot and starts the next entry.
struct Slot(Arc<Proposer>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.finished();
    }
}

/// Writes waiting for an entry, and how many entries are on their way.
#[derive(Default)]
struct Pending {
    queue: VecDeque<Queued>,
    in_flight: usize,
}

/// Builds, signs and submits events on the leader.
pub struct Proposer {
    raft: Raft,
    log: LogStore,
    sm: StateMachineStore,
    node: NodeId,
    signing: SigningKey,
    own_events: Arc<OwnEvents>,
    chain: Mutex<Chain>,
    pending: std::sync::Mutex<Pending>,
    /// Set while leadership is being handed to another member
    /// (`crate::handoff`): new writes are refused as if this node did not
    /// lead, so the successor's log can catch up with this one's.
    stepping_aside: std::sync::atomic::AtomicBool,
    /// Held by the one hand-over in progress (`crate::handoff`: SIGTERM's,
    /// a transfer's, a removal's).
    hand_over: tokio::sync::Mutex<()>,
    timings: Arc<crate::metrics::RaftTimings>,
}

/// Writes refused while this lives ([`Proposer::step_aside`]); taken
/// again when it is dropped, whatever ended the hand-over.
#[derive(Debug)]
pub struct SteppedAside<'a>(&'a Proposer);

impl Drop for SteppedAside<'_> {
    fn drop(&mut self) {
        self.0
            .stepping_aside
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Proposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proposer")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Proposer {
    /// A proposer for node `node`, signing with its identity key.
    pub fn new(
        raft: Raft,
        log: LogStore,
        sm: StateMachineStore,
        node: NodeId,
        signing: SigningKey,
        timings: Arc<crate::metrics::RaftTimings>,
    ) -> Proposer {
        Proposer {
            raft,
            log,
            own_events: sm.own_events(),
            sm,
            node,
            signing,
            chain: Mutex::new(Chain {
                term: None,
                head: EventHash::GENESIS,
            }),
            pending: std::sync::Mutex::default(),
            stepping_aside: std::sync::atomic::AtomicBool::new(false),
            hand_over: tokio::sync::Mutex::new(()),
            timings,
        }
    }

    /// From now on, refuses new writes as [`ProposeError::NotLeader`]
    /// (naming the new leader once one is known) while the entries already
    /// on their way finish: the leader hands over (`crate::handoff`). The
    /// writer retries them, and forwards them to the new leader, under
    /// the same request id. Writes are taken again when the guard is
    /// dropped.
    pub fn step_aside(&self) -> SteppedAside<'_> {
        self.stepping_aside
            .store(true, std::sync::atomic::Ordering::SeqCst);
        SteppedAside(self)
    }

    /// The lock the one hand-over in progress holds.
    pub fn hand_over_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.hand_over
    }

    /// Whether no write waits and no entry is on its way to Raft.
    pub fn is_idle(&self) -> bool {
        let pending = self.pending();
        pending.queue.is_empty() && pending.in_flight == 0
    }

    fn is_stepping_aside(&self) -> bool {
        self.stepping_aside
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Builds the event, submits it, and waits until it is committed and
    /// applied on this node. The reply carries the log index and the state
    /// machine's verdict. The event goes into the log with the other
    /// writes queued at the time (group commit: see the module). A caller
    /// that stops waiting before its write is taken for an entry leaves it
    /// out of the log; after that, the write may still be applied.
    ///
    /// # Errors
    /// [`ProposeError::NotLeader`] when this node is not the leader (also
    /// when it lost leadership while the write was in flight: the write may
    /// or may not have been applied, and a retry with the same request id
    /// is safe), [`ProposeError::Overloaded`], [`ProposeError::Raft`] or
    /// [`ProposeError::Store`].
    pub async fn propose(
        self: &Arc<Self>,
        request_id: RequestId,
        actor: Actor,
        body: EventBody,
        now_ms: u64,
    ) -> Result<ApplyResponse, ProposeError> {
        if self.is_stepping_aside() {
            // Once another member leads, name it, so the writer forwards.
            let leader = self.raft.metrics().borrow().current_leader;
            return Err(ProposeError::NotLeader {
                leader: leader.filter(|l| *l != self.node),
            });
        }
        let started = std::time::Instant::now();
        let (reply, answer) = oneshot::channel();
        {
            let mut pending = self.pending();
            if pending.queue.len() >= MAX_QUEUED {
                return Err(ProposeError::Overloaded);
            }
            pending.queue.push_back(Queued {
                request_id,
                actor,
                body,
                now_ms,
                reply,
            });
        }
        self.start();
        let outcome = answer
            .await
            .unwrap_or_else(|_| Err(ProposeError::Raft("the write was dropped".into())));
        if outcome.is_ok() {
            self.timings.proposed(started.elapsed());
        }
        outcome
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts an entry of queued writes, on a task of its own, when fewer
    /// than [`MAX_IN_FLIGHT`] are on their way. Deciding under the lock
    /// that guards the queue is what keeps every queued write on its way:
    /// either an entry starts now, or one in flight calls this when it is
    /// done ([`Proposer::finished`]).
    fn start(self: &Arc<Self>) {
        {
            let mut pending = self.pending();
            if pending.queue.is_empty() || pending.in_flight >= MAX_IN_FLIGHT {
                return;
            }
            pending.in_flight += 1;
        }
        let slot = Slot(self.clone());
        tokio::spawn(async move {
            let this = slot.0.clone();
            this.submit(slot).await;
        });
    }

    /// An entry is done (its [`Slot`] dropped): the next may start.
    fn finished(self: &Arc<Self>) {
        {
            let mut pending = self.pending();
            pending.in_flight = pending.in_flight.saturating_sub(1);
        }
        self.start();
    }

    fn next_queued(&self) -> Option<Queued> {
        self.pending().queue.pop_front()
    }

    /// Builds one entry of what is queued, submits it, and answers its
    /// writes when Raft answers; `slot` is freed when that is done, or
    /// at once when no entry went to Raft.
    async fn submit(self: &Arc<Self>, slot: Slot) {
        let mut chain = self.chain.lock().await;
        let (leader, term) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.current_leader, m.current_term)
        };
        if leader != Some(self.node) || self.is_stepping_aside() {
            let leader = leader.filter(|l| *l != self.node);
            let refused: Vec<Queued> = self.pending().queue.drain(..).collect();
            for q in refused {
                let _ = q.reply.send(Err(ProposeError::NotLeader { leader }));
            }
            return;
        }
        if chain.term != Some(term) {
            match self.last_event_hash().await {
                Ok(head) => {
                    chain.head = head;
                    chain.term = Some(term);
                }
                Err(e) => {
                    let reason = match e {
                        ProposeError::Store(m) => m,
                        other => other.to_string(),
                    };
                    let failed: Vec<Queued> = self.pending().queue.drain(..).collect();
                    for q in failed {
                        let _ = q.reply.send(Err(ProposeError::Store(reason.clone())));
                    }
                    return;
                }
            }
        }
        let mut head = chain.head;
        let mut events = Vec::new();
        let mut hashes = Vec::new();
        let mut replies = Vec::new();
        let mut bytes = 0usize;
        while events.len() < MAX_BATCH_EVENTS {
            let Some(q) = self.next_queued() else {
                break;
            };
            if q.reply.is_closed() {
                // Its caller gave up before it was taken: leave it out.
                continue;
            }
            if let Err(e) = self.precheck(&q.actor, &q.body) {
                let _ = q.reply.send(Err(e));
                continue;
            }
            let signed = sign_event(
                Event {
                    request_id: q.request_id,
                    timestamp_ms: q.now_ms,
                    actor: q.actor.clone(),
                    prev_hash: head,
                    body: q.body.clone(),
                },
                self.node,
                &self.signing,
            );
            let (hash, len) = event_hash_and_len(&signed);
            if !events.is_empty() && bytes + len > MAX_BATCH_BYTES {
                // Too much for this entry: first in the next one.
                self.pending().queue.push_front(q);
                break;
            }
            self.own_events
                .signed(hash, self.signing.verifying_key().to_bytes());
            head = hash;
            bytes += len;
            hashes.push(hash);
            events.push(signed);
            replies.push(q.reply);
        }
        if events.is_empty() {
            return;
        }
        // More than one event: sealed, so members verify one signature.
        let seal = (hashes.len() > 1).then(|| seal_batch(&hashes, self.node, &self.signing));
        let receiver = match self.raft.client_write_ff(EventBatch { events, seal }).await {
            Ok(receiver) => receiver,
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(ProposeError::Raft(e.to_string())));
                }
                return;
            }
        };
        chain.head = head;
        drop(chain);
        let this = self.clone();
        tokio::spawn(async move {
            let answer = receiver.await;
            this.answer(term, replies, answer).await;
            drop(slot);
        });
        // What did not fit may go in the next entry at once.
        self.start();
    }

    /// Gives each write of an entry its outcome.
    async fn answer<E: std::fmt::Display>(
        &self,
        term: u64,
        replies: Vec<Reply>,
        answer: Result<
            Result<
                openraft::raft::ClientWriteResponse<hsm_raft_store::TypeConfig>,
                openraft::error::ClientWriteError<NodeId, openraft::BasicNode>,
            >,
            E,
        >,
    ) {
        let failed = |e: &dyn Fn() -> ProposeError, replies: Vec<Reply>| {
            for reply in replies {
                let _ = reply.send(Err(e()));
            }
        };
        match answer {
            Ok(Ok(reply)) => {
                let BatchApplied { index, events } = reply.data;
                if events
                    .iter()
                    .any(|e| e.result == Err(Rejection::ChainMismatch))
                {
                    // Our head was not the log's: read it again.
                    self.forget_head(term).await;
                }
                let mut outcomes = events.into_iter();
                for reply in replies {
                    let _ = reply.send(outcomes.next().ok_or_else(|| {
                        ProposeError::Raft(format!("entry {index} has no outcome for the write"))
                    }));
                }
            }
            Ok(Err(openraft::error::ClientWriteError::ForwardToLeader(f))) => {
                self.forget_head(term).await;
                let leader = f.leader_id;
                failed(&|| ProposeError::NotLeader { leader }, replies);
            }
            Ok(Err(e)) => {
                self.forget_head(term).await;
                let m = e.to_string();
                failed(&|| ProposeError::Raft(m.clone()), replies);
            }
            Err(e) => {
                self.forget_head(term).await;
                let m = e.to_string();
                failed(&|| ProposeError::Raft(m.clone()), replies);
            }
        }
    }

    /// [`Proposer::propose`] stamped with this node's clock.
    ///
    /// # Errors
    /// As [`Proposer::propose`].
    pub async fn propose_now(
        self: &Arc<Self>,
        request_id: RequestId,
        actor: Actor,
        body: EventBody,
    ) -> Result<ApplyResponse, ProposeError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.propose(request_id, actor, body, now_ms).await
    }

    /// Refuses, without proposing, an event that every replica would refuse
    /// as inauthentic: anything before the cluster is initialized, a second
    /// init, or an event signed by a node not yet registered as a member.
    /// Replicas would only move their chain head past it, so this just
    /// keeps useless events out of the log and gives the caller a clear
    /// reason. (The applied state can lag the log; a refusal here is safe
    /// to retry.)
    fn precheck(&self, actor: &Actor, body: &EventBody) -> Result<(), ProposeError> {
        let (initialized, registered, raise) = self.sm.read(|a| {
            (
                a.state.cluster().is_some(),
                a.state.node(self.node).is_some(),
                hsm_state::protocol::check_proposal(&a.state, self.node, actor, body),
            )
        });
        // No event the cluster's version does not have, and a raise only
        // the leader's own, to a version it speaks: one in the log that a
        // member cannot decode or apply would stop it.
        raise.map_err(ProposeError::Refused)?;
        let refusal = match body {
            EventBody::ClusterInitialized { .. } if initialized => {
                Some(Rejection::AlreadyInitialized)
            }
            EventBody::ClusterInitialized { .. } => None,
            _ if !initialized => Some(Rejection::NotInitialized),
            _ if !registered => Some(Rejection::UnknownSigner(self.node)),
            _ => None,
        };
        refusal.map_or(Ok(()), |r| Err(ProposeError::Refused(r)))
    }

    /// After a failed write the head in memory may name an event that never
    /// reached the log; read it again next time, unless this node has since
    /// started another term (whose head was read after this write failed).
    async fn forget_head(&self, term: u64) {
        let mut chain = self.chain.lock().await;
        if chain.term == Some(term) {
            chain.term = None;
        }
    }

    /// The hash of the last event in the log, or, if the log holds none
    /// (empty, or purged past the last event), the applied state's head.
    /// The index of the last entry in this node's log store (what Raft
    /// appended, ahead of its metrics).
    ///
    /// # Errors
    /// [`ProposeError::Store`] if the log cannot be read.
    pub async fn last_log_index(&self) -> Result<u64, ProposeError> {
        let mut log = self.log.clone();
        let state = log
            .get_log_state()
            .await
            .map_err(|e| ProposeError::Store(e.to_string()))?;
        Ok(state.last_log_id.map_or(0, |l| l.index))
    }

    async fn last_event_hash(&self) -> Result<EventHash, ProposeError> {
        let mut log = self.log.clone();
        let state = log
            .get_log_state()
            .await
            .map_err(|e| ProposeError::Store(e.to_string()))?;
        let first = state.last_purged_log_id.map_or(0, |l| l.index + 1);
        let mut end = state.last_log_id.map_or(0, |l| l.index + 1);
        while end > first {
            let start = end.saturating_sub(SCAN_STEP).max(first);
            let entries = log
                .try_get_log_entries(start..end)
                .await
                .map_err(|e| ProposeError::Store(e.to_string()))?;
            let last_event = entries.iter().rev().find_map(|e| match &e.payload {
                EntryPayload::Normal(batch) => batch.events.last().map(event_hash),
                _ => None,
            });
            if let Some(hash) = last_event {
                return Ok(hash);
            }
            end = start;
        }
        Ok(self.sm.read(|a| a.state.head()))
    }
}
