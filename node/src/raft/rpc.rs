//! Raft RPC messages and the server side of one RPC stream.

use hsm_proto::client::Secret;
use hsm_proto::protocol::Version;
use hsm_proto::{codec, Actor, ClusterId, EventBody, NodeId, RequestId, SealedDomainKey};
use hsm_raft_store::{ApplyResponse, StateMachineStore, TypeConfig};
use hsm_state::authz::{self, PeerStanding};
use hsm_state::snapshot::SnapshotSeal;
use hsm_state::Entity;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::snapshot::InboxError;
use crate::cluster_time::ClusterTime;
use crate::proposer::ProposeError;
use crate::secrets::{session, Keyring};
use crate::server::Handlers;
use crate::transport::{read_frame, write_frame, FrameError, PeerIdentity};

/// A write a follower received and hands to the leader, which builds,
/// stamps and signs the event. The leader believes no member about a
/// user: a write in a user's name carries that user's session token, which
/// the leader checks again (`forward_is_proven`); a member acts as a node
/// only as itself.
#[derive(Debug, Serialize, Deserialize)]
pub struct ForwardedWrite {
    /// Idempotency id, kept across forwarding and retries.
    pub request_id: RequestId,
    /// The user (or node) the follower authenticated.
    pub actor: Actor,
    /// The user's session token, for a user actor.
    pub session: Option<Secret>,
    /// What changes.
    pub body: EventBody,
}

/// Why a forwarded write was not applied.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardRefused {
    /// The receiver is not (or no longer) the leader.
    #[error("not the leader (leader is {0:?})")]
    NotLeader(Option<NodeId>),
    /// The leader refused to propose it (see `Proposer::propose`).
    #[error("refused: {0}")]
    Refused(hsm_proto::Rejection),
    /// Raft failed on the leader.
    #[error("leader failed: {0}")]
    Failed(String),
}

/// Longest a leader works on a forwarded write before answering that it
/// could not commit it (the follower's caller may retry with the same id).
pub const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Largest Raft frame accepted from a member: a batch of entries or a
/// snapshot chunk.
pub const MAX_RAFT_FRAME_BYTES: usize = 32 * 1024 * 1024;

/// Largest frame accepted from a node that is no member (yet): all it may
/// send is a request for its domain key.
pub const MAX_STRANGER_FRAME_BYTES: usize = 4096;

/// Longest a member may take to send one frame.
pub const MEMBER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Longest a node that is no member may take to send its frame.
pub const STRANGER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A Raft RPC, one per QUIC stream.
///
/// Variants are numbered on the wire by their position: new ones go at
/// the end, so members of earlier builds still understand the others (and
/// answer a new one with a decode error, [`RaftReply::BadRequest`]).
#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum RaftRpc {
    /// Replicate entries / heartbeat.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Request a vote.
    Vote(VoteRequest<NodeId>),
    /// One chunk of a snapshot, with the sending leader's seal over the
    /// whole snapshot (`hsm_state::snapshot`).
    InstallSnapshot {
        /// The chunk, as openraft cut it.
        chunk: InstallSnapshotRequest<TypeConfig>,
        /// The sender's signature over the snapshot's position and digest.
        seal: SnapshotSeal,
    },
    /// A write for the leader to propose.
    Forward(ForwardedWrite),
    /// The leader's read index without its time: what members of earlier
    /// builds ask (they judge sessions on their own clocks). Still
    /// answered, so they keep serving while a cluster is upgraded.
    ReadIndex,
    /// A node a crypto officer approved asks for the domain key, sealed to
    /// the agreement key its approval recorded.
    FetchDomainKey {
        /// The asking node.
        node: NodeId,
    },
    /// The leader's read index and its clock, for a linearizable read on
    /// a follower judged on the cluster's time ([`ReadIndexAnswer`]).
    ReadIndexWithTime,
    /// The leader, about to stop, asks this member
    /// to stand for election at once rather than after the leader's lease
    /// and an election timeout (`crate::handoff`). Only the leader this
    /// member follows, in the term it follows it in, may ask.
    TakeLeadership {
        /// The term the asking leader leads.
        term: u64,
    },
}

