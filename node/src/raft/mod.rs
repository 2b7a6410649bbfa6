//! Raft between nodes: the RPC messages and the openraft network over QUIC.

mod network;
mod rpc;
mod snapshot;

pub use network::{QuicNetwork, QuicPeer};
pub use rpc::{
    read_index, serve_raft_stream, DomainHandOff, DomainSource, ForwardRefused, ForwardedWrite,
    LeaderContact, RaftReply, RaftRpc, MAX_RAFT_FRAME_BYTES,
};
pub use snapshot::{SnapshotInbox, SnapshotSigner};

/// The openraft handle of this cluster.
pub type Raft = openraft::Raft<hsm_raft_store::TypeConfig>;
