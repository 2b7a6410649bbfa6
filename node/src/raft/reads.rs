//! The leader's read index, with a lease.
//!
//! A read index is the log index a read must have applied to reflect every
//! write acknowledged before it. The leader finds it by confirming with a
//! quorum that it still leads (openraft's `ensure_linearizable`: a round
//! of heartbeats). That confirmation holds for a while. A follower that
//! acknowledged a heartbeat sent at `t` refuses to vote for anyone else
//! until `election_timeout_max` after it received it (openraft's vote
//! lease), and does not stand itself before its election timer (at least
//! `election_timeout_min`) runs out; no new leader can be elected without
//! one of those followers. So until `t + lease`, with `lease` shorter than
//! `election_timeout_min` by a margin for clock-rate differences, no other
//! leader can have committed anything, and the read index is this node's
//! commit index, read from openraft's own state together with its vote and
//! role (so a step-down it has processed is seen at once, not through the
//! lagging metrics). The commit index, not the applied one: a follower may
//! apply an entry before the leader does, and a read there must not be
//! followed by an older read here.
//!
//! Assumes every member has the same election timeouts (the lease is
//! computed from this node's) and a clock that keeps running while the
//! host is paused (docs/security-model.md, "Known gaps").

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openraft::ServerState;
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

/// The lease, and the terms in which there is none.
#[derive(Debug, Default)]
struct Lease {
    confirmed: Option<Confirmed>,
    /// No lease in this term or any before: leadership is being handed
    /// over (`crate::handoff`), and the successor, standing early, may be
    /// elected by a member that was not in the quorum that confirmed it.
    ended_through: Option<u64>,
}

impl Lease {
    fn allowed(&self, term: u64) -> bool {
        self.ended_through.is_none_or(|t| term > t)
    }
}

/// This node's read index when it leads. Cheap to clone; clones share the
/// lease.
#[derive(Clone)]
pub struct LeaderReads {
    raft: Raft,
    lease: Duration,
    state: Arc<Mutex<Lease>>,
}

impl std::fmt::Debug for LeaderReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderReads")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl LeaderReads {
    /// Reads for `raft`, with a lease of three quarters of
    /// `election_timeout_min` (a margin for clocks that run up to a third
    /// faster on other hosts).
    pub fn new(raft: Raft, election_timeout_min: Duration) -> LeaderReads {
        LeaderReads {
            raft,
            lease: election_timeout_min * 3 / 4,
            state: Arc::new(Mutex::new(Lease::default())),
        }
    }

    /// Ends the lease for `term` and every term before: from now on a read
    /// index in those terms takes a quorum round. Called before this
    /// leader asks another member to stand (`crate::handoff`); a read
    /// answered from the lease before this call came before that member
    /// stood.
    pub fn end_lease(&self, term: u64) {
        let mut lease = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        lease.ended_through = Some(lease.ended_through.map_or(term, |t| t.max(term)));
        lease.confirmed = None;
    }

    /// The read index for a read that arrived before this call: this
    /// node's commit index while its lease holds, else the index a new
    /// quorum confirmation returns (which also renews the lease).
    ///
    /// # Errors
    /// [`ForwardRefused::NotLeader`] when this node does not lead,
    /// [`ForwardRefused::Failed`] when the quorum could not be reached.
    pub async fn read_index(&self) -> Result<u64, ForwardRefused> {
        let now = Instant::now();
        let state = self.leader_state().await?;
        if let Some((term, committed)) = state {
            let lease = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if lease.allowed(term)
                && lease
                    .confirmed
                    .is_some_and(|c| c.term == term && now < c.at + self.lease)
            {
                return Ok(committed);
            }
        }
        let at = Instant::now();
        let before = state.map(|(term, _)| term);
        let index = read_index(&self.raft).await?;
        // Kept only if this node led the same term before and after: the
        // round then confirmed the leadership of that term.
        let after = self.leader_state().await?.map(|(term, _)| term);
        if let (Some(term), true) = (before, before == after) {
            let mut lease = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if lease.allowed(term) {
                lease.confirmed = Some(Confirmed { at, term });
            }
        }
        Ok(index)
    }

    /// `(term, commit index)` from openraft's own state when this node
    /// leads with a committed vote; `None` otherwise.
    async fn leader_state(&self) -> Result<Option<(u64, u64)>, ForwardRefused> {
        self.raft
            .with_raft_state(|st| {
                let vote = st.vote_ref();
                (st.server_state == ServerState::Leader && vote.is_committed())
                    .then(|| (vote.leader_id().term, st.committed.map_or(0, |l| l.index)))
            })
            .await
            .map_err(|e| ForwardRefused::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_lease_stays_ended_in_its_term_and_before() {
        let mut lease = Lease::default();
        assert!(lease.allowed(1));
        lease.ended_through = Some(5);
        assert!(!lease.allowed(4) && !lease.allowed(5));
        // A later term was won by a new election: its lease is sound.
        assert!(lease.allowed(6));
    }
}