/// The leader's answer to [`RaftRpc::ReadIndexWithTime`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexAnswer {
    /// The log index a read that arrived before the question must have
    /// applied.
    pub index: u64,
    /// The leader's wall clock when it answered, ms since the Unix epoch:
    /// the cluster's time (`crate::cluster_time`).
    pub leader_time_ms: u64,
}

/// What an approved node is handed when it joins: the current domain key
/// generation sealed to its agreement key, and the roster (the cluster
/// record and member records, `State::roster`) it checks peers and
/// snapshots against until its replica records the cluster.
#[derive(Debug, Serialize, Deserialize)]
pub struct DomainHandOff {
    /// The cluster.
    pub cluster: ClusterId,
    /// The generation of the sealed key.
    pub generation: u32,
    /// The key, sealed to the joining node.
    pub sealed: SealedDomainKey,
    /// The cluster record and member records, as entities.
    pub roster: Vec<Entity>,
}

/// The answer to a [`RaftRpc`], as openraft returned it on the receiving
/// node. New variants go at the end (see [`RaftRpc`]).
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    /// Answer to [`RaftRpc::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`RaftRpc::Vote`].
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`RaftRpc::InstallSnapshot`].
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// Answer to [`RaftRpc::Forward`].
    Forward(Result<ApplyResponse, ForwardRefused>),
    /// Answer to [`RaftRpc::ReadIndex`].
    ReadIndex(Result<u64, ForwardRefused>),
    /// Answer to [`RaftRpc::FetchDomainKey`]: the sealed key and the
    /// roster, or why not (for example, not approved yet).
    DomainKey(Result<DomainHandOff, String>),
    /// The request frame could not be read or decoded.
    BadRequest(String),
    /// Answer to [`RaftRpc::ReadIndexWithTime`].
    ReadIndexWithTime(Result<ReadIndexAnswer, ForwardRefused>),
    /// Answer to [`RaftRpc::TakeLeadership`]: standing, or why not.
    TakeLeadership(Result<(), String>),
}

