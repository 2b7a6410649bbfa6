//! Raft between nodes: the RPC messages and the openraft network over QUIC.

mod network;
mod reads;
mod rpc;
mod snapshot;

pub use network::{QuicNetwork, QuicPeer};
pub use reads::LeaderReads;
pub use rpc::{
    read_index, serve_raft_stream, DomainHandOff, DomainSource, ForwardRefused, ForwardedWrite,
    LeaderContact, RaftReply, RaftRpc, ReadIndexAnswer, MAX_RAFT_FRAME_BYTES,
};
pub use snapshot::{SnapshotInbox, SnapshotSigner};

/// The openraft handle of this cluster.
pub type Raft = openraft::Raft<hsm_raft_store::TypeConfig>;

/// Member `node`'s address in the membership `raft` knows, if it is one.
pub fn address_of(raft: &Raft, node: hsm_proto::NodeId) -> Option<String> {
    let metrics = raft.metrics();
    let m = metrics.borrow();
    let found = m
        .membership_config
        .nodes()
        .find(|(id, _)| **id == node)
        .map(|(_, n)| n.addr.clone());
    found
}
