//! The leader's read index, with a lease.
//!
//! A read index is the log index a read must have applied to reflect every
//! write acknowledged before it. The leader finds it by confirming with a
//! quorum that it still leads (openraft's `ensure_linearizable`: a round
//! of heartbeats). That confirmation holds for a while: the heartbeats of
//! a round sent at `t` reset each follower's election timer on arrival
//! (after `t`), and no new leader can be elected without the vote of one
//! of the followers that acknowledged, which does not stand or vote before
//! its timer runs out, at least `election_timeout_min` after `t`. So until
//! `t + lease`, with `lease` shorter than that by a margin for clock-rate
//! differences, this node is the only leader and everything acknowledged
//! anywhere is in its own applied state: its read index is simply what it
//! has applied. After that, the next read confirms again.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hsm_raft_store::StateMachineStore;
use tokio::time::Instant;

use super::{read_index, ForwardRefused, Raft};

/// A confirmation of leadership by a quorum.
#[derive(Debug, Clone, Copy)]
struct Confirmed {
    /// When the confirming round was started (before its heartbeats left).
    at: Instant,
    /// The term it confirmed.
    term: u64,
}

/// This node's read index when it leads. Cheap to clone; clones share the
/// lease.
#[derive(Clone)]
pub struct LeaderReads {
    raft: Raft,
    sm: StateMachineStore,
    lease: Duration,
    confirmed: Arc<Mutex<Option<Confirmed>>>,
}

impl std::fmt::Debug for LeaderReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderReads")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl LeaderReads {
    /// Reads for `raft` over its state machine `sm`, with a lease of three
    /// quarters of `election_timeout_min` (a margin for clocks that run up
    /// to a third faster on other hosts).
    pub fn new(raft: Raft, sm: StateMachineStore, election_timeout_min: Duration) -> LeaderReads {
        LeaderReads {
            raft,
            sm,
            lease: election_timeout_min * 3 / 4,
            confirmed: Arc::new(Mutex::new(None)),
        }
    }

    /// The read index for a read that arrived before this call: this
    /// node's applied index while its lease holds, else the index a new
    /// quorum confirmation returns (which also renews the lease).
    ///
    /// # Errors
    /// [`ForwardRefused::NotLeader`] when this node does not lead,
    /// [`ForwardRefused::Failed`] when the quorum could not be reached.
    pub async fn read_index(&self) -> Result<u64, ForwardRefused> {
        let (leading, term) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.current_leader == Some(m.id), m.current_term)
        };
        if leading {
            let lease = *self
                .confirmed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if lease.is_some_and(|c| c.term == term && Instant::now() < c.at + self.lease) {
                return Ok(*self.sm.applied_index().borrow());
            }
        }
        let at = Instant::now();
        let index = read_index(&self.raft).await?;
        // Kept only if the term did not change meanwhile: the round then
        // confirmed the leadership of that term.
        if self.raft.metrics().borrow().current_term == term {
            *self
                .confirmed
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Confirmed { at, term });
        }
        Ok(index)
    }
}
