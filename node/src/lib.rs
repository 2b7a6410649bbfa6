//! The HSM node: a Raft member over QUIC that serves users, keys and crypto.
//!
//! Modules:
//! - [`cluster_time`]: the leader's wall clock, the one time sessions are
//!   issued and judged by on every node.
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
//! - [`local`]: a whole cluster on loopback under one directory
//!   (`hsm-node dev`).
//! - [`membership`]: Raft membership follows the members the state
//!   records (approved by a crypto officer).
//! - [`upgrade`]: the leader raises the cluster's Raft protocol version
//!   once every member speaks a newer one (rolling upgrades).
//! - [`runtime`]: a running node assembled from its configuration, and
//!   cluster creation.
//! - [`service`]: the client protocol: sessions, the role table, users,
//!   keys and crypto operations.
//!
//! Invariant: rules live in `hsm-state`; this crate is IO and secrets
//! handling around it. Plain secrets live only in zeroizing types whose
//! `Debug` is redacted.

#![forbid(unsafe_code)]

pub mod backup;
pub mod cluster_time;
pub mod config;
pub mod handoff;
pub mod key_uses;
pub mod local;
pub mod membership;
pub mod metrics;
pub mod operator;
pub mod proposer;
pub mod raft;
pub mod restore;
pub mod roster;
pub mod rotation;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod service;
pub mod transport;
pub mod upgrade;
pub mod writer;
