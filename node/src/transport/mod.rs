//! TLS 1.3 over QUIC between nodes and from clients, and the frames that
//! carry messages on QUIC streams.
//!
//! One UDP port per node serves two protocols, each named by its ALPN
//! with a version (`hsm_proto::protocol`; both ends offer every version
//! they speak and the newest in common is chosen, [`Speaks`]):
//! - Raft (`hsm-raft/N`): node to node, mutual TLS; both sides present a
//!   certificate issued by the cluster CA, and a connection without one is
//!   closed before any message is read. A CA is not an identity: each side
//!   also checks that the other's key is the one its member record pins
//!   ([`PeerIdentity`], [`key_pin_of_cert`]), on inbound and outbound
//!   connections alike.
//! - client (`hsm-client/N`): SDK and CLI; the client verifies the node
//!   against the cluster CA and authenticates itself later with a password
//!   or session.
//!
//! Every message is one frame on its own bidirectional stream; frames are
//! length-prefixed and size-limited before anything is allocated.
//!
//! Invariant: nothing a peer sends can panic this module; every failure is a
//! [`TransportError`] or [`FrameError`] value.

mod error;
mod frame;
mod pki;
mod tls;

pub use error::{FrameError, TransportError};
pub use frame::{read_frame, write_frame, FRAME_HEADER_BYTES};
pub use pki::{ClusterCa, NodeCert};
pub use tls::{
    client_alpns, client_endpoint, client_tls, client_tls_offering, key_pin_of_cert,
    key_pin_of_pem, negotiated, node_client_tls, node_client_tls_offering, node_id_of_cert,
    peer_identity, peer_is_cluster_member, peer_node_id, raft_alpns, server_endpoint, server_tls,
    with_stream_limit, PeerIdentity, Speaks, SERVER_NAME,
};
