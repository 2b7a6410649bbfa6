//! Handing leadership to another member before the leader stops.
//!
//! A leader that simply stops leaves the others waiting out its lease and
//! then an election timeout before one of them stands (3 to 4 s with the
//! default timeouts), and every write and read waits that long. On
//! SIGTERM the leader instead (its background tasks, which could append
//! entries of their own, stopped first: `RunningNode::shutdown`):
//!
//! 0. while it still takes writes, waits until it has led longer than the
//!    leader lease (openraft gives its vote away only then) and a voter
//!    is within 64 entries of its log, so writes wait only for the last
//!    few (one hand-over at a time: [`Proposer::hand_over_lock`]);
//! 1. stops taking new writes ([`Proposer::step_aside`]; its writer
//!    retries them and forwards them to the new leader once it is known,
//!    under the same request id) and waits for the entries already on
//!    their way;
//! 2. waits until a voter has every entry of its log store
//!    ([`successor`]);
//! 3. ends its read lease for this term ([`LeaderReads::end_lease`]): from
//!    here on its reads take a quorum round, which fails once a successor
//!    stands;
//! 4. asks that voter to stand for election at once
//!    ([`RaftRpc::TakeLeadership`](crate::raft::RaftRpc::TakeLeadership),
//!    naming its term). The old leader grants it its vote (its log is no
//!    longer than the successor's) and steps down as it does; in a
//!    three-member cluster those two votes elect the successor within a
//!    round trip. With more members the others refuse until their vote
//!    lease from the old leader runs out, and the successor wins at a
//!    later try. A voter that does not answer within [`ASK_WITHIN`] is
//!    passed over for the next one; should the successor lose and this
//!    node lead again, it asks again, until its time is up.
//!
//! This is Raft's own election with the timing moved forward, not a change
//! of its rules: a vote is granted only to a log at least as long as the
//! voter's. The read lease stays sound because it ends before anyone is
//! asked to stand: the lease argument (docs/decisions.md, "Every request
//! passes a read barrier") needs every member of the confirming quorum to
//! wait out its election timer, which the successor no longer does.
//! openraft 0.9 has no leader transfer of its own (docs/decisions.md).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use hsm_proto::NodeId;
use hsm_raft_store::StateMachineStore;
use tokio::time::Instant;

use crate::proposer::Proposer;
use crate::raft::{LeaderReads, QuicNetwork, Raft};

/// Longest one voter may take to answer the request to stand before the
/// next caught-up voter is asked.
pub const ASK_WITHIN: Duration = Duration::from_millis(1_000);

/// How often to look whether the entries on their way are in.
const IDLE_POLL: Duration = Duration::from_millis(5);

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

/// The voter to hand leadership to: among the voters other than `me` and
/// those in `passed_over` whose matched log index (`matched`, from the
/// leader's replication progress) is `last`, this leader's last log index,
/// the lowest id. `None` while no such voter has every entry.
pub fn successor(
    me: NodeId,
    voters: &[NodeId],
    matched: &BTreeMap<NodeId, Option<u64>>,
    last: u64,
    passed_over: &BTreeSet<NodeId>,
) -> Option<NodeId> {
    voters
        .iter()
        .copied()
        .filter(|v| *v != me && !passed_over.contains(v))
        .filter(|v| matched.get(v).copied().flatten() == Some(last))
        .min()
}

/// What the leader's metrics say, read at once.
struct Progress {
    /// Leading, with Raft running.
    leading: bool,
    term: u64,
    voters: Vec<NodeId>,
    matched: BTreeMap<NodeId, Option<u64>>,
    addresses: BTreeMap<NodeId, String>,
}

