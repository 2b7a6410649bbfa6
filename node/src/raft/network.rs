//! openraft's network over QUIC with mutual TLS: one cached connection per
//! peer, one bidirectional stream per RPC.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use hsm_proto::protocol::Version;
use hsm_proto::{codec, NodeId};
use hsm_raft_store::TypeConfig;
use hsm_state::authz::{self, PeerStanding};
use hsm_state::protocol::TooOld;
use hsm_state::snapshot::SnapshotSeal;
use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::snapshot_transport::{Chunked, SnapshotTransport};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Snapshot, Vote};

use super::rpc::{RaftReply, RaftRpc, MAX_RAFT_FRAME_BYTES};
use super::snapshot::SnapshotSigner;
use crate::server::CLOSE_OLD_PROTOCOL;
use crate::transport::{negotiated, peer_identity, read_frame, write_frame, Speaks, SERVER_NAME};

/// Largest append-entries message sent with more than one entry: what
/// every member accepts, less room for the rest of the frame.
const APPEND_FRAME_BYTES: usize = crate::config::MIN_RAFT_FRAME_BYTES - 64 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NetError(String);

type Conns = Arc<Mutex<HashMap<NodeId, quinn::Connection>>>;

/// This node as a member, once its replica is open: the member records say
/// which key each member's certificate must carry, and the signer seals the
/// snapshots it sends.
type Members = Arc<OnceLock<SnapshotSigner>>;

/// Creates a [`QuicPeer`] per target; all share one client endpoint (with
/// this node's certificate) and a connection cache.
#[derive(Clone)]
pub struct QuicNetwork {
    endpoint: quinn::Endpoint,
    conns: Conns,
    members: Members,
}

impl QuicNetwork {
    /// A network over `endpoint`, which must carry the node's client TLS
    /// configuration (`transport::node_client_tls`).
    pub fn new(endpoint: quinn::Endpoint) -> QuicNetwork {
        QuicNetwork {
            endpoint,
            conns: Arc::new(Mutex::new(HashMap::new())),
            members: Arc::new(OnceLock::new()),
        }
    }

    /// From now on, every connection this network makes checks the
    /// server's certificate against the member record in `me.sm`, and
    /// every snapshot it sends carries `me`'s seal.
    pub fn act_as(&self, me: SnapshotSigner) {
        let _ = self.members.set(me);
    }

    /// The newest Raft protocol version this node and member `node` both
    /// speak, as their live connection agreed on; `None` without one.
    pub fn peer_protocol(&self, node: NodeId) -> Option<Version> {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        match negotiated(conns.get(&node).filter(|c| c.close_reason().is_none())?) {
            Some(Speaks::Raft(version)) => Some(version),
            _ => None,
        }
    }

    fn peer(&self, target: NodeId, addr: &str, expect: Expect, conns: Conns) -> QuicPeer {
        QuicPeer {
            target,
            addr: addr.to_string(),
            endpoint: self.endpoint.clone(),
            conns,
            members: self.members.clone(),
            expect,
            seal: None,
            late: AtomicU32::new(0),
        }
    }
}

/// Whom a connection must reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The member with this id, holding the key its record pins.
    Member(NodeId),
    /// The node holding the TLS key with this pin (a joining node, which
    /// has no member records yet, asking for the domain key; the operator
    /// gives the member's pin).
    Pinned([u8; 32]),
}

impl QuicNetwork {
    /// Sends a write to the leader `target` at `addr` and returns its
    /// answer.
    ///
    /// # Errors
    /// A description of why the leader could not be reached or did not
    /// answer.
    pub async fn forward(
        &self,
        target: NodeId,
        addr: &str,
        write: super::ForwardedWrite,
    ) -> Result<Result<hsm_raft_store::ApplyResponse, super::ForwardRefused>, String> {
        let peer = self.peer(target, addr, Expect::Member(target), self.conns.clone());
        match peer.call(&RaftRpc::Forward(write)).await {
            Ok(RaftReply::Forward(r)) => Ok(r),
            Ok(RaftReply::BadRequest(m)) => Err(format!("leader refused the request: {m}")),
            Ok(_) => Err("leader answered a different rpc".into()),
            Err(CallError::Unreachable(m) | CallError::Network(m)) => Err(m),
        }
    }