/// Serves one RPC stream from an authenticated cluster member: reads one
/// request frame, hands it to openraft, writes the reply. A malformed
/// request gets a [`RaftReply::BadRequest`]; nothing here panics.
///
/// # Errors
/// Only if the reply cannot be written (the peer went away).
pub async fn serve_raft_stream(
    handlers: &Handlers,
    identity: PeerIdentity,
    version: Version,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> Result<(), FrameError> {
    let Handlers {
        raft,
        reads,
        proposer,
        snapshots,
        contact,
        ..
    } = handlers;
    let domain = handlers.domain.as_ref();
    let peer = identity.node;
    // Who it is decides, before anything is read, how much it may send and
    // how long it may take: a node that is no member (a removed one, one of
    // another cluster on the same CA) holds no member's allowance.
    let (standing, member) = member_standing(raft, domain, identity);
    if standing == PeerStanding::NotMember {
        // Or one added while this node was away: ask the members it knows
        // (`crate::roster`).
        handlers.strangers.notify_one();
    }
    let (max, timeout) = if member {
        (handlers.max_raft_frame, MEMBER_READ_TIMEOUT)
    } else {
        (MAX_STRANGER_FRAME_BYTES, STRANGER_READ_TIMEOUT)
    };
    let frame = match tokio::time::timeout(timeout, read_frame(&mut recv, max)).await {
        Ok(read) => read,
        Err(_) => Err(FrameError::Stream(format!(
            "no whole frame within {timeout:?}"
        ))),
    };
    let reply = match frame {
        Err(e) => RaftReply::BadRequest(e.to_string()),
        Ok(bytes) => match codec::decode::<RaftRpc>("raft rpc", &bytes) {
            Err(e) => RaftReply::BadRequest(e.to_string()),
            Ok(rpc) if !peer_may_send(raft, domain, identity, &rpc) => {
                tracing::warn!(%peer, rpc = rpc_name(&rpc), "refused an rpc from a node that may not send it");
                RaftReply::BadRequest(format!(
                    "{peer} is not a member of this cluster (or not the node it speaks for)"
                ))
            }
            Ok(RaftRpc::AppendEntries(req)) => {
                let answer = raft.append_entries(req).await;
                if matches!(
                    answer,
                    Ok(AppendEntriesResponse::Success
                        | AppendEntriesResponse::PartialSuccess(_)
                        | AppendEntriesResponse::Conflict)
                ) {
                    contact.touch();
                }
                RaftReply::AppendEntries(answer)
            }
            Ok(RaftRpc::Vote(req)) => RaftReply::Vote(raft.vote(req).await),
            Ok(RaftRpc::InstallSnapshot { chunk, seal }) => {
                match snapshots.receive(raft, peer, chunk, &seal).await {
                    Ok(answer) => {
                        contact.touch();
                        RaftReply::InstallSnapshot(Ok(answer))
                    }
                    Err(InboxError::Raft(e)) => RaftReply::InstallSnapshot(Err(e)),
                    Err(InboxError::Refused(why)) => {
                        tracing::warn!(%peer, %why, "refused a snapshot (a seal that does not vouch for it, or a chunk out of place)");
                        RaftReply::BadRequest(format!("refused a snapshot: {why}"))
                    }
                }
            }
            Ok(RaftRpc::Forward(w)) => {
                RaftReply::Forward(forward(raft, proposer, domain, peer, w).await)
            }
            Ok(RaftRpc::ReadIndex) => RaftReply::ReadIndex(reads.read_index().await),
            Ok(RaftRpc::ReadIndexWithTime) => {
                RaftReply::ReadIndexWithTime(reads.read_index().await.map(|index| {
                    ReadIndexAnswer {
                        index,
                        // Read after the index: the follower counts on
                        // from here (`cluster_time::leader_time_ms`).
                        leader_time_ms: ClusterTime::Leading.now_ms(),
                    }
                }))
            }
            Ok(RaftRpc::TakeLeadership { term }) => {
                RaftReply::TakeLeadership(stand_for(raft, peer, term).await)
            }
            Ok(RaftRpc::FetchDomainKey { node }) => RaftReply::DomainKey(match domain {
                Some(d) => d.seal_for(node, &identity.key_pin),
                None => Err("this node does not hand out the domain key".into()),
            }),
        },
    };
    let bytes = codec::encode("raft reply", &reply.as_of(version))
        .map_err(|e| FrameError::Stream(format!("cannot encode reply: {e}")))?;
    write_frame(&mut send, &bytes).await
}

impl RaftReply {
    /// The reply as Raft protocol `version` words it: refusals in a
    /// peer's version, so a member of an older build decodes them (during
    /// a rolling upgrade, before the cluster's version is raised).
    #[must_use]
    pub fn as_of(self, version: Version) -> RaftReply {
        let refused = |r: ForwardRefused| match r {
            ForwardRefused::Refused(r) => ForwardRefused::Refused(r.as_of(version)),
            other => other,
        };
        match self {
            RaftReply::Forward(Ok(applied)) => RaftReply::Forward(Ok(ApplyResponse {
                result: applied.result.map_err(|r| r.as_of(version)),
                ..applied
            })),
            RaftReply::Forward(Err(r)) => RaftReply::Forward(Err(refused(r))),
            RaftReply::ReadIndex(Err(r)) => RaftReply::ReadIndex(Err(refused(r))),
            RaftReply::ReadIndexWithTime(Err(r)) => RaftReply::ReadIndexWithTime(Err(refused(r))),
            other => other,
        }
    }
}

/// Stands for election at once, as the leader `peer` asked
/// ([`RaftRpc::TakeLeadership`]): only if this node's own Raft state (not
/// its metrics, which lag) holds `peer`'s committed vote for `term`, so a
/// leader already deposed cannot start an election against its successor,
/// and only if this node is a voter. Whether it wins is the vote's
/// business: the other members grant it only with a log as long as
/// theirs, as in any election.
async fn stand_for(raft: &super::Raft, peer: NodeId, term: u64) -> Result<(), String> {
    let follows = raft
        .with_raft_state(move |st| {
            let vote = st.vote_ref();
            vote.is_committed()
                && vote.leader_id().term == term
                && vote.leader_id().voted_for() == Some(peer)
                && st.server_state != openraft::ServerState::Leader
        })
        .await
        .map_err(|e| format!("raft stopped: {e}"))?;
    if !follows {
        return Err(format!(
            "{peer} is not the leader of term {term} this node follows"
        ));
    }
    let voter = {
        let m = raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .voter_ids()
            .any(|v| v == m.id)
    };
    if !voter {
        return Err("this node is not a voter".into());
    }
    tracing::info!(leader = %peer, term, "the leader asked this node to take over; standing for election");
    raft.trigger()
        .elect()
        .await
        .map_err(|e| format!("cannot stand for election: {e}"))
}

/// Proposes a write the member `peer` forwarded, once this node leads and
/// the write's actor is proven ([`forward_is_proven`], on this node's
/// clock: the leader's is the cluster's).
async fn forward(
    raft: &super::Raft,
    proposer: &std::sync::Arc<crate::proposer::Proposer>,
    domain: Option<&DomainSource>,
    peer: NodeId,
    w: ForwardedWrite,
) -> Result<ApplyResponse, ForwardRefused> {
    // Only the leader judges a session by its own clock; any other node
    // answers, without a verdict, that it does not lead (the member
    // retries at the leader).
    let leader = {
        let m = raft.metrics();
        let m = m.borrow();
        (m.current_leader != Some(m.id)).then_some(m.current_leader)
    };
    if let Some(leader) = leader {
        return Err(ForwardRefused::NotLeader(leader));
    }
    if let Err(r) = forward_is_proven(domain, peer, &w, ClusterTime::Leading.now_ms()) {
        tracing::warn!(%peer, actor = %w.actor, "refused a forwarded write its member could not prove");
        return Err(ForwardRefused::Refused(r));
    }
    match tokio::time::timeout(
        FORWARD_TIMEOUT,
        proposer.propose_now(w.request_id, w.actor, w.body),
    )
    .await
    {
        Err(_) => Err(ForwardRefused::Failed(format!(
            "not committed within {FORWARD_TIMEOUT:?}"
        ))),
        Ok(r) => r.map_err(|e| match e {
            ProposeError::NotLeader { leader } => ForwardRefused::NotLeader(leader),
            ProposeError::Refused(r) => ForwardRefused::Refused(r),
            other => ForwardRefused::Failed(other.to_string()),
        }),
    }
}

/// Whether the member `peer` proved the actor of a write it forwards: a
/// node actor must be `peer` itself; a user actor needs that user's
/// current session token, always (so a compromised member cannot act as
/// any user it likes; not even under a request id the leader remembers,
/// which could be forgotten before the write applies). A retry whose
/// token ended meanwhile (its own password change) is refused, and the
/// user logs in again. `now_ms` is the cluster's time.
fn forward_is_proven(
    domain: Option<&DomainSource>,
    peer: NodeId,
    write: &ForwardedWrite,
    now_ms: u64,
) -> Result<(), hsm_proto::Rejection> {
    let refuse = |why: &str| {
        Err(hsm_proto::Rejection::UnknownActor(format!(
            "{} (forwarded by {peer}): {why}",
            write.actor
        )))
    };
    match &write.actor {
        Actor::Node(n) if *n == peer => Ok(()),
        Actor::Node(_) => refuse("a member acts as a node only as itself"),
        Actor::Operator(n) if *n == peer => Ok(()),
        Actor::Operator(_) => refuse("a member forwards only its own operator's writes"),
        Actor::User(name) => {
            let Some(d) = domain else {
                return refuse("this node cannot check sessions");
            };
            let Some(token) = &write.session else {
                return refuse("no session token came with it");
            };
            d.sm.read(|a| {
                match session::authenticate(&d.keyring, &a.state, token.expose(), now_ms) {
                    Ok((user, _)) if user.username == *name => Ok(()),
                    Ok(_) => refuse("the session token is another user's"),
                    Err(e) => refuse(&e.to_string()),
                }
            })
        }
    }
}

fn rpc_name(rpc: &RaftRpc) -> &'static str {
    match rpc {
        RaftRpc::AppendEntries(_) => "append-entries",
        RaftRpc::Vote(_) => "vote",
        RaftRpc::InstallSnapshot { .. } => "install-snapshot",
        RaftRpc::Forward(_) => "forward",
        RaftRpc::ReadIndex => "read-index",
        RaftRpc::FetchDomainKey { .. } => "fetch-domain-key",
        RaftRpc::ReadIndexWithTime => "read-index-with-time",
        RaftRpc::TakeLeadership { .. } => "take-leadership",
    }
}

