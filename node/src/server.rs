//! The accept loop of a node's QUIC endpoint.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::proposer::Proposer;
use crate::raft::{serve_raft_stream, Raft};
use crate::transport::peer_is_cluster_member;

/// QUIC application close code: the peer is not a cluster member.
pub const CLOSE_NOT_MEMBER: u32 = 1;

/// Accepts connections on `endpoint` until it is closed. Connections from
/// cluster members (Raft ALPN with a CA-verified certificate) get their Raft
/// RPCs (and writes forwarded to this node as leader) served, one task per
/// stream; any other connection is closed with
/// [`CLOSE_NOT_MEMBER`] before a byte of it is read. (Client connections
/// are served once the client protocol lands.)
pub fn spawn_accept_loop(
    endpoint: quinn::Endpoint,
    raft: Raft,
    proposer: Arc<Proposer>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let raft = raft.clone();
            let proposer = proposer.clone();
            tokio::spawn(async move {
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "handshake failed");
                        return;
                    }
                };
                if !peer_is_cluster_member(&conn) {
                    tracing::warn!(peer = %conn.remote_address(), "refused a connection that is not from a cluster member");
                    conn.close(CLOSE_NOT_MEMBER.into(), b"not a cluster member");
                    return;
                }
                while let Ok((send, recv)) = conn.accept_bi().await {
                    let raft = raft.clone();
                    let proposer = proposer.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_raft_stream(&raft, &proposer, send, recv).await {
                            tracing::debug!(error = %e, "raft stream failed");
                        }
                    });
                }
            });
        }
    })
}