    /// Asks the member `target` at `addr` to stand for election at once,
    /// as the leader of `term` ([`super::rpc::RaftRpc::TakeLeadership`]).
    ///
    /// # Errors
    /// Why it could not be asked, or why it refused (a member of an
    /// earlier build does not know the question).
    pub async fn ask_to_take_leadership(
        &self,
        target: NodeId,
        addr: &str,
        term: u64,
    ) -> Result<(), String> {
        let peer = self.peer(target, addr, Expect::Member(target), self.conns.clone());
        match peer.call(&RaftRpc::TakeLeadership { term }).await {
            Ok(RaftReply::TakeLeadership(r)) => r,
            Ok(RaftReply::BadRequest(m)) => Err(format!("{target} refused the request: {m}")),
            Ok(_) => Err(format!("{target} answered a different rpc")),
            Err(CallError::Unreachable(m) | CallError::Network(m)) => Err(m),
        }
    }

    /// Asks the member at `addr`, which must hold the TLS key pinned by
    /// `pin`, for the domain key, sealed to this node's agreement key once
    /// a crypto officer approved it.
    ///
    /// # Errors
    /// A description of why the member could not be reached (or holds
    /// another key) or refused.
    pub async fn fetch_domain_key(
        &self,
        me: NodeId,
        addr: &str,
        pin: [u8; 32],
    ) -> Result<super::DomainHandOff, String> {
        // A one-off call: its connection is not cached with members'.
        let peer = self.peer(
            me,
            addr,
            Expect::Pinned(pin),
            Arc::new(Mutex::new(HashMap::new())),
        );
        match peer.call(&RaftRpc::FetchDomainKey { node: me }).await {
            Ok(RaftReply::DomainKey(r)) => r,
            Ok(RaftReply::BadRequest(m)) => Err(format!("{addr} refused the request: {m}")),
            Ok(_) => Err(format!("{addr} answered a different rpc")),
            Err(CallError::Unreachable(m) | CallError::Network(m)) => Err(m),
        }
    }

