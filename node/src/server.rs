//! The accept loop of a node's QUIC endpoint.

use std::sync::Arc;
use std::time::Duration;

use hsm_proto::client::{ClientError, Request, Response};
use hsm_proto::codec;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::proposer::Proposer;
use crate::raft::{
    serve_raft_stream, DomainSource, LeaderContact, LeaderReads, Raft, SnapshotInbox,
};
use crate::service::Service;
use crate::transport::{
    negotiated_alpn, peer_identity, peer_is_cluster_member, read_frame, write_frame, PeerIdentity,
    ALPN_CLIENT,
};

/// QUIC application close code: the peer is not a cluster member.
pub const CLOSE_NOT_MEMBER: u32 = 1;

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
}

/// Accepts connections on `endpoint` until it is closed, one task per
/// connection and per stream. Cluster members (Raft ALPN with a
/// CA-verified certificate) get their Raft RPCs served; clients (client
/// ALPN) get the client protocol; any other connection is closed with
/// [`CLOSE_NOT_MEMBER`] before a byte of it is read.
pub fn spawn_accept_loop(endpoint: quinn::Endpoint, handlers: Handlers) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let handlers = handlers.clone();
            tokio::spawn(async move {
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
                    serve_member(conn, peer, handlers).await;
                } else if negotiated_alpn(&conn).as_deref() == Some(ALPN_CLIENT) {
                    match handlers.service.clone() {
                        Some(service) => {
                            serve_client(conn, service, handlers.max_client_frame).await
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

async fn serve_member(conn: quinn::Connection, peer: PeerIdentity, handlers: Handlers) {
    while let Ok((send, recv)) = conn.accept_bi().await {
        let handlers = handlers.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_raft_stream(&handlers, peer, send, recv).await {
                tracing::debug!(error = %e, "raft stream failed");
            }
        });
    }
}

async fn serve_client(conn: quinn::Connection, service: Arc<Service>, max_frame: usize) {
    // Streams per connection are bounded by the endpoint's transport
    // configuration (`limits.max_in_flight_per_connection`).
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let service = service.clone();
        tokio::spawn(async move {
            let read =
                tokio::time::timeout(CLIENT_READ_TIMEOUT, read_frame(&mut recv, max_frame)).await;
            let response = match read {
                Err(_) => refused(&service, "the request was not sent in time".into()),
                Ok(Err(e)) => refused(&service, format!("malformed request frame: {e}")),
                Ok(Ok(bytes)) => {
                    // The frame may hold a password, a token or plaintext.
                    let bytes = Zeroizing::new(bytes);
                    match codec::decode::<Request>("request", &bytes) {
                        Err(e) => refused(&service, e.to_string()),
                        Ok(request) => service.handle(request).await,
                    }
                }
            };
            let bytes = match codec::encode("response", &response) {
                Ok(b) => Zeroizing::new(b),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot encode a response");
                    let fallback = Response {
                        applied_index: response.applied_index,
                        result: Err(ClientError::internal(
                            "the answer is too large to send; narrow the request",
                        )),
                    };
                    match codec::encode("response", &fallback) {
                        Ok(b) => Zeroizing::new(b),
                        Err(_) => return,
                    }
                }
            };
            let written =
                tokio::time::timeout(CLIENT_READ_TIMEOUT, write_frame(&mut send, &bytes)).await;
            if !matches!(written, Ok(Ok(()))) {
                tracing::debug!("client did not take its answer");
            }
        });
    }
}

fn refused(service: &Service, message: String) -> Response {
    Response {
        applied_index: service.applied_index(),
        result: Err(ClientError::invalid(message)),
    }
}
