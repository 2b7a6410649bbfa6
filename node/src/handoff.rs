//! Handing leadership to another member before the leader stops.
//!
//! A leader that simply stops leaves the others waiting out its lease and
//! then an election timeout before one of them stands (3 to 4 s with the
//! default timeouts), and every write and read waits that long. On
//! SIGTERM the leader instead:
//!
//! 1. stops taking new writes ([`Proposer::step_aside`]; callers retry
//!    elsewhere under the same request id) while the entries already on
//!    their way finish;
//! 2. waits until those entries are in its log store and a voter has
//!    every entry of it ([`successor`]);
//! 3. asks that voter to stand for election at once
//!    ([`RaftRpc::TakeLeadership`](crate::raft::RaftRpc::TakeLeadership)).
//!    The old leader grants it its vote (its log is no longer than the
//!    successor's), and steps down when it does; in a three-member
//!    cluster that vote and the candidate's own are a majority, so the new
//!    leader is elected within a round trip. With more members the others
//!    still refuse votes until the old leader's lease ends, and the
//!    successor wins at its next try (an election timeout). Should the
//!    successor lose anyway and this node lead again, it asks again, until
//!    its time is up.
//!
//! This is Raft's own election with the timing moved forward, not a change
//! of its rules: a vote is granted only to a log at least as long as the
//! voter's, and the leader's read lease stays sound because the old leader
//! stops leading (and serving reads under its lease) when it grants the
//! vote. openraft 0.9 has no leader transfer of its own (docs/decisions.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hsm_proto::NodeId;
use tokio::time::Instant;

use crate::proposer::Proposer;
use crate::raft::{QuicNetwork, Raft};

/// How a hand-over ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandOff {
    /// This node does not lead: nothing to hand over.
    NotLeading,
    /// No other voter to hand over to.
    Alone,
    /// `to` leads now.
    Done {
        /// The new leader.
        to: NodeId,
    },
    /// It did not happen in time, or was refused; why.
    Failed(String),
}

/// The voter to hand leadership to: among the voters other than `me` whose
/// matched log index (`matched`, from the leader's replication progress) is
/// `last`, this leader's last log index, the lowest id. `None` while no
/// voter has every entry.
pub fn successor(
    me: NodeId,
    voters: &[NodeId],
    matched: &BTreeMap<NodeId, Option<u64>>,
    last: u64,
) -> Option<NodeId> {
    voters
        .iter()
        .copied()
        .filter(|v| *v != me)
        .filter(|v| matched.get(v).copied().flatten() == Some(last))
        .min()
}

/// What the leader's metrics say, read at once.
struct Progress {
    leading: bool,
    voters: Vec<NodeId>,
    matched: BTreeMap<NodeId, Option<u64>>,
    addresses: BTreeMap<NodeId, String>,
}

fn progress(raft: &Raft) -> Progress {
    let m = raft.metrics();
    let m = m.borrow();
    let membership = m.membership_config.membership();
    Progress {
        leading: m.current_leader == Some(m.id),
        voters: membership.voter_ids().collect(),
        matched: m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
            .unwrap_or_default(),
        addresses: membership
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect(),
    }
}

/// Hands leadership from this node (`me`) to a caught-up voter within
/// `within`, as the module describes. On anything but [`HandOff::Done`]
/// (and [`HandOff::NotLeading`]) the proposer takes writes again.
pub async fn hand_off(
    me: NodeId,
    raft: &Raft,
    proposer: &Arc<Proposer>,
    network: &QuicNetwork,
    within: Duration,
) -> HandOff {
    let deadline = Instant::now() + within;
    let first = progress(raft);
    if !first.leading {
        return HandOff::NotLeading;
    }
    if !first.voters.iter().any(|v| *v != me) {
        return HandOff::Alone;
    }
    proposer.step_aside();
    let outcome = hand_over(me, raft, proposer, network, deadline).await;
    if !matches!(outcome, HandOff::Done { .. } | HandOff::NotLeading) {
        proposer.resume();
    }
    outcome
}

