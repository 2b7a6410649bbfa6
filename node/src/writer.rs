//! Where a write enters the cluster on any node: proposed here when this
//! node leads, forwarded to the leader otherwise, retried with the same
//! request id until it is applied or the deadline passes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hsm_proto::client::Secret;
use hsm_proto::{Actor, EventBody, RequestId};
use hsm_raft_store::ApplyResponse;

use crate::proposer::{ProposeError, Proposer};
use crate::raft::{ForwardRefused, ForwardedWrite, QuicNetwork, Raft};

/// Pause before retrying while no leader is known.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Why a write did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The leader refused to propose the write; retrying later may succeed
    /// (for example once this node's membership is applied).
    #[error("write refused: {0}")]
    Refused(hsm_proto::Rejection),
    /// No leader could apply it before the deadline. The write may still be
    /// applied later; retrying with the same request id is safe.
    #[error("no leader applied the write within {timeout:?}: {last}")]
    Unavailable {
        /// The deadline given.
        timeout: Duration,
        /// The last reason seen.
        last: String,
    },
}

/// Submits writes from any node.
#[derive(Clone)]
pub struct Writer {
    raft: Raft,
    proposer: Arc<Proposer>,
    network: QuicNetwork,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// A writer using this node's proposer and its Raft network for
    /// forwarding.
    pub fn new(raft: Raft, proposer: Arc<Proposer>, network: QuicNetwork) -> Writer {
        Writer {
            raft,
            proposer,
            network,
        }
    }

    /// Applies one write through the current leader, wherever it is.
    ///
    /// # Errors
    /// [`WriteError::Unavailable`] when no leader applied it within
    /// `timeout`.
    /// `session` is the user's session token when `actor` is a user: a
    /// leader proposes a write forwarded in a user's name only with that
    /// user's current token (see [`crate::raft::ForwardedWrite`]).
    pub async fn write(
        &self,
        request_id: RequestId,
        actor: Actor,
        session: Option<&Secret>,
        body: EventBody,
        timeout: Duration,
    ) -> Result<ApplyResponse, WriteError> {
        let deadline = Instant::now() + timeout;
        let until = tokio::time::Instant::from_std(deadline);
        let unavailable = |last: String| WriteError::Unavailable { timeout, last };
        let mut last = String::from("no attempt made");
        loop {
            // Each attempt is bounded by the deadline: a leader cut off from
            // the majority keeps a write pending forever.
            let attempt = tokio::time::timeout_at(
                until,
                self.proposer
                    .propose_now(request_id, actor.clone(), body.clone()),
            )
            .await;
            let leader = match attempt {
                Err(_) => return Err(unavailable(format!("not committed in time ({last})"))),
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(ProposeError::Refused(r))) => return Err(WriteError::Refused(r)),
                Ok(Err(ProposeError::NotLeader { leader: None })) => {
                    last = "no leader known".into();
                    None
                }
                Ok(Err(ProposeError::NotLeader { leader })) => leader,
                Ok(Err(e)) => {
                    last = e.to_string();
                    None
                }
            };
            if let Some((id, addr)) =
                leader.and_then(|l| crate::raft::address_of(&self.raft, l).map(|a| (l, a)))
            {
                let write = ForwardedWrite {
                    request_id,
                    actor: actor.clone(),
                    session: session.cloned(),
                    body: body.clone(),
                };
                match tokio::time::timeout_at(until, self.network.forward(id, &addr, write)).await {
                    Err(_) => {
                        return Err(unavailable(format!("{id} did not answer in time")));
                    }
                    Ok(Ok(Ok(reply))) => return Ok(reply),
                    Ok(Ok(Err(ForwardRefused::Refused(r)))) => return Err(WriteError::Refused(r)),
                    Ok(Ok(Err(ForwardRefused::NotLeader(_)))) => {
                        last = format!("{id} is no longer the leader");
                    }
                    Ok(Ok(Err(e))) => last = e.to_string(),
                    Ok(Err(e)) => last = format!("forwarding to {id}: {e}"),
                }
            }
            if Instant::now() + RETRY_PAUSE > deadline {
                return Err(unavailable(last));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}
