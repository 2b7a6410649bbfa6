//! Cluster status and membership approvals.

use std::time::Duration;

use hsm_proto::client::{
    ClientError, ClusterStatus, DomainKeyStatus, ErrorKind, MemberInfo, MemberState, MembersReport,
    Reply,
};
use hsm_proto::{Actor, EventBody, NodeId, NodeRecord};

use super::{Ctx, Outcome, Service};
use crate::handoff::{self, HandOff};

/// Longest moving leadership may take: a successor to catch up, be asked,
/// and win.
const MOVE_WITHIN: Duration = Duration::from_secs(8);

impl Service {
    /// Members (voters and learners, with the zones the state records),
    /// the leader this node knows of, and counts.
    pub(super) fn cluster_info(&self, with_counts: bool) -> Reply {
        let (leader, term, voters, nodes) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            let voters: std::collections::BTreeSet<NodeId> =
                m.membership_config.membership().voter_ids().collect();
            let nodes: Vec<(NodeId, String)> = m
                .membership_config
                .nodes()
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect();
            (m.current_leader, m.current_term, voters, nodes)
        };
        let status = self.state(|s| {
            let members = nodes
                .iter()
                .map(|(id, addr)| {
                    let record = s.node(*id);
                    MemberInfo {
                        id: *id,
                        address: record.map_or_else(|| addr.clone(), |r| r.address.clone()),
                        zone: record.map_or_else(String::new, |r| r.zone.clone()),
                        voter: voters.contains(id),
                        // No record (yet): no key a client would accept.
                        transport_key: record.map_or([0; 32], |r| r.transport_key),
                    }
                })
                .collect();
            ClusterStatus {
                cluster_id: s.cluster().map(|c| c.cluster_id),
                activated: s.cluster().is_some_and(|c| c.activated),
                answered_by: self.node,
                leader,
                term,
                members,
                keys: if with_counts { s.key_count() as u64 } else { 0 },
                users: if with_counts {
                    s.users().count() as u64
                } else {
                    0
                },
                // Only with a session: a pending rotation tells that a
                // member was just removed.
                domain_key: s
                    .cluster()
                    .filter(|_| with_counts)
                    .map(|c| DomainKeyStatus {
                        generation: c.domain.current,
                        keys_to_rewrap: s.keys_to_rewrap() as u64,
                        older_generations: c
                            .domain
                            .generations
                            .keys()
                            .filter(|g| **g != c.domain.current)
                            .copied()
                            .collect(),
                        rotation_due: c.domain.rotation_due,
                    }),
            }
        });
        Reply::ClusterInfo(status)
    }

    /// Records a crypto officer's approval of a new member. The leader's
    /// membership task then adds it to Raft, first as a learner.
    pub(super) async fn add_node(&self, ctx: &Ctx, node: NodeRecord) -> Outcome {
        check_record(&node)?;
        self.write(ctx, EventBody::NodeAdded { node }).await?;
        Ok(Reply::Done)
    }

    /// Records a crypto officer's removal of a member; the leader's
    /// membership task takes it out of Raft, and its domain key task
    /// rotates the domain key. A member cannot sign its own removal, so
    /// the leader being removed hands leadership over first (as on
    /// SIGTERM) and the write goes to its successor; another node asked to
    /// remove the leader sends the caller there (`unavailable`: the SDK
    /// retries at the leader with the same request id).
    pub(super) async fn remove_node(&self, ctx: &Ctx, node: NodeId) -> Outcome {
        let leader = self.raft.metrics().borrow().current_leader;
        if leader == Some(node) && !self.remembered(ctx.request_id) {
            if node != self.node {
                return Err(ClientError::unavailable(format!(
                    "{node} leads and is to be removed: it hands leadership over first, so ask it"
                )));
            }
            self.move_leadership(None).await?;
        }
        self.write(ctx, EventBody::NodeRemoved { node }).await?;
        Ok(Reply::Done)
    }

    /// Each member as this node, the leader, sees it
    /// ([`Operation::MemberStatus`](hsm_proto::client::Operation)).
    pub(super) fn member_status(&self) -> Outcome {
        let metrics = self.raft.metrics();
        let m = metrics.borrow().clone();
        if m.current_leader != Some(self.node) {
            return Err(ClientError::unavailable(match m.current_leader {
                Some(l) => format!("{} does not lead, {l} does: ask it", self.node),
                None => format!("{} does not lead, and knows no leader", self.node),
            }));
        }
        let last = m.last_log_index.unwrap_or(0);
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        let matched: std::collections::BTreeMap<NodeId, Option<u64>> = m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
            .unwrap_or_default();
        let spoken = *hsm_state::protocol::SPOKEN.end();
        let (zones, raft_protocol) = self.state(|s| {
            let zones: std::collections::BTreeMap<NodeId, String> =
                s.nodes().map(|n| (n.id, n.zone.clone())).collect();
            (zones, s.protocol())
        });
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let me = *id == self.node;
                let matched_index = if me {
                    Some(last)
                } else {
                    matched.get(id).copied().flatten()
                };
                MemberState {
                    id: *id,
                    address: node.addr.clone(),
                    zone: zones.get(id).cloned().unwrap_or_default(),
                    voter: voters.contains(id),
                    matched_index,
                    lag: matched_index.map(|i| last.saturating_sub(i)),
                    raft_protocol: if me {
                        Some(spoken)
                    } else {
                        self.network.peer_protocol(*id)
                    },
                }
            })
            .collect();
        Ok(Reply::Members(MembersReport {
            leader: self.node,
            term: m.current_term,
            last_log_index: last,
            raft_protocol,
            leader_speaks: spoken,
            last_backup_ms: self.newest_backup(),
            members,
        }))
    }

    /// Moves leadership to `to`, or to any voter with every entry, without
    /// stopping this node ([`crate::handoff`]; it must lead). Writes wait
    /// meanwhile and none fails.
    pub(super) async fn transfer_leadership(&self, to: Option<NodeId>) -> Outcome {
        let (leader, voters) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
            (m.current_leader, voters)
        };
        if leader != Some(self.node) {
            return Err(ClientError::unavailable(match leader {
                Some(l) => format!("{} does not lead, {l} does", self.node),
                None => format!("{} does not lead, and knows no leader", self.node),
            }));
        }
        match to {
            Some(to) if to == self.node => return Ok(Reply::LeadershipMoved { leader: to }),
            Some(to) if !voters.contains(&to) || self.state(|s| s.node(to).is_none()) => {
                return Err(ClientError::invalid(format!(
                    "{to} is not a voting member: only a voter can lead"
                )))
            }
            _ => {}
        }
        let leader = self.move_leadership(to).await?;
        Ok(Reply::LeadershipMoved { leader })
    }

    /// [`crate::handoff::hand_off`] from this node, one at a time; the new
    /// leader.
    async fn move_leadership(&self, to: Option<NodeId>) -> Result<NodeId, ClientError> {
        let Ok(_one) = self.transfer.try_lock() else {
            return Err(ClientError::new(
                ErrorKind::Conflict,
                "leadership is being moved already",
            ));
        };
        let parts = handoff::Parts {
            me: self.node,
            raft: &self.raft,
            proposer: &self.proposer,
            reads: &self.reads,
            network: &self.network,
            sm: &self.sm,
        };
        match handoff::hand_off(&parts, to, MOVE_WITHIN).await {
            HandOff::Done { to } => {
                tracing::info!(%to, "moved leadership on a crypto officer's request");
                Ok(to)
            }
            HandOff::NotLeading => Err(ClientError::unavailable(format!(
                "{} no longer leads",
                self.node
            ))),
            HandOff::Alone => Err(ClientError::invalid(
                "no other voter could lead: the cluster has one voter",
            )),
            HandOff::Failed(why) => Err(ClientError::unavailable(format!(
                "leadership did not move: {why}"
            ))),
        }
    }

    /// A crypto officer's rotation of the domain key: a new generation,
    /// sealed to each member of this replica's state (the state machine
    /// refuses it if the members changed meanwhile).
    pub(super) async fn rotate_domain_key(&self, ctx: &Ctx) -> Outcome {
        if self.remembered(ctx.request_id) {
            // A retry after a lost answer: the first outcome, whatever the
            // state is now (the fingerprint leaves out the generation and
            // the key).
            self.write(
                ctx,
                EventBody::DomainKeyRotated {
                    generation: 0,
                    check: [0; 32],
                    sealed: std::collections::BTreeMap::new(),
                },
            )
            .await?;
            let generation = self.state(|s| s.cluster().map_or(0, |c| c.domain.current));
            return Ok(Reply::DomainKeyRotated { generation });
        }
        let body = self
            .state(crate::rotation::new_generation)
            .map_err(|e| ClientError::new(hsm_proto::client::ErrorKind::Conflict, e))?;
        let EventBody::DomainKeyRotated { generation, .. } = &body else {
            return Err(ClientError::internal("a rotation that is no rotation"));
        };
        let generation = *generation;
        let (_, replayed) = self
            .write_applied(
                ctx.request_id,
                Actor::User(ctx.caller.username.clone()),
                Some(&ctx.session),
                body,
                ctx.deadline,
            )
            .await?;
        if replayed {
            // Another copy of this request (a client's retry) rotated after
            // this one looked for its id: the generation computed here was
            // never made. Answer as the branch above does.
            let generation = self.state(|s| s.cluster().map_or(0, |c| c.domain.current));
            return Ok(Reply::DomainKeyRotated { generation });
        }
        Ok(Reply::DomainKeyRotated { generation })
    }
}

/// A new member's record must be usable: an id Raft accepts, a zone label
/// as a node's configuration allows, and a `host:port` address.
fn check_record(node: &NodeRecord) -> Result<(), ClientError> {
    if node.id.0 == 0 || node.id.0 > i64::MAX as u64 {
        return Err(ClientError::invalid("node id must be 1 to 2^63-1"));
    }
    let zone_ok = !node.zone.is_empty()
        && node.zone.len() <= 64
        && node
            .zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !zone_ok {
        return Err(ClientError::invalid(
            "zone must be 1 to 64 ASCII letters, digits, '-', '_' or '.'",
        ));
    }
    let address_ok = node.address.len() <= 255
        && node.address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
    if !address_ok {
        return Err(ClientError::invalid(format!(
            "address {:?} is not host:port",
            node.address
        )));
    }
    Ok(())
}