/// How long to wait for the proposer's last entries, and between looks.
const IDLE_POLL: Duration = Duration::from_millis(5);

async fn hand_over(
    me: NodeId,
    raft: &Raft,
    proposer: &Proposer,
    network: &QuicNetwork,
    deadline: Instant,
) -> HandOff {
    let mut metrics = raft.metrics();
    loop {
        // The entries already on their way finish first: after them nothing
        // enters this log (new writes are refused), so the index below is
        // the one the successor must reach. A successor one entry short
        // would be refused the vote, and this node would lead again.
        while !proposer.is_idle() {
            if Instant::now() >= deadline {
                return HandOff::Failed("writes on their way did not finish in time".into());
            }
            tokio::time::sleep(IDLE_POLL).await;
        }
        // The log store's last index: openraft's metrics can lag it.
        let last = match proposer.last_log_index().await {
            Ok(last) => last,
            Err(e) => return HandOff::Failed(e.to_string()),
        };
        let (to, addr) = loop {
            let p = progress(raft);
            if !p.leading {
                return HandOff::NotLeading;
            }
            if let Some(to) = successor(me, &p.voters, &p.matched, last) {
                match p.addresses.get(&to) {
                    Some(addr) => break (to, addr.clone()),
                    None => return HandOff::Failed(format!("no address for {to}")),
                }
            }
            if tokio::time::timeout_at(deadline, metrics.changed())
                .await
                .is_err()
            {
                return HandOff::Failed(format!("no voter caught up with index {last} in time"));
            }
        };
        let term = metrics.borrow().current_term;
        match tokio::time::timeout_at(deadline, network.ask_to_take_leadership(to, &addr)).await {
            Err(_) => return HandOff::Failed(format!("{to} did not answer in time")),
            Ok(Err(why)) => return HandOff::Failed(format!("{to} would not stand: {why}")),
            Ok(Ok(())) => {}
        }
        // Another member leads: done. This node leads again in a later
        // term (the successor lost its election, say to an entry this log
        // had and its did not): try again.
        loop {
            let (leader, now_term) = {
                let m = metrics.borrow();
                (m.current_leader, m.current_term)
            };
            match leader {
                Some(l) if l != me => return HandOff::Done { to: l },
                Some(_) if now_term > term => break,
                _ => {}
            }
            if tokio::time::timeout_at(deadline, metrics.changed())
                .await
                .is_err()
            {
                return HandOff::Failed(format!("{to} stood but no new leader was known in time"));
            }
        }
        tracing::info!(%to, "the member asked to take over lost its election; asking again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> Vec<NodeId> {
        v.iter().copied().map(NodeId).collect()
    }

    #[test]
    fn the_successor_has_every_entry_and_is_not_the_leader() {
        let voters = ids(&[1, 2, 3]);
        let matched: BTreeMap<NodeId, Option<u64>> = [
            (NodeId(1), Some(10)),
            (NodeId(2), Some(9)),
            (NodeId(3), Some(10)),
        ]
        .into();
        assert_eq!(successor(NodeId(1), &voters, &matched, 10), Some(NodeId(3)));
        // Nobody else caught up: wait.
        assert_eq!(successor(NodeId(3), &voters, &matched, 11), None);
        // Lowest id among the caught-up.
        let all: BTreeMap<NodeId, Option<u64>> =
            [(NodeId(2), Some(10)), (NodeId(3), Some(10))].into();
        assert_eq!(successor(NodeId(1), &voters, &all, 10), Some(NodeId(2)));
    }

    #[test]
    fn learners_and_unknown_progress_are_never_successors() {
        // 4 is a learner (not among the voters) and caught up; 2 has no
        // progress recorded.
        let voters = ids(&[1, 2]);
        let matched: BTreeMap<NodeId, Option<u64>> =
            [(NodeId(2), None), (NodeId(4), Some(7))].into();
        assert_eq!(successor(NodeId(1), &voters, &matched, 7), None);
        // A cluster of one has nobody to hand over to.
        assert_eq!(successor(NodeId(1), &ids(&[1]), &BTreeMap::new(), 0), None);
    }
}
