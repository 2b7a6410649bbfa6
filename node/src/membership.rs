//! Keeps Raft's membership in step with the members the replicated state
//! records.
//!
//! A crypto officer's approval (`NodeAdded`) or removal (`NodeRemoved`) is
//! an event; Raft membership follows it, driven by the leader: an approved
//! node is added as a learner, promoted to voter once it has caught up, and
//! a removed node is taken out. Founding members named at init join the
//! same way. One mechanism, so a member can never vote before a crypto
//! officer approved it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hsm_proto::NodeId;
use hsm_raft_store::StateMachineStore;
use openraft::{BasicNode, ChangeMembers};
use tokio::task::JoinHandle;

use crate::raft::Raft;

/// How often the leader compares the two.
const TICK: Duration = Duration::from_millis(300);

/// Longest one membership change may take before the task tries again
/// (a change waits for a quorum, which may be gone).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A learner this close to the leader's last log index is promoted.
const CAUGHT_UP_ENTRIES: u64 = 64;

/// What to change next, if anything.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Add approved nodes Raft does not know yet, as learners.
    AddLearners(BTreeMap<NodeId, String>),
    /// Promote caught-up learners.
    Promote(BTreeSet<NodeId>),
    /// Remove nodes the state no longer lists.
    Remove(BTreeSet<NodeId>),
}

/// Compares the recorded members (`desired`, id to address) with Raft's
/// (`voters`, and every node with its matched log index) and picks the
/// next step. Pure, so it is tested on its own.
pub fn next_step(
    desired: &BTreeMap<NodeId, String>,
    voters: &BTreeSet<NodeId>,
    nodes: &BTreeMap<NodeId, Option<u64>>,
    last_log_index: u64,
) -> Option<Step> {
    if desired.is_empty() {
        // Not initialized yet (or the state is unreadable): change nothing.
        return None;
    }
    let removed: BTreeSet<NodeId> = nodes
        .keys()
        .filter(|id| !desired.contains_key(id))
        .copied()
        .collect();
    if !removed.is_empty() && voters.iter().any(|v| desired.contains_key(v)) {
        return Some(Step::Remove(removed));
    }
    let missing: BTreeMap<NodeId, String> = desired
        .iter()
        .filter(|(id, _)| !nodes.contains_key(id))
        .map(|(id, a)| (*id, a.clone()))
        .collect();
    if !missing.is_empty() {
        return Some(Step::AddLearners(missing));
    }
    let ready: BTreeSet<NodeId> = nodes
        .iter()
        .filter(|(id, matched)| {
            !voters.contains(id)
                && desired.contains_key(id)
                && matched.is_some_and(|m| m + CAUGHT_UP_ENTRIES >= last_log_index)
        })
        .map(|(id, _)| *id)
        .collect();
    if !ready.is_empty() {
        return Some(Step::Promote(ready));
    }
    None
}

/// Runs the reconciliation on this node; it acts only while it leads.
pub fn spawn(raft: Raft, sm: StateMachineStore, me: NodeId) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(TICK).await;
            match tokio::time::timeout(CHANGE_TIMEOUT, tick(&raft, &sm, me)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "membership change failed; retrying"),
                Err(_) => tracing::warn!("membership change not committed in time; retrying"),
            }
        }
    })
}

async fn tick(raft: &Raft, sm: &StateMachineStore, me: NodeId) -> Result<(), String> {
    let (voters, nodes, last_log_index) = {
        let metrics = raft.metrics();
        let m = metrics.borrow();
        if m.current_leader != Some(me) {
            return Ok(());
        }
        let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
        let matched = m.replication.clone().unwrap_or_default();
        let nodes: BTreeMap<NodeId, Option<u64>> = m
            .membership_config
            .nodes()
            .map(|(id, _)| {
                let index = if *id == me {
                    m.last_log_index
                } else {
                    matched.get(id).cloned().flatten().map(|l| l.index)
                };
                (*id, index)
            })
            .collect();
        (voters, nodes, m.last_log_index.unwrap_or(0))
    };
    let desired: BTreeMap<NodeId, String> =
        sm.read(|a| a.state.nodes().map(|n| (n.id, n.address.clone())).collect());
    match next_step(&desired, &voters, &nodes, last_log_index) {
        None => Ok(()),
        Some(Step::AddLearners(add)) => {
            for (id, addr) in add {
                tracing::info!(node = %id, %addr, "adding an approved node as a learner");
                raft.add_learner(id, BasicNode { addr }, false)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        Some(Step::Promote(ids)) => {
            tracing::info!(nodes = ?ids, "promoting caught-up learners to voters");
            raft.change_membership(ChangeMembers::AddVoterIds(ids), false)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Some(Step::Remove(ids)) => {
            tracing::info!(nodes = ?ids, "removing nodes the cluster no longer lists");
            let voting: BTreeSet<NodeId> = ids.intersection(&voters).copied().collect();
            let change = if voting.is_empty() {
                ChangeMembers::RemoveNodes(ids)
            } else {
                ChangeMembers::RemoveVoters(voting)
            };
            raft.change_membership(change, false)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> BTreeSet<NodeId> {
        v.iter().map(|i| NodeId(*i)).collect()
    }

    fn desired(v: &[u64]) -> BTreeMap<NodeId, String> {
        v.iter().map(|i| (NodeId(*i), format!("h{i}:1"))).collect()
    }

    fn nodes(v: &[(u64, Option<u64>)]) -> BTreeMap<NodeId, Option<u64>> {
        v.iter().map(|(i, m)| (NodeId(*i), *m)).collect()
    }

    #[test]
    fn an_approved_node_is_added_as_learner_then_promoted_once_caught_up() {
        let d = desired(&[1, 2]);
        let step = next_step(&d, &ids(&[1]), &nodes(&[(1, Some(500))]), 500);
        assert_eq!(step, Some(Step::AddLearners(desired(&[2]))));
        // A learner far behind stays a learner.
        let n = nodes(&[(1, Some(500)), (2, Some(10))]);
        assert_eq!(next_step(&d, &ids(&[1]), &n, 500), None);
        let n = nodes(&[(1, Some(500)), (2, None)]);
        assert_eq!(next_step(&d, &ids(&[1]), &n, 500), None);
        let n = nodes(&[(1, Some(500)), (2, Some(490))]);
        assert_eq!(
            next_step(&d, &ids(&[1]), &n, 500),
            Some(Step::Promote(ids(&[2])))
        );
        let n = nodes(&[(1, Some(500)), (2, Some(500))]);
        assert_eq!(next_step(&d, &ids(&[1, 2]), &n, 500), None);
    }

    #[test]
    fn a_removed_node_leaves_raft_and_nothing_happens_before_init() {
        let n = nodes(&[(1, Some(9)), (2, Some(9)), (3, Some(9))]);
        assert_eq!(
            next_step(&desired(&[1, 2]), &ids(&[1, 2, 3]), &n, 9),
            Some(Step::Remove(ids(&[3])))
        );
        assert_eq!(next_step(&BTreeMap::new(), &ids(&[1]), &n, 9), None);
    }
}
