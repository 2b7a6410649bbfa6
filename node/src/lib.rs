//! The HSM node: a Raft member over QUIC that serves users, keys and crypto.
//!
//! Modules:
//! - [`config`]: the node's TOML configuration, its `HSM_NODE_*`
//!   environment overrides and their validation.
//! - [`secrets`]: the cluster domain key and what hangs off it (wrapping key
//!   material, handing the domain key to a joining node, session tokens),
//!   node identities, and password hashing.
//! - [`transport`]: TLS 1.3 over QUIC, the cluster CA and certificates, and
//!   size-limited frames.
//! - [`proposer`]: the leader builds, signs and submits events in chain
//!   order.
//! - [`writer`]: a write entering on any node reaches the leader.
//! - [`raft`]: openraft's network over that transport, and the server side
//!   of Raft RPCs.
//!
//! Invariant: rules live in `hsm-state`; this crate is IO and secrets
//! handling around it. Plain secrets live only in zeroizing types whose
//! `Debug` is redacted.

#![forbid(unsafe_code)]

pub mod config;
pub mod proposer;
pub mod raft;
pub mod secrets;
pub mod server;
pub mod transport;
pub mod writer;
