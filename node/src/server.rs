//! The accept loop of a node's QUIC endpoint.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hsm_proto::client::{ClientError, Request, Response};
use hsm_proto::protocol::Version;
use hsm_proto::{codec, NodeId};
use hsm_state::protocol::TooOld;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::proposer::Proposer;
use crate::raft::{
    serve_raft_stream, DomainSource, LeaderContact, LeaderReads, Raft, SnapshotInbox,
};
use crate::service::Service;
use crate::transport::{
    negotiated, peer_identity, peer_is_cluster_member, read_frame, write_frame, PeerIdentity,
    Speaks,
};

/// QUIC application close code: the peer is not a cluster member.
pub const CLOSE_NOT_MEMBER: u32 = 1;

/// QUIC application close code: the peer speaks no Raft protocol version
/// the cluster runs (the reason says which); it must be upgraded.
pub const CLOSE_OLD_PROTOCOL: u32 = 2;

/// Longest a client may take to send its request once it opened a stream,
/// and to take its answer.
pub const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the accept loop serves.
#[derive(Clone)]
pub struct Handlers {
    /// Raft RPCs from members.
    pub raft: Raft,
    /// Read indexes asked for by followers.
    pub reads: LeaderReads,
    /// Writes forwarded to this node as leader.
    pub proposer: Arc<Proposer>,
    /// Hands the domain key to approved joining nodes; `None` refuses.
    pub domain: Option<DomainSource>,
    /// Snapshots being received, checked against their senders' seals.
    pub snapshots: SnapshotInbox,
    /// Updated whenever a leader's append-entries or snapshot is accepted.
    pub contact: LeaderContact,
    /// Client requests; `None` refuses client connections.
    pub service: Option<Arc<Service>>,
    /// Largest client request accepted, in bytes.
    pub max_client_frame: usize,
    /// Largest Raft message accepted from a member, in bytes
    /// (`raft.max_frame_bytes`).
    pub max_raft_frame: usize,
    /// How many connections the endpoint holds at once.
    pub connections: ConnectionLimits,
    /// Notified when a node that is no member to this one sends it Raft
    /// messages (`crate::roster`).
    pub strangers: Arc<tokio::sync::Notify>,
}

/// How many connections a node holds at once, handshakes included: in
/// all, and from one source (an IPv4 address, or an IPv6 /64). Current
/// members' addresses are not counted: strangers who fill the limits
/// must not keep the members from reconnecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// In all.
    pub total: u32,
    /// From one IP address.
    pub per_address: u32,
}

/// Counts the connections held, in all and per source address. A slot is
/// taken before the handshake starts and given back when the connection
/// ends ([`Slot`]'s drop).
#[derive(Debug)]
struct Admission {
    limits: ConnectionLimits,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: u32,
    by_address: HashMap<IpAddr, u32>,
}

/// One admitted connection's place in the count.
#[derive(Debug)]
struct Slot {
    admission: Arc<Admission>,
    address: IpAddr,
}

impl Admission {
    fn new(limits: ConnectionLimits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            held: Mutex::new(Held::default()),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for a connection from `address`, or `None` when the node or
    /// that address holds as many as it may.
    fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Slot> {
        let mut held = self.held();
        let from = held.by_address.get(&address).copied().unwrap_or(0);
        if held.total >= self.limits.total || from >= self.limits.per_address {
            return None;
        }
        held.total += 1;
        held.by_address.insert(address, from + 1);
        Some(Slot {
            admission: self.clone(),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.admission.held();
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.by_address.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.by_address.remove(&self.address);
            }
        }
    }
}

/// Accepts connections on `endpoint` until it is closed, one task per
/// connection and per stream. Cluster members (Raft ALPN with a
/// CA-verified certificate) get their Raft RPCs served; clients (client
/// ALPN) get the client protocol; any other connection is closed with
/// [`CLOSE_NOT_MEMBER`] before a byte of it is read.
///
/// Before any handshake work, a new source must show it receives at its
/// address (a QUIC retry: one round trip, so a spoofed address costs the
/// node nothing and counts against no one), and then gets a connection
/// slot within [`ConnectionLimits`], refused otherwise: one address cannot
/// take the room other clients and the members need.
pub fn spawn_accept_loop(endpoint: quinn::Endpoint, handlers: Handlers) -> JoinHandle<()> {
    let admission = Admission::new(handlers.connections);
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            if !incoming.remote_address_validated() {
                if let Err(e) = incoming.retry() {
                    e.into_incoming().ignore();
                }
                continue;
            }
            let address = incoming.remote_address().ip();
            let slot = if is_member_address(&handlers, address) {
                None
            } else {
                let Some(slot) = admission.admit(source_of(address)) else {
                    tracing::debug!(peer = %address, "refused a connection: too many held");
                    incoming.refuse();
                    continue;
                };
                Some(slot)
            };
            let handlers = handlers.clone();
            tokio::spawn(async move {
                // Held until the connection is served to its end.
                let _slot = slot;
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "handshake failed");
                        return;
                    }
                };
                if peer_is_cluster_member(&conn) {
                    let Some(peer) = peer_identity(&conn) else {
                        tracing::warn!(peer = %conn.remote_address(), "refused a certificate that names no node");
                        conn.close(CLOSE_NOT_MEMBER.into(), b"certificate names no node");
                        return;
                    };
                    // Another key for a member's id (another cluster on the
                    // same CA, an old host): closed before a byte is read.
                    let impostor = handlers.domain.as_ref().is_some_and(|d| {
                        d.sm.read(|a| {
                            hsm_state::authz::peer_standing(&a.state, peer.node, &peer.key_pin)
                                == hsm_state::authz::PeerStanding::WrongKey
                        })
                    });
                    if impostor {
                        tracing::warn!(peer = %conn.remote_address(), node = %peer.node, "refused a certificate whose key is not the one the member record pins");
                        conn.close(CLOSE_NOT_MEMBER.into(), b"not the member's key");
                        return;
                    }
                    let Some(Speaks::Raft(version)) = negotiated(&conn) else {
                        conn.close(CLOSE_NOT_MEMBER.into(), b"no Raft protocol agreed on");
                        return;
                    };
                    serve_member(conn, peer, version, handlers).await;
                } else if let Some(Speaks::Client(version)) = negotiated(&conn) {
                    match handlers.service.clone() {
                        Some(service) => {
                            serve_client(conn, service, handlers.max_client_frame, version).await
                        }
                        None => conn.close(CLOSE_NOT_MEMBER.into(), b"clients are not served"),
                    }
                } else {
                    tracing::warn!(peer = %conn.remote_address(), "refused a connection that is not from a cluster member");
                    conn.close(CLOSE_NOT_MEMBER.into(), b"not a cluster member");
                }
            });
        }
    })
}