fn progress(raft: &Raft) -> Progress {
    let m = raft.metrics();
    let m = m.borrow();
    let membership = m.membership_config.membership();
    Progress {
        leading: m.current_leader == Some(m.id) && m.running_state.is_ok(),
        term: m.current_term,
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

/// What this node needs to hand over.
pub struct Parts<'a> {
    /// This node.
    pub me: NodeId,
    /// Its Raft.
    pub raft: &'a Raft,
    /// Its proposer, which stops taking writes.
    pub proposer: &'a Arc<Proposer>,
    /// Its read lease, which ends.
    pub reads: &'a LeaderReads,
    /// Its network, to ask the successor.
    pub network: &'a QuicNetwork,
    /// Its replica: who is a member.
    pub sm: &'a StateMachineStore,
}

/// Hands leadership from this node to a caught-up voter (`to`, or any)
/// within `within`, as the module describes. Whatever the outcome, the
/// proposer takes writes again afterwards (it refuses them anyway while
/// another member leads); the lease stays ended for the terms it was
/// ended in (after a hand-over that failed, this leader's reads take a
/// quorum round each until its next term). Used on SIGTERM, on a crypto
/// officer's request (`hsm node transfer-leader`) and before the leader
/// is removed.
pub async fn hand_off(parts: &Parts<'_>, to: Option<NodeId>, within: Duration) -> HandOff {
    let deadline = Instant::now() + within;
    // One at a time: SIGTERM's waits for a transfer's to end.
    let Ok(_one) = tokio::time::timeout_at(deadline, parts.proposer.hand_over_lock().lock()).await
    else {
        return HandOff::Failed("another hand-over did not end in time".into());
    };
    let first = progress(parts.raft);
    if !first.leading {
        return HandOff::NotLeading;
    }
    if !first.voters.iter().any(|v| *v != parts.me) {
        return HandOff::Alone;
    }
    // While writes are still taken: this node's vote old enough to be
    // given away, and a voter close behind. Writes wait only for the
    // last few entries.
    if let Err(failed) = lease_passed(parts.raft, deadline).await {
        return failed;
    }
    if let Err(failed) = close_behind(parts, to, deadline).await {
        return failed;
    }
    let _aside = parts.proposer.step_aside();
    hand_over(parts, to, deadline).await
}

/// How far behind the leader's log a voter may be when writes stop for a
/// hand-over: what it then catches up on while writes wait.
const CLOSE_BEHIND: u64 = 64;

/// The voters that may lead next: `to`, or any, other than this node and
/// still members in its replica (one whose removal applied may still vote
/// in Raft for a moment, but could not sign a write as leader).
fn candidates(parts: &Parts<'_>, p: &Progress, to: Option<NodeId>) -> Vec<NodeId> {
    parts.sm.read(|a| {
        p.voters
            .iter()
            .copied()
            .filter(|v| *v != parts.me && to.is_none_or(|t| *v == t))
            .filter(|v| a.state.node(*v).is_some())
            .collect()
    })
}

/// Waits, while writes go on, until a candidate's log is within
/// [`CLOSE_BEHIND`] entries of this leader's, or fails at `deadline`.
async fn close_behind(
    parts: &Parts<'_>,
    to: Option<NodeId>,
    deadline: Instant,
) -> Result<(), HandOff> {
    let mut metrics = parts.raft.metrics();
    loop {
        let p = progress(parts.raft);
        if !p.leading {
            return Err(HandOff::NotLeading);
        }
        let last = metrics.borrow().last_log_index.unwrap_or(0);
        let candidates = candidates(parts, &p, to);
        if candidates.is_empty() {
            return Err(HandOff::Failed(match to {
                Some(t) => format!("{t} is not a voting member"),
                None => "no other voting member".into(),
            }));
        }
        let close = candidates.iter().any(|c| {
            p.matched
                .get(c)
                .copied()
                .flatten()
                .is_some_and(|m| m + CLOSE_BEHIND >= last)
        });
        if close {
            return Ok(());
        }
        changed(&mut metrics, deadline, || {
            format!("no voter came within {CLOSE_BEHIND} entries of index {last} in time")
        })
        .await?;
    }
}

/// Waits for the metrics to change, or fails at `deadline` or when Raft
/// has stopped (its metrics channel closed).
async fn changed(
    metrics: &mut tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, openraft::BasicNode>>,
    deadline: Instant,
    waiting_for: impl FnOnce() -> String,
) -> Result<(), HandOff> {
    match tokio::time::timeout_at(deadline, metrics.changed()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(HandOff::Failed("raft stopped".into())),
        Err(_) => Err(HandOff::Failed(waiting_for())),
    }
}

async fn hand_over(parts: &Parts<'_>, to: Option<NodeId>, deadline: Instant) -> HandOff {
    let Parts {
        me,
        raft,
        proposer,
        reads,
        network,
        ..
    } = *parts;
    let mut metrics = raft.metrics();
    let mut passed_over = BTreeSet::new();
    loop {
        // The entries already on their way finish first: after them only
        // openraft's own entries could enter this log, and the index is
        // read again whenever the metrics change.
        while !proposer.is_idle() {
            if Instant::now() >= deadline {
                return HandOff::Failed("writes on their way did not finish in time".into());
            }
            tokio::time::sleep(IDLE_POLL).await;
        }
        let (to, addr, term) = loop {
            // The log store's last index: openraft's metrics can lag it.
            let last = match proposer.last_log_index().await {
                Ok(last) => last,
                Err(e) => return HandOff::Failed(e.to_string()),
            };
            let p = progress(raft);
            if !p.leading {
                return HandOff::NotLeading;
            }
            let candidates = candidates(parts, &p, to);
            if candidates.iter().all(|v| passed_over.contains(v)) {
                return HandOff::Failed(match to {
                    Some(t) if !passed_over.contains(&t) => format!("{t} is not a voter"),
                    Some(t) => format!("{t} would not take over"),
                    None => "every other voter was asked; none took over".into(),
                });
            }
            if let Some(to) = successor(me, &candidates, &p.matched, last, &passed_over) {
                match p.addresses.get(&to) {
                    Some(addr) => break (to, addr.clone(), p.term),
                    None => return HandOff::Failed(format!("no address for {to}")),
                }
            }
            if let Err(failed) = changed(&mut metrics, deadline, || {
                format!("no voter caught up with index {last} in time")
            })
            .await
            {
                return failed;
            }
        };
        // The old leader's vote goes to the successor only once its own
        // is older than the leader lease (openraft's rule: a leader just
        // elected is not deposed at once): asking before would only make
        // the successor lose. A leader that was elected a moment ago (by
        // the last transfer) waits that long.
        if let Err(failed) = lease_passed(raft, deadline).await {
            return failed;
        }
        // Before anyone stands: no more reads from the lease in this term.
        reads.end_lease(term);
        let ask_until = (Instant::now() + ASK_WITHIN).min(deadline);
        match tokio::time::timeout_at(ask_until, network.ask_to_take_leadership(to, &addr, term))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                tracing::info!(%to, %why, "a voter would not take over; asking another");
                passed_over.insert(to);
                continue;
            }
            Err(_) => {
                tracing::info!(%to, "a voter did not answer in time; asking another");
                passed_over.insert(to);
                continue;
            }
        }
        // Another member leads: done. This node leads again in a later
        // term (the successor lost its election): try again.
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
            if let Err(failed) = changed(&mut metrics, deadline, || {
                format!("{to} stood but no new leader was known in time")
            })
            .await
            {
                return failed;
            }
        }
        tracing::info!(%to, "the member asked to take over lost its election; asking again");
    }
}

