//! Client SDK of the HSM cluster.
//!
//! A [`Client`] talks to every node of a cluster over QUIC (TLS 1.3,
//! offering ALPN `hsm-client/N` for each client protocol version it
//! speaks, trusting only the cluster CA) with one request per stream, and
//! offers a typed method for every operation of the client
//! protocol ([`hsm_proto::client`]).
//!
//! - **Load balancing:** reads and crypto go to the less loaded of two
//!   random nodes that are up, preferring the caller's zone; writes go to
//!   the leader when known.
//! - **Failover:** a node that fails at the transport level, or answers
//!   `unavailable`, is set aside for a backoff and the call moves to
//!   another node within its deadline; writes keep their request id, so a
//!   retried write applies once. A node that has not answered a new
//!   connection's handshake within 250 ms gets another node connected to
//!   alongside (the first two of the caller's zone, later ones of any
//!   zone), and the attempt goes to whichever connects first; the slow
//!   ones are passed over until their handshake ends. So silent nodes (a
//!   zone cut off) cost a call 250 ms each up to three, not the whole
//!   connect timeout each.
//! - **Read your writes:** the client sends the highest log index it has
//!   seen with every request, so any node answers only once it is at least
//!   that far along.
//! - **Membership:** the node list in the config file is only where to
//!   start; the client follows the cluster's member list and leader.
//! - **Bounded:** at most [`ClientOptions::max_in_flight`] requests are in
//!   flight per client; every call has a deadline.
//!
//! Secrets (passwords, session tokens, plaintext) travel as [`Secret`],
//! which is zeroized on drop and never printed, and are never logged.
//!
//! # Example
//!
//! ```no_run
//! use hsm_client::mechanism::SignMechanism;
//! use hsm_client::{Client, KeyAttributes, KeySpec, Username};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The client config file written by `hsm-node init`.
//! let client = Client::connect_file("cluster.toml").await?;
//! client
//!     .login(Username::new("alice")?, "correct horse battery staple")
//!     .await?;
//!
//! let attributes = KeyAttributes {
//!     label: "release-signing".into(),
//!     sign: true,
//!     verify: true,
//!     ..KeyAttributes::default()
//! };
//! let key = client.generate_key(KeySpec::EcP256, attributes, true).await?;
//!
//! let mechanism = SignMechanism::EcdsaSha256;
//! let signature = client.sign(key.id, mechanism, b"hello".as_slice()).await?;
//! assert!(client.verify(key.id, mechanism, b"hello".as_slice(), signature).await?);
//!
//! // Many signatures at once: 64 to a request, requests in parallel.
//! let messages = (0..1000u32).map(|i| i.to_be_bytes().to_vec());
//! for result in client.sign_many(key.id, mechanism, messages).await {
//!     result?;
//! }
//!
//! // A tighter deadline for one call.
//! let bytes = client
//!     .with_deadline(std::time::Duration::from_millis(500))
//!     .random(32)
//!     .await?;
//! assert_eq!(bytes.len(), 32);
//! # Ok(())
//! # }
//! ```
//!
//! # Keys that stay in the HSM, for other libraries
//!
//! - [`envelope`]: envelope encryption of data keys under a master key in
//!   the HSM (transparent data encryption of a database).
//! - `offload` (feature `rustls`): a rustls server signing key in the HSM
//!   (TLS offload).
//! - `ca` (feature `rcgen`): an rcgen certificate-signing key in the HSM
//!   (a small certificate authority).
//! - [`blocking`]: the synchronous signer both build on.
//!
//! # Errors
//!
//! Every call returns [`Error`]: [`Error::Server`] when the cluster refuses
//! (see [`Error::kind`]), [`Error::Unavailable`] with each address tried and
//! why it failed, [`Error::DeadlineExceeded`], [`Error::Config`] and
//! [`Error::Protocol`].
//!
//! Invariant: the SDK knows only the wire types of [`hsm_proto`]; it has no
//! storage, consensus or node code, and nothing a node sends can make it
//! panic.

#![forbid(unsafe_code)]

mod balancer;
pub mod blocking;
#[cfg(feature = "rcgen")]
pub mod ca;
mod classify;
mod client;
mod config;
mod connections;
pub mod envelope;
mod error;
mod failures;
mod frame;
#[cfg(feature = "rustls")]
pub mod offload;
mod ops;
mod options;
mod progress;
mod quorum;
mod tls;
mod versions;

pub use balancer::{KnownNode, NodeStats};
pub use blocking::{BlockingSigner, RemoteKeyError};
pub use client::{Client, Session};
pub use config::{load_config, load_config_from_env, parse_config, validate_config, CONFIG_ENV};
pub use error::{Error, Result};
pub use frame::MAX_RESPONSE_BYTES;
pub use ops::{SIGN_MANY_CHUNK, SIGN_MANY_CHUNK_BYTES};
pub use options::ClientOptions;
pub use tls::{alpn_protocols, key_pin_of_cert, server_name, SERVER_NAME};
pub use versions::DataKey;

pub use hsm_proto;
pub use hsm_proto::client::{
    ClientConfig, ClientError, ClientNode, ClusterStatus, DecryptItem, ErrorKind, KeyFilter,
    KeyInfo, KeyVersionsInfo, MemberInfo, MemberState, MembersReport, Operation, Reply, Secret,
    UserInfo, VerifyItem, MAX_BATCH,
};
pub use hsm_proto::mechanism;
pub use hsm_proto::versioned::Versioned;
pub use hsm_proto::{
    BackupId, BackupInfo, BackupList, BackupVerified, KeyAttribute, KeyAttributes, KeyFlag, KeyId,
    KeyOrigin, KeyProvenance, KeySpec, NodeId, NodeRecord, RequestId, Role, Username,
};
