//! Wire types shared by HSM nodes and clients.
//!
//! This crate holds the plain data that crosses a process boundary: ids, the
//! signed events that the Raft log carries, the typed reasons an event can be
//! rejected for, and the one canonical codec every other crate uses.
//!
//! Invariant: no IO, no cryptography, no storage or consensus types. The client
//! SDK depends on this crate, so nothing here may pull in RocksDB, openraft or
//! a TLS stack. Every type that a peer can send decodes through [`codec`] with
//! a size limit, and a decode error is a value, never a panic.

#![forbid(unsafe_code)]

mod action;
mod backup;
pub mod client;
pub mod codec;
mod event;
mod ids;
mod key;
pub mod mechanism;
pub mod protocol;
pub mod quorum;
mod rejection;
mod user;
pub mod versioned;

pub use action::{Action, Attempt, KeyChange};
pub use backup::{
    AuditSegment, BackupId, BackupInfo, BackupList, BackupVerified, ParseBackupIdError,
    UnreadableBackup,
};
pub use event::{
    Actor, BatchSeal, EndedSession, Event, EventBody, KeyUseKind, KeyUses, NodeRecord,
    RewrappedMaterial, RewrappedVersion, SealedDomainKey, SignedEvent, MAX_KEY_USES,
};
pub use ids::{ClusterId, EventHash, KeyId, NodeId, RequestId, Signature, TokenId, Username};
pub use key::{
    CarriedAttributes, KeyAttribute, KeyAttributes, KeyFlag, KeyOrigin, KeyProvenance, KeySpec,
    MAX_CERTIFICATE_LEN, MAX_KEY_ATTR_ID_LEN, MAX_KEY_BLOB_LEN, MAX_LABEL_LEN,
};
pub use rejection::{
    ApprovalDefect, DomainKeyError, KeyDefect, KeyPolicyError, MembershipDefect, QuorumDefect,
    Rejection, ShareDefect, VersionDefect,
};
pub use user::Role;