/// Waits until this node's vote is older than the leader lease
/// (openraft's `leader_lease`, the upper election timeout), or fails at
/// `deadline`.
async fn lease_passed(raft: &Raft, deadline: Instant) -> Result<(), HandOff> {
    let lease = Duration::from_millis(raft.config().election_timeout_max);
    let age = raft
        .with_raft_state(|st| st.vote_last_modified().map(|t| t.elapsed()))
        .await
        .map_err(|e| HandOff::Failed(format!("raft stopped: {e}")))?;
    let Some(wait) = age.and_then(|age| lease.checked_sub(age)) else {
        return Ok(());
    };
    // A little past the lease: openraft compares with `<=`.
    let until = Instant::now() + wait + Duration::from_millis(20);
    if until > deadline {
        return Err(HandOff::Failed(
            "this node became leader too recently to hand over in time".into(),
        ));
    }
    tokio::time::sleep_until(until).await;
    Ok(())
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
        assert_eq!(
            successor(NodeId(1), &voters, &matched, 10, &BTreeSet::new()),
            Some(NodeId(3))
        );
        // Nobody else caught up: wait.
        assert_eq!(
            successor(NodeId(3), &voters, &matched, 11, &BTreeSet::new()),
            None
        );
        // Lowest id among the caught-up.
        let all: BTreeMap<NodeId, Option<u64>> =
            [(NodeId(2), Some(10)), (NodeId(3), Some(10))].into();
        assert_eq!(
            successor(NodeId(1), &voters, &all, 10, &BTreeSet::new()),
            Some(NodeId(2))
        );
        // One that did not answer is passed over for the next.
        let passed: BTreeSet<NodeId> = [NodeId(2)].into();
        assert_eq!(
            successor(NodeId(1), &voters, &all, 10, &passed),
            Some(NodeId(3))
        );
    }

    #[test]
    fn learners_and_unknown_progress_are_never_successors() {
        // 4 is a learner (not among the voters) and caught up; 2 has no
        // progress recorded.
        let voters = ids(&[1, 2]);
        let matched: BTreeMap<NodeId, Option<u64>> =
            [(NodeId(2), None), (NodeId(4), Some(7))].into();
        assert_eq!(
            successor(NodeId(1), &voters, &matched, 7, &BTreeSet::new()),
            None
        );
        // A cluster of one has nobody to hand over to.
        assert_eq!(
            successor(NodeId(1), &ids(&[1]), &BTreeMap::new(), 0, &BTreeSet::new()),
            None
        );
    }
}