/// `peer`'s standing in the replica, and whether it counts as a member for
/// what it may send: a member of the replica's records with the key they
/// pin, or, before this replica records a cluster, a node of Raft's
/// membership (or anyone, while that is empty).
fn member_standing(
    raft: &super::Raft,
    domain: Option<&DomainSource>,
    peer: PeerIdentity,
) -> (PeerStanding, bool) {
    let (in_raft, raft_empty) = {
        let m = raft.metrics();
        let m = m.borrow();
        let mut nodes = m.membership_config.nodes().peekable();
        let empty = nodes.peek().is_none();
        let found = m.membership_config.nodes().any(|(id, _)| *id == peer.node);
        (found, empty)
    };
    let standing = domain.map_or(PeerStanding::NoClusterYet, |d| {
        d.sm.read(|a| authz::peer_standing(a.trusted(), peer.node, &peer.key_pin))
    });
    let member = match standing {
        PeerStanding::Member => true,
        PeerStanding::WrongKey | PeerStanding::NotMember | PeerStanding::Retired => false,
        PeerStanding::NoClusterYet => in_raft || raft_empty,
    };
    (standing, member)
}

/// Whether `peer` (the node id its CA-issued certificate names, and its
/// key's pin) may send `rpc`. First, who it is: a member only if this
/// replica's member record of that id pins the key it presented
/// ([`hsm_state::authz::peer_standing`]); a certificate the same CA issued
/// to anyone else for that id is refused. Then what it may send: Raft
/// messages only from a member speaking for itself, forwarded writes and
/// read-index requests only from members, a domain key request only for
/// the peer's own id. A founding or joining member whose replica records
/// no cluster yet checks pins against the roster it was handed with the
/// domain key (`Applied::trusted`). Only a replica with neither (the first
/// member before its first event) cannot check pins: it accepts Raft
/// messages from nodes in its Raft membership, or from any certified node
/// while it has none.
fn peer_may_send(
    raft: &super::Raft,
    domain: Option<&DomainSource>,
    peer: PeerIdentity,
    rpc: &RaftRpc,
) -> bool {
    let (standing, member) = member_standing(raft, domain, peer);
    let speaks_for_itself =
        |vote: &openraft::Vote<NodeId>| vote.leader_id().voted_for().is_none_or(|v| v == peer.node);
    match rpc {
        RaftRpc::AppendEntries(req) => member && speaks_for_itself(&req.vote),
        RaftRpc::InstallSnapshot { chunk, .. } => member && speaks_for_itself(&chunk.vote),
        RaftRpc::Vote(req) => member && speaks_for_itself(&req.vote),
        RaftRpc::Forward(_)
        | RaftRpc::ReadIndex
        | RaftRpc::ReadIndexWithTime
        | RaftRpc::TakeLeadership { .. } => standing == PeerStanding::Member,
        RaftRpc::FetchDomainKey { node } => *node == peer.node,
    }
}