/// The unit one share of connections is counted by: an IPv4 address, or
/// an IPv6 /64 (one host usually holds a whole /64).
fn source_of(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(Ipv6Addr::from(segments))
        }
        v4 => v4,
    }
}

/// Whether `address` is a current member's (the IP its record names).
fn is_member_address(handlers: &Handlers, address: IpAddr) -> bool {
    let address = address.to_canonical();
    handlers.domain.as_ref().is_some_and(|d| {
        d.sm.read(|a| {
            a.state.nodes().any(|n| {
                n.address
                    .parse::<SocketAddr>()
                    .is_ok_and(|m| m.ip().to_canonical() == address)
            })
        })
    })
}

/// Whether a member connection that agreed on Raft protocol `version` may
/// be served: not below the version the cluster runs
/// ([`hsm_state::protocol::TooOld`]). A node without a replica yet
/// (joining) serves any.
///
/// # Errors
/// Why not.
pub fn speaks_cluster_protocol(handlers: &Handlers, version: Version) -> Result<(), TooOld> {
    match handlers
        .domain
        .as_ref()
        .map(|d| d.sm.read(|a| a.state.protocol()))
    {
        Some(cluster) => TooOld::check(version, cluster),
        None => Ok(()),
    }
}

/// Closes `conn`, a member's that is too old for the cluster, saying why
/// to both ends.
pub fn refuse_too_old(conn: &quinn::Connection, peer: NodeId, why: &TooOld) {
    tracing::warn!(peer = %peer, addr = %conn.remote_address(), why = %why.here(), "refused a member that does not speak the cluster's Raft protocol");
    conn.close(CLOSE_OLD_PROTOCOL.into(), why.there().as_bytes());
}

async fn serve_member(
    conn: quinn::Connection,
    peer: PeerIdentity,
    version: Version,
    handlers: Handlers,
) {
    // Checked before anything is read, and again for every message: the
    // cluster's version may be raised while the connection lasts.
    if let Err(why) = speaks_cluster_protocol(&handlers, version) {
        refuse_too_old(&conn, peer.node, &why);
        return;
    }
    while let Ok((send, recv)) = conn.accept_bi().await {
        if let Err(why) = speaks_cluster_protocol(&handlers, version) {
            refuse_too_old(&conn, peer.node, &why);
            break;
        }
        let handlers = handlers.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_raft_stream(&handlers, peer, version, send, recv).await {
                tracing::debug!(error = %e, "raft stream failed");
            }
        });
    }
    log_protocol_refusal(&conn, peer.node);
}

/// Logs, as an error, a connection `node` closed because this node's
/// build is too old for the cluster ([`CLOSE_OLD_PROTOCOL`]): the one
/// place an operator who started an old build on a member's host sees
/// why it cannot take part.
pub fn log_protocol_refusal(conn: &quinn::Connection, node: NodeId) {
    if let Some(quinn::ConnectionError::ApplicationClosed(close)) = conn.close_reason() {
        if close.error_code == quinn::VarInt::from_u32(CLOSE_OLD_PROTOCOL) {
            let why = String::from_utf8_lossy(&close.reason);
            tracing::error!(peer = %node, %why, "a member refused this node: its build is too old for the cluster");
        }
    }
}

