//! TLS 1.3 over QUIC between nodes and from clients, and the frames that
//! carry messages on QUIC streams.
//!
//! One UDP port per node serves two ALPN protocols:
//! - [`ALPN_RAFT`]: node to node, mutual TLS; both sides present a
//!   certificate issued by the cluster CA, and a connection without one is
//!   closed before any message is read. A CA is not an identity: each side
//!   also checks that the other's key is the one its member record pins
//!   ([`PeerIdentity`], [`key_pin_of_cert`]), on inbound and outbound
//!   connections alike.
//! - [`ALPN_CLIENT`]: SDK and CLI; the client verifies the node against the
//!   cluster CA and authenticates itself later with a password or session.
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
    client_endpoint, client_tls, key_pin_of_cert, key_pin_of_pem, negotiated_alpn, node_client_tls,
    node_id_of_cert, peer_identity, peer_is_cluster_member, peer_node_id, server_endpoint,
    server_tls, with_stream_limit, PeerIdentity, ALPN_CLIENT, ALPN_RAFT, SERVER_NAME,
};