/// When this node last heard from a leader that it accepted (an
/// append-entries or snapshot it processed), so it can tell whether its
/// replica may be out of date. Cheap to clone; clones share the clock.
#[derive(Clone, Debug)]
pub struct LeaderContact {
    start: std::time::Instant,
    last_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Default for LeaderContact {
    fn default() -> Self {
        LeaderContact {
            start: std::time::Instant::now(),
            last_ms: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
        }
    }
}

impl LeaderContact {
    /// Records contact now.
    pub fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_ms
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// Time since the last contact; `None` if there was none yet.
    pub fn since(&self) -> Option<std::time::Duration> {
        let last = self.last_ms.load(std::sync::atomic::Ordering::Relaxed);
        (last != u64::MAX).then(|| {
            let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
            std::time::Duration::from_millis(now.saturating_sub(last))
        })
    }
}

/// What a member needs to hand the domain key to an approved node.
#[derive(Clone)]
pub struct DomainSource {
    /// The domain key generations this node holds.
    pub keyring: std::sync::Arc<Keyring>,
    /// The replica whose member records say who is approved.
    pub sm: StateMachineStore,
}

impl DomainSource {
    /// The current domain key generation sealed to `node`'s recorded
    /// agreement key, if a crypto officer approved `node` (its record is
    /// in the state) and the asker presented the TLS key the record pins
    /// (`key_pin`). Only the holder of the agreement key's private half can
    /// open it. While a rotation re-wraps material (two generations in
    /// use), the node is asked to come back: it would need both.
    ///
    /// # Errors
    /// A message saying why not: not approved (yet), another key, a
    /// rotation in progress, or sealing failed.
    pub fn seal_for(&self, node: NodeId, key_pin: &[u8; 32]) -> Result<DomainHandOff, String> {
        let found = self.sm.read(|a| {
            let cluster = a.state.cluster()?;
            let record = a.state.node(node).filter(|r| r.transport_key == *key_pin)?;
            if !cluster.domain.settled() {
                return Some(Err(
                    "a domain key rotation is in progress; asking again shortly".to_string(),
                ));
            }
            Some(
                self.keyring
                    .current(&a.state)
                    .map(|key| {
                        let roster: Vec<Entity> = a.state.roster().entities().collect();
                        (cluster.cluster_id, record.agreement_key, key, roster)
                    })
                    .map_err(|e| e.to_string()),
            )
        });
        let Some(found) = found else {
            return Err(format!(
                "node {node} is not an approved member (yet) with this TLS key: a crypto officer \
                 must add it first, from the join request its `prepare` wrote"
            ));
        };
        let (cluster, agreement, key, roster) = found?;
        let sealed = key
            .seal_for_node(&x25519_dalek::PublicKey::from(agreement), cluster, node)
            .map_err(|e| e.to_string())?;
        tracing::info!(%node, generation = key.generation(), "handed the domain key to an approved member");
        Ok(DomainHandOff {
            cluster,
            generation: key.generation(),
            sealed,
            roster,
        })
    }
}

/// This node's read index as leader: the index a linearizable read waits
/// for, after a quorum confirmed the leadership.
///
/// # Errors
/// [`ForwardRefused::NotLeader`] when this node does not lead,
/// [`ForwardRefused::Failed`] when the quorum could not be reached in time.
pub async fn read_index(raft: &super::Raft) -> Result<u64, ForwardRefused> {
    use openraft::error::{CheckIsLeaderError, RaftError as RE};
    match tokio::time::timeout(FORWARD_TIMEOUT, raft.ensure_linearizable()).await {
        Err(_) => Err(ForwardRefused::Failed(format!(
            "leadership not confirmed within {FORWARD_TIMEOUT:?}"
        ))),
        Ok(Ok(log_id)) => Ok(log_id.map_or(0, |l| l.index)),
        Ok(Err(RE::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
            Err(ForwardRefused::NotLeader(f.leader_id))
        }
        Ok(Err(e)) => Err(ForwardRefused::Failed(e.to_string())),
    }
}