async fn serve_client(
    conn: quinn::Connection,
    service: Arc<Service>,
    max_frame: usize,
    version: Version,
) {
    let source = source_of(conn.remote_address().ip());
    // Streams per connection are bounded by the endpoint's transport
    // configuration (`limits.max_in_flight_per_connection`).
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let service = service.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let read =
                tokio::time::timeout(CLIENT_READ_TIMEOUT, read_frame(&mut recv, max_frame)).await;
            // What the metrics call the request: its operation, or what was
            // wrong with the frame (fixed names: nothing the client sent
            // becomes a label).
            let (op, response) = match read {
                Err(_) => (
                    "unsent",
                    refused(&service, "the request was not sent in time".into()),
                ),
                Ok(Err(e)) => (
                    "malformed",
                    refused(&service, format!("malformed request frame: {e}")),
                ),
                Ok(Ok(bytes)) => {
                    // The frame may hold a password, a token or plaintext.
                    let bytes = Zeroizing::new(bytes);
                    match codec::decode::<Request>("request", &bytes) {
                        Err(e) => ("malformed", refused(&service, e.to_string())),
                        // An operation newer than the version this
                        // connection agreed on is not part of what the
                        // client said it speaks.
                        Ok(request) if request.op.since() > version => (
                            request.op.name(),
                            refused(
                                &service,
                                format!(
                                    "{} needs client protocol {}; this connection agreed on {version}",
                                    request.op.name(),
                                    request.op.since()
                                ),
                            ),
                        ),
                        Ok(request) => (request.op.name(), service.handle(request, source).await),
                    }
                }
            };
            let (bytes, outcome) = match codec::encode("response", &response) {
                Ok(b) => (Zeroizing::new(b), outcome_of(&response)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot encode a response");
                    let fallback = Response {
                        applied_index: response.applied_index,
                        result: Err(ClientError::internal(
                            "the answer is too large to send; narrow the request",
                        )),
                    };
                    let outcome = outcome_of(&fallback);
                    match codec::encode("response", &fallback) {
                        Ok(b) => (Zeroizing::new(b), outcome),
                        Err(_) => return,
                    }
                }
            };
            service
                .request_metrics()
                .observe(op, outcome, started.elapsed());
            let written =
                tokio::time::timeout(CLIENT_READ_TIMEOUT, write_frame(&mut send, &bytes)).await;
            if !matches!(written, Ok(Ok(()))) {
                tracing::debug!("client did not take its answer");
            }
        });
    }
}

/// `ok`, or the kind of error the response carries.
fn outcome_of(response: &Response) -> &'static str {
    match &response.result {
        Ok(_) => "ok",
        Err(e) => e.kind.as_str(),
    }
}

fn refused(service: &Service, message: String) -> Response {
    Response {
        applied_index: service.applied_index(),
        result: Err(ClientError::invalid(message)),
    }
}

#[cfg(test)]
mod tests {
    use super::{source_of, Admission, ConnectionLimits};
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn an_ipv6_host_is_counted_by_its_64() {
        let at = |s: &str| source_of(s.parse().expect("ip"));
        assert_eq!(at("2001:db8:1:2:aaaa::1"), at("2001:db8:1:2:bbbb::2"));
        assert_ne!(at("2001:db8:1:2::1"), at("2001:db8:1:3::1"));
        assert_eq!(at("::ffff:10.0.0.1"), at("10.0.0.1"));
        assert_ne!(at("10.0.0.1"), at("10.0.0.2"));
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn an_address_gets_its_share_and_the_node_its_total() {
        let a = Admission::new(ConnectionLimits {
            total: 5,
            per_address: 2,
        });
        let first: Vec<_> = (0..2).map(|_| a.admit(ip(1)).expect("within")).collect();
        assert!(a.admit(ip(1)).is_none(), "a third from one address");
        let second: Vec<_> = (0..2).map(|_| a.admit(ip(2)).expect("within")).collect();
        let fifth = a.admit(ip(3)).expect("the fifth in all");
        assert!(a.admit(ip(4)).is_none(), "a sixth in all");
        // Slots come back when connections end.
        drop(fifth);
        let again = a.admit(ip(4)).expect("room again");
        drop(first);
        let back: Vec<_> = (0..2).map(|_| a.admit(ip(1)).expect("its share")).collect();
        assert!(a.admit(ip(5)).is_none(), "the total is reached again");
        drop((second, again));
        assert_eq!(a.held().total, 2);
        assert_eq!(a.held().by_address.len(), 1);
        drop(back);
        assert_eq!(a.held().total, 0);
        assert!(a.held().by_address.is_empty());
    }
}
