//! Raft RPC messages and the server side of one RPC stream.

use hsm_proto::{codec, NodeId};
use hsm_raft_store::TypeConfig;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::transport::{read_frame, write_frame, FrameError};

/// Largest Raft frame accepted: a batch of entries or a snapshot chunk.
pub const MAX_RAFT_FRAME_BYTES: usize = 32 * 1024 * 1024;

/// A Raft RPC, one per QUIC stream.
#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum RaftRpc {
    /// Replicate entries / heartbeat.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Request a vote.
    Vote(VoteRequest<NodeId>),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

/// The answer to a [`RaftRpc`], as openraft returned it on the receiving
/// node.
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
    /// The request frame could not be read or decoded.
    BadRequest(String),
}

/// Serves one RPC stream from an authenticated cluster member: reads one
/// request frame, hands it to openraft, writes the reply. A malformed
/// request gets a [`RaftReply::BadRequest`]; nothing here panics.
///
/// # Errors
/// Only if the reply cannot be written (the peer went away).
pub async fn serve_raft_stream(
    raft: &super::Raft,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> Result<(), FrameError> {
    let reply = match read_frame(&mut recv, MAX_RAFT_FRAME_BYTES).await {
        Err(e) => RaftReply::BadRequest(e.to_string()),
        Ok(bytes) => match codec::decode::<RaftRpc>("raft rpc", &bytes) {
            Err(e) => RaftReply::BadRequest(e.to_string()),
            Ok(RaftRpc::AppendEntries(req)) => {
                RaftReply::AppendEntries(raft.append_entries(req).await)
            }
            Ok(RaftRpc::Vote(req)) => RaftReply::Vote(raft.vote(req).await),
            Ok(RaftRpc::InstallSnapshot(req)) => {
                RaftReply::InstallSnapshot(raft.install_snapshot(req).await)
            }
        },
    };
    let bytes = codec::encode("raft reply", &reply)
        .map_err(|e| FrameError::Stream(format!("cannot encode reply: {e}")))?;
    write_frame(&mut send, &bytes).await
}
