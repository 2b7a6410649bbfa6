//! Catching up on who the members are, after time away.
//!
//! A member that was away (stopped, cut off) while a node was added and
//! then elected comes back to a leader its replica does not list, and
//! refuses it as a stranger; nothing it knows would ever make it take that
//! leader's entries. So when a node that is no member to it sends it Raft
//! messages, this task asks the members it knows for their roster (the one
//! a joining node is handed with the domain key) and keeps one that is of
//! its cluster, records it with its own key, comes from the member it
//! asked, and is further along the event chain than what it goes by
//! (`hsm_state::authz::check_roster` and `supersedes`, kept by
//! `StateMachineStore::trust_roster`). It then checks peers against that
//! roster until its replica has caught up.
//!
//! It trusts no one new by this: only members it already trusts are asked,
//! and any of them could send it entries anyway. A stranger who calls
//! costs at most one round of questions per [`PAUSE`].

use std::sync::Arc;
use std::time::Duration;

use hsm_proto::NodeId;
use hsm_raft_store::StateMachineStore;
use hsm_state::{authz, State};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::raft::QuicNetwork;

/// Least time between two rounds of questions.
pub const PAUSE: Duration = Duration::from_secs(2);

/// Longest wait for one member's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the task: a round of questions each time `strangers` is notified
/// (at most one per [`PAUSE`]).
pub fn spawn(
    network: QuicNetwork,
    sm: StateMachineStore,
    me: NodeId,
    signing_key: [u8; 32],
    strangers: Arc<Notify>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            strangers.notified().await;
            ask_members(&network, &sm, me, &signing_key).await;
            tokio::time::sleep(PAUSE).await;
        }
    })
}

/// Asks the members this node knows, one by one, until one hands it a
/// roster that supersedes what it goes by.
async fn ask_members(
    network: &QuicNetwork,
    sm: &StateMachineStore,
    me: NodeId,
    signing_key: &[u8; 32],
) {
    let (cluster, members) = sm.read(|a| {
        let view = a.trusted();
        let members: Vec<(NodeId, String, [u8; 32])> = view
            .nodes()
            .filter(|n| n.id != me)
            .map(|n| (n.id, n.address.clone(), n.transport_key))
            .collect();
        (view.cluster().map(|c| c.cluster_id), members)
    });
    let Some(cluster) = cluster else {
        // A joining node before its roster: it knows no member to ask.
        return;
    };
    for (member, address, pin) in members {
        let handoff =
            match tokio::time::timeout(ASK_TIMEOUT, network.fetch_domain_key(me, &address, pin))
                .await
            {
                Ok(Ok(handoff)) => handoff,
                Ok(Err(why)) => {
                    tracing::debug!(%member, %why, "no roster from this member");
                    continue;
                }
                Err(_) => continue,
            };
        let checked = State::from_entities(handoff.roster)
            .map_err(|e| e.to_string())
            .and_then(|roster| {
                authz::check_roster(&roster, cluster, me, signing_key, &pin).map(|()| roster)
            });
        let roster = match checked {
            Ok(roster) => roster,
            Err(why) => {
                tracing::warn!(%member, %why, "a member sent a roster this node cannot use");
                continue;
            }
        };
        match sm.trust_roster(&roster) {
            Ok(true) => {
                tracing::info!(
                    %member,
                    events = roster.events(),
                    "took a newer roster from a member: members changed while this node was away"
                );
                return;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot record a newer roster");
                return;
            }
        }
    }
}