    /// Asks the leader `target` at `addr` for its read index (the log index
    /// a linearizable read must wait for, confirmed by a quorum) and its
    /// clock, the cluster's time.
    ///
    /// # Errors
    /// A description of why the leader could not be reached or did not
    /// answer; a leader of an earlier build, which does not know the
    /// question, is named as such.
    pub async fn read_index(
        &self,
        target: NodeId,
        addr: &str,
    ) -> Result<Result<super::ReadIndexAnswer, super::ForwardRefused>, String> {
        let peer = self.peer(target, addr, Expect::Member(target), self.conns.clone());
        match peer.call(&RaftRpc::ReadIndexWithTime).await {
            Ok(RaftReply::ReadIndexWithTime(r)) => Ok(r),
            Ok(RaftReply::BadRequest(m)) if m.starts_with("cannot decode raft rpc") => {
                Err(format!(
                    "the leader does not know the read index with its time (an earlier build?); \
                 this node judges sessions only on the leader's clock, so it serves again once \
                 the leader is upgraded: {m}"
                ))
            }
            Ok(RaftReply::BadRequest(m)) => Err(format!("leader refused the request: {m}")),
            Ok(_) => Err("leader answered a different rpc".into()),
            Err(CallError::Unreachable(m) | CallError::Network(m)) => Err(m),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for QuicNetwork {
    type Network = QuicPeer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> QuicPeer {
        self.peer(
            target,
            &node.addr,
            Expect::Member(target),
            self.conns.clone(),
        )
    }
}

/// The connection to one peer.
pub struct QuicPeer {
    target: NodeId,
    addr: String,
    endpoint: quinn::Endpoint,
    conns: Conns,
    members: Members,
    expect: Expect,
    /// The seal of the snapshot being sent, for each of its chunks.
    seal: Option<SnapshotSeal>,
    /// Calls in a row that the peer answered late on a live connection.
    late: AtomicU32,
}

/// Late answers in a row that are taken for slowness: one more, and a
/// peer whose QUIC stack answers but whose Raft does not is taken for gone
/// (backed off, reconnected).
const MAX_LATE_IN_A_ROW: u32 = 3;

enum CallError {
    /// Could not reach the peer at all: openraft backs off.
    Unreachable(String),
    /// Reached it, but the exchange failed.
    Network(String),
}

impl QuicPeer {
    fn cached(&self) -> Option<quinn::Connection> {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns
            .get(&self.target)
            .filter(|c| c.close_reason().is_none())
            .cloned()
    }

    async fn connection(&self) -> Result<quinn::Connection, CallError> {
        if let Some(c) = self.cached() {
            // The cluster's version may have been raised since it was made.
            match self.check_protocol(&c) {
                Ok(()) => return Ok(c),
                Err(why) => {
                    self.refuse(&c, &why);
                    return Err(CallError::Unreachable(format!("{}: {why}", self.addr)));
                }
            }
        }
        let addr: SocketAddr = tokio::net::lookup_host(&self.addr)
            .await
            .map_err(|e| CallError::Unreachable(format!("resolve {}: {e}", self.addr)))?
            .next()
            .ok_or_else(|| CallError::Unreachable(format!("no address for {}", self.addr)))?;
        let conn = self
            .endpoint
            .connect(addr, SERVER_NAME)
            .map_err(|e| CallError::Unreachable(e.to_string()))?
            .await
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        if let Err(why) = self.check_server(&conn) {
            tracing::warn!(target = %self.target, addr = %self.addr, %why, "refused to talk to a node that is not the member it should be");
            conn.close(0u32.into(), b"not the expected member");
            return Err(CallError::Unreachable(format!("{}: {why}", self.addr)));
        }
        if let Err(why) = self.check_protocol(&conn) {
            self.refuse(&conn, &why);
            return Err(CallError::Unreachable(format!("{}: {why}", self.addr)));
        }
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.insert(self.target, conn.clone());
        Ok(conn)
    }

    /// Whether the server at the other end of `conn` speaks the Raft
    /// protocol version the cluster runs (a node without a replica yet
    /// takes any).
    fn check_protocol(&self, conn: &quinn::Connection) -> Result<(), String> {
        let Some(Speaks::Raft(version)) = negotiated(conn) else {
            return Err("it agreed on no Raft protocol".into());
        };
        match self.members.get() {
            Some(me) => TooOld::check(version, me.sm.read(|a| a.state.protocol())).map_err(|why| {
                conn.close(CLOSE_OLD_PROTOCOL.into(), why.there().as_bytes());
                why.here()
            }),
            None => Ok(()),
        }
    }

    /// Drops `conn`, refused for `why`, from the cache, and logs it.
    fn refuse(&self, conn: &quinn::Connection, why: &str) {
        tracing::warn!(target = %self.target, addr = %self.addr, %why, "refused to talk to a member that does not speak the cluster's Raft protocol");
        self.evict(conn);
    }

    /// Whether the server at the other end of `conn` is the node this call
    /// must reach: its certificate (already verified against the cluster
    /// CA) names the target's id, and its key is the one the target's
    /// member record pins (or, for a member being removed, the pin it had:
    /// it stays in Raft's membership until that change commits, which may
    /// need its answers). A node whose replica records no cluster yet can
    /// only check the id.
    fn check_server(&self, conn: &quinn::Connection) -> Result<(), String> {
        let Some(peer) = peer_identity(conn) else {
            return Err("its certificate names no node".into());
        };
        let target =
            match self.expect {
                Expect::Member(target) => target,
                Expect::Pinned(pin) if peer.key_pin == pin => return Ok(()),
                Expect::Pinned(_) => return Err(
                    "its TLS key is not the one --join-pin names (another node at that address?)"
                        .into(),
                ),
            };
        if peer.node != target {
            return Err(format!(
                "its certificate is for {}, not {target}",
                peer.node
            ));
        }
        let standing = self.members.get().map_or(PeerStanding::NoClusterYet, |me| {
            me.sm
                .read(|a| authz::peer_standing(a.trusted(), target, &peer.key_pin))
        });
        match standing {
            PeerStanding::Member | PeerStanding::NoClusterYet | PeerStanding::Retired => Ok(()),
            PeerStanding::WrongKey => Err(format!(
                "its key is not the one the member record of {target} pins (another node with a certificate from the same CA?)"
            )),
            PeerStanding::NotMember => Err(format!(
                "{target} is not a member, so no key of its is known"
            )),
        }
    }

    /// [`QuicPeer::call`] bounded by the RPC's soft deadline.
    ///
    /// A peer that does not answer in time is either late or gone. Late:
    /// its QUIC stack acknowledged something on the connection the call
    /// used (or that connection was made during the call), so the peer is
    /// running and only slow (a busy machine, a large append): the call is
    /// a plain network error, after which openraft sends again at once, and
    /// the connection stays. Backing off 500 ms from a member that merely
    /// answered late stalled commits (a 621 ms key generation p99 with 28
    /// nodes on two cores). Gone: nothing came back, or it was late more
    /// than `MAX_LATE_IN_A_ROW` times in a row (its QUIC runs but its Raft does
    /// not keep up): `Unreachable`, so openraft backs off, and the
    /// connection is dropped, so the next call reconnects (a restarted
    /// peer is reached at once instead of after the dead connection's idle
    /// timeout). Either way the abandoned stream is reset, so what was left
    /// of a large request is not sent after it.
    async fn call_within(&self, rpc: &RaftRpc, option: &RPCOption) -> Result<RaftReply, CallError> {
        let bytes =
            codec::encode("raft rpc", rpc).map_err(|e| CallError::Network(e.to_string()))?;
        self.call_encoded_within(&bytes, option).await
    }

    /// [`QuicPeer::call_within`] for an rpc already encoded.
    async fn call_encoded_within(
        &self,
        bytes: &[u8],
        option: &RPCOption,
    ) -> Result<RaftReply, CallError> {
        let soft = option.soft_ttl();
        let deadline = tokio::time::Instant::now() + soft;
        let had = self.cached().map(|c| c.stable_id());
        let conn = match tokio::time::timeout_at(deadline, self.connection()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(self.gone(soft)),
        };
        let fresh = had != Some(conn.stable_id());
        let acks = conn.stats().frame_rx.acks;
        let mut streams = None;
        let exchange = tokio::time::timeout_at(deadline, async {
            let (send, recv) = streams.insert(
                conn.open_bi()
                    .await
                    .map_err(|e| CallError::Unreachable(e.to_string()))?,
            );
            write_frame(send, bytes)
                .await
                .map_err(|e| CallError::Network(e.to_string()))?;
            let reply = read_frame(recv, MAX_RAFT_FRAME_BYTES)
                .await
                .map_err(|e| CallError::Network(e.to_string()))?;
            codec::decode("raft reply", &reply).map_err(|e| CallError::Network(e.to_string()))
        })
        .await;
        match exchange {
            Ok(Ok(reply)) => {
                self.late.store(0, Ordering::Relaxed);
                Ok(reply)
            }
            Ok(Err(e)) => {
                self.evict(&conn);
                Err(e)
            }
            Err(_) => {
                if let Some((send, recv)) = streams.as_mut() {
                    let _ = send.reset(0u32.into());
                    let _ = recv.stop(0u32.into());
                }
                let heard = fresh || conn.stats().frame_rx.acks > acks;
                let alive = heard && conn.close_reason().is_none();
                if alive && self.late.fetch_add(1, Ordering::Relaxed) < MAX_LATE_IN_A_ROW {
                    return Err(CallError::Network(format!(
                        "{} did not answer within {soft:?} (its connection is alive)",
                        self.target
                    )));
                }
                self.evict(&conn);
                Err(self.gone(soft))
            }
        }
    }

    /// The peer did not answer within `soft` and is taken for gone.
    fn gone(&self, soft: std::time::Duration) -> CallError {
        self.late.store(0, Ordering::Relaxed);
        CallError::Unreachable(format!("{} did not answer within {soft:?}", self.target))
    }

    /// Closes `conn` and drops it from the cache, unless another call has
    /// replaced it there meanwhile.
    fn evict(&self, conn: &quinn::Connection) {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if conns.get(&self.target).map(quinn::Connection::stable_id) == Some(conn.stable_id()) {
            conns.remove(&self.target);
        }
        conn.close(0u32.into(), b"no answer");
    }

    async fn call(&self, rpc: &RaftRpc) -> Result<RaftReply, CallError> {
        let bytes =
            codec::encode("raft rpc", rpc).map_err(|e| CallError::Network(e.to_string()))?;
        self.call_bytes(&bytes).await
    }

    async fn call_bytes(&self, bytes: &[u8]) -> Result<RaftReply, CallError> {
        let conn = self.connection().await?;
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        write_frame(&mut send, bytes)
            .await
            .map_err(|e| CallError::Network(e.to_string()))?;
        let reply = read_frame(&mut recv, MAX_RAFT_FRAME_BYTES)
            .await
            .map_err(|e| CallError::Network(e.to_string()))?;
        codec::decode("raft reply", &reply).map_err(|e| CallError::Network(e.to_string()))
    }

    fn rpc_error<E: std::error::Error>(&self, e: CallError) -> RPCError<NodeId, BasicNode, E> {
        match e {
            CallError::Unreachable(m) => RPCError::Unreachable(Unreachable::new(&NetError(m))),
            CallError::Network(m) => RPCError::Network(NetworkError::new(&NetError(m))),
        }
    }

    fn unexpected<E: std::error::Error>(
        &self,
        reply: &RaftReply,
    ) -> RPCError<NodeId, BasicNode, E> {
        let m = match reply {
            RaftReply::BadRequest(m) => format!("peer refused the request: {m}"),
            _ => "peer answered a different rpc".to_string(),
        };
        RPCError::Network(NetworkError::new(&NetError(m)))
    }
}

type Rpc<T, E = RaftError<NodeId>> = Result<T, RPCError<NodeId, BasicNode, E>>;

impl RaftNetwork<TypeConfig> for QuicPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<NodeId>> {
        let entries = rpc.entries.len();
        let bytes = match codec::encode("raft rpc", &RaftRpc::AppendEntries(rpc)) {
            Ok(bytes) => bytes,
            // Past the codec's own limit: half as many entries.
            Err(_) if entries > 1 => {
                return Err(RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint(u64::try_from(entries / 2).unwrap_or(1)),
                ))
            }
            Err(e) => return Err(self.rpc_error(CallError::Network(e.to_string()))),
        };
        if entries > 1 && bytes.len() > APPEND_FRAME_BYTES {
            // Every member takes frames of this size (its `max_frame_bytes`
            // is at least MIN_RAFT_FRAME_BYTES): ask openraft for fewer
            // entries rather than send what a member may refuse forever.
            let fit = (entries * APPEND_FRAME_BYTES / bytes.len()).clamp(1, entries - 1);
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(u64::try_from(fit).unwrap_or(1)),
            ));
        }
        match self.call_encoded_within(&bytes, &option).await {
            Ok(RaftReply::AppendEntries(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(self.unexpected(&other)),
            Err(e) => Err(self.rpc_error(e)),
        }
    }

    /// Seals the snapshot, then sends it in chunks as openraft's default
    /// does, each chunk with the seal.
    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let seal = match self.members.get() {
            Some(me) => me.seal(&snapshot.meta, snapshot.snapshot.get_ref()),
            None => Err("this node's replica is not open yet".into()),
        }
        .map_err(|m| StreamingError::Network(NetworkError::new(&NetError(m))))?;
        self.seal = Some(seal);
        let sent = Chunked::send_snapshot(self, vote, snapshot, cancel, option).await;
        self.seal = None;
        sent
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        let Some(seal) = self.seal.clone() else {
            return Err(self.rpc_error(CallError::Network(
                "a snapshot chunk without its seal".into(),
            )));
        };
        match self
            .call_within(&RaftRpc::InstallSnapshot { chunk: rpc, seal }, &option)
            .await
        {
            Ok(RaftReply::InstallSnapshot(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(self.unexpected(&other)),
            Err(e) => Err(self.rpc_error(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Rpc<VoteResponse<NodeId>> {
        match self.call_within(&RaftRpc::Vote(rpc), &option).await {
            Ok(RaftReply::Vote(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(self.unexpected(&other)),
            Err(e) => Err(self.rpc_error(e)),
        }
    }
}

#[cfg(test)]
mod tests;
