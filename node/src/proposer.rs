//! The leader's side of a write: build the next event of the chain, sign
//! it, and hand it to Raft, in chain order.
//!
//! The chain head the leader builds on is the hash of the last event *in
//! its log*, which may not be applied yet. It is re-read from the log each
//! time this node starts a new term as leader, and advanced in memory as
//! events are submitted; the lock is held from building an event until Raft
//! has queued it, so events enter the log in the order they were chained,
//! while their replication and apply overlap.

use ed25519_dalek::SigningKey;
use hsm_proto::{Actor, Event, EventBody, EventHash, NodeId, Rejection, RequestId};
use hsm_raft_store::{ApplyResponse, LogStore, StateMachineStore};
use hsm_state::{event_hash, sign_event};
use openraft::storage::RaftLogStorage;
use openraft::{EntryPayload, RaftLogReader};
use tokio::sync::Mutex;

use crate::raft::Raft;

/// How many log entries are read per step when looking back for the last
/// event.
const SCAN_STEP: u64 = 64;

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
}

struct Chain {
    /// Term in which `head` was read from the log.
    term: Option<u64>,
    head: EventHash,
}

/// Builds, signs and submits events on the leader.
pub struct Proposer {
    raft: Raft,
    log: LogStore,
    sm: StateMachineStore,
    node: NodeId,
    signing: SigningKey,
    chain: Mutex<Chain>,
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
    ) -> Proposer {
        Proposer {
            raft,
            log,
            sm,
            node,
            signing,
            chain: Mutex::new(Chain {
                term: None,
                head: EventHash::GENESIS,
            }),
        }
    }

    /// Builds the event, submits it, and waits until it is committed and
    /// applied on this node. The reply carries the log index and the state
    /// machine's verdict.
    ///
    /// # Errors
    /// [`ProposeError::NotLeader`] when this node is not the leader (also
    /// when it lost leadership while the write was in flight: the write may
    /// or may not have been applied, and a retry with the same request id
    /// is safe), [`ProposeError::Raft`] or [`ProposeError::Store`].
    pub async fn propose(
        &self,
        request_id: RequestId,
        actor: Actor,
        body: EventBody,
        now_ms: u64,
    ) -> Result<ApplyResponse, ProposeError> {
        let (receiver, term) = {
            let mut chain = self.chain.lock().await;
            let (leader, term) = {
                let m = self.raft.metrics();
                let m = m.borrow();
                (m.current_leader, m.current_term)
            };
            if leader != Some(self.node) {
                return Err(ProposeError::NotLeader { leader });
            }
            self.precheck(&body)?;
            if chain.term != Some(term) {
                chain.head = self.last_event_hash().await?;
                chain.term = Some(term);
            }
            let signed = sign_event(
                Event {
                    request_id,
                    timestamp_ms: now_ms,
                    actor,
                    prev_hash: chain.head,
                    body,
                },
                self.node,
                &self.signing,
            );
            let hash = event_hash(&signed);
            let receiver = self
                .raft
                .client_write_ff(signed)
                .await
                .map_err(|e| ProposeError::Raft(e.to_string()))?;
            chain.head = hash;
            (receiver, term)
        };
        match receiver.await {
            Ok(Ok(reply)) => {
                if reply.data.result == Err(Rejection::ChainMismatch) {
                    // Our head was not the log's: read it again.
                    self.forget_head(term).await;
                }
                Ok(reply.data)
            }
            Ok(Err(openraft::error::ClientWriteError::ForwardToLeader(f))) => {
                self.forget_head(term).await;
                Err(ProposeError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Ok(Err(e)) => {
                self.forget_head(term).await;
                Err(ProposeError::Raft(e.to_string()))
            }
            Err(e) => {
                self.forget_head(term).await;
                Err(ProposeError::Raft(e.to_string()))
            }
        }
    }

    /// [`Proposer::propose`] stamped with this node's clock.
    ///
    /// # Errors
    /// As [`Proposer::propose`].
    pub async fn propose_now(
        &self,
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
    fn precheck(&self, body: &EventBody) -> Result<(), ProposeError> {
        let (initialized, registered) = self.sm.read(|a| {
            (
                a.state.cluster().is_some(),
                a.state.node(self.node).is_some(),
            )
        });
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
                EntryPayload::Normal(signed) => Some(event_hash(signed)),
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
