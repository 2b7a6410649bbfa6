//! The HSM's replicated state and the pure, deterministic `apply`.
//!
//! Every replica feeds the same signed events, in log order, through
//! [`State::apply`] and reaches byte-identical state; [`State::digest`]
//! proves it. `apply` verifies each event's ed25519 signature and its link in
//! the blake3 event chain, re-checks the role table ([`authz`]) against the
//! state it has, and either changes the state or refuses the event with a
//! typed [`Rejection`](hsm_proto::Rejection) and changes nothing.
//!
//! Invariant: no IO, no clock, no randomness, no hash maps. Time comes from
//! the leader's timestamp inside the event. Secrets never pass through here:
//! key material is already wrapped under the domain key and passwords are
//! already Argon2id hashes, so this crate cannot leak them.
//!
//! [`State::restored_as`] turns a backed-up state into the first state of a
//! new cluster (new cluster id, one new member, key material re-wrapped by
//! the caller); see [`RestoreTarget`].

#![forbid(unsafe_code)]

mod apply;
pub mod audit;
pub mod authz;
pub mod domain;
mod entity;
pub mod policy;
pub mod protocol;
pub mod quorum;
mod records;
mod restore;
mod sign;
pub mod snapshot;
mod state;
pub mod versions;

pub use entity::{Entity, EntityKey, LoadError};
pub use records::{
    login_outcome_id, ClusterInfo, DomainGeneration, DomainKeys, Key, LoginOutcome,
    LoginReservation, Meta, RequestRecord, User, ENDED_SESSION_MARGIN_MS, LOGIN_RESERVATION_TTL_MS,
    MAX_ENDED_SESSIONS, MAX_FAILED_LOGINS,
};
pub use restore::{RestoreError, RestoreTarget};
pub use sign::{
    event_hash, event_hash_and_len, seal_batch, sign_event, verify_signature, BatchVouch, NoVouch,
    Vouch,
};
pub use state::{Applied, Page, State, StateDigest, MAX_NODES, MAX_REMEMBERED_REQUESTS};
